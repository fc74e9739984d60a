//! Streaming access-unit splitter for an Annex B byte stream, sans IO.
//!
//! Owns the decision where one access unit ends and the next begins
//! (ITU-T H.264 7.4.1.2.3): once the current unit holds a VCL NAL unit, the
//! next access unit starts at the first access unit delimiter (9), SPS (7),
//! PPS (8), SEI (6), NAL unit of type 14 to 18, or first VCL NAL unit of a new
//! primary coded picture. A slice (types 1, 2, 5) starts a new picture
//! (7.4.1.2.4) when its `first_mb_in_slice` is 0, or when its IDR-ness, the
//! zero-ness of its `nal_ref_idc` or its `pic_parameter_set_id` differs from
//! the previous slice; `frame_num` and `idr_pic_id` need the SPS to locate and
//! are not compared. Data partitions B and C (3, 4) never start a picture.
//! Everything else (end of sequence/stream, filler, SPS extension, ...) stays
//! in the current unit.
//!
//! Invariants:
//! * positions kept between calls are relative to the front of the caller's
//!   buffer, which only grows at the back until the caller drops exactly the
//!   prefix reported by `AccessUnit(n)` or `Skip(n)`;
//! * the start-code search resumes where it stopped, so every byte is searched
//!   once; only the first few bytes of a slice header that straddles the end
//!   of the buffer are read again on the next call;
//! * an access unit begins at the start code of its first NAL unit, including
//!   the `zero_byte` of a 4-byte start code; other zero bytes between units
//!   stay with the unit before them;
//! * no allocation, no panic, whatever the input.

use super::nal::{find_start_code, start_code_begin};

/// What the caller should do with the front of its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `buf[..n]` is one complete access unit in Annex B form.
    AccessUnit(usize),
    /// `buf[..n]` is garbage (or, at end of input, NAL units without a
    /// picture) to drop.
    Skip(usize),
    /// Read more input first.
    NeedMore,
}

/// The slice header fields that tell pictures apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SliceKey {
    idr: bool,
    reference: bool,
    /// `None` when the header could not be read.
    pps_id: Option<u32>,
}

/// What one NAL unit means for the access unit being assembled.
enum Verdict {
    /// The unit belongs to the current access unit.
    Belongs,
    /// The unit starts the next access unit.
    StartsNext,
    /// The unit's first bytes have not arrived yet.
    NeedMore,
}

/// The most NAL units of one access unit whose positions [`AccessUnitSplitter::unit_starts`]
/// reports (more: `None`, and the caller searches the unit itself).
pub const MAX_UNIT_STARTS: usize = 64;

/// Where the NAL units of an access unit begin, as the splitter found them.
#[derive(Debug, Default)]
struct Starts {
    /// The NAL header positions, relative to the front of the caller's buffer.
    at: heapless::Vec<u32, MAX_UNIT_STARTS>,
    /// More units than `at` holds (or a position beyond `u32`).
    overflow: bool,
}

impl Starts {
    fn push(&mut self, p: usize) {
        let fits = u32::try_from(p).is_ok_and(|p| self.at.push(p).is_ok());
        self.overflow |= !fits;
    }
}

/// Incremental splitter; see the module documentation.
#[derive(Debug, Default)]
pub struct AccessUnitSplitter {
    /// Whether the front of the buffer is a start code (true) or garbage
    /// still being skipped (false).
    in_unit: bool,
    /// Where the start-code search resumes.
    pos: usize,
    /// NAL header position of a start code found but not yet classified.
    pending: Option<usize>,
    /// Whether the current access unit holds a VCL NAL unit.
    has_vcl: bool,
    /// The latest slice of the current access unit.
    last_slice: Option<SliceKey>,
    /// The NAL units of the current access unit, as they were found.
    starts: Starts,
    /// Those of the access unit last reported by `AccessUnit(n)`.
    done: Starts,
}

