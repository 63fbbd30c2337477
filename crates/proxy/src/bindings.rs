//! The durable copy of the core's registration bindings (issue 8: "bindings
//! survive a restart"): `[registration] store` names an SQLite file
//! ([`sipcti_store`]). At start the bindings still valid are loaded and
//! given to the core ([`sipcti_core::ProxyCore::restore_binding`]); every
//! [`BindingUpdate`] the core emits afterwards is written by a thread of
//! its own, in group commits, so the core's task never waits for the disk.
//!
//! Instants do not survive a restart: the store keeps each expiry as
//! milliseconds since the Unix epoch, converted at the edge with one
//! reading of both clocks.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sipcti_core::{Binding, BindingKey, BindingUpdate, Flow};
use sipcti_store::{BindingChange, Store, StoredBinding};

/// Most binding updates waiting for the writer thread; beyond, an update is
/// dropped and counted (the phone's next REGISTER refreshes it).
const QUEUE: usize = 4096;
/// Most updates written in one transaction.
const BATCH: usize = 512;

/// Milliseconds since the Unix epoch now.
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The store's row for core binding `b`; `now` and `now_ms` are one
/// reading of the monotonic and the wall clock.
fn to_row(b: &Binding, now: Instant, now_ms: u64) -> StoredBinding {
    let left = b.expires.saturating_duration_since(now).as_millis() as u64;
    StoredBinding {
        key: b.key.to_string(),
        aor: b.aor.clone(),
        user: b.user.clone(),
        contact: b.contact.clone(),
        source: b.flow.source,
        transport: b.flow.transport,
        path: b.path,
        expires_unix_ms: now_ms.saturating_add(left),
    }
}

/// The core binding of a stored row; `None` for a row whose key is not one
/// of ours or that has expired.
fn from_row(r: StoredBinding, now: Instant, now_ms: u64) -> Option<Binding> {
    let key = BindingKey::parse(&r.key)?;
    let left = r.expires_unix_ms.checked_sub(now_ms).filter(|&l| l > 0)?;
    Some(Binding {
        key,
        aor: r.aor,
        user: r.user,
        contact: r.contact,
        flow: Flow {
            source: r.source,
            transport: r.transport,
        },
        path: r.path,
        expires: now + Duration::from_millis(left),
    })
}

/// Keeps the durable copy: a writer thread fed through a bounded queue, or
/// nothing when no store is configured.
pub struct BindingKeeper {
    tx: Option<SyncSender<BindingUpdate>>,
    dropped: u64,
}

impl BindingKeeper {
    /// Open the store at `path` (none: keep nothing), load the bindings
    /// still valid at `now`, and start the writer thread. Returns the keeper
    /// and the bindings to restore into the core.
    ///
    /// Errors: the file cannot be opened or created, or is not a sipcti
    /// store (the message names the path).
    pub fn open(
        path: Option<&Path>,
        now: Instant,
    ) -> anyhow::Result<(BindingKeeper, Vec<Binding>)> {
        let Some(path) = path else {
            return Ok((
                BindingKeeper {
                    tx: None,
                    dropped: 0,
                },
                Vec::new(),
            ));
        };
        let mut store =
            Store::open(path).with_context(|| format!("registration.store: {}", path.display()))?;
        let now_ms = unix_now_ms();
        let rows = store
            .load_bindings(now_ms)
            .with_context(|| format!("registration.store: {}", path.display()))?;
        let bindings: Vec<Binding> = rows
            .into_iter()
            .filter_map(|r| from_row(r, now, now_ms))
            .collect();
        tracing::info!(
            store = %path.display(),
            bindings = bindings.len(),
            "registration bindings loaded"
        );
        let (tx, rx) = sync_channel(QUEUE);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("sipcti-bindings".into())
            .spawn(move || writer(store, rx, path))
            .context("start the bindings writer thread")?;
        Ok((
            BindingKeeper {
                tx: Some(tx),
                dropped: 0,
            },
            bindings,
        ))
    }

    /// Queue one change for the store (never blocks). A full queue drops
    /// it, counted and logged sampled.
    pub fn update(&mut self, u: BindingUpdate) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(u) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                if sipcti_core::log_sample(self.dropped) {
                    tracing::warn!(
                        count = self.dropped,
                        "binding update not stored (writer queue full or stopped): the phone's next REGISTER stores it"
                    );
                }
            }
        }
    }
}

/// The writer thread: take what is queued (at most [`BATCH`]), write it in
/// one transaction, repeat until the keeper is dropped.
fn writer(mut store: Store, rx: Receiver<BindingUpdate>, path: PathBuf) {
    let mut failed = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(u) => batch.push(u),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let now_ms = unix_now_ms();
        let changes: Vec<BindingChange> = batch
            .iter()
            .map(|u| match u {
                BindingUpdate::Upsert(b) => BindingChange::Upsert(to_row(b, now, now_ms)),
                BindingUpdate::Remove(k) => BindingChange::Remove(k.to_string()),
            })
            .collect();
        if let Err(e) = store.apply(&changes) {
            failed += 1;
            if sipcti_core::log_sample(failed) {
                tracing::error!(store = %path.display(), error = %e, count = failed, lost = changes.len(), "binding updates not stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipcti_wire::TransportKind;

    #[test]
    fn a_binding_survives_the_round_trip_through_a_row() {
        let now = Instant::now();
        let b = Binding {
            key: BindingKey(0xabc),
            aor: "sip:201@provider".into(),
            user: "201".into(),
            contact: "sip:201@10.0.0.5:5062".into(),
            flow: Flow {
                source: "10.0.0.5:5062".parse().unwrap(),
                transport: TransportKind::Tcp,
            },
            path: true,
            expires: now + Duration::from_secs(60),
        };
        let row = to_row(&b, now, 1_000_000);
        assert_eq!(row.expires_unix_ms, 1_060_000);
        assert_eq!(row.key, "rb0000000000000abc");
        // 10 s later (a restart) 50 s are left
        let later = now + Duration::from_secs(1);
        let back = from_row(row.clone(), later, 1_010_000).unwrap();
        assert_eq!(back.expires, later + Duration::from_secs(50));
        assert_eq!(
            Binding {
                expires: b.expires,
                ..back
            },
            b
        );
        // expired: gone
        assert!(from_row(row, later, 1_060_000).is_none());
    }
}
