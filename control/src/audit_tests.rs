//! The chain check on chains built in memory; the same tampering through SQL on both backends
//! is tested in `plane_tests.rs`.

use chrono::TimeZone;

use super::*;

fn chain(n: i64) -> Vec<AuditEvent> {
    let mut events: Vec<AuditEvent> = Vec::new();
    for seq in 1..=n {
        let mut event = AuditEvent {
            tenant: "contoso".into(),
            seq,
            id: format!("id-{seq}"),
            activity_date_time: Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, seq as u32).unwrap(),
            actor: Actor::cli(Some("ada@contoso.com")),
            activity: "createKey".into(),
            activity_operation_type: "Create".into(),
            activity_result: "success".into(),
            resource_type: "apiKey".into(),
            resource_id: format!("key-{seq}"),
            modified_properties: vec![ModifiedProperty::new("role", None, Some("read-only-operator".into()))],
            correlation_id: format!("corr-{seq}"),
            prev_hash: events.last().map_or(GENESIS.to_owned(), |e| e.hash.clone()),
            hash: String::new(),
        };
        event.hash = event.compute_hash(seq);
        events.push(event);
    }
    events
}

fn check(events: Vec<AuditEvent>, head: (i64, &str)) -> Vec<Problem> {
    let wrapped: Vec<_> = events.into_iter().map(Ok).collect();
    check_chain(&wrapped, head.0, head.1)
}

#[test]
fn an_intact_chain_has_no_problem() {
    let events = chain(5);
    let head = events[4].hash.clone();
    assert_eq!(check(events, (5, &head)), vec![]);
    assert_eq!(check(vec![], (0, GENESIS)), vec![]);
}

#[test]
fn every_kind_of_tampering_is_found_and_named() {
    let events = chain(6);
    let head = events[5].hash.clone();

    let mut edited = events.clone();
    edited[2].resource_id = "someone-else".into();
    assert_eq!(check(edited, (6, &head)), vec![Problem::Edited { seq: 3 }]);

    // Edited and re-hashed: the next entry still links to the old version.
    let mut rehashed = events.clone();
    rehashed[2].actor.user_principal_name = "mallory@contoso.com".into();
    rehashed[2].hash = rehashed[2].compute_hash(3);
    assert_eq!(check(rehashed, (6, &head)), vec![Problem::Edited { seq: 3 }]);

    let mut removed = events.clone();
    removed.remove(3);
    assert_eq!(check(removed, (6, &head)), vec![Problem::Removed { from: 4, to: 4 }]);

    let mut truncated = events.clone();
    truncated.pop();
    assert_eq!(check(truncated, (6, &head)), vec![Problem::Removed { from: 6, to: 6 }]);

    // Entries 2 and 3 swap places (their seq swapped, nothing re-hashed).
    let mut reordered = events.clone();
    reordered.swap(1, 2);
    reordered[1].seq = 2;
    reordered[2].seq = 3;
    assert_eq!(
        check(reordered, (6, &head)),
        vec![
            Problem::Reordered { seq: 2, was: 3 },
            Problem::Reordered { seq: 3, was: 2 }
        ]
    );

    let mut added = events.clone();
    added.pop();
    let last = added[4].hash.clone();
    let extra = events[5].clone();
    added.push(extra);
    assert_eq!(check(added, (5, &last)), vec![Problem::Added { seq: 5 }]);

    let messages: Vec<String> = [
        Problem::Edited { seq: 3 },
        Problem::Removed { from: 4, to: 4 },
        Problem::Reordered { seq: 2, was: 3 },
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        messages,
        [
            "entry 3 was edited: its content no longer matches its hash",
            "entry 4 was removed",
            "entry 2 was reordered: it was written as entry 3"
        ]
    );
}

#[test]
fn the_hash_covers_the_place_and_the_link() {
    let events = chain(2);
    assert_ne!(events[1].compute_hash(2), events[1].compute_hash(3));
    let mut relinked = events[1].clone();
    relinked.prev_hash = GENESIS.into();
    assert_ne!(relinked.compute_hash(2), events[1].hash);
}
