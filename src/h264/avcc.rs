//! Annex B to length-prefixed NAL units, the sample format of FLV/MP4
//! (ISO/IEC 14496-15 5.2.3, AVC sample structure, with `lengthSizeMinusOne`
//! = 3; clause numbers of the 2004/2010 editions).
//!
//! Owns which NAL units survive the rewrite: access unit delimiters (9) and
//! filler data (12) are dropped, as they mean nothing inside FLV; SPS, PPS,
//! SEI, slices and everything else are kept in order.
//!
//! Invariant: never allocates when `out` has capacity for the result, which
//! is at most the input length plus one byte per NAL unit (every start code
//! is at least 3 bytes and becomes a 4-byte length).

use super::nal::{nal_type, nal_units};

/// Appends the NAL units of an Annex B access unit to `out` as 4-byte
/// big-endian length-prefixed units. Drops AUD (9) and filler data (12);
/// keeps SPS, PPS, SEI and slices. Returns the number of bytes appended.
/// Allocation-free when `out` has capacity.
pub fn annexb_to_avcc(annexb: &[u8], out: &mut Vec<u8>) -> usize {
    let start = out.len();
    for nal in nal_units(annexb) {
        push_unit(nal, out);
    }
    out.len() - start
}

/// Appends one NAL unit (no start code) to `out` with its 4-byte length, unless it is an AUD
/// or filler data, or 4 GiB or larger (it cannot be described). Allocation-free when `out` has
/// capacity.
pub fn push_unit(nal: &[u8], out: &mut Vec<u8>) {
    if matches!(
        nal_type(nal),
        super::nal_type::AUD | super::nal_type::FILLER
    ) {
        return;
    }
    let Ok(len) = u32::try_from(nal.len()) else {
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_annexb_units_as_length_prefixed_units() {
        let table: &[(&str, &[u8], &[u8])] = &[
            ("nothing", &[], &[]),
            ("garbage only", &[0x12, 0x34], &[]),
            (
                "one slice, 4-byte start code",
                &[0, 0, 0, 1, 0x65, 0x88, 0x84],
                &[0, 0, 0, 3, 0x65, 0x88, 0x84],
            ),
            (
                "AUD dropped, slices with 3- and 4-byte start codes kept",
                &[
                    0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 0, 1, 0x65, 0x11,
                ],
                &[0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x65, 0x11],
            ),
            (
                "SPS, PPS and SEI kept, filler dropped",
                &[
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x06,
                    0x05, 0x80, 0, 0, 1, 0x0c, 0xff, 0xff, 0x80, 0, 0, 1, 0x41, 0x9a,
                ],
                &[
                    0, 0, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 2, 0x68, 0xce, 0, 0, 0, 3, 0x06,
                    0x05, 0x80, 0, 0, 0, 2, 0x41, 0x9a,
                ],
            ),
            (
                "trailing zeros and emulation prevention",
                &[0, 0, 1, 0x41, 0, 0, 3, 1, 0x80, 0, 0, 0, 0],
                &[0, 0, 0, 6, 0x41, 0, 0, 3, 1, 0x80],
            ),
            (
                "end of sequence and end of stream kept",
                &[0, 0, 1, 0x0a, 0, 0, 1, 0x0b],
                &[0, 0, 0, 1, 0x0a, 0, 0, 0, 1, 0x0b],
            ),
        ];
        for (what, input, expected) in table {
            let mut out = vec![0xee];
            let n = annexb_to_avcc(input, &mut out);
            assert_eq!(out[1..], **expected, "{what}");
            assert_eq!(n, expected.len(), "{what}");
        }
    }

    #[test]
    fn does_not_allocate_when_out_has_capacity() {
        let input = [
            0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x65, 0x11, 0, 0, 1, 0x65, 0x22,
        ];
        let mut out = Vec::with_capacity(input.len() + 3);
        let before = out.as_ptr();
        annexb_to_avcc(&input, &mut out);
        assert_eq!(out.as_ptr(), before);
        assert_eq!(out.len(), 18);
    }
}
