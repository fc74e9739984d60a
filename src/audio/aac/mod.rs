//! campush's own AAC-LC encoder: one 1024-sample frame in, one `raw_data_block` out, nothing
//! allocated after construction.
//!
//! Owns: [`AacEncoder`] (the per-frame pipeline and its rate control) and, one concern per
//! file, what it is built of:
//!
//! | module | owns |
//! |---|---|
//! | [`mdct`] | the sine-windowed 2048 → 1024 MDCT, FFT-based (long blocks only) |
//! | [`bands`] | the scalefactor band offsets of 44.1 and 48 kHz long windows |
//! | [`tables`] | the Huffman codebooks (ISO/IEC 14496-3 Annex 4.A), proven by the tests |
//! | [`spectrum`] | a channel's quantisation per band, codebook choice, spectral bits |
//! | [`frame`] | the raw_data_block syntax around the spectra, counted and written |
//! | [`bits`] | the bit writer into a caller-owned buffer |
//!
//! Per frame ([`AacEncoder::encode`]): the block joins the previous one in each channel's
//! 2048-sample window and is transformed; in stereo each band is coded L/R or M/S (M/S where
//! it makes the band sparser: `Σ√|m|+√|s| < Σ√|l|+√|r|`, orthonormal M/S); then one global
//! quantiser step is searched (over the scalefactor `G`: a bracket grown from the previous
//! frame's, then bisection; about 5 trials) for the finest
//! that fits the frame's bit budget, each band's scalefactor being `G` plus a per-band offset
//! (-2 in M/S bands, which keeps the noise the same as L/R would, and [`SHAPING`] steps per
//! 6 dB of band energy above the frame's mean, at most ±20). Equal steps everywhere would
//! minimise the squared error (white noise), but weak bands would then fall to zero; shaping
//! the noise partly to the spectrum keeps them, for some SNR. This is an energy rule, not a
//! psychoacoustic model; a band too weak for its step quantises to zero and costs nothing.
//!
//! Rate control: a frame may use the mean (`bitrate · 1024 / rate` bits) plus half of the bit
//! reservoir, the bits earlier frames left unused; the reservoir is capped at AAC's decoder
//! buffer (6144 bits per channel less the mean) and a frame at 6144 bits per channel and at
//! the caller's buffer. From the stream's start the bits made never exceed the bits asked
//! for (the reservoir only lends what earlier frames left unused).
//!
//! Limits, as they are: long windows only (pre-echo on transients, see [`mdct`]); no TNS, no
//! intensity stereo, no perceptual noise substitution, no psychoacoustic model: at low rates
//! high bands fall to zero before a perceptual encoder would let them (a duller sound, where
//! FDK would keep a noisy top octave).
//!
//! Invariants: no allocation in `encode`; each packet at most `out.len()` bytes and at most
//! 6144 bits per channel; `encode` is deterministic.

pub mod bands;
pub mod bits;
pub mod frame;
pub mod mdct;
pub mod spectrum;
pub mod tables;

use bands::BANDS;
use frame::Frame;
use mdct::{Mdct, M, N};
use spectrum::Channel;
use tables::ZERO_HCB;

/// Scalefactor steps per 6 dB of band energy above the frame's mean band energy (0: equal
/// steps, white noise, the best SNR). At 2 the noise follows the spectrum at about 0.6 dB per
/// dB (the 3/4-power quantiser gives 0.25 of it by itself), so weak bands keep some of their
/// content instead of falling to zero: on speech that costs about 7 dB of SNR and wins 5 dB of
/// log-spectral distance (measured, see `crate::audio::encoder`).
pub const SHAPING: f32 = 2.0;

/// Input samples are scaled to the 16-bit range the standard's quantiser is set for.
const INPUT_SCALE: f32 = 32768.0;

