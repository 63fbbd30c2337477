//! TCP stream reassembly for one direction of a connection (RFC 9293).

use std::collections::BTreeMap;
use std::time::Duration;

/// Limits of one [`TcpReassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpLimits {
    /// Maximum bytes buffered behind a hole (default 1 MiB). When exceeded, the
    /// reassembler skips the hole and delivers with `gap_before = true`.
    pub max_pending_bytes: usize,
    /// Maximum segments buffered behind a hole (default 4096); handled like
    /// `max_pending_bytes`.
    pub max_pending_segments: usize,
    /// How long (capture time) buffered data waits for a missing segment before the
    /// hole is skipped (default 5 s). A segment the capture lost is never
    /// retransmitted, so data behind it must not wait for ever.
    pub gap_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_pending_bytes: 1 << 20,
            max_pending_segments: 4096,
            gap_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of one [`TcpReassembler`] (see the fields of the same name in
/// [`crate::Stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments whose payload was (wholly or partly) already received.
    pub retransmissions: u64,
    /// Segments that arrived ahead of the expected sequence number.
    pub out_of_order: u64,
    /// Holes skipped (each gives a chunk with `gap_before = true`).
    pub gaps: u64,
    /// Holes skipped because a buffer limit was hit (also counted in `gaps`).
    pub dropped_by_limit: u64,
}

/// A piece of in-order stream data produced by [`TcpReassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpChunk {
    /// Next in-order bytes of the stream.
    pub payload: Vec<u8>,
    /// Bytes are missing before this chunk (lost segment, limit, timeout, or the
    /// stream was picked up mid-way).
    pub gap_before: bool,
    /// 1-based capture packet number that produced or completed this data.
    pub packet: u64,
    /// Capture timestamp of that packet (since the UNIX epoch).
    pub ts: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing seen yet.
    Unsynced,
    /// Receiving data.
    Open,
    /// FIN reached or RST seen: further data (except a new SYN) is ignored.
    Closed,
}

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    packet: u64,
    ts: Duration,
}

/// Reassembles one direction of a TCP connection into in-order byte chunks.
///
/// Feed every segment of the direction with [`feed`](Self::feed); it returns the
/// data that became contiguous. Handles out-of-order, retransmitted, overlapping
/// (first received copy wins), split and coalesced segments and sequence number
/// wrap-around (positions are tracked as 64-bit stream offsets). A SYN sets the
/// initial sequence number; without one the stream starts at the first segment
/// with payload (and that first chunk has `gap_before = true`). FIN ends the
/// direction once all data before it was delivered; RST ends it at once,
/// delivering everything buffered. A SYN with a different sequence number on an
/// ended or running direction starts a new connection (port reuse).
///
/// Memory is bounded by [`TcpLimits`]; holes are skipped when a limit is hit or
/// after [`TcpLimits::gap_timeout`].
#[derive(Debug)]
pub struct TcpReassembler {
    limits: TcpLimits,
    state: State,
    /// Initial sequence number from the SYN, if one was seen.
    isn: Option<u32>,
    /// Sequence number corresponding to stream offset 0.
    base_seq: u32,
    /// Stream offset of the next byte to deliver.
    next: i64,
    /// Stream offset where FIN was seen.
    fin_at: Option<i64>,
    /// Disjoint buffered segments, keyed by stream offset (all `> next`).
    pending: BTreeMap<i64, Pending>,
    pending_bytes: usize,
    /// Capture time since which the data at the head of `pending` waits.
    waiting_since: Duration,
    /// The next delivered chunk must carry `gap_before`.
    gap_pending: bool,
    counters: TcpCounters,
}

impl Default for TcpReassembler {
    fn default() -> Self {
        Self::new(TcpLimits::default())
    }
}

impl TcpReassembler {
    /// Creates a reassembler for one direction with the given limits.
    pub fn new(limits: TcpLimits) -> Self {
        TcpReassembler {
            limits,
            state: State::Unsynced,
            isn: None,
            base_seq: 0,
            next: 0,
            fin_at: None,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            waiting_since: Duration::ZERO,
            gap_pending: false,
            counters: TcpCounters::default(),
        }
    }

    /// Bytes currently buffered behind a hole.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// True once FIN was reached or RST seen (until a new SYN restarts it).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Counters since creation (or the last [`take_counters`](Self::take_counters)).
    pub fn counters(&self) -> &TcpCounters {
        &self.counters
    }

    /// Returns the counters and resets them to zero.
    pub fn take_counters(&mut self) -> TcpCounters {
        std::mem::take(&mut self.counters)
    }

