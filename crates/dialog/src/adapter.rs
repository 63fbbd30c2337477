//! The one adapter from the wire layer's [`SipMessage`] to [`MsgView`]: the
//! owned copy of what [`Msg`] reads, so both paths read messages alike.

use std::borrow::Cow;

use sipcti_wire::SipMessage;

use crate::msg::{Msg, PartyRef};
use crate::view::{MsgView, Party};

/// The owned [`Party`] of a borrowed one (the host lower-cased, as
/// [`Party::new`] gives it).
fn owned(p: PartyRef<'_>) -> Party {
    Party {
        user: p.user.map(Cow::into_owned),
        host: p.host.map(str::to_ascii_lowercase),
        display: p.display.map(Cow::into_owned),
    }
}

pub(crate) fn view_of(msg: &SipMessage) -> Result<MsgView, &'static str> {
    let m = Msg::from_wire(msg)?;
    Ok(MsgView {
        method: msg.method().map(str::to_string),
        status: m.status,
        call_id: m.call_id.to_string(),
        from_tag: m.from_tag.map(str::to_string),
        to_tag: m.to_tag.map(str::to_string),
        cseq: m.cseq,
        // (`from_wire` read the CSeq already: it is there)
        cseq_method: msg
            .cseq()
            .map_or_else(String::new, |(_, cm)| cm.to_string()),
        ruri_user: m.ruri_user().map(Cow::into_owned),
        target_user: None,
        from: owned(m.party_from()),
        to: owned(m.party_to()),
        pai: m.pai().map(owned),
        contact: m.contact().map(owned),
        privacy_id: m.privacy_id(),
        replaces: m.replaces(),
        refer_to_replaces: m.refer_to_replaces(),
        sipfrag_status: m.sipfrag_status(),
    })
}
