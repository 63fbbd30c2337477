//! The borrowed, lazily read message the state machine works on.
//!
//! [`Msg`] holds what every message needs to be placed (method or status,
//! Call-ID, tags, CSeq), as slices of the message; everything else (the
//! parties, `Privacy`, `Replaces`, the sipfrag of a NOTIFY) is read only
//! when a state transition asks for it: for an initial INVITE, a 2xx
//! answering an inbound call, a REFER or a NOTIFY, never for a BYE, a
//! CANCEL or a retransmission. It reads either a [`SipMessage`] (the
//! [`crate::CallTracker::on_message`] path, no copies) or a [`MsgView`]
//! (the [`crate::CallTracker::on_view`] path), with the same results.

use std::borrow::Cow;

use sipcti_wire::{NameAddr, SipMessage};

use crate::view::{
    clean_display_cow, clean_display_ref, privacy_has_id, sipfrag_status, uri_user_host_ref,
    DialogRef, MsgView, Party,
};

/// A request method (or CSeq method) as far as the tracker tells them apart
/// (RFC 3261 7.1; compared case-insensitively, as the tracker always did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Invite,
    Cancel,
    Bye,
    Refer,
    Notify,
    /// Any other method (ACK, OPTIONS, REGISTER, PRACK, UPDATE, ...).
    Other,
}

impl Method {
    /// The method named `m` (any case).
    pub(crate) fn of(m: &str) -> Method {
        // the usual upper-case spelling by plain comparison first
        match m {
            "INVITE" => return Method::Invite,
            "BYE" => return Method::Bye,
            "ACK" => return Method::Other,
            _ => {}
        }
        let is = |name: &str| m.eq_ignore_ascii_case(name);
        match m.len() {
            3 if is("BYE") => Method::Bye,
            5 if is("REFER") => Method::Refer,
            6 if is("INVITE") => Method::Invite,
            6 if is("CANCEL") => Method::Cancel,
            6 if is("NOTIFY") => Method::Notify,
            _ => Method::Other,
        }
    }
}

/// One party of a message (From, To, P-Asserted-Identity or Contact) as
/// [`Party`] has it, borrowed: the user is copied only when it had `%`
/// escapes, the display name only when it was quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartyRef<'a> {
    /// URI user part, %-unescaped (`tel:`: the number).
    pub(crate) user: Option<Cow<'a, str>>,
    /// URI host as written (any case); None for `tel:` URIs.
    pub(crate) host: Option<&'a str>,
    /// Display name without quotes; None if absent or empty.
    pub(crate) display: Option<Cow<'a, str>>,
}

impl<'a> PartyRef<'a> {
    /// The party of a URI and an optional display name (as [`Party::new`]).
    fn new(uri: &'a str, display: Option<&'a str>) -> PartyRef<'a> {
        let (user, host) = uri_user_host_ref(uri);
        PartyRef {
            user,
            host,
            display: display.and_then(clean_display_ref),
        }
    }

    /// The party of a name-addr the caller keeps.
    fn of_name_addr(na: &'a NameAddr<'_>) -> PartyRef<'a> {
        PartyRef::new(na.uri, na.display.as_deref())
    }

    /// The party of a name-addr taken over (its display name may own its text).
    fn from_name_addr(na: NameAddr<'a>) -> PartyRef<'a> {
        let (user, host) = uri_user_host_ref(na.uri);
        PartyRef {
            user,
            host,
            display: na.display.and_then(clean_display_cow),
        }
    }

    /// A [`Party`] of a [`MsgView`], borrowed.
    fn of_party(p: &'a Party) -> PartyRef<'a> {
        PartyRef {
            user: p.user.as_deref().map(Cow::Borrowed),
            host: p.host.as_deref(),
            display: p.display.as_deref().map(Cow::Borrowed),
        }
    }

    /// `user` if present and non-empty.
    pub(crate) fn user(&self) -> Option<&str> {
        self.user.as_deref().filter(|u| !u.is_empty())
    }

    /// The display name, if any.
    pub(crate) fn display(&self) -> Option<&str> {
        self.display.as_deref()
    }

    /// As [`Party::is_anonymous`].
    pub(crate) fn is_anonymous(&self) -> bool {
        self.user
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
            || self
                .host
                .is_some_and(|h| h.eq_ignore_ascii_case("anonymous.invalid"))
            || self
                .display
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("anonymous"))
    }
}

