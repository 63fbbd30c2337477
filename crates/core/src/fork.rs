//! The response context of a forked INVITE (RFC 3261 16.7): a ring group.
//!
//! An initial INVITE from the trunk whose inbound route has two or more
//! targets is forwarded to all of them in parallel (16.6 once per target,
//! `ProxyCore::fork_request`): one client transaction per target, each with
//! its own branch, its target URI as Request-URI and its own Timers A/B/C.
//! The server transaction keeps the [`Fork`], the response context, and
//! every response of a branch goes through `ProxyCore::fork_response`:
//!
//! * 100 is absorbed (by the client transaction); any other provisional
//!   goes upstream while no final response has (16.7 step 5).
//! * The first 2xx goes upstream; every other branch still pending gets a
//!   CANCEL with `Reason: SIP;cause=200;text="Call completed elsewhere"`
//!   (16.7 step 10, RFC 3326), a branch in Calling as soon as it sends a
//!   provisional (9.1). A later 2xx of another branch is relayed upstream as
//!   well (16.7 step 5); the call tracker has its call answered already and
//!   absorbs it, so Zammad sees one `answer`.
//! * A non-2xx final is kept, not forwarded. A 6xx ends the fork (16.7
//!   step 6): the other branches are CANCELled and, since 16.7 step 6 MUST
//!   choose a 6xx when there is one, the 6xx goes upstream at once rather
//!   than after the CANCELled branches' 487s (the same response, sooner).
//!   Otherwise the best response goes upstream once every branch has a
//!   final response ([`better`]): the lowest class (3xx before 4xx before
//!   5xx); within 4xx 401, 407, 415, 420 and 484 first (they tell the
//!   caller what to change; challenges are not merged), then the lowest
//!   code; within 3xx and 5xx the lowest code. A 503 chosen is turned into
//!   a 500 of the proxy's own (16.7 step 6: a 503 is not forwarded). This
//!   is Kamailio tm's choice (`t_pick_branch`).
//! * What the proxy decides for a branch itself counts as that branch's
//!   final response: Timer C (the branch is CANCELled, 408), Timer B (408),
//!   the CANCEL wait of 9.1 (487), a transport error (503).
//! * A CANCEL from upstream cancels every branch (16.10); their 487s make
//!   the best response.
//!
//! Only what goes upstream is fed to the call tracker: the chosen final
//! response, the 2xx (with the answering branch's target as who answered).
//! So a call ends once, with the cause of the call as a whole.

use std::sync::Arc;
use std::time::Instant;

use sipcti_dialog::Side;
use sipcti_wire::{SipMessage, TransportKind};

use crate::client_tx::Upstream;
use crate::forward::Forwarded;
use crate::ids::{ClientTxId, ServerTxId};
use crate::proxy::ProxyCore;
use crate::routing::{other_side, NextHop, Target};

/// RFC 3326: the Reason of the CANCEL the other branches get when one
/// answered.
pub const COMPLETED_ELSEWHERE: &str = "SIP;cause=200;text=\"Call completed elsewhere\"";

/// One target of a ring group, resolved by routing.
#[derive(Debug, Clone)]
pub(crate) struct ForkTarget {
    /// Where to send it.
    pub(crate) target: Target,
    /// Over which transport.
    pub(crate) transport: TransportKind,
    /// The target URI: the branch's Request-URI.
    pub(crate) ruri: String,
    /// The URI's user, normalised: who answered when this branch answers.
    pub(crate) user: Option<String>,
}

/// One branch of the fork.
#[derive(Debug)]
struct Branch {
    /// Its INVITE client transaction (it may be gone already).
    cid: ClientTxId,
    /// The target's user.
    user: Option<String>,
    /// It has a final response (received, or decided by the proxy).
    done: bool,
}

