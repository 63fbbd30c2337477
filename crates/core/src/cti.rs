//! The hold for Zammad (sipcti's own step between 16.3 and 16.6): an
//! INVITE that starts a call waits in its server transaction
//! (`AwaitingCti`) while the edge delivers `newCall`; Zammad's answer
//! ([`CtiAnswer`], [`ProxyCore::handle_cti_answer`]) lets it go on,
//! rejects it (486) or sets the caller id that the proxy then presents on
//! every message of the dialog (the rewrites). No answer within
//! [`crate::CoreConfig::newcall_wait`] (`crate::timers::Timer::CtiWait`)
//! means fail open.

use std::time::Instant;

use sipcti_dialog::{CallEvent, Side};
use sipcti_event::Direction;
use sipcti_wire::SipMessage;

use crate::identity::{Rewrite, Toward};
use crate::ids::{CallId, ServerTxId};
use crate::output::{log_sample, Output};
use crate::proxy::ProxyCore;
use crate::routing::{other_side, toward};
use crate::server_tx::{PendingForward, SrvState};
use crate::siblings::SiblingHold;
use crate::timers::Timer;

/// What Zammad's answer to `newCall` means for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtiAnswer {
    /// Go on unchanged: Zammad answered without an action.
    Continue,
    /// Go on unchanged because Zammad's answer did not come in time or
    /// failed; counted in [`crate::CoreStats::fail_open`] when it reaches a
    /// still-waiting INVITE.
    FailOpen,
    /// Reject an inbound call with 486 Busy Here.
    Reject,
    /// Present this caller id on an outbound call.
    Dial(String),
}

impl ProxyCore {
    /// Hold server transaction `sid` for Zammad when the request started a
    /// call (`new_call`): emit [`Output::NewCall`] and arm
    /// [`Timer::CtiWait`]. Otherwise forward it at once (16.6).
    pub(crate) fn await_cti_or_forward(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        new_call: Option<CallEvent>,
        pending: PendingForward,
    ) {
        let Some(ev) = new_call else {
            // a branch of a call the provider forked (crate::siblings)
            let hold = self.sibling_hold(sid);
            if matches!(hold, SiblingHold::Forward) {
                self.forward_request(now, sid, pending.hop, pending.initial);
                return;
            }
            // held like the call's first branch (an inbound call)
            if let Some(stx) = self.servers.get_mut(&sid) {
                stx.state = SrvState::AwaitingCti { pending };
                stx.direction = Some(Direction::In);
            }
            match hold {
                SiblingHold::Apply(a) => self.release(now, sid, a),
                _ => {
                    let at = now + self.cfg.newcall_wait;
                    self.arm_server(sid, at, Timer::CtiWait(sid));
                }
            }
            return;
        };
        if let Some(stx) = self.servers.get_mut(&sid) {
            stx.state = SrvState::AwaitingCti { pending };
        }
        self.outputs.push_back(Output::NewCall {
            token: CallId::of(sid),
            event: ev,
        });
        let at = now + self.cfg.newcall_wait;
        self.arm_server(sid, at, Timer::CtiWait(sid));
    }

    /// Zammad's answer to the `newCall` of `token`: the held INVITE is
    /// forwarded (with the caller id of [`CtiAnswer::Dial`] on an outbound
    /// call), or answered 486 ([`CtiAnswer::Reject`] on an inbound call).
    /// An answer for a token that is no longer held (already answered,
    /// failed open, cancelled, or unknown) is ignored.
    pub fn handle_cti_answer(&mut self, now: Instant, token: CallId, answer: CtiAnswer) {
        let sid = token.server_tx();
        let Some(stx) = self.servers.get(&sid) else {
            tracing::info!(%token, "late newCall answer ignored (transaction gone)");
            return;
        };
        if !stx.is_awaiting_cti() {
            tracing::info!(%token, "late newCall answer ignored (call already went on)");
            return;
        }
        // the provider's other branches of this call wait for the same answer
        let held = self.sibling_answered(sid, &answer);
        self.release(now, sid, answer.clone());
        for o in held {
            self.release(now, o, answer.clone());
        }
    }

    /// Apply Zammad's `answer` to the INVITE held in `sid` (see
    /// [`ProxyCore::handle_cti_answer`]).
    fn release(&mut self, now: Instant, sid: ServerTxId, answer: CtiAnswer) {
        let token = CallId::of(sid);
        let Some(stx) = self.servers.get_mut(&sid) else {
            return;
        };
        let SrvState::AwaitingCti { pending } =
            std::mem::replace(&mut stx.state, SrvState::Proceeding)
        else {
            return;
        };
        let direction = stx.direction;
        match (answer, direction) {
            (CtiAnswer::Reject, Some(Direction::In)) => {
                self.stats.rejected_by_zammad += 1;
                tracing::info!(%token, "Zammad rejected the inbound call: 486");
                self.final_from_proxy(now, sid, 486, "Busy Here");
                return;
            }
            (CtiAnswer::Dial(caller_id), Some(Direction::Out)) if !caller_id.is_empty() => {
                self.start_rewrite(sid, caller_id);
            }
            (CtiAnswer::Continue, _) => {}
            (CtiAnswer::FailOpen, _) => self.stats.fail_open += 1,
            (other, d) => {
                tracing::info!(
                    %token,
                    ?other,
                    ?d,
                    "Zammad answer does not apply to this direction; going on"
                );
            }
        }
        self.forward_request(now, sid, pending.hop, pending.initial);
    }

