//! The durable outbox's writer: a thread of its own that owns the SQLite store
//! ([`sipcti_store::Store`]) and writes the client's outbox changes in group commits.
//!
//! The client never waits for the disk to queue an event: it pushes changes into a
//! bounded in-memory list ([`Writer::push`]) and goes on. The writer thread takes
//! everything pushed within `sync` of the first pending change and commits it in one
//! transaction, so at most about `sync` (plus one commit) of changes is lost on SIGKILL.
//! [`Writer::flush`] and [`Writer::push_and_wait`] skip the wait and report the commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sipcti_store::{OutboxChange, OutboxRow, Store};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// Pause before a failed commit is tried again (disk full, I/O error).
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// A batch whose commit failed this many times in a row is given up (counted in
/// `lost`), so a broken disk cannot keep every later change out of the file.
const MAX_TRIES: u32 = 25;

#[derive(Default)]
struct Pending {
    changes: Vec<OutboxChange>,
    /// Told `true` once everything pushed before them is committed, `false` if that failed.
    waiters: Vec<oneshot::Sender<bool>>,
    /// When `changes` became non-empty.
    since: Option<Instant>,
    /// No more changes: commit what is there and stop.
    closing: bool,
}

struct Inner {
    q: Mutex<Pending>,
    cv: Condvar,
    /// Most changes waiting at once (beyond, a change is not written and counted in `lost`).
    limit: usize,
    sync: Duration,
    path: PathBuf,
    /// Changes never written: the list was full, or their commit failed for good.
    lost: AtomicU64,
    /// Commits that failed (each retried, up to [`MAX_TRIES`]).
    failed_commits: AtomicU64,
    /// Commits that succeeded.
    commits: AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handle to the writer thread. When the last handle is dropped the thread commits what
/// is pending and stops.
pub(crate) struct Writer {
    inner: Arc<Inner>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.inner.lock().closing = true;
        self.inner.cv.notify_all();
    }
}

/// Counters of the writer, for [`crate::Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WriterStats {
    pub lost: u64,
    pub failed_commits: u64,
    pub commits: u64,
}

impl Writer {
    /// Open (or create) the store at `path`, read every outbox row (id order; the count of
    /// rows that did not parse), and start the writer thread.
    pub(crate) fn open(
        path: &Path,
        sync: Duration,
        limit: usize,
    ) -> Result<(Writer, Vec<OutboxRow>, usize), String> {
        let mut store = Store::open(path).map_err(|e| e.to_string())?;
        let (rows, skipped) = store.outbox_load().map_err(|e| e.to_string())?;
        let inner = Arc::new(Inner {
            q: Mutex::new(Pending::default()),
            cv: Condvar::new(),
            limit: limit.max(1),
            sync,
            path: path.to_path_buf(),
            lost: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        });
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("sipcti-outbox".into())
            .spawn(move || run(store, thread_inner))
            .map_err(|e| format!("cannot start the outbox writer thread: {e}"))?;
        Ok((Writer { inner }, rows, skipped))
    }

    /// Queue one change. Never blocks. `false` if the list is full: the change is not
    /// written (counted in `lost`).
    pub(crate) fn push(&self, c: OutboxChange) -> bool {
        let mut q = self.inner.lock();
        if q.changes.len() >= self.inner.limit {
            drop(q);
            let n = self.inner.lost.fetch_add(1, Ordering::Relaxed) + 1;
            if n <= 10 || n.is_power_of_two() {
                error!(store = %self.inner.path.display(), count = n, "CTI outbox write queue full: a change is not written (the event is still delivered, but not durable)");
            }
            return false;
        }
        if q.changes.is_empty() {
            q.since = Some(Instant::now());
            self.inner.cv.notify_one();
        }
        q.changes.push(c);
        true
    }

