//! Byte scans shared by the parser: the search for one byte (the `memchr`
//! crate: SIMD where the CPU has it, a word at a time otherwise), used
//! where a value or a header line is searched for a separator or a line end.

/// Position of the first byte `needle` in `hay`, or `None`: what
/// `hay.iter().position(|&b| b == needle)` returns.
#[inline]
pub(crate) fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
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
