//! Support-approved elevation requests the simulated world implies, and their ground truth.
//!
//! Every `supportApprovedElevation` a device uploads was preceded by a request that an approver
//! approved minutes before, with a 24-hour window that covers the user's later runs of the
//! same file on that device. Around those, the world adds what a help desk sees: denied
//! requests, approvals never used, requests withdrawn by the device, requests nobody decided
//! (pending, or expired), approvals revoked early, and one admin trying to approve their own
//! request. Planted: one approver rubber-stamps in seconds (`quick.approver@…`), and the
//! planted support-approved file ([`crate::catalog::planted::SUPPORT_APPROVED`]) is approved
//! for everybody who asks.
//!
//! The truth ([`RequestsTruth`]) is computed here from the requests and their times alone, as
//! of the window's end, with the workflow's definitions (a pending request expires after
//! 48 hours; an approval that ends unused is expired, used is completed; percentiles are
//! nearest-rank) — never by the control plane that stores them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use warehouse::{AgentBatch, ElevationType};

use crate::SimConfig;

/// Hours a request waits for a decision (the control plane's default).
pub const REQUEST_EXPIRY_HOURS: i64 = 48;
/// Hours an approval lasts (the control plane's default).
pub const APPROVAL_HOURS: i64 = 24;

/// The help desk's approvers: (user principal name prefix, median seconds to a decision).
const APPROVERS: [(&str, i64); 3] = [("helpdesk.lead", 25 * 60), ("it.admin", 90 * 60), ("quick.approver", 5)];

/// What happened to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Outcome {
    /// Nobody decided.
    Undecided,
    /// The device withdrew it.
    Cancelled {
        /// When.
        at: DateTime<Utc>,
    },
    /// Denied.
    Denied {
        /// By whom.
        by: String,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: String,
    },
    /// Approved (and perhaps revoked).
    Approved {
        /// By whom.
        by: String,
        /// When.
        at: DateTime<Utc>,
        /// Revoked by an admin at this time, if it was.
        revoked_at: Option<DateTime<Utc>>,
        /// Whether an elevation the device uploaded falls in the window.
        used: bool,
    },
}

/// One simulated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimRequest {
    /// The device's own id for it.
    pub request_id: String,
    /// Device id.
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// Who asked.
    pub user: String,
    /// The file's SHA-256 (upper case, as the events carry it).
    pub hash: String,
    /// File name.
    pub file_name: String,
    /// Folder.
    pub file_path: String,
    /// Why.
    pub justification: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// An approver tried to decide their own request at this time first (refused).
    pub self_approval_attempt: Option<DateTime<Utc>>,
    /// What happened.
    pub outcome: Outcome,
}

/// The requests' numbers as of the window's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestsTruth {
    /// Requests.
    pub requests: u64,
    /// Per state at the window's end.
    pub by_status: BTreeMap<String, u64>,
    /// Approvals.
    pub approvals: u64,
    /// Approvals whose window ended (or was revoked) with no elevation.
    pub approved_never_used: u64,
    /// Decisions (approve or deny).
    pub decided: u64,
    /// Median seconds to a decision (nearest rank).
    pub median_seconds_to_decision: Option<i64>,
    /// 90th percentile (nearest rank).
    pub p90_seconds_to_decision: Option<i64>,
    /// Per approver: (approved, denied).
    pub approvers: BTreeMap<String, (u64, u64)>,
    /// Refused self-approvals.
    pub self_approval_attempts: u64,
    /// The most requested file and its request count.
    pub top_file: Option<(String, u64)>,
}

/// The requests of a simulated fleet and their truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimRequests {
    /// Every request, oldest first.
    pub requests: Vec<SimRequest>,
    /// Their numbers at the window's end.
    pub truth: RequestsTruth,
}

/// One uploaded support-approved elevation.
struct Use {
    device_id: String,
    device_name: String,
    user: String,
    hash: String,
    file_name: String,
    file_path: String,
    at: DateTime<Utc>,
}

/// The requests of `config`'s fleet (simulating it again: the same seed gives the same fleet).
pub fn simulate_requests(config: &SimConfig) -> SimRequests {
    let mut uses = Vec::new();
    let _ = crate::simulate(config, |_, _, batch: &AgentBatch| {
        for e in &batch.elevations {
            if e.elevation_type == ElevationType::SupportApproved {
                uses.push(Use {
                    device_id: batch.device_id.clone(),
                    device_name: batch.device_name.clone(),
                    user: e.upn.clone(),
                    hash: e.hash.clone(),
                    file_name: e.file_name.clone(),
                    file_path: e
                        .file_path
                        .trim_end_matches(e.file_name.as_str())
                        .trim_end_matches('\\')
                        .to_owned(),
                    at: e.event_date_time,
                });
            }
        }
        Ok::<(), std::convert::Infallible>(())
    });
    from_uses(config, uses)
}

