//! The embedded durable store of sipcti: one SQLite file, no server to install (issue 8).
//!
//! It holds the registration bindings sipcti keeps for the phones whose REGISTERs it
//! relays to the trunk's registrar, so that a restart of sipcti between a REGISTER and
//! an inbound call does not lose the call, and the durable CTI outbox (issue 9,
//! [`Store::outbox_apply`], [`Store::outbox_load`]): every CTI event before it is
//! delivered, and the calls still open in Zammad. Tables join through the migration
//! list ([`SCHEMA_VERSION`]).
//!
//! This is an edge crate: it does file I/O and is synchronous. The edge calls it from a
//! dedicated thread or `spawn_blocking`; the sans-IO crates (`sipcti-wire`,
//! `sipcti-event`, `sipcti-dialog`, `sipcti-core`) never depend on it
//! (`crates/proxy/tests/crate_graph.rs`).
//!
//! ```
//! use sipcti_store::{BindingChange, Store, StoredBinding};
//! use sipcti_wire::TransportKind;
//!
//! let mut store = Store::open_in_memory()?; // Store::open(path) in production
//! let now_ms = 1_767_225_600_000;
//! let b = StoredBinding {
//!     key: "b3f9c0a1d2e4f5a6".into(),
//!     aor: "sip:201@provider.example".into(),
//!     user: "201".into(),
//!     contact: "sip:201@192.168.10.21:5060;transport=udp".into(),
//!     source: "192.168.10.21:5060".parse().unwrap(),
//!     transport: TransportKind::Udp,
//!     path: false,
//!     expires_unix_ms: now_ms + 3_600_000,
//! };
//! store.apply(&[BindingChange::Upsert(b.clone()), BindingChange::Remove("old".into())])?;
//! assert_eq!(store.load_bindings(now_ms)?, vec![b]);
//! # Ok::<(), sipcti_store::StoreError>(())
//! ```
//!
//! # Durability
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL` on one connection. A change is
//! durable once [`Store::upsert_binding`], [`Store::remove_binding`] or [`Store::apply`]
//! returns `Ok`, against a crash or kill of the sipcti process. A power loss or OS crash
//! may roll back the last transactions (never corrupt the file): that is the price of
//! `NORMAL` over `FULL`, and a lost binding costs one re-REGISTER of the phone.
//!
//! # The file
//!
//! A store file is an SQLite database whose `PRAGMA application_id` is
//! [`APPLICATION_ID`] and whose `PRAGMA user_version` is the schema version.
//! [`Store::open`] creates a missing file, initialises an empty SQLite database, and
//! migrates an older store; it refuses any other file (not SQLite, another
//! application's database, a newer schema) with a [`StoreError`] that names the path.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, Row, Transaction};
use sipcti_wire::TransportKind;

/// `PRAGMA application_id` of a sipcti store: the bytes `"SCTI"` as a big-endian `i32`.
pub const APPLICATION_ID: i32 = i32::from_be_bytes(*b"SCTI");

/// The schema version this build writes (`PRAGMA user_version`): the number of entries
/// in the migration list. A store with a higher version is refused, a lower one migrated.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Migration `i` takes the schema from version `i` to `i + 1`; each runs in the one
/// transaction that also sets `user_version`. Append only: never edit a shipped entry.
const MIGRATIONS: &[&str] = &[
    // 1: registration bindings (issue 8)
    "CREATE TABLE bindings (
         key TEXT NOT NULL PRIMARY KEY,
         aor TEXT NOT NULL,
         user TEXT NOT NULL,
         contact TEXT NOT NULL,
         source TEXT NOT NULL,
         transport TEXT NOT NULL,
         path INTEGER NOT NULL,
         expires_unix_ms INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX bindings_by_user ON bindings(user);
     CREATE INDEX bindings_by_expiry ON bindings(expires_unix_ms);",
    // 2: the durable CTI outbox (issue 9)
    "CREATE TABLE outbox (
         id INTEGER NOT NULL PRIMARY KEY,
         call_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         event TEXT NOT NULL,
         created_unix_ms INTEGER NOT NULL,
         done INTEGER NOT NULL DEFAULT 0,
         attempted INTEGER NOT NULL DEFAULT 0,
         dup_harmful INTEGER NOT NULL DEFAULT 0
     ) STRICT;
     CREATE INDEX outbox_by_call ON outbox(call_id);",
];

/// How long a statement waits for a lock another connection holds (an operator's
/// `sqlite3` shell, say) before it fails with [`StoreError::Sql`].
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What [`Store::open_in_memory`] reports as its path in errors.
const IN_MEMORY: &str = ":memory:";

/// One binding as stored: a registered contact of a phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBinding {
    /// Opaque binding key, the primary key (e.g. `"b3f9c0a1d2e4f5a6"`); must not be empty.
    pub key: String,
    /// The address of record, e.g. `"sip:201@provider.example"`.
    pub aor: String,
    /// The AOR's user part, normalised, e.g. `"201"` (indexed: routes look bindings up by user).
    pub user: String,
    /// The phone's own Contact URI, e.g. `"sip:201@192.168.10.21:5060;transport=udp"`.
    pub contact: String,
    /// Where the REGISTER came from (received/rport).
    pub source: SocketAddr,
    /// The transport the REGISTER came over.
    pub transport: TransportKind,
    /// `true` if registered with Path (RFC 3327) rather than a Contact rewrite.
    pub path: bool,
    /// Absolute expiry in milliseconds since the Unix epoch; at most `i64::MAX`.
    pub expires_unix_ms: u64,
}

/// One change of [`Store::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingChange {
    /// Insert the binding, or replace the one with the same key.
    Upsert(StoredBinding),
    /// Remove the binding with this key; no error if there is none.
    Remove(String),
}