    /// Stream offset of a sequence number, relative to the next expected byte
    /// (handles wrap-around: within 2^31 of `next`).
    fn offset_of(&self, seq: u32) -> i64 {
        let next_seq = self.base_seq.wrapping_add(self.next as u32);
        self.next + i64::from(seq.wrapping_sub(next_seq) as i32)
    }

    fn restart(&mut self, base_seq: u32, isn: Option<u32>, gap: bool) {
        self.state = State::Open;
        self.isn = isn;
        self.base_seq = base_seq;
        self.next = 0;
        self.fin_at = None;
        self.pending.clear();
        self.pending_bytes = 0;
        self.gap_pending = gap;
    }

    /// Feeds one segment of this direction.
    ///
    /// `seq` is the segment's sequence number, `syn`/`fin`/`rst` its flags,
    /// `payload` its data, `packet` the 1-based capture packet number and `ts` the
    /// capture time (since the UNIX epoch). Returns the chunks that became
    /// deliverable, in stream order (usually zero or one).
    #[allow(clippy::too_many_arguments)]
    pub fn feed(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        rst: bool,
        payload: &[u8],
        packet: u64,
        ts: Duration,
    ) -> Vec<TcpChunk> {
        let mut out = Vec::new();
        if syn {
            match (self.state, self.isn) {
                (State::Unsynced, _) => self.restart(seq.wrapping_add(1), Some(seq), false),
                (_, Some(isn)) if isn == seq => {} // retransmitted SYN
                _ => {
                    // New connection on the same addresses: finish the old one.
                    self.flush_into(&mut out, None);
                    self.restart(seq.wrapping_add(1), Some(seq), false);
                }
            }
        } else if self.state == State::Unsynced {
            if payload.is_empty() {
                return out;
            }
            // Picked up mid-way: the stream starts here, the start is missing.
            self.restart(seq, None, true);
        }
        if self.state == State::Closed {
            if !payload.is_empty() {
                self.counters.retransmissions += 1;
            }
            return out;
        }
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let start = self.offset_of(data_seq);
        let end = start + payload.len() as i64;
        if !payload.is_empty() {
            if end <= self.next {
                self.counters.retransmissions += 1;
            } else {
                let (s, data) = if start < self.next {
                    self.counters.retransmissions += 1;
                    let cut = (self.next - start) as usize;
                    (self.next, &payload[cut..])
                } else {
                    (start, payload)
                };
                if s > self.next {
                    self.counters.out_of_order += 1;
                }
                self.insert(s, data, packet, ts);
            }
        }
        if fin && self.fin_at.is_none() {
            self.fin_at = Some(end);
        }
        let at = Some((packet, ts));
        self.drain(&mut out, at);
        while !self.pending.is_empty()
            && (self.pending_bytes > self.limits.max_pending_bytes
                || self.pending.len() > self.limits.max_pending_segments)
        {
            self.counters.dropped_by_limit += 1;
            self.skip_hole(&mut out, at);
        }
        if !self.pending.is_empty()
            && ts.saturating_sub(self.waiting_since) >= self.limits.gap_timeout
        {
            self.flush_into(&mut out, at);
        }
        if rst {
            self.flush_into(&mut out, at);
            self.state = State::Closed;
        }
        if let Some(f) = self.fin_at {
            if self.next >= f && self.pending.is_empty() {
                self.state = State::Closed;
            }
        }
        out
    }

    /// Skips holes whose data waited longer than the gap timeout at capture time
    /// `now`; the delivered chunks carry `packet`/`now`.
    pub fn expire(&mut self, now: Duration, packet: u64) -> Vec<TcpChunk> {
        let mut out = Vec::new();
        if !self.pending.is_empty()
            && now.saturating_sub(self.waiting_since) >= self.limits.gap_timeout
        {
            self.flush_into(&mut out, Some((packet, now)));
        }
        out
    }

    /// Delivers everything buffered now, skipping holes (each gives a chunk with
    /// `gap_before = true`); the chunks carry `packet`/`ts`. Used when a global
    /// memory limit is hit.
    pub fn flush(&mut self, packet: u64, ts: Duration) -> Vec<TcpChunk> {
        let mut out = Vec::new();
        self.flush_into(&mut out, Some((packet, ts)));
        out
    }

    /// Delivers everything still buffered behind holes (each hole gives a chunk
    /// with `gap_before = true`), e.g. at the end of the capture. The chunks carry
    /// the packet number and time of their newest segment.
    pub fn finish(&mut self) -> Vec<TcpChunk> {
        let mut out = Vec::new();
        self.flush_into(&mut out, None);
        out
    }

