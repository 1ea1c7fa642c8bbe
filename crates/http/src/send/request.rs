//! The body of `POST /api/v1/messages`: its JSON shape, and the checks of
//! the fields that compose does not know (tags, metadata, attachment
//! encoding). Every refusal names the field in the request's terms
//! (`tags[3]`, `attachments[0].content_base64`). Pure, no I/O.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use carteiro_mail::compose::Attachment;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::ApiError;

/// Most tags per message.
pub(crate) const MAX_TAGS: usize = 20;
/// Longest tag, in characters.
const MAX_TAG_CHARS: usize = 128;
/// Most metadata keys per message.
pub(crate) const MAX_METADATA_KEYS: usize = 50;
/// Longest metadata key, in characters.
const MAX_METADATA_KEY_CHARS: usize = 64;
/// Largest metadata object, serialized as JSON.
pub(crate) const MAX_METADATA_BYTES: usize = 8 * 1024;

/// The request's top-level fields, for naming an unknown one.
pub(crate) const FIELDS: [&str; 15] = [
    "from",
    "to",
    "cc",
    "bcc",
    "reply_to",
    "subject",
    "text",
    "html",
    "headers",
    "attachments",
    "tags",
    "metadata",
    "track_opens",
    "track_clicks",
    "list_unsubscribe",
];

/// Standard base64; padding optional (some encoders leave it out).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A send request as given. Absent and `null` are the same for every field.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "message", deny_unknown_fields, default)]
pub(crate) struct SendRequest {
    pub(crate) from: Option<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub(crate) to: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub(crate) cc: Vec<String>,
    #[serde(deserialize_with = "one_or_many")]
    pub(crate) bcc: Vec<String>,
    pub(crate) reply_to: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    #[serde(deserialize_with = "ordered_headers")]
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) attachments: Option<Vec<AttachmentRequest>>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) metadata: Option<Value>,
    pub(crate) track_opens: Option<bool>,
    pub(crate) track_clicks: Option<bool>,
    pub(crate) list_unsubscribe: Option<bool>,
}

/// One attachment as given.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "attachment", deny_unknown_fields, default)]
pub(crate) struct AttachmentRequest {
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) content_base64: Option<String>,
}

/// Parses the body. Syntax and type errors keep serde's message (with line
/// and column); an unknown top-level field is told apart and named.
pub(crate) fn parse(body: &[u8]) -> Result<SendRequest, ApiError> {
    // serde's derived structs also accept an array of the fields in order,
    // which is no way to send a message: only an object is.
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(at) = start
        && body[at] == b'['
    {
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at
            - body[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |nl| nl + 1)
            + 1;
        return Err(ApiError::MalformedJson(format!(
            "invalid type: array, expected an object at line {line} column {column}"
        )));
    }
    serde_json::from_slice::<SendRequest>(body).map_err(|error| {
        if error.is_data()
            && let Ok(object) = serde_json::from_slice::<serde_json::Map<String, Value>>(body)
            && let Some(field) = object.keys().find(|key| !FIELDS.contains(&key.as_str()))
        {
            return ApiError::UnknownField {
                field: field.clone(),
                message: format!(
                    "not a field of a message; expected one of: {}",
                    FIELDS.join(", ")
                ),
            };
        }
        ApiError::MalformedJson(error.to_string())
    })
}

/// Checks the tags and drops repeats (keeping the first).
pub(crate) fn check_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::field(
            "tags",
            format!("at most {MAX_TAGS} tags, got {}", tags.len()),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(tags.len());
    for (index, tag) in tags.into_iter().enumerate() {
        let chars = tag.chars().count();
        let valid_chars = tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        if chars == 0 || chars > MAX_TAG_CHARS || !valid_chars {
            return Err(ApiError::field(
                format!("tags[{index}]"),
                format!(
                    "a tag is 1 to {MAX_TAG_CHARS} characters among A-Z, a-z, 0-9, '.', '_', ':' and '-'"
                ),
            ));
        }
        if !checked.contains(&tag) {
            checked.push(tag);
        }
    }
    Ok(checked)
}