/// What [`Store::load`] found: the live bindings and how many rows it could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The unexpired bindings that parsed, ordered by key.
    pub bindings: Vec<StoredBinding>,
    /// Unexpired rows skipped because a column did not parse (bad source address,
    /// unknown transport, negative expiry, wrong type). They stay in the file until
    /// their expiry passes and are logged with `tracing::warn!`.
    pub skipped: usize,
}

/// One row of the CTI outbox: an event of a call, as the CTI client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The event's sequence number, unique and increasing in submission order
    /// (the primary key); at most `i64::MAX`.
    pub id: u64,
    /// Zammad's `callId` of the event's call (indexed).
    pub call_id: String,
    /// The event kind as Zammad spells it: `newCall`, `answer` or `hangup`.
    pub kind: String,
    /// The event itself, as the CTI client encodes it (its JSON form).
    pub event: String,
    /// When the event was submitted, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Delivered (or finally dropped): kept only as a record that the call is open in
    /// Zammad (its `newCall`, its `answer`) until the call's rows are removed.
    pub done: bool,
    /// A delivery attempt may have reached Zammad and its answer was not seen.
    pub attempted: bool,
    /// A second copy of this event would change Zammad's record (a `hangup` that would
    /// flip the missed flag), so an attempted one is never sent again.
    pub dup_harmful: bool,
}

/// One change of [`Store::outbox_apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxChange {
    /// Insert a row (an existing row with the same id is replaced).
    Insert(OutboxRow),
    /// Set `done` on the row with this id; no error if there is none.
    Done(u64),
    /// Set `attempted` on the row with this id to the value; no error if there is none.
    Attempted(u64, bool),
    /// Remove the rows of the call `call_id` whose id is at most `up_to` (its hangup,
    /// of id `up_to`, is finished; a later row of the call stays).
    RemoveCall {
        /// The call's `callId`.
        call_id: String,
        /// The hangup's id.
        up_to: u64,
    },
}

