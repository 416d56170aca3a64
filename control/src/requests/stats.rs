//! The numbers of support-approved requests: requests per state per day, time to decision,
//! pending age, approvals per approver, the files most requested, approvals never used, and
//! refused self-approvals. Percentiles are nearest-rank (the value at rank ⌈p·n⌉ of the sorted
//! values), so every figure is one observed duration.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{ElevationRequest, RequestStatus};

/// How many files the numbers list.
pub const TOP_FILES: usize = 20;

/// The numbers of the requests created in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    /// Window start (requests created at or after).
    pub from: DateTime<Utc>,
    /// Window end (created before).
    pub to: DateTime<Utc>,
    /// The time the states were read at.
    pub as_of: DateTime<Utc>,
    /// Requests created in the window.
    pub requests: u64,
    /// Of them, per state now (every state listed, zeros included).
    pub by_status: BTreeMap<String, u64>,
    /// Per day of creation (UTC), per state now.
    pub by_day: Vec<DayCounts>,
    /// Seconds from request to decision (approved or denied).
    pub time_to_decision: Durations,
    /// Requests still pending and how long they have waited.
    pub pending: Durations,
    /// Decisions per approver, most first.
    pub approvers: Vec<ApproverNumbers>,
    /// The files most requested, most first.
    pub files: Vec<FileNumbers>,
    /// Approvals in the window.
    pub approvals: u64,
    /// Approvals whose window ended (or was revoked) with no elevation under it.
    pub approved_never_used: u64,
    /// Refused attempts to decide one's own request.
    pub self_approval_attempts: u64,
}

/// Requests created on one day, per state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DayCounts {
    /// The day (UTC).
    pub date: NaiveDate,
    /// Per state (only states with requests).
    pub counts: BTreeMap<String, u64>,
}

/// A count of durations with their median and 90th percentile, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// How many.
    pub count: u64,
    /// Median (nearest rank).
    pub median_seconds: Option<i64>,
    /// 90th percentile (nearest rank).
    pub p90_seconds: Option<i64>,
    /// The longest.
    pub max_seconds: Option<i64>,
}

impl Durations {
    /// The figures of `seconds` (any order).
    pub fn of(mut seconds: Vec<i64>) -> Durations {
        seconds.sort_unstable();
        Durations {
            count: seconds.len() as u64,
            median_seconds: nearest_rank(&seconds, 50),
            p90_seconds: nearest_rank(&seconds, 90),
            max_seconds: seconds.last().copied(),
        }
    }
}

/// The value at rank ⌈p/100 · n⌉ (1-based) of sorted values.
pub fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// One approver's decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproverNumbers {
    /// The reviewer's user principal name.
    pub approver: String,
    /// Approved.
    pub approved: u64,
    /// Denied.
    pub denied: u64,
    /// Median seconds from request to their decision.
    pub median_seconds_to_decision: Option<i64>,
}

/// One file's requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileNumbers {
    /// SHA-256.
    pub file_hash: String,
    /// Its name in the newest request.
    pub file_name: String,
    /// Requests for it.
    pub requests: u64,
    /// Approved.
    pub approved: u64,
    /// Denied.
    pub denied: u64,
    /// Distinct requesters.
    pub users: u64,
}

impl RequestStats {
    /// The numbers of `requests` (those created in `[from, to)`, states as of `now`).
    pub fn compute(
        requests: &[ElevationRequest],
        self_approval_attempts: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RequestStats {
        let mut by_status: BTreeMap<String, u64> =
            RequestStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        let mut by_day: BTreeMap<NaiveDate, BTreeMap<String, u64>> = BTreeMap::new();
        let mut to_decision = Vec::new();
        let mut pending = Vec::new();
        let mut approvers: HashMap<&str, (u64, u64, Vec<i64>)> = HashMap::new();
        let mut files: HashMap<&str, (&str, u64, u64, u64, BTreeSet<String>)> = HashMap::new();
        let (mut approvals, mut never_used) = (0, 0);
        for r in requests {
            let state = r.status.as_str().to_owned();
            *by_status.entry(state.clone()).or_default() += 1;
            *by_day
                .entry(r.request_created_date_time.date_naive())
                .or_default()
                .entry(state)
                .or_default() += 1;
            let approved = r.approval_expiry_date_time.is_some();
            let denied = r.review_completed_date_time.is_some() && !approved;
            if let Some(seconds) = r.seconds_to_decision() {
                to_decision.push(seconds);
                let entry = approvers
                    .entry(r.review_completed_by_user_principal_name.as_str())
                    .or_default();
                entry.0 += u64::from(approved);
                entry.1 += u64::from(denied);
                entry.2.push(seconds);
            }
            if r.status == RequestStatus::Pending {
                pending.push((now - r.request_created_date_time).num_seconds());
            }
            if approved {
                approvals += 1;
                let ended = matches!(r.status, RequestStatus::Expired | RequestStatus::Revoked);
                if ended && r.first_used_date_time.is_none() {
                    never_used += 1;
                }
            }
            let file = files
                .entry(r.application_detail.file_hash.as_str())
                .or_insert_with(|| ("", 0, 0, 0, BTreeSet::new()));
            // Requests come oldest first: the newest name wins.
            file.0 = r.application_detail.file_name.as_str();
            file.1 += 1;
            file.2 += u64::from(approved);
            file.3 += u64::from(denied);
            file.4.insert(r.requested_by_user_principal_name.to_lowercase());
        }
        let mut approvers: Vec<ApproverNumbers> = approvers
            .into_iter()
            .map(|(approver, (approved, denied, mut seconds))| {
                seconds.sort_unstable();
                ApproverNumbers {
                    approver: approver.to_owned(),
                    approved,
                    denied,
                    median_seconds_to_decision: nearest_rank(&seconds, 50),
                }
            })
            .collect();
        approvers.sort_by(|a, b| {
            (b.approved + b.denied)
                .cmp(&(a.approved + a.denied))
                .then_with(|| a.approver.cmp(&b.approver))
        });
        let mut files: Vec<FileNumbers> = files
            .into_iter()
            .map(|(hash, (name, requests, approved, denied, users))| FileNumbers {
                file_hash: hash.to_owned(),
                file_name: name.to_owned(),
                requests,
                approved,
                denied,
                users: users.len() as u64,
            })
            .collect();
        files.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.file_hash.cmp(&b.file_hash)));
        files.truncate(TOP_FILES);
        RequestStats {
            from,
            to,
            as_of: now,
            requests: requests.len() as u64,
            by_status,
            by_day: by_day
                .into_iter()
                .map(|(date, counts)| DayCounts { date, counts })
                .collect(),
            time_to_decision: Durations::of(to_decision),
            pending: Durations::of(pending),
            approvers,
            files,
            approvals,
            approved_never_used: never_used,
            self_approval_attempts: u64::try_from(self_approval_attempts).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_an_observed_value() {
        let values: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&values, 50), Some(5));
        assert_eq!(nearest_rank(&values, 90), Some(9));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
    }
}
