//! The call state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::HashMap;
use sipcti_table::StableMap;
use std::time::{Duration, Instant};

use sipcti_event::{Cause, Direction, EventKind};
use sipcti_wire::SipMessage;

use crate::msg::{Method, Msg};
use crate::view::MsgView;

mod cid_calls;
mod transfer;
use crate::{
    cause_for_status, normalize_number, CallEvent, CallInfo, Side, TrackerConfig, TrackerStats,
};
use cid_calls::CidCalls;
use transfer::Xfer;

/// Zammad stores at most 250 characters of a callId; longer Call-IDs are shortened.
const CALL_ID_LONG: usize = 200;
const CALL_ID_KEEP: usize = 180;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initial INVITE seen, no final answer yet.
    Ringing,
    /// The INVITE got a 401/407; waiting for the INVITE with credentials.
    Challenged { status: u16 },
    /// A 2xx was seen.
    Answered,
    /// hangup emitted; kept for `linger` to absorb retransmissions.
    Ended,
}

#[derive(Debug)]
struct Call {
    /// The SIP Call-ID, shared with the `by_cid` key (one copy per call).
    sip_call_id: Arc<str>,
    /// Zammad's callId: the same text as `sip_call_id` (and shared with
    /// it) for the first call of a short Call-ID.
    zammad_id: Arc<str>,
    direction: Direction,
    from: String,
    to: String,
    /// CSeq number of the call's current initial INVITE transaction.
    invite_cseq: u32,
    state: State,
    cancel_seen: bool,
    started: Instant,
    /// To tag of the 2xx that answered the call (the confirmed dialog).
    answered_to_tag: Option<String>,
    answering_number: Option<String>,
    /// The normalised user of the route target an inbound call was sent to
    /// (one target): who answered when the answer names nobody.
    target_user: Option<String>,
    deadline: Option<Instant>,
    /// Key in `lingering` once ended.
    linger_key: Option<Instant>,
    /// What transfers did to the call (RFC 3515, RFC 3891).
    xfer: Xfer,
    /// Given back after a restart: its From tag and dialog are unknown, so
    /// a BYE with its Call-ID ends it.
    restored: bool,
}

/// How often a Call-ID was used for a call (for `-2`, `-3` ... call ids).
#[derive(Debug)]
struct CidUse {
    count: u32,
    /// Calls with this Call-ID in the table.
    live: u32,
    /// When `live` is 0: until when the count is remembered.
    expires: Option<Instant>,
}

/// The sans-IO call tracker. See the crate documentation.
///
/// Behaviour in short:
/// - a call is keyed by (Call-ID, From tag) of its initial INVITE (no To tag); the same
///   INVITE again (retransmission, second leg of a capture) or one with a lower CSeq is
///   absorbed; a higher CSeq while ringing or challenged continues the same call (INVITE
///   with credentials); a higher CSeq after the call ended is a new call (`<Call-ID>-2`);
/// - responses count only with CSeq method INVITE and the call's current INVITE CSeq;
/// - a BYE ends the call if it comes from the caller on the answered dialog (its To tag is
///   the answering To tag, its CSeq above the INVITE's) or from the answering callee (its
///   From tag is the answering To tag), so BYEs that close extra fork branches are ignored;
/// - after a CANCEL the call waits `linger` for the final answer, then hangs up `cancel`;
/// - [`CallTracker::on_message`] first runs the timers due at its `now`, so the result
///   does not depend on how promptly the caller drives `handle_timeout`; timer events
///   carry their deadline as `at`;
/// - transfers (RFC 3515, RFC 3891, RFC 5589): a REFER accepted in a call's dialog (a 2xx
///   to it, or a NOTIFY of its subscription with a 1xx/2xx sipfrag), the consultation call
///   its Refer-To `Replaces` names, and a call an INVITE's `Replaces` names end `forwarded`
///   (BYE from either party, or the duration timer) instead of `normalClearing`; a NOTIFY
///   with a failed sipfrag undoes the REFER's marks, a Replaces INVITE that fails its own;
///   the new leg is a new call like any other;
/// - how often a Call-ID was used is remembered while a call with it is tracked and
///   `max_call_duration` after that (bounded by `max_calls` entries).
#[derive(Debug)]
pub struct CallTracker {
    cfg: TrackerConfig,
    next_id: u64,
    /// All tracked calls, by creation order (deterministic iteration).
    calls: BTreeMap<u64, Call>,
    /// Call-ID -> (From tag, call) in creation order; the last match is the current call.
    /// (A [`StableMap`]: it holds every lingering call's Call-ID, and a
    /// plain map's growth would stall the core's task while it rehashes.)
    by_cid: StableMap<Arc<str>, CidCalls>,
    /// (deadline, call) of every call that has one.
    timers: BTreeSet<(Instant, u64)>,
    /// (linger end, call) of ended calls, oldest first (evicted first when full).
    lingering: BTreeSet<(Instant, u64)>,
    /// FNV-1a hash of a Call-ID -> its use count.
    cid_uses: HashMap<u64, CidUse>,
    /// (expiry, hash) of Call-ID counts no longer in use.
    cid_expiry: BTreeSet<(Instant, u64)>,
    active: usize,
    stats: TrackerStats,
}

