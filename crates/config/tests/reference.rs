//! docs/configuration.md against the code: every key the `Config` struct tree
//! accepts must be documented there, and every key documented there must
//! exist. The keys are read from the code itself, through serde: a recording
//! deserializer is handed to `Config::deserialize` and notes the field names
//! each struct declares, so a new field fails this test until it is
//! documented.
//!
//! Keys are named as the document writes them: dotted paths from the top of
//! the file (`smtp.max_message_size`), `[]` for the entries of an array of
//! tables (`delivery.routes[].relay`), `<name>` for the entries of a map.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use carteiro_config::Config;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// What a path of the schema holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A table (`[smtp]`): its fields are keys of their own.
    Table,
    /// An array of tables (`[[delivery.routes]]`): its entries' fields are
    /// keys `path[].field`.
    TableArray,
    /// A map whose entries are named by the user (`path.<name>`).
    Map,
    /// A value: a key to document.
    Value,
}

/// What one exploration found.
#[derive(Default)]
struct Found {
    /// Every path seen, as the document writes it.
    paths: BTreeSet<String>,
    /// Paths a struct was read at.
    structs: BTreeSet<String>,
    /// Paths a map was read at.
    maps: BTreeSet<String>,
}

/// The schema walk. Each pass follows one path of the schema (`target`),
/// yielding only the keys on the way to it, so every other field takes its
/// default and no value ever needs to be made up: at the target itself a
/// struct records its fields and yields none, a sequence yields one element
/// (explored the same way, at `target[]`), an option is `Some`, and any other
/// request (a string, a number, an enum: a value) ends the pass with an
/// error, which is expected. Custom deserializers (`deserialize_with`, the
/// hand-written `Deserialize` of `TlsMode` and `RelayTarget`) work unchanged:
/// whatever they ask for, a value is never produced, so none can be refused.
struct Recorder<'a> {
    found: &'a RefCell<Found>,
    path: String,
    target: &'a str,
}

#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Stop(message.to_string())
    }
}

/// `child` of `parent` as the document writes it.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Whether `path` lies on the way to `target` (or is it).
fn leads_to(path: &str, target: &str) -> bool {
    target == path
        || (target.starts_with(path)
            && (path.is_empty() || target[path.len()..].starts_with(['.', '['])))
}

impl<'a> Recorder<'a> {
    fn at(&self, path: String) -> Recorder<'a> {
        Recorder {
            found: self.found,
            path,
            target: self.target,
        }
    }

    fn value(&self) -> Stop {
        Stop(format!("{} is a value", self.path))
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(self.value())
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let mut keys = Vec::new();
        {
            let mut found = self.found.borrow_mut();
            found.structs.insert(self.path.clone());
            for field in fields {
                let path = join(&self.path, field);
                if leads_to(&path, self.target) {
                    keys.push((*field, path.clone()));
                }
                found.paths.insert(path);
            }
        }
        visitor.visit_map(Fields {
            recorder: &self,
            keys: keys.into_iter(),
            next: None,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let element = format!("{}[]", self.path);
        let one = leads_to(&element, self.target) || self.path == self.target;
        visitor.visit_seq(Elements {
            recorder: self.at(element),
            left: usize::from(one),
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        let entry = join(&self.path, "<name>");
        {
            let mut found = self.found.borrow_mut();
            found.maps.insert(self.path.clone());
            found.paths.insert(entry.clone());
        }
        let one = leads_to(&entry, self.target) || self.path == self.target;
        let keys = if one {
            vec![("<name>", entry)]
        } else {
            Vec::new()
        };
        visitor.visit_map(Fields {
            recorder: &self,
            keys: keys.into_iter(),
            next: None,
        })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        Err(self.value())
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple_struct enum identifier ignored_any
    }
}

/// The keys a struct (or map) yields on the way to the target: at most one.
struct Fields<'r, 'a> {
    recorder: &'r Recorder<'a>,
    keys: std::vec::IntoIter<(&'static str, String)>,
    next: Option<String>,
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let Some((name, path)) = self.keys.next() else {
            return Ok(None);
        };
        self.next = Some(path);
        let name: de::value::StrDeserializer<'_, Stop> = name.into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let path = self
            .next
            .take()
            .ok_or_else(|| Stop("value before key".into()))?;
        seed.deserialize(self.recorder.at(path))
    }
}

/// A sequence of at most one element.
struct Elements<'a> {
    recorder: Recorder<'a>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.recorder.at(self.recorder.path.clone()))
            .map(Some)
    }
}

/// Every path of `T`'s schema and what it holds.
fn schema<'de, T: Deserialize<'de>>() -> BTreeMap<String, Shape> {
    let found = RefCell::new(Found::default());
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut todo = vec![String::new()];
    while let Some(target) = todo.pop() {
        if !done.insert(target.clone()) {
            continue;
        }
        let recorder = Recorder {
            found: &found,
            path: String::new(),
            target: &target,
        };
        // A pass ends in an error when its target is a value; that is how
        // values are told apart.
        let _ = T::deserialize(recorder);
        let paths: Vec<String> = found.borrow().paths.iter().cloned().collect();
        todo.extend(paths.into_iter().filter(|p| !done.contains(p)));
    }
    let found = found.into_inner();
    found
        .paths
        .iter()
        // An array's entries are described by their own fields (or by the
        // array, for an array of values); a map's entries are keys
        // `path.<name>`, or tables when they are structs.
        .filter(|path| !path.ends_with("[]"))
        .map(|path| {
            let shape = if found.structs.contains(path) {
                Shape::Table
            } else if found.structs.contains(&format!("{path}[]")) {
                Shape::TableArray
            } else if found.maps.contains(path) {
                Shape::Map
            } else {
                Shape::Value
            };
            (path.clone(), shape)
        })
        .collect()
}

/// Every key of the configuration file, from the code.
fn keys_in_code() -> Vec<String> {
    schema::<Config>()
        .into_iter()
        .filter(|(_, shape)| *shape == Shape::Value)
        .map(|(path, _)| path)
        .collect()
}

/// Every table (`smtp`) and array of tables (`delivery.routes`), from the code.
fn tables_in_code() -> Vec<(String, Shape)> {
    schema::<Config>()
        .into_iter()
        .filter(|(_, shape)| matches!(shape, Shape::Table | Shape::TableArray))
        .collect()
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
}

fn doc() -> String {
    let path = doc_path();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The keys the document lists: the first cell, in backticks, of each row of
/// a table whose header starts with `| key |`.
fn keys_in_doc(doc: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut in_key_table = false;
    for line in doc.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            in_key_table = false;
            continue;
        }
        let first = line
            .trim_start_matches('|')
            .split('|')
            .next()
            .unwrap_or("")
            .trim();
        if first == "key" {
            in_key_table = true;
            continue;
        }
        if !in_key_table || first.starts_with("---") {
            continue;
        }
        let key = first
            .strip_prefix('`')
            .and_then(|rest| rest.strip_suffix('`'))
            .unwrap_or_else(|| panic!("a key row must start with the key in backticks: {line}"));
        keys.push(key.to_owned());
    }
    keys
}

