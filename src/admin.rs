//! `elevation keys`, `elevation tenant` and `elevation audit`, and opening the control plane
//! for any command: glue around `control`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use control::{AuditContext, ControlDb, ControlOptions, ControlPlane, KeyKind, Role};

use crate::DataArgs;

/// Who runs a command that changes something: the audit log's actor.
#[derive(Debug, Args)]
pub(crate) struct Acting {
    /// Your user principal name, recorded in the audit log as who did it (default
    /// cli:<os user>@<hostname>).
    #[arg(long, env = "ELEVATION_ACTOR", value_name = "UPN")]
    actor: Option<String>,
}

impl Acting {
    /// The audit context of this command: its actor and a fresh correlation id.
    pub(crate) fn context(&self) -> AuditContext {
        AuditContext::cli(self.actor.as_deref())
    }
}

/// The control-plane database of `data`: `--control-db`, or `DATA_DIR/control.db`.
pub(crate) fn control_db(data: &DataArgs) -> ControlDb {
    match &data.control_db {
        Some(text) => ControlDb::parse(text),
        None => ControlDb::default_in(&data.data_dir),
    }
}

/// Opens the control plane of `data` with `options`, moving the JSON files of an earlier
/// version of the data folder into it first.
pub(crate) async fn open_with(data: &DataArgs, options: ControlOptions) -> Result<Arc<ControlPlane>> {
    let db = control_db(data);
    let control = ControlPlane::open(&db, options)
        .await
        .with_context(|| format!("opening the control-plane database {}", db.display()))?;
    if data.data_dir.exists()
        && let Some(moved) = control.migrate_json_files(&data.data_dir).await?
    {
        eprintln!(
            "moved {} keys, settings of {} tenants and {} rules policies from the JSON files of {} into {}; \
             the files are kept as *.migrated",
            moved.keys,
            moved.tenants,
            moved.policies,
            data.data_dir.display(),
            db.display()
        );
    }
    Ok(Arc::new(control))
}

