//! IPv4 (RFC 791) and IPv6 (RFC 8200) header parsing, UDP and TCP header access.

use std::net::IpAddr;

use etherparse::{IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice};

use crate::defrag::{FragKey, Fragment};

/// IPv6 Hop-by-Hop Options.
const HOP_BY_HOP: u8 = 0;
/// IPv6 Routing header.
const ROUTING: u8 = 43;
/// IPv6 Fragment header.
const FRAGMENT: u8 = 44;
/// IP Authentication Header (RFC 4302).
const AUTH: u8 = 51;
/// IPv6 Destination Options.
const DEST_OPTS: u8 = 60;
/// Deepest chain of IPv6 extension headers followed.
const MAX_EXT_HEADERS: usize = 16;

/// An IP packet after its IP headers.
#[derive(Debug)]
pub(crate) enum NetPacket<'a> {
    /// Upper-layer data (`protocol` is the IP protocol number). `truncated`: the
    /// capture cut the packet short of its IP length.
    Transport {
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        data: &'a [u8],
        truncated: bool,
    },
    /// A fragment, to be reassembled.
    Fragment(Fragment<'a>),
    /// Malformed or cut-off headers, or a fragment cut short by the capture.
    Invalid,
}

/// Parses an IPv4 or IPv6 packet (version from the first nibble).
pub(crate) fn parse_ip(data: &[u8]) -> NetPacket<'_> {
    match data.first().map(|b| b >> 4) {
        Some(4) => parse_v4(data),
        Some(6) => parse_v6(data),
        _ => NetPacket::Invalid,
    }
}

fn parse_v4(data: &[u8]) -> NetPacket<'_> {
    let Ok(h) = Ipv4HeaderSlice::from_slice(data) else {
        return NetPacket::Invalid;
    };
    let hlen = h.slice().len();
    let total = usize::from(h.total_len());
    if total < hlen {
        return NetPacket::Invalid;
    }
    let truncated = total > data.len();
    let end = total.min(data.len());
    let payload = &data[hlen..end];
    let src = IpAddr::V4(h.source_addr());
    let dst = IpAddr::V4(h.destination_addr());
    let protocol = h.protocol().0;
    let offset = usize::from(h.fragments_offset().value()) * 8;
    if h.more_fragments() || offset != 0 {
        if truncated {
            return NetPacket::Invalid;
        }
        return NetPacket::Fragment(Fragment {
            key: FragKey {
                src,
                dst,
                id: u32::from(h.identification()),
                protocol,
            },
            offset,
            more: h.more_fragments(),
            data: payload,
        });
    }
    NetPacket::Transport {
        src,
        dst,
        protocol,
        data: payload,
        truncated,
    }
}

fn parse_v6(data: &[u8]) -> NetPacket<'_> {
    let Ok(h) = Ipv6HeaderSlice::from_slice(data) else {
        return NetPacket::Invalid;
    };
    let plen = usize::from(h.payload_length());
    let rest = &data[h.slice().len()..];
    // Payload length 0 means a jumbogram (RFC 2675): take what was captured.
    let (rest, truncated) = if plen == 0 || plen > rest.len() {
        (rest, plen > rest.len())
    } else {
        (&rest[..plen], false)
    };
    let src = IpAddr::V6(h.source_addr());
    let dst = IpAddr::V6(h.destination_addr());
    match walk_v6(src, dst, h.next_header().0, rest, truncated) {
        NetPacket::Fragment(_) if truncated => NetPacket::Invalid,
        other => other,
    }
}

