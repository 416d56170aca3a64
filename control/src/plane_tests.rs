//! The control plane against both backends: every test body runs on a fresh SQLite file and on
//! a fresh database of a real PostgreSQL server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warehouse::policy::RulesPolicy;

use crate::store::Store;
use crate::store::migrate::Migration;
use crate::testing::{TestDb, each_backend, execute};
use crate::{AuditContext, AuditFilter, ControlDb, ControlError, ControlOptions, ControlPlane, KeyKind, Problem, Role};

async fn open(db: &ControlDb) -> ControlPlane {
    ControlPlane::open(db, ControlOptions::default())
        .await
        .expect("the control plane opens")
}

fn cli() -> AuditContext {
    AuditContext::cli(Some("ada@contoso.com"))
}

fn policy(name: &str, rules: usize) -> RulesPolicy {
    let rule = serde_json::json!({
        "name": "git", "fileName": "git.exe", "ruleType": "userConfirmed", "childProcessBehavior": "requireRule"
    });
    let mut policy: RulesPolicy = serde_json::from_value(serde_json::json!({ "name": name, "rules": [] })).unwrap();
    if rules > 0 {
        let rule: warehouse::policy::ElevationRule = serde_json::from_value(rule).expect("a rule parses");
        policy.rules = vec![rule; rules];
    }
    policy
}

#[tokio::test]
async fn keys_are_created_verified_listed_and_revoked_with_an_audit_entry_each() {
    each_backend(|t: TestDb| async move {
        let plane = open(&t.db).await;
        let (agent, agent_record) = plane
            .create_key(&cli(), "contoso", KeyKind::Agent, None, None)
            .await
            .unwrap();
        let (admin, _) = plane
            .create_key(
                &cli(),
                "contoso",
                KeyKind::Admin,
                Some(Role::ReadOnlyOperator),
                Some("bob@contoso.com"),
            )
            .await
            .unwrap();
        let who = plane
            .authenticate_upload(&agent)
            .await
            .unwrap()
            .expect("the agent key works");
        assert_eq!(
            (who.principal.tenant.as_str(), who.principal.kind),
            ("contoso", KeyKind::Agent),
            "{}",
            t.backend
        );
        let admin_who = plane
            .authenticate_admin(&admin)
            .await
            .unwrap()
            .expect("the admin key works");
        assert_eq!(admin_who.upn.as_deref(), Some("bob@contoso.com"));
        assert_eq!(admin_who.role, Some(Role::ReadOnlyOperator));
        assert!(plane.authenticate_admin("elv_admin_00_nope").await.unwrap().is_none());
        assert!(
            plane
                .authenticate_upload(&agent.replacen("agent", "admin", 1))
                .await
                .unwrap()
                .is_none()
        );

        let listed = plane.list_keys(Some("contoso")).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .all(|k| !k.secret_sha256.is_empty() && !agent.contains(&k.secret_sha256))
        );

        plane.revoke_key(&cli(), None, &agent_record.id).await.unwrap();
        assert!(
            plane.authenticate_upload(&agent).await.unwrap().is_none(),
            "{}",
            t.backend
        );
        let err = plane
            .revoke_key(&cli(), Some("fabrikam"), &agent_record.id)
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::UnknownKey(_)), "{err}");

        let log = plane.audit_list("contoso", &AuditFilter::default()).await.unwrap();
        let activities: Vec<&str> = log.iter().map(|e| e.activity.as_str()).collect();
        assert_eq!(activities, ["createKey", "createKey", "revokeKey"], "{}", t.backend);
        assert!(log.iter().all(|e| e.actor.user_principal_name == "ada@contoso.com"));
        assert_eq!(
            log[1].modified_properties[1].new_value.as_deref(),
            Some("read-only-operator")
        );
        // The failed revocation for another tenant is in that tenant's chain.
        let other = plane.audit_list("fabrikam", &AuditFilter::default()).await.unwrap();
        assert_eq!((other.len(), other[0].activity_result.as_str()), (1, "failure"));
        let verified = plane.audit_verify(None).await.unwrap();
        assert_eq!(verified.len(), 2);
        assert!(verified.iter().all(|v| v.problems.is_empty()), "{verified:?}");
        assert_eq!(verified[0].entries, 3);
    })
    .await;
}