impl AccessUnitSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `buf` is the caller's unconsumed input; its front is the first byte of
    /// the current access unit (or garbage), and it only grows at the back
    /// between calls until the caller drops a prefix after `AccessUnit(n)` /
    /// `Skip(n)`.
    ///
    /// `AccessUnit(n)`: `buf[..n]` is one complete access unit in Annex B
    /// form (its start codes included). `Skip(n)`: `buf[..n]` is garbage (no
    /// start code) to drop; count it. `NeedMore`: read more input first.
    ///
    /// With `eof == true`, the remaining input is returned as the final
    /// access unit if it contains a VCL NAL unit (a partial unit at end of
    /// input), else skipped; then `NeedMore` with an empty `buf`.
    pub fn next(&mut self, buf: &[u8], eof: bool) -> Split {
        if self.pos > buf.len() || self.pending.is_some_and(|p| p > buf.len()) {
            // The caller broke the contract (dropped or replaced bytes);
            // start over rather than index out of bounds.
            *self = Self::new();
        }
        loop {
            if let Some(p) = self.pending {
                if !self.in_unit {
                    self.in_unit = true;
                    let garbage = start_code_begin(buf, p);
                    if garbage > 0 {
                        self.pending = Some(p - garbage);
                        self.pos = self.pos.saturating_sub(garbage);
                        return Split::Skip(garbage);
                    }
                }
                match self.classify(buf, p, eof) {
                    Verdict::NeedMore => return Split::NeedMore,
                    Verdict::StartsNext => {
                        // Never 0: a VCL NAL unit lies before this one.
                        let end = start_code_begin(buf, p);
                        *self = Self {
                            in_unit: true,
                            pos: p - end,
                            pending: Some(p - end),
                            done: std::mem::take(&mut self.starts),
                            ..Self::new()
                        };
                        return Split::AccessUnit(end);
                    }
                    Verdict::Belongs => {
                        self.starts.push(p);
                        self.pending = None;
                        self.pos = p.saturating_add(1);
                    }
                }
            }
            match find_start_code(buf, self.pos) {
                Some(p) => self.pending = Some(p),
                None => {
                    self.pos = buf.len();
                    break;
                }
            }
        }
        self.no_more_start_codes(buf, eof)
    }

    /// Right after `AccessUnit(n)`: where each NAL unit of `buf[..n]` begins (the position of
    /// its header byte, just after its start code), in order: the units [`nal_units`] would find
    /// in it, so a caller can rewrite them without searching the bytes again. `None` when the
    /// unit had more than [`MAX_UNIT_STARTS`] NAL units.
    ///
    /// [`nal_units`]: super::nal::nal_units
    pub fn unit_starts(&self) -> Option<&[u32]> {
        (!self.done.overflow).then_some(self.done.at.as_slice())
    }

    /// The decision once `buf` holds no unexamined start code.
    fn no_more_start_codes(&mut self, buf: &[u8], eof: bool) -> Split {
        if eof {
            let has_vcl = self.has_vcl;
            *self = Self {
                done: std::mem::take(&mut self.starts),
                ..Self::new()
            };
            return match buf.len() {
                0 => Split::NeedMore,
                n if has_vcl => Split::AccessUnit(n),
                n => Split::Skip(n),
            };
        }
        if self.in_unit {
            return Split::NeedMore;
        }
        // Garbage: keep up to three trailing zeros, which may be the
        // beginning of a 4-byte start code.
        let zeros = buf.iter().rev().take(3).take_while(|&&b| b == 0).count();
        match buf.len() - zeros {
            0 => Split::NeedMore,
            n => {
                self.pos = zeros;
                Split::Skip(n)
            }
        }
    }

    /// Decides what the NAL unit whose header byte is at `buf[p]` means for
    /// the current access unit, and records it when it belongs.
    fn classify(&mut self, buf: &[u8], p: usize, eof: bool) -> Verdict {
        let Some(&header) = buf.get(p) else {
            // An empty unit at the end of input belongs nowhere in particular.
            return if eof {
                Verdict::Belongs
            } else {
                Verdict::NeedMore
            };
        };
        let t = header & 0x1f;
        match t {
            1 | 2 | 5 => {
                let first_mb_and_pps =
                    match read_slice_start(buf.get(p + 1..).unwrap_or_default(), eof) {
                        SliceStart::Incomplete => return Verdict::NeedMore,
                        SliceStart::Malformed => None,
                        SliceStart::Fields { first_mb, pps_id } => Some((first_mb, pps_id)),
                    };
                let key = SliceKey {
                    idr: t == 5,
                    reference: header & 0x60 != 0,
                    pps_id: first_mb_and_pps.map(|(_, pps)| pps),
                };
                if self.has_vcl {
                    let first_mb_is_zero = first_mb_and_pps.is_some_and(|(mb, _)| mb == 0);
                    let differs = self.last_slice.is_some_and(|last| {
                        key.idr != last.idr
                            || key.reference != last.reference
                            || matches!((key.pps_id, last.pps_id), (Some(a), Some(b)) if a != b)
                    });
                    if first_mb_is_zero || differs {
                        return Verdict::StartsNext;
                    }
                }
                self.has_vcl = true;
                self.last_slice = Some(key);
                Verdict::Belongs
            }
            3 | 4 => {
                self.has_vcl = true;
                Verdict::Belongs
            }
            6..=9 | 14..=18 if self.has_vcl => Verdict::StartsNext,
            _ => Verdict::Belongs,
        }
    }
}

