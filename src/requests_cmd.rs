//! `elevation requests …` and `elevation webhooks …`: the support-approved request workflow
//! and its notifications from a shell, on the same control plane as the server. Decisions are
//! made as `--actor` (the reviewer in the audit log); the rules are `control::requests`.

use anyhow::Result;
use clap::Subcommand;
use control::requests::{Decision, ElevationRequest};
use control::webhooks::WebhookFormat;

use crate::DataArgs;
use crate::admin::{Acting, open};

#[derive(Debug, Subcommand)]
pub(crate) enum RequestsCommand {
    /// The tenant's requests, newest first (default: the last 30 days).
    List {
        /// pending, approved, denied, expired, cancelled, revoked or completed.
        #[arg(long)]
        status: Option<String>,
        /// The requester's user principal name.
        #[arg(long)]
        user: Option<String>,
        /// A device id or name.
        #[arg(long)]
        device: Option<String>,
        /// A file's SHA-256 or name.
        #[arg(long)]
        file: Option<String>,
        /// Created at or after (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Created before.
        #[arg(long)]
        to: Option<String>,
        /// json instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One request, every field, as JSON.
    Show {
        /// The request's id.
        id: String,
    },
    /// Approve a pending request.
    Approve {
        /// The request's id.
        id: String,
        /// The reason, recorded in the audit log and sent to the device.
        #[arg(long)]
        reason: Option<String>,
        /// Hours the approval lasts (default the tenant's approval hours).
        #[arg(long)]
        hours: Option<u32>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Deny a pending request.
    Deny {
        /// The request's id.
        id: String,
        /// The reason, recorded in the audit log and sent to the device.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// Withdraw an approval before its window ends.
    Revoke {
        /// The request's id.
        id: String,
        /// The reason, recorded in the audit log.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        acting: Acting,
    },
    /// The numbers: per state, time to decision, pending age, approvers, files, approvals
    /// never used, self-approval attempts.
    Stats {
        /// Requests created at or after (default: 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// Created before (default: now).
        #[arg(long)]
        to: Option<String>,
        /// json instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn params(pairs: &[(&str, &Option<String>)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}

fn print_table(requests: &[ElevationRequest]) {
    println!(
        "{:<36} {:<17} {:<10} {:<28} {:<16} {:<24} decided by",
        "id", "requested (UTC)", "status", "user", "device", "file"
    );
    for r in requests {
        println!(
            "{:<36} {:<17} {:<10} {:<28} {:<16} {:<24} {}",
            r.id,
            r.request_created_date_time.format("%Y-%m-%d %H:%M"),
            r.status.as_str(),
            r.requested_by_user_principal_name,
            r.device_name,
            r.application_detail.file_name,
            r.review_completed_by_user_principal_name
        );
    }
}

fn seconds(s: Option<i64>) -> String {
    s.map(|s| format!("{s} s")).unwrap_or_else(|| "-".into())
}

/// `elevation requests …`.
pub(crate) async fn run(data: &DataArgs, command: RequestsCommand) -> Result<()> {
    let control = open(data).await?;
    let tenant = &data.tenant;
    let decided = |request: ElevationRequest| -> Result<()> {
        println!(
            "request {} is {} (by {})",
            request.id,
            request.status.as_str(),
            request
                .revoked_by_user_principal_name
                .as_deref()
                .unwrap_or(&request.review_completed_by_user_principal_name)
        );
        Ok(())
    };
    match command {
        RequestsCommand::List {
            status,
            user,
            device,
            file,
            from,
            to,
            json,
        } => {
            let params = params(&[
                ("status", &status),
                ("user", &user),
                ("device", &device),
                ("file", &file),
                ("from", &from),
                ("to", &to),
            ]);
            let filter = dashboards::request_filter(&params).map_err(|e| anyhow::anyhow!(e.message))?;
            let requests = control.list_requests(tenant, &filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&requests)?);
            } else {
                print_table(&requests);
            }
        }
        RequestsCommand::Show { id } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&control.request(tenant, &id).await?)?
            );
        }
        RequestsCommand::Approve {
            id,
            reason,
            hours,
            acting,
        } => decided(
            control
                .decide_request(
                    &acting.context(),
                    tenant,
                    &id,
                    Decision::Approve { hours },
                    reason.as_deref(),
                )
                .await?,
        )?,
        RequestsCommand::Deny { id, reason, acting } => decided(
            control
                .decide_request(&acting.context(), tenant, &id, Decision::Deny, reason.as_deref())
                .await?,
        )?,
        RequestsCommand::Revoke { id, reason, acting } => decided(
            control
                .decide_request(&acting.context(), tenant, &id, Decision::Revoke, reason.as_deref())
                .await?,
        )?,
        RequestsCommand::Stats { from, to, json } => {
            let params = params(&[("from", &from), ("to", &to)]);
            let (from, to) = dashboards::stats_window(&params, warehouse::Clock::now(&warehouse::SystemClock))
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let stats = control.request_stats(tenant, from, to).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
                return Ok(());
            }
            println!("requests of {tenant} created {from} to {to}: {}", stats.requests);
            let states: Vec<String> = stats.by_status.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!("  by state now         {}", states.join(" · "));
            println!(
                "  time to decision     median {}, p90 {} ({} decided)",
                seconds(stats.time_to_decision.median_seconds),
                seconds(stats.time_to_decision.p90_seconds),
                stats.time_to_decision.count
            );
            println!(
                "  pending              {} (oldest waited {})",
                stats.pending.count,
                seconds(stats.pending.max_seconds)
            );
            println!(
                "  approvals never used {} of {}",
                stats.approved_never_used, stats.approvals
            );
            println!("  self-approval tries  {}", stats.self_approval_attempts);
            println!("  approvers");
            for a in &stats.approvers {
                println!(
                    "    {:<32} approved {:>5} denied {:>5} median {}",
                    a.approver,
                    a.approved,
                    a.denied,
                    seconds(a.median_seconds_to_decision)
                );
            }
            println!("  files most requested");
            for f in stats.files.iter().take(10) {
                println!(
                    "    {:<32} {:>5} requests {:>5} approved {:>5} users",
                    f.file_name, f.requests, f.approved, f.users
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// Send the tenant's request events to URL (https; private addresses refused). Prints the
    /// signing secret once.
    Add {
        /// The target.
        url: String,
        /// standard (Standard Webhooks) or teams (a Teams Workflows Adaptive Card).
        #[arg(long, default_value = "standard", value_parser = ["standard", "teams"])]
        format: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// The tenant's webhooks.
    List,
    /// Stop sending to a webhook.
    Remove {
        /// Its id.
        id: String,
        #[command(flatten)]
        acting: Acting,
    },
    /// The newest deliveries and how they went.
    Deliveries,
}

/// `elevation webhooks …`.
pub(crate) async fn webhooks(data: &DataArgs, command: WebhooksCommand) -> Result<()> {
    let control = open(data).await?;
    let tenant = &data.tenant;
    match command {
        WebhooksCommand::Add { url, format, acting } => {
            let format = WebhookFormat::parse(&format)?;
            let (webhook, secret) = control.add_webhook(&acting.context(), tenant, &url, format).await?;
            println!(
                "added webhook {} ({}) for {tenant}; its signing secret is shown only this once:",
                webhook.id,
                webhook.format.as_str()
            );
            println!("{secret}");
        }
        WebhooksCommand::List => {
            for w in control.list_webhooks(tenant).await? {
                println!("{}  {:<8} {}", w.id, w.format.as_str(), w.url);
            }
        }
        WebhooksCommand::Remove { id, acting } => {
            control.remove_webhook(&acting.context(), tenant, &id).await?;
            println!("removed webhook {id}");
        }
        WebhooksCommand::Deliveries => {
            println!(
                "{}",
                serde_json::to_string_pretty(&control.webhook_deliveries(tenant, 100).await?)?
            );
        }
    }
    Ok(())
}
