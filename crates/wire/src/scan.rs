//! Byte scans shared by the parser: a word-at-a-time search for one byte
//! (no `unsafe`, no dependency), used where a value or a header line is
//! searched for a separator or a line end.

/// `0x01` in every byte of a word.
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte of a word.
const HI: u64 = 0x8080_8080_8080_8080;

/// Position of the first byte `needle` in `hay`, or `None`: what
/// `hay.iter().position(|&b| b == needle)` returns, eight bytes at a time.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(needle));
    let mut base = 0;
    let mut chunks = hay.chunks_exact(8);
    for c in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(c) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ rep;
        // a zero byte of `x` (a match) sets its high bit here; a borrow can
        // only mark bytes above the first match, so the lowest flag is exact
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    hay.get(base..)?
        .iter()
        .position(|&b| b == needle)
        .map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::find_byte;

    #[test]
    fn find_byte_edges() {
        assert_eq!(find_byte(b'\n', b""), None);
        assert_eq!(find_byte(b'\n', b"\n"), Some(0));
        assert_eq!(find_byte(b'\n', b"0123456\n"), Some(7));
        assert_eq!(find_byte(b'\n', b"01234567\n"), Some(8));
        assert_eq!(find_byte(0x80, b"\x7f\x81\x80"), Some(2));
        assert_eq!(find_byte(0, b"abcdefgh\x01\x00"), Some(9));
        assert_eq!(
            find_byte(b'a', b"\x00\x00\x00\x00\x00\x00\x00\x00a"),
            Some(8)
        );
        assert_eq!(find_byte(0xff, &[0xfe; 40]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Same answer as a plain byte scan, for any bytes and any needle.
        #[test]
        fn find_byte_is_position(
            hay in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1u8), Just(b'\n'), Just(0x80u8), Just(0xffu8), any::<u8>()],
                0..70,
            ),
            needle in prop_oneof![Just(0u8), Just(1u8), Just(b'\n'), Just(0x80u8), Just(0xffu8), any::<u8>()],
        ) {
            prop_assert_eq!(find_byte(needle, &hay), hay.iter().position(|&b| b == needle));
        }
    }
}
