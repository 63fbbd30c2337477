//! The transaction tables (RFC 3261 17): server transactions by id and by
//! their 17.2.3 key, client transactions by id.
//!
//! A table that outgrows its capacity moves every entry into a new one, on
//! the single core task, while requests wait. So the entries are small:
//! each transaction is boxed (a `ServerTx` is ~700 bytes, a `ClientTx` ~500)
//! and the server key index holds `(hash, id)` pairs, not a second copy of
//! the key (152 bytes), with the hash kept so growing never hashes a key
//! again. Growing from 16,384 to 32,768 transactions then moves 16 bytes per
//! entry (~0.5 MB) instead of ~11 MB, and touches ~6 MB less fresh memory:
//! at 2,000 calls/s the rehashes and their page faults had cost ~10% of the
//! proxy's CPU and stalled forwarding for up to tens of milliseconds
//! (`scripts/bench.sh --profile perf`, `reserve_rehash` under
//! `create_server_tx`).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::client_tx::ClientTx;
use crate::ids::{ClientTxId, ServerKeyView, ServerTxId};
use crate::server_tx::ServerTx;
use crate::HashMap;

/// One entry of the server key index: the key's hash (foldhash, seeded per
/// table) and the transaction holding the key.
#[derive(Clone, Copy)]
struct KeyEntry {
    hash: u64,
    id: ServerTxId,
}

/// The server transactions (RFC 3261 17.2), found by [`ServerTxId`] or by
/// their RFC 3261 17.2.3 key ([`ServerTable::find`]). The key lives once,
/// in the transaction (`ServerTx::key`).
pub(crate) struct ServerTable {
    by_id: HashMap<ServerTxId, Box<ServerTx>>,
    by_key: HashTable<KeyEntry>,
    hasher: foldhash::fast::RandomState,
}

impl ServerTable {
    /// An empty table with room for `cap` transactions before it first grows.
    pub(crate) fn with_capacity(cap: usize) -> ServerTable {
        ServerTable {
            by_id: HashMap::with_capacity_and_hasher(cap, Default::default()),
            by_key: HashTable::with_capacity(cap),
            hasher: Default::default(),
        }
    }

    /// How many server transactions there are.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Transaction `id`, if it still exists.
    pub(crate) fn get(&self, id: &ServerTxId) -> Option<&ServerTx> {
        self.by_id.get(id).map(|b| &**b)
    }

    /// Transaction `id`, mutable, if it still exists.
    pub(crate) fn get_mut(&mut self, id: &ServerTxId) -> Option<&mut ServerTx> {
        self.by_id.get_mut(id).map(|b| &mut **b)
    }

    /// The transaction whose key equals `key` (RFC 3261 17.2.3 matching),
    /// without building an owned key.
    pub(crate) fn find(&self, key: &dyn ServerKeyView) -> Option<ServerTxId> {
        let hash = self.hasher.hash_one(key);
        self.by_key
            .find(hash, |e| {
                e.hash == hash
                    && self
                        .by_id
                        .get(&e.id)
                        .is_some_and(|tx| (&tx.key as &dyn ServerKeyView) == key)
            })
            .map(|e| e.id)
    }

    /// Add transaction `id`. If another transaction already holds an equal
    /// key, the key now finds `id` (as a map insert would); the other stays
    /// findable by its id.
    pub(crate) fn insert(&mut self, id: ServerTxId, tx: ServerTx) {
        let hash = self.hasher.hash_one(&tx.key as &dyn ServerKeyView);
        let by_id = &self.by_id;
        let same_key = |e: &KeyEntry| {
            e.hash == hash
                && by_id.get(&e.id).is_some_and(|old| {
                    (&old.key as &dyn ServerKeyView) == (&tx.key as &dyn ServerKeyView)
                })
        };
        match self.by_key.find_mut(hash, same_key) {
            Some(e) => e.id = id,
            None => {
                self.by_key
                    .insert_unique(hash, KeyEntry { hash, id }, |e| e.hash);
            }
        }
        self.by_id.insert(id, Box::new(tx));
    }

