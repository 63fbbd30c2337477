//! Provider forking: one call from the trunk arriving as several INVITE
//! branches (the provider's own proxy forked it, RFC 3261 16.7, e.g. to
//! every phone registered for a number). The branches share Call-ID, From
//! tag and CSeq and differ in their Via branch and Request-URI; each is its
//! own server transaction here. For Zammad they are one call:
//!
//! * the first branch emits `newCall` and is held for Zammad's answer; a
//!   branch that arrives while it is held is held with it, and one that
//!   arrives after the answer gets the same answer (a blocked caller is
//!   refused on every branch; no phone rings first);
//! * a non-2xx final response on one branch is not shown to the call
//!   tracker while another branch has none yet: the call ends once, with
//!   the last branch's final response (or is answered by any branch's 2xx).
//!
//! A branch set lives as long as one of its server transactions, so the
//! table is bounded by the transaction table.

use crate::HashMap;

use sipcti_wire::SipMessage;

use crate::cti::CtiAnswer;
use crate::ids::ServerTxId;
use crate::proxy::ProxyCore;
use crate::server_tx::SrvState;

/// What makes INVITE branches one call: Call-ID, From tag, CSeq number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SiblingKey {
    call_id: String,
    from_tag: String,
    cseq: u32,
}

impl SiblingKey {
    /// The key of initial INVITE `msg`; `None` without a From tag or CSeq.
    pub(crate) fn of(msg: &SipMessage) -> Option<SiblingKey> {
        Some(SiblingKey {
            call_id: msg.call_id()?.to_string(),
            from_tag: msg.from()?.tag()?.to_string(),
            cseq: msg.cseq()?.0,
        })
    }
}

/// The branches of one call and Zammad's answer once known.
#[derive(Debug, Default)]
struct BranchSet {
    txs: Vec<ServerTxId>,
    answer: Option<CtiAnswer>,
}

/// The branch set of every initial INVITE from the trunk in progress (most
/// hold one branch; a provider fork adds more), by key, and the key of each
/// member transaction.
#[derive(Debug, Default)]
pub(crate) struct Siblings {
    sets: HashMap<SiblingKey, BranchSet>,
    of_tx: HashMap<ServerTxId, SiblingKey>,
}

impl Siblings {
    /// Add server transaction `sid` (an initial INVITE from the trunk) to
    /// the set of `key`.
    pub(crate) fn add(&mut self, key: SiblingKey, sid: ServerTxId) {
        self.sets.entry(key.clone()).or_default().txs.push(sid);
        self.of_tx.insert(sid, key);
    }

    /// Drop `sid` (its transaction is gone); the set goes with its last member.
    pub(crate) fn remove(&mut self, sid: ServerTxId) {
        let Some(key) = self.of_tx.remove(&sid) else {
            return;
        };
        if let Some(set) = self.sets.get_mut(&key) {
            set.txs.retain(|&t| t != sid);
            if set.txs.is_empty() {
                self.sets.remove(&key);
            }
        }
    }

    /// The other members of `sid`'s set.
    fn others(&self, sid: ServerTxId) -> Vec<ServerTxId> {
        self.of_tx
            .get(&sid)
            .and_then(|k| self.sets.get(k))
            .map(|s| s.txs.iter().copied().filter(|&t| t != sid).collect())
            .unwrap_or_default()
    }

    fn set_of(&mut self, sid: ServerTxId) -> Option<&mut BranchSet> {
        let k = self.of_tx.get(&sid)?;
        self.sets.get_mut(k)
    }

    /// Sets held (for tests of boundedness).
    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }
}

/// What to do with a branch that started no `newCall` of its own.
pub(crate) enum SiblingHold {
    /// Not a sibling, or nothing to wait for: forward it.
    Forward,
    /// Another branch waits for Zammad: wait with it.
    Hold,
    /// Zammad already answered for the call: apply this.
    Apply(CtiAnswer),
}

impl ProxyCore {
    /// For branch `sid`, which started no `newCall`: hold it, apply the
    /// call's answer, or forward it.
    pub(crate) fn sibling_hold(&mut self, sid: ServerTxId) -> SiblingHold {
        let others = self.siblings.others(sid);
        if others.is_empty() {
            return SiblingHold::Forward;
        }
        if let Some(a) = self.siblings.set_of(sid).and_then(|s| s.answer.clone()) {
            return SiblingHold::Apply(a);
        }
        let held = others
            .iter()
            .any(|o| self.servers.get(o).is_some_and(|s| s.is_awaiting_cti()));
        if held {
            SiblingHold::Hold
        } else {
            SiblingHold::Forward
        }
    }

    /// Zammad answered for `sid`'s call: remember it for later branches and
    /// return the branches held with it.
    pub(crate) fn sibling_answered(&mut self, sid: ServerTxId, a: &CtiAnswer) -> Vec<ServerTxId> {
        if let Some(set) = self.siblings.set_of(sid) {
            set.answer = Some(a.clone());
        }
        self.siblings
            .others(sid)
            .into_iter()
            .filter(|o| self.servers.get(o).is_some_and(|s| s.is_awaiting_cti()))
            .collect()
    }

    /// Whether another branch of `sid`'s call has no final response yet:
    /// then `sid`'s non-2xx final must not end the call for the tracker.
    pub(crate) fn sibling_pending(&self, sid: ServerTxId) -> bool {
        self.siblings.others(sid).iter().any(|o| {
            self.servers.get(o).is_some_and(|s| {
                matches!(s.state, SrvState::Proceeding | SrvState::AwaitingCti { .. })
            })
        })
    }

    /// Branch sets held now.
    pub fn sibling_sets(&self) -> usize {
        self.siblings.len()
    }
}