/// The result of reading the start of a slice header.
#[derive(Debug, PartialEq, Eq)]
enum SliceStart {
    Fields {
        first_mb: u32,
        pps_id: u32,
    },
    /// The buffer ends before the fields do; more input may complete them.
    Incomplete,
    /// The NAL unit ends before the fields do, or they are out of range.
    Malformed,
}

/// The most RBSP bytes the three leading slice header fields can take:
/// three Exp-Golomb codes of at most 63 bits each.
const SLICE_START_BYTES: usize = 24;

/// Reads `first_mb_in_slice`, `slice_type` and `pic_parameter_set_id`
/// (7.3.3) from the bytes after a slice's NAL header byte, removing
/// emulation prevention bytes (7.4.1). `payload` may extend past the end of
/// the NAL unit; reading stops at the next start code.
fn read_slice_start(payload: &[u8], eof: bool) -> SliceStart {
    let (rbsp, complete) = rbsp_prefix(payload);
    let mut bits = BitCursor::new(&rbsp);
    let mut fields = [0u32; 3];
    for field in &mut fields {
        match bits.ue() {
            Some(v) => *field = v,
            None if bits.exhausted && !complete && !eof => return SliceStart::Incomplete,
            None => return SliceStart::Malformed,
        }
    }
    let [first_mb, slice_type, pps_id] = fields;
    if slice_type > 9 || pps_id > 255 {
        return SliceStart::Malformed;
    }
    SliceStart::Fields { first_mb, pps_id }
}

/// Copies up to [`SLICE_START_BYTES`] RBSP bytes from the start of a NAL
/// unit payload, dropping emulation prevention bytes. Returns the bytes and
/// whether they are all there is to read from this unit (the unit ended or
/// the array is full); zero bytes at the end of `payload` are held back
/// because they may turn out to be the beginning of a start code.
fn rbsp_prefix(payload: &[u8]) -> (heapless::Vec<u8, SLICE_START_BYTES>, bool) {
    let mut out = heapless::Vec::new();
    let mut zeros = 0usize;
    for &b in payload {
        if zeros >= 2 && b < 3 {
            // 00 00 00, 00 00 01 (and the forbidden 00 00 02) end the unit.
            return (out, true);
        }
        if b == 0 {
            zeros += 1;
            continue;
        }
        // Emit the zeros held back so far: they were data. After two zeros
        // a 03 is an emulation prevention byte, not data.
        for _ in 0..zeros {
            if out.push(0).is_err() {
                return (out, true);
            }
        }
        let is_epb = zeros >= 2 && b == 3;
        zeros = 0;
        if !is_epb && out.push(b).is_err() {
            return (out, true);
        }
    }
    (out, false)
}