    /// Take transaction `id` out of the table, and its key out of the index
    /// (if the key still finds it).
    pub(crate) fn remove(&mut self, id: &ServerTxId) -> Option<Box<ServerTx>> {
        let tx = self.by_id.remove(id)?;
        let hash = self.hasher.hash_one(&tx.key as &dyn ServerKeyView);
        if let Ok(e) = self.by_key.find_entry(hash, |e| e.id == *id) {
            e.remove();
        }
        Some(tx)
    }
}

/// The client transactions (RFC 3261 17.1) by [`ClientTxId`], boxed (see
/// the module docs).
pub(crate) struct ClientTable {
    by_id: HashMap<ClientTxId, Box<ClientTx>>,
}

impl ClientTable {
    /// An empty table with room for `cap` transactions before it first grows.
    pub(crate) fn with_capacity(cap: usize) -> ClientTable {
        ClientTable {
            by_id: HashMap::with_capacity_and_hasher(cap, Default::default()),
        }
    }

    /// How many client transactions there are.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Transaction `id`, if it still exists.
    pub(crate) fn get(&self, id: &ClientTxId) -> Option<&ClientTx> {
        self.by_id.get(id).map(|b| &**b)
    }

    /// Transaction `id`, mutable, if it still exists.
    pub(crate) fn get_mut(&mut self, id: &ClientTxId) -> Option<&mut ClientTx> {
        self.by_id.get_mut(id).map(|b| &mut **b)
    }

    /// Add transaction `id` (replacing one with the same id).
    pub(crate) fn insert(&mut self, id: ClientTxId, tx: ClientTx) {
        self.by_id.insert(id, Box::new(tx));
    }

    /// Take transaction `id` out of the table.
    pub(crate) fn remove(&mut self, id: &ClientTxId) -> Option<Box<ClientTx>> {
        self.by_id.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Method, ServerKey, ServerKeyRef};

    fn key(branch: &str) -> ServerKey {
        ServerKey::Rfc3261 {
            branch: branch.into(),
            host: "10.0.0.1".into(),
            port: 5060,
            method: Method::Invite,
        }
    }

    #[test]
    fn key_index_finds_removes_and_survives_growth() {
        let mut t = ServerTable::with_capacity(4);
        for i in 0..5_000u64 {
            t.insert(
                ServerTxId(i),
                ServerTx::for_table_test(key(&format!("z9hG4bK{i}"))),
            );
        }
        assert_eq!(t.len(), 5_000);
        for i in (0..5_000u64).step_by(7) {
            let b = format!("z9hG4bK{i}");
            let probe = ServerKeyRef::Rfc3261 {
                branch: &b,
                host: "10.0.0.1",
                port: 5060,
                method: Method::Invite,
            };
            assert_eq!(t.find(&probe as &dyn ServerKeyView), Some(ServerTxId(i)));
        }
        assert!(t.remove(&ServerTxId(7)).is_some());
        assert_eq!(t.find(&key("z9hG4bK7") as &dyn ServerKeyView), None);
        assert!(t.remove(&ServerTxId(7)).is_none());
        assert_eq!(t.len(), 4_999);
        assert_eq!(t.by_key.len(), 4_999);
    }

    #[test]
    fn equal_key_moves_to_the_newer_transaction() {
        let mut t = ServerTable::with_capacity(4);
        t.insert(ServerTxId(1), ServerTx::for_table_test(key("z9hG4bKa")));
        t.insert(ServerTxId(2), ServerTx::for_table_test(key("z9hG4bKa")));
        assert_eq!(
            t.find(&key("z9hG4bKa") as &dyn ServerKeyView),
            Some(ServerTxId(2))
        );
        // removing the older one leaves the key with the newer one
        assert!(t.remove(&ServerTxId(1)).is_some());
        assert_eq!(
            t.find(&key("z9hG4bKa") as &dyn ServerKeyView),
            Some(ServerTxId(2))
        );
        assert!(t.remove(&ServerTxId(2)).is_some());
        assert_eq!(t.find(&key("z9hG4bKa") as &dyn ServerKeyView), None);
        assert_eq!(t.by_key.len(), 0);
    }
}
