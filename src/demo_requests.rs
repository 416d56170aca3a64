//! The demo's support-approved requests: the simulator's requests are replayed through the
//! control plane at their own instants (a clock moved by hand), before the fleet uploads, so
//! the uploads' support-approved elevations find the approvals they ran under. Afterwards the
//! control plane's numbers are read as of the window's end and checked against the
//! simulator's truth.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use control::requests::{ApplicationDetail, Decision, NewRequest, RequestStats};
use control::{AuditContext, ControlOptions, ControlPlane, KeyKind};
use simulator::requests::{Outcome, SimRequests};
use warehouse::ManualClock;

use crate::DataArgs;

/// One thing that happens to a request, in time order.
enum Step {
    Submit,
    SelfApproval,
    Decide(Decision, String),
    Cancel,
    Revoke(String),
}

/// The control plane the replay used, on its own clock.
pub(crate) struct Replayed {
    control: Arc<ControlPlane>,
    clock: Arc<ManualClock>,
    sim: SimRequests,
}

/// Replays `config`'s requests into the control plane of `node`.
pub(crate) async fn replay(node: &DataArgs, config: &simulator::SimConfig) -> Result<Replayed> {
    let sim = simulator::requests::simulate_requests(config);
    let clock = Arc::new(ManualClock::new(config.window_start()));
    let options = ControlOptions {
        clock: clock.clone(),
        ..ControlOptions::default()
    };
    let control = crate::admin::open_with(node, options).await?;
    let (key, _) = control
        .create_key(&AuditContext::cli(None), &config.tenant, KeyKind::Agent, None, None)
        .await?;
    let agent = control
        .authenticate_upload(&key)
        .await?
        .context("the demo's agent key")?
        .principal;
    let mut steps: Vec<(DateTime<Utc>, usize, Step)> = Vec::new();
    for (i, r) in sim.requests.iter().enumerate() {
        steps.push((r.created_at, i, Step::Submit));
        if let Some(at) = r.self_approval_attempt {
            steps.push((at, i, Step::SelfApproval));
        }
        match &r.outcome {
            Outcome::Undecided => {}
            Outcome::Cancelled { at } => steps.push((*at, i, Step::Cancel)),
            Outcome::Denied { by, at, .. } => steps.push((*at, i, Step::Decide(Decision::Deny, by.clone()))),
            Outcome::Approved { by, at, revoked_at, .. } => {
                let approve = Decision::Approve {
                    hours: Some(simulator::requests::APPROVAL_HOURS as u32),
                };
                steps.push((*at, i, Step::Decide(approve, by.clone())));
                if let Some(revoked) = revoked_at {
                    steps.push((*revoked, i, Step::Revoke(by.clone())));
                }
            }
        }
    }
    steps.sort_by_key(|(at, i, _)| (*at, *i));
    let mut ids: BTreeMap<usize, String> = BTreeMap::new();
    let tenant = &config.tenant;
    for (at, i, step) in steps {
        clock.set(at);
        let r = &sim.requests[i];
        let id = || ids.get(&i).cloned().context("a step before its request");
        match step {
            Step::Submit => {
                let new = NewRequest {
                    request_id: r.request_id.clone(),
                    requested_by_user_principal_name: r.user.clone(),
                    requested_on_device_id: r.device_id.clone(),
                    device_name: r.device_name.clone(),
                    request_justification: r.justification.clone(),
                    application_detail: ApplicationDetail {
                        file_hash: r.hash.clone(),
                        file_name: r.file_name.clone(),
                        file_path: r.file_path.clone(),
                        ..ApplicationDetail::default()
                    },
                };
                let stored = control.submit_request(&agent, new).await?;
                ids.insert(i, stored.request.id);
            }
            Step::SelfApproval => {
                let own = AuditContext::cli(Some(&r.user));
                let refused = control
                    .decide_request(&own, tenant, &id()?, Decision::Approve { hours: None }, None)
                    .await;
                if !matches!(refused, Err(control::ControlError::Refused(_))) {
                    bail!("a self-approval was not refused: {refused:?}");
                }
            }
            Step::Decide(decision, by) => {
                control
                    .decide_request(&AuditContext::cli(Some(&by)), tenant, &id()?, decision, None)
                    .await?;
            }
            Step::Revoke(by) => {
                control
                    .decide_request(&AuditContext::cli(Some(&by)), tenant, &id()?, Decision::Revoke, None)
                    .await?;
            }
            Step::Cancel => {
                control.cancel_request(&agent, &r.device_id, &id()?).await?;
            }
        }
    }
    Ok(Replayed { control, clock, sim })
}

