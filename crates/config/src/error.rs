//! The one error type of this crate: what is wrong, at which dotted key, and
//! where in the file.
//!
//! Only describes problems; finding the key for a position lives in
//! `keypath.rs`.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration was refused. Every variant but [`ConfigError::Read`]
/// names the dotted key that is wrong (`smtp.max_message_size`,
/// `delivery.routes[1].tls`) or the position of a syntax error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML (an unclosed string, a key given twice...).
    #[error("{location}invalid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The parser's description of the problem.
        message: String,
    },
    /// A key Carteiro does not know, usually a typo.
    #[error(
        "{location}unknown key {key}{} (expected one of: {})",
        did_you_mean(key, expected).map(|s| format!(", did you mean {s}?")).unwrap_or_default(),
        expected.join(", ")
    )]
    UnknownKey {
        /// Where the key is.
        location: Location,
        /// The full dotted key, for example `smtp.relay_lisen`.
        key: String,
        /// The keys allowed in that table.
        expected: Vec<String>,
    },
    /// A known key with a value that is wrong or that contradicts another key.
    #[error("{location}{key}: {message}")]
    InvalidValue {
        /// Where the key or value is.
        location: Location,
        /// The full dotted key, for example `delivery.routes[1].tls`.
        key: String,
        /// What is wrong with the value.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    /// For an unknown key, the full dotted key the user probably meant
    /// (`smtp.relay_listen` for `smtp.relay_lisen`), when one is close.
    pub fn suggestion(&self) -> Option<String> {
        match self {
            ConfigError::UnknownKey { key, expected, .. } => did_you_mean(key, expected),
            _ => None,
        }
    }

    /// Where in the file the problem is, when that is known.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Syntax { location, .. }
            | ConfigError::UnknownKey { location, .. }
            | ConfigError::InvalidValue { location, .. } => Some(location),
            ConfigError::Read { .. } => None,
        }
    }
}

/// The allowed key closest to the last segment of `key`, with `key`'s
/// parent path in front, if one is close enough to be a likely typo.
fn did_you_mean(key: &str, expected: &[String]) -> Option<String> {
    // Keys in our schema are bare, so the last segment starts after the last
    // `.` or `]`; a quoted unknown key only loses its suggestion.
    let split = key.rfind(['.', ']']).map_or(0, |i| i + 1);
    let (parent, written) = key.split_at(split);
    expected
        .iter()
        .map(|name| (edit_distance(written, name), name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| format!("{parent}{name}"))
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// A position in a configuration file. Both parts are optional: text given
/// without a file has no path, and a problem found after parsing (a missing
/// key) may have no line. Displays as a message prefix such as
/// `"carteiro.toml:12:5: "`, `"line 12: "` or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file the text came from.
    pub file: Option<PathBuf>,
    /// 1-based line number.
    pub line: Option<usize>,
    /// 1-based column, counted in characters.
    pub column: Option<usize>,
}

impl Location {
    /// The location of byte offset `offset` in `text`.
    pub(crate) fn at(text: &str, offset: usize, file: Option<PathBuf>) -> Location {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location {
            file,
            line: Some(line),
            column: Some(column),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}", file.display())?,
            (Some(file), None) => write!(f, "{}", file.display())?,
            (None, Some(line)) => write!(f, "line {line}")?,
            (None, None) => return Ok(()),
        }
        if let (Some(_), Some(column)) = (self.line, self.column) {
            write!(f, ":{column}")?;
        }
        f.write_str(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prefixes() {
        let text = "a = 1\nbé = 2\n";
        let at = Location::at(text, text.find('2').unwrap(), None);
        assert_eq!((at.line, at.column), (Some(2), Some(6)));
        assert_eq!(at.to_string(), "line 2:6: ");
        let at = Location::at(text, 0, Some(PathBuf::from("c.toml")));
        assert_eq!(at.to_string(), "c.toml:1:1: ");
        assert_eq!(Location::default().to_string(), "");
        let file_only = Location {
            file: Some(PathBuf::from("c.toml")),
            ..Location::default()
        };
        assert_eq!(file_only.to_string(), "c.toml: ");
    }

    #[test]
    fn suggestions_keep_the_parent_path() {
        let expected = ["domains".to_owned(), "relay".to_owned(), "tls".to_owned()];
        assert_eq!(
            did_you_mean("delivery.routes[1].realy", &expected).as_deref(),
            Some("delivery.routes[1].relay")
        );
        assert_eq!(
            did_you_mean("domain", &expected).as_deref(),
            Some("domains")
        );
        assert_eq!(did_you_mean("colour", &expected), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