/// AAC-LC encoder core (see the module doc).
pub struct AacEncoder {
    channels: usize,
    offsets: &'static [u16; 50],
    mdct: Mdct,
    /// Per channel: the previous block and the current one, 2048 samples.
    windows: Box<[[f32; N]]>,
    coded: Box<[Channel]>,
    /// Per channel and band, the scalefactor offset from `G`.
    offset: Box<[[i16; BANDS]]>,
    ms: [bool; BANDS],
    mean_bits: u32,
    max_bits: u32,
    reservoir: u32,
    reservoir_max: u32,
    /// The latest frame's global step and bits, for tests and measurements.
    last_g: u8,
    last_bits: u32,
}

impl AacEncoder {
    /// `channels` 1 or 2, `rate` 44100 or 48000, `bitrate_bps` the average asked for.
    pub fn new(channels: usize, rate: u32, bitrate_bps: u32) -> AacEncoder {
        assert!(matches!(channels, 1 | 2));
        let frame_limit = 6144 * channels as u32;
        let mean_bits = ((u64::from(bitrate_bps) * M as u64) / u64::from(rate)) as u32;
        let mean_bits = mean_bits.clamp(8, frame_limit);
        AacEncoder {
            channels,
            offsets: bands::offsets(rate),
            mdct: Mdct::new(),
            windows: vec![[0.0; N]; channels].into_boxed_slice(),
            coded: (0..channels).map(|_| Channel::default()).collect(),
            offset: vec![[0; BANDS]; channels].into_boxed_slice(),
            ms: [false; BANDS],
            mean_bits,
            max_bits: frame_limit,
            reservoir: 0,
            reservoir_max: frame_limit - mean_bits,
            last_g: 0,
            last_bits: 0,
        }
    }

    /// Bits per frame on average.
    pub fn mean_bits(&self) -> u32 {
        self.mean_bits
    }

    /// The latest frame's global scalefactor and bits (before byte alignment).
    pub fn last_frame(&self) -> (u8, u32) {
        (self.last_g, self.last_bits)
    }