/// Follows the IPv6 extension header chain starting with header type `next` at
/// the start of `data` (RFC 8200 section 4): skips Hop-by-Hop, Routing,
/// Destination Options and AH headers; stops at a Fragment header that fragments
/// (returning the fragment) or at the upper-layer header.
pub(crate) fn walk_v6<'a>(
    src: IpAddr,
    dst: IpAddr,
    mut next: u8,
    mut data: &'a [u8],
    truncated: bool,
) -> NetPacket<'a> {
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                let Ok(ext) = Ipv6RawExtHeaderSlice::from_slice(data) else {
                    return NetPacket::Invalid;
                };
                next = ext.next_header().0;
                data = &data[ext.slice().len()..];
            }
            AUTH => {
                let Ok(ext) = IpAuthHeaderSlice::from_slice(data) else {
                    return NetPacket::Invalid;
                };
                next = ext.next_header().0;
                data = &data[ext.slice().len()..];
            }
            FRAGMENT => {
                // Parsed here rather than with etherparse 0.16, whose
                // Ipv6FragmentHeaderSlice reads offset and M flag with the IPv4
                // bit layout. RFC 8200 4.5: next header(1) reserved(1)
                // offset(13 bits) res(2 bits) M(1 bit) identification(4).
                let Some(h) = data.get(..8) else {
                    return NetPacket::Invalid;
                };
                let rest = &data[8..];
                let bits = u16::from_be_bytes([h[2], h[3]]);
                let offset = usize::from(bits >> 3) * 8;
                let more = bits & 1 == 1;
                let header_next = h[0];
                if offset == 0 && !more {
                    // Atomic fragment (RFC 6946): the payload is whole.
                    next = header_next;
                    data = rest;
                    continue;
                }
                return NetPacket::Fragment(Fragment {
                    key: FragKey {
                        src,
                        dst,
                        id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        protocol: header_next,
                    },
                    offset,
                    more,
                    data: rest,
                });
            }
            protocol => {
                return NetPacket::Transport {
                    src,
                    dst,
                    protocol,
                    data,
                    truncated,
                }
            }
        }
    }
    NetPacket::Invalid
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv6Header, Ipv6RawExtHeader};

    fn v6_with_exts(exts: &[(u8, Vec<u8>)], upper: u8, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (_, bytes)) in exts.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = exts.get(i + 1).map_or(upper, |e| e.0);
            body.extend_from_slice(&b);
        }
        body.extend_from_slice(payload);
        let h = Ipv6Header {
            payload_length: body.len() as u16,
            next_header: IpNumber(exts.first().map_or(upper, |e| e.0)),
            source: [1; 16],
            destination: [2; 16],
            ..Default::default()
        };
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(&body);
        v
    }

    fn raw_ext() -> Vec<u8> {
        Ipv6RawExtHeader::new_raw(IpNumber(0), &[0; 6])
            .map(|h| h.to_bytes().to_vec())
            .unwrap()
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let p = v6_with_exts(
            &[
                (HOP_BY_HOP, raw_ext()),
                (ROUTING, raw_ext()),
                (DEST_OPTS, raw_ext()),
            ],
            17,
            b"udpdata!",
        );
        match parse_ip(&p) {
            NetPacket::Transport {
                protocol,
                data,
                truncated,
                ..
            } => {
                assert_eq!(protocol, 17);
                assert_eq!(data, b"udpdata!");
                assert!(!truncated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv6_fragment_header() {
        // offset 3 (x8 bytes), M=1, id 99
        let frag = vec![17, 0, 0, (3 << 3) | 1, 0, 0, 0, 99];
        let p = v6_with_exts(
            &[(DEST_OPTS, raw_ext()), (FRAGMENT, frag)],
            DEST_OPTS, // fragmentable part starts with another header: must not be parsed
            &[0xAA; 16],
        );
        match parse_ip(&p) {
            NetPacket::Fragment(f) => {
                assert_eq!(f.key.id, 99);
                assert_eq!(f.key.protocol, DEST_OPTS);
                assert_eq!(f.offset, 24);
                assert!(f.more);
                assert_eq!(f.data, &[0xAA; 16]);
            }
            other => panic!("{other:?}"),
        }
        // Atomic fragment: parsed through.
        let atomic = vec![6, 0, 0, 0, 0, 0, 0, 5];
        let p = v6_with_exts(&[(FRAGMENT, atomic)], 6, b"tcp");
        assert!(matches!(
            parse_ip(&p),
            NetPacket::Transport { protocol: 6, .. }
        ));
    }

    #[test]
    fn ipv4_fragment_and_truncation() {
        let mut h = Ipv4Header::new(24, 64, IpNumber::UDP, [1, 2, 3, 4], [5, 6, 7, 8]).unwrap();
        h.more_fragments = true;
        h.identification = 4242;
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(&[0; 24]);
        match parse_ip(&p) {
            NetPacket::Fragment(f) => {
                assert_eq!(
                    (f.key.id, f.offset, f.more, f.data.len()),
                    (4242, 0, true, 24)
                );
            }
            other => panic!("{other:?}"),
        }
        // Cut by the snap length: a fragment is unusable.
        assert!(matches!(parse_ip(&p[..30]), NetPacket::Invalid));
        h.more_fragments = false;
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(&[0; 24]);
        p.extend_from_slice(&[0xEE; 4]); // Ethernet padding is cut off
        assert!(matches!(
            parse_ip(&p),
            NetPacket::Transport { data, truncated: false, .. } if data.len() == 24
        ));
        assert!(matches!(
            parse_ip(&p[..30]),
            NetPacket::Transport {
                truncated: true,
                ..
            }
        ));
        assert!(matches!(parse_ip(&p[..10]), NetPacket::Invalid));
        assert!(matches!(parse_ip(&[]), NetPacket::Invalid));
        assert!(matches!(parse_ip(&[0x10, 0]), NetPacket::Invalid));
    }
}
