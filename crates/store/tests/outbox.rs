//! The CTI outbox table through the store's public API, on real files.

use sipcti_store::{OutboxChange, OutboxRow, Store, SCHEMA_VERSION};

fn row(id: u64, call: &str, kind: &str) -> OutboxRow {
    OutboxRow {
        id,
        call_id: call.into(),
        kind: kind.into(),
        event: format!(r#"{{"event":"{kind}","direction":"in","callId":"{call}"}}"#),
        created_unix_ms: 1_767_225_600_000 + id % 1000,
        done: false,
        attempted: false,
        dup_harmful: kind == "hangup",
    }
}

#[test]
fn rows_survive_a_reopen_in_id_order_with_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("outbox.db");
    {
        let mut s = Store::open(&file).unwrap();
        // inserted out of order in one batch: loaded by id
        s.outbox_apply(&[
            OutboxChange::Insert(row(3, "b", "newCall")),
            OutboxChange::Insert(row(1, "a", "newCall")),
            OutboxChange::Insert(row(2, "a", "answer")),
            OutboxChange::Insert(row(4, "a", "hangup")),
            OutboxChange::Done(1),
            OutboxChange::Attempted(4, true),
        ])
        .unwrap();
    }
    let mut s = Store::open(&file).unwrap();
    let (rows, skipped) = s.outbox_load().unwrap();
    assert_eq!(skipped, 0);
    let mut r1 = row(1, "a", "newCall");
    r1.done = true;
    let mut r4 = row(4, "a", "hangup");
    r4.attempted = true;
    assert_eq!(
        rows,
        vec![r1, row(2, "a", "answer"), row(3, "b", "newCall"), r4]
    );
    assert_eq!(s.outbox_len().unwrap(), 4);
    // a finished call leaves no row
    s.outbox_apply(&[
        OutboxChange::Attempted(4, false),
        OutboxChange::Insert(row(5, "a", "answer")),
        OutboxChange::RemoveCall {
            call_id: "a".into(),
            up_to: 4,
        },
    ])
    .unwrap();
    // the call's rows up to its hangup are gone, a later one stays
    assert_eq!(
        s.outbox_load().unwrap().0,
        vec![row(3, "b", "newCall"), row(5, "a", "answer")]
    );
    assert_eq!(s.outbox_len().unwrap(), 2);
}

#[test]
fn a_failed_batch_writes_nothing() {
    let mut s = Store::open_in_memory().unwrap();
    let err = s
        .outbox_apply(&[
            OutboxChange::Insert(row(1, "a", "newCall")),
            OutboxChange::Insert(row(u64::MAX, "a", "hangup")),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("insert outbox row"), "{err}");
    assert_eq!(s.outbox_len().unwrap(), 0);
}

#[test]
fn the_outbox_is_migration_two() {
    assert_eq!(SCHEMA_VERSION, 2);
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(s.outbox_load().unwrap(), (vec![], 0));
}