fn approver(tenant: &str, index: usize) -> String {
    format!("{}@{tenant}.com", APPROVERS[index].0)
}

/// Seconds an approver takes: around their median, the rubber-stamper a few seconds.
fn latency(rng: &mut ChaCha8Rng, index: usize) -> i64 {
    let median = APPROVERS[index].1;
    if median < 60 {
        rng.random_range(2..=9)
    } else {
        rng.random_range(median / 4..=median * 2)
    }
}

fn from_uses(config: &SimConfig, mut uses: Vec<Use>) -> SimRequests {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x7265_7175_6573_7473); // "requests"
    let end = config.window_start() + Duration::days(i64::from(config.days));
    let tenant = &config.tenant;
    uses.sort_by(|a, b| (&a.device_id, &a.user, &a.hash, a.at).cmp(&(&b.device_id, &b.user, &b.hash, b.at)));
    let mut requests = Vec::new();
    let mut window_end: HashMap<(String, String, String), DateTime<Utc>> = HashMap::new();
    for u in &uses {
        let key = (u.device_id.clone(), u.user.clone(), u.hash.clone());
        if window_end.get(&key).is_some_and(|until| u.at < *until) {
            continue; // covered by the approval before
        }
        let who = rng.random_range(0..APPROVERS.len());
        let took = latency(&mut rng, who);
        let created = u.at - Duration::seconds(took + rng.random_range(60..=600));
        let approved = created + Duration::seconds(took);
        window_end.insert(key, approved + Duration::hours(APPROVAL_HOURS));
        requests.push(SimRequest {
            request_id: format!("sim-{}", requests.len() + 1),
            device_id: u.device_id.clone(),
            device_name: u.device_name.clone(),
            user: u.user.clone(),
            hash: u.hash.clone(),
            file_name: u.file_name.clone(),
            file_path: u.file_path.clone(),
            justification: format!("I need to run {} for my work", u.file_name),
            created_at: created,
            self_approval_attempt: None,
            outcome: Outcome::Approved {
                by: approver(tenant, who),
                at: approved,
                revoked_at: None,
                used: true,
            },
        });
    }
    // What else a help desk sees: requests for the same files by the same people that did
    // not end in an elevation. The planted file is approved for everybody.
    let used = requests.len();
    let planted = crate::catalog::planted::SUPPORT_APPROVED;
    // An approval without a use must not cover one of the user's runs of the file on that
    // device: the server would count that run as its use.
    let mut runs: HashMap<(&str, &str, &str), Vec<DateTime<Utc>>> = HashMap::new();
    for u in &uses {
        runs.entry((&u.device_id, &u.user, &u.hash)).or_default().push(u.at);
    }
    let span = (end - config.window_start()).num_seconds().max(1);
    for i in 0..used {
        let base = requests[i].clone();
        if !rng.random_bool(0.6) {
            continue;
        }
        let created = config.window_start() + Duration::seconds(rng.random_range(0..span));
        let who = rng.random_range(0..APPROVERS.len());
        let at = created + Duration::seconds(latency(&mut rng, who));
        let roll: f64 = rng.random();
        let covers_a_run = runs
            .get(&(base.device_id.as_str(), base.user.as_str(), base.hash.as_str()))
            .is_some_and(|times| {
                times
                    .iter()
                    .any(|t| *t >= at && *t < at + Duration::hours(APPROVAL_HOURS))
            });
        if base.file_name == planted && covers_a_run {
            continue; // the planted file is never denied
        }
        let outcome = if (base.file_name == planted || roll < 0.25) && !covers_a_run {
            // Approved, never run: the window ends unused (or is still open at the end).
            let revoked_at = (roll < 0.05).then(|| at + Duration::minutes(rng.random_range(5..120)));
            Outcome::Approved {
                by: approver(tenant, who),
                at,
                revoked_at,
                used: false,
            }
        } else if roll < 0.6 {
            Outcome::Denied {
                by: approver(tenant, who),
                at,
                reason: "use the managed package from the company portal".into(),
            }
        } else if roll < 0.7 {
            Outcome::Cancelled {
                at: created + Duration::minutes(rng.random_range(1..30)),
            }
        } else {
            Outcome::Undecided
        };
        requests.push(SimRequest {
            request_id: format!("sim-{}", requests.len() + 1),
            created_at: created,
            outcome,
            ..base
        });
    }
    // Planted: the help-desk lead asks for themselves and tries to approve it; IT approves.
    if let Some(first) = requests.first().cloned() {
        let created = end - Duration::hours(30);
        requests.push(SimRequest {
            request_id: format!("sim-{}", requests.len() + 1),
            user: approver(tenant, 0),
            created_at: created,
            self_approval_attempt: Some(created + Duration::minutes(1)),
            outcome: Outcome::Approved {
                by: approver(tenant, 1),
                at: created + Duration::minutes(40),
                revoked_at: None,
                used: false,
            },
            ..first
        });
    }
    // Decisions that would fall after the window's end have not happened yet.
    for r in &mut requests {
        let after_end = match &r.outcome {
            Outcome::Denied { at, .. } | Outcome::Approved { at, .. } | Outcome::Cancelled { at } => *at >= end,
            Outcome::Undecided => false,
        };
        if after_end {
            r.outcome = Outcome::Undecided;
        }
        if let Outcome::Approved { revoked_at, .. } = &mut r.outcome
            && revoked_at.is_some_and(|t| t >= end)
        {
            *revoked_at = None;
        }
    }
    requests.retain(|r| r.created_at < end);
    requests.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.request_id.cmp(&b.request_id))
    });
    let truth = truth_of(&requests, end);
    SimRequests { requests, truth }
}

