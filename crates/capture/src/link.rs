//! Link-layer decoding (<https://www.tcpdump.org/linktypes.html>).

use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice};

/// LINKTYPE_NULL: BSD loopback, 4-byte address family in the capturing host's byte order.
pub(crate) const NULL: u32 = 0;
/// LINKTYPE_ETHERNET.
pub(crate) const ETHERNET: u32 = 1;
/// DLT_RAW as written by some systems (12 on most, 14 on OpenBSD).
pub(crate) const RAW_12: u32 = 12;
/// DLT_RAW on OpenBSD.
pub(crate) const RAW_14: u32 = 14;
/// LINKTYPE_RAW: raw IPv4 or IPv6.
pub(crate) const RAW: u32 = 101;
/// LINKTYPE_LOOP: OpenBSD loopback, 4-byte address family in network byte order.
pub(crate) const LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture v1 (16-byte header).
pub(crate) const LINUX_SLL: u32 = 113;
/// LINKTYPE_IPV4: raw IPv4.
pub(crate) const IPV4: u32 = 228;
/// LINKTYPE_IPV6: raw IPv6.
pub(crate) const IPV6: u32 = 229;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2 (20-byte header).
pub(crate) const LINUX_SLL2: u32 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag types.
const VLAN_TAGS: [u16; 4] = [0x8100, 0x88A8, 0x9100, 0x9200];
/// Deepest VLAN tag stack accepted.
const MAX_VLAN_DEPTH: usize = 8;

/// Result of stripping the link-layer header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LinkPayload<'a> {
    /// An IPv4 or IPv6 packet (to be checked by the IP parser).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, ...).
    NotIp,
    /// The link-layer header is cut off or invalid.
    Malformed,
}

/// True if `linktype` can be decoded by [`decode`].
pub(crate) fn is_supported(linktype: u32) -> bool {
    matches!(
        linktype,
        NULL | ETHERNET | RAW_12 | RAW_14 | RAW | LOOP | LINUX_SLL | IPV4 | IPV6 | LINUX_SLL2
    )
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> LinkPayload<'_> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => LinkPayload::Ip(rest),
        _ => LinkPayload::NotIp,
    }
}

