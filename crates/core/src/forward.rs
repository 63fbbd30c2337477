//! Request forwarding (RFC 3261 16.6): the copy of a server transaction's
//! request edited for its next hop (Request-URI, Max-Forwards,
//! `received`/`rport`, Record-Route, our Via, the caller-id rewrite), then
//! its client transaction (17.1) or the branches of a ring group (16.7).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use sipcti_dialog::Side;
use sipcti_wire::SipMessage;

use crate::client_tx::Upstream;
use crate::ids::{Method, ServerKey, ServerTxId};
use crate::messages::branch_of;
use crate::output::log_sample;
use crate::proxy::ProxyCore;
use crate::routing::{other_side, pop_routes, NextHop};

/// A request built for forwarding (RFC 3261 16.6) as its client
/// transaction keeps it.
pub(crate) enum Forwarded {
    /// Parsed: an INVITE's CANCEL and ACK are built from it.
    Message(SipMessage),
    /// The bytes only: all a non-INVITE transaction ever resends.
    Bytes(Bytes),
}

impl ProxyCore {
    /// RFC 3261 16.6: copy, Request-URI, Max-Forwards, Record-Route, Via;
    /// then the client transaction (17.1), or one per target of a ring
    /// group ([`crate::fork`], 16.7). A copy that grew over the size limit
    /// gets 513, one that does not parse 500 (a fork starts no branch then).
    pub(crate) fn forward_request(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        mut hop: NextHop,
        initial: bool,
    ) {
        if let Some((code, reason)) = hop.answer {
            self.final_from_proxy(now, sid, code, reason);
            return;
        }
        if self
            .servers
            .get(&sid)
            .is_some_and(|s| s.method == Method::Register)
        {
            if let Some(flow) = self.register_flow(sid) {
                let req = self.servers.get(&sid).and_then(|s| s.req.clone());
                if let Some(req) = req {
                    if self.note_register(sid, &req, flow).is_err() {
                        self.stats.bindings_refused += 1;
                        if log_sample(self.stats.bindings_refused) {
                            tracing::warn!(
                                count = self.stats.bindings_refused,
                                "REGISTER refused: binding table full"
                            );
                        }
                        self.final_from_proxy(now, sid, 503, "Binding Table Full");
                        return;
                    }
                }
            }
        }
        let Some(stx) = self.servers.get(&sid) else {
            return;
        };
        let Some(req) = stx.req.as_ref() else {
            return;
        };
        let upstream = Upstream {
            reply_to: stx.reply_to.clone(),
            transport: stx.transport,
            side: stx.side,
            // the key's branch is the top Via's (ServerKeyRef::of): shared
            branch: match &stx.key {
                ServerKey::Rfc3261 { branch, .. } => branch.clone(),
                ServerKey::Rfc2543 { .. } => {
                    Arc::from(req.top_via().and_then(|v| v.branch()).unwrap_or(""))
                }
            },
        };
        let branch = branch_of(stx.loop_hash, stx.key_hash);
        let method = stx.method.clone();
        let side = stx.side;
        let fork = std::mem::take(&mut hop.fork);
        if fork.is_empty() {
            // only an INVITE's client transaction reads its request again
            // (its CANCEL and ACK are built from it)
            let parsed = method == Method::Invite;
            let Some(fwd) = self.build_forward_as(now, sid, &hop, initial, &branch, parsed) else {
                return;
            };
            let cid = self.start_client_tx(
                now,
                sid,
                fwd,
                branch,
                method,
                hop,
                other_side(side),
                upstream,
            );
            if let Some(stx) = self.servers.get_mut(&sid) {
                stx.client = Some(cid);
            }
            return;
        }
        self.fork_request(now, sid, &hop, fork, initial, &branch, upstream);
    }

    /// RFC 3261 16.6 steps 1-8 for server transaction `sid`'s request
    /// toward `hop` with our Via `branch`. `None` when it was answered
    /// instead (513 too large, 500 not parseable).
    pub(crate) fn build_forward(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        hop: &NextHop,
        initial: bool,
        branch: &str,
    ) -> Option<SipMessage> {
        match self.build_forward_as(now, sid, hop, initial, branch, true)? {
            Forwarded::Message(m) => Some(m),
            Forwarded::Bytes(_) => None,
        }
    }

