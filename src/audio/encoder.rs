//! AAC-LC encoding on the board, one 1024-sample frame at a time.
//!
//! Owns: [`Encoder`], a streaming wrapper around the pure-Rust `rusty_aac` encoder, and the
//! measurements that chose it (below).
//!
//! `rusty_aac` 2.0.1 encodes a whole buffered stream at `finish()`: it decides every frame's
//! window sequence in a pre-pass (a frame before a transient opens a short-window run, so it
//! must see the next block), then encodes the frames independently. A live stream has no end,
//! so [`Encoder`] encodes it in chunks of [`CHUNK_BLOCKS`] frames: each chunk is handed to a
//! fresh `rusty_aac` encoder as the block before it (the MDCT's overlap), its blocks, and the
//! block after it (the window decision's lookahead), and the packets of the chunk's own frames
//! are kept. A packet over blocks `(b - 1, b)` decodes (overlapped with the packet before) to
//! block `b - 1`, so packets come out one block behind and a chunk at a time: block `n`'s
//! packet is out after block `n + CHUNK_BLOCKS + 1` went in at the latest (about 200 ms at
//! 48 kHz: the audio reaches the publishers that much after the video of the same moment, and
//! is sent stamped with its capture time). A chunk that is all digital silence gives
//! [`super::silent_frame`]'s bytes without running the encoder, so a microphone that is away
//! costs nothing.
//!
//! Costs of that route (measured, below): each chunk also encodes its context block and its
//! closing flush, so 8 frames cost about 11 (and `rusty_aac` builds its window tables per
//! encoder); and `rusty_aac` allocates its working vectors per call (they do not outlive it:
//! the process does not grow). Everything around it (the ring, the conversion, the drift
//! correction) allocates nothing per frame.
//!
//! Window sequences are decided per chunk, so a short-window run at a chunk's end cannot close
//! with `LONG_STOP` in the next chunk (a stream's first frame is never flagged): one frame in
//! [`CHUNK_BLOCKS`] may be coded `ONLY_LONG` right after an `EIGHT_SHORT`. Decoders take it (the
//! overlap is slightly off for that 21 ms); [`Encoder::window_mismatches`] counts them. The
//! measured quality of the chunked stream equals that of one whole-stream encode (below).
//!
//! ## The comparison (issue 16)
//!
//! Same inputs for both: a speech clip (espeak-ng, 18.3 s, resampled to 48 kHz; the stereo one
//! has the right channel 10 ms later at 0.7) and a linear sine sweep 20 Hz → 20 kHz over 10 s
//! (stereo: the right channel sweeps down). Mono at 64 kbit/s, stereo at 96 kbit/s. Decoded with
//! ffmpeg, aligned for the encoder delay by cross-correlation; SNR over the whole clip (and, for
//! the sweep, its first half: 20 Hz – 10 kHz); LSD = log-spectral distance, dB, 2048-sample Hann
//! frames, 50 Hz – 16 kHz, frames above -60 dBFS. CPU = task-clock of the whole encode (file
//! read and conversion included) per second of audio on this x86_64 machine (2 shared cores,
//! busy); instructions = callgrind's count per second of audio (the speech clip). `rusty_aac`
//! as campush runs it: chunks of 8 frames (`rusty_aac` built with its `simd` feature in the
//! scratch benchmark; campush builds it without, scalar, bit-identical). FDK through the
//! `fdk-aac` 0.8 crate (libfdk-aac, CBR, raw transport), measured in a scratch project only.
//!
//! | measure | `rusty_aac` 2.0.1 (chunked) | FDK (`fdk-aac` 0.8) |
//! |---|---|---|
//! | speech mono 64k: SNR / LSD | 16.7 dB / 9.6 dB | 26.9 dB / 8.1 dB |
//! | speech stereo 96k: SNR / LSD | 13.0 dB / 10.9 dB | 20.8 dB / 9.2 dB |
//! | sweep mono 64k: SNR (first half) / LSD | 18.6 (17.0) dB / 14.6 dB | 7.8 (51.3) dB / 8.6 dB |
//! | sweep stereo 96k: SNR (first half) / LSD | 18.4 (17.5) dB / 14.0 dB | 4.6 (3.0) dB / 13.8 dB |
//! | bit rate made (speech, asked 64 / 96) | 61.4 / 90.5 kbit/s | 66.8 / 99.0 kbit/s |
//! | encoder delay | 1024 samples | 2048 samples |
//! | CPU per s of audio, mono / stereo | 15.0 / 35.9 ms | 4.4 / 10.1 ms |
//! | instructions per s of audio, mono / stereo | 147 M / 353 M | 28 M / 63 M |
//! | heap allocations per frame | 91 (per-chunk work vectors) | 0 (C, its own buffers) |
//! | size added, static aarch64 / ARMv6 | +141,424 B aarch64 (1,997,768 → 2,139,192 B), +149,664 B ARMv6 | about 413 KiB (x86_64; not cross-built) |
//! | C code, licence | none; Apache-2.0 | C++ via `cc`; FDK licence (not OSI, Debian non-free) |
//!
//! Reading it: FDK sounds better on speech (10 dB SNR, 1.5 dB LSD) and costs a quarter of the
//! CPU; it low-passes at about 14 kHz at these rates (hence its low SNR on the sweep's upper
//! half), where `rusty_aac` codes the full band more coarsely. One frame per `rusty_aac` call
//! (three blocks each) measured the same quality at 54.5 ms per second of mono: chunking made
//! it 3.6 times cheaper. Whole-file `rusty_aac` (its intended use) measured SNR 16.8 / 13.0 dB
//! on the speech clips: chunking costs no quality. `rusty_aac` is chosen: it is usable (on a Pi
//! 4 about 150 M instructions per second of mono audio is a few percent of one core; on a Pi
//! Zero, stereo is a real share of its single core: prefer mono there), it adds no C to the
//! static binary, and its licence is plain. FDK stays the candidate behind a feature if the
//! quality is found wanting.
//!
//! Invariants: one packet per block, in block order, with no gap or repeat between chunks;
//! packets are raw `raw_data_block`s (no ADTS) of at most [`super::ring::MAX_FRAME_BYTES`] bytes.