/// BSD address family values meaning IPv4 (2) or IPv6 (10 Linux, 24 NetBSD/OpenBSD,
/// 28 FreeBSD, 30 macOS).
fn by_address_family(af: u32, rest: &[u8]) -> LinkPayload<'_> {
    match af {
        2 | 10 | 24 | 28 | 30 => LinkPayload::Ip(rest),
        _ => LinkPayload::NotIp,
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Strips the link-layer header of a packet of link type `linktype`.
pub(crate) fn decode(linktype: u32, data: &[u8]) -> LinkPayload<'_> {
    match linktype {
        ETHERNET => {
            let Ok(eth) = Ethernet2HeaderSlice::from_slice(data) else {
                return LinkPayload::Malformed;
            };
            let mut ethertype = eth.ether_type().0;
            let mut rest = &data[eth.slice().len()..];
            let mut depth = 0;
            while VLAN_TAGS.contains(&ethertype) {
                depth += 1;
                let Ok(vlan) = SingleVlanHeaderSlice::from_slice(rest) else {
                    return LinkPayload::Malformed;
                };
                if depth > MAX_VLAN_DEPTH {
                    return LinkPayload::Malformed;
                }
                ethertype = vlan.ether_type().0;
                rest = &rest[vlan.slice().len()..];
            }
            by_ethertype(ethertype, rest)
        }
        LINUX_SLL => {
            // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            match be16(data, 14) {
                Some(proto) => by_ethertype(proto, &data[16..]),
                None => LinkPayload::Malformed,
            }
        }
        LINUX_SLL2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            match (be16(data, 0), data.get(20..)) {
                (Some(proto), Some(rest)) => by_ethertype(proto, rest),
                _ => LinkPayload::Malformed,
            }
        }
        RAW | RAW_12 | RAW_14 | IPV4 | IPV6 => LinkPayload::Ip(data),
        NULL | LOOP => {
            let Some(b) = data.get(..4) else {
                return LinkPayload::Malformed;
            };
            let b = [b[0], b[1], b[2], b[3]];
            let af = if linktype == LOOP {
                u32::from_be_bytes(b)
            } else {
                // Host byte order of the capturing machine: small values are
                // valid, so a value with high bits set was written big-endian.
                let le = u32::from_le_bytes(b);
                if le > 0xFFFF {
                    u32::from_be_bytes(b)
                } else {
                    le
                }
            };
            by_address_family(af, &data[4..])
        }
        _ => LinkPayload::NotIp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[0x45, 0, 0, 20];

    fn eth(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        let mut types: Vec<u16> = tags.to_vec();
        types.push(ethertype);
        v.extend_from_slice(&types[0].to_be_bytes());
        for t in &types[1..] {
            v.extend_from_slice(&[0x20, 0x01]); // PCP/DEI/VID
            v.extend_from_slice(&t.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn ethernet_plain_and_vlan_stacks() {
        assert_eq!(decode(ETHERNET, &eth(0x0800, &[], IP)), LinkPayload::Ip(IP));
        assert_eq!(
            decode(ETHERNET, &eth(0x86DD, &[0x8100], IP)),
            LinkPayload::Ip(IP)
        );
        assert_eq!(
            decode(ETHERNET, &eth(0x0800, &[0x88A8, 0x8100], IP)),
            LinkPayload::Ip(IP)
        );
        assert_eq!(
            decode(ETHERNET, &eth(0x0800, &[0x9100, 0x8100, 0x8100], IP)),
            LinkPayload::Ip(IP)
        );
        assert_eq!(decode(ETHERNET, &eth(0x0806, &[], IP)), LinkPayload::NotIp);
        assert_eq!(decode(ETHERNET, &[0u8; 10]), LinkPayload::Malformed);
        let mut cut = eth(0x0800, &[0x8100], IP);
        cut.truncate(16);
        assert_eq!(decode(ETHERNET, &cut), LinkPayload::Malformed);
        let deep = eth(0x0800, &[0x8100; 12], IP);
        assert_eq!(decode(ETHERNET, &deep), LinkPayload::Malformed);
    }

    #[test]
    fn linux_cooked() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(IP);
        assert_eq!(decode(LINUX_SLL, &sll), LinkPayload::Ip(IP));
        sll[14] = 0x08;
        sll[15] = 0x06;
        assert_eq!(decode(LINUX_SLL, &sll), LinkPayload::NotIp);
        assert_eq!(decode(LINUX_SLL, &sll[..10]), LinkPayload::Malformed);

        let mut sll2 = vec![
            0x86, 0xDD, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
        ];
        sll2.extend_from_slice(IP);
        assert_eq!(decode(LINUX_SLL2, &sll2), LinkPayload::Ip(IP));
        assert_eq!(decode(LINUX_SLL2, &sll2[..19]), LinkPayload::Malformed);
    }

    #[test]
    fn raw_and_loopback() {
        for lt in [RAW, RAW_12, RAW_14, IPV4, IPV6] {
            assert_eq!(decode(lt, IP), LinkPayload::Ip(IP));
        }
        let mut le = 2u32.to_le_bytes().to_vec();
        le.extend_from_slice(IP);
        assert_eq!(decode(NULL, &le), LinkPayload::Ip(IP));
        let mut be = 30u32.to_be_bytes().to_vec();
        be.extend_from_slice(IP);
        assert_eq!(decode(NULL, &be), LinkPayload::Ip(IP));
        assert_eq!(decode(LOOP, &be), LinkPayload::Ip(IP));
        assert_eq!(decode(LOOP, &le), LinkPayload::NotIp);
        let mut other = 7u32.to_le_bytes().to_vec();
        other.extend_from_slice(IP);
        assert_eq!(decode(NULL, &other), LinkPayload::NotIp);
        assert_eq!(decode(NULL, &[2, 0]), LinkPayload::Malformed);
        assert!(!is_supported(147));
        assert_eq!(decode(147, IP), LinkPayload::NotIp);
    }
}
