//! `elevation compliance …`: evidence packs, their signing key and their verification; glue
//! around the `compliance` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use compliance::PublicKey;

use crate::DataArgs;
use crate::admin::Acting;

#[derive(Debug, Subcommand)]
pub(crate) enum ComplianceCommand {
    /// Make a signed evidence pack of --tenant for a period, in a new folder.
    Pack(PackArgs),
    /// Check a pack: every file's SHA-256, no file added or removed, the signatures; exit 1
    /// naming each problem.
    Verify(VerifyArgs),
    /// Create the key that signs packs, in the data folder (once); prints its public key.
    Keygen,
    /// Print the public key that verifies packs, in minisign's format.
    PublicKey {
        /// Write it to this file instead (what auditors pass to minisign -p).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PackArgs {
    /// Start of the period, inclusive: RFC 3339 or YYYY-MM-DD.
    #[arg(long)]
    from: String,
    /// End of the period, exclusive: RFC 3339 or YYYY-MM-DD (midnight at its start).
    #[arg(long)]
    to: String,
    /// The pack's folder: must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Read the tables at the versions this earlier pack's manifest.json records (re-makes
    /// that pack byte for byte while those versions are still held).
    #[arg(long, value_name = "MANIFEST")]
    versions_from: Option<PathBuf>,
    #[command(flatten)]
    acting: Acting,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The pack's folder.
    dir: PathBuf,
    /// The public key (minisign format); default: the data folder's signing key.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

/// Runs one `elevation compliance` command.
pub(crate) async fn run(data: &DataArgs, command: ComplianceCommand) -> Result<ExitCode> {
    match command {
        ComplianceCommand::Pack(args) => pack(data, &args).await.map(|()| ExitCode::SUCCESS),
        ComplianceCommand::Verify(args) => verify(data, &args),
        ComplianceCommand::Keygen => {
            let key = compliance::keys::keygen(&data.data_dir)?;
            println!(
                "signing key created: {} (keep it secret; readable by its owner only)",
                compliance::keys::key_path(&data.data_dir).display()
            );
            println!("public key, for auditors (minisign format; also `elevation compliance public-key`):");
            print!("{}", key.public().minisign_file());
            Ok(ExitCode::SUCCESS)
        }
        ComplianceCommand::PublicKey { out } => {
            let key = compliance::keys::load(&data.data_dir)?;
            let text = key.public().minisign_file();
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                    println!("public key {} written to {}", key.public().id_hex(), path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The table versions an earlier pack's manifest records.
fn versions_of(path: &Path) -> Result<BTreeMap<String, u64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: compliance::Manifest =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a pack manifest", path.display()))?;
    Ok(manifest.table_versions)
}

/// Makes a pack and records it in the audit log; a pack that cannot be audited is removed.
pub(crate) async fn pack(data: &DataArgs, args: &PackArgs) -> Result<()> {
    let from = queries::request::parse_instant("--from", &args.from)?;
    let to = queries::request::parse_instant("--to", &args.to)?;
    let key = compliance::keys::load(&data.data_dir)?;
    let versions = args.versions_from.as_deref().map(versions_of).transpose()?;
    let control = crate::admin::open(data).await?;
    let request = dashboards::pack_request(&control, &data.tenant, from, to, versions).await?;
    let warehouse = warehouse::Warehouse::new(crate::node::location(data)?);
    let summary = compliance::pack(&warehouse, &request, &key, &args.out).await?;
    let draft = control::audit::compliance_pack_draft(from, to, &summary.manifest_sha256, summary.elevations);
    if let Err(e) = control.record(&args.acting.context(), &data.tenant, draft).await {
        let _ = std::fs::remove_dir_all(&summary.dir);
        return Err(e).context("recording the pack in the audit log (the pack was removed)");
    }
    print_summary(&summary, key.public());
    Ok(())
}

pub(crate) fn print_summary(summary: &compliance::PackSummary, public: &PublicKey) {
    let m = &summary.manifest;
    println!(
        "compliance pack of {} from {} to {}: {}",
        m.tenant,
        m.period.from,
        m.period.to,
        summary.dir.display()
    );
    println!(
        "  {} elevations by {} users ({} with unmanaged elevations) on {} devices",
        summary.elevations, summary.users, summary.users_unmanaged, summary.devices
    );
    let versions: Vec<String> = m.table_versions.iter().map(|(t, v)| format!("{t} {v}")).collect();
    println!("  tables read at versions: {}", versions.join(", "));
    if summary.not_satisfied.is_empty() {
        println!("  every finding satisfied");
    } else {
        println!("  not satisfied: {}", summary.not_satisfied.join(", "));
    }
    println!(
        "  signed by key {}; check it with `elevation compliance verify {}`",
        public.id_hex(),
        summary.dir.display()
    );
}

fn verify(data: &DataArgs, args: &VerifyArgs) -> Result<ExitCode> {
    let public = match &args.public_key {
        Some(path) => PublicKey::read(path)?,
        None => compliance::keys::load(&data.data_dir)
            .context("no --public-key given, and the data folder has no signing key to take it from")?
            .public()
            .clone(),
    };
    let verification = compliance::verify(&args.dir, &public);
    if verification.ok() {
        println!(
            "pack intact: {} files match manifest.json; the signatures verify with key {}",
            verification.files_checked,
            public.id_hex()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("pack NOT intact ({}):", args.dir.display());
    for problem in &verification.problems {
        println!("  {problem}");
    }
    Ok(ExitCode::FAILURE)
}