/// Checks the metadata: an object of at most [`MAX_METADATA_KEYS`] keys of
/// 1 to 64 characters, with string, number, boolean or null values, at most
/// [`MAX_METADATA_BYTES`] as JSON. `None` becomes `Null`.
pub(crate) fn check_metadata(metadata: Option<Value>) -> Result<Value, ApiError> {
    let Some(metadata) = metadata else {
        return Ok(Value::Null);
    };
    let Value::Object(object) = &metadata else {
        return Err(ApiError::field("metadata", "metadata must be an object"));
    };
    if object.len() > MAX_METADATA_KEYS {
        return Err(ApiError::field(
            "metadata",
            format!("at most {MAX_METADATA_KEYS} keys, got {}", object.len()),
        ));
    }
    for (key, value) in object {
        let chars = key.chars().count();
        if chars == 0 || chars > MAX_METADATA_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(ApiError::field(
                "metadata",
                format!(
                    "key {key:?}: a key is 1 to {MAX_METADATA_KEY_CHARS} characters without control characters"
                ),
            ));
        }
        if matches!(value, Value::Array(_) | Value::Object(_)) {
            return Err(ApiError::field(
                format!("metadata.{key}"),
                "a metadata value is a string, number, boolean or null",
            ));
        }
    }
    let size = serde_json::to_string(&metadata).map_or(usize::MAX, |json| json.len());
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::field(
            "metadata",
            format!("at most {MAX_METADATA_BYTES} bytes as JSON, got {size}"),
        ));
    }
    Ok(metadata)
}

/// Decodes the attachments' base64 (line breaks and spaces inside are
/// allowed, as encoders wrap lines).
pub(crate) fn decode_attachments(
    attachments: Vec<AttachmentRequest>,
) -> Result<Vec<Attachment>, ApiError> {
    attachments
        .into_iter()
        .enumerate()
        .map(|(index, attachment)| {
            let field = format!("attachments[{index}].content_base64");
            let Some(encoded) = attachment.content_base64 else {
                return Err(ApiError::field(field, "content_base64 is required"));
            };
            let content = if encoded.bytes().any(|b| b.is_ascii_whitespace()) {
                let compact: Vec<u8> = encoded
                    .bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                BASE64.decode(compact)
            } else {
                BASE64.decode(encoded)
            }
            .map_err(|error| ApiError::field(field, format!("not valid base64: {error}")))?;
            Ok(Attachment {
                filename: attachment.filename.unwrap_or_default(),
                content_type: attachment.content_type.unwrap_or_default(),
                content,
            })
        })
        .collect()
}

/// `to`, `cc`, `bcc`: one address as a string, or an array of them; `null`
/// for none.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an address or an array of addresses")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Vec<String>, E> {
            Ok(vec![value.to_owned()])
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(address) = seq.next_element::<String>()? {
                list.push(address);
            }
            Ok(list)
        }
    }

    deserializer.deserialize_any(OneOrMany)
}

