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
//!
//! Two ways: into another buffer ([`annexb_to_avcc`], [`push_unit`]), or inside
//! the access unit's own buffer ([`InPlace`]), which costs no copy when every
//! start code has room for the 4-byte length (4-byte start codes, as the Pi's
//! encoder and x264 write them before the units that start a picture; a
//! dropped AUD or a longer run of zeros makes room too). Where a 3-byte start
//! code leaves no room, the caller finishes the unit through the other way.

use std::ops::Range;

use super::nal::{find_start_code, nal_type, nal_units, trim_trailing_zeros};

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
    if !kept(nal) {
        return;
    }
    let Ok(len) = u32::try_from(nal.len()) else {
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
}

/// Whether a unit survives the rewrite (AUD and filler data do not).
fn kept(nal: &[u8]) -> bool {
    !matches!(
        nal_type(nal),
        super::nal_type::AUD | super::nal_type::FILLER
    )
}

/// Rewrites an Annex B access unit into length-prefixed units inside its own buffer.
///
/// The buffer holds `front` bytes of room (for the caller's header), then the Annex B bytes.
/// [`next_unit`](Self::next_unit) finds each unit (the same units as [`nal_units`]), still where
/// it was; [`place`](Self::place) writes its length and moves it down to the write position
/// (nothing moves when the start codes are 4 bytes: the length overwrites the start code).
/// Every write lands before the end of the unit being placed, and the next unit is found before
/// any write, so the scan only ever reads bytes as they arrived. At the end the units fill
/// `front..written()`.
///
/// Where the units begin is searched for ([`new`](Self::new)), or taken from the splitter that
/// already found them ([`with_starts`](Self::with_starts)): then the bytes are not searched again.
#[derive(Debug, Clone)]
pub struct InPlace<'s> {
    /// Where the next unit's header byte is (just after its start code).
    next: Option<usize>,
    write: usize,
    /// The header positions still to come (relative to `front`), when known.
    known: Option<std::slice::Iter<'s, u32>>,
    front: usize,
}

impl InPlace<'static> {
    pub fn new(buf: &[u8], front: usize) -> InPlace<'static> {
        InPlace {
            next: find_start_code(buf, front),
            write: front,
            known: None,
            front,
        }
    }
}