    /// Queue one change and get told when it is committed (`true`) or could not be
    /// (`false`, also when the list was full). The commit happens without the `sync` wait.
    pub(crate) fn push_and_wait(&self, c: OutboxChange) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        if self.push(c) {
            self.inner.lock().waiters.push(tx);
            self.inner.cv.notify_one();
        } else {
            let _ = tx.send(false);
        }
        rx
    }

    /// Commit everything pushed so far now; told `true` once it is durable.
    pub(crate) fn flush(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        self.inner.lock().waiters.push(tx);
        self.inner.cv.notify_one();
        rx
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            lost: self.inner.lost.load(Ordering::Relaxed),
            failed_commits: self.inner.failed_commits.load(Ordering::Relaxed),
            commits: self.inner.commits.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread: wait for changes, give others `sync` to join, commit them all.
fn run(mut store: Store, inner: Arc<Inner>) {
    let mut carry: Vec<OutboxChange> = Vec::new();
    let mut tries: u32 = 0;
    loop {
        let (mut batch, waiters, closing) = {
            let mut q = inner.lock();
            while carry.is_empty() && q.changes.is_empty() && q.waiters.is_empty() && !q.closing {
                q = inner.cv.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            // group commit: let more changes join, at most `sync` after the first
            if let Some(since) = q.since {
                let deadline = since + inner.sync;
                while q.waiters.is_empty() && !q.closing {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    q = inner
                        .cv
                        .wait_timeout(q, deadline - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            q.since = None;
            (
                std::mem::take(&mut q.changes),
                std::mem::take(&mut q.waiters),
                q.closing,
            )
        };
        if !carry.is_empty() {
            carry.append(&mut batch);
            batch = std::mem::take(&mut carry);
        }
        let ok = batch.is_empty()
            || {
                match store.outbox_apply(&batch) {
                    Ok(()) => {
                        inner.commits.fetch_add(1, Ordering::Relaxed);
                        tries = 0;
                        true
                    }
                    Err(e) => {
                        tries += 1;
                        let n = inner.failed_commits.fetch_add(1, Ordering::Relaxed) + 1;
                        if n <= 10 || n.is_power_of_two() {
                            error!(error = %e, changes = batch.len(), count = n, "CTI outbox commit failed; retrying");
                        }
                        if tries >= MAX_TRIES || closing {
                            inner.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            warn!(
                                changes = batch.len(),
                                "CTI outbox changes given up after failed commits"
                            );
                            tries = 0;
                        } else {
                            carry = batch;
                        }
                        false
                    }
                }
            };
        for w in waiters {
            let _ = w.send(ok);
        }
        if !carry.is_empty() {
            std::thread::sleep(RETRY_PAUSE);
            continue;
        }
        if closing {
            let q = inner.lock();
            if q.changes.is_empty() && q.waiters.is_empty() {
                info!(store = %inner.path.display(), "CTI outbox writer stopped");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, call: &str, kind: &str) -> OutboxRow {
        OutboxRow {
            id,
            call_id: call.to_string(),
            kind: kind.to_string(),
            event: format!(
                r#"{{"event":"{kind}","direction":"in","callId":"{call}","from":"4912347114711","to":"4930600000000"}}"#
            ),
            created_unix_ms: 1_767_225_600_000,
            done: false,
            attempted: false,
            dup_harmful: false,
        }
    }

    /// The changes of one whole call, as the client makes them: each event inserted and
    /// marked done when delivered; the hangup's delivery removes the call.
    fn call_changes(id: u64, out: &mut Vec<OutboxChange>) {
        let call = format!("{id}-1234@192.0.2.1");
        let base = id * 3;
        for (i, kind) in ["newCall", "answer", "hangup"].iter().enumerate() {
            out.push(OutboxChange::Insert(row(base + i as u64, &call, kind)));
        }
        out.push(OutboxChange::Done(base));
        out.push(OutboxChange::Done(base + 1));
        out.push(OutboxChange::RemoveCall {
            call_id: call,
            up_to: base + 2,
        });
    }

    #[tokio::test]
    async fn changes_are_committed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("o.db");
        let (w, rows, skipped) = Writer::open(&file, Duration::from_millis(50), 16).unwrap();
        assert_eq!((rows.len(), skipped), (0, 0));
        w.push(OutboxChange::Insert(row(1, "a", "newCall")));
        w.push(OutboxChange::Insert(row(2, "a", "hangup")));
        // a flush does not wait out the 50 ms group-commit window
        let t0 = Instant::now();
        assert!(w.flush().await.unwrap());
        assert!(
            t0.elapsed() < Duration::from_millis(45),
            "{:?}",
            t0.elapsed()
        );
        assert!(w
            .push_and_wait(OutboxChange::Attempted(2, true))
            .await
            .unwrap());
        assert_eq!(w.stats().lost, 0);
        drop(w);
        let mut s = Store::open(&file).unwrap();
        let (rows, _) = s.outbox_load().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[1].attempted);
    }

    #[tokio::test]
    async fn a_full_write_queue_counts_what_it_could_not_take() {
        let dir = tempfile::tempdir().unwrap();
        // a long window: nothing is committed while the test pushes
        let (w, _, _) = Writer::open(&dir.path().join("o.db"), Duration::from_secs(5), 2).unwrap();
        assert!(w.push(OutboxChange::Done(1)));
        assert!(w.push(OutboxChange::Done(2)));
        assert!(!w.push(OutboxChange::Done(3)));
        assert!(!w.push_and_wait(OutboxChange::Done(4)).await.unwrap());
        assert_eq!(w.stats().lost, 2);
    }

    /// Write throughput of the outbox: whole calls (3 events, 6 changes each) pushed as
    /// fast as possible, group-committed every `outbox_sync`. Prints calls/s and events/s.
    /// `cargo test -p sipcti-cti --release -- --ignored --nocapture outbox_write_throughput`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: run with --release --ignored --nocapture"]
    async fn outbox_write_throughput() {
        const CALLS: u64 = 100_000;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bench.db");
        for sync_ms in [0u64, 20] {
            let _ = std::fs::remove_file(&file);
            let (w, _, _) = Writer::open(&file, Duration::from_millis(sync_ms), 1_000_000).unwrap();
            let mut changes = Vec::with_capacity(6);
            let t0 = Instant::now();
            for id in 0..CALLS {
                changes.clear();
                call_changes(id, &mut changes);
                for c in changes.drain(..) {
                    assert!(w.push(c));
                }
            }
            let pushed = t0.elapsed();
            assert!(w.flush().await.unwrap());
            let total = t0.elapsed();
            let st = w.stats();
            assert_eq!(st.lost, 0);
            println!(
                "outbox_sync_ms={sync_ms}: {CALLS} calls ({} events, {} changes) committed in {:.0} ms (pushed in {:.0} ms), {} commits: {:.0} calls/s, {:.0} events/s",
                CALLS * 3,
                CALLS * 6,
                total.as_secs_f64() * 1000.0,
                pushed.as_secs_f64() * 1000.0,
                st.commits,
                CALLS as f64 / total.as_secs_f64(),
                (CALLS * 3) as f64 / total.as_secs_f64(),
            );
            drop(w);
            assert_eq!(Store::open(&file).unwrap().outbox_len().unwrap(), 0);
        }
    }
}