#[tokio::test]
async fn a_revocation_on_one_node_is_refused_by_another_within_two_seconds() {
    each_backend(|t: TestDb| async move {
        let (a, b) = (open(&t.db).await, open(&t.db).await);
        let (key, record) = a
            .create_key(&cli(), "contoso", KeyKind::Agent, None, None)
            .await
            .unwrap();
        assert!(
            b.authenticate_upload(&key).await.unwrap().is_some(),
            "a key made on A works on B"
        );
        a.revoke_key(&cli(), None, &record.id).await.unwrap();
        let revoked = Instant::now();
        let deadline = revoked + Duration::from_secs(5);
        while b.authenticate_upload(&key).await.unwrap().is_some() {
            assert!(
                Instant::now() < deadline,
                "{}: B still accepts the revoked key",
                t.backend
            );
            tokio::task::yield_now().await;
        }
        let took = revoked.elapsed();
        eprintln!("{}: revocation reached the other node in {took:?}", t.backend);
        assert!(took <= Duration::from_secs(2), "{}: {took:?}", t.backend);
    })
    .await;
}

#[tokio::test]
async fn revocation_racing_uses_never_lets_a_key_work_after_the_revocation_is_seen() {
    each_backend(|t: TestDb| async move {
        let plane = Arc::new(open(&t.db).await);
        let (key, record) = plane
            .create_key(&cli(), "contoso", KeyKind::Agent, None, None)
            .await
            .unwrap();
        let users: Vec<_> = (0..4)
            .map(|_| {
                let (plane, key) = (plane.clone(), key.clone());
                tokio::spawn(async move {
                    // Once refused, the key must stay refused: a revocation is never undone.
                    let mut refused_at = None;
                    for i in 0..200 {
                        let ok = plane.authenticate_upload(&key).await.unwrap().is_some();
                        match (ok, refused_at) {
                            (false, None) => refused_at = Some(i),
                            (true, Some(at)) => panic!("accepted at {i} after being refused at {at}"),
                            _ => {}
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        plane.revoke_key(&cli(), None, &record.id).await.unwrap();
        for user in users {
            user.await.unwrap();
        }
        assert!(
            plane.authenticate_upload(&key).await.unwrap().is_none(),
            "{}",
            t.backend
        );
    })
    .await;
}

#[tokio::test]
async fn settings_and_rules_policies_are_stored_with_old_and_new_values() {
    each_backend(|t: TestDb| async move {
        let plane = open(&t.db).await;
        assert_eq!(plane.settings_of("contoso").await.unwrap(), Default::default());
        let set = plane
            .update_settings(&cli(), "contoso", |s| {
                s.reporting_cap = warehouse::ReportingLevel::Managed;
                s.elevation_retention_days = Some(2557);
            })
            .await
            .unwrap();
        assert_eq!(plane.settings_of("contoso").await.unwrap(), set);
        let refused = plane
            .update_settings(&cli(), "contoso", |s| s.diagnostic_retention_days = Some(0))
            .await;
        assert!(matches!(refused, Err(ControlError::Invalid(_))), "{refused:?}");

        assert!(
            !plane
                .import_policy(&cli(), "contoso", &policy("Dev tools", 1))
                .await
                .unwrap()
        );
        assert!(
            plane
                .import_policy(&cli(), "contoso", &policy("Dev tools", 2))
                .await
                .unwrap()
        );
        plane
            .import_policy(&cli(), "contoso", &policy("Admin tools", 0))
            .await
            .unwrap();
        let stored = plane.imported_policies("contoso").await.unwrap();
        assert_eq!(
            stored,
            vec![policy("Admin tools", 0), policy("Dev tools", 2)],
            "{}",
            t.backend
        );
        assert!(plane.imported_policies("fabrikam").await.unwrap().is_empty());

        let log = plane.audit_list("contoso", &AuditFilter::default()).await.unwrap();
        let cap = &log[0].modified_properties;
        assert_eq!(cap[0].display_name, "reportingCap");
        assert_eq!(
            (cap[0].old_value.as_deref(), cap[0].new_value.as_deref()),
            (Some("all"), Some("managed"))
        );
        let replaced = &log[2];
        assert_eq!(replaced.activity_operation_type, "Patch");
        assert_eq!(replaced.modified_properties[0].old_value.as_deref(), Some("1 rules"));
        let only_imports = AuditFilter {
            activity: Some("importRulesPolicy".into()),
            ..Default::default()
        };
        assert_eq!(plane.audit_list("contoso", &only_imports).await.unwrap().len(), 3);
        let from_later = AuditFilter {
            from: Some(log[2].activity_date_time),
            actor: Some("ada@contoso.com".into()),
            ..Default::default()
        };
        assert_eq!(
            plane
                .audit_list("contoso", &from_later)
                .await
                .unwrap()
                .first()
                .map(|e| e.seq),
            Some(3)
        );
        let nobody = AuditFilter {
            actor: Some("mallory@contoso.com".into()),
            ..Default::default()
        };
        assert!(plane.audit_list("contoso", &nobody).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn two_nodes_importing_the_same_policy_leave_one_policy_and_one_chain() {
    each_backend(|t: TestDb| async move {
        let (a, b) = (Arc::new(open(&t.db).await), Arc::new(open(&t.db).await));
        let imports: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .flat_map(|plane| (0..5).map(move |_| plane.clone()))
            .map(|plane| {
                tokio::spawn(async move { plane.import_policy(&cli(), "contoso", &policy("Dev tools", 1)).await })
            })
            .collect();
        let mut replaced = 0;
        for import in imports {
            replaced += usize::from(import.await.unwrap().unwrap());
        }
        assert_eq!(replaced, 9, "{}: exactly one import found no earlier one", t.backend);
        assert_eq!(
            a.imported_policies("contoso").await.unwrap(),
            vec![policy("Dev tools", 1)]
        );
        let verified = b.audit_verify(Some("contoso")).await.unwrap();
        assert_eq!(
            (verified[0].entries, verified[0].problems.len()),
            (10, 0),
            "{}",
            t.backend
        );
    })
    .await;
}

#[tokio::test]
async fn audit_verify_names_an_edited_a_removed_and_a_reordered_entry() {
    each_backend(|t: TestDb| async move {
        let plane = open(&t.db).await;
        for _ in 0..6 {
            plane.create_key(&cli(), "contoso", KeyKind::Agent, None, None).await.unwrap();
        }
        // The log refuses changes through ordinary SQL.
        let blocked = try_execute(&t.db, "UPDATE audit_events SET actor_upn = 'x' WHERE seq = 1").await;
        assert!(blocked.is_err_and(|e| e.contains("append-only")), "{}", t.backend);
        let drop_guards = match t.db {
            ControlDb::Sqlite(_) => "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;",
            ControlDb::Postgres(_) => "DROP TRIGGER audit_events_no_change ON audit_events;",
        };
        execute(&t.db, drop_guards).await;
        let problems = || async { plane.audit_verify(Some("contoso")).await.unwrap().remove(0).problems };

        execute(&t.db, "UPDATE audit_events SET actor_upn = 'mallory@contoso.com' WHERE seq = 2").await;
        assert_eq!(problems().await, vec![Problem::Edited { seq: 2 }], "{}", t.backend);
        execute(&t.db, "UPDATE audit_events SET actor_upn = 'ada@contoso.com' WHERE seq = 2").await;
        assert_eq!(problems().await, vec![]);

        execute(&t.db, "UPDATE audit_events SET seq = -1 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = -1").await;
        assert_eq!(
            problems().await,
            vec![Problem::Reordered { seq: 3, was: 4 }, Problem::Reordered { seq: 4, was: 3 }],
            "{}",
            t.backend
        );
        execute(&t.db, "UPDATE audit_events SET seq = -1 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = -1").await;

        execute(&t.db, "DELETE FROM audit_events WHERE seq = 5").await;
        assert_eq!(problems().await, vec![Problem::Removed { from: 5, to: 5 }], "{}", t.backend);
    })
    .await;
}

async fn try_execute(db: &ControlDb, sql: &str) -> Result<(), String> {
    let store = Store::connect(db).await.map_err(|e| e.to_string())?;
    let mut tx = store.begin_write().await.map_err(|e| e.to_string())?;
    let result: Result<(), sqlx::Error> = crate::on!(&mut tx, conn => {
        sqlx::raw_sql(sql).execute(&mut *conn).await.map(|_| ())
    });
    result.map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_a_failing_migration_changes_nothing() {
    each_backend(|t: TestDb| async move {
        open(&t.db).await.close().await;
        let store = Store::connect(&t.db).await.unwrap();
        let current = store.migrations();
        let broken = Migration {
            version: current.last().unwrap().version + 1,
            description: "broken on purpose",
            sql: "CREATE TABLE half_done (x BIGINT); ALTER TABLE api_keys ADD COLUMN note TEXT; INSERT INTO no_such_table VALUES (1);",
        };
        let with_broken: Vec<Migration> = current.iter().copied().chain([broken]).collect();
        let err = store.migrate_with(&with_broken).await.unwrap_err();
        assert!(matches!(err, ControlError::Migration { version, .. } if version == broken.version), "{err}");
        // Nothing of it stayed: no table, no column, no version.
        assert!(try_execute(&t.db, "SELECT x FROM half_done").await.is_err(), "{}", t.backend);
        assert!(try_execute(&t.db, "SELECT note FROM api_keys").await.is_err(), "{}", t.backend);
        assert_eq!(store.migrate_with(current).await.unwrap(), Vec::<i64>::new());

        execute(
            &t.db,
            "INSERT INTO control_migrations (version, description, checksum, applied_at) VALUES (99, 'from the future', 'x', '2030-01-01T00:00:00.000000Z')",
        )
        .await;
        let err = ControlPlane::open(&t.db, ControlOptions::default()).await.unwrap_err();
        assert!(matches!(err, ControlError::SchemaTooNew { ref unknown, .. } if unknown == &[99]), "{err}");
        let message = err.to_string();
        assert!(message.contains("[99]") && message.contains("upgrade elevation"), "{message}");
    })
    .await;
}

#[tokio::test]
async fn json_files_of_the_earlier_version_move_into_the_store_once() {
    each_backend(|t: TestDb| async move {
        let dir = t.path();
        let keys = r#"{"keys":[
            {"id":"00112233aabbccdd","tenant":"contoso","kind":"agent","secretSha256":"SECRETHASH","createdAt":"2026-11-01T00:00:00Z"},
            {"id":"8899aabbccddeeff","tenant":"fabrikam","kind":"admin","role":"read-only-operator","secretSha256":"X","createdAt":"2026-11-02T00:00:00Z","revokedAt":"2026-11-03T00:00:00Z"}]}"#;
        std::fs::write(dir.join("keys.json"), keys).unwrap();
        std::fs::write(dir.join("tenants.json"), r#"{"contoso":{"reportingCap":"managed","elevationRetentionDays":800}}"#).unwrap();
        let rules = serde_json::json!({ "contoso": [policy("Dev tools", 1)] });
        std::fs::write(dir.join("rules.json"), rules.to_string()).unwrap();

        let plane = open(&t.db).await;
        let moved = plane.migrate_json_files(dir).await.unwrap().expect("files were there");
        assert_eq!((moved.keys, moved.tenants, moved.policies), (2, 1, 1), "{}", t.backend);
        for file in crate::json_files::FILES {
            assert!(!dir.join(file).exists() && dir.join(format!("{file}.migrated")).exists(), "{file}");
        }
        let keys = plane.list_keys(None).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].secret_sha256, "SECRETHASH");
        assert!(keys[1].revoked_at.is_some() && keys[1].role == Some(Role::ReadOnlyOperator));
        let settings = plane.settings_of("contoso").await.unwrap();
        assert_eq!((settings.reporting_cap, settings.elevation_retention_days), (warehouse::ReportingLevel::Managed, Some(800)));
        assert_eq!(plane.imported_policies("contoso").await.unwrap(), vec![policy("Dev tools", 1)]);
        let log = plane.audit_list("contoso", &AuditFilter::default()).await.unwrap();
        assert_eq!((log[0].activity.as_str(), log[0].actor.kind.as_str()), ("migrateJsonFiles", "system"));
        // Nothing left to move; moving the same files again (another node) imports nothing twice.
        assert_eq!(plane.migrate_json_files(dir).await.unwrap(), None);
        for file in crate::json_files::FILES {
            std::fs::rename(dir.join(format!("{file}.migrated")), dir.join(file)).unwrap();
        }
        let again = plane.migrate_json_files(dir).await.unwrap().unwrap();
        assert_eq!((again.keys, again.tenants, again.policies), (0, 0, 0), "{}", t.backend);
        assert_eq!(plane.list_keys(None).await.unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn sessions_stand_for_a_live_admin_key_until_they_expire_or_end() {
    each_backend(|t: TestDb| async move {
        let plane = open(&t.db).await;
        let (key, record) = plane
            .create_key(
                &cli(),
                "contoso",
                KeyKind::Admin,
                Some(Role::EndpointPrivilegeReader),
                Some("ada@contoso.com"),
            )
            .await
            .unwrap();
        let principal = plane.authenticate_admin(&key).await.unwrap().unwrap();
        let (token, session) = plane
            .create_session(&principal, chrono::Duration::hours(8))
            .await
            .unwrap();
        assert_ne!(token, session.csrf_secret);
        let found = plane.session(&token).await.unwrap().expect("the session is live");
        assert_eq!(
            (found.principal, found.csrf_secret),
            (principal.clone(), session.csrf_secret)
        );
        assert!(plane.session("not-a-token").await.unwrap().is_none());
        let (expired, _) = plane
            .create_session(&principal, chrono::Duration::zero())
            .await
            .unwrap();
        assert!(plane.session(&expired).await.unwrap().is_none(), "{}", t.backend);
        plane.delete_session(&token).await.unwrap();
        assert!(plane.session(&token).await.unwrap().is_none());
        let (again, _) = plane
            .create_session(&principal, chrono::Duration::hours(1))
            .await
            .unwrap();
        plane.revoke_key(&cli(), None, &record.id).await.unwrap();
        assert!(
            plane.session(&again).await.unwrap().is_none(),
            "{}: a revoked key's session ends",
            t.backend
        );
        let (agent, _) = plane
            .create_key(&cli(), "contoso", KeyKind::Agent, None, None)
            .await
            .unwrap();
        let agent = plane.authenticate_upload(&agent).await.unwrap().unwrap().principal;
        assert!(plane.create_session(&agent, chrono::Duration::hours(1)).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_given_up() {
    each_backend(|t: TestDb| async move {
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let clock = Arc::new(warehouse::ManualClock::new(start));
        let options = ControlOptions {
            clock: clock.clone(),
            ..ControlOptions::default()
        };
        let plane = ControlPlane::open(&t.db, options).await.unwrap();
        let ttl = Duration::from_secs(60);
        let backend = t.backend;
        assert!(
            plane.try_lease("maintenance", "a", ttl).await.unwrap(),
            "{backend}: a takes a free lease"
        );
        assert!(
            !plane.try_lease("maintenance", "b", ttl).await.unwrap(),
            "{backend}: b is refused"
        );
        assert!(
            plane.try_lease("other-job", "b", ttl).await.unwrap(),
            "{backend}: leases are per name"
        );
        clock.advance(chrono::Duration::seconds(50));
        assert!(
            plane.try_lease("maintenance", "a", ttl).await.unwrap(),
            "{backend}: a renews"
        );
        clock.advance(chrono::Duration::seconds(50));
        assert!(
            !plane.try_lease("maintenance", "b", ttl).await.unwrap(),
            "{backend}: the renewal counted"
        );
        clock.advance(chrono::Duration::seconds(11));
        assert!(
            plane.try_lease("maintenance", "b", ttl).await.unwrap(),
            "{backend}: b takes it once expired"
        );
        assert!(
            !plane.try_lease("maintenance", "a", ttl).await.unwrap(),
            "{backend}: a has lost it"
        );
        assert_eq!(plane.lease_holder("maintenance").await.unwrap().unwrap().0, "b");
        plane.release_lease("maintenance", "a").await.unwrap();
        assert_eq!(
            plane.lease_holder("maintenance").await.unwrap().unwrap().0,
            "b",
            "{backend}: only the holder gives it up"
        );
        plane.release_lease("maintenance", "b").await.unwrap();
        assert!(
            plane.try_lease("maintenance", "a", ttl).await.unwrap(),
            "{backend}: free again at once"
        );
        plane.close().await;
    })
    .await;
}

#[tokio::test]
async fn the_first_node_to_claim_a_batch_lands_it_and_the_claim_answers_retries_elsewhere() {
    use crate::batches::{BatchClaim, BatchRef};
    each_backend(|t: TestDb| async move {
        let plane = ControlPlane::open(&t.db, ControlOptions::default()).await.unwrap();
        let backend = t.backend;
        let at = |hour: u32| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-12-01T{hour:02}:00:00Z"))
                .unwrap()
                .to_utc()
        };
        let batch = |tenant: &'static str, id: &'static str| BatchRef {
            tenant,
            device_id: "d-1",
            batch_id: id,
        };
        let claim = |b: BatchRef<'static>, answer: &'static str, hour: u32| BatchClaim {
            batch: b,
            answer,
            received_at: at(hour),
        };
        let (x, y, z) = (batch("contoso", "x"), batch("contoso", "y"), batch("contoso", "z"));
        let on_a = [
            claim(x, r#"{"node":"a","n":1}"#, 9),
            claim(y, r#"{"node":"a","n":2}"#, 10),
        ];
        assert_eq!(
            plane.claim_batches("a", &on_a).await.unwrap(),
            Vec::<usize>::new(),
            "{backend}"
        );
        // B holds copies of y (a retry that crossed nodes) and of z: only y is A's.
        let on_b = [claim(z, r#"{"node":"b"}"#, 11), claim(y, r#"{"node":"b"}"#, 11)];
        assert_eq!(plane.claim_batches("b", &on_b).await.unwrap(), vec![1], "{backend}");
        // A landing retried or replayed by A keeps A's claims.
        assert_eq!(
            plane.claim_batches("a", &on_a).await.unwrap(),
            Vec::<usize>::new(),
            "{backend}"
        );
        assert_eq!(plane.claim_batches("b", &on_a).await.unwrap(), vec![0, 1], "{backend}");
        // The same batch id under another tenant is another batch.
        let other_tenant = [claim(batch("fabrikam", "y"), "{}", 11)];
        assert_eq!(
            plane.claim_batches("b", &other_tenant).await.unwrap(),
            Vec::<usize>::new()
        );
        assert_eq!(
            plane.claimed_batch_answer(y).await.unwrap().as_deref(),
            Some(r#"{"node":"a","n":2}"#),
            "{backend}: a retry anywhere gets the first answer"
        );
        assert_eq!(
            plane.claimed_batch_answer(batch("contoso", "never")).await.unwrap(),
            None
        );
        // Claims older than the window go; the rest stay.
        assert_eq!(plane.forget_batch_claims(at(10)).await.unwrap(), 1, "{backend}");
        assert_eq!(plane.claimed_batch_answer(x).await.unwrap(), None);
        assert!(plane.claimed_batch_answer(y).await.unwrap().is_some());
        // Many claims at once go through in statements of bounded size.
        let ids: Vec<String> = (0..12_000).map(|i| format!("bulk-{i}")).collect();
        let bulk: Vec<BatchClaim<'_>> = ids
            .iter()
            .map(|id| BatchClaim {
                batch: BatchRef {
                    tenant: "contoso",
                    device_id: "d-2",
                    batch_id: id,
                },
                answer: "{}",
                received_at: at(12),
            })
            .collect();
        assert!(plane.claim_batches("a", &bulk).await.unwrap().is_empty(), "{backend}");
        let taken = plane.claim_batches("b", &bulk[4_990..5_010]).await.unwrap();
        assert_eq!(taken, (0..20).collect::<Vec<_>>(), "{backend}");
        let mut mixed: Vec<BatchClaim<'_>> = bulk[11_990..].to_vec();
        mixed.push(claim(batch("contoso", "fresh"), "{}", 12));
        assert_eq!(
            plane.claim_batches("b", &mixed).await.unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        // The same batch twice in one landing: the first copy is claimed, the repeat dropped.
        let twice = [
            claim(batch("contoso", "dup"), "{}", 12),
            claim(batch("contoso", "other"), "{}", 12),
            claim(batch("contoso", "dup"), "{}", 12),
        ];
        assert_eq!(plane.claim_batches("a", &twice).await.unwrap(), vec![2], "{backend}");
        assert_eq!(
            plane.claim_batches("b", &twice).await.unwrap(),
            vec![0, 1, 2],
            "{backend}"
        );
        plane.close().await;
    })
    .await;
}
