//! Signatures over a pack's manifest, in two formats auditors' tools read:
//!
//! * minisign (`*.minisig`), prehashed (`ED`): Ed25519 over BLAKE2b-512 of the file, then a
//!   global signature over that signature and the trusted comment. Debian's `minisign -Vm
//!   FILE -p KEY` checks it.
//! * a DSSE envelope (`manifest.dsse.json`): Ed25519 over the pre-authentication encoding
//!   `"DSSEv1" SP len(type) SP type SP len(body) SP body` of the manifest.
//!
//! Ed25519 signatures are deterministic, so the same manifest and key give the same bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use blake2::{Blake2b512, Digest};
use ed25519_dalek::{Signature, Signer};

use crate::keys::{PackKey, PublicKey};

/// The DSSE payload type of a pack manifest.
pub const PAYLOAD_TYPE: &str = "application/vnd.elevation.compliance-manifest+json";

/// minisign's signature of `data`, prehashed, with `trusted_comment` (one line).
pub fn minisign(key: &PackKey, data: &[u8], trusted_comment: &str) -> String {
    let public = key.public();
    let signature = key.signing.sign(&Blake2b512::digest(data)).to_bytes();
    let mut blob = Vec::with_capacity(74);
    blob.extend_from_slice(b"ED");
    blob.extend_from_slice(&public.id);
    blob.extend_from_slice(&signature);
    let mut global = signature.to_vec();
    global.extend_from_slice(trusted_comment.as_bytes());
    let global = key.signing.sign(&global).to_bytes();
    format!(
        "untrusted comment: signature from elevation compliance key {}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
        public.id_hex(),
        STANDARD.encode(blob),
        STANDARD.encode(global)
    )
}

/// Checks a minisign signature of `data`; the error says what does not match.
pub fn verify_minisign(public: &PublicKey, data: &[u8], minisig: &str) -> Result<(), String> {
    let lines: Vec<&str> = minisig.lines().collect();
    if lines.len() < 4 || !lines[2].starts_with("trusted comment: ") {
        return Err("not a minisign signature file (four lines expected)".into());
    }
    let blob = STANDARD
        .decode(lines[1].trim())
        .map_err(|_| "the signature line is not base64".to_owned())?;
    if blob.len() != 74 {
        return Err("the signature line is not 74 bytes".into());
    }
    let id: [u8; 8] = blob[2..10].try_into().expect("8 bytes");
    if id != public.id {
        let other = PublicKey { id, ..public.clone() };
        return Err(format!(
            "signed by key {}, not by the public key given ({})",
            other.id_hex(),
            public.id_hex()
        ));
    }
    let signature = Signature::from_slice(&blob[10..]).map_err(|e| e.to_string())?;
    let signed = match &blob[..2] {
        b"ED" => Blake2b512::digest(data).to_vec(),
        b"Ed" => data.to_vec(),
        _ => return Err("unknown signature algorithm".into()),
    };
    public
        .key
        .verify_strict(&signed, &signature)
        .map_err(|_| "the signature does not match the file: the file was changed after it was signed".to_owned())?;
    let comment = &lines[2]["trusted comment: ".len()..];
    let global = STANDARD
        .decode(lines[3].trim())
        .ok()
        .and_then(|g| Signature::from_slice(&g).ok())
        .ok_or("the global signature line is not a base64 signature")?;
    let mut message = signature.to_bytes().to_vec();
    message.extend_from_slice(comment.as_bytes());
    public
        .key
        .verify_strict(&message, &global)
        .map_err(|_| "the trusted comment was changed after it was signed".to_owned())
}

/// DSSE's pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope of `payload`, as canonical JSON with a final newline.
pub fn dsse(key: &PackKey, payload: &[u8]) -> String {
    let signature = key.signing.sign(&pae(PAYLOAD_TYPE, payload)).to_bytes();
    let envelope = serde_json::json!({
        "payload": STANDARD.encode(payload),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{ "keyid": key.public().id_hex(), "sig": STANDARD.encode(signature) }],
    });
    let mut text = crate::manifest::canonical(&envelope);
    text.push('\n');
    text
}

/// Checks a DSSE envelope: it carries exactly `payload` and one of its signatures verifies.
pub fn verify_dsse(public: &PublicKey, payload: &[u8], envelope: &str) -> Result<(), String> {
    let envelope: serde_json::Value =
        serde_json::from_str(envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let field = |name: &str| envelope.get(name).and_then(|v| v.as_str());
    let carried = field("payload")
        .and_then(|p| STANDARD.decode(p).ok())
        .ok_or("no base64 payload")?;
    if carried != payload {
        return Err("the envelope carries a different manifest than manifest.json".into());
    }
    let payload_type = field("payloadType").ok_or("no payloadType")?;
    let message = pae(payload_type, payload);
    let signatures = envelope
        .get("signatures")
        .and_then(|s| s.as_array())
        .ok_or("no signatures")?;
    let verified = signatures.iter().any(|s| {
        s.get("sig")
            .and_then(|v| v.as_str())
            .and_then(|v| STANDARD.decode(v).ok())
            .and_then(|v| Signature::from_slice(&v).ok())
            .is_some_and(|sig| public.key.verify_strict(&message, &sig).is_ok())
    });
    if verified {
        Ok(())
    } else {
        Err(format!(
            "no signature in it verifies with the public key given ({}): signed by another key, or edited",
            public.id_hex()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_test_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn signatures_verify_and_a_changed_byte_or_another_key_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::keys::keygen(&dir.path().join("a")).unwrap();
        let other = crate::keys::keygen(&dir.path().join("b")).unwrap();
        let data = b"{\"manifest\":1}";
        let sig = minisign(&key, data, "period 2026-11");
        verify_minisign(key.public(), data, &sig).unwrap();
        assert!(verify_minisign(key.public(), b"{\"manifest\":2}", &sig).is_err());
        assert!(
            verify_minisign(other.public(), data, &sig)
                .unwrap_err()
                .contains("signed by key")
        );
        let edited = sig.replace("period 2026-11", "period 2026-12");
        assert!(
            verify_minisign(key.public(), data, &edited)
                .unwrap_err()
                .contains("trusted comment")
        );
        let envelope = dsse(&key, data);
        verify_dsse(key.public(), data, &envelope).unwrap();
        assert!(verify_dsse(other.public(), data, &envelope).is_err());
        assert!(verify_dsse(key.public(), b"other", &envelope).is_err());
        // Deterministic: the same input signs to the same bytes.
        assert_eq!(sig, minisign(&key, data, "period 2026-11"));
    }
}