/// Drives a splitter over a whole input the way a reader does: feeds it in pieces of the sizes
/// `chunk` returns and drops what it reports. Returns the access units and the number of bytes
/// skipped, or how the splitter broke its contract (a length outside the buffer, bytes left at
/// the end, no progress). For tests, fuzzing and tools: it allocates per unit.
pub fn split_whole(
    input: &[u8],
    mut chunk: impl FnMut() -> usize,
) -> Result<(Vec<Vec<u8>>, usize), String> {
    let mut splitter = AccessUnitSplitter::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut units = Vec::new();
    let mut skipped = 0;
    // Each step consumes input or output, or asks for more: bounded by the input length.
    for _ in 0..4 * input.len() + 8 {
        let eof = fed == input.len();
        match splitter.next(&buf, eof) {
            Split::AccessUnit(n) | Split::Skip(n) if n == 0 || n > buf.len() => {
                return Err(format!("reported {n} bytes of {}", buf.len()));
            }
            Split::AccessUnit(n) => units.push(buf.drain(..n).collect()),
            Split::Skip(n) => {
                skipped += n;
                buf.drain(..n);
            }
            Split::NeedMore if eof => {
                return match buf.len() {
                    0 => Ok((units, skipped)),
                    left => Err(format!("{left} bytes left at end of input")),
                };
            }
            Split::NeedMore => {
                let k = chunk().clamp(1, input.len() - fed);
                buf.extend_from_slice(input.get(fed..fed + k).unwrap_or_default());
                fed += k;
            }
        }
    }
    Err("the splitter made no progress".to_string())
}

/// Reads bits most significant first; `None` past the end.
struct BitCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// A read failed because the bytes ran out.
    exhausted: bool,
}

