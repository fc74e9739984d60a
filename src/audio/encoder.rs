//! AAC-LC encoding on the board, one 1024-sample frame at a time.
//!
//! Owns: [`Encoder`], the streaming face of campush's own AAC-LC encoder ([`super::aac`]):
//! one packet out per block pushed, allocated nothing after [`Encoder::new`]; and the
//! measurements that compare it with what came before (below).
//!
//! A packet over blocks `(b - 1, b)` (the MDCT's 2048-sample window) decodes, overlapped with
//! the packet before, to block `b - 1`: pushing block `b` gives the packet of block `b - 1`
//! ([`Encoder::packet_block`]), one block (21.3 ms at 48 kHz) behind, where the chunked
//! `rusty_aac` route this replaces was about 200 ms behind. A block that is digital silence
//! after one that was too gives [`super::silent_frame`]'s bytes without running the encoder,
//! so a microphone that is away costs nothing.
//!
//! ## The comparison (issue 16, and the encoder that replaced `rusty_aac`)
//!
//! Inputs: a speech clip (espeak-ng, resampled to 48 kHz; the stereo one has the right channel
//! 10 ms later at 0.7) and a linear sine sweep 20 Hz → 20 kHz over 10 s at -6 dBFS (stereo:
//! the right channel sweeps down). Mono at 64 kbit/s, stereo at 96 kbit/s. Decoded with
//! ffmpeg, aligned for the encoder delay by cross-correlation; SNR over the whole clip (and,
//! for the sweep, its first half: 20 Hz – 10 kHz); LSD = log-spectral distance, dB,
//! 2048-sample Hann frames, 50 Hz – 16 kHz, frames above -60 dBFS. CPU = task-clock of the
//! whole encode (file read and conversion included) per second of audio on this x86_64
//! machine (2 shared cores, busy); instructions = callgrind's count per second of audio (the
//! speech clip).
//!
//! The first two columns are history, measured when `rusty_aac` was chosen (an 18.3 s clip,
//! FDK through the `fdk-aac` 0.8 crate in a scratch project, `rusty_aac` in chunks of 8 frames
//! as campush ran it). The column of ours was measured with `bench/aac.sh` (a 23.8 s espeak-ng
//! clip; its LSD floors silent bins differently, so its LSD figures are not comparable with the
//! old ones): in brackets, `rusty_aac` as campush ran it (commit 5f33bd6) measured by the same
//! script on the same clips, the fair comparison.
//!
//! | measure | `rusty_aac` 2.0.1 (chunked) | FDK (`fdk-aac` 0.8) | ours [`rusty_aac`, same script] |
//! |---|---|---|---|
//! | speech mono 64k: SNR / LSD | 16.7 dB / 9.6 dB | 26.9 dB / 8.1 dB | 24.8 dB / 13.9 dB [17.3 / 16.5] |
//! | speech stereo 96k: SNR / LSD | 13.0 dB / 10.9 dB | 20.8 dB / 9.2 dB | 21.1 dB / 17.2 dB [13.6 / 18.0] |
//! | sweep mono 64k: SNR (first half) / LSD | 18.6 (17.0) dB / 14.6 dB | 7.8 (51.3) dB / 8.6 dB | 52.3 (55.0) dB / 37.6 dB [28.0 (25.8) / 36.4] |
//! | sweep stereo 96k: SNR (first half) / LSD | 18.4 (17.5) dB / 14.0 dB | 4.6 (3.0) dB / 13.8 dB | 51.6 (52.1) dB / 38.9 dB [24.7 (24.5) / 37.8] |
//! | bit rate made (speech, asked 64 / 96) | 61.4 / 90.5 kbit/s | 66.8 / 99.0 kbit/s | 59.4 / 90.3 kbit/s [51.9 / 79.6] |
//! | bit rate made (sweep, asked 64 / 96) | | | 63.9 / 95.9 kbit/s |
//! | encoder delay | 1024 samples | 2048 samples | 1024 samples (packets one block behind, not a chunk) |
//! | CPU per s of audio, mono / stereo | 15.0 / 35.9 ms | 4.4 / 10.1 ms | 1.9 / 3.9 ms [10.4 / 20.9] |
//! | instructions per s of audio, mono / stereo | 147 M / 353 M | 28 M / 63 M | 27 M / 53 M |
//! | heap allocations per frame | 91 (per-chunk work vectors) | 0 (C, its own buffers) | 0 (`tests/zero_alloc.rs`) |
//! | size added, static aarch64 / ARMv6 | +141,424 B aarch64 (1,997,768 → 2,139,192 B), +149,664 B ARMv6 | about 413 KiB (x86_64; not cross-built) | −89,280 B aarch64 against `rusty_aac` (2,174,808 → 2,085,528 B, commit 5f33bd6 → this one), so about +52 KB against no encoder; ARMv6 not rebuilt |
//! | C code, licence | none; Apache-2.0 | C++ via `cc`; FDK licence (not OSI, Debian non-free) | none; campush's own |
//!
//! Reading it: on speech ours beats `rusty_aac` on both measures (7–8 dB of SNR, 1–2.5 dB of
//! LSD, same script) at about a fifth of its CPU and of its instructions (as many as FDK), and
//! comes near the SNR FDK measured on the older clip. FDK's LSD on speech stays ahead, and it
//! has what ours lacks (a psychoacoustic model, TNS, short windows); no listening test was made
//! for this table. Ours codes the full band where FDK low-passes at about 14 kHz,
//! hence the sweep's SNR. Its LSD on the sweep is no better than `rusty_aac`'s: between the
//! sweep's tone and the window's leakage floor, bands quantise to zero. The bit rate made
//! falls short of the asked on speech because the reservoir is capped (6144 bits per channel)
//! and the pauses between words leave more unused than it holds; on steady sound it is met.
//! What ours gives up: long windows only (pre-echo on clicks and plosives, see
//! [`super::aac::mdct`]), no TNS, no intensity stereo, no noise substitution.
//!
//! Invariants: one packet per block, in block order; packets are raw `raw_data_block`s (no
//! ADTS) of at most [`super::ring::MAX_FRAME_BYTES`] bytes; no allocation after `new`.

