//! Elevation requests against both backends: the lifecycle with a clock moved by hand, the
//! compare-and-set under two admins at once, the self-approval refusal, device-bound keys, and
//! the numbers against a hand count.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use warehouse::ManualClock;

use super::{ApplicationDetail, Decision, NewRequest, RequestFilter, RequestStatus};
use crate::testing::{TestDb, each_backend};
use crate::{AuditContext, AuditFilter, ControlError, ControlOptions, ControlPlane, KeyKind, Principal, Role};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

async fn open(t: &TestDb, clock: Arc<ManualClock>) -> ControlPlane {
    let options = ControlOptions {
        clock,
        ..ControlOptions::default()
    };
    ControlPlane::open(&t.db, options)
        .await
        .expect("the control plane opens")
}

fn admin(upn: &str) -> AuditContext {
    AuditContext::cli(Some(upn))
}

async fn agent(plane: &ControlPlane, device: Option<&str>) -> Principal {
    let (key, _) = plane
        .create_key_for(&admin("ada@contoso.com"), "contoso", KeyKind::Agent, None, None, device)
        .await
        .unwrap();
    plane.authenticate_upload(&key).await.unwrap().unwrap().principal
}

fn new_request(id: &str, user: &str, device: &str, hash_byte: &str) -> NewRequest {
    NewRequest {
        request_id: id.into(),
        requested_by_user_principal_name: user.into(),
        requested_on_device_id: device.into(),
        device_name: format!("PC-{device}"),
        request_justification: "driver update".into(),
        application_detail: ApplicationDetail {
            file_hash: hash_byte.repeat(32),
            file_name: format!("tool-{hash_byte}.exe"),
            file_path: "C:\\Tools".into(),
            ..ApplicationDetail::default()
        },
    }
}