impl<'a> BitCursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            exhausted: false,
        }
    }

    fn bit(&mut self) -> Option<bool> {
        let Some(byte) = self.bytes.get(self.pos / 8) else {
            self.exhausted = true;
            return None;
        };
        let bit = byte & (0x80 >> (self.pos % 8)) != 0;
        self.pos += 1;
        Some(bit)
    }

    /// An unsigned Exp-Golomb code (9.1); `None` past the end or when the
    /// value does not fit 32 bits.
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut rest = 0u64;
        for _ in 0..zeros {
            rest = (rest << 1) | u64::from(self.bit()?);
        }
        u32::try_from((1u64 << zeros) - 1 + rest).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::nal::find_start_code;
    use crate::h264::test_support::{annexb, nal, run_splitter, slice, BitWriter, XorShift};

    const AUD: &[u8] = &[0x09, 0xf0];
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    const SEI: &[u8] = &[0x06, 0x05, 0x01, 0xaa, 0x80];
    const END_OF_SEQUENCE: &[u8] = &[0x0a];
    const END_OF_STREAM: &[u8] = &[0x0b];
    const IDR: u8 = 0x65;
    const P: u8 = 0x41;
    const NON_REF: u8 = 0x01;

    fn whole(input: &[u8]) -> (Vec<Vec<u8>>, usize) {
        run_splitter(input, || usize::MAX)
    }

    fn byte_by_byte(input: &[u8]) -> (Vec<Vec<u8>>, usize) {
        run_splitter(input, || 1)
    }

    /// Splits whole and byte by byte, checks both agree and lose nothing,
    /// and returns the access units.
    fn split(input: &[u8]) -> Vec<Vec<u8>> {
        let (units, skipped) = whole(input);
        assert_eq!(
            byte_by_byte(input),
            (units.clone(), skipped),
            "whole vs byte by byte"
        );
        assert_eq!(units.concat().len() + skipped, input.len());
        units
    }

    fn joined(aus: &[&[&[u8]]]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let expected: Vec<Vec<u8>> = aus.iter().map(|au| annexb(au)).collect();
        (expected.concat(), expected)
    }

    #[test]
    fn splits_two_pictures_with_three_byte_start_codes() {
        let i = slice(IDR, 0, 0);
        let p = slice(P, 0, 0);
        let mut input = Vec::new();
        for u in [SPS, PPS, &i, &p] {
            input.extend_from_slice(&[0, 0, 1]);
            input.extend_from_slice(u);
        }
        let first = 3 + SPS.len() + 3 + PPS.len() + 3 + i.len();
        assert_eq!(
            split(&input),
            [input[..first].to_vec(), input[first..].to_vec()]
        );
    }

    #[test]
    fn splits_two_pictures_with_four_byte_start_codes() {
        let (input, expected) = joined(&[&[SPS, PPS, &slice(IDR, 0, 0)], &[&slice(P, 0, 0)]]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn keeps_four_slices_and_an_aud_per_picture_together() {
        let idr: Vec<Vec<u8>> = (0..4).map(|k| slice(IDR, k * 900, 0)).collect();
        let p: Vec<Vec<u8>> = (0..4).map(|k| slice(P, k * 900, 0)).collect();
        let (input, expected) = joined(&[
            &[AUD, SPS, PPS, &idr[0], &idr[1], &idr[2], &idr[3]],
            &[AUD, &p[0], &p[1], &p[2], &p[3]],
            &[AUD, &p[0], &p[1], &p[2], &p[3]],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn keeps_four_slices_per_picture_together_without_aud() {
        let idr: Vec<Vec<u8>> = (0..4).map(|k| slice(IDR, k * 900, 0)).collect();
        let p: Vec<Vec<u8>> = (0..4).map(|k| slice(P, k * 900, 0)).collect();
        let (input, expected) = joined(&[
            &[SPS, PPS, &idr[0], &idr[1], &idr[2], &idr[3]],
            &[&p[0], &p[1], &p[2], &p[3]],
            &[&p[0], &p[1], &p[2], &p[3]],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn starts_a_unit_at_the_sps_when_sps_and_pps_precede_every_idr() {
        let (i, p) = (slice(IDR, 0, 0), slice(P, 0, 0));
        let (input, expected) = joined(&[&[SPS, PPS, &i], &[&p], &[SPS, PPS, SEI, &i], &[&p]]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn splits_idr_after_idr_when_sps_and_pps_come_only_at_the_start() {
        let i = slice(IDR, 0, 0);
        let (input, expected) = joined(&[&[SPS, PPS, &i], &[&i], &[&slice(P, 0, 0)], &[&i]]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn starts_a_unit_at_an_sei_after_a_picture() {
        let (input, expected) = joined(&[&[SEI, &slice(IDR, 0, 0)], &[SEI, &slice(P, 0, 0)]]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn keeps_end_of_sequence_and_end_of_stream_with_the_current_unit() {
        let (input, expected) = joined(&[
            &[&slice(IDR, 0, 0), END_OF_SEQUENCE],
            &[&slice(IDR, 0, 0), END_OF_STREAM],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn notices_a_new_picture_from_idr_change_reference_change_or_pps_change() {
        // first_mb_in_slice is never 0 here, as if the first slices were lost.
        let (input, expected) = joined(&[
            &[&slice(IDR, 10, 0), &slice(IDR, 20, 0)],
            &[&slice(P, 10, 0)],
            &[&slice(NON_REF, 10, 0)],
            &[&slice(P, 10, 1), &slice(P, 20, 1)],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn reads_slice_headers_through_emulation_prevention_bytes() {
        // first_mb_in_slice = 2^23 - 1 codes as 23 zero bits and a one bit
        // and then 23 zero bits, which need emulation prevention bytes;
        // misreading them would change the pps id that follows.
        let mut w = BitWriter::default();
        w.ue((1 << 23) - 1).ue(5).ue(3).u(32, 0xdead_beef);
        let second = nal(P, &w.finish());
        assert!(second.windows(3).any(|x| x == [0, 0, 3]), "{second:02x?}");
        let (input, expected) = joined(&[&[&slice(P, 0, 3), &second], &[&slice(P, 0, 3)]]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn skips_garbage_before_the_first_start_code() {
        let (stream, expected) = joined(&[&[SPS, PPS, &slice(IDR, 0, 0)], &[&slice(P, 0, 0)]]);
        let garbage = [0x12, 0x00, 0x01, 0x00, 0x00, 0x02, 0xff, 0x00, 0x00];
        let input = [&garbage[..], &stream].concat();
        let (units, skipped) = whole(&input);
        assert_eq!((units.clone(), skipped), (expected, garbage.len()));
        assert_eq!(byte_by_byte(&input), (units, skipped));
    }

    #[test]
    fn skips_input_without_any_start_code() {
        let input = [0x12, 0x34, 0x00, 0x00, 0x00, 0x00, 0x56];
        assert_eq!(whole(&input), (vec![], input.len()));
        assert_eq!(byte_by_byte(&input), (vec![], input.len()));
    }

    #[test]
    fn returns_a_partial_unit_at_end_of_input() {
        let (input, expected) = joined(&[
            &[&slice(IDR, 0, 0), &slice(IDR, 100, 0)],
            &[AUD, &slice(P, 0, 0), &slice(P, 100, 0)[..4]],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn skips_trailing_units_without_a_picture_at_end_of_input() {
        let (pictures, expected) = joined(&[&[&slice(IDR, 0, 0)]]);
        let (trailer, _) = joined(&[&[AUD, SPS, PPS]]);
        let input = [pictures, trailer.clone()].concat();
        assert_eq!(whole(&input), (expected.clone(), trailer.len()));
        assert_eq!(byte_by_byte(&input), (expected, trailer.len()));
    }

    #[test]
    fn splits_a_stream_without_any_sps() {
        let (input, expected) = joined(&[
            &[AUD, &slice(IDR, 0, 0)],
            &[AUD, &slice(P, 0, 0)],
            &[AUD, &slice(P, 0, 0)],
        ]);
        assert_eq!(split(&input), expected);
    }

    #[test]
    fn waits_when_a_start_code_is_split_across_reads() {
        let (input, _) = joined(&[&[&slice(IDR, 0, 0)], &[&slice(P, 0, 0)]]);
        let second = annexb(&[&slice(IDR, 0, 0)]).len();
        let mut s = AccessUnitSplitter::new();
        // Input ends with "00 00" of the next start code: ambiguous.
        assert_eq!(s.next(&input[..second + 2], false), Split::NeedMore);
        assert_eq!(s.next(&input[..second + 3], false), Split::NeedMore);
        assert_eq!(s.next(&input[..second + 4], false), Split::NeedMore);
        assert_eq!(s.next(&input, false), Split::AccessUnit(second));
    }

    #[test]
    fn waits_for_the_slice_header_after_a_nal_header_at_the_end_of_input() {
        let (input, _) = joined(&[&[&slice(IDR, 0, 0)], &[&slice(IDR, 0, 0)]]);
        let first = annexb(&[&slice(IDR, 0, 0)]).len();
        let mut s = AccessUnitSplitter::new();
        // The NAL header of the second slice is the last byte: undecided.
        assert_eq!(s.next(&input[..first + 5], false), Split::NeedMore);
        // first_mb_in_slice and slice_type fit the next byte, the pps id not.
        assert_eq!(s.next(&input[..first + 6], false), Split::NeedMore);
        assert_eq!(s.next(&input[..first + 7], false), Split::AccessUnit(first));
    }

    #[test]
    fn waits_for_the_second_slice_header_before_deciding() {
        // Slice 2 of a picture has first_mb_in_slice = 0x3ff: 19 bits.
        let (input, _) = joined(&[&[&slice(P, 0, 0), &slice(P, 0x3ff, 0)]]);
        let second_header = annexb(&[&slice(P, 0, 0)]).len() + 4;
        let mut s = AccessUnitSplitter::new();
        assert_eq!(s.next(&input[..second_header + 1], false), Split::NeedMore);
        assert_eq!(s.next(&input[..second_header + 2], false), Split::NeedMore);
        assert_eq!(s.next(&input, false), Split::NeedMore);
        assert_eq!(s.next(&input, true), Split::AccessUnit(input.len()));
        assert_eq!(s.next(&[], true), Split::NeedMore);
    }

    #[test]
    fn gives_the_same_units_for_any_chunking() {
        let idr: Vec<Vec<u8>> = (0..4).map(|k| slice(IDR, k * 900, 0)).collect();
        let p: Vec<Vec<u8>> = (0..4).map(|k| slice(P, k * 900, 0)).collect();
        let (input, expected) = joined(&[
            &[AUD, SPS, PPS, SEI, &idr[0], &idr[1], &idr[2], &idr[3]],
            &[AUD, &p[0], &p[1], &p[2], &p[3], END_OF_SEQUENCE],
            &[SPS, PPS, &idr[0], &idr[1], &idr[2], &idr[3]],
        ]);
        let mut rng = XorShift(99);
        for _ in 0..200 {
            let (units, skipped) = run_splitter(&input, || rng.below(17) as usize + 1);
            assert_eq!((units, skipped), (expected.clone(), 0));
        }
    }

    /// Splits `input` fed in pieces of `chunk` bytes; for every access unit, the NAL header
    /// positions the splitter reports, and those a search of the unit finds.
    fn reported_and_searched_starts(
        input: &[u8],
        chunk: usize,
    ) -> Vec<(Option<Vec<u32>>, Vec<u32>)> {
        let mut s = AccessUnitSplitter::new();
        let (mut start, mut end) = (0, 0);
        let mut out = Vec::new();
        for _ in 0..4 * input.len() + 8 {
            let eof = end == input.len();
            match s.next(&input[start..end], eof) {
                Split::AccessUnit(n) => {
                    let unit = &input[start..start + n];
                    let searched = std::iter::successors(find_start_code(unit, 0), |&p| {
                        find_start_code(unit, p)
                    })
                    .map(|p| p as u32)
                    .collect();
                    out.push((s.unit_starts().map(<[u32]>::to_vec), searched));
                    start += n;
                }
                Split::Skip(n) => start += n,
                Split::NeedMore if eof => return out,
                Split::NeedMore => end = (end + chunk).min(input.len()),
            }
        }
        panic!("no progress");
    }

    #[test]
    fn reports_where_the_nal_units_of_each_access_unit_begin_as_a_search_finds_them() {
        let idr: Vec<Vec<u8>> = (0..4).map(|k| slice(IDR, k * 900, 0)).collect();
        let p: Vec<Vec<u8>> = (0..4).map(|k| slice(P, k * 900, 0)).collect();
        let (mut input, _) = joined(&[
            &[AUD, SPS, PPS, SEI, &idr[0], &idr[1], &idr[2], &idr[3]],
            &[AUD, &p[0], &p[1], &p[2], &p[3], END_OF_SEQUENCE],
            &[SPS, PPS, &idr[0], &idr[1], &idr[2], &idr[3]],
        ]);
        // Garbage in front, and a 3-byte start code.
        input.splice(0..0, [0x12, 0x00, 0x01]);
        input.extend_from_slice(&[0, 0, 1]);
        input.extend_from_slice(&slice(P, 0, 0));
        for chunk in [1, 2, 3, 5, 17, input.len()] {
            let got = reported_and_searched_starts(&input, chunk);
            assert_eq!(got.len(), 4, "chunk {chunk}");
            for (reported, searched) in got {
                assert_eq!(reported, Some(searched), "chunk {chunk}");
            }
        }
    }

    #[test]
    fn reports_no_starts_for_an_access_unit_with_too_many_nal_units() {
        let slices: Vec<Vec<u8>> = (0..MAX_UNIT_STARTS as u32 + 1)
            .map(|k| slice(P, k + 1, 0))
            .collect();
        let mut units: Vec<&[u8]> = vec![&[0x41, 0x88, 0x84, 0x21]];
        units.extend(slices.iter().map(Vec::as_slice));
        let (input, _) = joined(&[&units, &[&slice(P, 0, 0)]]);
        let got = reported_and_searched_starts(&input, 100);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, None, "more units than it keeps");
        assert_eq!(got[0].1.len(), MAX_UNIT_STARTS + 2);
        assert_eq!(got[1].0.as_ref(), Some(&got[1].1));
    }

    #[test]
    fn recovers_when_the_caller_breaks_the_contract() {
        let (input, _) = joined(&[&[&slice(IDR, 0, 0)], &[&slice(P, 0, 0)]]);
        let mut s = AccessUnitSplitter::new();
        assert_eq!(
            s.next(&input, false),
            Split::AccessUnit(annexb(&[&slice(IDR, 0, 0)]).len())
        );
        // The caller passes a shorter, unrelated buffer: no panic.
        let _ = s.next(&[0, 0, 1], false);
        let _ = s.next(&[], true);
    }

    #[test]
    fn reads_exp_golomb_codes() {
        let table: &[(&[u8], &[Option<u32>])] = &[
            (&[0b1000_0000], &[Some(0)]),
            (&[0b0100_0000], &[Some(1)]),
            (&[0b0110_0000], &[Some(2)]),
            (&[0b0010_0000], &[Some(3)]),
            (
                &[0b1010_0110, 0b0100_0000],
                &[Some(0), Some(1), Some(2), Some(3)],
            ),
            (
                &[0, 0, 0, 0x01, 0xff, 0xff, 0xff, 0xfe],
                &[Some(u32::MAX - 1)],
            ),
            (&[0, 0, 0, 0], &[None]),
            (&[], &[None]),
        ];
        for (bytes, expected) in table {
            let mut c = BitCursor::new(bytes);
            let got: Vec<Option<u32>> = expected.iter().map(|_| c.ue()).collect();
            assert_eq!(&got, expected, "{bytes:02x?}");
        }
    }

    #[test]
    fn removes_emulation_prevention_from_the_slice_header_prefix() {
        let table: &[(&[u8], &[u8], bool)] = &[
            (&[0x88, 0x84], &[0x88, 0x84], false),
            (&[0, 0, 3, 1, 0x80], &[0, 0, 1, 0x80], false),
            (&[0x88, 0, 0, 1, 0x41], &[0x88], true),
            (&[0x88, 0, 0, 0, 1], &[0x88], true),
            (&[0x88, 0, 0], &[0x88], false),
            (&[0x88, 0, 0, 3], &[0x88, 0, 0], false),
            (&[0x88, 0, 0x80], &[0x88, 0, 0x80], false),
        ];
        for (payload, rbsp, complete) in table {
            let (got, got_complete) = rbsp_prefix(payload);
            assert_eq!(
                (got.as_slice(), got_complete),
                (*rbsp, *complete),
                "{payload:02x?}"
            );
        }
        let long = [0x11; 100];
        assert_eq!(
            rbsp_prefix(&long),
            (
                heapless::Vec::from_slice(&[0x11; SLICE_START_BYTES]).unwrap(),
                true
            )
        );
    }

    #[test]
    fn reads_or_rejects_the_start_of_slice_headers() {
        use SliceStart::*;
        let fields = |first_mb, pps_id| Fields { first_mb, pps_id };
        let table: &[(&[u8], bool, SliceStart)] = &[
            (&[0x88, 0x80], false, fields(0, 0)),
            (&[0x88], false, Incomplete),
            (&[0x88], true, Malformed),
            (&[0x88, 0, 0, 1, 0x65], false, Malformed),
            (&[0x88, 0x00], false, Incomplete),
            (&[0x88, 0x00, 0x00], false, Incomplete),
            (&[0x88, 0x00, 0x00], true, Malformed),
            // The pps id is 65536.
            (&[0xc0, 0, 0x20, 0, 0x30], false, Malformed),
            // slice_type 10.
            (&[0x8b, 0x80], false, Malformed),
            // 32 leading zero bits (with emulation prevention): too large.
            (&[0, 0, 3, 0, 0, 3, 0, 0x80], false, Malformed),
            (&[0x44, 0x20], false, fields(1, 3)),
        ];
        for (payload, eof, expected) in table {
            assert_eq!(
                read_slice_start(payload, *eof),
                *expected,
                "{payload:02x?} eof={eof}"
            );
        }
    }
}