impl<'s> InPlace<'s> {
    /// Like [`new`](InPlace::new), for a unit whose NAL header positions, relative to `front`,
    /// are `starts` ([`AccessUnitSplitter::unit_starts`](super::AccessUnitSplitter::unit_starts)
    /// of the bytes after `front`).
    pub fn with_starts(starts: &'s [u32], front: usize) -> InPlace<'s> {
        let mut known = starts.iter();
        InPlace {
            next: known.next().map(|&p| front + p as usize),
            write: front,
            known: Some(known),
            front,
        }
    }

    /// The next unit's place in `buf`, not yet moved; `None` at the end.
    pub fn next_unit(&mut self, buf: &[u8]) -> Option<Range<usize>> {
        loop {
            let start = self.next?;
            let following = match &mut self.known {
                Some(known) => known.next().map(|&p| self.front + p as usize),
                None => find_start_code(buf, start),
            };
            let raw_end = following.map_or(buf.len(), |p| p.saturating_sub(3));
            self.next = following;
            let unit = buf.get(start..raw_end).unwrap_or_default();
            let end = start + trim_trailing_zeros(unit).len();
            if end > start {
                return Some(start..end);
            }
        }
    }

    /// Writes `unit`'s length and moves it down to the write position (or drops it, for an AUD
    /// or filler data). `false`, with nothing written, when the start code before it leaves no
    /// room for the 4-byte length: the caller goes on through [`push_unit`].
    pub fn place(&mut self, buf: &mut [u8], unit: Range<usize>) -> bool {
        let Some(nal) = buf.get(unit.clone()) else {
            return false;
        };
        if !kept(nal) {
            return true;
        }
        let (Ok(len), true) = (u32::try_from(nal.len()), self.write + 4 <= unit.start) else {
            return false;
        };
        let to = self.write + 4;
        if to != unit.start {
            buf.copy_within(unit.clone(), to);
        }
        if let Some(prefix) = buf.get_mut(self.write..to) {
            prefix.copy_from_slice(&len.to_be_bytes());
        }
        self.write = to + unit.len();
        true
    }

    /// The end of what has been placed: the units fill `front..written()`.
    pub fn written(&self) -> usize {
        self.write
    }
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

    /// Converts in place after 5 bytes of room, finishing through `push_unit` where a start
    /// code is too short, as the ingest stage does. Returns the units and whether all of them
    /// were placed in place.
    fn in_place(annexb: &[u8]) -> (Vec<u8>, bool) {
        in_place_from(annexb, None)
    }

    /// Where the units of `annexb` begin, found by searching.
    fn starts_of(annexb: &[u8]) -> Vec<u32> {
        std::iter::successors(find_start_code(annexb, 0), |&p| find_start_code(annexb, p))
            .map(|p| p as u32)
            .collect()
    }

    /// [`InPlace`] searching for the units (`starts` `None`), or told where they begin.
    fn in_place_from(annexb: &[u8], starts: Option<&[u32]>) -> (Vec<u8>, bool) {
        let mut buf = vec![0xaa; 5];
        buf.extend_from_slice(annexb);
        let mut conv = match starts {
            Some(s) => InPlace::with_starts(s, 5),
            None => InPlace::new(&buf, 5),
        };
        while let Some(unit) = conv.next_unit(&buf) {
            if !conv.place(&mut buf, unit.clone()) {
                let mut out = buf[5..conv.written()].to_vec();
                push_unit(&buf[unit], &mut out);
                while let Some(rest) = conv.next_unit(&buf) {
                    push_unit(&buf[rest], &mut out);
                }
                return (out, false);
            }
        }
        assert_eq!(buf[..5], [0xaa; 5], "the front room is the caller's");
        (buf[5..conv.written()].to_vec(), true)
    }

    #[test]
    fn in_place_gives_the_same_units_as_the_copy_and_needs_no_copy_with_4_byte_start_codes() {
        let cases: &[(&[u8], bool)] = &[
            (&[0, 0, 0, 1, 0x65, 0x88, 0x84], true),
            // The AUD dropped leaves room for the 3-byte start code after it.
            (
                &[
                    0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x65, 0x88, 0x84, 0, 0, 0, 1, 0x65, 0x11,
                ],
                true,
            ),
            // A 3-byte start code with no room before it: finished by copying.
            (
                &[
                    0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x06,
                    0x05, 0x80, 0, 0, 1, 0x0c, 0xff, 0xff, 0x80, 0, 0, 1, 0x41, 0x9a,
                ],
                false,
            ),
            (&[0, 0, 1, 0x41, 0, 0, 3, 1, 0x80, 0, 0, 0, 0], false),
            // Garbage and a long run of zeros before the first start code.
            (
                &[
                    7, 7, 0, 0, 0, 0, 0, 1, 0x41, 0x80, 0, 0, 0, 0, 1, 0x41, 0x81,
                ],
                true,
            ),
            (&[], true),
            (&[0x12, 0x34], true),
        ];
        for (input, all_in_place) in cases {
            let mut copied = Vec::new();
            annexb_to_avcc(input, &mut copied);
            assert_eq!(in_place(input), (copied, *all_in_place), "{input:02x?}");
        }
    }

    #[test]
    fn in_place_matches_the_copy_on_arbitrary_streams() {
        // Units of random length and content (no 00 00 0x inside, none ending in 0) behind 3-
        // or 4-byte start codes, zero runs, AUDs and filler: a deterministic generator.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let mut input = Vec::new();
            for _ in 0..1 + next(6) {
                input.extend(std::iter::repeat_n(0u8, 2 + next(3) as usize));
                input.push(1);
                input.push([0x65, 0x41, 0x06, 0x09, 0x0c, 0x67][next(6) as usize]);
                for _ in 0..next(20) {
                    input.push(1 + next(255) as u8);
                }
            }
            let mut copied = Vec::new();
            annexb_to_avcc(&input, &mut copied);
            assert_eq!(in_place(&input).0, copied, "{input:02x?}");
            let told = in_place_from(&input, Some(&starts_of(&input)));
            assert_eq!(told.0, copied, "told where units begin: {input:02x?}");
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
