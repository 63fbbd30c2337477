//! Caller-id rewrite of one dialog (what Kamailio's `uac_replace_from`
//! does, kept in a table rather than in Record-Route parameters).
//!
//! For an outbound call where Zammad answered `{"action":"dial","caller_id":X}`,
//! every message of that dialog that travels toward the trunk carries X as
//! the user part of the phone's From (or To, when the trunk started the
//! request, so the tags are swapped) and of P-Asserted-Identity /
//! P-Preferred-Identity; every message that travels toward the phone
//! carries the phone's original user again. The phone's From tag tells
//! which of From/To is the phone's identity.

use sipcti_wire::{NameAddr, SipMessage};

/// The rewrite of one dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The phone's From tag (identifies the phone's side of the dialog).
    pub phone_tag: String,
    /// The user part the phone sent (restored toward the phone).
    pub original_user: String,
    /// The caller id Zammad chose (sent toward the trunk).
    pub caller_id: String,
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    /// Toward the trunk: the phone's identity becomes the caller id.
    Trunk,
    /// Toward the phone / PBX: the original identity comes back.
    Inside,
}

/// Replace the user part of the URI inside a name-addr / addr-spec header
/// value, keeping every other byte. Returns `None` when the value does not
/// parse or its URI has no recognisable user position (then the header is
/// left alone).
pub fn replace_user(value: &str, new_user: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    let r = na.uri_range();
    let uri = value.get(r.clone())?;
    let colon = uri.find(':')?;
    let scheme = &uri[..colon];
    let rest = &uri[colon + 1..];
    let (user_start, user_end) = if scheme.eq_ignore_ascii_case("tel") {
        let end = rest.find(';').unwrap_or(rest.len());
        (0, end)
    } else {
        // user[:password]@hostport ; user ends at the first ':' before '@'
        match rest.find('@') {
            Some(at) => {
                let user_part = &rest[..at];
                let end = user_part.find(':').unwrap_or(at);
                (0, end)
            }
            None => {
                // no user: insert "user@"
                let pos = r.start + colon + 1;
                let mut out = String::with_capacity(value.len() + new_user.len() + 1);
                out.push_str(&value[..pos]);
                out.push_str(new_user);
                out.push('@');
                out.push_str(&value[pos..]);
                return Some(out);
            }
        }
    };
    let abs_start = r.start + colon + 1 + user_start;
    let abs_end = r.start + colon + 1 + user_end;
    let mut out = String::with_capacity(value.len() + new_user.len());
    out.push_str(&value[..abs_start]);
    out.push_str(new_user);
    out.push_str(&value[abs_end..]);
    Some(out)
}

/// The user part of a name-addr header value's URI, as written.
pub fn user_of(value: &str) -> Option<String> {
    let na = NameAddr::parse(value).ok()?;
    let uri = na.parsed_uri().ok()?;
    uri.user.map(|u| u.to_string())
}

impl Rewrite {
    /// Header edits `(header index, new value)` that apply this rewrite to
    /// `msg` travelling `toward`. `is_phone_request` says the message is a
    /// request sent by the phone (then P-Asserted-Identity and
    /// P-Preferred-Identity are the phone's too).
    pub fn edits(
        &self,
        msg: &SipMessage,
        toward: Toward,
        is_phone_request: bool,
    ) -> Vec<(usize, String)> {
        let user = match toward {
            Toward::Trunk => self.caller_id.as_str(),
            Toward::Inside => self.original_user.as_str(),
        };
        let mut out = Vec::new();
        for h in msg.header_lines("From").chain(msg.header_lines("To")) {
            let Ok(na) = NameAddr::parse(h.value) else {
                continue;
            };
            if na.tag() == Some(self.phone_tag.as_str()) {
                if let Some(v) = replace_user(h.value, user) {
                    if v != h.value {
                        out.push((h.index, v));
                    }
                }
            }
        }
        if is_phone_request && toward == Toward::Trunk {
            let ids = msg
                .header_lines("P-Asserted-Identity")
                .chain(msg.header_lines("P-Preferred-Identity"));
            for h in ids {
                if let Some(v) = replace_user(h.value, user) {
                    out.push((h.index, v));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_user_keeps_every_other_byte() {
        assert_eq!(
            replace_user(
                "\"Alice\" <sip:201@10.0.0.5:5060;user=phone>;tag=abc",
                "4930777"
            )
            .unwrap(),
            "\"Alice\" <sip:4930777@10.0.0.5:5060;user=phone>;tag=abc"
        );
        assert_eq!(
            replace_user("sip:201@pbx;tag=x", "49").unwrap(),
            "sip:49@pbx;tag=x"
        );
        assert_eq!(
            replace_user("<sip:201:secret@pbx>", "49").unwrap(),
            "<sip:49:secret@pbx>"
        );
        assert_eq!(
            replace_user("<tel:+4930123;x=y>", "49").unwrap(),
            "<tel:49;x=y>"
        );
        assert_eq!(
            replace_user("<sip:pbx.example>", "49").unwrap(),
            "<sip:49@pbx.example>"
        );
    }
}
