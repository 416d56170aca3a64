//! The request operations of [`ControlPlane`]: each change runs in one transaction with its
//! audit entry and its webhook deliveries, so a decision is stored, audited and announced, or
//! none of the three.

use chrono::{DateTime, Duration, Utc};

use super::store::{self, Stored};
use super::{
    Approval, Decision, DeviceApprovals, ElevationRequest, NewRequest, RequestFilter, RequestStats, RequestStatus,
    check_justification,
};
use crate::audit::{self, AuditContext, Draft, ModifiedProperty};
use crate::webhooks::outbox::{self, WebhookEvent};
use crate::{ControlError, ControlPlane, Principal};

/// The audit activity of a refused self-approval (counted by the numbers).
pub(crate) const SELF_APPROVAL_ACTIVITY: &str = "refuseSelfApproval";

/// How far back a device's first `GET /v1/agent/approvals` (no `since`) looks for decisions.
const DEVICE_HISTORY_DAYS: i64 = 30;

/// Requests one device may have waiting for a decision at once.
pub const MAX_PENDING_PER_DEVICE: i64 = 20;

/// How far back a listing looks unless told (the admin center's "last 30 days").
const LIST_DAYS: i64 = 30;

/// One elevation a device ran under a support approval, as an upload reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestUse {
    /// The device.
    pub device_id: String,
    /// Who ran it.
    pub upn: String,
    /// The file's SHA-256 (any case).
    pub file_hash: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// Whether a created request is new or was sent before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The request.
    pub request: ElevationRequest,
    /// `false` when the device sent this `requestId` before: nothing was stored now.
    pub created: bool,
}

impl ControlPlane {
    /// Stores a device's request (the agent key's tenant; a device-bound key only for its own
    /// device). Sending the same `requestId` again answers with the stored request; sending it
    /// again for another user or file is a conflict.
    pub async fn submit_request(&self, agent: &Principal, new: NewRequest) -> Result<Submitted, ControlError> {
        let new = new.checked()?;
        if agent
            .device_id
            .as_deref()
            .is_some_and(|d| d != new.requested_on_device_id)
        {
            return Err(ControlError::InvalidField {
                field: "requestedOnDeviceId",
                message: "this agent key speaks for another device".into(),
            });
        }
        let tenant = &agent.tenant;
        let now = self.now();
        let settings = self.settings_of(tenant).await?;
        let request = Stored {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.clone(),
            client_request_id: new.request_id,
            device_id: new.requested_on_device_id,
            device_name: new.device_name,
            requested_by_upn: new.requested_by_user_principal_name,
            request_justification: new.request_justification,
            application: new.application_detail,
            decided: RequestStatus::Pending,
            created_at: now,
            last_modified_at: now,
            request_expiry_at: now + Duration::hours(i64::from(settings.request_expiry_hours())),
            reviewed_by_upn: None,
            reviewed_by_key_id: None,
            reviewed_at: None,
            reviewer_justification: None,
            approval_expiry_at: None,
            revoked_by_upn: None,
            revoked_at: None,
            revoke_justification: None,
            first_used_at: None,
            last_used_at: None,
            version: 1,
        };
        let mut tx = self.store().begin_write().await?;
        let retried = store::by_client_id(&mut tx, tenant, &request.device_id, &request.client_request_id)
            .await?
            .is_some();
        // OWASP API6: a device (or a script holding its key) cannot flood the help desk. A
        // retry of a stored request is always answered.
        if !retried
            && store::pending_count(&mut tx, tenant, Some(&request.device_id), now).await? >= MAX_PENDING_PER_DEVICE
        {
            tx.commit().await?;
            return Err(ControlError::Conflict(format!(
                "device {} has {MAX_PENDING_PER_DEVICE} requests waiting for a decision; wait for them, or cancel \
                 some, before asking again",
                request.device_id
            )));
        }
        if !store::insert(&mut tx, &request).await? {
            let stored = store::by_client_id(&mut tx, tenant, &request.device_id, &request.client_request_id)
                .await?
                .ok_or_else(|| ControlError::Corrupt("a request vanished while it was read".into()))?;
            tx.commit().await?;
            let same = stored.requested_by_upn.eq_ignore_ascii_case(&request.requested_by_upn)
                && stored.application.file_hash == request.application.file_hash;
            if !same {
                return Err(ControlError::Conflict(format!(
                    "requestId {:?} was sent before for another user or file; choose a new requestId",
                    request.client_request_id
                )));
            }
            return Ok(Submitted {
                request: stored.view(now),
                created: false,
            });
        }
        let view = request.view(now);
        outbox::enqueue(&mut tx, tenant, WebhookEvent::RequestCreated, &view, now).await?;
        tx.commit().await?;
        self.wake_webhooks();
        Ok(Submitted {
            request: view,
            created: true,
        })
    }

