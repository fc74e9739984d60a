//! Sample conversion: what a capture device gives (S16_LE or S32_LE, interleaved, any channel
//! count) into what the encoder takes (f32 in [-1, 1], one or two channels).
//!
//! Owns: [`Converter`]. Down-mix to mono averages every live channel of the device; up-mix to
//! stereo copies a mono device to both sides; a device with more than two channels gives its
//! first two for stereo. S32_LE is scaled from the top (I2S MEMS microphones put 18 or 24
//! significant bits there, the low bits are zero or noise).
//!
//! Dead slots. A single I2S MEMS microphone sits in one slot of a stereo frame and the other
//! slot reads as zero: averaging it in would put the sound 6 dB down, and stereo would have one
//! silent side. [`Converter::watch`] keeps each channel's energy (smoothed over about
//! [`WATCH_S`]) and counts a channel dead while it is more than 50 dB below the loudest (which
//! must itself be above -70 dBFS: a quiet room keeps every channel). Mono then averages the live
//! channels only; stereo from a device whose first two channels have one dead gives the live one
//! to both sides.
//!
//! Invariants: reads only whole frames inside the buffer it is given; never allocates; a frame
//! outside the buffer reads as silence rather than panicking; with every channel live (the
//! start), the mix is the plain one above.

use super::pcm::{PcmParams, SampleFormat};

/// Channels whose energy is watched for dead slots (the rest always count as live).
const WATCHED: usize = 16;
/// Time constant of the energy smoothing, seconds.
pub const WATCH_S: f64 = 2.0;
/// A channel this far below the loudest (energy ratio: -50 dB) is dead.
const DEAD_RATIO: f64 = 1e-5;
/// The loudest channel must be above this (energy: -70 dBFS) for any to count as dead.
const FLOOR: f64 = 1e-7;

/// Reads one device frame at a time, mixed to the encoder's channel count.
#[derive(Debug, Clone, Copy)]
pub struct Converter {
    format: SampleFormat,
    in_channels: usize,
    out_channels: usize,
    rate: u32,
    /// Smoothed mean square per channel.
    energy: [f64; WATCHED],
    /// Bit `c` set: channel `c` is live.
    live: u32,
}

impl Converter {
    /// From a device set to `params` to `out_channels` (1 or 2).
    pub fn new(params: PcmParams, out_channels: u8) -> Converter {
        Converter {
            format: params.format,
            in_channels: usize::from(params.channels.max(1)),
            out_channels: usize::from(out_channels.clamp(1, 2)),
            rate: params.rate.max(1),
            energy: [0.0; WATCHED],
            live: u32::MAX,
        }
    }

    /// Which channels are live (bit `c` for channel `c`; all set at the start).
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Takes the first `frames` frames of `buf` into each channel's energy and decides again
    /// which channels are live; returns the new mask when it changed.
    pub fn watch(&mut self, buf: &[u8], frames: usize) -> Option<u32> {
        let n = self.in_channels.min(WATCHED);
        if n < 2 || frames == 0 {
            return None;
        }
        let alpha = (frames as f64 / (WATCH_S * f64::from(self.rate))).min(1.0);
        let fb = self.frame_bytes();
        for c in 0..n {
            let mut sum = 0.0f64;
            for i in 0..frames {
                let v = f64::from(self.sample(buf, i * fb, c));
                sum += v * v;
            }
            let mean = sum / frames as f64;
            self.energy[c] += alpha * (mean - self.energy[c]);
        }
        let loudest = self.energy[..n].iter().copied().fold(0.0, f64::max);
        let mut live = u32::MAX;
        if loudest > FLOOR {
            for c in 0..n {
                if self.energy[c] < loudest * DEAD_RATIO {
                    live &= !(1 << c);
                }
            }
        }
        (live != self.live).then(|| {
            self.live = live;
            live
        })
    }

    fn is_live(&self, c: usize) -> bool {
        c >= WATCHED || self.live & (1 << c) != 0
    }

    /// The device's channel count.
    pub fn channels(&self) -> usize {
        self.in_channels
    }

    /// Bytes of one device frame.
    pub fn frame_bytes(&self) -> usize {
        self.format.bytes() * self.in_channels
    }

    /// Sample `c` of a frame starting at `at`.
    fn sample(&self, buf: &[u8], at: usize, c: usize) -> f32 {
        match self.format {
            SampleFormat::S16Le => {
                let i = at + 2 * c;
                match buf.get(i..i + 2) {
                    Some(b) => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
                    None => 0.0,
                }
            }
            SampleFormat::S32Le => {
                let i = at + 4 * c;
                match buf.get(i..i + 4) {
                    Some(b) => {
                        (i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64 / 2_147_483_648.0)
                            as f32
                    }
                    None => 0.0,
                }
            }
        }
    }