#[tokio::test]
async fn the_lifecycle_runs_by_decision_and_by_time() {
    each_backend(|t: TestDb| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let plane = open(&t, clock.clone()).await;
        let device = agent(&plane, None).await;

        // request → approve → used → the window ends: completed.
        let first = plane
            .submit_request(&device, new_request("r1", "bob@contoso.com", "d1", "aa"))
            .await
            .unwrap();
        assert!(first.created);
        assert_eq!(first.request.status, RequestStatus::Pending, "{}", t.backend);
        assert_eq!(first.request.request_expiry_date_time, start() + Duration::hours(48));
        let again = plane
            .submit_request(&device, new_request("r1", "bob@contoso.com", "d1", "aa"))
            .await
            .unwrap();
        assert_eq!(
            (again.created, again.request.id.as_str()),
            (false, first.request.id.as_str())
        );
        let reused = plane
            .submit_request(&device, new_request("r1", "bob@contoso.com", "d1", "bb"))
            .await
            .unwrap_err();
        assert!(matches!(reused, ControlError::Conflict(_)), "{reused}");

        clock.advance(Duration::minutes(5));
        let approved = plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &first.request.id,
                Decision::Approve { hours: Some(4) },
                Some("known vendor"),
            )
            .await
            .unwrap();
        assert_eq!(approved.status, RequestStatus::Approved);
        assert_eq!(approved.review_completed_by_user_principal_name, "ada@contoso.com");
        assert_eq!(approved.seconds_to_decision(), Some(300));
        assert_eq!(
            approved.approval_expiry_date_time,
            Some(start() + Duration::minutes(5) + Duration::hours(4))
        );
        let seen = plane.device_approvals(&device, "d1", None).await.unwrap();
        assert_eq!(seen.approvals.len(), 1);
        assert_eq!(seen.approvals[0].file_hash, "aa".repeat(32));
        // An elevation before the approval does not count; one inside the window does.
        let hash = "AA".repeat(32);
        let used = |at| {
            vec![super::RequestUse {
                device_id: "d1".into(),
                upn: "BOB@contoso.com".into(),
                file_hash: hash.clone(),
                at,
            }]
        };
        assert_eq!(plane.record_request_uses("contoso", &used(start())).await.unwrap(), 0);
        let used_at = start() + Duration::hours(1);
        assert_eq!(plane.record_request_uses("contoso", &used(used_at)).await.unwrap(), 1);
        // The same batch again (a replay after a crash) changes nothing.
        plane.record_request_uses("contoso", &used(used_at)).await.unwrap();
        clock.advance(Duration::hours(4));
        let done = plane.request("contoso", &first.request.id).await.unwrap();
        assert_eq!(done.status, RequestStatus::Completed, "{}", t.backend);
        assert_eq!(done.first_used_date_time, Some(used_at));
        assert!(
            plane
                .device_approvals(&device, "d1", None)
                .await
                .unwrap()
                .approvals
                .is_empty()
        );

        // request → deny; the device sees the denial after its last look.
        let asked = clock_now(&clock);
        let second = plane
            .submit_request(&device, new_request("r2", "bob@contoso.com", "d1", "bb"))
            .await
            .unwrap();
        let denied = plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &second.request.id,
                Decision::Deny,
                Some("no"),
            )
            .await
            .unwrap();
        assert_eq!(denied.status, RequestStatus::Denied);
        let seen = plane.device_approvals(&device, "d1", Some(asked)).await.unwrap();
        assert!(seen.approvals.is_empty());
        // The denial, and the first approval's end at that same instant.
        let told: Vec<(&str, RequestStatus)> = seen.decisions.iter().map(|d| (d.id.as_str(), d.status)).collect();
        assert_eq!(
            told,
            [
                (first.request.id.as_str(), RequestStatus::Completed),
                (second.request.id.as_str(), RequestStatus::Denied)
            ]
        );

        // approve → revoke: the approval is gone at once.
        let third = plane
            .submit_request(&device, new_request("r3", "carol@contoso.com", "d1", "cc"))
            .await
            .unwrap();
        plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &third.request.id,
                Decision::Approve { hours: None },
                None,
            )
            .await
            .unwrap();
        let revoked = plane
            .decide_request(
                &admin("dan@contoso.com"),
                "contoso",
                &third.request.id,
                Decision::Revoke,
                Some("mistake"),
            )
            .await
            .unwrap();
        assert_eq!(revoked.status, RequestStatus::Revoked);
        assert_eq!(
            revoked.revoked_by_user_principal_name.as_deref(),
            Some("dan@contoso.com")
        );
        assert!(
            plane
                .device_approvals(&device, "d1", None)
                .await
                .unwrap()
                .approvals
                .is_empty()
        );

        // Pending past its expiry: expired by time, and no decision can land on it.
        let fourth = plane
            .submit_request(&device, new_request("r4", "bob@contoso.com", "d1", "dd"))
            .await
            .unwrap();
        clock.advance(Duration::hours(48));
        assert_eq!(
            plane.request("contoso", &fourth.request.id).await.unwrap().status,
            RequestStatus::Expired
        );
        let late = plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &fourth.request.id,
                Decision::Approve { hours: None },
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&late, ControlError::Conflict(m) if m.contains("is expired")),
            "{late}"
        );
        // An approval never used: expired, not completed.
        let fifth = plane
            .submit_request(&device, new_request("r5", "bob@contoso.com", "d1", "ee"))
            .await
            .unwrap();
        plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &fifth.request.id,
                Decision::Approve { hours: Some(1) },
                None,
            )
            .await
            .unwrap();
        clock.advance(Duration::hours(2));
        assert_eq!(
            plane.request("contoso", &fifth.request.id).await.unwrap().status,
            RequestStatus::Expired
        );
        // The device withdraws a pending request.
        let sixth = plane
            .submit_request(&device, new_request("r6", "bob@contoso.com", "d1", "ff"))
            .await
            .unwrap();
        let cancelled = plane.cancel_request(&device, "d1", &sixth.request.id).await.unwrap();
        assert_eq!(cancelled.status, RequestStatus::Cancelled);

        // Listing by state reads the times too.
        let expired = RequestFilter {
            status: Some(RequestStatus::Expired),
            ..RequestFilter::default()
        };
        let listed = plane.list_requests("contoso", &expired).await.unwrap();
        let mut ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        let mut want = vec![fourth.request.id.as_str(), fifth.request.id.as_str()];
        want.sort_unstable();
        assert_eq!(ids, want, "{}", t.backend);
        assert_eq!(
            plane
                .list_requests("contoso", &RequestFilter::default())
                .await
                .unwrap()
                .len(),
            6
        );
        let by_user = RequestFilter {
            user: Some("CAROL@contoso.com".into()),
            ..RequestFilter::default()
        };
        assert_eq!(plane.list_requests("contoso", &by_user).await.unwrap().len(), 1);
        // Another tenant sees none of it, and cannot find it by id.
        assert!(
            plane
                .list_requests("fabrikam", &RequestFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            plane.request("fabrikam", &first.request.id).await.unwrap_err(),
            ControlError::NotFound { .. }
        ));

        // The numbers, against a count by hand.
        let stats = plane
            .request_stats("contoso", start() - Duration::days(1), start() + Duration::days(7))
            .await
            .unwrap();
        assert_eq!(stats.requests, 6);
        let count = |s: &str| stats.by_status[s];
        assert_eq!(
            (
                count("completed"),
                count("denied"),
                count("revoked"),
                count("expired"),
                count("cancelled")
            ),
            (1, 1, 1, 2, 1)
        );
        assert_eq!((stats.approvals, stats.approved_never_used), (3, 2));
        assert_eq!(stats.time_to_decision.count, 4);
        assert_eq!(stats.approvers[0].approver, "ada@contoso.com");
        assert_eq!((stats.approvers[0].approved, stats.approvers[0].denied), (3, 1));

        // Every decision is in the audit log, in order.
        let log = plane.audit_list("contoso", &AuditFilter::default()).await.unwrap();
        let decisions: Vec<&str> = log
            .iter()
            .map(|e| e.activity.as_str())
            .filter(|a| a.ends_with("ElevationRequest"))
            .collect();
        assert_eq!(
            decisions,
            [
                "approveElevationRequest",
                "denyElevationRequest",
                "approveElevationRequest",
                "revokeElevationRequest",
                "approveElevationRequest"
            ]
        );
        assert!(
            plane.audit_verify(Some("contoso")).await.unwrap()[0]
                .problems
                .is_empty()
        );
    })
    .await;
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    warehouse::Clock::now(clock)
}