    /// Ends the direction at once (RST seen in the other direction), delivering
    /// everything buffered like [`finish`](Self::finish).
    pub fn abort(&mut self, packet: u64, ts: Duration) -> Vec<TcpChunk> {
        let mut out = Vec::new();
        self.flush_into(&mut out, Some((packet, ts)));
        if self.state != State::Unsynced {
            self.state = State::Closed;
        }
        out
    }

    fn flush_into(&mut self, out: &mut Vec<TcpChunk>, at: Option<(u64, Duration)>) {
        while !self.pending.is_empty() {
            self.skip_hole(out, at);
        }
    }

    /// Jumps over the hole before the first buffered segment and delivers.
    fn skip_hole(&mut self, out: &mut Vec<TcpChunk>, at: Option<(u64, Duration)>) {
        if let Some((&first, _)) = self.pending.first_key_value() {
            if first > self.next {
                self.next = first;
                self.gap_pending = true;
                self.counters.gaps += 1;
            }
            self.drain(out, at);
        }
    }

    /// Inserts `data` at stream offset `s` (`>= next`), keeping only the parts not
    /// yet buffered (first received copy wins).
    fn insert(&mut self, s: i64, data: &[u8], packet: u64, ts: Duration) {
        let end = s + data.len() as i64;
        let mut pos = s;
        if let Some((&k, p)) = self.pending.range(..s).next_back() {
            let kend = k + p.data.len() as i64;
            if kend > pos {
                pos = kend.min(end);
            }
        }
        let mut pieces: Vec<(i64, i64)> = Vec::new();
        for (&k, p) in self.pending.range(pos..end) {
            if k > pos {
                pieces.push((pos, k));
            }
            pos = pos.max(k + p.data.len() as i64);
            if pos >= end {
                break;
            }
        }
        if pos < end {
            pieces.push((pos, end));
        }
        let fresh: i64 = pieces.iter().map(|(a, b)| b - a).sum();
        if fresh < end - s {
            self.counters.retransmissions += 1;
        }
        if self.pending.is_empty() {
            self.waiting_since = ts;
        }
        for (a, b) in pieces {
            let piece = &data[(a - s) as usize..(b - s) as usize];
            self.pending_bytes += piece.len();
            self.pending.insert(
                a,
                Pending {
                    data: piece.to_vec(),
                    packet,
                    ts,
                },
            );
        }
    }