#[test]
fn the_schema_walk_sees_every_kind_of_key() {
    let schema = schema::<Config>();
    // A plain value, a custom-deserialized one, an Option inside an array
    // of tables, and the tables themselves.
    assert_eq!(schema.get("hostname"), Some(&Shape::Value));
    assert_eq!(schema.get("smtp.max_message_size"), Some(&Shape::Value));
    assert_eq!(schema.get("smtp.relay_listen"), Some(&Shape::Value));
    assert_eq!(schema.get("delivery.routes[].relay"), Some(&Shape::Value));
    assert_eq!(schema.get("delivery.routes[].tls"), Some(&Shape::Value));
    assert_eq!(schema.get("smtp"), Some(&Shape::Table));
    assert_eq!(schema.get("delivery.routes"), Some(&Shape::TableArray));
    let values = schema.values().filter(|s| **s == Shape::Value).count();
    assert!(values >= 50, "too few keys found: {schema:?}");
}

#[test]
fn every_key_in_the_code_is_in_docs_configuration_md() {
    let doc = doc();
    let documented: BTreeSet<String> = keys_in_doc(&doc).into_iter().collect();
    let missing: Vec<String> = keys_in_code()
        .into_iter()
        .filter(|key| !documented.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "{} has no row for these configuration keys (add `| `key` | default | meaning |` \
         to the table of their section):\n  {}",
        doc_path().display(),
        missing.join("\n  ")
    );
    let headings: Vec<String> = tables_in_code()
        .into_iter()
        .map(|(table, shape)| match shape {
            Shape::TableArray => format!("`[[{table}]]`"),
            _ => format!("`[{table}]`"),
        })
        .filter(|heading| {
            !doc.lines()
                .any(|line| line.starts_with('#') && line.contains(heading.as_str()))
        })
        .collect();
    assert!(
        headings.is_empty(),
        "{} has no section heading for these tables:\n  {}",
        doc_path().display(),
        headings.join("\n  ")
    );
}

#[test]
fn every_key_in_docs_configuration_md_is_in_the_code() {
    let known: BTreeSet<String> = keys_in_code().into_iter().collect();
    let documented = keys_in_doc(&doc());
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|key| !known.contains(*key))
        .collect();
    assert!(
        unknown.is_empty(),
        "{} documents keys the code does not have:\n  {}",
        doc_path().display(),
        unknown
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    let mut seen = BTreeSet::new();
    let repeated: Vec<&String> = documented.iter().filter(|key| !seen.insert(*key)).collect();
    assert!(repeated.is_empty(), "documented twice: {repeated:?}");
}

/// The TOML examples of the reference and of the README are accepted as
/// they are written.
#[test]
fn the_documented_examples_parse() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["docs/configuration.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(name)).expect(name);
        let mut blocks = 0;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let block = block.join("\n");
            if let Err(err) = Config::from_toml_str(&block, None) {
                panic!("a TOML example in {name} is refused: {err}\n{block}");
            }
            blocks += 1;
        }
        assert!(blocks > 0, "no TOML example found in {name}");
    }
}