    /// Frame `i` of `buf`, as (left, right); mono output puts its sample in both.
    pub fn frame(&self, buf: &[u8], i: usize) -> [f32; 2] {
        let at = i * self.frame_bytes();
        if self.out_channels == 1 {
            let (mut sum, mut n) = (0.0f32, 0u32);
            for c in (0..self.in_channels).filter(|&c| self.is_live(c)) {
                sum += self.sample(buf, at, c);
                n += 1;
            }
            let m = sum / n.max(1) as f32;
            [m, m]
        } else if self.in_channels == 1 {
            let s = self.sample(buf, at, 0);
            [s, s]
        } else {
            match (self.is_live(0), self.is_live(1)) {
                (true, false) => {
                    let s = self.sample(buf, at, 0);
                    [s, s]
                }
                (false, true) => {
                    let s = self.sample(buf, at, 1);
                    [s, s]
                }
                _ => [self.sample(buf, at, 0), self.sample(buf, at, 1)],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(format: SampleFormat, channels: u8) -> PcmParams {
        PcmParams {
            format,
            rate: 48_000,
            channels,
            period_frames: 480,
        }
    }

    #[test]
    fn s16_stereo_passes_through_scaled_to_one() {
        let c = Converter::new(params(SampleFormat::S16Le, 2), 2);
        let buf = [0x00, 0x40, 0x00, 0xC0, 0xFF, 0x7F, 0x00, 0x80];
        assert_eq!(c.frame(&buf, 0), [0.5, -0.5]);
        assert_eq!(c.frame(&buf, 1), [32_767.0 / 32_768.0, -1.0]);
    }

    #[test]
    fn stereo_is_averaged_down_to_mono() {
        let c = Converter::new(params(SampleFormat::S16Le, 2), 1);
        let buf = [0x00, 0x40, 0x00, 0x00];
        assert_eq!(c.frame(&buf, 0), [0.25, 0.25]);
    }

    #[test]
    fn mono_is_copied_up_to_both_sides() {
        let c = Converter::new(params(SampleFormat::S16Le, 1), 2);
        assert_eq!(c.frame(&[0x00, 0xE0], 0), [-0.25, -0.25]);
    }

    #[test]
    fn s32_from_an_i2s_microphone_is_read_from_its_top_bits() {
        // A 24-bit sample left-justified in 32 bits: 0x400000 << 8 is a quarter of full scale.
        let c = Converter::new(params(SampleFormat::S32Le, 1), 1);
        let v = (0x0040_0000i32 << 8).to_le_bytes();
        assert_eq!(c.frame(&v, 0), [0.5, 0.5]);
        let v = i32::MIN.to_le_bytes();
        assert_eq!(c.frame(&v, 0), [-1.0, -1.0]);
    }

    #[test]
    fn a_device_with_four_channels_gives_its_first_two_for_stereo_and_all_for_mono() {
        let mut buf = Vec::new();
        for s in [8192i16, 16384, -8192, -16384] {
            buf.extend_from_slice(&s.to_le_bytes());
        }
        let c = Converter::new(params(SampleFormat::S16Le, 4), 2);
        assert_eq!(c.frame(&buf, 0), [0.25, 0.5]);
        let c = Converter::new(params(SampleFormat::S16Le, 4), 1);
        assert_eq!(c.frame(&buf, 0), [0.0, 0.0]);
    }

    /// `frames` S32 stereo frames: a 1 kHz tone at `left` and `right` amplitude.
    fn stereo_tone(left: f64, right: f64, frames: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for i in 0..frames {
            let x = (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin();
            for a in [left, right] {
                buf.extend_from_slice(&((x * a * 2_147_483_647.0) as i32).to_le_bytes());
            }
        }
        buf
    }

    #[test]
    fn a_dead_slot_of_an_i2s_microphone_is_left_out_of_the_mix() {
        // One MEMS microphone in the left slot, the right slot reading zero.
        let buf = stereo_tone(0.5, 0.0, 4_800);
        let mut mono = Converter::new(params(SampleFormat::S32Le, 2), 1);
        let mut stereo = Converter::new(params(SampleFormat::S32Le, 2), 2);
        // At first every channel counts: mono is 6 dB down.
        let peak = |c: &Converter| (0..4_800).map(|i| c.frame(&buf, i)[0]).fold(0.0, f32::max);
        assert!((peak(&mono) - 0.25).abs() < 0.01);
        // Half a second of it is enough to tell the dead slot.
        for _ in 0..5 {
            mono.watch(&buf, 4_800);
            stereo.watch(&buf, 4_800);
        }
        assert_eq!(mono.live() & 0b11, 0b01);
        assert!((peak(&mono) - 0.5).abs() < 0.01, "mono at full level");
        for i in [7, 100, 2_000] {
            let f = stereo.frame(&buf, i);
            assert_eq!(f[0], f[1], "the live side on both");
        }
        // The right slot comes alive (a second microphone): both count again.
        let both = stereo_tone(0.5, 0.4, 4_800);
        let changed = (0..20).filter_map(|_| mono.watch(&both, 4_800)).last();
        assert_eq!(changed.map(|m| m & 0b11), Some(0b11));
    }

    #[test]
    fn quiet_channels_and_a_quiet_room_keep_every_channel() {
        // The right microphone 30 dB below the left: alive, averaged.
        let buf = stereo_tone(0.5, 0.5 * 0.0316, 4_800);
        let mut c = Converter::new(params(SampleFormat::S32Le, 2), 1);
        for _ in 0..20 {
            assert_eq!(c.watch(&buf, 4_800), None);
        }
        // Everything near digital silence: nothing is declared dead.
        let silent = stereo_tone(0.0001, 0.0, 4_800);
        let mut c = Converter::new(params(SampleFormat::S32Le, 2), 1);
        for _ in 0..20 {
            assert_eq!(c.watch(&silent, 4_800), None);
        }
        assert_eq!(c.live(), u32::MAX);
    }

    #[test]
    fn a_frame_beyond_the_buffer_is_silence() {
        let c = Converter::new(params(SampleFormat::S32Le, 2), 2);
        assert_eq!(c.frame(&[1, 2, 3], 0), [0.0, 0.0]);
    }
}
