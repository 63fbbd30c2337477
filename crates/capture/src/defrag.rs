//! IPv4 (RFC 791) and IPv6 (RFC 8200 section 4.5) fragment reassembly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Largest reassembled payload: IPv4 total length and IPv6 payload length are
/// 16-bit fields.
const MAX_DATAGRAM: usize = 65_535;

/// Limits of an [`IpDefragmenter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragLimits {
    /// Incomplete datagrams older than this (capture time since their first
    /// fragment) are discarded (default 30 s, like Linux `ipfrag_time`).
    pub timeout: Duration,
    /// Maximum datagrams under reassembly at once (default 4096); when full the
    /// oldest is discarded.
    pub max_datagrams: usize,
    /// Maximum fragments kept for one datagram (default 256); more discard it.
    pub max_fragments_per_datagram: usize,
    /// Maximum fragment bytes buffered over all datagrams (default 16 MiB); when
    /// exceeded the oldest datagrams are discarded.
    pub max_total_bytes: usize,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            timeout: Duration::from_secs(30),
            max_datagrams: 4096,
            max_fragments_per_datagram: 256,
            max_total_bytes: 16 << 20,
        }
    }
}

/// Counters of an [`IpDefragmenter`] (see the fields of the same meaning in
/// [`crate::Stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragCounters {
    /// Fragments fed.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Incomplete datagrams discarded after the timeout (or by [`IpDefragmenter::finish`]).
    pub expired: u64,
    /// Fragments or datagrams discarded as invalid (conflicting IPv6 overlap per
    /// RFC 5722, inconsistent lengths, longer than 65535 bytes, non-final fragment
    /// not a multiple of 8 bytes).
    pub invalid: u64,
    /// Datagrams discarded because a limit was hit.
    pub dropped_by_limit: u64,
}

/// Identifies the datagram a fragment belongs to: RFC 791 (source, destination,
/// protocol, identification); RFC 8200 (source, destination, identification; the
/// fragment header's Next Header is the same in all fragments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (16 bits for IPv4, 32 bits for IPv6).
    pub id: u32,
    /// IPv4 protocol, or IPv6 Next Header of the fragment header (first header of
    /// the fragmentable part).
    pub protocol: u8,
}

/// One fragment to feed to an [`IpDefragmenter`].
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    /// Datagram the fragment belongs to.
    pub key: FragKey,
    /// Offset of `data` in the reassembled payload, in bytes (the header's
    /// fragment offset times 8).
    pub offset: usize,
    /// More Fragments flag.
    pub more: bool,
    /// Fragment data (IPv4: after the IP header; IPv6: after the fragment header).
    pub data: &'a [u8],
}

#[derive(Debug)]
struct Partial {
    first_ts: Duration,
    /// Fragments in arrival order: (offset, data).
    frags: Vec<(usize, Vec<u8>)>,
    total_len: Option<usize>,
    bytes: usize,
}

/// Reassembles fragmented IPv4 and IPv6 datagrams.
///
/// Fragments may arrive in any order; identical duplicates are ignored. For
/// IPv4, overlapping fragments with different content keep the first received
/// bytes; for IPv6 such a datagram is discarded (RFC 5722). Incomplete datagrams
/// expire after [`DefragLimits::timeout`] of capture time. All buffers are bounded
/// by [`DefragLimits`].
#[derive(Debug)]
pub struct IpDefragmenter {
    limits: DefragLimits,
    table: HashMap<FragKey, Partial>,
    total_bytes: usize,
    next_sweep: Duration,
    counters: DefragCounters,
}

impl Default for IpDefragmenter {
    fn default() -> Self {
        Self::new(DefragLimits::default())
    }
}

impl IpDefragmenter {
    /// Creates an empty defragmenter with the given limits.
    pub fn new(limits: DefragLimits) -> Self {
        IpDefragmenter {
            limits,
            table: HashMap::new(),
            total_bytes: 0,
            next_sweep: Duration::ZERO,
            counters: DefragCounters::default(),
        }
    }

    /// Counters since creation (or the last [`take_counters`](Self::take_counters)).
    pub fn counters(&self) -> &DefragCounters {
        &self.counters
    }

    /// Returns the counters and resets them to zero.
    pub fn take_counters(&mut self) -> DefragCounters {
        std::mem::take(&mut self.counters)
    }