    /// Encodes the next block (1024 samples per channel, interleaved, in [-1, 1]; missing
    /// samples are silence) into `out`: the packet over the previous block and this one,
    /// which decodes (overlapped with the previous packet) to the previous block. Returns its
    /// length, or `None` if even the coarsest coding does not fit `out`.
    pub fn encode(&mut self, block: &[f32], out: &mut [u8]) -> Option<usize> {
        let ch = self.channels;
        for c in 0..ch {
            let w = &mut self.windows[c];
            w.copy_within(M.., 0);
            for (i, s) in w[M..].iter_mut().enumerate() {
                *s = block.get(i * ch + c).copied().unwrap_or(0.0) * INPUT_SCALE;
            }
            self.mdct.forward(&self.windows[c], &mut self.coded[c].x);
        }
        self.offset.iter_mut().for_each(|o| o.fill(0));
        if ch == 2 {
            self.stereo();
        }
        for c in &mut self.coded {
            c.prepare();
        }
        self.shape();
        let budget = (self.mean_bits + self.reservoir / 2)
            .min(self.max_bits)
            .min(8 * out.len() as u32 - 7);
        // The finest global step that fits: a bracket grown from the previous frame's step
        // (steps change slowly), then bisection inside it. `hi` fits (255 is assumed to; if
        // it does not, writing fails below), `lo - 1` does not.
        let mut last = None;
        let mut trial = |e: &mut Self, g: u16| {
            let got = e.quantise(g as u8);
            last = Some((g, got));
            got.is_some_and(|bits| bits <= budget)
        };
        let (mut lo, mut hi) = (0u16, 255u16);
        let start = u16::from(self.last_g);
        let mut step = 1;
        if trial(self, start) {
            hi = start;
            while hi > 0 {
                let g = hi.saturating_sub(step);
                if trial(self, g) {
                    hi = g;
                    step *= 2;
                } else {
                    lo = g + 1;
                    break;
                }
            }
        } else {
            lo = start + 1;
            while lo < 255 {
                let g = (lo - 1 + step).min(255);
                if trial(self, g) {
                    hi = g;
                    break;
                }
                lo = g + 1;
                step *= 2;
            }
            lo = lo.min(hi);
        }
        while lo < hi {
            let mid = (lo + hi) / 2;
            if trial(self, mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // The channels hold the last trial's quantisation: redo `hi` if that was another.
        let bits = match last {
            Some((g, Some(bits))) if g == hi => bits,
            _ => self.quantise(hi as u8)?,
        };
        let lo = hi;
        let max_sfb = self.max_sfb();
        let f = Frame {
            channels: &self.coded,
            max_sfb,
            ms: &self.ms,
            offsets: self.offsets,
        };
        let len = frame::write_frame(&f, out)?;
        let used = 8 * len as u32;
        self.reservoir = (self.reservoir + self.mean_bits)
            .saturating_sub(used)
            .min(self.reservoir_max);
        self.last_g = lo as u8;
        self.last_bits = bits;
        Some(len)
    }

    /// The block pushed was digital silence and its packet was not coded (the caller sent a
    /// silent frame): the windows hold silence, as if it had been encoded.
    pub fn silence(&mut self) {
        for w in self.windows.iter_mut() {
            w.fill(0.0);
        }
        self.reservoir = (self.reservoir + self.mean_bits).min(self.reservoir_max);
    }

    /// Per band: M/S where it makes the band sparser (see the module doc).
    fn stereo(&mut self) {
        let (l, r) = self.coded.split_at_mut(1);
        let (l, r) = (&mut l[0].x, &mut r[0].x);
        for b in 0..BANDS {
            let (lo, hi) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
            let (mut lr, mut ms) = (0.0f32, 0.0f32);
            for i in lo..hi {
                let (a, c) = (l[i], r[i]);
                lr += a.abs().sqrt() + c.abs().sqrt();
                let k = std::f32::consts::FRAC_1_SQRT_2;
                ms += ((a + c) * k).abs().sqrt() + ((a - c) * k).abs().sqrt();
            }
            self.ms[b] = ms < lr;
            if self.ms[b] {
                for i in lo..hi {
                    let (a, c) = (l[i], r[i]);
                    l[i] = 0.5 * (a + c);
                    r[i] = 0.5 * (a - c);
                }
                self.offset[0][b] = -2;
                self.offset[1][b] = -2;
            }
        }
    }

    /// Per band offsets from the band energies ([`SHAPING`]).
    fn shape(&mut self) {
        for (c, off) in self.coded.iter().zip(self.offset.iter_mut()) {
            let mut db = [0.0f32; BANDS];
            let mut sum = 0.0;
            for (b, d) in db.iter_mut().enumerate() {
                let (lo, hi) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
                let e: f32 = c.x[lo..hi].iter().map(|v| v * v).sum::<f32>() / (hi - lo) as f32;
                *d = 10.0 * (e + 1.0).log10();
                sum += *d;
            }
            let mean = sum / BANDS as f32;
            for (o, d) in off.iter_mut().zip(db) {
                *o += ((d - mean) / 6.0 * SHAPING).round().clamp(-20.0, 20.0) as i16;
            }
        }
    }

    /// Quantises every band of every channel at global step `g`; the frame's bits, or `None`
    /// if `g` is too fine for the largest values.
    fn quantise(&mut self, g: u8) -> Option<u32> {
        for (c, off) in self.coded.iter_mut().zip(self.offset.iter()) {
            for (b, &o) in off.iter().enumerate() {
                let sf = (i16::from(g) + o).clamp(0, 255) as u8;
                let (lo, hi) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
                c.quantise_band(b, lo, hi, sf)?;
            }
        }
        let f = Frame {
            channels: &self.coded,
            max_sfb: self.max_sfb(),
            ms: &self.ms,
            offsets: self.offsets,
        };
        Some(frame::frame_bits(&f))
    }

    /// Bands up to the last one coded in any channel.
    fn max_sfb(&self) -> usize {
        self.coded
            .iter()
            .map(|c| {
                c.book
                    .iter()
                    .rposition(|&b| b != ZERO_HCB)
                    .map_or(0, |b| b + 1)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