/// The best final response so far.
#[derive(Debug)]
enum Best {
    /// A response a branch sent.
    Got(SipMessage),
    /// One the proxy decided for a branch (Timer B/C 408, 487, 503).
    Own(&'static str),
}

/// The response context of a forked INVITE (RFC 3261 16.7), kept in its
/// server transaction.
#[derive(Debug)]
pub(crate) struct Fork {
    branches: Vec<Branch>,
    /// Status and the best non-2xx final response so far.
    best: Option<(u16, Best)>,
    /// A final response went upstream (a 2xx, a 6xx or the best one): the
    /// fork takes no more decisions; later 2xx are still relayed.
    finished: bool,
    /// Where the server transaction's responses go.
    upstream: Upstream,
}

/// The rank of a non-2xx final status in the 16.7 step 6 choice; lower is
/// better. 6xx never needs ranking (it ends the fork at once).
fn rank(status: u16) -> u32 {
    let class = u32::from(status / 100);
    let code = u32::from(status);
    let within = match status {
        401 | 407 | 415 | 420 | 484 => code % 100,
        400..=499 => 100 + code % 100,
        _ => code % 100,
    };
    class * 1000 + within
}

/// Whether final status `new` beats `old` (16.7 step 6); a tie keeps the
/// first one received.
pub(crate) fn better(new: u16, old: u16) -> bool {
    rank(new) < rank(old)
}

impl Fork {
    /// The index of client transaction `cid`'s branch.
    fn branch(&self, cid: ClientTxId) -> Option<usize> {
        self.branches.iter().position(|b| b.cid == cid)
    }

    fn all_done(&self) -> bool {
        self.branches.iter().all(|b| b.done)
    }

    /// Keep `status` as the best response if it beats the one kept.
    fn offer(&mut self, status: u16, best: Best) {
        if self.best.as_ref().is_none_or(|(s, _)| better(status, *s)) {
            self.best = Some((status, best));
        }
    }

    /// The branches still without a final response, but `except`.
    fn pending_but(&self, except: Option<ClientTxId>) -> Vec<ClientTxId> {
        self.branches
            .iter()
            .filter(|b| !b.done && Some(b.cid) != except)
            .map(|b| b.cid)
            .collect()
    }
}

impl ProxyCore {
    /// The fork of server transaction `sid`, if it forked.
    fn fork_mut(&mut self, sid: ServerTxId) -> Option<&mut Fork> {
        self.servers.get_mut(&sid)?.fork.as_deref_mut()
    }

    /// Whether server transaction `sid` forked its INVITE.
    pub(crate) fn is_forked(&self, sid: ServerTxId) -> bool {
        self.servers.get(&sid).is_some_and(|s| s.fork.is_some())
    }

    /// Every INVITE branch of server transaction `sid`: the fork's, else
    /// its one client transaction.
    pub(crate) fn branches_of(&self, sid: ServerTxId) -> Vec<ClientTxId> {
        let Some(stx) = self.servers.get(&sid) else {
            return Vec::new();
        };
        match &stx.fork {
            Some(f) => f.branches.iter().map(|b| b.cid).collect(),
            None => stx.client.into_iter().collect(),
        }
    }

    /// RFC 3261 16.6 once per target of a ring group (`fork`, from
    /// routing) for server transaction `sid`: each branch its own Via
    /// branch value (the first keeps `branch`, the one a single target
    /// would get; the others `branch.1`, `branch.2`...) and its target as
    /// Request-URI, the rest as `hop` says. When one cannot be built (513,
    /// 500 answered) no branch starts.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fork_request(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        hop: &NextHop,
        fork: Vec<ForkTarget>,
        initial: bool,
        branch: &str,
        upstream: Upstream,
    ) {
        let mut legs = Vec::with_capacity(fork.len());
        for (i, t) in fork.into_iter().enumerate() {
            let b: Arc<str> = if i == 0 {
                Arc::from(branch)
            } else {
                Arc::from(format!("{branch}.{i}"))
            };
            let leg = NextHop {
                target: t.target,
                transport: t.transport,
                ruri: Some(t.ruri),
                pop_routes: hop.pop_routes,
                record_route: hop.record_route,
                fork: Vec::new(),
                answer: None,
            };
            let Some(fwd) = self.build_forward(now, sid, &leg, initial, &b) else {
                return;
            };
            legs.push((fwd, b, leg, t.user));
        }
        self.start_fork(now, sid, legs, upstream);
    }

    /// Start one client transaction per built leg (request, Via branch,
    /// hop, target user) and keep the response context in server
    /// transaction `sid`.
    pub(crate) fn start_fork(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        legs: Vec<(SipMessage, Arc<str>, NextHop, Option<String>)>,
        upstream: Upstream,
    ) {
        let Some(stx) = self.servers.get(&sid) else {
            return;
        };
        let (method, side) = (stx.method.clone(), stx.side);
        let mut branches = Vec::with_capacity(legs.len());
        for (fwd, branch, hop, user) in legs {
            let cid = self.start_client_tx(
                now,
                sid,
                Forwarded::Message(fwd),
                branch,
                method.clone(),
                hop,
                other_side(side),
                upstream.clone(),
            );
            branches.push(Branch {
                cid,
                user,
                done: false,
            });
        }
        if let Some(stx) = self.servers.get_mut(&sid) {
            stx.client = branches.first().map(|b| b.cid);
            stx.fork = Some(Box::new(Fork {
                branches,
                best: None,
                finished: false,
                upstream,
            }));
        }
    }