#[tokio::test]
async fn of_two_admins_deciding_at_once_exactly_one_wins() {
    each_backend(|t: TestDb| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let plane = Arc::new(open(&t, clock).await);
        let device = agent(&plane, None).await;
        for round in 0..5 {
            let asked = plane
                .submit_request(
                    &device,
                    new_request(&format!("race-{round}"), "bob@contoso.com", "d1", "ab"),
                )
                .await
                .unwrap();
            let deciders: Vec<_> = [
                ("ada@contoso.com", Decision::Approve { hours: None }),
                ("dan@contoso.com", Decision::Deny),
            ]
            .into_iter()
            .map(|(who, decision)| {
                let (plane, id) = (plane.clone(), asked.request.id.clone());
                tokio::spawn(async move { plane.decide_request(&admin(who), "contoso", &id, decision, None).await })
            })
            .collect();
            let mut outcomes = Vec::new();
            for decider in deciders {
                outcomes.push(decider.await.unwrap());
            }
            let wins: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
            assert_eq!(wins.len(), 1, "{}: {outcomes:?}", t.backend);
            let loss = outcomes.iter().find_map(|o| o.as_ref().err()).unwrap();
            let now = plane.request("contoso", &asked.request.id).await.unwrap();
            assert!(
                matches!(loss, ControlError::Conflict(m) if m.contains(now.status.as_str())),
                "{loss}"
            );
            assert_eq!(now.status, wins[0].status);
        }
    })
    .await;
}

