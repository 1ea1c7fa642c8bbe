//! Maps byte positions in the TOML text to dotted key paths and back, so
//! every message can say `delivery.routes[1].tls` and the line it is on.
//!
//! Works on the spanned parse tree only; it does not interpret values.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Every key and array element of a document with its dotted path and spans.
pub(crate) struct KeyIndex {
    entries: Vec<Entry>,
}

struct Entry {
    /// `smtp.relay_listen[0]`, `delivery.routes[1].tls`.
    path: String,
    /// Number of path segments; deeper entries describe an error better.
    depth: usize,
    /// Where the key is written; `None` for array elements.
    key_span: Option<Range<usize>>,
    /// Where the value is written. For a table opened by a `[header]` this is
    /// the header only, which is why children are indexed separately.
    value_span: Range<usize>,
}

impl KeyIndex {
    /// Indexes a parsed document.
    pub(crate) fn new(root: &Spanned<DeTable<'_>>) -> KeyIndex {
        let mut index = KeyIndex {
            entries: Vec::new(),
        };
        index.add_table(root.get_ref(), "", 0);
        index
    }

    fn add_table(&mut self, table: &DeTable<'_>, prefix: &str, depth: usize) {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                format_key(key.get_ref())
            } else {
                format!("{prefix}.{}", format_key(key.get_ref()))
            };
            self.add_value(value, path, depth + 1, Some(key.span()));
        }
    }

    fn add_value(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        path: String,
        depth: usize,
        key_span: Option<Range<usize>>,
    ) {
        match value.get_ref() {
            DeValue::Table(table) => self.add_table(table, &path, depth),
            DeValue::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    self.add_value(element, format!("{path}[{i}]"), depth + 1, None);
                }
            }
            _ => {}
        }
        self.entries.push(Entry {
            path,
            depth,
            key_span,
            value_span: value.span(),
        });
    }

    /// The deepest key whose key or value covers `span`: the key an error
    /// reported at that position is about.
    pub(crate) fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        let covers = |s: &Range<usize>| s.start <= span.start && span.end <= s.end;
        self.entries
            .iter()
            .filter(|e| covers(&e.value_span) || e.key_span.as_ref().is_some_and(covers))
            .max_by_key(|e| e.depth)
            .map(|e| e.path.as_str())
    }

    /// Where `path` is written: its key, or the element itself for array
    /// elements. `None` for keys that are not in the file (defaults).
    pub(crate) fn span_of(&self, path: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.key_span.clone().unwrap_or_else(|| e.value_span.clone()))
    }
}

/// Writes a key as it would appear in a dotted path, quoting keys that are
/// not bare TOML keys so that `"a.b"` cannot be mistaken for two keys.
fn format_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> KeyIndex {
        KeyIndex::new(&DeTable::parse(text).unwrap())
    }

    #[test]
    fn finds_paths_in_headers_inline_tables_and_arrays() {
        let text = "a = 1\n[smtp]\nx = [1, 2]\n[[d.routes]]\nk = 1\n[[d.routes]]\nk = \"v\"\n\
                    e = { f = { g = 3 } }\n\"odd key\" = 1\n";
        let index = index(text);
        let at = |needle: &str| {
            let start = text.rfind(needle).unwrap();
            index
                .path_at(&(start..start + needle.len()))
                .map(str::to_owned)
        };
        assert_eq!(at("2").as_deref(), Some("smtp.x[1]"));
        assert_eq!(at("x").as_deref(), Some("smtp.x"));
        assert_eq!(at("\"v\"").as_deref(), Some("d.routes[1].k"));
        assert_eq!(at("3").as_deref(), Some("d.routes[1].e.f.g"));
        assert_eq!(
            at("\"odd key\"").as_deref(),
            Some("d.routes[1].\"odd key\"")
        );
        // An error reported on the second `[[d.routes]]` header is about that element.
        let second = text.rfind("[[d.routes]]").unwrap();
        assert_eq!(index.path_at(&(second..second + 12)), Some("d.routes[1]"));
    }

    #[test]
    fn finds_spans_of_paths() {
        let text = "[smtp]\nx = [1, 2]\n";
        let index = index(text);
        assert_eq!(index.span_of("smtp.x"), Some(7..8));
        assert_eq!(index.span_of("smtp.x[1]"), Some(15..16));
        assert_eq!(index.span_of("smtp.y"), None);
    }
}
