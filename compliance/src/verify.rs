//! Checking a pack offline: every file's SHA-256 against the manifest, that the folder holds
//! exactly the manifest's files and the signature files, that `SHA256SUMS` agrees with the
//! manifest, and the three signatures (minisign over `manifest.json` and `SHA256SUMS`, the DSSE
//! envelope) with a public key. Each problem is named; nothing stops at the first.

use std::collections::BTreeSet;
use std::path::Path;

use crate::keys::PublicKey;
use crate::manifest::{self, Manifest};
use crate::sign;

/// The outcome of checking a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Files whose hashes were checked.
    pub files_checked: usize,
    /// What is wrong, one sentence each, naming the file. Empty: the pack is intact.
    pub problems: Vec<String>,
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
}

impl Verification {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the pack in `dir` with `public`.
pub fn verify(dir: &Path, public: &PublicKey) -> Verification {
    let mut problems = Vec::new();
    let manifest_bytes = match std::fs::read(dir.join(manifest::MANIFEST)) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Verification {
                files_checked: 0,
                problems: vec![format!(
                    "{}: cannot be read ({e}); is {} a pack?",
                    manifest::MANIFEST,
                    dir.display()
                )],
                manifest: None,
            };
        }
    };
    let manifest: Option<Manifest> = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(format!("{}: not a pack manifest ({e})", manifest::MANIFEST));
            None
        }
    };
    check_signatures(dir, public, &manifest_bytes, &mut problems);
    let mut files_checked = 0;
    if let Some(manifest) = &manifest {
        check_listing(dir, manifest, &mut problems);
        for entry in &manifest.files {
            let path = dir.join(&entry.name);
            match manifest::hash_file(&path) {
                Ok((_, sha256)) if sha256 == entry.sha256 => files_checked += 1,
                Ok((_, sha256)) => {
                    files_checked += 1;
                    problems.push(format!(
                        "{}: changed — its SHA-256 is {sha256}, the manifest says {}",
                        entry.name, entry.sha256
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(format!("{}: missing — the manifest lists it", entry.name));
                }
                Err(e) => problems.push(format!("{}: cannot be read ({e})", entry.name)),
            }
        }
        check_sums(dir, manifest, &mut problems);
    }
    Verification {
        files_checked,
        problems,
        manifest,
    }
}

fn check_signatures(dir: &Path, public: &PublicKey, manifest_bytes: &[u8], problems: &mut Vec<String>) {
    let read = |name: &str, problems: &mut Vec<String>| match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Some(text),
        Err(e) => {
            problems.push(format!("{name}: cannot be read ({e}); the pack is not signed"));
            None
        }
    };
    if let Some(sig) = read(manifest::MANIFEST_MINISIG, problems)
        && let Err(e) = sign::verify_minisign(public, manifest_bytes, &sig)
    {
        problems.push(format!(
            "{}: {e} ({} was edited, or signed by another key)",
            manifest::MANIFEST_MINISIG,
            manifest::MANIFEST
        ));
    }
    if let Some(envelope) = read(manifest::DSSE, problems)
        && let Err(e) = sign::verify_dsse(public, manifest_bytes, &envelope)
    {
        problems.push(format!("{}: {e}", manifest::DSSE));
    }
    if let Some(sig) = read(manifest::SHA256SUMS_MINISIG, problems) {
        match std::fs::read(dir.join(manifest::SHA256SUMS)) {
            Ok(sums) => {
                if let Err(e) = sign::verify_minisign(public, &sums, &sig) {
                    problems.push(format!("{}: {e}", manifest::SHA256SUMS_MINISIG));
                }
            }
            Err(e) => problems.push(format!("{}: cannot be read ({e})", manifest::SHA256SUMS)),
        }
    }
}

/// Files added to or removed from the folder.
fn check_listing(dir: &Path, manifest: &Manifest, problems: &mut Vec<String>) {
    let expected: BTreeSet<&str> = manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .chain(manifest::SIGNATURE_FILES)
        .collect();
    let present: BTreeSet<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            problems.push(format!("{}: cannot be listed ({e})", dir.display()));
            return;
        }
    };
    for name in &present {
        if !expected.contains(name.as_str()) {
            problems.push(format!("{name}: added — not in the manifest"));
        }
    }
    // A missing signature file was reported when it could not be read; a missing listed file
    // when its hash could not be computed.
}

/// `SHA256SUMS` must say what the manifest says.
fn check_sums(dir: &Path, manifest: &Manifest, problems: &mut Vec<String>) {
    let Ok(text) = std::fs::read_to_string(dir.join(manifest::SHA256SUMS)) else {
        return;
    };
    let listed: Vec<_> = manifest
        .files
        .iter()
        .filter(|f| f.name != manifest::SHA256SUMS)
        .cloned()
        .collect();
    if text != manifest::sha256sums(&listed) {
        problems.push(format!(
            "{}: does not list the same files and hashes as {}",
            manifest::SHA256SUMS,
            manifest::MANIFEST
        ));
    }
}
