//! [`StableMap`]: the hash map of sipcti's per-call tables (caller-id
//! rewrites, Call-ID indexes), which hold tens of thousands of entries at
//! 2,000 calls/s because each entry lingers 32 s (64 × T1) after its call.
//!
//! A `std::collections::HashMap` that outgrows its capacity moves every
//! entry into a new allocation and hashes every key again, in one go, on
//! the proxy's single core task: at 16,384 entries of two strings each that
//! was ~1-3 ms of forwarding stalled, plus the page faults of the new
//! table. A [`StableMap`] keeps each `(key, value)` boxed and its hash
//! beside the box, so growing moves 16 bytes per entry and hashes nothing.
//! Lookups cost one pointer more.
//!
//! Hashing is foldhash, seeded randomly per map: keys (Call-IDs, tags) come
//! from the network, so the seed must not be guessable.

#![forbid(unsafe_code)]

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::hash_table::Entry;
use hashbrown::HashTable;

/// One entry: the key's hash and the boxed pair.
struct Slot<K, V> {
    hash: u64,
    pair: Box<(K, V)>,
}

/// A hash map from `K` to `V` whose growth never rehashes (see the crate
/// docs). Lookups take any borrowed form `Q` of the key, as
/// `std::collections::HashMap` does: `K: Borrow<Q>`, and `Q` must hash and
/// compare like `K`.
pub struct StableMap<K, V> {
    table: HashTable<Slot<K, V>>,
    hasher: foldhash::fast::RandomState,
}

impl<K, V> Default for StableMap<K, V> {
    fn default() -> Self {
        StableMap::with_capacity(0)
    }
}

impl<K, V> std::fmt::Debug for StableMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StableMap")
            .field("len", &self.len())
            .finish()
    }
}

impl<K, V> StableMap<K, V> {
    /// An empty map with room for `cap` entries before it first grows.
    pub fn with_capacity(cap: usize) -> Self {
        StableMap {
            table: HashTable::with_capacity(cap),
            hasher: Default::default(),
        }
    }

    /// How many entries the map holds.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl<K: Hash + Eq, V> StableMap<K, V> {
    fn hash<Q: Hash + ?Sized>(&self, q: &Q) -> u64 {
        self.hasher.hash_one(q)
    }

    /// The value of `key`, if present.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.table
            .find(hash, |s| s.hash == hash && s.pair.0.borrow() == key)
            .map(|s| &s.pair.1)
    }

    /// The value of `key`, mutable, if present.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        self.table
            .find_mut(hash, |s| s.hash == hash && s.pair.0.borrow() == key)
            .map(|s| &mut s.pair.1)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Set `key` to `value`; returns the value it replaces (the stored key
    /// is kept then, as `HashMap::insert` does).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        if let Some(s) = self
            .table
            .find_mut(hash, |s| s.hash == hash && s.pair.0 == key)
        {
            return Some(std::mem::replace(&mut s.pair.1, value));
        }
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                pair: Box::new((key, value)),
            },
            |s| s.hash,
        );
        None
    }

    /// The value of `key`, inserting `make()` first if `key` is absent
    /// (`HashMap::entry(key).or_insert_with(make)`).
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(&key);
        match self
            .table
            .entry(hash, |s| s.hash == hash && s.pair.0 == key, |s| s.hash)
        {
            Entry::Occupied(e) => &mut e.into_mut().pair.1,
            Entry::Vacant(e) => {
                let slot = Slot {
                    hash,
                    pair: Box::new((key, make())),
                };
                &mut e.insert(slot).into_mut().pair.1
            }
        }
    }

    /// Take `key` out; returns its value if it was present.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(key).map(|(_, v)| v)
    }

    /// Take `key` out; returns the stored key and its value if present.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        match self
            .table
            .find_entry(hash, |s| s.hash == hash && s.pair.0.borrow() == key)
        {
            Ok(e) => Some(*e.remove().0.pair),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_hash_map_through_growth() {
        let mut m: StableMap<String, u64> = StableMap::default();
        let mut reference: HashMap<String, u64> = HashMap::new();
        for i in 0..20_000u64 {
            let k = format!("call-{}", i % 15_000);
            assert_eq!(m.insert(k.clone(), i), reference.insert(k, i));
            if i % 3 == 0 {
                let k = format!("call-{}", i / 2);
                assert_eq!(m.remove(k.as_str()), reference.remove(k.as_str()));
            }
        }
        assert_eq!(m.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(m.get(k.as_str()), Some(v));
        }
        assert_eq!(m.get("absent"), None);
        let (k, v) = reference.iter().next().unwrap();
        *m.get_mut(k.as_str()).unwrap() += 1;
        assert_eq!(m.get(k.as_str()), Some(&(v + 1)));
    }

    #[test]
    fn remove_entry_returns_the_stored_key() {
        let mut m: StableMap<String, u8> = StableMap::with_capacity(1);
        m.insert("a".into(), 1);
        assert_eq!(m.insert("a".into(), 2), Some(1));
        assert_eq!(m.remove_entry("a"), Some(("a".to_string(), 2)));
        assert!(m.is_empty());
        assert!(!m.contains_key("a"));
        m.get_or_insert_with("b".into(), || 5);
        *m.get_or_insert_with("b".into(), || 7) += 1;
        assert_eq!(m.get("b"), Some(&6));
    }
}
