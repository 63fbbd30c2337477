//! The store through its public API, on real files in a temp dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use sipcti_store::{BindingChange, Store, StoreError, StoredBinding, SCHEMA_VERSION};
use sipcti_wire::TransportKind;

/// A fixed "now" (2026-01-01T00:00:00Z) so expiries are deterministic.
const NOW: u64 = 1_767_225_600_000;

fn binding(key: &str, user: &str, expires_unix_ms: u64) -> StoredBinding {
    StoredBinding {
        key: key.to_string(),
        aor: format!("sip:{user}@provider.example"),
        user: user.to_string(),
        contact: format!("sip:{user}@192.168.10.21:5060;transport=udp"),
        source: "192.168.10.21:5060".parse().unwrap(),
        transport: TransportKind::Udp,
        path: false,
        expires_unix_ms,
    }
}

/// A TCP binding from an IPv6 source registered with Path: the other value of every field.
fn binding_v6(key: &str) -> StoredBinding {
    StoredBinding {
        key: key.to_string(),
        aor: "sip:202@provider.example".into(),
        user: "202".into(),
        contact: "sip:202@[2001:db8::22]:5070;transport=tcp".into(),
        source: "[2001:db8::22]:51234".parse().unwrap(),
        transport: TransportKind::Tcp,
        path: true,
        expires_unix_ms: NOW + 3_600_000,
    }
}

fn store_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sipcti.db");
    (dir, file)
}

#[test]
fn round_trip_through_a_file() {
    let (_dir, file) = store_file();
    let mut s = Store::open(&file).unwrap();
    assert_eq!(s.path(), file);
    let b = binding("b3f9c0a1d2e4f5a6", "201", NOW + 60_000);
    let v6 = binding_v6("a000000000000001");
    s.upsert_binding(&b).unwrap();
    s.upsert_binding(&v6).unwrap();
    // ordered by key, every field as written
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![v6, b]);
    assert!(file.is_file());
}

#[test]
fn upsert_replaces_the_binding_with_the_same_key() {
    let mut s = Store::open_in_memory().unwrap();
    s.upsert_binding(&binding("k", "201", NOW + 1_000)).unwrap();
    let mut again = binding_v6("k");
    again.expires_unix_ms = NOW + 2_000;
    s.upsert_binding(&again).unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![again]);
}

#[test]
fn reopen_after_drop_keeps_the_rows() {
    // the restart case of issue 8: REGISTER stored, sipcti restarts, the call finds it
    let (_dir, file) = store_file();
    let b = binding("k1", "201", NOW + 60_000);
    let v6 = binding_v6("k2");
    {
        let mut s = Store::open(&file).unwrap();
        s.apply(&[
            BindingChange::Upsert(b.clone()),
            BindingChange::Upsert(v6.clone()),
        ])
        .unwrap();
    }
    let mut s = Store::open(&file).unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![b, v6]);
}

/// Set by `a_killed_process_loses_no_committed_binding` for its child run of this binary.
const CRASH_FILE_ENV: &str = "SIPCTI_STORE_TEST_CRASH_FILE";

/// Not a test on its own: in the child process, write and then abort without closing.
#[test]
fn crash_child() {
    let Some(file) = std::env::var_os(CRASH_FILE_ENV) else {
        return;
    };
    let mut s = Store::open(Path::new(&file)).unwrap();
    s.upsert_binding(&binding("k1", "201", NOW + 60_000))
        .unwrap();
    s.apply(&[BindingChange::Upsert(binding_v6("k2"))]).unwrap();
    // no drop, no checkpoint, no close: as if killed right after the REGISTER's 200
    std::process::abort();
}

#[test]
fn a_killed_process_loses_no_committed_binding() {
    let (_dir, file) = store_file();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_FILE_ENV, &file)
        .output()
        .expect("run the child");
    let child_said = || {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // aborted, not failed (a panic exits with 101, an abort is SIGABRT)
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "the child should have aborted: {}\n{}",
            out.status,
            child_said()
        );
    }
    assert!(
        !out.status.success(),
        "the child should have aborted: {}",
        child_said()
    );
    // the commits live in the WAL, not yet checkpointed into the main file
    let wal = file.with_file_name("sipcti.db-wal");
    assert!(
        std::fs::metadata(&wal)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "expected a non-empty {}",
        wal.display()
    );
    let mut s = Store::open(&file).unwrap();
    assert_eq!(
        s.load_bindings(NOW).unwrap(),
        vec![binding("k1", "201", NOW + 60_000), binding_v6("k2")]
    );
}

#[test]
fn expired_rows_are_dropped_at_load() {
    let (_dir, file) = store_file();
    let mut s = Store::open(&file).unwrap();
    let live = binding("live", "201", NOW + 1);
    s.apply(&[
        BindingChange::Upsert(binding("long-gone", "201", NOW - 3_600_000)),
        BindingChange::Upsert(binding("just-now", "202", NOW)),
        BindingChange::Upsert(live.clone()),
    ])
    .unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![live.clone()]);
    drop(s);
    // deleted, not just filtered: an earlier clock does not bring them back
    let mut s = Store::open(&file).unwrap();
    assert_eq!(s.load_bindings(0).unwrap(), vec![live]);
    assert_eq!(s.load_bindings(u64::MAX).unwrap(), vec![]);
}

#[test]
fn remove_deletes_one_binding_and_a_missing_key_is_fine() {
    let (_dir, file) = store_file();
    let mut s = Store::open(&file).unwrap();
    let keep = binding("keep", "201", NOW + 60_000);
    s.upsert_binding(&keep).unwrap();
    s.upsert_binding(&binding("gone", "202", NOW + 60_000))
        .unwrap();
    s.remove_binding("gone").unwrap();
    s.remove_binding("never-there").unwrap();
    drop(s);
    let mut s = Store::open(&file).unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![keep]);
}