    /// Number of datagrams under reassembly.
    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    /// Fragment bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    /// Discards incomplete datagrams whose first fragment is at least the timeout
    /// older than `now` (capture time since the UNIX epoch).
    pub fn expire(&mut self, now: Duration) {
        let timeout = self.limits.timeout;
        let before = self.table.len();
        let mut freed = 0;
        self.table.retain(|_, p| {
            let keep = now.saturating_sub(p.first_ts) < timeout;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.total_bytes = self.total_bytes.saturating_sub(freed);
        self.counters.expired += (before - self.table.len()) as u64;
    }

    /// Discards every incomplete datagram (end of capture), counting them as
    /// expired.
    pub fn finish(&mut self) {
        self.counters.expired += self.table.len() as u64;
        self.table.clear();
        self.total_bytes = 0;
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(p) = self.table.remove(key) {
            self.total_bytes = self.total_bytes.saturating_sub(p.bytes);
        }
    }

    fn evict_oldest(&mut self, except: Option<&FragKey>) -> bool {
        let oldest = self
            .table
            .iter()
            .filter(|(k, _)| Some(*k) != except)
            .min_by_key(|(_, p)| p.first_ts)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                self.remove(&k);
                self.counters.dropped_by_limit += 1;
                true
            }
            None => false,
        }
    }

