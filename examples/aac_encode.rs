//! Encodes raw PCM with campush's AAC-LC encoder, for measuring it (`bench/aac.sh`).
//!
//! `aac_encode RATE CHANNELS KBPS < in.f32le > out.aac`: interleaved 32-bit float samples in,
//! ADTS-framed AAC out (the encoder's packets with a 7-byte header each, so that ffmpeg reads
//! them). The encoder's delay is one block (1024 samples): the first packet decodes to the
//! silence before the input. Prints the bit rate made on stderr.

use std::io::{Read, Write};

use campush::audio::encoder::Encoder;
use campush::audio::AudioFormat;

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("RATE CHANNELS KBPS"))
        .collect();
    let [rate, channels, kbps] = args[..] else {
        panic!("usage: aac_encode RATE CHANNELS KBPS < in.f32le > out.aac");
    };
    let format = AudioFormat::new(rate, channels as u8).expect("format");
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    let pcm: Vec<f32> = input
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut e = Encoder::new(format, kbps);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut bytes, mut frames) = (0usize, 0usize);
    let block = 1024 * channels as usize;
    // The input, then one block of silence so that its last block is coded too.
    let tail = vec![0.0; block];
    for b in pcm.chunks(block).chain(std::iter::once(&tail[..])) {
        e.push(b).expect("encode");
        let p = e.packet();
        let len = p.len() + 7;
        let sfi = u8::from(rate == 44_100) + 3;
        let ch = channels as u8;
        let header = [
            0xff,
            0xf1,
            (1 << 6) | (sfi << 2) | (ch >> 2),
            ((ch & 3) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            (((len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ];
        out.write_all(&header).unwrap();
        out.write_all(p).unwrap();
        bytes += p.len();
        frames += 1;
    }
    let seconds = frames as f64 * 1024.0 / f64::from(rate);
    eprintln!(
        "{frames} frames, {:.1} kbit/s made (asked {kbps})",
        bytes as f64 * 8.0 / seconds / 1000.0
    );
}