/// Seconds as a wait reads.
fn wait(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s} s"),
        Some(s) if s < 7200 => format!("{} min", s / 60),
        Some(s) => format!("{:.1} h", s as f64 / 3600.0),
    }
}

impl Replayed {
    /// Reads the numbers as of the window's end, prints them and fails when they disagree with
    /// the simulator's truth.
    pub(crate) async fn check_and_print(&self, config: &simulator::SimConfig) -> Result<()> {
        let from = config.window_start();
        let end = from + Duration::days(i64::from(config.days));
        self.clock.set(end);
        let stats: RequestStats = self.control.request_stats(&config.tenant, from, end).await?;
        let t = &self.sim.truth;
        let nonzero: BTreeMap<String, u64> = stats
            .by_status
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s.clone(), *n))
            .collect();
        let approvers: BTreeMap<String, (u64, u64)> = stats
            .approvers
            .iter()
            .map(|a| (a.approver.clone(), (a.approved, a.denied)))
            .collect();
        let top = stats.files.first().map(|f| (f.file_hash.clone(), f.requests));
        let mismatches: Vec<String> = [
            ("requests", stats.requests == t.requests),
            ("states", nonzero == t.by_status),
            ("approvals", stats.approvals == t.approvals),
            (
                "approvals never used",
                stats.approved_never_used == t.approved_never_used,
            ),
            ("decisions", stats.time_to_decision.count == t.decided),
            (
                "median time to decision",
                stats.time_to_decision.median_seconds == t.median_seconds_to_decision,
            ),
            (
                "p90 time to decision",
                stats.time_to_decision.p90_seconds == t.p90_seconds_to_decision,
            ),
            ("approvers", approvers == t.approvers),
            (
                "self-approval attempts",
                stats.self_approval_attempts == t.self_approval_attempts,
            ),
            (
                "most requested file",
                top.as_ref().map(|f| f.1) == t.top_file.as_ref().map(|f| f.1),
            ),
        ]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(what, _)| what.to_owned())
        .collect();
        println!("Support-approved requests (replayed through the control plane; numbers from `control`)");
        let states: Vec<String> = nonzero.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!("  {} requests: {}", stats.requests, states.join(" · "));
        println!(
            "  time to decision: median {}, p90 {}; approvals never used {} of {}; self-approval attempts {}",
            wait(stats.time_to_decision.median_seconds),
            wait(stats.time_to_decision.p90_seconds),
            stats.approved_never_used,
            stats.approvals,
            stats.self_approval_attempts
        );
        for a in &stats.approvers {
            println!(
                "  {:<36} approved {:>4} denied {:>4} median {}",
                a.approver,
                a.approved,
                a.denied,
                wait(a.median_seconds_to_decision)
            );
        }
        if let Some(f) = stats.files.first() {
            println!(
                "  most requested: {} ({} requests, {} users)",
                f.file_name, f.requests, f.users
            );
        }
        if !mismatches.is_empty() {
            bail!(
                "the request numbers disagree with the simulator's truth on: {}\ncontrol: {stats:?}\ntruth: {t:?}",
                mismatches.join(", ")
            );
        }
        println!("  every figure matches the simulator's ground truth");
        Ok(())
    }
}
