//! `elevation suggest`, `elevation export rules` and `elevation rules import|list`: options
//! parsed here, everything else done by `queries` and `warehouse`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use control::{AuditContext, ControlPlane};
use warehouse::Clock;

use crate::DataArgs;
use crate::admin::Acting;

/// What suggestions look at, shared by `suggest` and `export rules`.
#[derive(Debug, Args)]
pub(crate) struct SuggestOptions {
    /// Start of the window, inclusive: RFC 3339 or YYYY-MM-DD (default: 30 days before --to).
    #[arg(long)]
    from: Option<String>,
    /// End of the window, exclusive: RFC 3339 or YYYY-MM-DD (default now).
    #[arg(long)]
    to: Option<String>,
    /// Only this kind (repeatable): newRule, supportApprovedToUserConfirmed,
    /// hashChurnToCertificate, staleRule, frequentlyDenied, childProcess, readiness.
    #[arg(long)]
    kind: Vec<String>,
    /// A publisher (companyName) trusted enough for automatic rules (repeatable), besides
    /// those the tenant's automatic rules already elevate.
    #[arg(long)]
    trusted_publisher: Vec<String>,
    /// Change a threshold (repeatable), e.g. --threshold minEvents=20; the names and defaults
    /// are in the README.
    #[arg(long = "threshold", value_name = "NAME=VALUE")]
    thresholds: Vec<String>,
    /// Show or export at most this many suggestions (best first).
    #[arg(long)]
    limit: Option<String>,
}

impl SuggestOptions {
    fn params(&self, format: &str) -> Result<Vec<(String, String)>> {
        let mut params: Vec<(String, String)> = [("from", &self.from), ("to", &self.to), ("limit", &self.limit)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
            .collect();
        params.extend(self.kind.iter().map(|k| ("kind".to_owned(), k.clone())));
        params.extend(
            self.trusted_publisher
                .iter()
                .map(|p| ("trustedPublisher".to_owned(), p.clone())),
        );
        for threshold in &self.thresholds {
            let (name, value) = threshold
                .split_once('=')
                .with_context(|| format!("--threshold {threshold:?} must look like NAME=VALUE, e.g. minEvents=20"))?;
            params.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        params.push(("format".to_owned(), format.to_owned()));
        Ok(params)
    }

    /// Runs the suggestions for the tenant of `data`.
    async fn run(
        &self,
        data: &DataArgs,
        format: &str,
    ) -> Result<(queries::suggest::ParsedSuggest, Vec<queries::suggest::Suggestion>)> {
        let control = crate::admin::open(data).await?;
        let mut parsed = queries::suggest::SuggestRequest::parse(
            &data.tenant,
            &self.params(format)?,
            warehouse::SystemClock.now(),
            Vec::new(),
        )?;
        dashboards::suggest_inputs(&control, &mut parsed.request).await?;
        let warehouse = warehouse::Warehouse::new(crate::node::location(data)?);
        let found = parsed.run(&warehouse).await?;
        Ok((parsed, found))
    }
}

#[derive(Debug, Args)]
pub(crate) struct SuggestArgs {
    #[command(flatten)]
    options: SuggestOptions,
    /// table, json or csv.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    format: String,
}

/// `elevation suggest`.
pub(crate) async fn suggest(data: &DataArgs, args: &SuggestArgs) -> Result<()> {
    let (parsed, found) = args.options.run(data, &args.format).await?;
    let request = &parsed.request;
    let text = match args.format.as_str() {
        "json" => {
            let json = queries::export::suggestions_json(&found, &request.thresholds, request.from, request.to);
            format!("{}\n", serde_json::to_string_pretty(&json)?)
        }
        "csv" => queries::export::suggestions_csv(&found)?,
        _ => queries::export::suggestions_table(&found),
    };
    print!("{text}");
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// The proposed rules of the suggestions as a policy to import.
    Rules(ExportRulesArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportRulesArgs {
    #[command(flatten)]
    options: SuggestOptions,
    /// intune (a Graph configurationPolicies body), epmanager-csv (EPManager's import CSV) or
    /// json (our own, with the evidence).
    #[arg(long, default_value = "intune", value_parser = ["intune", "epmanager-csv", "json"])]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    acting: Acting,
}

/// `elevation export rules`.
pub(crate) async fn export_rules(data: &DataArgs, args: &ExportRulesArgs) -> Result<()> {
    let (parsed, found) = args.options.run(data, &args.format).await?;
    let format = queries::export::ExportFormat::parse(&args.format)?;
    let request = &parsed.request;
    let text = queries::export::export(format, &found, &request.thresholds, request.from, request.to)?;
    // Recorded before it is written: an export that cannot be audited is not made.
    let draft = control::audit::export_draft(format.file_name(), request.from, request.to, found.len());
    let control = crate::admin::open(data).await?;
    control.record(&args.acting.context(), &data.tenant, draft).await?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            let rules = found.iter().filter(|s| s.proposed_rule.is_some()).count();
            println!("wrote {rules} proposed rules to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// Import Intune elevation rules policies (JSON as exported from Intune or by `elevation
    /// export rules --format intune`) for --tenant, so suggestions know rules that never fired.
    /// Importing a policy of the same name again replaces it.
    Import {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        acting: Acting,
    },
    /// List the imported policies and their rules.
    List,
}

/// Reads an Intune elevation rules policy file and imports it for `tenant`. Returns the
/// policy's name, its number of rules and whether it replaced an earlier import.
pub(crate) async fn import_policy_file(
    control: &ControlPlane,
    context: &AuditContext,
    tenant: &str,
    file: &std::path::Path,
) -> Result<(String, usize, bool)> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let json: serde_json::Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    let imported =
        warehouse::policy::RulesPolicy::read_intune(&json).with_context(|| format!("importing {}", file.display()))?;
    for warning in &imported.warnings {
        eprintln!("warning: {}: {warning}", file.display());
    }
    let policy = imported.policy;
    let (name, rules) = (policy.name.clone(), policy.rules.len());
    let replaced = control.import_policy(context, tenant, &policy).await?;
    Ok((name, rules, replaced))
}

/// `elevation rules …`.
pub(crate) async fn rules(data: &DataArgs, command: &RulesCommand) -> Result<()> {
    let control = crate::admin::open(data).await?;
    match command {
        RulesCommand::Import { files, acting } => {
            let context = acting.context();
            for file in files {
                let (name, rules, replaced) = import_policy_file(&control, &context, &data.tenant, file).await?;
                println!(
                    "{} policy {name:?} with {rules} rules for tenant {}",
                    if replaced { "replaced" } else { "imported" },
                    data.tenant
                );
            }
        }
        RulesCommand::List => {
            for policy in control.imported_policies(&data.tenant).await? {
                println!("{} ({} rules)", policy.name, policy.rules.len());
                for rule in &policy.rules {
                    let matcher = match (&rule.file_hash, &rule.certificate) {
                        (Some(hash), _) => format!("hash {}…", hash.chars().take(12).collect::<String>()),
                        (None, Some(_)) => format!(
                            "certificate, from version {}",
                            rule.min_version.as_deref().unwrap_or("any")
                        ),
                        (None, None) => "file name only".to_owned(),
                    };
                    println!(
                        "  {:<48} {:<22} {:<18} {matcher}",
                        rule.name,
                        rule.file_name,
                        rule.rule_type.as_str()
                    );
                }
            }
        }
    }
    Ok(())
}