    /// Feeds one fragment captured at `ts` (since the UNIX epoch). Returns the
    /// reassembled payload (IPv4: the transport header and data; IPv6: the
    /// fragmentable part, starting with the header named by `key.protocol`) when
    /// this fragment completes its datagram.
    pub fn feed(&mut self, frag: Fragment<'_>, ts: Duration) -> Option<Vec<u8>> {
        self.counters.fragments += 1;
        // Sweep once per second of capture time (or when time jumped backwards).
        if ts >= self.next_sweep || ts + Duration::from_secs(1) < self.next_sweep {
            self.expire(ts);
            self.next_sweep = ts + Duration::from_secs(1);
        }
        let key = frag.key;
        let ipv6 = key.src.is_ipv6();
        let len = frag.data.len();
        let end = frag.offset + len;
        if end > MAX_DATAGRAM || (frag.more && (len == 0 || len & 7 != 0)) {
            self.counters.invalid += 1;
            self.remove(&key);
            return None;
        }
        if !self.table.contains_key(&key) {
            if self.table.len() >= self.limits.max_datagrams.max(1) {
                self.evict_oldest(None);
            }
            self.table.insert(
                key,
                Partial {
                    first_ts: ts,
                    frags: Vec::new(),
                    total_len: None,
                    bytes: 0,
                },
            );
        }
        let partial = self.table.get_mut(&key)?;
        // Check lengths and overlaps.
        let mut invalid = false;
        if !frag.more {
            match partial.total_len {
                Some(t) if t != end => invalid = true,
                _ => {}
            }
            if partial.frags.iter().any(|(o, d)| o + d.len() > end) {
                invalid = true;
            }
        } else if partial.total_len.is_some_and(|t| end > t) {
            invalid = true;
        }
        let mut duplicate = false;
        for (o, d) in &partial.frags {
            let a = (*o).max(frag.offset);
            let b = (o + d.len()).min(end);
            if a < b {
                let same = d[a - o..b - o] == frag.data[a - frag.offset..b - frag.offset];
                if !same && ipv6 {
                    invalid = true;
                }
                if *o == frag.offset && d.len() == len && same {
                    duplicate = true;
                }
            }
        }
        if invalid {
            self.counters.invalid += 1;
            self.remove(&key);
            return None;
        }
        if !frag.more {
            partial.total_len = Some(end);
        }
        if duplicate {
            return None;
        }
        if partial.frags.len() >= self.limits.max_fragments_per_datagram
            || partial.bytes + len > 2 * MAX_DATAGRAM
        {
            self.counters.dropped_by_limit += 1;
            self.remove(&key);
            return None;
        }
        partial.frags.push((frag.offset, frag.data.to_vec()));
        partial.bytes += len;
        self.total_bytes += len;
        while self.total_bytes > self.limits.max_total_bytes {
            if !self.evict_oldest(Some(&key)) {
                self.counters.dropped_by_limit += 1;
                self.remove(&key);
                return None;
            }
        }
        let partial = self.table.get(&key)?;
        let total = partial.total_len?;
        let mut spans: Vec<(usize, usize)> = partial
            .frags
            .iter()
            .map(|(o, d)| (*o, o + d.len()))
            .collect();
        spans.sort_unstable();
        let mut covered = 0;
        for (a, b) in spans {
            if a > covered {
                return None;
            }
            covered = covered.max(b);
        }
        if covered < total {
            return None;
        }
        let partial = self.table.remove(&key)?;
        self.total_bytes = self.total_bytes.saturating_sub(partial.bytes);
        let mut buf = vec![0u8; total];
        // Later fragments first so that the first received bytes win.
        for (o, d) in partial.frags.iter().rev() {
            buf[*o..o + d.len()].copy_from_slice(d);
        }
        self.counters.reassembled += 1;
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key4() -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id: 7,
            protocol: 17,
        }
    }

    fn key6() -> FragKey {
        FragKey {
            src: IpAddr::V6(Ipv6Addr::LOCALHOST),
            dst: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            id: 0xdead_beef,
            protocol: 17,
        }
    }

    fn f(key: FragKey, offset: usize, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            key,
            offset,
            more,
            data,
        }
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn in_order_and_out_of_order() {
        let p = payload(40);
        for key in [key4(), key6()] {
            for order in [[0usize, 1, 2], [2, 0, 1], [1, 2, 0]] {
                let mut d = IpDefragmenter::default();
                let parts = [
                    (0, true, &p[0..16]),
                    (16, true, &p[16..32]),
                    (32, false, &p[32..]),
                ];
                let mut res = None;
                for (n, i) in order.iter().enumerate() {
                    let (o, m, data) = parts[*i];
                    let r = d.feed(f(key, o, m, data), Duration::from_millis(n as u64));
                    if n < 2 {
                        assert!(r.is_none());
                    } else {
                        res = r;
                    }
                }
                assert_eq!(res.as_deref(), Some(&p[..]));
                assert_eq!(d.counters().reassembled, 1);
                assert_eq!(d.in_progress(), 0);
                assert_eq!(d.buffered_bytes(), 0);
            }
        }
    }

    #[test]
    fn duplicates_and_identical_overlap() {
        let p = payload(48);
        let mut d = IpDefragmenter::default();
        let t = Duration::ZERO;
        assert!(d.feed(f(key6(), 0, true, &p[0..24]), t).is_none());
        assert!(d.feed(f(key6(), 0, true, &p[0..24]), t).is_none());
        assert!(d.feed(f(key6(), 16, true, &p[16..32]), t).is_none());
        let r = d.feed(f(key6(), 32, false, &p[32..]), t);
        assert_eq!(r.as_deref(), Some(&p[..]));
    }

    #[test]
    fn conflicting_overlap_v4_first_wins_v6_discarded() {
        let p = payload(32);
        let mut other = p.clone();
        other[8..16].fill(0xff);
        let t = Duration::ZERO;

        let mut d = IpDefragmenter::default();
        d.feed(f(key4(), 0, true, &p[0..16]), t);
        d.feed(f(key4(), 8, true, &other[8..24]), t);
        let r = d.feed(f(key4(), 24, false, &p[24..]), t);
        assert_eq!(r.as_deref(), Some(&p[..]));

        let mut d = IpDefragmenter::default();
        d.feed(f(key6(), 0, true, &p[0..16]), t);
        assert!(d.feed(f(key6(), 8, true, &other[8..24]), t).is_none());
        assert_eq!(d.counters().invalid, 1);
        assert!(d.feed(f(key6(), 24, false, &p[24..]), t).is_none());
        assert_eq!(d.counters().reassembled, 0);
    }

    #[test]
    fn incomplete_datagram_times_out() {
        let p = payload(32);
        let mut d = IpDefragmenter::default();
        d.feed(f(key4(), 0, true, &p[0..16]), Duration::from_secs(100));
        assert_eq!(d.in_progress(), 1);
        // Another datagram 31 s later sweeps the first one.
        let mut k = key4();
        k.id = 8;
        d.feed(f(k, 16, false, &p[16..]), Duration::from_secs(131));
        assert_eq!(d.counters().expired, 1);
        assert_eq!(d.in_progress(), 1);
        // The missing half of the first datagram arrives too late: no result.
        assert!(d
            .feed(f(key4(), 16, false, &p[16..]), Duration::from_secs(131))
            .is_none());
        d.finish();
        assert_eq!(d.counters().expired, 3);
        assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn invalid_fragments() {
        let p = payload(100);
        let mut d = IpDefragmenter::default();
        let t = Duration::ZERO;
        // Non-final fragment not a multiple of 8.
        assert!(d.feed(f(key4(), 0, true, &p[0..10]), t).is_none());
        // Beyond 65535 bytes.
        assert!(d.feed(f(key4(), 65_528, false, &p[0..16]), t).is_none());
        // Conflicting end.
        d.feed(f(key6(), 0, true, &p[0..16]), t);
        d.feed(f(key6(), 32, false, &p[32..48]), t);
        assert!(d.feed(f(key6(), 16, false, &p[16..24]), t).is_none());
        assert_eq!(d.counters().invalid, 3);
        assert_eq!(d.in_progress(), 0);
    }

    #[test]
    fn limits_bound_memory() {
        let p = payload(1024);
        let mut d = IpDefragmenter::new(DefragLimits {
            timeout: Duration::from_secs(30),
            max_datagrams: 10,
            max_fragments_per_datagram: 4,
            max_total_bytes: 4096,
        });
        let t = Duration::ZERO;
        for id in 0..100 {
            let mut k = key4();
            k.id = id;
            d.feed(f(k, 0, true, &p), t);
            assert!(d.in_progress() <= 10);
            assert!(d.buffered_bytes() <= 4096);
        }
        assert!(d.counters().dropped_by_limit >= 90);
        // Too many fragments for one datagram.
        let mut k = key6();
        k.id = 1;
        for i in 0..5 {
            d.feed(f(k, i * 8, true, &p[..8]), t);
        }
        assert!(d.counters().dropped_by_limit >= 91);
    }
}
