//! Transfers in the call tracker (RFC 3515 REFER with its NOTIFY sipfrag,
//! RFC 3891 Replaces, the flows of RFC 5589): which calls end `forwarded`.

use super::*;
use crate::view::DialogRef;

/// What a transfer did to one call (RFC 3515 REFER, RFC 3891 Replaces,
/// the flows of RFC 5589). While [`Xfer::forwarded`] holds, the call's
/// end (a BYE from either party, or a timer) is reported `forwarded`
/// instead of `normalClearing`. Ids name other calls in the table; a freed
/// call's id is never reused, so a stale one only misses.
#[derive(Debug, Default)]
pub(super) struct Xfer {
    /// A REFER in this call's dialog was accepted (a 2xx to it, or a
    /// NOTIFY of its subscription with a 1xx/2xx sipfrag), and no NOTIFY
    /// reported the transfer failed since.
    pub(super) referred: bool,
    /// The dialog the last REFER in this call's dialog named in its
    /// Refer-To `Replaces` (attended transfer), until that REFER is
    /// answered. One at a time: a later REFER overwrites it.
    /// (Boxed: rare, and three strings inline would grow every call.)
    pub(super) refer_names: Option<Box<DialogRef>>,
    /// The call an accepted REFER of this call named (the consultation
    /// call of an attended transfer), marked `consulted`.
    pub(super) consult: Option<u64>,
    /// Named by another call's accepted attended-transfer REFER.
    pub(super) consulted: bool,
    /// The call whose INVITE carries `Replaces` naming this call, as long
    /// as that INVITE has not failed (RFC 3891 3: the replaced dialog is
    /// ended once the new one is accepted).
    pub(super) replaced_by: Option<u64>,
    /// For a call whose INVITE carried `Replaces`: the call it replaces.
    pub(super) replaces: Option<u64>,
}

impl Xfer {
    /// The call's end is `forwarded`.
    pub(super) fn forwarded(&self) -> bool {
        self.referred || self.consulted || self.replaced_by.is_some()
    }
}

impl CallTracker {
    /// RFC 3891 3: new call `id`'s INVITE replaces the dialog `d`; the
    /// replaced call, if tracked and not ended, ends `forwarded` unless
    /// the new INVITE fails (see [`CallTracker::end_call`]).
    pub(super) fn link_replaces(&mut self, id: u64, d: &DialogRef) {
        let Some(old) = self.dialog_call(&d.call_id, Some(&d.to_tag), Some(&d.from_tag)) else {
            return;
        };
        if old == id {
            return;
        }
        let Some(oc) = self.calls.get_mut(&old) else {
            return;
        };
        if oc.state == State::Ended {
            return;
        }
        oc.xfer.replaced_by = Some(id);
        tracing::debug!(sip_call_id = %oc.sip_call_id, "call replaced (RFC 3891)");
        if let Some(nc) = self.calls.get_mut(&id) {
            nc.xfer.replaces = Some(old);
        }
    }

    /// REFER (RFC 3515 2.4.2) in a call's dialog: remembers the dialog its
    /// Refer-To `Replaces` names until the REFER is answered. Nothing
    /// changes before the answer: a refused REFER leaves the call as it was.
    pub(super) fn on_refer(&mut self, v: &Msg<'_>) {
        if v.to_tag.is_none() {
            // a REFER outside a dialog concerns no call
            return;
        }
        let Some(id) = self.dialog_call(v.call_id, v.from_tag, v.to_tag) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        if let Some(c) = self.calls.get_mut(&id) {
            if c.state != State::Ended {
                c.xfer.refer_names = v.refer_to_replaces().map(Box::new);
            }
        }
    }

    /// A final response to a REFER (RFC 3515 2.4.2): 2xx accepts the
    /// transfer, any other drops the dialog its Refer-To named.
    pub(super) fn on_refer_response(&mut self, v: &Msg<'_>, status: u16) {
        let Some(id) = self.dialog_call(v.call_id, v.from_tag, v.to_tag) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        if (200..300).contains(&status) {
            self.accept_refer(id);
        } else if let Some(c) = self.calls.get_mut(&id) {
            c.xfer.refer_names = None;
        }
    }

    /// A NOTIFY of a REFER's subscription (RFC 3515 2.4.4, 2.4.5): a
    /// 1xx/2xx sipfrag means the REFER was accepted (its 202 may be
    /// missing from a capture); a final failure (3xx-6xx) means the
    /// transfer failed and the call goes on as before.
    pub(super) fn on_notify(&mut self, v: &Msg<'_>) {
        let Some(frag) = v.sipfrag_status() else {
            return;
        };
        if v.to_tag.is_none() {
            return;
        }
        let Some(id) = self.dialog_call(v.call_id, v.from_tag, v.to_tag) else {
            self.stats.unknown_call_messages += 1;
            return;
        };
        if frag < 300 {
            self.accept_refer(id);
            return;
        }
        let consult = match self.calls.get_mut(&id) {
            Some(c) if c.state != State::Ended => {
                tracing::debug!(sip_call_id = %c.sip_call_id, frag, "transfer failed (NOTIFY)");
                c.xfer.referred = false;
                c.xfer.refer_names = None;
                c.xfer.consult.take()
            }
            _ => None,
        };
        if let Some(cc) = consult.and_then(|k| self.calls.get_mut(&k)) {
            cc.xfer.consulted = false;
        }
    }

    /// Call `id`'s REFER was accepted: it ends `forwarded`, and so does
    /// the consultation call its Refer-To `Replaces` named (RFC 5589 7).
    pub(super) fn accept_refer(&mut self, id: u64) {
        let names = match self.calls.get_mut(&id) {
            Some(c) if c.state != State::Ended => {
                if !c.xfer.referred {
                    tracing::debug!(sip_call_id = %c.sip_call_id, "transfer accepted (REFER)");
                }
                c.xfer.referred = true;
                c.xfer.refer_names.take()
            }
            _ => return,
        };
        let Some(d) = names else { return };
        let Some(k) = self.dialog_call(&d.call_id, Some(&d.to_tag), Some(&d.from_tag)) else {
            return;
        };
        if k == id {
            return;
        }
        match self.calls.get_mut(&k) {
            Some(cc) if cc.state != State::Ended => cc.xfer.consulted = true,
            _ => return,
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.xfer.consult = Some(k);
        }
    }

    /// The call whose dialog has the tags `a` and `b` (either way round):
    /// one is the call's From tag, the other its answering To tag; a call
    /// not answered yet matches on its From tag alone (an early dialog).
    pub(super) fn dialog_call(
        &self,
        sip_call_id: &str,
        a: Option<&str>,
        b: Option<&str>,
    ) -> Option<u64> {
        for (mine, theirs) in [(a, b), (b, a)] {
            let Some(mine) = mine else { continue };
            let Some(id) = self.find(sip_call_id, mine) else {
                continue;
            };
            let c = self.calls.get(&id)?;
            match c.answered_to_tag.as_deref() {
                Some(t) if theirs == Some(t) => return Some(id),
                Some(_) => {}
                None => return Some(id),
            }
        }
        None
    }

    pub(super) fn is_forwarded(&self, id: u64) -> bool {
        self.calls.get(&id).is_some_and(|c| c.xfer.forwarded())
    }
}
