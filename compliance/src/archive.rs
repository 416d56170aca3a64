//! A pack as one `.tar.gz`: the folder's files under one folder name, in name order, with
//! fixed times, owners and modes, so the same pack gives the same archive.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::ComplianceError;

/// The folder name of a pack in an archive: `compliance-TENANT-FROM-TO`.
pub fn folder_name(tenant: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let safe: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "compliance-{safe}-{}-{}",
        from.format("%Y%m%dT%H%M%SZ"),
        to.format("%Y%m%dT%H%M%SZ")
    )
}

/// The files of `dir` as a gzip-compressed tar under `name/`.
pub fn tar_gz(dir: &Path, name: &str) -> Result<Vec<u8>, ComplianceError> {
    let fail = |e: std::io::Error| ComplianceError::Io {
        path: dir.to_owned(),
        source: e,
    };
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(fail)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    files.sort();
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    tar.mode(tar::HeaderMode::Deterministic);
    for file in files {
        let path = dir.join(&file);
        let data = std::fs::read(&path).map_err(ComplianceError::io(&path))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append_data(&mut header, format!("{name}/{file}"), data.as_slice())
            .map_err(fail)?;
    }
    let mut gz = tar.into_inner().map_err(fail)?;
    gz.flush().map_err(fail)?;
    gz.finish().map_err(fail)
}