#[tokio::test]
async fn nobody_decides_their_own_request_and_the_attempt_is_audited() {
    each_backend(|t: TestDb| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let plane = open(&t, clock).await;
        let device = agent(&plane, None).await;
        let asked = plane
            .submit_request(&device, new_request("own", "Ada@Contoso.com", "d1", "ab"))
            .await
            .unwrap();
        let refused = plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &asked.request.id,
                Decision::Approve { hours: None },
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, ControlError::Refused(_)), "{}: {refused}", t.backend);
        assert_eq!(
            plane.request("contoso", &asked.request.id).await.unwrap().status,
            RequestStatus::Pending
        );
        let only = AuditFilter {
            activity: Some("refuseSelfApproval".into()),
            ..AuditFilter::default()
        };
        let log = plane.audit_list("contoso", &only).await.unwrap();
        assert_eq!((log.len(), log[0].activity_result.as_str()), (1, "failure"));
        let stats = plane
            .request_stats("contoso", start(), start() + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(stats.self_approval_attempts, 1);
        // A window over the tenant's maximum is refused with the field.
        let long = plane
            .decide_request(
                &admin("dan@contoso.com"),
                "contoso",
                &asked.request.id,
                Decision::Approve { hours: Some(169) },
                None,
            )
            .await
            .unwrap_err();
        assert!(long.to_string().starts_with("approvalHours"), "{long}");
        let rude = plane
            .decide_request(
                &admin("dan@contoso.com"),
                "contoso",
                &asked.request.id,
                Decision::Deny,
                Some("no\u{1b}[2J"),
            )
            .await
            .unwrap_err();
        assert!(rude.to_string().starts_with("reviewerJustification"), "{rude}");
    })
    .await;
}

#[tokio::test]
async fn a_device_bound_key_speaks_for_its_device_only() {
    each_backend(|t: TestDb| async move {
        let clock = Arc::new(ManualClock::new(start()));
        let plane = open(&t, clock).await;
        let fleet = agent(&plane, None).await;
        let laptop = agent(&plane, Some("d1")).await;
        let theirs = plane
            .submit_request(&fleet, new_request("x", "bob@contoso.com", "d2", "ab"))
            .await
            .unwrap();
        plane
            .decide_request(
                &admin("ada@contoso.com"),
                "contoso",
                &theirs.request.id,
                Decision::Approve { hours: None },
                None,
            )
            .await
            .unwrap();
        let read = plane.device_approvals(&laptop, "d2", None).await.unwrap_err();
        assert!(matches!(read, ControlError::NotFound { .. }), "{}: {read}", t.backend);
        let cancel = plane
            .cancel_request(&laptop, "d2", &theirs.request.id)
            .await
            .unwrap_err();
        assert!(matches!(cancel, ControlError::NotFound { .. }), "{cancel}");
        let forged = plane
            .submit_request(&laptop, new_request("y", "bob@contoso.com", "d2", "ab"))
            .await
            .unwrap_err();
        assert!(forged.to_string().starts_with("requestedOnDeviceId"), "{forged}");
        assert!(
            plane
                .device_approvals(&laptop, "d1", None)
                .await
                .unwrap()
                .approvals
                .is_empty()
        );
        // An admin key cannot be bound to a device.
        let bound_admin = plane
            .create_key_for(
                &admin("ada@contoso.com"),
                "contoso",
                KeyKind::Admin,
                Some(Role::EndpointPrivilegeManager),
                Some("eve@contoso.com"),
                Some("d1"),
            )
            .await
            .unwrap_err();
        assert!(bound_admin.to_string().contains("only agent keys"), "{bound_admin}");

        // A device cannot flood the help desk; its retries are still answered, other devices
        // still ask.
        for n in 0..super::MAX_PENDING_PER_DEVICE {
            plane
                .submit_request(
                    &laptop,
                    new_request(&format!("flood-{n}"), "bob@contoso.com", "d1", "cd"),
                )
                .await
                .unwrap();
        }
        let flood = plane
            .submit_request(&laptop, new_request("flood-x", "bob@contoso.com", "d1", "cd"))
            .await
            .unwrap_err();
        assert!(
            matches!(&flood, ControlError::Conflict(m) if m.contains("waiting")),
            "{}: {flood}",
            t.backend
        );
        let retry = plane
            .submit_request(&laptop, new_request("flood-0", "bob@contoso.com", "d1", "cd"))
            .await
            .unwrap();
        assert!(!retry.created);
        plane
            .submit_request(&fleet, new_request("other", "bob@contoso.com", "d3", "cd"))
            .await
            .unwrap();
    })
    .await;
}