use super::ring::MAX_FRAME_BYTES;
use super::{silent_frame, AudioFormat, SAMPLES_PER_FRAME};

/// The most heap allocations per frame `rusty_aac` makes on this route: 91 measured (a 1 kHz
/// tone, 48 kHz stereo at 96 kbit/s; `tests/zero_alloc.rs` holds it to this bound).
pub const MAX_ALLOCATIONS_PER_FRAME: u64 = 120;

/// Frames encoded per call of the `rusty_aac` encoder.
pub const CHUNK_BLOCKS: usize = 8;

const BLOCK: usize = SAMPLES_PER_FRAME as usize;
/// Blocks a chunk is encoded from: the one before, its own, the one after.
const WINDOW: usize = CHUNK_BLOCKS + 2;

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("AAC encoder: {0}")]
    Encoder(String),
    #[error("AAC encoder made a {0}-byte frame, over the format's limit")]
    TooLarge(usize),
}

/// A streaming AAC-LC encoder (see the module doc).
pub struct Encoder {
    format: AudioFormat,
    bitrate_bps: u32,
    channels: usize,
    /// [`WINDOW`] blocks, interleaved; the first `filled` hold input.
    blocks: Vec<f32>,
    filled: usize,
    /// Which blocks are digital silence.
    silent: [bool; WINDOW],
    /// The chunk's packets, back to back, and their lengths.
    packets: Vec<u8>,
    lens: [usize; CHUNK_BLOCKS],
    /// Block index the first packet of the latest chunk decodes as (-1: the silence before
    /// the stream).
    first_block: i64,
    /// The previous packet's window sequence, to count mismatches.
    last_sequence: Option<u8>,
    mismatches: u64,
    /// The largest packet the ring takes ([`MAX_FRAME_BYTES`]; lowered by a test).
    max_frame_bytes: usize,
}