/// Why a store operation failed. Every variant names the store's path (`:memory:` for
/// [`Store::open_in_memory`]); no operation of this crate panics on bad input or a bad file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory the store file should live in does not exist.
    #[error("store {path}: directory {dir} does not exist", path = .path.display(), dir = .dir.display())]
    MissingDir {
        /// The store file asked for.
        path: PathBuf,
        /// Its parent directory, which is missing.
        dir: PathBuf,
    },
    /// SQLite could not open or create the file (a directory, no permission, ...).
    #[error("store {path}: cannot open or create the file: {source}", path = .path.display())]
    Open {
        /// The store file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file exists but is not a sipcti store.
    #[error("store {path}: not a sipcti store: {reason}", path = .path.display())]
    NotAStore {
        /// The file.
        path: PathBuf,
        /// What it is instead, e.g. "not an SQLite database".
        reason: String,
    },
    /// The store was written by a newer sipcti with a schema this build does not know.
    #[error(
        "store {path}: schema version {found} is newer than this build's {known}; run the newer sipcti or move the file away",
        path = .path.display()
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `PRAGMA user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        known: i64,
    },
    /// The file could not be switched to WAL journal mode (e.g. a read-only directory).
    #[error("store {path}: journal mode is {mode}, could not switch to WAL", path = .path.display())]
    NoWal {
        /// The file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },
    /// A binding cannot be stored as given; nothing of its call was written.
    #[error("store {path}: binding {key:?}: {reason}", path = .path.display())]
    InvalidBinding {
        /// The store.
        path: PathBuf,
        /// The binding's key.
        key: String,
        /// What is wrong, e.g. the expiry does not fit SQLite's 64-bit signed INTEGER.
        reason: &'static str,
    },
    /// An SQL statement failed (disk full, I/O error, lock timeout, ...).
    #[error("store {path}: {what} failed: {source}", path = .path.display())]
    Sql {
        /// The store.
        path: PathBuf,
        /// What the store was doing, e.g. "upsert binding".
        what: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

/// The store: one SQLite connection with cached prepared statements.
///
/// Not `Sync`; move it to the thread that uses it.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store file at `path`, creating it (and its schema) if it does not
    /// exist and migrating an older schema. The parent directory must exist.
    ///
    /// Sets WAL journal mode (which creates `<path>-wal` and `<path>-shm` beside it,
    /// so the directory must be writable) and `synchronous=NORMAL`.
    ///
    /// # Errors
    /// [`StoreError::MissingDir`] if the directory is missing; [`StoreError::Open`] if
    /// the file cannot be opened or created; [`StoreError::NotAStore`] if it is not an
    /// SQLite database or another application's; [`StoreError::TooNew`] for a newer
    /// schema; [`StoreError::NoWal`] if WAL mode cannot be set; [`StoreError::Sql`] if
    /// the migration fails (then nothing of it is written).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError::MissingDir {
                    path: path.clone(),
                    dir: dir.to_path_buf(),
                });
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        Store::init(conn, path, true)
    }

    /// Opens a fresh store that lives in memory only (tests): same
    /// schema and API, nothing survives the drop.
    ///
    /// # Errors
    /// [`StoreError::Open`] or [`StoreError::Sql`] if SQLite cannot allocate it.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(IN_MEMORY);
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Store::init(conn, path, false)
    }

    /// The path this store was opened with (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inserts `b`, or replaces the binding with the same key, in its own transaction.
    ///
    /// # Errors
    /// [`StoreError::InvalidBinding`] if the key is empty or the expiry exceeds
    /// `i64::MAX` ms; [`StoreError::Sql`] if the write fails. Either way nothing changed.
    pub fn upsert_binding(&mut self, b: &StoredBinding) -> Result<(), StoreError> {
        self.apply_iter(std::iter::once(Change::Upsert(b)))
    }

    /// Removes the binding with `key`, if there is one, in its own transaction.
    ///
    /// # Errors
    /// [`StoreError::Sql`] if the write fails.
    pub fn remove_binding(&mut self, key: &str) -> Result<(), StoreError> {
        self.apply_iter(std::iter::once(Change::Remove(key)))
    }

    /// Applies `changes` in order, in ONE transaction (group commit: one fsync of the
    /// WAL for all of them). Either all are applied or, on error, none.
    ///
    /// # Errors
    /// [`StoreError::InvalidBinding`] for the first upsert that cannot be stored (see
    /// [`Store::upsert_binding`]), [`StoreError::Sql`] if a write or the commit fails;
    /// the transaction is then rolled back.
    pub fn apply(&mut self, changes: &[BindingChange]) -> Result<(), StoreError> {
        self.apply_iter(changes.iter().map(|c| match c {
            BindingChange::Upsert(b) => Change::Upsert(b),
            BindingChange::Remove(k) => Change::Remove(k),
        }))
    }

    /// Deletes the bindings whose expiry is at or before `now_unix_ms` (ms since the
    /// Unix epoch) and returns the rest, ordered by key. Rows that do not parse are
    /// skipped and logged with `tracing::warn!` ([`Store::load`] also counts them).
    ///
    /// # Errors
    /// [`StoreError::Sql`] if the delete or the read fails (then nothing was deleted).
    pub fn load_bindings(&mut self, now_unix_ms: u64) -> Result<Vec<StoredBinding>, StoreError> {
        self.load(now_unix_ms).map(|l| l.bindings)
    }

    /// [`Store::load_bindings`], also telling how many unexpired rows were skipped
    /// because they did not parse.
    ///
    /// # Errors
    /// As [`Store::load_bindings`].
    pub fn load(&mut self, now_unix_ms: u64) -> Result<Loaded, StoreError> {
        // a `now` past i64::MAX expires everything storable
        let now = i64::try_from(now_unix_ms).unwrap_or(i64::MAX);
        let path = &self.path;
        let sql = |what| {
            move |source| StoreError::Sql {
                path: path.clone(),
                what,
                source,
            }
        };
        let tx = self.conn.transaction().map_err(sql("begin load"))?;
        let expired = tx
            .prepare_cached("DELETE FROM bindings WHERE expires_unix_ms <= ?1")
            .and_then(|mut s| s.execute([now]))
            .map_err(sql("delete expired bindings"))?;
        let mut loaded = Loaded {
            bindings: Vec::new(),
            skipped: 0,
        };
        {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT key, aor, user, contact, source, transport, path, expires_unix_ms
                     FROM bindings ORDER BY key",
                )
                .map_err(sql("read bindings"))?;
            let mut rows = stmt.query([]).map_err(sql("read bindings"))?;
            while let Some(row) = rows.next().map_err(sql("read bindings"))? {
                match parse_row(row) {
                    Ok(b) => loaded.bindings.push(b),
                    Err(why) => {
                        loaded.skipped += 1;
                        let key = match row.get_ref(0) {
                            Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                            _ => "?".to_string(),
                        };
                        tracing::warn!(store = %path.display(), key, why, "skipping a stored binding that does not parse");
                    }
                }
            }
        }
        tx.commit().map_err(sql("commit load"))?;
        if expired > 0 {
            tracing::debug!(store = %path.display(), expired, "dropped expired bindings");
        }
        Ok(loaded)
    }

    /// Applies outbox `changes` in order, in ONE transaction (a group commit). Either all
    /// are applied or, on error, none.
    ///
    /// # Errors
    /// [`StoreError::Sql`] if a write or the commit fails (also for an id or a time above
    /// `i64::MAX`, which SQLite's INTEGER cannot hold); the transaction is rolled back.
    pub fn outbox_apply(&mut self, changes: &[OutboxChange]) -> Result<(), StoreError> {
        let path = &self.path;
        let sql = |what| {
            move |source| StoreError::Sql {
                path: path.clone(),
                what,
                source,
            }
        };
        // an id or time SQLite's INTEGER cannot hold fails the write
        let int = |v: u64| {
            i64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, i64::MAX))
        };
        let tx = self.conn.transaction().map_err(sql("begin transaction"))?;
        for c in changes {
            match c {
                OutboxChange::Insert(r) => {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO outbox
                         (id, call_id, kind, event, created_unix_ms, done, attempted, dup_harmful)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            int(r.id)?,
                            r.call_id,
                            r.kind,
                            r.event,
                            int(r.created_unix_ms)?,
                            r.done,
                            r.attempted,
                            r.dup_harmful
                        ])
                    })
                    .map_err(sql("insert outbox row"))?;
                }
                OutboxChange::Done(id) => {
                    tx.prepare_cached("UPDATE outbox SET done = 1 WHERE id = ?1")
                        .and_then(|mut s| s.execute([int(*id)?]))
                        .map_err(sql("mark outbox row done"))?;
                }
                OutboxChange::Attempted(id, on) => {
                    tx.prepare_cached("UPDATE outbox SET attempted = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![int(*id)?, on]))
                        .map_err(sql("mark outbox row attempted"))?;
                }
                OutboxChange::RemoveCall { call_id, up_to } => {
                    tx.prepare_cached("DELETE FROM outbox WHERE call_id = ?1 AND id <= ?2")
                        .and_then(|mut s| s.execute(params![call_id, int(*up_to)?]))
                        .map_err(sql("remove outbox call"))?;
                }
            }
        }
        tx.commit().map_err(sql("commit"))
    }

    /// Every outbox row, ordered by id (submission order). Rows that do not parse
    /// (wrong types, negative numbers) are skipped and logged with `tracing::warn!`;
    /// the second value counts them.
    ///
    /// # Errors
    /// [`StoreError::Sql`] if the read fails.
    pub fn outbox_load(&mut self) -> Result<(Vec<OutboxRow>, usize), StoreError> {
        let path = &self.path;
        let sql = |what| {
            move |source| StoreError::Sql {
                path: path.clone(),
                what,
                source,
            }
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, call_id, kind, event, created_unix_ms, done, attempted, dup_harmful
                 FROM outbox ORDER BY id",
            )
            .map_err(sql("read outbox"))?;
        let mut rows = stmt.query([]).map_err(sql("read outbox"))?;
        let (mut out, mut skipped) = (Vec::new(), 0);
        while let Some(row) = rows.next().map_err(sql("read outbox"))? {
            match parse_outbox_row(row) {
                Ok(r) => out.push(r),
                Err(why) => {
                    skipped += 1;
                    tracing::warn!(store = %path.display(), why, "skipping an outbox row that does not parse");
                }
            }
        }
        Ok((out, skipped))
    }

    /// Number of rows in the outbox (events not finished, and the records of calls still
    /// open in Zammad).
    ///
    /// # Errors
    /// [`StoreError::Sql`] if the read fails.
    pub fn outbox_len(&mut self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|source| StoreError::Sql {
                path: self.path.clone(),
                what: "count outbox rows",
                source,
            })
    }

    fn init(mut conn: Connection, path: PathBuf, on_disk: bool) -> Result<Store, StoreError> {
        // the first read of the header: a file that is not SQLite fails here
        let app_id: i32 = match conn.query_row("PRAGMA application_id", [], |r| r.get(0)) {
            Ok(id) => id,
            Err(e) if is_not_a_db(&e) => {
                return Err(StoreError::NotAStore {
                    path,
                    reason: "not an SQLite database".into(),
                })
            }
            Err(source) => {
                return Err(StoreError::Open { path, source });
            }
        };
        let sql = |what| {
            let path = path.clone();
            move |source| StoreError::Sql { path, what, source }
        };
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql("read schema version"))?;
        if app_id != APPLICATION_ID {
            if app_id != 0 {
                return Err(StoreError::NotAStore {
                    path,
                    reason: format!(
                        "an SQLite database with application_id {app_id:#x} (a sipcti store has {APPLICATION_ID:#x})"
                    ),
                });
            }
            let objects: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(sql("read schema"))?;
            if objects > 0 || version != 0 {
                return Err(StoreError::NotAStore {
                    path,
                    reason: "an SQLite database of another application (it has tables but no sipcti application_id)".into(),
                });
            }
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path,
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("set busy timeout"))?;
        if on_disk {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(sql("set WAL journal mode"))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::NoWal { path, mode });
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("set synchronous=NORMAL"))?;
        conn.set_prepared_statement_cache_capacity(16);
        if version < SCHEMA_VERSION {
            let tx = conn.transaction().map_err(sql("begin migration"))?;
            // re-read inside the write transaction: another process may have migrated
            let version: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sql("read schema version"))?;
            for m in MIGRATIONS
                .iter()
                .skip(usize::try_from(version).unwrap_or(0))
            {
                tx.execute_batch(m).map_err(sql("migrate schema"))?;
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sql("set application_id"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sql("set schema version"))?;
            tx.commit().map_err(sql("commit migration"))?;
        }
        Ok(Store { conn, path })
    }

    fn apply_iter<'a>(
        &mut self,
        changes: impl Iterator<Item = Change<'a>>,
    ) -> Result<(), StoreError> {
        let path = &self.path;
        let sql = |what| {
            move |source| StoreError::Sql {
                path: path.clone(),
                what,
                source,
            }
        };
        let tx = self.conn.transaction().map_err(sql("begin transaction"))?;
        for c in changes {
            match c {
                Change::Upsert(b) => upsert(&tx, path, b)?,
                Change::Remove(key) => {
                    tx.prepare_cached("DELETE FROM bindings WHERE key = ?1")
                        .and_then(|mut s| s.execute([key]))
                        .map_err(sql("remove binding"))?;
                }
            }
        }
        // dropping `tx` on an early return above rolls it back
        tx.commit().map_err(sql("commit"))
    }
}

/// A borrowed [`BindingChange`], so the single-change calls need not clone.
enum Change<'a> {
    Upsert(&'a StoredBinding),
    Remove(&'a str),
}

fn upsert(tx: &Transaction<'_>, path: &Path, b: &StoredBinding) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidBinding {
        path: path.to_path_buf(),
        key: b.key.clone(),
        reason,
    };
    if b.key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    let expires = i64::try_from(b.expires_unix_ms)
        .map_err(|_| invalid("expires_unix_ms exceeds i64::MAX, SQLite's INTEGER"))?;
    tx.prepare_cached(
        "INSERT INTO bindings (key, aor, user, contact, source, transport, path, expires_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (key) DO UPDATE SET
             aor = excluded.aor, user = excluded.user, contact = excluded.contact,
             source = excluded.source, transport = excluded.transport, path = excluded.path,
             expires_unix_ms = excluded.expires_unix_ms",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.key,
            b.aor,
            b.user,
            b.contact,
            b.source.to_string(),
            transport_text(b.transport),
            b.path,
            expires
        ])
    })
    .map(drop)
    .map_err(|source| StoreError::Sql {
        path: path.to_path_buf(),
        what: "upsert binding",
        source,
    })
}

/// How a transport is spelled in the `transport` column.
fn transport_text(t: TransportKind) -> &'static str {
    match t {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
    }
}

/// One row of `bindings`, or why it does not parse.
fn parse_row(row: &Row<'_>) -> Result<StoredBinding, &'static str> {
    let text = |i: usize, why: &'static str| match row.get_ref(i) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).map(str::to_owned).map_err(|_| why),
        _ => Err(why),
    };
    let int = |i: usize, why: &'static str| match row.get_ref(i) {
        Ok(ValueRef::Integer(n)) => Ok(n),
        _ => Err(why),
    };
    let transport = match text(5, "transport is not text")?.as_str() {
        "udp" => TransportKind::Udp,
        "tcp" => TransportKind::Tcp,
        _ => return Err("unknown transport"),
    };
    Ok(StoredBinding {
        key: text(0, "key is not text")?,
        aor: text(1, "aor is not text")?,
        user: text(2, "user is not text")?,
        contact: text(3, "contact is not text")?,
        source: text(4, "source is not text")?
            .parse()
            .map_err(|_| "source is not a socket address")?,
        transport,
        path: match int(6, "path is not an integer")? {
            0 => false,
            1 => true,
            _ => return Err("path is neither 0 nor 1"),
        },
        expires_unix_ms: u64::try_from(int(7, "expires_unix_ms is not an integer")?)
            .map_err(|_| "expires_unix_ms is negative")?,
    })
}

/// One row of `outbox`, or why it does not parse.
fn parse_outbox_row(row: &Row<'_>) -> Result<OutboxRow, &'static str> {
    let text = |i: usize, why: &'static str| match row.get_ref(i) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t).map(str::to_owned).map_err(|_| why),
        _ => Err(why),
    };
    let uint = |i: usize, why: &'static str| match row.get_ref(i) {
        Ok(ValueRef::Integer(n)) => u64::try_from(n).map_err(|_| why),
        _ => Err(why),
    };
    Ok(OutboxRow {
        id: uint(0, "id is not a non-negative integer")?,
        call_id: text(1, "call_id is not text")?,
        kind: text(2, "kind is not text")?,
        event: text(3, "event is not text")?,
        created_unix_ms: uint(4, "created_unix_ms is not a non-negative integer")?,
        done: uint(5, "done is not an integer")? != 0,
        attempted: uint(6, "attempted is not an integer")? != 0,
        dup_harmful: uint(7, "dup_harmful is not an integer")? != 0,
    })
}

fn is_not_a_db(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_id_spells_scti() {
        assert_eq!(APPLICATION_ID, 0x5343_5449);
        assert_eq!(SCHEMA_VERSION, 2);
    }

    #[test]
    fn the_connection_runs_wal_with_synchronous_normal() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // synchronous is per connection: 1 is NORMAL (0 OFF, 2 FULL, 3 EXTRA)
        let sync: i64 = s
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1);
    }
}