    /// [`ProxyCore::build_forward`], as a parsed message when `parsed`
    /// (always then), else as its bytes when they cannot fail to parse:
    /// the Request-URI is kept, the lines inserted here (our Via, at most
    /// two Record-Route values, one Route line) stay within
    /// `limits.max_headers`, and it is no REGISTER (whose edits insert
    /// more). Every other edit replaces values, which the parser does not
    /// check, and the size limit was checked already (513); so the 500 of
    /// a copy that does not parse is answered exactly as before.
    pub(crate) fn build_forward_as(
        &mut self,
        now: Instant,
        sid: ServerTxId,
        hop: &NextHop,
        initial: bool,
        branch: &str,
        parsed: bool,
    ) -> Option<Forwarded> {
        let stx = self.servers.get(&sid)?;
        let req = stx.req.as_ref()?;
        let side = stx.side;
        let in_transport = stx.transport;
        let mut edit = req.edit();
        // received / rport on the sender's Via (RFC 3261 18.2.1, RFC 3581)
        if let Some(r) = stx.received {
            r.apply(&mut edit);
        }
        if let Some(r) = &hop.ruri {
            edit.set_request_uri(r);
        }
        pop_routes(&mut edit, req, hop.pop_routes);
        let mf = req
            .max_forwards()
            .map(|m| m.saturating_sub(1))
            .unwrap_or(70);
        edit.set_max_forwards(mf);
        let out_face = self.cfg.face(other_side(side));
        let in_face = self.cfg.face(side);
        if hop.record_route && initial {
            // double Record-Route when the two sides reach us at different
            // addresses or over different transports (RFC 5658)
            if in_transport != hop.transport || in_face != out_face {
                // insertions at one spot keep call order: the value facing
                // the next hop must be on top (RFC 5658 3.3)
                edit.insert_first(
                    "Record-Route",
                    &self.ours.rr_value(&self.cfg, out_face, hop.transport),
                );
                edit.insert_first(
                    "Record-Route",
                    &self.ours.rr_value(&self.cfg, in_face, in_transport),
                );
            } else {
                edit.insert_first(
                    "Record-Route",
                    &self.ours.rr_value(&self.cfg, out_face, hop.transport),
                );
            }
        }
        let via = self.ours.via_prefix(&self.cfg, out_face, hop.transport);
        edit.insert_first_parts("Via", &[&via, branch]);
        self.rewrite_request(&mut edit, req, side);
        if side == Side::Inside && stx.method != Method::Register {
            let us = self
                .ours
                .hostport(&self.cfg, self.cfg.trunk_ip, hop.transport);
            for (i, v) in self.cfg.hide_contacts(req, &us) {
                edit.replace_value(i, &v);
            }
        }
        self.register_edits(sid, req, &mut edit, out_face, hop.transport);
        let len = edit.finished_len();
        if len > self.cfg.limits.max_message_bytes {
            // RFC 3261 21.5.14 / 18.1.1: our additions made it too large
            self.stats.too_large += 1;
            if log_sample(self.stats.too_large) {
                tracing::warn!(
                    len,
                    count = self.stats.too_large,
                    "forwarded request would exceed the size limit: 513"
                );
            }
            self.final_from_proxy(now, sid, 513, "Message Too Large");
            return None;
        }
        let bytes_only = !parsed
            && hop.ruri.is_none()
            && stx.method != Method::Register
            && req.headers().count() + 4 <= self.cfg.limits.max_headers;
        if bytes_only {
            return Some(Forwarded::Bytes(Bytes::from(edit.finish())));
        }
        // re-indexed from the request's index, not parsed again
        match edit.finish_message(&self.cfg.limits) {
            Ok(m) => Some(Forwarded::Message(m)),
            Err(e) => {
                self.stats.internal_errors += 1;
                if log_sample(self.stats.internal_errors) {
                    tracing::error!(reason = %e.reason(), count = self.stats.internal_errors, "forwarded request did not parse; answering 500");
                }
                self.final_from_proxy(now, sid, 500, "Server Internal Error");
                None
            }
        }
    }
}
