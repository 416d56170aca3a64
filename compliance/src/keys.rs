//! The pack's signing key: Ed25519, created once by `elevation compliance keygen` and kept in
//! the data folder (readable by its owner only); its public half in minisign's public-key
//! format, which `minisign -V -p FILE` reads and [`crate::verify`] takes.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::ComplianceError;

/// The signing key's file name in the data folder.
pub const KEY_FILE: &str = "compliance-signing.key";

const KEY_HEADER: &str = "elevation compliance signing key: Ed25519 seed, base64. Keep it secret.";

/// The key that signs packs.
#[derive(Debug, Clone)]
pub struct PackKey {
    pub(crate) signing: SigningKey,
    public: PublicKey,
}

/// A public key that verifies packs, with minisign's 8-byte key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) key: VerifyingKey,
    pub(crate) id: [u8; 8],
}

impl PackKey {
    fn from_seed(seed: [u8; 32]) -> PackKey {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey::new(signing.verifying_key());
        PackKey { signing, public }
    }

    /// Its public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

impl PublicKey {
    fn new(key: VerifyingKey) -> PublicKey {
        // minisign picks a random id; ours is derived from the key, so it never changes.
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        PublicKey { key, id }
    }

    /// The key id as minisign prints it (16 hex digits).
    pub fn id_hex(&self) -> String {
        format!("{:016X}", u64::from_le_bytes(self.id))
    }

    /// The public key as one base64 line (minisign's `-P` argument).
    pub fn base64(&self) -> String {
        let mut blob = Vec::with_capacity(42);
        blob.extend_from_slice(b"Ed");
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(self.key.as_bytes());
        STANDARD.encode(blob)
    }

    /// The public key file minisign writes (`-p FILE`).
    pub fn minisign_file(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.id_hex(),
            self.base64()
        )
    }

    /// Reads a public key: minisign's file, or its one base64 line.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or("no key in it: expected minisign's public key (a base64 line starting RW)")?;
        let blob = STANDARD
            .decode(line)
            .map_err(|e| format!("the key line is not base64: {e}"))?;
        if blob.len() != 42 || &blob[..2] != b"Ed" {
            return Err("not a minisign Ed25519 public key (42 bytes starting \"Ed\")".into());
        }
        let bytes: [u8; 32] = blob[10..].try_into().expect("32 bytes");
        let key = VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&blob[2..10]);
        Ok(PublicKey { key, id })
    }

    /// Reads a public key file.
    pub fn read(path: &Path) -> Result<PublicKey, ComplianceError> {
        let text = std::fs::read_to_string(path).map_err(ComplianceError::io(path))?;
        PublicKey::parse(&text).map_err(|reason| ComplianceError::BadKey {
            path: path.to_owned(),
            reason,
        })
    }
}

/// Where the signing key of a data folder is kept.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// Creates the signing key in `data_dir` (mode 0600); refuses to replace one.
pub fn keygen(data_dir: &Path) -> Result<PackKey, ComplianceError> {
    let path = key_path(data_dir);
    if path.exists() {
        return Err(ComplianceError::KeyExists(path));
    }
    std::fs::create_dir_all(data_dir).map_err(ComplianceError::io(data_dir))?;
    let seed: [u8; 32] = rand::random();
    let key = PackKey::from_seed(seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => ComplianceError::KeyExists(path.clone()),
        _ => ComplianceError::Io {
            path: path.clone(),
            source,
        },
    })?;
    let text = format!("{KEY_HEADER}\n{}\n", STANDARD.encode(seed));
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(ComplianceError::io(&path))?;
    Ok(key)
}

/// Loads the signing key of `data_dir`.
pub fn load(data_dir: &Path) -> Result<PackKey, ComplianceError> {
    let path = key_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ComplianceError::NoSigningKey(path)),
        Err(source) => return Err(ComplianceError::Io { path, source }),
    };
    let bad = |reason: &str| ComplianceError::BadKey {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let line = text
        .lines()
        .nth(1)
        .ok_or_else(|| bad("expected a header line and a base64 line"))?;
    let seed = STANDARD
        .decode(line.trim())
        .map_err(|_| bad("the key line is not base64"))?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| bad("the key is not 32 bytes"))?;
    Ok(PackKey::from_seed(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_then_load_gives_the_same_key_and_refuses_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let made = keygen(dir.path()).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(made.public(), loaded.public());
        assert!(matches!(keygen(dir.path()), Err(ComplianceError::KeyExists(_))));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = made.public().minisign_file();
        assert_eq!(&PublicKey::parse(&text).unwrap(), made.public());
        assert!(made.public().base64().starts_with("RW"));
    }

    #[test]
    fn a_missing_key_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("elevation compliance keygen"), "{err}");
    }
}