/// `headers`: an object of name → string value, kept in the order given
/// (the order they are written in the message); `null` for none.
fn ordered_headers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, String)>, D::Error> {
    struct Headers;

    impl<'de> Visitor<'de> for Headers {
        type Value = Vec<(String, String)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of header names to string values")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut headers = Vec::new();
            while let Some(entry) = map.next_entry::<String, String>()? {
                headers.push(entry);
            }
            Ok(headers)
        }
    }

    deserializer.deserialize_any(Headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::InvalidField { field, .. } => field,
            other => panic!("not a field error: {other:?}"),
        }
    }

    #[test]
    fn addresses_are_one_or_many_and_headers_keep_their_order() {
        let request = parse(
            br#"{"to": "a@x.test", "cc": ["b@x.test", "c@x.test"], "bcc": null,
                 "headers": {"X-B": "2", "X-A": "1"}}"#,
        )
        .expect("parse");
        assert_eq!(request.to, ["a@x.test"]);
        assert_eq!(request.cc, ["b@x.test", "c@x.test"]);
        assert!(request.bcc.is_empty());
        let names: Vec<_> = request.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-B", "X-A"]);
    }

    #[test]
    fn parse_errors_tell_malformed_from_unknown() {
        let error = parse(b"{\"to\": 5}").expect_err("type");
        assert!(
            matches!(&error, ApiError::MalformedJson(m) if m.contains("line 1 column")),
            "{error:?}"
        );
        let error = parse(b"{\"tags\": [\"a\"], \"tgas\": 1}").expect_err("unknown");
        assert!(
            matches!(&error, ApiError::UnknownField { field, .. } if field == "tgas"),
            "{error:?}"
        );
        assert!(matches!(
            parse(b"{\"to\": "),
            Err(ApiError::MalformedJson(_))
        ));
        let error = parse(b"\n  []").expect_err("array");
        assert!(
            matches!(&error, ApiError::MalformedJson(m) if m.ends_with("line 2 column 3")),
            "{error:?}"
        );
    }

    #[test]
    fn tags_are_checked_and_deduplicated() {
        let tags = |list: &[&str]| list.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            check_tags(tags(&["a:b", "x-1", "a:b"])),
            Ok(tags(&["a:b", "x-1"]))
        );
        assert_eq!(
            field_of(check_tags(tags(&["ok", "fine", "good", "bad tag"])).expect_err("space")),
            "tags[3]"
        );
        assert_eq!(
            field_of(check_tags(tags(&[""])).expect_err("empty")),
            "tags[0]"
        );
        let long = "x".repeat(129);
        assert_eq!(
            field_of(check_tags(vec![long]).expect_err("long")),
            "tags[0]"
        );
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(field_of(check_tags(many).expect_err("many")), "tags");
    }

    #[test]
    fn metadata_is_a_small_flat_object() {
        assert_eq!(check_metadata(None), Ok(Value::Null));
        let ok = json!({"order": 42, "vip": true, "note": null, "name": "x"});
        assert_eq!(check_metadata(Some(ok.clone())), Ok(ok));
        assert_eq!(
            field_of(check_metadata(Some(json!([1]))).expect_err("array")),
            "metadata"
        );
        assert_eq!(
            field_of(check_metadata(Some(json!({"a": {"b": 1}}))).expect_err("nested")),
            "metadata.a"
        );
        assert_eq!(
            field_of(check_metadata(Some(json!({"": 1}))).expect_err("key")),
            "metadata"
        );
        let many: serde_json::Map<String, Value> =
            (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            field_of(check_metadata(Some(Value::Object(many))).expect_err("keys")),
            "metadata"
        );
        let big = json!({"a": "x".repeat(MAX_METADATA_BYTES)});
        assert_eq!(
            field_of(check_metadata(Some(big)).expect_err("size")),
            "metadata"
        );
    }

    #[test]
    fn attachments_decode_with_or_without_padding_and_line_breaks() {
        let attachment = |content: &str| AttachmentRequest {
            filename: Some("a.txt".to_owned()),
            content_type: None,
            content_base64: Some(content.to_owned()),
        };
        let decoded = decode_attachments(vec![
            attachment("aGVsbG8="),
            attachment("aGVsbG8"),
            attachment("aGVs\r\nbG8="),
        ])
        .expect("decode");
        assert!(decoded.iter().all(|a| a.content == b"hello"));
        let error = decode_attachments(vec![attachment("aGVsbG8="), attachment("*not*")]);
        assert_eq!(
            field_of(error.expect_err("bad")),
            "attachments[1].content_base64"
        );
        let missing = AttachmentRequest::default();
        assert_eq!(
            field_of(decode_attachments(vec![missing]).expect_err("missing")),
            "attachments[0].content_base64"
        );
    }
}
