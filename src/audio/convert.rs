//! Sample conversion: what a capture device gives (S16_LE or S32_LE, interleaved, any channel
//! count) into what the encoder takes (f32 in [-1, 1], one or two channels).
//!
//! Owns: [`Converter`]. Down-mix to mono averages every channel of the device; up-mix to stereo
//! copies a mono device to both sides; a device with more than two channels gives its first
//! two for stereo. S32_LE is scaled from the top (I2S MEMS microphones put 18 or 24 significant
//! bits there, the low bits are zero or noise).
//!
//! Invariants: reads only whole frames inside the buffer it is given; never allocates; a frame
//! outside the buffer reads as silence rather than panicking.

use super::pcm::{PcmParams, SampleFormat};

/// Reads one device frame at a time, mixed to the encoder's channel count.
#[derive(Debug, Clone, Copy)]
pub struct Converter {
    format: SampleFormat,
    in_channels: usize,
    out_channels: usize,
}

impl Converter {
    /// From a device set to `params` to `out_channels` (1 or 2).
    pub fn new(params: PcmParams, out_channels: u8) -> Converter {
        Converter {
            format: params.format,
            in_channels: usize::from(params.channels.max(1)),
            out_channels: usize::from(out_channels.clamp(1, 2)),
        }
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
            let sum: f32 = (0..self.in_channels).map(|c| self.sample(buf, at, c)).sum();
            let m = sum / self.in_channels as f32;
            [m, m]
        } else if self.in_channels == 1 {
            let s = self.sample(buf, at, 0);
            [s, s]
        } else {
            [self.sample(buf, at, 0), self.sample(buf, at, 1)]
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

    #[test]
    fn a_frame_beyond_the_buffer_is_silence() {
        let c = Converter::new(params(SampleFormat::S32Le, 2), 2);
        assert_eq!(c.frame(&[1, 2, 3], 0), [0.0, 0.0]);
    }
}
