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
//! MEASUREMENTS
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
