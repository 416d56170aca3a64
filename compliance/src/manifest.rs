//! The manifest (`manifest.json`): what the pack covers (tenant, period), how it was made
//! (generator, the Delta table versions read) and the SHA-256 of every other file, as canonical
//! JSON (keys sorted, no insignificant whitespace, RFC 8785 for the values a manifest holds);
//! and `SHA256SUMS`, the same hashes in the format `sha256sum -c` checks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ComplianceError;

/// The manifest's format name and version.
pub const FORMAT: &str = "elevation-compliance-pack/1";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The DSSE envelope of the manifest.
pub const DSSE: &str = "manifest.dsse.json";
/// The minisign signature of the manifest.
pub const MANIFEST_MINISIG: &str = "manifest.json.minisig";
/// The hashes in `sha256sum` format.
pub const SHA256SUMS: &str = "SHA256SUMS";
/// The minisign signature of `SHA256SUMS`.
pub const SHA256SUMS_MINISIG: &str = "SHA256SUMS.minisig";
/// The files that sign the manifest (they cannot be listed in it).
pub const SIGNATURE_FILES: [&str; 4] = [MANIFEST, DSSE, MANIFEST_MINISIG, SHA256SUMS_MINISIG];

/// The manifest of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The program and version that made the pack.
    pub generator: String,
    /// The tenant.
    pub tenant: String,
    /// The period: `from` inclusive, `to` exclusive, RFC 3339 UTC.
    pub period: Period,
    /// The Delta version of each table read, by table name.
    pub table_versions: BTreeMap<String, u64>,
    /// The key id (minisign's, 16 hex digits) of the key that signs the pack.
    pub key_id: String,
    /// Every file of the pack but the manifest and its signatures, by name.
    pub files: Vec<FileEntry>,
}

/// The period of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First instant, inclusive.
    pub from: String,
    /// Last instant, exclusive.
    pub to: String,
}

/// One file of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// File name in the pack folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

impl FileEntry {
    /// Hashes a file of the pack folder.
    pub fn of(dir: &Path, name: &str) -> Result<FileEntry, ComplianceError> {
        let path = dir.join(name);
        let (bytes, sha256) = hash_file(&path).map_err(ComplianceError::io(&path))?;
        Ok(FileEntry {
            name: name.to_owned(),
            bytes,
            sha256,
        })
    }
}

/// The size and SHA-256 (hex) of a file, read in pieces.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((total, hex::encode(hasher.finalize())))
}

impl Manifest {
    /// The manifest as canonical JSON with a final newline: the bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a manifest is plain data");
        let mut text = canonical(&value);
        text.push('\n');
        text.into_bytes()
    }
}

/// `SHA256SUMS`: one `HASH  NAME` line per file, as `sha256sum` writes them.
pub fn sha256sums(files: &[FileEntry]) -> String {
    files.iter().map(|f| format!("{}  {}\n", f.sha256, f.name)).collect()
}

/// JSON with object keys sorted and no whitespace between tokens (RFC 8785 for the strings and
/// integers a pack holds).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A copy of `value` whose objects were built in sorted key order, for pretty output that is
/// the same whatever map type serde_json was built with.
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let value = serde_json::json!({"b": [1, {"z": "é\n", "a": null}], "a": true});
        assert_eq!(canonical(&value), r#"{"a":true,"b":[1,{"a":null,"z":"é\n"}]}"#);
    }
}