    /// One request of a tenant; another tenant's, or none, is [`ControlError::NotFound`].
    pub async fn request(&self, tenant: &str, id: &str) -> Result<ElevationRequest, ControlError> {
        let mut tx = self.store().begin_read().await?;
        let found = store::by_id(&mut tx, tenant, id).await?;
        tx.commit().await?;
        found.map(|r| r.view(self.now())).ok_or_else(|| not_found(id))
    }

    /// How many of a tenant's requests wait for a decision now (all of them: a listing is
    /// capped at 1,000 rows, a count is not).
    pub async fn pending_requests(&self, tenant: &str) -> Result<i64, ControlError> {
        let mut tx = self.store().begin_read().await?;
        let count = store::pending_count(&mut tx, tenant, None, self.now()).await?;
        tx.commit().await?;
        Ok(count)
    }

    /// A tenant's requests, newest first: by default those created in the last 30 days (with
    /// `status=pending`, every pending one).
    pub async fn list_requests(
        &self,
        tenant: &str,
        filter: &RequestFilter,
    ) -> Result<Vec<ElevationRequest>, ControlError> {
        let now = self.now();
        let mut filter = filter.clone();
        if filter.from.is_none() && filter.status != Some(RequestStatus::Pending) {
            filter.from = Some(now - Duration::days(LIST_DAYS));
        }
        // A page is bounded (OWASP API4).
        filter.limit = Some(filter.limit.unwrap_or(1000).min(1000));
        let mut tx = self.store().begin_read().await?;
        let found = store::list(&mut tx, tenant, &filter, now).await?;
        tx.commit().await?;
        Ok(found.iter().map(|r| r.view(now)).collect())
    }