/// FNV-1a, 64 bit: a stable hash (the same on every run and platform).
pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The Zammad callId for the `n`-th call (1-based) that uses `sip_call_id`.
pub(crate) fn zammad_call_id(sip_call_id: &str, n: u32) -> String {
    let mut id = if sip_call_id.chars().count() > CALL_ID_LONG {
        let head: String = sip_call_id.chars().take(CALL_ID_KEEP).collect();
        format!("{head}-{:016x}", fnv1a64(sip_call_id.as_bytes()))
    } else {
        sip_call_id.to_string()
    };
    if n > 1 {
        id.push('-');
        id.push_str(&n.to_string());
    }
    id
}

fn is_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

fn add(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

/// Appends `ev`, if any, to a step's events. The first gets room for
/// itself only: a step emits one event (a first push would reserve four).
fn push_event(out: &mut Vec<CallEvent>, ev: Option<CallEvent>) {
    let Some(ev) = ev else { return };
    if out.capacity() == 0 {
        out.reserve_exact(1);
    }
    out.push(ev);
}

/// Sets call `id`'s timer to `deadline` (none: no timer) in `timers`, for a
/// call the caller holds already (no second table lookup).
fn rearm(
    timers: &mut BTreeSet<(Instant, u64)>,
    id: u64,
    call: &mut Call,
    deadline: Option<Instant>,
) {
    if let Some(old) = call.deadline.take() {
        timers.remove(&(old, id));
    }
    call.deadline = deadline;
    if let Some(d) = deadline {
        timers.insert((d, id));
    }
}

impl CallTracker {
    /// A tracker with empty tables.
    pub fn new(cfg: TrackerConfig) -> Self {
        CallTracker {
            cfg,
            next_id: 0,
            calls: BTreeMap::new(),
            by_cid: StableMap::default(),
            timers: BTreeSet::new(),
            lingering: BTreeSet::new(),
            cid_uses: HashMap::default(),
            cid_expiry: BTreeSet::new(),
            active: 0,
            stats: TrackerStats::default(),
        }
    }

    /// Replace the configuration (a reload): numbers, routes, phonebook and
    /// timers apply to calls that start from now on; calls already tracked
    /// keep the fields they were reported with, and their running timers.
    /// A smaller `max_calls` only refuses new calls until the table shrinks.
    pub fn set_config(&mut self, cfg: TrackerConfig) {
        self.cfg = cfg;
    }

    /// Feeds one SIP message that came from `side` at `now`; returns the events it causes.
    ///
    /// Timers due at `now` are run first (their events come first), so the result does not
    /// depend on how promptly the caller drives [`CallTracker::handle_timeout`].
    pub fn on_message(&mut self, msg: &SipMessage, side: Side, now: Instant) -> Vec<CallEvent> {
        match Msg::from_wire(msg) {
            Ok(m) => self.on_msg(&m, side, now),
            Err(why) => {
                let out = self.handle_timeout(now);
                self.stats.malformed_ignored += 1;
                tracing::debug!(reason = why, "SIP message ignored by the call tracker");
                out
            }
        }
    }

    /// Like [`CallTracker::on_message`], for a message already reduced to a [`MsgView`].
    pub fn on_view(&mut self, v: &MsgView, side: Side, now: Instant) -> Vec<CallEvent> {
        self.on_msg(&Msg::from_view(v), side, now)
    }

    /// The one step behind [`CallTracker::on_message`] and
    /// [`CallTracker::on_view`]: timers, then the message's handler.
    fn on_msg(&mut self, v: &Msg<'_>, side: Side, now: Instant) -> Vec<CallEvent> {
        let mut out = self.handle_timeout(now);
        let before = out.len();
        match v.method {
            Some(Method::Invite) => {
                if v.to_tag.is_none() {
                    self.on_initial_invite(v, side, now, &mut out);
                }
                // An INVITE with a To tag is a re-INVITE: no event.
            }
            Some(Method::Cancel) => self.on_cancel(v, now),
            Some(Method::Bye) => self.on_bye(v, now, &mut out),
            Some(Method::Refer) => self.on_refer(v),
            Some(Method::Notify) => self.on_notify(v),
            Some(Method::Other) => {}
            None => self.on_response(v, now, &mut out),
        }
        self.stats.events_emitted += (out.len() - before) as u64;
        out
    }

    /// The earliest instant at which [`CallTracker::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Runs every timer due at `now`: hangups of calls that rang, waited for credentials
    /// or lasted too long, and freeing of lingering calls. Events carry the deadline as `at`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<CallEvent> {
        let mut out = Vec::new();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            call.deadline = None;
            let cause = match call.state {
                State::Ringing if call.cancel_seen && call.xfer.forwarded() => Cause::Forwarded,
                State::Ringing if call.cancel_seen => Cause::Cancel,
                State::Ringing => Cause::NoAnswer,
                State::Challenged { .. } if call.cancel_seen => Cause::Cancel,
                State::Challenged { status } => {
                    cause_for_status(status).unwrap_or(Cause::Congestion)
                }
                State::Answered if call.xfer.forwarded() => Cause::Forwarded,
                State::Answered => Cause::NormalClearing,
                State::Ended => {
                    self.free_call(id, t);
                    continue;
                }
            };
            tracing::debug!(
                sip_call_id = %call.sip_call_id,
                cause = cause.as_str(),
                "call closed by timer"
            );
            self.stats.timed_out += 1;
            out.extend(self.end_call(id, cause, t));
        }
        self.purge_cid_uses(now);
        self.stats.events_emitted += out.len() as u64;
        out
    }

    /// The live call for the SIP dialog (Call-ID, From tag of the initial INVITE).
    pub fn call_info(&self, sip_call_id: &str, from_tag: &str) -> Option<CallInfo> {
        let id = self.find(sip_call_id, from_tag)?;
        let c = self.calls.get(&id)?;
        Some(CallInfo {
            call_id: String::from(&*c.zammad_id),
            direction: c.direction,
            answered: c.answered_to_tag.is_some() || matches!(c.state, State::Answered),
            ended: c.state == State::Ended,
        })
    }

    /// Whether the SIP dialog (Call-ID, From tag of the initial INVITE) is
    /// a tracked call not hung up yet: `call_info(..).is_some_and(|c|
    /// !c.ended)` without building the [`CallInfo`] (no allocation).
    pub fn is_live_call(&self, sip_call_id: &str, from_tag: &str) -> bool {
        self.find(sip_call_id, from_tag)
            .and_then(|id| self.calls.get(&id))
            .is_some_and(|c| c.state != State::Ended)
    }

    /// Hangs up every open call: answered ones with normalClearing, the others with cancel.
    pub fn shutdown(&mut self, now: Instant) -> Vec<CallEvent> {
        let open: Vec<(u64, State)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.state != State::Ended)
            .map(|(id, c)| (*id, c.state))
            .collect();
        let mut out = Vec::with_capacity(open.len());
        for (id, state) in open {
            let cause = if state == State::Answered {
                Cause::NormalClearing
            } else {
                Cause::Cancel
            };
            out.extend(self.end_call(id, cause, now));
        }
        self.stats.events_emitted += out.len() as u64;
        out
    }

    /// Counters and table sizes (monotonic counters except `active_calls`).
    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            active_calls: self.active,
            tracked_calls: self.calls.len(),
            ..self.stats.clone()
        }
    }

    // ----- message handlers -----

    fn on_initial_invite(
        &mut self,
        v: &Msg<'_>,
        side: Side,
        now: Instant,
        out: &mut Vec<CallEvent>,
    ) {
        let tag = v.from_tag.unwrap_or("");
        if let Some(id) = self.find(v.call_id, tag) {
            let Some(call) = self.calls.get_mut(&id) else {
                debug_assert!(false, "indexed call exists");
                return;
            };
            match call.state {
                State::Ended if v.cseq > call.invite_cseq => {
                    // A new call reusing Call-ID and From tag: tracked below.
                }
                State::Ringing | State::Challenged { .. } if v.cseq > call.invite_cseq => {
                    // The INVITE re-sent with credentials (or after a challenge we did not
                    // see): the same call continues.
                    call.invite_cseq = v.cseq;
                    if matches!(call.state, State::Challenged { .. }) {
                        call.state = State::Ringing;
                        let ring_deadline = add(call.started, self.cfg.max_call_duration);
                        rearm(&mut self.timers, id, call, ring_deadline);
                    }
                    return;
                }
                _ => {
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
            }
        }
        let Some(id) = self.new_call(v, side, now, out) else {
            return;
        };
        if let Some(d) = v.replaces() {
            self.link_replaces(id, &d);
        }
    }

    /// Tracks a new call and emits its newCall; returns its id, `None`
    /// when the table is full.
    fn new_call(
        &mut self,
        v: &Msg<'_>,
        side: Side,
        now: Instant,
        out: &mut Vec<CallEvent>,
    ) -> Option<u64> {
        if self.calls.len() >= self.cfg.max_calls {
            if let Some(&(t, id)) = self.lingering.first() {
                self.free_call(id, t.min(now));
                self.stats.lingering_evicted += 1;
            }
        }
        if self.calls.len() >= self.cfg.max_calls {
            self.stats.untracked_table_full += 1;
            let n = self.stats.untracked_table_full;
            if n <= 10 || n.is_power_of_two() {
                tracing::warn!(
                    sip_call_id = %v.call_id,
                    max_calls = self.cfg.max_calls,
                    untracked_total = n,
                    "call not tracked: call table full (max_calls tracked calls, none lingering); no CTI events for it"
                );
            }
            return None;
        }
        let cc = self.cfg.country_code.as_deref();
        let ml = self.cfg.max_internal_len;
        let direction = side.direction();
        let from_party = v.party_from();
        let pai = v.pai();
        let anonymous = v.privacy_id() || from_party.is_anonymous();
        let caller = pai.as_ref().and_then(|p| p.user()).or(from_party.user());
        let from = match caller {
            Some(u) if !anonymous && !u.eq_ignore_ascii_case("anonymous") => {
                normalize_number(u, cc, ml)
            }
            _ => "anonymous".to_string(),
        };
        // the To party is read only when the Request-URI has no user
        let to = match v.ruri_user().filter(|u| !u.is_empty()) {
            Some(u) => normalize_number(&u, cc, ml),
            None => crate::routes::dialled(None, v.party_to().user(), cc, ml),
        };
        // the route of an inbound call: the same first match the core routed by
        let route = match direction {
            Direction::In => crate::match_route(&self.cfg.routes, &to),
            Direction::Out => None,
        };
        let queue = route.and_then(|r| r.queue.clone());
        let target_user = route
            .and_then(|r| r.target_user.clone())
            .or_else(|| v.target_user().map(str::to_string));
        // a ring group: every called person (phonebook name, else the
        // target's user), the same order as the route's targets
        let group: Vec<String> = route
            .filter(|r| r.is_group())
            .map(|r| {
                r.targets
                    .iter()
                    .filter_map(|t| {
                        let u = t.user.as_deref()?;
                        Some(self.cfg.person(u).unwrap_or(u).to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let not_anon = |d: &&str| !d.eq_ignore_ascii_case("anonymous");
        // Zammad's `user`: the phonebook's person first, else the display name
        let user = match direction {
            Direction::Out => (from != "anonymous")
                .then(|| self.cfg.person(&from))
                .flatten()
                .or(from_party.display().filter(not_anon))
                .or(pai.as_ref().and_then(|p| p.display()).filter(not_anon))
                .map(str::to_string),
            Direction::In => match target_user
                .as_deref()
                .and_then(|u| self.cfg.person(u))
                .or_else(|| self.cfg.person(&to))
            {
                Some(person) => Some(person.to_string()),
                None => v.party_to().display().map(str::to_string),
            },
        };

        let sip_call_id: Arc<str> = Arc::from(v.call_id);
        let zammad_id = self.next_zammad_id(&sip_call_id, now);
        let id = self.next_id;
        self.next_id += 1;
        self.by_cid
            .get_or_insert_with(Arc::clone(&sip_call_id), CidCalls::default)
            .push(v.from_tag.unwrap_or_default().to_string(), id);
        let mut call = Call {
            sip_call_id,
            zammad_id,
            direction,
            from,
            to,
            invite_cseq: v.cseq,
            state: State::Ringing,
            cancel_seen: false,
            started: now,
            answered_to_tag: None,
            answering_number: None,
            target_user,
            deadline: None,
            linger_key: None,
            xfer: Xfer::default(),
            restored: false,
        };
        tracing::debug!(
            sip_call_id = %call.sip_call_id,
            from_tag = %v.from_tag.unwrap_or_default(),
            call_id = %call.zammad_id,
            direction = direction.as_str(),
            "new call"
        );
        push_event(
            out,
            Some(CallEvent {
                kind: EventKind::NewCall,
                call_id: String::from(&*call.zammad_id),
                direction,
                from: call.from.clone(),
                to: call.to.clone(),
                user: group.first().cloned().or(user),
                group,
                queue,
                answering_number: None,
                cause: None,
                at: now,
                sip_call_id: String::from(&*call.sip_call_id),
            }),
        );
        rearm(
            &mut self.timers,
            id,
            &mut call,
            add(now, self.cfg.max_call_duration),
        );
        self.calls.insert(id, call);
        self.active += 1;
        self.stats.calls_seen += 1;
        Some(id)
    }

    fn on_cancel(&mut self, v: &Msg<'_>, now: Instant) {
        let tag = v.from_tag.unwrap_or("");
        let Some(id) = self.find(v.call_id, tag) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        let linger = self.cfg.linger;
        let Some(call) = self.calls.get_mut(&id) else {
            debug_assert!(false, "indexed call exists");
            return;
        };
        match call.state {
            State::Ringing | State::Challenged { .. } if !call.cancel_seen => {
                call.cancel_seen = true;
                if call.state == State::Ringing {
                    // The final answer (487) is due within a transaction timeout.
                    let cur = call.deadline;
                    let d = match (cur, add(now, linger)) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    self.set_deadline(id, d);
                }
            }
            _ => self.stats.retransmissions_absorbed += 1,
        }
    }

    fn on_bye(&mut self, v: &Msg<'_>, now: Instant, out: &mut Vec<CallEvent>) {
        let Some((id, call)) = self.bye_call(v) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        let cause = match call.state {
            State::Ended => {
                self.stats.retransmissions_absorbed += 1;
                return;
            }
            State::Answered if call.xfer.forwarded() => Cause::Forwarded,
            State::Answered => Cause::NormalClearing,
            State::Ringing | State::Challenged { .. } => Cause::Cancel,
        };
        push_event(out, self.end_call(id, cause, now));
    }

    /// The call a BYE ends: sent by the caller (its From tag is the call's) on the answered
    /// dialog, or by the callee (its From tag is the answering To tag, its To tag the call's).
    /// Returns its id and the call.
    fn bye_call(&self, v: &Msg<'_>) -> Option<(u64, &Call)> {
        if let Some(tag) = v.from_tag {
            if let Some(id) = self.find(v.call_id, tag) {
                let c = self.calls.get(&id)?;
                let dialog_ok = match (&c.answered_to_tag, v.to_tag) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                };
                // Caller's in-dialog CSeq is above the INVITE's; a BYE with a lower one
                // belongs to an earlier call that reused Call-ID and tag.
                if dialog_ok && v.cseq > c.invite_cseq {
                    return Some((id, c));
                }
            }
        }
        if let (Some(to_tag), Some(from_tag)) = (v.to_tag, v.from_tag) {
            if let Some(id) = self.find(v.call_id, to_tag) {
                let c = self.calls.get(&id)?;
                if c.answered_to_tag.as_deref() == Some(from_tag) {
                    return Some((id, c));
                }
            }
        }
        // a call given back after a restart: any BYE with its Call-ID
        let id = self.find(v.call_id, "")?;
        self.calls.get(&id).filter(|c| c.restored).map(|c| (id, c))
    }

    /// Take back an answered call that was open when sipcti last stopped
    /// (found in the CTI outbox), so that its BYE, seen now, emits its
    /// `hangup` (`normalClearing`, or `forwarded` never: a transfer's
    /// traces died with the old process). Its `max_call_duration` runs from
    /// its `newCall` (`r.age` ago): a call never heard of again is closed
    /// then. Returns false (and tracks nothing) when the table is full or
    /// the call is already tracked. Emits nothing.
    pub fn restore(&mut self, r: crate::RestoredCall, now: Instant) -> bool {
        if self.calls.len() >= self.cfg.max_calls || self.find(&r.sip_call_id, "").is_some() {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        let sip_call_id: Arc<str> = Arc::from(r.sip_call_id);
        self.by_cid
            .get_or_insert_with(Arc::clone(&sip_call_id), CidCalls::default)
            .push(String::new(), id);
        let started = now.checked_sub(r.age).unwrap_or(now);
        self.calls.insert(
            id,
            Call {
                sip_call_id,
                zammad_id: Arc::from(r.call_id),
                direction: r.direction,
                from: r.from,
                to: r.to,
                invite_cseq: 0,
                state: State::Answered,
                cancel_seen: false,
                started,
                answered_to_tag: None,
                answering_number: r.answering_number,
                target_user: None,
                deadline: None,
                linger_key: None,
                xfer: Xfer::default(),
                restored: true,
            },
        );
        self.active += 1;
        self.stats.calls_restored += 1;
        let left = self.cfg.max_call_duration.saturating_sub(r.age);
        self.set_deadline(id, add(now, left));
        true
    }

    fn on_response(&mut self, v: &Msg<'_>, now: Instant, out: &mut Vec<CallEvent>) {
        let Some(status) = v.status else { return };
        if v.cseq_method == Method::Refer && status >= 200 {
            self.on_refer_response(v, status);
            return;
        }
        if v.cseq_method != Method::Invite {
            return;
        }
        let tag = v.from_tag.unwrap_or("");
        let Some(id) = self.find(v.call_id, tag) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        if status < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            debug_assert!(false, "indexed call exists");
            return;
        };
        let ring_deadline = add(call.started, self.cfg.max_call_duration);
        match call.state {
            State::Ended | State::Answered => {
                self.stats.retransmissions_absorbed += 1;
                return;
            }
            State::Ringing | State::Challenged { .. } => {
                if v.cseq < call.invite_cseq
                    || (v.cseq == call.invite_cseq
                        && matches!(call.state, State::Challenged { .. }))
                {
                    // Late or retransmitted answer to an earlier (challenged) INVITE.
                    self.stats.retransmissions_absorbed += 1;
                    return;
                }
                if v.cseq > call.invite_cseq {
                    // Answer to an INVITE with credentials we did not see.
                    call.invite_cseq = v.cseq;
                    if matches!(call.state, State::Challenged { .. }) {
                        call.state = State::Ringing;
                        rearm(&mut self.timers, id, call, ring_deadline);
                    }
                }
            }
        }
        let cancelled = call.cancel_seen;
        match status {
            200..=299 => self.answer(id, v, now, out),
            401 | 407 if !cancelled => {
                call.state = State::Challenged { status };
                let d = match (add(now, self.cfg.challenge_wait), ring_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                rearm(&mut self.timers, id, call, d);
            }
            300..=699 => {
                let cause = if cancelled && self.is_forwarded(id) {
                    // an early dialog replaced elsewhere (RFC 3891 7.1, call pickup)
                    Cause::Forwarded
                } else if cancelled {
                    Cause::Cancel
                } else {
                    cause_for_status(status).unwrap_or(Cause::Congestion)
                };
                push_event(out, self.end_call(id, cause, now));
            }
            _ => {}
        }
    }

    fn answer(&mut self, id: u64, v: &Msg<'_>, now: Instant, out: &mut Vec<CallEvent>) {
        let cc = self.cfg.country_code.as_deref();
        let ml = self.cfg.max_internal_len;
        let deadline = add(now, self.cfg.max_call_duration);
        let Some(call) = self.calls.get_mut(&id) else {
            debug_assert!(false, "indexed call exists");
            return;
        };
        call.state = State::Answered;
        call.answered_to_tag = Some(v.to_tag.unwrap_or_default().to_string());
        let mut user = None;
        if call.direction == Direction::In {
            let pai_party = v.pai();
            let contact_party = v.contact();
            let pai = pai_party.as_ref().and_then(|p| p.user());
            let contact = contact_party
                .as_ref()
                .and_then(|p| p.user())
                .filter(|u| is_number(u));
            call.answering_number = pai
                .or(contact)
                .map(|u| normalize_number(u, cc, ml))
                .or_else(|| call.target_user.clone())
                .or_else(|| v.party_to().user().map(|u| normalize_number(u, cc, ml)));
            user = call
                .answering_number
                .as_deref()
                .and_then(|n| self.cfg.phonebook.get(n).cloned())
                .or_else(|| {
                    pai_party
                        .as_ref()
                        .and_then(|p| p.display().map(str::to_string))
                })
                .or_else(|| {
                    contact_party
                        .as_ref()
                        .and_then(|p| p.display().map(str::to_string))
                });
        }
        push_event(
            out,
            Some(CallEvent {
                kind: EventKind::Answer,
                call_id: String::from(&*call.zammad_id),
                direction: call.direction,
                from: call.from.clone(),
                to: call.to.clone(),
                user,
                group: Vec::new(),
                queue: None,
                answering_number: call.answering_number.clone(),
                cause: None,
                at: now,
                sip_call_id: String::from(&*call.sip_call_id),
            }),
        );
        rearm(&mut self.timers, id, call, deadline);
    }

    // ----- table maintenance -----

    /// A ring group's branch to `target_user` (normalised) is about to
    /// answer the ringing call (`sip_call_id`, caller's `from_tag`): it, not
    /// the route's first target, is who answered when the 2xx names nobody
    /// (no P-Asserted-Identity, no numeric Contact user). The proxy core
    /// calls this before it feeds the 2xx of a forked INVITE. No-op for an
    /// unknown call or one no longer ringing.
    pub fn set_answering_target(&mut self, sip_call_id: &str, from_tag: &str, target_user: &str) {
        let Some(id) = self.find(sip_call_id, from_tag) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&id) {
            if c.state == State::Ringing {
                c.target_user = Some(target_user.to_string());
            }
        }
    }

    fn find(&self, sip_call_id: &str, from_tag: &str) -> Option<u64> {
        self.by_cid.get(sip_call_id)?.find(from_tag)
    }

    fn set_deadline(&mut self, id: u64, deadline: Option<Instant>) {
        if let Some(call) = self.calls.get_mut(&id) {
            rearm(&mut self.timers, id, call, deadline);
        }
    }

    /// Marks the call ended (it lingers) and builds its hangup event.
    /// `None` only if `id` is not a tracked call (an internal bug: it is
    /// asserted in debug builds and never panics in release, so a bug here
    /// cannot stop the proxy).
    fn end_call(&mut self, id: u64, cause: Cause, at: Instant) -> Option<CallEvent> {
        let linger_until = add(at, self.cfg.linger);
        let Some(call) = self.calls.get_mut(&id) else {
            debug_assert!(false, "call to end exists");
            return None;
        };
        debug_assert!(call.state != State::Ended);
        call.state = State::Ended;
        let ev = CallEvent {
            kind: EventKind::Hangup,
            call_id: String::from(&*call.zammad_id),
            direction: call.direction,
            from: call.from.clone(),
            to: call.to.clone(),
            user: None,
            group: Vec::new(),
            queue: None,
            answering_number: call.answering_number.clone(),
            cause: Some(cause),
            at,
            sip_call_id: String::from(&*call.sip_call_id),
        };
        tracing::debug!(
            sip_call_id = %ev.sip_call_id,
            call_id = %ev.call_id,
            cause = cause.as_str(),
            "call ended"
        );
        self.active = self.active.saturating_sub(1);
        // Without a representable linger end the call is freed at the next eviction only.
        let key = linger_until.unwrap_or(at);
        call.linger_key = Some(key);
        self.lingering.insert((key, id));
        // RFC 3891 3: a Replaces INVITE that failed replaced nothing
        let failed_replaces = call
            .answered_to_tag
            .is_none()
            .then_some(call.xfer.replaces)
            .flatten();
        rearm(&mut self.timers, id, call, linger_until);
        if let Some(old) = failed_replaces.and_then(|o| self.calls.get_mut(&o)) {
            if old.xfer.replaced_by == Some(id) {
                old.xfer.replaced_by = None;
            }
        }
        Some(ev)
    }

    /// Removes a call from every index.
    fn free_call(&mut self, id: u64, now: Instant) {
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(d) = call.deadline {
            self.timers.remove(&(d, id));
        }
        if let Some(l) = call.linger_key {
            self.lingering.remove(&(l, id));
        }
        if call.state != State::Ended {
            self.active = self.active.saturating_sub(1);
        }
        if let Some(list) = self.by_cid.get_mut(&*call.sip_call_id) {
            if list.remove(id) {
                self.by_cid.remove(&*call.sip_call_id);
            }
        }
        let h = fnv1a64(call.sip_call_id.as_bytes());
        if let Some(u) = self.cid_uses.get_mut(&h) {
            u.live = u.live.saturating_sub(1);
            if u.live == 0 {
                match add(now, self.cfg.max_call_duration) {
                    Some(exp) => {
                        u.expires = Some(exp);
                        self.cid_expiry.insert((exp, h));
                    }
                    None => {
                        self.cid_uses.remove(&h);
                    }
                }
            }
        }
        // Remembered Call-ID counts are bounded like the call table.
        while self.cid_expiry.len() > self.cfg.max_calls.max(1) {
            if let Some((exp, h)) = self.cid_expiry.pop_first() {
                self.drop_cid_use(h, exp);
            }
        }
    }

    fn drop_cid_use(&mut self, h: u64, exp: Instant) {
        if self
            .cid_uses
            .get(&h)
            .is_some_and(|u| u.live == 0 && u.expires == Some(exp))
        {
            self.cid_uses.remove(&h);
        }
    }

    fn purge_cid_uses(&mut self, now: Instant) {
        while let Some(&(exp, h)) = self.cid_expiry.first() {
            if exp > now {
                break;
            }
            self.cid_expiry.pop_first();
            self.drop_cid_use(h, exp);
        }
    }

    /// The Zammad callId of the next call with `sip_call_id`
    /// ([`zammad_call_id`]): `sip_call_id` itself, shared, when that is it.
    fn next_zammad_id(&mut self, sip_call_id: &Arc<str>, now: Instant) -> Arc<str> {
        let h = fnv1a64(sip_call_id.as_bytes());
        let u = self.cid_uses.entry(h).or_insert(CidUse {
            count: 0,
            live: 0,
            expires: None,
        });
        if let Some(exp) = u.expires.take() {
            self.cid_expiry.remove(&(exp, h));
            if exp <= now {
                u.count = 0;
            }
        }
        u.count = u.count.saturating_add(1);
        u.live += 1;
        if u.count == 1 && sip_call_id.len() <= CALL_ID_LONG {
            // (at most CALL_ID_LONG bytes: at most as many characters, kept whole)
            return Arc::clone(sip_call_id);
        }
        Arc::from(zammad_call_id(sip_call_id, u.count))
    }
}
