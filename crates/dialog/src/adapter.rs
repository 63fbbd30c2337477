//! The one adapter from the wire layer's [`SipMessage`] to [`MsgView`].

use sipcti_wire::{NameAddr, SipMessage};

use crate::msg::refer_notify;
use crate::view::{privacy_has_id, sipfrag_status, uri_user_host, DialogRef, MsgView, Party};

fn party(na: &NameAddr<'_>) -> Party {
    Party::new(na.uri, na.display.as_deref())
}

/// First value of a multi-valued name-addr header that parses.
fn first_name_addr(msg: &SipMessage, name: &str) -> Option<Party> {
    msg.header_values_iter(name)
        .find_map(|v| NameAddr::parse(v).ok().map(|na| party(&na)))
}

pub(crate) fn view_of(msg: &SipMessage) -> Result<MsgView, &'static str> {
    let (method, status, ruri_user) = if msg.is_request() {
        let m = msg.method().ok_or("no method")?;
        let ruri_user = msg.request_uri().and_then(|u| uri_user_host(u).0);
        (Some(m.to_string()), None, ruri_user)
    } else {
        (None, Some(msg.status().ok_or("no status")?), None)
    };
    let call_id = msg.call_id().map(str::trim).filter(|c| !c.is_empty());
    let call_id = call_id.ok_or("no Call-ID")?.to_string();
    let (cseq, cseq_method) = msg.cseq().ok_or("no CSeq")?;
    let from = msg.from().ok_or("no From")?;
    let to = msg.to().ok_or("no To")?;
    let privacy_id = msg.header_values_iter("Privacy").any(privacy_has_id);
    let is = |m: &str| method.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(m));
    // RFC 3891 6.1: only an INVITE's Replaces names a dialog to replace
    let replaces = if is("INVITE") {
        msg.header("Replaces").and_then(DialogRef::parse)
    } else {
        None
    };
    let refer_to_replaces = if is("REFER") {
        msg.header("Refer-To").and_then(DialogRef::from_refer_to)
    } else {
        None
    };
    let sipfrag = if is("NOTIFY") && refer_notify(msg) {
        sipfrag_status(msg.body())
    } else {
        None
    };
    Ok(MsgView {
        method,
        status,
        call_id,
        from_tag: from.tag().map(str::to_string),
        to_tag: to.tag().map(str::to_string),
        cseq,
        cseq_method: cseq_method.to_string(),
        ruri_user,
        target_user: None,
        from: party(&from),
        to: party(&to),
        pai: first_name_addr(msg, "P-Asserted-Identity"),
        contact: first_name_addr(msg, "Contact"),
        privacy_id,
        replaces,
        refer_to_replaces,
        sipfrag_status: sipfrag,
    })
}