/// Opens the control plane of `data` with the default cache settings.
pub(crate) async fn open(data: &DataArgs) -> Result<Arc<ControlPlane>> {
    open_with(data, ControlOptions::default()).await
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key for --tenant; the key is printed once, alone on the last line.
    Create {
        /// agent (uploads) or admin (reports, with a role).
        #[arg(long, value_parser = ["agent", "admin"])]
        kind: String,
        /// Role of an admin key: endpoint-privilege-manager, endpoint-security-manager,
        /// endpoint-privilege-reader, read-only-operator.
        #[arg(long)]
        role: Option<String>,
        /// The person who holds an admin key (user principal name): the audit log's actor for
        /// everything done with it.
        #[arg(long, value_name = "UPN")]
        upn: Option<String>,
        /// Bind an agent key to one device (its Intune device id): it then asks for and reads
        /// elevation approvals of that device only.
        #[arg(long, value_name = "DEVICE_ID")]
        device: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// List every key (never the secrets).
    List,
    /// Revoke a key by id: every node refuses it within about a second.
    Revoke {
        /// The key id shown by `keys list`.
        id: String,
        #[command(flatten)]
        acting: Acting,
    },
}

/// `elevation keys …`.
pub(crate) async fn keys(data: &DataArgs, command: KeysCommand) -> Result<()> {
    let control = open(data).await?;
    match command {
        KeysCommand::Create {
            kind,
            role,
            upn,
            device,
            acting,
        } => {
            let kind = KeyKind::parse(&kind)?;
            let role = role.as_deref().map(Role::parse).transpose()?;
            let (secret, record) = control
                .create_key_for(
                    &acting.context(),
                    &data.tenant,
                    kind,
                    role,
                    upn.as_deref(),
                    device.as_deref(),
                )
                .await?;
            let role = record
                .role
                .map(|r| format!(", role {}", r.as_str()))
                .unwrap_or_default();
            let upn = record
                .upn
                .as_deref()
                .map(|u| format!(", held by {u}"))
                .unwrap_or_default();
            let device = record
                .device_id
                .as_deref()
                .map(|d| format!(", for device {d} only"))
                .unwrap_or_default();
            println!(
                "created {} key {} for tenant {}{role}{upn}{device}; it is shown only this once:",
                record.kind.short(),
                record.id,
                record.tenant
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            println!(
                "{:<18} {:<16} {:<6} {:<28} {:<24} {:<20} status",
                "id", "tenant", "kind", "role", "upn", "created"
            );
            for k in control.list_keys(None).await? {
                println!(
                    "{:<18} {:<16} {:<6} {:<28} {:<24} {:<20} {}",
                    k.id,
                    k.tenant,
                    k.kind.short(),
                    k.role.map(|r| r.as_str()).unwrap_or("-"),
                    k.upn.as_deref().unwrap_or("-"),
                    k.created_at.format("%Y-%m-%d %H:%M:%S"),
                    k.revoked_at
                        .map(|at| format!("revoked {}", at.format("%Y-%m-%d %H:%M:%S")))
                        .unwrap_or("active".into())
                );
            }
        }
        KeysCommand::Revoke { id, acting } => {
            let record = control.revoke_key(&acting.context(), None, &id).await?;
            println!("revoked key {} of tenant {}", record.id, record.tenant);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Show the tenant's settings.
    Show,
    /// Change the tenant's settings.
    Set {
        /// The highest reporting level accepted from the tenant's devices: none, diagnostic,
        /// managed or all. Devices declaring more are capped; the rest is counted, never stored.
        #[arg(long)]
        reporting_cap: Option<String>,
        /// Days of raw elevations kept (default 400).
        #[arg(long)]
        elevation_retention_days: Option<u32>,
        /// Days of diagnostic events kept (default 90).
        #[arg(long)]
        diagnostic_retention_days: Option<u32>,
        /// Hours an approved elevation request lasts when the approver names none (default 24).
        #[arg(long)]
        approval_hours: Option<u32>,
        /// The most hours an approver may give one approval (default 168).
        #[arg(long)]
        max_approval_hours: Option<u32>,
        /// Hours a request waits for a decision before it expires (default 48).
        #[arg(long)]
        request_expiry_hours: Option<u32>,
        #[command(flatten)]
        acting: Acting,
    },
}

/// `elevation tenant …`.
pub(crate) async fn tenant(data: &DataArgs, command: TenantCommand) -> Result<()> {
    let control = open(data).await?;
    let settings = match command {
        TenantCommand::Show => control.settings_of(&data.tenant).await?,
        TenantCommand::Set {
            reporting_cap,
            elevation_retention_days,
            diagnostic_retention_days,
            approval_hours,
            max_approval_hours,
            request_expiry_hours,
            acting,
        } => {
            let change = control::SettingsChange {
                reporting_cap: reporting_cap
                    .as_deref()
                    .map(warehouse::ReportingLevel::parse)
                    .transpose()?,
                elevation_retention_days,
                diagnostic_retention_days,
                approval_hours,
                max_approval_hours,
                request_expiry_hours,
            };
            control
                .update_settings(&acting.context(), &data.tenant, |s| change.apply(s))
                .await?
        }
    };
    println!(
        "tenant {}: reporting cap {}, elevations kept {} days, diagnostics kept {} days; \
         approvals last {} h (at most {} h), requests expire after {} h",
        data.tenant,
        settings.reporting_cap.as_str(),
        settings.retention_days(warehouse::Table::Elevations),
        settings.retention_days(warehouse::Table::Diagnostics),
        settings.approval_hours(),
        settings.max_approval_hours(),
        settings.request_expiry_hours()
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// The audit log of --tenant, oldest first.
    List {
        /// From this instant (RFC 3339 or YYYY-MM-DD), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Before this instant (RFC 3339 or YYYY-MM-DD), exclusive.
        #[arg(long)]
        to: Option<String>,
        /// Only what this person did (their UPN, or cli:user@host).
        #[arg(long, value_name = "UPN")]
        actor: Option<String>,
        /// Only this activity: createKey, revokeKey, setTenantSettings, importRulesPolicy,
        /// exportRules, produceCompliancePack, migrateJsonFiles.
        #[arg(long)]
        activity: Option<String>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<String>,
        /// table, json or csv.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
    },
    /// Recompute every tenant's hash chain; exit 1 naming the first entry that was edited,
    /// removed or reordered.
    Verify,
}

/// `elevation audit …`.
pub(crate) async fn audit(data: &DataArgs, command: AuditCommand) -> Result<ExitCode> {
    let control = open(data).await?;
    match command {
        AuditCommand::List {
            from,
            to,
            actor,
            activity,
            limit,
            format,
        } => {
            let params: Vec<(String, String)> = [
                ("from", from),
                ("to", to),
                ("actor", actor),
                ("activity", activity),
                ("limit", limit),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
            let filter = dashboards::audit_filter(&params).map_err(anyhow::Error::msg)?;
            let events = control.audit_list(&data.tenant, &filter).await?;
            print!("{}", crate::audit_render::render(&events, &format)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify => {
            let verifications = control.audit_verify(None).await?;
            let mut broken = false;
            if verifications.is_empty() {
                println!("the audit log is empty");
            }
            for v in verifications {
                match v.problems.first() {
                    None => println!(
                        "tenant {}: {} entries, chain intact; head {} {}",
                        v.tenant, v.entries, v.head_seq, v.head_hash
                    ),
                    Some(first) => {
                        broken = true;
                        println!("tenant {}: the chain is BROKEN: {first}", v.tenant);
                        for other in &v.problems[1..] {
                            println!("  also: {other}");
                        }
                    }
                }
            }
            Ok(if broken { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}