impl Encoder {
    pub fn new(format: AudioFormat, bitrate_kbps: u32) -> Encoder {
        let channels = usize::from(format.channels);
        Encoder {
            format,
            bitrate_bps: bitrate_kbps.saturating_mul(1000),
            channels,
            blocks: vec![0.0; WINDOW * BLOCK * channels],
            // Block -1, before the stream, is silence.
            filled: 1,
            silent: [true; WINDOW],
            packets: Vec::with_capacity(CHUNK_BLOCKS * MAX_FRAME_BYTES),
            lens: [0; CHUNK_BLOCKS],
            first_block: -1 - CHUNK_BLOCKS as i64,
            last_sequence: None,
            mismatches: 0,
            max_frame_bytes: MAX_FRAME_BYTES,
        }
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames coded `ONLY_LONG` right after an `EIGHT_SHORT` (see the module doc).
    pub fn window_mismatches(&self) -> u64 {
        self.mismatches
    }

    /// Adds the next block (1024 frames, interleaved, `channels` samples each; a short block is
    /// padded with silence). Returns how many packets are ready: 0, or [`CHUNK_BLOCKS`], read
    /// with [`Encoder::packet`] and [`Encoder::first_block`] until the next push.
    pub fn push(&mut self, block: &[f32]) -> Result<usize, EncodeError> {
        let len = BLOCK * self.channels;
        let dst = &mut self.blocks[self.filled * len..(self.filled + 1) * len];
        let n = block.len().min(len);
        dst[..n].copy_from_slice(&block[..n]);
        dst[n..].fill(0.0);
        self.silent[self.filled] = dst.iter().all(|&x| x == 0.0);
        self.filled += 1;
        if self.filled < WINDOW {
            return Ok(0);
        }
        self.first_block += CHUNK_BLOCKS as i64;
        self.packets.clear();
        let coded = if self.silent.iter().all(|&s| s) {
            let frame = silent_frame(self.format.channels);
            for l in &mut self.lens {
                self.packets.extend_from_slice(frame);
                *l = frame.len();
            }
            self.last_sequence = Some(ONLY_LONG);
            Ok(())
        } else {
            self.encode_chunk()
        };
        // The chunk's last two blocks are the next one's context and first block, whether or
        // not the chunk could be coded: a failed chunk is lost, the encoder goes on.
        self.blocks.copy_within(CHUNK_BLOCKS * len.., 0);
        self.silent.copy_within(CHUNK_BLOCKS.., 0);
        self.filled = 2;
        coded.map(|()| CHUNK_BLOCKS)
    }

    /// Packet `i` of the latest chunk (a `raw_data_block`).
    pub fn packet(&self, i: usize) -> &[u8] {
        let at: usize = self.lens[..i.min(CHUNK_BLOCKS)].iter().sum();
        let len = self.lens.get(i).copied().unwrap_or(0);
        &self.packets[at..at + len]
    }

    /// Block index (0: the first block pushed) packet 0 of the latest chunk decodes as;
    /// packet `i` decodes as `first_block() + i`. -1 is the silence before the stream.
    pub fn first_block(&self) -> i64 {
        self.first_block
    }

    fn encode_chunk(&mut self) -> Result<(), EncodeError> {
        let mut e = rusty_aac::AacEncoder::new(rusty_aac::AacEncoderConfig {
            bitrate_bps: self.bitrate_bps,
            ..rusty_aac::AacEncoderConfig::default()
        });
        let fail = |err: rusty_aac::Error| EncodeError::Encoder(err.to_string());
        e.push_pcm(&self.blocks, self.channels as u16, self.format.rate)
            .map_err(fail)?;
        e.finish();
        // Frame 0 is over (silence, the context block): the chunk's frames come after it.
        e.next_packet().map_err(fail)?;
        for i in 0..CHUNK_BLOCKS {
            let p = e.next_packet().map_err(fail)?;
            if p.data.len() > self.max_frame_bytes {
                return Err(EncodeError::TooLarge(p.data.len()));
            }
            self.packets.extend_from_slice(&p.data);
            self.lens[i] = p.data.len();
            let seq = window_sequence(&p.data, self.channels);
            if self.last_sequence == Some(EIGHT_SHORT) && seq == Some(ONLY_LONG) {
                self.mismatches += 1;
            }
            self.last_sequence = seq;
        }
        Ok(())
    }
}

const ONLY_LONG: u8 = 0;
const EIGHT_SHORT: u8 = 2;

/// The window_sequence of a raw_data_block's first element (ISO/IEC 14496-3 Table 4.6): after
/// the 3-bit element id and 4-bit tag, an SCE has global_gain (8) then ics_info; a CPE has
/// common_window (1), then ics_info if it is set. ics_info starts with a reserved bit.
fn window_sequence(block: &[u8], channels: usize) -> Option<u8> {
    let bit = |i: usize| -> Option<u8> { Some((block.get(i / 8)? >> (7 - i % 8)) & 1) };
    let at = if channels == 1 {
        3 + 4 + 8 + 1
    } else {
        if bit(7)? == 0 {
            return None; // no common window: each channel has its own
        }
        3 + 4 + 1 + 1
    };
    Some(bit(at)? << 1 | bit(at + 1)?)
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
    fn silence_gives_the_silent_frames_bytes_a_chunk_at_a_time() {
        let f = AudioFormat::new(48_000, 1).unwrap();
        let mut e = Encoder::new(f, 64);
        for _ in 0..CHUNK_BLOCKS {
            assert_eq!(e.push(&[0.0; 1024]).unwrap(), 0);
        }
        assert_eq!(e.push(&[0.0; 1024]).unwrap(), CHUNK_BLOCKS);
        assert_eq!(e.first_block(), -1);
        for i in 0..CHUNK_BLOCKS {
            assert_eq!(e.packet(i), super::super::SILENT_MONO);
        }
        // Then a chunk every CHUNK_BLOCKS blocks, continuing the block count.
        for _ in 0..CHUNK_BLOCKS - 1 {
            assert_eq!(e.push(&[0.0; 1024]).unwrap(), 0);
        }
        assert_eq!(e.push(&[0.0; 1024]).unwrap(), CHUNK_BLOCKS);
        assert_eq!(e.first_block(), CHUNK_BLOCKS as i64 - 1);
    }

    #[test]
    fn a_tone_is_encoded_near_the_asked_bit_rate_in_frames_that_fit_the_ring() {
        for (channels, kbps) in [(1u8, 64u32), (2, 96)] {
            let f = AudioFormat::new(48_000, channels).unwrap();
            let mut e = Encoder::new(f, kbps);
            let (mut bytes, mut packets) = (0, 0);
            for n in 0..(4 * CHUNK_BLOCKS as u64 + 1) {
                let ready = e.push(&tone(f, n, 440.0)).unwrap();
                for i in 0..ready {
                    let p = e.packet(i);
                    assert!(!p.is_empty() && p.len() <= MAX_FRAME_BYTES);
                    bytes += p.len();
                    packets += 1;
                }
            }
            assert_eq!(packets, 4 * CHUNK_BLOCKS);
            let got = bytes as f64 * 8.0 / (packets as f64 * 1024.0 / 48_000.0) / 1000.0;
            assert!(
                got > 0.3 * f64::from(kbps) && got < 1.2 * f64::from(kbps),
                "{got} kbit/s"
            );
        }
    }

    #[test]
    fn a_chunk_that_fails_is_lost_and_the_next_one_is_coded() {
        let f = AudioFormat::new(48_000, 1).unwrap();
        let mut e = Encoder::new(f, 64);
        e.max_frame_bytes = 1; // every packet of a tone is larger: the chunk fails
        let mut failed = 0;
        let mut coded = 0;
        for n in 0..(3 * CHUNK_BLOCKS as u64 + 1) {
            if n == 2 * CHUNK_BLOCKS as u64 {
                e.max_frame_bytes = MAX_FRAME_BYTES;
            }
            match e.push(&tone(f, n, 440.0)) {
                Err(EncodeError::TooLarge(_)) => failed += 1,
                Err(other) => panic!("{other}"),
                Ok(ready) => coded += ready,
            }
        }
        assert!(failed >= 1, "no chunk failed");
        assert!(coded >= CHUNK_BLOCKS, "nothing coded after the failure");
        assert_eq!(
            e.first_block(),
            (3 * CHUNK_BLOCKS) as i64 - 1 - CHUNK_BLOCKS as i64
        );
    }

    #[test]
    fn the_window_sequence_is_read_from_the_first_element() {
        assert_eq!(
            window_sequence(&super::super::SILENT_MONO, 1),
            Some(ONLY_LONG)
        );
        assert_eq!(
            window_sequence(&super::super::SILENT_STEREO, 2),
            Some(ONLY_LONG)
        );
    }
}