    /// [`Timer::CtiWait`]: no answer in time, the call goes on unchanged.
    pub(crate) fn cti_wait(&mut self, now: Instant, sid: ServerTxId) {
        let held = self.servers.get(&sid).is_some_and(|s| s.is_awaiting_cti());
        if held {
            if log_sample(self.stats.fail_open + 1) {
                tracing::warn!(
                    token = %CallId::of(sid),
                    count = self.stats.fail_open + 1,
                    "no newCall answer in time: call goes on unchanged"
                );
            }
            self.handle_cti_answer(now, CallId::of(sid), CtiAnswer::FailOpen);
        }
    }

    /// Present `caller_id` on the outbound call held in `sid`: a rewrite by
    /// (Call-ID, the phone's From tag) that lives as long as the tracked call.
    fn start_rewrite(&mut self, sid: ServerTxId, caller_id: String) {
        let Some(req) = self.servers.get(&sid).and_then(|s| s.req.as_ref()) else {
            return;
        };
        let cid = req.call_id().unwrap_or("").to_string();
        let tag = req.from().and_then(|f| f.tag().map(str::to_string));
        let user = req
            .from()
            .and_then(|f| f.parsed_uri().ok().and_then(|u| u.user.map(str::to_string)));
        let (Some(tag), Some(user)) = (tag, user) else {
            return;
        };
        self.stats.caller_id_rewrites += 1;
        let key = (cid, tag.clone());
        // The rewrite lives as long as the tracked call: its hangup
        // (always emitted, at the latest after max_call_duration)
        // schedules the removal.
        if let Some(info) = self.tracker.call_info(&key.0, &key.1) {
            self.call_rewrite.insert(info.call_id, key.clone());
            self.rewrites.insert(
                key,
                Rewrite {
                    phone_tag: tag,
                    original_user: user,
                    caller_id,
                },
            );
        } else {
            self.stats.rewrite_untracked += 1;
            if log_sample(self.stats.rewrite_untracked) {
                tracing::warn!(
                    token = %CallId::of(sid),
                    count = self.stats.rewrite_untracked,
                    "call not tracked (table full): caller id left unchanged"
                );
            }
        }
    }

    /// The caller-id rewrite of `msg`'s dialog, applied to a request that
    /// came from `side` and goes to the other side.
    pub(crate) fn rewrite_request(
        &self,
        edit: &mut sipcti_wire::Edit<'_>,
        msg: &SipMessage,
        side: Side,
    ) {
        if let Some(rw) = self.rewrite_for(msg) {
            for (idx, v) in rw.edits(msg, toward(other_side(side)), side == Side::Inside) {
                edit.replace_value(idx, &v);
            }
        }
    }

    /// The rewrite of `msg`'s dialog, by Call-ID and the From or To tag.
    fn rewrite_for(&self, msg: &SipMessage) -> Option<&Rewrite> {
        if self.rewrites.is_empty() {
            return None;
        }
        let cid = msg.call_id()?;
        for t in [msg.from(), msg.to()].into_iter().flatten() {
            if let Some(tag) = t.tag() {
                if let Some(r) = self.rewrites.get(&(cid, tag) as &dyn StrPair) {
                    return Some(r);
                }
            }
        }
        None
    }

    /// RFC 3261 16.7 step 9: response `msg` without our Via, with the
    /// dialog's caller-id rewrite for the way `toward` it goes.
    /// Toward the trunk over `transport`, the inside's Contacts are masked
    /// ([`crate::topology`]).
    pub(crate) fn response_upstream_bytes(
        &self,
        msg: &SipMessage,
        toward: Toward,
        transport: sipcti_wire::TransportKind,
    ) -> Vec<u8> {
        let mut edit = msg.edit();
        edit.remove_first_value("Via");
        if let Some(rw) = self.rewrite_for(msg) {
            for (idx, v) in rw.edits(msg, toward, false) {
                edit.replace_value(idx, &v);
            }
        }
        if toward == Toward::Trunk {
            let us = self.ours.hostport(&self.cfg, self.cfg.trunk_ip, transport);
            for (idx, v) in self.cfg.hide_contacts(msg, &us) {
                edit.replace_value(idx, &v);
            }
        }
        edit.finish()
    }
}

/// A pair of strings, owned or borrowed: the caller-id rewrites
/// (`HashMap<(String, String), _>`) are searched with a `&dyn StrPair` of
/// the message's Call-ID and tag, without copying them.
pub(crate) trait StrPair {
    /// The two strings.
    fn pair(&self) -> (&str, &str);
}

impl StrPair for (String, String) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl StrPair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl std::hash::Hash for dyn StrPair + '_ {
    // as `(String, String)` hashes: each string in order
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (a, b) = self.pair();
        a.hash(state);
        b.hash(state);
    }
}

impl PartialEq for dyn StrPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn StrPair + '_ {}

impl<'a> std::borrow::Borrow<dyn StrPair + 'a> for (String, String) {
    fn borrow(&self) -> &(dyn StrPair + 'a) {
        self
    }
}

#[cfg(test)]
mod str_pair_tests {
    use super::StrPair;

    #[test]
    fn borrowed_pairs_find_owned_ones() {
        let mut m: crate::HashMap<(String, String), u8> = crate::HashMap::default();
        m.insert(("c1".into(), "t1".into()), 1);
        m.insert(("c1t".into(), "1".into()), 2);
        assert_eq!(m.get(&("c1", "t1") as &dyn StrPair), Some(&1));
        assert_eq!(m.get(&("c1t", "1") as &dyn StrPair), Some(&2));
        assert_eq!(m.get(&("c1", "t") as &dyn StrPair), None);
    }
}
