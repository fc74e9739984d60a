//! NAL units in an Annex B byte stream (ITU-T H.264 Annex B.1 and 7.3.1).
//!
//! Owns start-code detection for the whole `h264` module. A start code is the
//! three bytes `00 00 01`; a zero byte in front of it (the `zero_byte` of a
//! 4-byte start code) and any `trailing_zero_8bits` belong to no NAL unit.
//! Inside a NAL unit `00 00 0x` (x <= 2) cannot occur (emulation prevention,
//! 7.4.1) and its last byte is never zero, so a unit ends exactly at the zero
//! bytes in front of the next start code.
//!
//! Invariant: every function here accepts any input and never allocates.

/// NAL unit types (ITU-T H.264 Table 7-1).
pub mod nal_type {
    pub const UNSPECIFIED: u8 = 0;
    pub const NON_IDR: u8 = 1;
    pub const PARTITION_A: u8 = 2;
    pub const PARTITION_B: u8 = 3;
    pub const PARTITION_C: u8 = 4;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
    pub const END_OF_SEQUENCE: u8 = 10;
    pub const END_OF_STREAM: u8 = 11;
    pub const FILLER: u8 = 12;
    pub const SPS_EXTENSION: u8 = 13;
    pub const PREFIX: u8 = 14;
    pub const SUBSET_SPS: u8 = 15;
    pub const DEPTH_PPS: u8 = 16;
    pub const AUXILIARY_SLICE: u8 = 19;
    pub const SLICE_EXTENSION: u8 = 20;
    pub const DEPTH_SLICE_EXTENSION: u8 = 21;

    /// Whether a NAL unit type is a VCL NAL unit of the primary coded
    /// picture (types 1 to 5).
    pub const fn is_vcl(t: u8) -> bool {
        matches!(t, NON_IDR..=IDR)
    }
}

/// The NAL unit type (low 5 bits of the first byte), 0 for an empty unit.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Index of the first byte after the first `00 00 01` that ends at or after
/// `from`, i.e. the position of the NAL header byte it introduces. The two
/// zero bytes may lie before `from`, so a caller that resumes a search at
/// the end of the previous one never misses a start code split across the
/// boundary and never examines a byte twice.
///
/// Where memchr has a SIMD substring search (x86_64, aarch64), a search for the whole pattern:
/// it looks for two of its bytes at their distance at once and so stops only at start codes and
/// the rare places that look like one, where a search for the `01` byte stops about every 256
/// bytes of coded slice data (that was the largest user-space cost of an unpaced push).
/// Elsewhere (32-bit ARM) the substring search is a scalar one whose stops cost more than a
/// look back, so the `01` byte is searched for and the two zeros checked before it.
pub(crate) fn find_start_code(buf: &[u8], from: usize) -> Option<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return find_pattern(buf, from);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return find_one_then_look_back(buf, from);
}

/// [`find_start_code`] by memchr's substring search for `00 00 01` (its searcher made once).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", test))]
fn find_pattern(buf: &[u8], from: usize) -> Option<usize> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    let finder = FINDER.get_or_init(|| memchr::memmem::Finder::new(&[0, 0, 1]));
    let start = from.saturating_sub(2);
    let at = finder.find(buf.get(start..)?)?;
    Some(start + at + 3)
}

/// [`find_start_code`] by a search for the `01` byte and a look at the two bytes before it.
#[cfg(any(not(any(target_arch = "x86_64", target_arch = "aarch64")), test))]
fn find_one_then_look_back(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let one = i + memchr::memchr(1, buf.get(i..)?)?;
        if one >= 2 && buf.get(one - 2..one) == Some(&[0, 0]) {
            return Some(one + 1);
        }
        i = one + 1;
    }
}

/// Where the start code that ends just before `payload` begins, counting the
/// `zero_byte` of a 4-byte start code as part of it.
pub(crate) fn start_code_begin(buf: &[u8], payload: usize) -> usize {
    let three = payload.saturating_sub(3);
    match three.checked_sub(1) {
        Some(z) if buf.get(z) == Some(&0) => z,
        _ => three,
    }
}

/// `bytes` without its trailing zero bytes.
pub(crate) fn trim_trailing_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes.get(..end).unwrap_or_default()
}

/// Iterates the NAL units of an Annex B buffer: each item is the unit's bytes
/// WITHOUT the start code and without trailing zero bytes (trailing_zero_8bits
/// or the leading zero of a following 4-byte start code). Accepts 3- and
/// 4-byte start codes; leading garbage before the first start code and empty
/// units are skipped.
pub fn nal_units(annexb: &[u8]) -> NalUnits<'_> {
    let rest = find_start_code(annexb, 0)
        .and_then(|p| annexb.get(p..))
        .unwrap_or_default();
    NalUnits { rest }
}

