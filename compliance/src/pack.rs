//! Making a pack: the checks that come first, the files written into a temporary folder next
//! to the destination, the manifest and its signatures, and one rename at the end — a failed
//! pack leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use warehouse::{ReportingLevel, Retention, Warehouse};

use crate::facts::Facts;
use crate::keys::PackKey;
use crate::manifest::{self, FileEntry, Manifest, Period};
use crate::{ComplianceError, files, oscal, read, sign, summary};

/// What to put in a pack.
#[derive(Debug, Clone)]
pub struct PackRequest {
    /// The tenant.
    pub tenant: String,
    /// First instant of the period, inclusive.
    pub from: DateTime<Utc>,
    /// End of the period, exclusive.
    pub to: DateTime<Utc>,
    /// The tenant's reporting cap (devices below it are named in `coverage.csv`).
    pub cap: ReportingLevel,
    /// The tenant's retention windows.
    pub retention: Retention,
    /// Whether the control plane knows the tenant (it has keys). A tenant it does not know and
    /// the warehouse holds nothing of is refused as unknown.
    pub known_tenant: bool,
    /// Read the tables at these versions (by table name, as a manifest records them) instead
    /// of their latest: re-makes an earlier pack byte for byte.
    pub versions: Option<BTreeMap<String, u64>>,
    /// The support-approved requests made in the period, as of its end (from the control
    /// plane; this crate does not read it).
    pub support_requests: Vec<crate::SupportRequest>,
}

/// What a pack holds, for the caller to report and audit.
#[derive(Debug, Clone)]
pub struct PackSummary {
    /// The pack's folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// SHA-256 of `manifest.json` (hex): names the pack in the audit log.
    pub manifest_sha256: String,
    /// Elevations in the period.
    pub elevations: u64,
    /// Users who elevated.
    pub users: usize,
    /// Of which with unmanaged elevations.
    pub users_unmanaged: usize,
    /// Devices listed in `coverage.csv`.
    pub devices: usize,
    /// Controls whose finding is "not satisfied".
    pub not_satisfied: Vec<String>,
}