#[test]
fn apply_is_atomic_one_bad_change_applies_nothing() {
    let (_dir, file) = store_file();
    let mut s = Store::open(&file).unwrap();
    let old = binding("old", "201", NOW + 60_000);
    s.upsert_binding(&old).unwrap();
    // the bad change comes last, after an insert and a remove the store has already run
    let mut bad = binding("bad", "203", 0);
    bad.expires_unix_ms = u64::MAX;
    let err = s
        .apply(&[
            BindingChange::Upsert(binding("new", "202", NOW + 60_000)),
            BindingChange::Remove("old".into()),
            BindingChange::Upsert(bad),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidBinding { key, .. } if key == "bad"),
        "{err:?}"
    );
    assert!(err.to_string().contains("i64::MAX"), "{err}");
    drop(s);
    let mut s = Store::open(&file).unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![old]);
}

#[test]
fn an_empty_key_is_refused() {
    let mut s = Store::open_in_memory().unwrap();
    let err = s.upsert_binding(&binding("", "201", NOW + 1)).unwrap_err();
    assert!(err.to_string().contains("key is empty"), "{err}");
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![]);
}

#[test]
fn apply_group_commits_a_thousand_changes() {
    let (_dir, file) = store_file();
    let mut s = Store::open(&file).unwrap();
    let mut changes: Vec<BindingChange> = (0..1_000)
        .map(|i| BindingChange::Upsert(binding(&format!("k{i:04}"), "201", NOW + 60_000 + i)))
        .collect();
    // removes in the same batch see the upserts before them
    changes.extend(
        (0..1_000)
            .step_by(2)
            .map(|i| BindingChange::Remove(format!("k{i:04}"))),
    );
    s.apply(&changes).unwrap();
    drop(s);
    let mut s = Store::open(&file).unwrap();
    let got = s.load_bindings(NOW).unwrap();
    assert_eq!(got.len(), 500);
    assert_eq!(got[0], binding("k0001", "201", NOW + 60_001));
    assert_eq!(got[499].key, "k0999");
}

#[test]
fn rows_that_do_not_parse_are_skipped_and_counted() {
    let (_dir, file) = store_file();
    let good = binding("good", "201", NOW + 60_000);
    Store::open(&file).unwrap().upsert_binding(&good).unwrap();
    // an operator's edit, or a future sipcti's value, that this build cannot read
    let raw = Connection::open(&file).unwrap();
    raw.execute_batch(&format!(
        "INSERT INTO bindings VALUES ('bad-source', 'sip:x@y', 'x', 'sip:x@z', 'not-an-address', 'udp', 0, {e});
         INSERT INTO bindings VALUES ('bad-transport', 'sip:x@y', 'x', 'sip:x@z', '10.0.0.1:5060', 'sctp', 0, {e});
         INSERT INTO bindings VALUES ('bad-path', 'sip:x@y', 'x', 'sip:x@z', '10.0.0.1:5060', 'tcp', 7, {e});",
        e = NOW + 60_000
    ))
    .unwrap();
    drop(raw);
    let mut s = Store::open(&file).unwrap();
    let loaded = s.load(NOW).unwrap();
    assert_eq!(loaded.bindings, vec![good.clone()]);
    assert_eq!(loaded.skipped, 3);
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![good.clone()]);
    // they go once expired, like any row
    assert_eq!(
        s.load(NOW + 60_000).unwrap(),
        sipcti_store::Loaded {
            bindings: vec![],
            skipped: 0
        }
    );
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_clearly() {
    let (_dir, file) = store_file();
    let junk = b"# sipcti.toml\n[listen]\nudp = \"0.0.0.0:5060\"\n".repeat(100);
    std::fs::write(&file, &junk).unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("not an SQLite database"), "{msg}");
    // and the file is left as it was
    assert_eq!(std::fs::read(&file).unwrap(), junk);
}

#[test]
fn another_applications_sqlite_database_is_refused() {
    let (_dir, file) = store_file();
    Connection::open(&file)
        .unwrap()
        .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(err.to_string().contains("another application"), "{err}");

    let (_dir2, file2) = store_file();
    Connection::open(&file2)
        .unwrap()
        .pragma_update(None, "application_id", 0x1234)
        .unwrap();
    let err = Store::open(&file2).unwrap_err();
    assert!(err.to_string().contains("application_id 0x1234"), "{err}");
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, file) = store_file();
    drop(Store::open(&file).unwrap());
    Connection::open(&file)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == SCHEMA_VERSION + 1),
        "{err:?}"
    );
}

#[test]
fn a_missing_directory_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-dir").join("sipcti.db");
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::MissingDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no-such-dir"), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!dir.path().join("no-such-dir").exists());
}

#[test]
fn a_directory_as_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn the_file_is_in_wal_mode_with_sipcti_ids() {
    let (_dir, file) = store_file();
    let s = Store::open(&file).unwrap();
    // asked through a second connection: WAL mode is recorded in the file itself
    let raw = Connection::open(&file).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = raw
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, sipcti_store::APPLICATION_ID);
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(s);
}

#[test]
fn in_memory_store_works_and_keeps_nothing() {
    let mut s = Store::open_in_memory().unwrap();
    let b = binding("k", "201", NOW + 1);
    s.upsert_binding(&b).unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![b]);
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(s.load_bindings(NOW).unwrap(), vec![]);
}