    /// Delivers the buffered data contiguous with `next` as one chunk.
    fn drain(&mut self, out: &mut Vec<TcpChunk>, at: Option<(u64, Duration)>) {
        let mut buf: Vec<u8> = Vec::new();
        let mut newest = (0u64, Duration::ZERO);
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let p = entry.remove();
            self.pending_bytes -= p.data.len();
            self.next += p.data.len() as i64;
            if p.packet >= newest.0 {
                newest = (p.packet, p.ts);
            }
            if buf.is_empty() {
                buf = p.data;
            } else {
                buf.extend_from_slice(&p.data);
            }
        }
        if buf.is_empty() {
            return;
        }
        if let Some(p) = self.pending.first_key_value() {
            // Another hole: the data behind it starts waiting now.
            self.waiting_since = at.map_or(p.1.ts, |a| a.1);
        }
        let (packet, ts) = at.unwrap_or(newest);
        out.push(TcpChunk {
            payload: buf,
            gap_before: std::mem::take(&mut self.gap_pending),
            packet,
            ts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Duration {
        Duration::from_millis(s)
    }

    /// Feeds (seq, payload) segments without flags; returns the concatenated output
    /// and the gap flags per chunk.
    fn run(r: &mut TcpReassembler, segs: &[(u32, &[u8])]) -> (Vec<u8>, Vec<bool>) {
        let mut data = Vec::new();
        let mut gaps = Vec::new();
        for (i, (seq, p)) in segs.iter().enumerate() {
            for c in r.feed(*seq, false, false, false, p, i as u64 + 1, t(i as u64)) {
                data.extend_from_slice(&c.payload);
                gaps.push(c.gap_before);
            }
        }
        (data, gaps)
    }

    fn synced(isn: u32) -> TcpReassembler {
        let mut r = TcpReassembler::default();
        assert!(r.feed(isn, true, false, false, b"", 1, t(0)).is_empty());
        r
    }

    #[test]
    fn in_order_split_and_coalesced() {
        let mut r = synced(1000);
        let (d, g) = run(&mut r, &[(1001, b"INV"), (1004, b"ITE sip:a"), (1013, b"")]);
        assert_eq!(d, b"INVITE sip:a");
        assert_eq!(g, vec![false, false]);
        assert_eq!(*r.counters(), TcpCounters::default());
    }

    #[test]
    fn out_of_order_is_buffered_and_delivered_once_complete() {
        let mut r = synced(0);
        let mut out = r.feed(4, false, false, false, b"DEF", 2, t(1));
        assert!(out.is_empty());
        out = r.feed(7, false, false, false, b"GH", 3, t(2));
        assert!(out.is_empty());
        assert_eq!(r.pending_bytes(), 5);
        out = r.feed(1, false, false, false, b"ABC", 4, t(3));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, b"ABCDEFGH");
        assert_eq!(out[0].packet, 4);
        assert_eq!(out[0].ts, t(3));
        assert!(!out[0].gap_before);
        assert_eq!(r.counters().out_of_order, 2);
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn retransmissions_are_dropped_and_counted() {
        let mut r = synced(10);
        let (d, _) = run(
            &mut r,
            &[
                (11, b"hello"),
                (11, b"hello"),
                (16, b" world"),
                (11, b"hello"),
            ],
        );
        assert_eq!(d, b"hello world");
        assert_eq!(r.counters().retransmissions, 2);
    }

    #[test]
    fn overlapping_segments_keep_first_copy() {
        let mut r = synced(0);
        // Partial overlap with delivered data, then overlaps inside the buffer.
        let (d, _) = run(
            &mut r,
            &[
                (1, b"abcd"),
                (3, b"cdef"),   // overlaps delivered "cd"
                (10, b"jklm"),  // out of order
                (8, b"XXjkLM"), // "hi" new (as XX), "jk" duplicate, "LM" dup
                (7, b"g"),      // fills the hole
            ],
        );
        assert_eq!(d, b"abcdefgXXjklm");
        assert_eq!(r.counters().retransmissions, 2);
    }

    #[test]
    fn overlap_covering_several_buffered_segments() {
        let mut r = synced(0);
        let (d, _) = run(&mut r, &[(3, b"c"), (5, b"e"), (7, b"g"), (1, b"ABCDEFGH")]);
        assert_eq!(d, b"ABcDeFgH");
    }

    #[test]
    fn sequence_wrap_around() {
        let isn = u32::MAX - 3;
        let mut r = synced(isn);
        let (d, _) = run(
            &mut r,
            &[
                (isn.wrapping_add(1), b"abc"),
                (isn.wrapping_add(7), b"ghi"), // out of order, after the wrap
                (isn.wrapping_add(4), b"def"), // crosses 2^32
                (isn.wrapping_add(10), b"jkl"),
            ],
        );
        assert_eq!(d, b"abcdefghijkl");
        assert_eq!(r.counters().retransmissions, 0);
    }

    #[test]
    fn mid_stream_pickup_starts_at_first_segment() {
        let mut r = TcpReassembler::default();
        // Pure ACK does not start the stream.
        assert!(r.feed(500, false, false, false, b"", 1, t(0)).is_empty());
        let out = r.feed(777, false, false, false, b"REGISTER", 2, t(1));
        assert_eq!(out.len(), 1);
        assert!(out[0].gap_before);
        let out = r.feed(785, false, false, false, b" sip:x", 3, t(2));
        assert!(!out[0].gap_before);
        assert_eq!(r.counters().gaps, 0);
    }

    #[test]
    fn gap_is_skipped_at_finish() {
        let mut r = synced(0);
        let (d, _) = run(&mut r, &[(1, b"ab"), (5, b"ef"), (9, b"ij")]);
        assert_eq!(d, b"ab");
        let out = r.finish();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload, b"ef");
        assert!(out[0].gap_before);
        assert_eq!(out[0].packet, 2);
        assert_eq!(out[1].payload, b"ij");
        assert!(out[1].gap_before);
        assert_eq!(r.counters().gaps, 2);
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn gap_is_skipped_after_timeout() {
        let mut r = synced(0);
        assert_eq!(r.feed(1, false, false, false, b"ab", 2, t(0)).len(), 1);
        assert!(r.feed(5, false, false, false, b"ef", 3, t(100)).is_empty());
        assert!(r.expire(t(4000), 4).is_empty());
        let out = r.expire(t(5200), 9);
        assert_eq!(out.len(), 1);
        assert!(out[0].gap_before);
        assert_eq!((out[0].packet, out[0].ts), (9, t(5200)));
        // Next in-order data after the skipped hole flows normally.
        let out = r.feed(7, false, false, false, b"gh", 10, t(5300));
        assert_eq!(out[0].payload, b"gh");
        assert!(!out[0].gap_before);
        // The late segment of the hole is now old.
        assert!(r
            .feed(3, false, false, false, b"cd", 11, t(5400))
            .is_empty());
        assert_eq!(r.counters().retransmissions, 1);
    }

    #[test]
    fn buffer_limit_skips_hole_and_counts() {
        let mut r = TcpReassembler::new(TcpLimits {
            max_pending_bytes: 10,
            max_pending_segments: 100,
            gap_timeout: Duration::from_secs(60),
        });
        r.feed(0, true, false, false, b"", 1, t(0));
        assert!(r
            .feed(11, false, false, false, b"12345", 2, t(1))
            .is_empty());
        assert!(r
            .feed(16, false, false, false, b"67890", 3, t(2))
            .is_empty());
        let out = r.feed(21, false, false, false, b"X", 4, t(3));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, b"1234567890X");
        assert!(out[0].gap_before);
        assert_eq!(r.counters().dropped_by_limit, 1);
        assert_eq!(r.counters().gaps, 1);
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn segment_count_limit() {
        let mut r = TcpReassembler::new(TcpLimits {
            max_pending_bytes: 1 << 20,
            max_pending_segments: 3,
            gap_timeout: Duration::from_secs(60),
        });
        r.feed(0, true, false, false, b"", 1, t(0));
        for i in 0..3u32 {
            assert!(r
                .feed(10 + 2 * i, false, false, false, b"x", 2, t(1))
                .is_empty());
        }
        let out = r.feed(20, false, false, false, b"y", 3, t(1));
        assert!(!out.is_empty());
        assert!(r.pending.len() <= 3);
    }

    #[test]
    fn fin_closes_after_all_data() {
        let mut r = synced(0);
        // FIN arrives before the last data segment.
        assert!(r.feed(4, false, true, false, b"def", 2, t(1)).is_empty());
        assert!(!r.is_closed());
        let out = r.feed(1, false, false, false, b"abc", 3, t(2));
        assert_eq!(out[0].payload, b"abcdef");
        assert!(r.is_closed());
        // Data after close is ignored.
        assert!(r.feed(4, false, false, false, b"def", 4, t(3)).is_empty());
    }

    #[test]
    fn rst_flushes_and_closes() {
        let mut r = synced(0);
        r.feed(1, false, false, false, b"ab", 2, t(1));
        r.feed(9, false, false, false, b"zz", 3, t(2));
        let out = r.feed(3, false, false, true, b"", 4, t(3));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, b"zz");
        assert!(out[0].gap_before);
        assert!(r.is_closed());
    }

    #[test]
    fn new_syn_restarts_connection() {
        let mut r = synced(100);
        r.feed(101, false, false, false, b"old", 2, t(1));
        r.feed(104, false, true, false, b"", 3, t(2));
        assert!(r.is_closed());
        // Retransmitted old SYN is ignored; a new ISN restarts.
        assert!(r.feed(100, true, false, false, b"", 4, t(3)).is_empty());
        assert!(r.is_closed());
        assert!(r.feed(5000, true, false, false, b"", 5, t(4)).is_empty());
        let out = r.feed(5001, false, false, false, b"new", 6, t(5));
        assert_eq!(out[0].payload, b"new");
        assert!(!out[0].gap_before);
    }

    #[test]
    fn syn_with_data() {
        let mut r = TcpReassembler::default();
        let out = r.feed(41, true, false, false, b"fast", 1, t(0));
        assert_eq!(out[0].payload, b"fast");
        let out = r.feed(46, false, false, false, b"open", 2, t(1));
        assert_eq!(out[0].payload, b"open");
    }

    #[test]
    fn huge_sequence_jump_is_bounded() {
        let mut r = TcpReassembler::new(TcpLimits {
            max_pending_bytes: 100,
            max_pending_segments: 10,
            gap_timeout: Duration::from_secs(60),
        });
        r.feed(0, true, false, false, b"", 1, t(0));
        for i in 0..1000u32 {
            let _ = r.feed(
                i.wrapping_mul(7_919_993),
                false,
                false,
                false,
                &[1; 50],
                2,
                t(1),
            );
            assert!(r.pending_bytes() <= 100);
            assert!(r.pending.len() <= 10);
        }
    }
}