/// Removes a temporary folder unless it was kept.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes a signed pack for `request` in the new folder `out`.
pub async fn pack(
    warehouse: &Warehouse,
    request: &PackRequest,
    key: &PackKey,
    out: &Path,
) -> Result<PackSummary, ComplianceError> {
    if request.from >= request.to {
        return Err(ComplianceError::EmptyPeriod {
            from: request.from,
            to: request.to,
        });
    }
    let exists = out.exists();
    if exists {
        let mut entries = std::fs::read_dir(out).map_err(|_| ComplianceError::OutputNotEmpty(out.to_owned()))?;
        if entries.next().is_some() {
            return Err(ComplianceError::OutputNotEmpty(out.to_owned()));
        }
    }
    let name = out
        .file_name()
        .ok_or_else(|| ComplianceError::OutputNotEmpty(out.to_owned()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(ComplianceError::io(&parent))?;
    let mut partial = Partial {
        path: parent.join(format!(".{name}.partial-{:016x}", rand::random::<u64>())),
        keep: false,
    };
    std::fs::create_dir(&partial.path).map_err(ComplianceError::io(&partial.path))?;
    let mut summary = write_pack(warehouse, request, key, &partial.path).await?;
    if exists {
        std::fs::remove_dir(out).map_err(ComplianceError::io(out))?;
    }
    std::fs::rename(&partial.path, out).map_err(ComplianceError::io(out))?;
    partial.keep = true;
    summary.dir = out.to_owned();
    Ok(summary)
}

/// The data files in the order they are written (each may cite the ones before it).
const DATA_FILES: [&str; 6] = [
    files::COVERAGE,
    files::ELEVATIONS_CSV,
    files::ELEVATIONS_PARQUET,
    files::PRIVILEGED_USE,
    files::RETENTION,
    files::SUPPORT_REQUESTS,
];

async fn write_pack(
    warehouse: &Warehouse,
    request: &PackRequest,
    key: &PackKey,
    dir: &Path,
) -> Result<PackSummary, ComplianceError> {
    let (tenant, from, to) = (request.tenant.as_str(), request.from, request.to);
    let source = read::open(warehouse, tenant, request.versions.as_ref()).await?;
    let oldest = read::oldest(&source.ctx, tenant).await?;
    if !request.known_tenant && oldest.iter().all(|(_, o)| o.is_none()) {
        return Err(ComplianceError::UnknownTenant(tenant.to_owned()));
    }
    let elevations = files::elevations(&source.ctx, tenant, from, to, dir).await?;
    let users = read::privileged_use(&source.ctx, tenant, from, to).await?;
    files::privileged_use(dir, &users, &request.support_requests)?;
    files::support_requests(dir, &request.support_requests)?;
    let lookback = from - Duration::days(files::LOOKBACK_DAYS);
    let devices = read::devices(&source.ctx, tenant, lookback, from, to).await?;
    let coverage = files::coverage_rows(devices, request.cap, to);
    files::coverage(dir, &coverage)?;
    let retention = files::retention_rows(oldest, &request.retention, from, to);
    files::retention(dir, tenant, from, to, &retention)?;
    let facts = Facts {
        tenant: tenant.to_owned(),
        from,
        to,
        cap: request.cap,
        versions: source.versions.clone(),
        elevations,
        users,
        coverage,
        retention,
        support_requests: request.support_requests.clone(),
    };
    summary::write(dir, &facts)?;
    let mut entries = DATA_FILES
        .iter()
        .chain([&summary::SUMMARY])
        .map(|name| FileEntry::of(dir, name))
        .collect::<Result<Vec<_>, _>>()?;
    oscal::write(dir, &facts, &entries)?;
    entries.push(FileEntry::of(dir, oscal::ASSESSMENT_RESULTS)?);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    files::write_file(dir, manifest::SHA256SUMS, manifest::sha256sums(&entries).as_bytes())?;
    entries.push(FileEntry::of(dir, manifest::SHA256SUMS)?);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let manifest = Manifest {
        format: manifest::FORMAT.to_owned(),
        generator: crate::GENERATOR.to_owned(),
        tenant: tenant.to_owned(),
        period: Period {
            from: files::instant_text(from),
            to: files::instant_text(to),
        },
        table_versions: source.versions,
        key_id: key.public().id_hex(),
        files: entries,
    };
    let bytes = manifest.to_bytes();
    files::write_file(dir, manifest::MANIFEST, &bytes)?;
    let comment = format!(
        "elevation compliance pack tenant={tenant} from={} to={}",
        manifest.period.from, manifest.period.to
    );
    files::write_file(
        dir,
        manifest::MANIFEST_MINISIG,
        sign::minisign(key, &bytes, &comment).as_bytes(),
    )?;
    files::write_file(dir, manifest::DSSE, sign::dsse(key, &bytes).as_bytes())?;
    let sums =
        std::fs::read(dir.join(manifest::SHA256SUMS)).map_err(ComplianceError::io(dir.join(manifest::SHA256SUMS)))?;
    files::write_file(
        dir,
        manifest::SHA256SUMS_MINISIG,
        sign::minisign(key, &sums, &comment).as_bytes(),
    )?;
    for name in manifest
        .files
        .iter()
        .map(|f| f.name.as_str())
        .chain(manifest::SIGNATURE_FILES)
    {
        let path = dir.join(name);
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(ComplianceError::io(&path))?;
    }
    let not_satisfied = facts
        .findings()
        .into_iter()
        .filter(|f| !f.satisfied)
        .map(|f| f.control.to_owned())
        .collect();
    Ok(PackSummary {
        dir: dir.to_owned(),
        manifest_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        elevations: facts.elevations.rows,
        users: facts.users.len(),
        users_unmanaged: facts.users_unmanaged(),
        devices: facts.coverage.len(),
        not_satisfied,
        manifest,
    })
}

/// Makes a pack in a temporary folder and returns it as a `.tar.gz` (the admin API's answer),
/// with its summary. The folder is removed.
pub async fn pack_archive(
    warehouse: &Warehouse,
    request: &PackRequest,
    key: &PackKey,
    scratch: &Path,
) -> Result<(Vec<u8>, PackSummary), ComplianceError> {
    let name = crate::archive::folder_name(&request.tenant, request.from, request.to);
    let holder = Partial {
        path: scratch.join(format!(".elevation-pack-{:016x}", rand::random::<u64>())),
        keep: false,
    };
    std::fs::create_dir_all(&holder.path).map_err(ComplianceError::io(&holder.path))?;
    let dir = holder.path.join(&name);
    let summary = pack(warehouse, request, key, &dir).await?;
    let bytes = crate::archive::tar_gz(&dir, &name)?;
    Ok((bytes, summary))
}