    /// Approves, denies or revokes a request, compare-and-set: when the request is no longer
    /// in the state the decision starts from, nothing changes and the error gives its state.
    /// The actor of `context` is the reviewer; deciding one's own request is refused and
    /// audited.
    pub async fn decide_request(
        &self,
        context: &AuditContext,
        tenant: &str,
        id: &str,
        decision: Decision,
        justification: Option<&str>,
    ) -> Result<ElevationRequest, ControlError> {
        let justification = justification.map(str::trim).filter(|j| !j.is_empty());
        if let Some(text) = justification {
            check_justification("reviewerJustification", text)?;
        }
        let now = self.now();
        let settings = self.settings_of(tenant).await?;
        let hours = match decision {
            Decision::Approve { hours } => {
                let hours = hours.unwrap_or(settings.approval_hours());
                if hours == 0 || hours > settings.max_approval_hours() {
                    return Err(ControlError::InvalidField {
                        field: "approvalHours",
                        message: format!(
                            "must be 1 to {} (the tenant's maxApprovalHours), not {hours}",
                            settings.max_approval_hours()
                        ),
                    });
                }
                Some(hours)
            }
            Decision::Deny | Decision::Revoke => None,
        };
        let reviewer = context.actor.user_principal_name.clone();
        let mut tx = self.store().begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        let current = store::by_id(&mut tx, tenant, id).await?.ok_or_else(|| not_found(id))?;
        if current.requested_by_upn.eq_ignore_ascii_case(&reviewer) {
            let draft = Draft {
                activity: SELF_APPROVAL_ACTIVITY,
                operation: "Action",
                result: "failure",
                resource_type: "elevationRequest",
                resource_id: id.to_owned(),
                modified: vec![ModifiedProperty::new(
                    "decision",
                    None,
                    Some(decision.activity().to_owned()),
                )],
            };
            audit::append(&mut tx, &mut head, context, draft, now).await?;
            tx.commit().await?;
            return Err(ControlError::Refused(format!(
                "{reviewer} made this request and cannot decide it; another admin must"
            )));
        }
        let state = current.status(now);
        if state != decision.source() {
            tx.commit().await?;
            return Err(conflict(&current, state, decision));
        }
        let mut next = current.clone();
        next.decided = decision.target();
        next.last_modified_at = now;
        match decision {
            Decision::Approve { .. } | Decision::Deny => {
                next.reviewed_by_upn = Some(reviewer);
                next.reviewed_by_key_id = context.actor.key_id.clone();
                next.reviewed_at = Some(now);
                next.reviewer_justification = justification.map(str::to_owned);
                next.approval_expiry_at = hours.map(|h| now + Duration::hours(i64::from(h)));
            }
            Decision::Revoke => {
                next.revoked_by_upn = Some(reviewer);
                next.revoked_at = Some(now);
                next.revoke_justification = justification.map(str::to_owned);
            }
        }
        if !store::write_transition(&mut tx, &next, current.version).await? {
            // Unreachable while the audit head is locked (every writer of the tenant queues on
            // it), kept so that the guarantee does not rest on that lock alone.
            tx.commit().await?;
            return Err(ControlError::Conflict(format!(
                "request {id} changed while it was decided; read it again"
            )));
        }
        let time = |t: Option<DateTime<Utc>>| t.map(crate::store::time_text);
        let mut modified = vec![ModifiedProperty::new(
            "status",
            Some(state.as_str().to_owned()),
            Some(next.decided.as_str().to_owned()),
        )];
        if let Some(text) = justification {
            modified.push(ModifiedProperty::new(
                "reviewerJustification",
                None,
                Some(text.to_owned()),
            ));
        }
        if let Some(hours) = hours {
            modified.push(ModifiedProperty::new("approvalHours", None, Some(hours.to_string())));
            modified.push(ModifiedProperty::new(
                "approvalExpiryDateTime",
                None,
                time(next.approval_expiry_at),
            ));
        }
        let draft = Draft {
            activity: decision.activity(),
            operation: "Action",
            result: "success",
            resource_type: "elevationRequest",
            resource_id: id.to_owned(),
            modified,
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        let view = next.view(now);
        outbox::enqueue(&mut tx, tenant, WebhookEvent::RequestDecided, &view, now).await?;
        tx.commit().await?;
        self.wake_webhooks();
        Ok(view)
    }

    /// The device withdraws its own pending request (compare-and-set like a decision).
    pub async fn cancel_request(
        &self,
        agent: &Principal,
        device_id: &str,
        id: &str,
    ) -> Result<ElevationRequest, ControlError> {
        check_device(agent, device_id)?;
        let now = self.now();
        let mut tx = self.store().begin_write().await?;
        let current = store::by_id(&mut tx, &agent.tenant, id)
            .await?
            .filter(|r| r.device_id == device_id)
            .ok_or_else(|| not_found(id))?;
        let state = current.status(now);
        if state != RequestStatus::Pending {
            tx.commit().await?;
            return Err(ControlError::Conflict(format!(
                "request {id} is {}, not pending; only a pending request can be cancelled",
                state.as_str()
            )));
        }
        let mut next = current.clone();
        next.decided = RequestStatus::Cancelled;
        next.last_modified_at = now;
        if !store::write_transition(&mut tx, &next, current.version).await? {
            tx.commit().await?;
            return Err(ControlError::Conflict(format!(
                "request {id} was decided while it was cancelled; read it again"
            )));
        }
        let view = next.view(now);
        outbox::enqueue(&mut tx, &agent.tenant, WebhookEvent::RequestDecided, &view, now).await?;
        tx.commit().await?;
        self.wake_webhooks();
        Ok(view)
    }

    /// What a device may elevate now and what happened to its requests after `since` (the
    /// last 30 days when `None`). A device-bound key reads only its own device.
    pub async fn device_approvals(
        &self,
        agent: &Principal,
        device_id: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<DeviceApprovals, ControlError> {
        check_device(agent, device_id)?;
        let now = self.now();
        let since = since.unwrap_or(now - Duration::days(DEVICE_HISTORY_DAYS));
        let mut tx = self.store().begin_read().await?;
        let found = store::of_device(&mut tx, &agent.tenant, device_id, Some(since), now).await?;
        tx.commit().await?;
        let mut approvals = Vec::new();
        let mut decisions = Vec::new();
        for stored in &found {
            let view = stored.view(now);
            if view.status == RequestStatus::Approved
                && let Some(until) = stored.approval_expiry_at
            {
                approvals.push(Approval {
                    id: stored.id.clone(),
                    request_id: stored.client_request_id.clone(),
                    file_hash: stored.application.file_hash.clone(),
                    file_name: stored.application.file_name.clone(),
                    user_principal_name: stored.requested_by_upn.clone(),
                    approved_until: until,
                });
            }
            if view.status != RequestStatus::Pending {
                decisions.push(view);
            }
        }
        Ok(DeviceApprovals {
            device_id: device_id.to_owned(),
            as_of: now,
            approvals,
            decisions,
        })
    }

    /// Records that devices ran files elevated under approvals (the `supportApprovedElevation`
    /// events of one upload), in one transaction. Returns how many approvals they matched.
    pub async fn record_request_uses(&self, tenant: &str, uses: &[RequestUse]) -> Result<u64, ControlError> {
        if uses.is_empty() {
            return Ok(0);
        }
        if self.known_offline() {
            // The upload is durable already; it must not wait out a dead database.
            return Err(ControlError::Unavailable(
                "the control-plane database was unreachable moments ago".into(),
            ));
        }
        // Most uploads carry support-approved elevations no stored approval covers (approvals
        // given elsewhere, or before this control plane): a read says so without taking the
        // write lock every upload would otherwise queue on.
        let (first, last) = uses
            .iter()
            .fold((uses[0].at, uses[0].at), |(lo, hi), u| (lo.min(u.at), hi.max(u.at)));
        let devices: std::collections::BTreeSet<&str> = uses.iter().map(|u| u.device_id.as_str()).collect();
        let mut tx = self.store().begin_read().await?;
        let mut candidates = 0;
        for device in devices {
            candidates += store::approvals_covering(&mut tx, tenant, device, first, last).await?;
        }
        tx.commit().await?;
        if candidates == 0 {
            return Ok(0);
        }
        let mut tx = self.store().begin_write().await?;
        let mut touched = 0;
        for u in uses {
            touched += store::record_use(&mut tx, tenant, &u.device_id, &u.upn, &u.file_hash, u.at).await?;
        }
        tx.commit().await?;
        Ok(touched)
    }

    /// Every request of a tenant created in `[from, to)`, oldest first, unbounded (compliance
    /// packs; listings are paged with [`ControlPlane::list_requests`]).
    pub async fn requests_created_between(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ElevationRequest>, ControlError> {
        let now = self.now();
        let mut tx = self.store().begin_read().await?;
        let found = store::created_between(&mut tx, tenant, from, to).await?;
        tx.commit().await?;
        Ok(found.iter().map(|r| r.view(now)).collect())
    }

    /// The numbers of a tenant's requests created in `[from, to)`, as they stand now.
    pub async fn request_stats(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<RequestStats, ControlError> {
        let views = self.requests_created_between(tenant, from, to).await?;
        let mut tx = self.store().begin_read().await?;
        let self_approvals = store::self_approval_attempts(&mut tx, tenant, from, to).await?;
        tx.commit().await?;
        Ok(RequestStats::compute(&views, self_approvals, from, to, self.now()))
    }
}

/// A device-bound agent key speaks only for its device; any other device is not found (never
/// "forbidden", so device ids cannot be probed).
fn check_device(agent: &Principal, device_id: &str) -> Result<(), ControlError> {
    match agent.device_id.as_deref() {
        Some(own) if own != device_id => Err(ControlError::NotFound {
            what: "device",
            id: device_id.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn not_found(id: &str) -> ControlError {
    ControlError::NotFound {
        what: "elevation request",
        id: id.to_owned(),
    }
}

/// The refusal of a decision on a request that is no longer where the decision starts.
fn conflict(current: &Stored, state: RequestStatus, decision: Decision) -> ControlError {
    let by = match state {
        RequestStatus::Approved | RequestStatus::Denied | RequestStatus::Completed => current
            .reviewed_by_upn
            .as_deref()
            .zip(current.reviewed_at)
            .map(|(who, at)| format!(" by {who} at {}", crate::store::time_text(at)))
            .unwrap_or_default(),
        RequestStatus::Revoked => current
            .revoked_by_upn
            .as_deref()
            .map(|who| format!(" by {who}"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    ControlError::Conflict(format!(
        "request {} is {}{by}, not {}; it cannot be {}",
        current.id,
        state.as_str(),
        decision.source().as_str(),
        match decision {
            Decision::Approve { .. } => "approved",
            Decision::Deny => "denied",
            Decision::Revoke => "revoked",
        }
    ))
}