/// Iterator returned by [`nal_units`].
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    /// Input after the start code of the next unit to return.
    rest: &'a [u8],
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (unit, rest) = match find_start_code(self.rest, 0) {
                Some(p) => (self.rest.get(..p.saturating_sub(3)), self.rest.get(p..)),
                None => (Some(self.rest), None),
            };
            self.rest = rest.unwrap_or_default();
            let unit = trim_trailing_zeros(unit.unwrap_or_default());
            if !unit.is_empty() {
                return Some(unit);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(input: &[u8]) -> Vec<Vec<u8>> {
        nal_units(input).map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn splits_annexb_buffers_into_nal_units() {
        // (what, input, expected units)
        type Case<'a> = (&'a str, &'a [u8], &'a [&'a [u8]]);
        let table: &[Case] = &[
            ("nothing", &[], &[]),
            ("no start code", &[0x67, 0x42, 0x00], &[]),
            ("only a start code", &[0, 0, 1], &[]),
            (
                "one unit, 3-byte start code",
                &[0, 0, 1, 0x09, 0xf0],
                &[&[0x09, 0xf0]],
            ),
            (
                "one unit, 4-byte start code",
                &[0, 0, 0, 1, 0x09, 0xf0],
                &[&[0x09, 0xf0]],
            ),
            (
                "two units, 3-byte start codes",
                &[0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce],
                &[&[0x67, 0x42], &[0x68, 0xce]],
            ),
            (
                "two units, 4-byte start codes",
                &[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce],
                &[&[0x67, 0x42], &[0x68, 0xce]],
            ),
            (
                "mixed start codes",
                &[
                    0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88, 0, 0, 0, 1, 0x41, 0x9a,
                ],
                &[&[0x09, 0xf0], &[0x65, 0x88], &[0x41, 0x9a]],
            ),
            (
                "trailing zero bytes are dropped",
                &[
                    0, 0, 1, 0x65, 0x88, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x41, 0x9a, 0, 0,
                ],
                &[&[0x65, 0x88, 0x80], &[0x41, 0x9a]],
            ),
            (
                "leading garbage is skipped",
                &[0xde, 0xad, 0x01, 0x00, 0x01, 0, 0, 1, 0x09, 0xf0],
                &[&[0x09, 0xf0]],
            ),
            (
                "empty units are skipped",
                &[0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1],
                &[&[0x09, 0xf0]],
            ),
            (
                "emulation prevention bytes stay in place",
                &[0, 0, 1, 0x65, 0, 0, 3, 1, 0x80],
                &[&[0x65, 0, 0, 3, 1, 0x80]],
            ),
            ("a one-byte unit", &[0, 0, 1, 0x0b], &[&[0x0b]]),
            (
                "a start code at the very end",
                &[0, 0, 1, 0x0b, 0, 0, 1],
                &[&[0x0b]],
            ),
        ];
        for (what, input, expected) in table {
            let expected: Vec<Vec<u8>> = expected.iter().map(|u| u.to_vec()).collect();
            assert_eq!(units(input), expected, "{what}");
        }
    }

    #[test]
    fn reads_the_type_from_the_low_five_bits() {
        let table: &[(&[u8], u8)] = &[
            (&[], 0),
            (&[0x67, 0x42], nal_type::SPS),
            (&[0x68], nal_type::PPS),
            (&[0x65], nal_type::IDR),
            (&[0x41], nal_type::NON_IDR),
            (&[0x01], nal_type::NON_IDR),
            (&[0x09], nal_type::AUD),
            (&[0x06], nal_type::SEI),
            (&[0x0c], nal_type::FILLER),
            (&[0xff], 31),
        ];
        for (nal, t) in table {
            assert_eq!(nal_type(nal), *t, "{nal:02x?}");
        }
    }

    #[test]
    fn finds_a_start_code_whose_zeros_precede_the_search_position() {
        let buf = [0xaa, 0, 0, 1, 0x09];
        assert_eq!(find_start_code(&buf, 3), Some(4));
        assert_eq!(find_start_code(&buf, 4), None);
        assert_eq!(find_start_code(&buf, 99), None);
    }

    #[test]
    fn finds_what_a_byte_by_byte_search_finds_from_every_position() {
        // Bytes rich in zeros and ones (start codes of 3 and 4 bytes, runs of zeros, `00 01`
        // without its second zero), across the searcher's 16- and 32-byte blocks.
        let mut x = 0x2545_f491_u32;
        let buf: Vec<u8> = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                match x % 8 {
                    0..=2 => 0,
                    3 => 1,
                    _ => (x >> 8) as u8,
                }
            })
            .collect();
        let by_bytes = |from: usize| {
            (from.max(2)..buf.len())
                .find(|&i| buf[i - 2..=i] == [0, 0, 1])
                .map(|i| i + 1)
        };
        assert!(by_bytes(0).is_some());
        for from in 0..buf.len() + 3 {
            let expected = by_bytes(from);
            assert_eq!(find_start_code(&buf, from), expected, "from {from}");
            assert_eq!(find_pattern(&buf, from), expected, "pattern, from {from}");
            let looked_back = find_one_then_look_back(&buf, from);
            assert_eq!(looked_back, expected, "look back, from {from}");
        }
    }

    #[test]
    fn counts_the_zero_byte_of_a_four_byte_start_code_as_start_code() {
        assert_eq!(start_code_begin(&[0xaa, 0, 0, 0, 1, 0x09], 5), 1);
        assert_eq!(start_code_begin(&[0xaa, 0x80, 0, 0, 1, 0x09], 5), 2);
        assert_eq!(start_code_begin(&[0, 0, 1, 0x09], 3), 0);
        assert_eq!(start_code_begin(&[], 0), 0);
    }

    #[test]
    fn survives_random_bytes() {
        let mut rng = crate::h264::test_support::XorShift(0x1234_5678);
        for _ in 0..2000 {
            let len = rng.below(64) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| [0, 0, 1, rng.byte()][rng.below(4) as usize])
                .collect();
            for unit in nal_units(&buf) {
                assert!(!unit.is_empty());
                assert_ne!(unit.last(), Some(&0));
            }
        }
    }
}