/// Where the lazily read parts come from.
#[derive(Debug)]
enum Src<'a> {
    /// A view built beforehand (everything already read).
    View(&'a MsgView),
    /// The message itself, with its From and To parsed once.
    Wire {
        msg: &'a SipMessage,
        from: NameAddr<'a>,
        to: NameAddr<'a>,
    },
}

/// What the tracker reads of one message: the fields that place it, read
/// eagerly, and the rest on demand (see the module documentation).
#[derive(Debug)]
pub(crate) struct Msg<'a> {
    /// Request method; None for a response.
    pub(crate) method: Option<Method>,
    /// Response status; None for a request.
    pub(crate) status: Option<u16>,
    /// Call-ID (trimmed, not empty).
    pub(crate) call_id: &'a str,
    /// From tag.
    pub(crate) from_tag: Option<&'a str>,
    /// To tag (None on an initial request).
    pub(crate) to_tag: Option<&'a str>,
    /// CSeq number.
    pub(crate) cseq: u32,
    /// CSeq method.
    pub(crate) cseq_method: Method,
    src: Src<'a>,
}

impl<'a> Msg<'a> {
    /// Reads the placing fields of `msg`. `Err` names what is missing, as
    /// [`MsgView::from_message`] does (no Call-ID, CSeq, From or To).
    pub(crate) fn from_wire(msg: &'a SipMessage) -> Result<Msg<'a>, &'static str> {
        let (method, status) = if msg.is_request() {
            (Some(Method::of(msg.method().ok_or("no method")?)), None)
        } else {
            (None, Some(msg.status().ok_or("no status")?))
        };
        let call_id = msg.call_id().map(str::trim).filter(|c| !c.is_empty());
        let call_id = call_id.ok_or("no Call-ID")?;
        let (cseq, cseq_method) = msg.cseq().ok_or("no CSeq")?;
        let from = msg.from().ok_or("no From")?;
        let to = msg.to().ok_or("no To")?;
        Ok(Msg {
            method,
            status,
            call_id,
            from_tag: tag_of(&from),
            to_tag: tag_of(&to),
            cseq,
            cseq_method: Method::of(cseq_method),
            src: Src::Wire { msg, from, to },
        })
    }

    /// The message a [`MsgView`] describes.
    pub(crate) fn from_view(v: &'a MsgView) -> Msg<'a> {
        Msg {
            method: v.method.as_deref().map(Method::of),
            status: v.status,
            call_id: &v.call_id,
            from_tag: v.from_tag.as_deref(),
            to_tag: v.to_tag.as_deref(),
            cseq: v.cseq,
            cseq_method: Method::of(&v.cseq_method),
            src: Src::View(v),
        }
    }

    /// The From party.
    pub(crate) fn party_from(&self) -> PartyRef<'_> {
        match &self.src {
            Src::View(v) => PartyRef::of_party(&v.from),
            Src::Wire { from, .. } => PartyRef::of_name_addr(from),
        }
    }

