//! The `raw_data_block` syntax: one SCE (mono) or one CPE with a common window (stereo), then
//! END, byte-aligned (ISO/IEC 14496-3 §4.4.2, Tables 4.3–4.6, 4.11, 4.50–4.52, 4.56).
//!
//! Owns: the side information around the spectra: `ics_info` (always `ONLY_LONG_SEQUENCE`,
//! sine window, no prediction), `section_data` (a section per run of bands with the same
//! codebook), `scale_factor_data` (differences coded with the scalefactor book, the first from
//! `global_gain`), the M/S mask, and the counting of all of it ([`frame_bits`]) so that rate
//! control knows a frame's exact size before writing it ([`write_frame`]).
//!
//! Invariants: `frame_bits` equals the bits `write_frame` writes before the byte alignment;
//! consecutive coded scalefactors differ by at most 60 (the caller keeps them so; checked in
//! debug builds); no pulse, TNS or gain control data; element tag 0.

use super::bands::BANDS;
use super::bits::BitWriter;
use super::spectrum::Channel;
use super::tables::{SCALEFACTOR, ZERO_HCB};

const ID_SCE: u32 = 0;
const ID_CPE: u32 = 1;
const ID_END: u32 = 7;
/// `sect_len` escape for long windows (5-bit field).
const SECT_ESC: usize = 31;

/// What the frame's channels share.
pub struct Frame<'a> {
    pub channels: &'a [Channel],
    /// Bands coded (the rest are zero).
    pub max_sfb: usize,
    /// Per band M/S (stereo only; all false: L/R).
    pub ms: &'a [bool; BANDS],
    pub offsets: &'a [u16; 50],
}

impl Frame<'_> {
    fn ms_mode(&self) -> u32 {
        let used = &self.ms[..self.max_sfb];
        if used.iter().all(|&m| !m) {
            0
        } else if used.iter().all(|&m| m) {
            2
        } else {
            1
        }
    }
}

/// `global_gain`: the first coded band's scalefactor (100 when none is coded).
fn global_gain(c: &Channel, max_sfb: usize) -> u8 {
    (0..max_sfb)
        .find(|&b| c.book[b] != ZERO_HCB)
        .map_or(100, |b| c.sf[b])
}

/// Runs of equal codebooks over `0..max_sfb`, as (book, start, length).
fn sections(c: &Channel, max_sfb: usize) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
    let mut b = 0;
    std::iter::from_fn(move || {
        if b >= max_sfb {
            return None;
        }
        let start = b;
        while b < max_sfb && c.book[b] == c.book[start] {
            b += 1;
        }
        Some((c.book[start], start, b - start))
    })
}

fn sf_code(diff: i32) -> (u32, u8) {
    debug_assert!((-60..=60).contains(&diff), "scalefactor difference {diff}");
    SCALEFACTOR[(diff.clamp(-60, 60) + 60) as usize]
}

/// Bits of one individual_channel_stream without its ics_info.
fn ics_bits(c: &Channel, max_sfb: usize) -> u32 {
    let mut bits = 8 + 3; // global_gain; pulse, tns, gain control flags
    for (_, _, len) in sections(c, max_sfb) {
        bits += 4 + 5 * (len / SECT_ESC + 1) as u32;
    }
    let mut last = i32::from(global_gain(c, max_sfb));
    for b in 0..max_sfb {
        if c.book[b] != ZERO_HCB {
            let sf = i32::from(c.sf[b]);
            bits += u32::from(sf_code(sf - last).1);
            last = sf;
            bits += c.bits[b];
        }
    }
    bits
}

const ICS_INFO_BITS: u32 = 1 + 2 + 1 + 6 + 1;

/// Bits of the whole raw_data_block before byte alignment.
pub fn frame_bits(f: &Frame<'_>) -> u32 {
    let mut bits = 3 + 4 + ICS_INFO_BITS + 3; // element id, tag, ics_info, END
    if f.channels.len() == 2 {
        bits += 1 + 2; // common_window, ms_mask_present
        if f.ms_mode() == 1 {
            bits += f.max_sfb as u32;
        }
    }
    bits + f
        .channels
        .iter()
        .map(|c| ics_bits(c, f.max_sfb))
        .sum::<u32>()
}

fn write_ics_info(max_sfb: usize, w: &mut BitWriter<'_>) {
    w.write(0, 1); // ics_reserved_bit
    w.write(0, 2); // window_sequence: ONLY_LONG_SEQUENCE
    w.write(0, 1); // window_shape: sine
    w.write(max_sfb as u32, 6);
    w.write(0, 1); // predictor_data_present
}

fn write_ics(c: &Channel, f: &Frame<'_>, w: &mut BitWriter<'_>, with_info: bool) {
    let gain = global_gain(c, f.max_sfb);
    w.write(u32::from(gain), 8);
    if with_info {
        write_ics_info(f.max_sfb, w);
    }
    for (book, _, len) in sections(c, f.max_sfb) {
        w.write(u32::from(book), 4);
        let mut left = len;
        while left >= SECT_ESC {
            w.write(SECT_ESC as u32, 5);
            left -= SECT_ESC;
        }
        w.write(left as u32, 5);
    }
    let mut last = i32::from(gain);
    for b in 0..f.max_sfb {
        if c.book[b] != ZERO_HCB {
            let sf = i32::from(c.sf[b]);
            let (code, len) = sf_code(sf - last);
            w.write(code, u32::from(len));
            last = sf;
        }
    }
    w.write(0, 3); // pulse_data_present, tns_data_present, gain_control_data_present
    for b in 0..f.max_sfb {
        let (lo, hi) = (f.offsets[b] as usize, f.offsets[b + 1] as usize);
        c.write_band(b, lo, hi, w);
    }
}

/// Writes the raw_data_block; returns its length in bytes, or `None` if `out` is too small.
pub fn write_frame(f: &Frame<'_>, out: &mut [u8]) -> Option<usize> {
    let mut w = BitWriter::new(out);
    if let [c] = f.channels {
        w.write(ID_SCE, 3);
        w.write(0, 4);
        write_ics(c, f, &mut w, true);
    } else {
        w.write(ID_CPE, 3);
        w.write(0, 4);
        w.write(1, 1); // common_window
        write_ics_info(f.max_sfb, &mut w);
        let mode = f.ms_mode();
        w.write(mode, 2);
        if mode == 1 {
            for &m in &f.ms[..f.max_sfb] {
                w.write(u32::from(m), 1);
            }
        }
        for c in f.channels {
            write_ics(c, f, &mut w, false);
        }
    }
    w.write(ID_END, 3);
    debug_assert!(w.overflowed() || w.bits() as u32 == frame_bits(f));
    w.align();
    (!w.overflowed()).then(|| w.bytes())
}