/// The state of a request at `at`, by the workflow's definitions.
pub fn status_at(r: &SimRequest, at: DateTime<Utc>) -> &'static str {
    match &r.outcome {
        Outcome::Undecided if r.created_at + Duration::hours(REQUEST_EXPIRY_HOURS) <= at => "expired",
        Outcome::Undecided => "pending",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::Denied { .. } => "denied",
        Outcome::Approved {
            revoked_at: Some(_), ..
        } => "revoked",
        Outcome::Approved { at: approved, used, .. } => {
            if *approved + Duration::hours(APPROVAL_HOURS) > at {
                "approved"
            } else if *used {
                "completed"
            } else {
                "expired"
            }
        }
    }
}

fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn truth_of(requests: &[SimRequest], end: DateTime<Utc>) -> RequestsTruth {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut approvers: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut seconds = Vec::new();
    let (mut approvals, mut never_used) = (0, 0);
    let mut files: BTreeMap<&str, u64> = BTreeMap::new();
    for r in requests {
        let status = status_at(r, end);
        *by_status.entry(status.to_owned()).or_default() += 1;
        *files.entry(r.hash.as_str()).or_default() += 1;
        match &r.outcome {
            Outcome::Approved { by, at, used, .. } => {
                approvals += 1;
                approvers.entry(by.clone()).or_default().0 += 1;
                seconds.push((*at - r.created_at).num_seconds());
                if !used && matches!(status, "expired" | "revoked") {
                    never_used += 1;
                }
            }
            Outcome::Denied { by, at, .. } => {
                approvers.entry(by.clone()).or_default().1 += 1;
                seconds.push((*at - r.created_at).num_seconds());
            }
            Outcome::Undecided | Outcome::Cancelled { .. } => {}
        }
    }
    seconds.sort_unstable();
    let top_file = files
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(hash, n)| (hash.to_lowercase(), n));
    RequestsTruth {
        requests: requests.len() as u64,
        by_status,
        approvals,
        approved_never_used: never_used,
        decided: seconds.len() as u64,
        median_seconds_to_decision: (!seconds.is_empty()).then(|| nearest_rank(&seconds, 50)).flatten(),
        p90_seconds_to_decision: (!seconds.is_empty()).then(|| nearest_rank(&seconds, 90)).flatten(),
        approvers,
        self_approval_attempts: requests.iter().filter(|r| r.self_approval_attempt.is_some()).count() as u64,
        top_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cover_every_support_approved_elevation_and_plant_the_rubber_stamper() {
        let config = SimConfig::new(7, 80, 7, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
        let sim = simulate_requests(&config);
        assert_eq!(sim, simulate_requests(&config), "deterministic");
        let t = &sim.truth;
        assert!(t.requests > 10, "{t:?}");
        assert_eq!(t.by_status.values().sum::<u64>(), t.requests);
        assert!(t.by_status.get("denied").copied().unwrap_or(0) > 0, "{t:?}");
        assert!(t.by_status.get("completed").copied().unwrap_or(0) > 0, "{t:?}");
        assert_eq!(t.self_approval_attempts, 1);
        // The rubber-stamper decides in seconds, the others in minutes or hours.
        for r in &sim.requests {
            if let Outcome::Approved { by, at, .. } | Outcome::Denied { by, at, .. } = &r.outcome {
                let took = (*at - r.created_at).num_seconds();
                if by.starts_with("quick.approver") {
                    assert!((2..=9).contains(&took), "{took}");
                } else {
                    assert!(took >= 60, "{by}: {took}");
                }
            }
        }
    }
}