    /// The To party.
    pub(crate) fn party_to(&self) -> PartyRef<'_> {
        match &self.src {
            Src::View(v) => PartyRef::of_party(&v.to),
            Src::Wire { to, .. } => PartyRef::of_name_addr(to),
        }
    }

    /// The first P-Asserted-Identity value that parses (RFC 3325 9.1), if any.
    pub(crate) fn pai(&self) -> Option<PartyRef<'_>> {
        match &self.src {
            Src::View(v) => v.pai.as_ref().map(PartyRef::of_party),
            Src::Wire { msg, .. } => first_name_addr(msg, "P-Asserted-Identity"),
        }
    }

    /// The first Contact value that parses (RFC 3261 20.10), if any.
    pub(crate) fn contact(&self) -> Option<PartyRef<'_>> {
        match &self.src {
            Src::View(v) => v.contact.as_ref().map(PartyRef::of_party),
            Src::Wire { msg, .. } => first_name_addr(msg, "Contact"),
        }
    }

    /// `Privacy` lists `id` (RFC 3325 9.3).
    pub(crate) fn privacy_id(&self) -> bool {
        match &self.src {
            Src::View(v) => v.privacy_id,
            Src::Wire { msg, .. } => msg.header_values_iter("Privacy").any(privacy_has_id),
        }
    }

    /// The Request-URI user (requests only; `tel:`: the number).
    pub(crate) fn ruri_user(&self) -> Option<Cow<'_, str>> {
        match &self.src {
            Src::View(v) => v.ruri_user.as_deref().map(Cow::Borrowed),
            Src::Wire { msg, .. } => msg.request_uri().and_then(|u| uri_user_host_ref(u).0),
        }
    }

    /// The inside target the proxy chose (see [`MsgView::target_user`]);
    /// never in the message itself.
    pub(crate) fn target_user(&self) -> Option<&str> {
        match &self.src {
            Src::View(v) => v.target_user.as_deref(),
            Src::Wire { .. } => None,
        }
    }

    /// The dialog an INVITE's `Replaces` names (RFC 3891 6.1), if any.
    pub(crate) fn replaces(&self) -> Option<DialogRef> {
        match &self.src {
            Src::View(v) => v.replaces.clone(),
            Src::Wire { msg, .. } if self.method == Some(Method::Invite) => {
                msg.header("Replaces").and_then(DialogRef::parse)
            }
            Src::Wire { .. } => None,
        }
    }

    /// The dialog a REFER's Refer-To `Replaces` names (RFC 3891 1), if any.
    pub(crate) fn refer_to_replaces(&self) -> Option<DialogRef> {
        match &self.src {
            Src::View(v) => v.refer_to_replaces.clone(),
            Src::Wire { msg, .. } if self.method == Some(Method::Refer) => {
                msg.header("Refer-To").and_then(DialogRef::from_refer_to)
            }
            Src::Wire { .. } => None,
        }
    }

    /// A NOTIFY of the implicit `refer` subscription: its sipfrag's status
    /// code (RFC 3515 2.4.5); None for every other message.
    pub(crate) fn sipfrag_status(&self) -> Option<u16> {
        match &self.src {
            Src::View(v) => v.sipfrag_status,
            Src::Wire { msg, .. } if self.method == Some(Method::Notify) && refer_notify(msg) => {
                sipfrag_status(msg.body())
            }
            Src::Wire { .. } => None,
        }
    }

    /// The dialled number (see [`crate::dialled_number`]): the Request-URI
    /// user, else the To user, normalised; empty when neither has one.
    pub(crate) fn dialled_number(
        &self,
        country_code: Option<&str>,
        max_internal_len: usize,
    ) -> String {
        let ruri = self.ruri_user();
        let to = self.party_to();
        crate::routes::dialled(ruri.as_deref(), to.user(), country_code, max_internal_len)
    }
}

/// The `tag` parameter (RFC 3261 19.3) of a From or To value, as
/// [`NameAddr::tag`] finds it (the first parameter named `tag`, any case;
/// `None` if that one has no value), by a plain split on `;` when no
/// quoted string can hide one (the wire layer's quote-aware split costs
/// several times more and runs for both headers of every message).
fn tag_of<'a>(na: &NameAddr<'a>) -> Option<&'a str> {
    let params = na.params;
    // the usual `;tag=x` alone: x is the value as it stands
    if let Some(v) = params.strip_prefix(";tag=") {
        let plain = |c: &u8| !matches!(c, b';' | b'"' | b' ' | b'\t' | b'\r' | b'\n');
        if v.as_bytes().iter().all(plain) {
            return Some(v);
        }
    }
    let b = params.as_bytes();
    if b.contains(&b'"') {
        return na.tag();
    }
    let lws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    // `b[a..e]` without surrounding LWS
    let trim = |mut a: usize, mut e: usize| {
        while a < e && b.get(a).is_some_and(lws) {
            a += 1;
        }
        while e > a && b.get(e - 1).is_some_and(lws) {
            e -= 1;
        }
        a..e
    };
    let find = |from: usize, to: usize, c: u8| {
        b.get(from..to)?
            .iter()
            .position(|x| *x == c)
            .map(|p| from + p)
    };
    // the parameters after the first ';' (ASCII bytes: char boundaries)
    let mut start = find(0, b.len(), b';')? + 1;
    loop {
        let end = find(start, b.len(), b';').unwrap_or(b.len());
        let eq = find(start, end, b'=');
        let name = trim(start, eq.unwrap_or(end));
        if b.get(name).is_some_and(|n| n.eq_ignore_ascii_case(b"tag")) {
            return params.get(trim(eq? + 1, end));
        }
        if end >= b.len() {
            return None;
        }
        start = end + 1;
    }
}

