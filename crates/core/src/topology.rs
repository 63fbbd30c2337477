//! Topology hiding toward the trunk (in the spirit of Kamailio's `topoh`):
//! in dialogs with the trunk, the Contact the trunk sees names sipcti, not
//! the phone's extension or private address.
//!
//! * A request or response going from the inside to the trunk has each
//!   Contact URI replaced by `sip:tc<mask>@<sipcti's trunk face>` (plus
//!   `;transport=tcp` over TCP); header parameters stay. `<mask>` is the
//!   phone's Contact URI XORed with a keystream from
//!   [`TopologyHiding::secret`], in hex: stateless, so it survives a
//!   restart and needs no table.
//! * A request from the trunk whose Request-URI (after our Route values)
//!   is such a URI goes to the unmasked Contact, which becomes its
//!   Request-URI again (RFC 3261 16.4/16.6 with the target unmasked). The
//!   no-open-relay rule still applies to the unmasked target: from the
//!   trunk only addresses in the inside networks are reachable.
//! * The mask hides; it is not encryption. With the default secret anyone
//!   with sipcti's source can unmask a Contact; set
//!   `[trunk] topology_secret` to make it opaque (as with topoh's
//!   `mask_key`).
//!
//! Other headers are left alone: From/To/P-Asserted-Identity carry the
//! caller id Zammad chose ([`crate::identity`]); Via is removed from
//! responses hop by hop anyway.

use sipcti_wire::{with_uri, NameAddr, SipMessage, Uri};

use crate::config::CoreConfig;

/// The prefix of a masked Contact's user part.
const PREFIX: &str = "tc";
/// Contact URIs longer than this (bytes) are left as they are.
const MAX_URI: usize = 512;

/// Settings of topology hiding (`[trunk] hide_topology`, `topology_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyHiding {
    /// Mask the inside's Contacts toward the trunk (default on).
    pub enabled: bool,
    /// Seed of the mask's keystream.
    pub secret: u64,
}

impl Default for TopologyHiding {
    /// On, with a fixed default secret.
    fn default() -> Self {
        TopologyHiding {
            enabled: true,
            secret: 0x5ec7_1c7a_70b0_0001,
        }
    }
}

impl TopologyHiding {
    /// On, with the keystream seeded from `secret` (`[trunk]
    /// topology_secret`, any text; FNV-1a of its bytes).
    pub fn with_secret(secret: &str) -> TopologyHiding {
        TopologyHiding {
            enabled: true,
            secret: crate::messages::fnv1a(&[secret]),
        }
    }
}

/// splitmix64: the keystream word `i` for `secret`.
fn word(secret: u64, i: u64) -> u64 {
    let mut z = secret.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn xor(secret: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= (word(secret, (i / 8) as u64) >> (8 * (i % 8))) as u8;
    }
}

/// The masked user part (`tc` + hex) of Contact URI `uri`.
pub fn mask(secret: u64, uri: &str) -> String {
    let mut b = uri.as_bytes().to_vec();
    xor(secret, &mut b);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(PREFIX.len() + b.len() * 2);
    out.push_str(PREFIX);
    // one allocation for the whole mask (docs/SPEED.md: a `format!` per
    // byte cost ~38 allocations per call)
    for x in b {
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 0xf)] as char);
    }
    out
}

/// The Contact URI masked in `user`; `None` when `user` is not a mask.
pub fn unmask(secret: u64, user: &str) -> Option<String> {
    let hex = user.strip_prefix(PREFIX)?;
    if hex.len() % 2 != 0 || hex.len() > MAX_URI * 2 {
        return None;
    }
    let mut b = Vec::with_capacity(hex.len() / 2);
    for i in (0..hex.len()).step_by(2) {
        b.push(u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()?);
    }
    xor(secret, &mut b);
    let s = String::from_utf8(b).ok()?;
    // only a SIP URI comes out of a real mask
    Uri::parse(&s).ok().filter(|u| u.is_sip())?;
    Some(s)
}

impl CoreConfig {
    /// The edits `(header index, new value)` masking every Contact of
    /// `msg`, which goes to the trunk; `us` is our `host:port` there
    /// ([`CoreConfig::our_hostport`] of `trunk_ip` and the transport).
    /// Empty when topology hiding is off or there is nothing to mask (`*`,
    /// an unparsable or over-long value, a Contact already naming sipcti).
    pub(crate) fn hide_contacts(&self, msg: &SipMessage, us: &str) -> Vec<(usize, String)> {
        if !self.topology.enabled {
            return Vec::new();
        }
        msg.map_header_values("Contact", |v| {
            let na = NameAddr::parse(v).ok()?;
            let u = na.parsed_uri().ok()?;
            if na.uri.len() > MAX_URI || !u.is_sip() || self.is_us(u.host, u.port) {
                return None;
            }
            let m = mask(self.topology.secret, na.uri);
            let mut uri = String::with_capacity(m.len() + us.len() + 5);
            uri.push_str("sip:");
            uri.push_str(&m);
            uri.push('@');
            uri.push_str(us);
            with_uri(v, &uri)
        })
    }

    /// The Contact masked in `uri` when it is `sip:tc…@sipcti` and topology
    /// hiding is on.
    pub(crate) fn unmasked_target(&self, uri: &Uri<'_>) -> Option<String> {
        if !self.topology.enabled || !self.is_us(uri.host, uri.port) {
            return None;
        }
        unmask(self.topology.secret, uri.user?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_and_hides_the_extension() {
        let uri = "sip:201@192.168.10.21:5062;transport=tcp;ob";
        let m = mask(7, uri);
        assert!(
            m.starts_with("tc") && !m.contains("201") && !m.contains("192"),
            "{m}"
        );
        assert_eq!(unmask(7, &m).as_deref(), Some(uri));
        // another secret does not give it back
        assert_ne!(unmask(8, &m).as_deref(), Some(uri));
    }

    #[test]
    fn mask_is_the_hex_of_the_xored_uri() {
        for uri in ["sip:201@10.0.0.20:5062", "sip:a@b;transport=tcp;ob", ""] {
            let mut b = uri.as_bytes().to_vec();
            xor(0x1234_5678_9abc_def0, &mut b);
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(mask(0x1234_5678_9abc_def0, uri), format!("{PREFIX}{hex}"));
        }
    }

    #[test]
    fn garbage_is_not_a_mask() {
        for u in ["201", "tc", "tcz1", "tc0", "tc00", "rb0123456789abcdef"] {
            assert_eq!(unmask(7, u), None, "{u}");
        }
    }
}