use super::aac::AacEncoder;
use super::ring::MAX_FRAME_BYTES;
use super::{silent_frame, AudioFormat, SAMPLES_PER_FRAME};

const BLOCK: usize = SAMPLES_PER_FRAME as usize;

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("AAC encoder: a frame does not fit in {0} bytes even at the coarsest step")]
    TooLarge(usize),
}

/// A streaming AAC-LC encoder (see the module doc).
pub struct Encoder {
    format: AudioFormat,
    channels: usize,
    core: AacEncoder,
    /// The latest packet.
    packet: Box<[u8; MAX_FRAME_BYTES]>,
    len: usize,
    /// Whether the previous block was digital silence.
    previous_silent: bool,
    /// Block index the latest packet decodes as (-1: the silence before the stream).
    block: i64,
    /// The largest packet the ring takes ([`MAX_FRAME_BYTES`]; lowered by a test).
    max_frame_bytes: usize,
}

impl Encoder {
    pub fn new(format: AudioFormat, bitrate_kbps: u32) -> Encoder {
        let channels = usize::from(format.channels);
        Encoder {
            format,
            channels,
            core: AacEncoder::new(channels, format.rate, bitrate_kbps.saturating_mul(1000)),
            packet: Box::new([0; MAX_FRAME_BYTES]),
            len: 0,
            previous_silent: true,
            block: -2,
            max_frame_bytes: MAX_FRAME_BYTES,
        }
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Adds the next block (1024 frames, interleaved, `channels` samples each; a short block is
    /// padded with silence) and makes its packet: the one over the previous block and this
    /// one, read with [`Encoder::packet`] and [`Encoder::packet_block`] until the next push.
    /// A block whose packet cannot be made is lost (the next one is coded as usual).
    pub fn push(&mut self, block: &[f32]) -> Result<(), EncodeError> {
        let n = block.len().min(BLOCK * self.channels);
        let block = &block[..n];
        self.block += 1;
        let silent = block.iter().all(|&x| x == 0.0);
        let both_silent = silent && self.previous_silent;
        self.previous_silent = silent;
        if both_silent {
            self.core.silence();
            let frame = silent_frame(self.format.channels);
            self.packet[..frame.len()].copy_from_slice(frame);
            self.len = frame.len();
            return Ok(());
        }
        let out = &mut self.packet[..self.max_frame_bytes];
        match self.core.encode(block, out) {
            Some(len) => {
                self.len = len;
                Ok(())
            }
            None => {
                self.len = 0;
                Err(EncodeError::TooLarge(self.max_frame_bytes))
            }
        }
    }

    /// The latest packet (a `raw_data_block`; empty if its push failed).
    pub fn packet(&self) -> &[u8] {
        &self.packet[..self.len]
    }

    /// Block index (0: the first block pushed) the latest packet decodes as: the block before
    /// the one just pushed; -1 is the silence before the stream.
    pub fn packet_block(&self) -> i64 {
        self.block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(format: AudioFormat, n: u64, hz: f32) -> Vec<f32> {
        let ch = usize::from(format.channels);
        (0..BLOCK * ch)
            .map(|i| {
                let t = (n as usize * BLOCK + i / ch) as f32 / format.rate as f32;
                0.3 * (2.0 * std::f32::consts::PI * hz * t).sin()
            })
            .collect()
    }

    #[test]
    fn silence_gives_the_silent_frames_bytes_a_packet_per_block() {
        let f = AudioFormat::new(48_000, 1).unwrap();
        let mut e = Encoder::new(f, 64);
        for n in 0..4 {
            e.push(&[0.0; 1024]).unwrap();
            assert_eq!(e.packet_block(), n - 1);
            assert_eq!(e.packet(), super::super::SILENT_MONO);
        }
        // Sound: the packet over (silence, sound) is coded, and so is the one after the sound.
        e.push(&tone(f, 4, 440.0)).unwrap();
        assert_ne!(e.packet(), super::super::SILENT_MONO);
        e.push(&[0.0; 1024]).unwrap();
        assert_ne!(e.packet(), super::super::SILENT_MONO);
        e.push(&[0.0; 1024]).unwrap();
        assert_eq!(e.packet(), super::super::SILENT_MONO);
        assert_eq!(e.packet_block(), 5);
    }

    #[test]
    fn a_tone_is_encoded_near_the_asked_bit_rate_in_frames_that_fit_the_ring() {
        for (channels, kbps) in [(1u8, 64u32), (2, 96)] {
            for rate in [44_100, 48_000] {
                let f = AudioFormat::new(rate, channels).unwrap();
                let mut e = Encoder::new(f, kbps);
                let mut bytes = 0;
                let packets = 200;
                for n in 0..packets {
                    e.push(&tone(f, n, 440.0)).unwrap();
                    let p = e.packet();
                    assert!(!p.is_empty() && p.len() <= MAX_FRAME_BYTES);
                    bytes += p.len();
                }
                let got = bytes as f64 * 8.0 / (packets as f64 * 1024.0 / f64::from(rate)) / 1000.0;
                assert!(
                    got > 0.8 * f64::from(kbps) && got <= 1.0 * f64::from(kbps),
                    "{got} kbit/s"
                );
            }
        }
    }

    #[test]
    fn a_frame_that_fails_is_lost_and_the_next_one_is_coded() {
        let f = AudioFormat::new(48_000, 1).unwrap();
        let mut e = Encoder::new(f, 64);
        e.max_frame_bytes = 1; // no frame fits
        assert!(matches!(
            e.push(&tone(f, 0, 440.0)),
            Err(EncodeError::TooLarge(1))
        ));
        assert!(e.packet().is_empty());
        e.max_frame_bytes = MAX_FRAME_BYTES;
        e.push(&tone(f, 1, 440.0)).unwrap();
        assert!(!e.packet().is_empty());
        assert_eq!(e.packet_block(), 0);
    }
}