/// First value of a multi-valued name-addr header that parses.
fn first_name_addr<'a>(msg: &'a SipMessage, name: &'a str) -> Option<PartyRef<'a>> {
    msg.header_values_iter(name)
        .find_map(|v| NameAddr::parse(v).ok())
        .map(PartyRef::from_name_addr)
}

/// A NOTIFY of a REFER's implicit subscription: `Event: refer` (any
/// `id` parameter) with a `message/sipfrag` body (RFC 3515 2.4.4, 2.4.5).
fn refer_notify(msg: &SipMessage) -> bool {
    let token_is = |v: &str, want: &str| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(want)
    };
    msg.header("Event").is_some_and(|e| token_is(e, "refer"))
        && msg
            .header("Content-Type")
            .is_some_and(|c| token_is(c, "message/sipfrag"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_as_the_wire_layer_finds_them() {
        for v in [
            "<sip:a@h>;tag=abc",
            "<sip:a@h>",
            "<sip:a@h> ; TAG = x1 ;foo",
            "<sip:a@h>;foo=bar;tag=2;tag=3",
            "<sip:a@h>;tag;tag=2",
            "<sip:a@h>;tag=",
            "sip:a@h;tag=bare",
            "\"Q;tag=no\" <sip:a@h>;x=\"y;tag=z\";tag=real",
            "<sip:a@h;tag=uri-param>;tag=hdr",
            "<sip:a@h>;\ttag\t=\tt\t",
            "<sip:a@h>;",
            "<sip:a@h>;;tag=x;",
            "<sip:a@h>;tag = ",
            "<sip:a@h>;=x;tag=y=z",
            "<sip:a@h>;Tag=Ä1",
            "<sip:a@h>;tag=plain",
            "<sip:a@h>;tag=a b",
            "<sip:a@h>;tag=x;tag=y",
            "<sip:a@h>;tag=\"q\"",
        ] {
            let na = NameAddr::parse(v).expect("name-addr");
            assert_eq!(tag_of(&na), na.tag(), "{v}");
        }
    }

    #[test]
    fn methods_any_case() {
        assert_eq!(Method::of("INVITE"), Method::Invite);
        assert_eq!(Method::of("invite"), Method::Invite);
        assert_eq!(Method::of("Cancel"), Method::Cancel);
        assert_eq!(Method::of("bye"), Method::Bye);
        assert_eq!(Method::of("REFER"), Method::Refer);
        assert_eq!(Method::of("NoTiFy"), Method::Notify);
        for m in ["ACK", "OPTIONS", "INVITEX", "", "BYEE", "UPDATE"] {
            assert_eq!(Method::of(m), Method::Other, "{m}");
        }
    }

    #[test]
    fn parties_borrow_unless_decoded() {
        let p = PartyRef::new("sip:201@PBX.example;user=phone", Some(" Alice "));
        assert!(matches!(p.user, Some(Cow::Borrowed("201"))));
        assert_eq!(p.host, Some("PBX.example"));
        assert!(matches!(p.display, Some(Cow::Borrowed("Alice"))));
        let p = PartyRef::new("sip:%2B49301@h", Some("\"Bob \\\"B\\\"\""));
        assert!(matches!(p.user, Some(Cow::Owned(ref u)) if u == "+49301"));
        assert_eq!(p.display.as_deref(), Some("Bob \"B\""));
        assert!(PartyRef::new("sip:x@Anonymous.INVALID", None).is_anonymous());
        // the same answers as the owned Party
        for (uri, d) in [
            ("sip:anonymous@h", None),
            ("tel:+49-30;x=y", Some("\"\"")),
            ("<sips:a:pw@[2001:db8::1]:5061>", Some("Anonymous")),
            ("mailto:x@y", None),
        ] {
            let (p, r) = (Party::new(uri, d), PartyRef::new(uri, d));
            assert_eq!(p.user(), r.user(), "{uri}");
            assert_eq!(p.display.as_deref(), r.display(), "{uri}");
            assert_eq!(p.is_anonymous(), r.is_anonymous(), "{uri}");
        }
    }
}
