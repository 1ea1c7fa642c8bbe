//! DKIM checks with an independent verifier: Python's dkimpy, answering its
//! DNS look-ups from the records `carteiro domain dns --json` printed.

use super::python_json;
use serde_json::Value;

/// `carteiro domain dns DOMAIN --json`, parsed.
pub async fn records(server: &super::Server, domain: &str) -> Vec<Value> {
    let out = server.cli(&["domain", "dns", domain, "--json"]).await;
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("domain dns --json gave: {out}"))
}

/// Verifies every DKIM-Signature of `message` with dkimpy, answering its TXT
/// look-ups from `records` only. Returns one boolean per signature.
pub async fn dkimpy_verify(message: &[u8], records: &[Value]) -> Vec<bool> {
    let txt: serde_json::Map<String, Value> = records
        .iter()
        .filter(|r| r["type"] == "TXT")
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["value"].clone(),
            )
        })
        .collect();
    let result = python_json(&format!(
        r#"
import base64, dkim
records = json.loads({records:?})
message = base64.b64decode({message:?})
def dnsfunc(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    value = records.get(name.rstrip("."))
    return value.encode() if value else None
count = message.count(b"DKIM-Signature:")
done([bool(dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)])
"#,
        records = serde_json::to_string(&txt).unwrap_or_default(),
        message = base64_encode(message),
    ))
    .await;
    result
        .as_array()
        .unwrap_or_else(|| panic!("dkimpy gave {result}"))
        .iter()
        .map(|v| v.as_bool().unwrap_or(false))
        .collect()
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