    /// RFC 3261 16.7 for response `msg` (status `status`) of branch `cid`
    /// of forked server transaction `sid`, already processed by its client
    /// transaction: see the module docs.
    pub(crate) fn fork_response(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        cid: ClientTxId,
        msg: &SipMessage,
        status: u16,
        side: Side,
    ) {
        let Some(fork) = self.fork_mut(sid) else {
            return;
        };
        let Some(i) = fork.branch(cid) else {
            return;
        };
        let upstream = fork.upstream.clone();
        match status {
            0..=199 => {
                if !fork.finished && status > 100 {
                    self.forward_response(now, Some(sid), msg, status, true, &upstream);
                }
            }
            200..=299 => {
                let first = !fork.finished;
                fork.branches[i].done = true;
                fork.finished = true;
                let user = fork.branches[i].user.clone();
                let others = fork.pending_but(Some(cid));
                if first {
                    // who answered: this branch's target, unless the 2xx names someone
                    if let (Some(u), Some(c), Some(tag)) =
                        (user, msg.call_id(), msg.from().and_then(|f| f.tag()))
                    {
                        self.tracker.set_answering_target(c, tag, &u);
                    }
                }
                let evs = self.track(msg, side, now);
                self.emit_events(evs);
                // every 2xx goes upstream (16.7 steps 5 and 10)
                self.forward_response(now, Some(sid), msg, status, true, &upstream);
                if first {
                    for o in others {
                        self.cancel_branch_with(now, o, Some(COMPLETED_ELSEWHERE.into()));
                    }
                }
            }
            _ => {
                if fork.branches[i].done {
                    return; // e.g. the 487 after Timer C answered for it
                }
                fork.branches[i].done = true;
                if fork.finished {
                    return; // absorbed: the call has its final response
                }
                fork.offer(status, Best::Got(msg.clone()));
                if status >= 600 || fork.all_done() {
                    self.finish_fork(now, sid, side);
                }
            }
        }
    }

    /// A final response the proxy decided for branch `cid` (Timer B or C
    /// 408, 487 after the CANCEL wait, 503 on a transport error). In a fork
    /// it counts as that branch's response; otherwise the server
    /// transaction `sid` answers it upstream at once.
    pub(crate) fn branch_final_from_proxy(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        cid: ClientTxId,
        status: u16,
        reason: &'static str,
    ) {
        let Some(side) = self.servers.get(&sid).map(|s| other_side(s.side)) else {
            return;
        };
        let Some(fork) = self.fork_mut(sid) else {
            self.final_from_proxy(now, sid, status, reason);
            return;
        };
        let Some(i) = fork.branch(cid) else {
            return;
        };
        if fork.branches[i].done {
            return;
        }
        fork.branches[i].done = true;
        if fork.finished {
            return;
        }
        fork.offer(status, Best::Own(reason));
        if fork.all_done() {
            self.finish_fork(now, sid, side);
        }
    }

    /// RFC 3261 16.7 step 6: the fork is over without a 2xx: CANCEL the
    /// branches still pending (after a 6xx) and send the best response
    /// upstream (a 503 becomes the proxy's own 500); the call tracker sees
    /// it, coming from `side`.
    fn finish_fork(&mut self, now: Instant, sid: ServerTxId, side: Side) {
        let Some(fork) = self.fork_mut(sid) else {
            return;
        };
        fork.finished = true;
        let pending = fork.pending_but(None);
        let upstream = fork.upstream.clone();
        let best = fork.best.take();
        for c in pending {
            self.cancel_branch(now, c);
        }
        match best {
            Some((503, _)) => self.final_from_proxy(now, sid, 500, "Server Internal Error"),
            Some((status, Best::Own(reason))) => self.final_from_proxy(now, sid, status, reason),
            Some((status, Best::Got(msg))) => {
                let evs = self.track(&msg, side, now);
                self.emit_events(evs);
                self.forward_response(now, Some(sid), &msg, status, true, &upstream);
            }
            None => self.final_from_proxy(now, sid, 500, "Server Internal Error"),
        }
    }
}
