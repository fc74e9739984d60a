//! The encoder against a real decoder: ffmpeg's AAC decoder reads ADTS-wrapped frames built
//! here. Without ffmpeg these tests print SKIP and pass, unless `CAMPUSH_REQUIRE_TOOLS=1`.

use std::io::Write;
use std::process::{Command, Stdio};

use super::bands::{BANDS, LONG_44_48};
use super::frame::{write_frame, Frame};
use super::mdct::{Mdct, M, N};
use super::spectrum::{cost, Channel};
use super::tables::{BOOKS, ZERO_HCB};
use super::AacEncoder;

fn have_ffmpeg() -> bool {
    let ok = Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CAMPUSH_REQUIRE_TOOLS").is_none_or(|v| v != "1"),
            "ffmpeg is required"
        );
        eprintln!("SKIP: no ffmpeg");
    }
    ok
}

/// The 7-byte ADTS header of an AAC-LC frame of `len` bytes.
fn adts(len: usize, rate: u32, channels: usize) -> [u8; 7] {
    let sfi: u32 = if rate == 48_000 { 3 } else { 4 };
    let total = (len + 7) as u32;
    let ch = channels as u32;
    [
        0xff,
        0xf1,                                      // MPEG-4, layer 0, no CRC
        ((1 << 6) | (sfi << 2) | (ch >> 2)) as u8, // profile LC (1), rate index, channels
        (((ch & 3) << 6) | (total >> 11)) as u8,
        ((total >> 3) & 0xff) as u8,
        (((total & 7) << 5) | 0x1f) as u8,
        0xfc,
    ]
}

/// Decodes raw_data_blocks with ffmpeg: interleaved samples in the encoder's scale (×32768),
/// and ffmpeg's error output.
pub fn decode(frames: &[Vec<u8>], rate: u32, channels: usize) -> (Vec<f32>, String) {
    let mut stream = Vec::new();
    for f in frames {
        stream.extend_from_slice(&adts(f.len(), rate, channels));
        stream.extend_from_slice(f);
    }
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "aac", "-i", "pipe:0"])
        .args(["-f", "f32le", "-c:a", "pcm_f32le", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&stream);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let pcm = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * 32768.0)
        .collect();
    (pcm, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn dequantise(q: i16, sf: u8) -> f32 {
    let a = f32::from(q.unsigned_abs()).powf(4.0 / 3.0) * ((f32::from(sf) - 100.0) / 4.0).exp2();
    if q < 0 {
        -a
    } else {
        a
    }
}

/// A mono frame of given spectra: `q`, a scalefactor per band, one book for every band that
/// has one.
fn build(q: &[i16; 1024], sf: &[u8; BANDS], book: u8, max_sfb: usize) -> (Vec<u8>, Channel) {
    let mut c = Channel {
        q: *q,
        sf: *sf,
        ..Channel::default()
    };
    for b in 0..max_sfb {
        let (lo, hi) = (LONG_44_48[b] as usize, LONG_44_48[b + 1] as usize);
        c.book[b] = book;
        c.bits[b] = cost(&BOOKS[book as usize - 1], &q[lo..hi]);
    }
    for b in max_sfb..BANDS {
        c.book[b] = ZERO_HCB;
    }
    let ms = [false; BANDS];
    let mut out = vec![0u8; 1536];
    let f = Frame {
        channels: std::slice::from_ref(&c),
        max_sfb,
        ms: &ms,
        offsets: &LONG_44_48,
    };
    let len = write_frame(&f, &mut out).expect("the test frame fits");
    out.truncate(len);
    (out, c)
}

/// The spectra ffmpeg decoded, frame by frame: the MDCT of its output over each frame's
/// window (the lapped transform gives the coefficients back exactly).
fn decoded_spectra(pcm: &[f32], frames: usize) -> Vec<Vec<f32>> {
    let mut mdct = Mdct::new();
    (0..frames)
        .map(|j| {
            let mut x = vec![0.0; M];
            mdct.forward(&pcm[j * M..j * M + N], &mut x);
            x
        })
        .collect()
}

/// Simple deterministic noise.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn uniform(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 * 2.0 - 1.0
    }
}

/// Each frame's expected spectra against what ffmpeg decoded.
fn assert_decodes(frames: &[(Vec<u8>, Channel)], what: &str) {
    let mut bytes: Vec<Vec<u8>> = frames.iter().map(|f| f.0.clone()).collect();
    // A zero frame after the last so that its second half is output too.
    let zero = build(&[0; 1024], &[100; BANDS], 1, 0).0;
    bytes.push(zero);
    let (pcm, errors) = decode(&bytes, 48_000, 1);
    assert!(errors.is_empty(), "{what}: {errors}");
    assert_eq!(pcm.len(), bytes.len() * M, "{what}: samples decoded");
    // Output frame j is the first half of frame j's window (ffmpeg drops nothing of an ADTS
    // stream): frame j's window starts at j·1024 of the output.
    let spectra = decoded_spectra(&pcm, frames.len());
    for (j, ((_, c), got)) in frames.iter().zip(&spectra).enumerate() {
        for b in 0..BANDS {
            let (lo, hi) = (LONG_44_48[b] as usize, LONG_44_48[b + 1] as usize);
            for (k, &got) in got.iter().enumerate().take(hi).skip(lo) {
                let want = if c.book[b] == ZERO_HCB {
                    0.0
                } else {
                    dequantise(c.q[k], c.sf[b])
                };
                let err = (got - want).abs();
                assert!(
                    err <= 0.01 * want.abs() + 0.05,
                    "{what}, frame {j}, coefficient {k}: decoded {got}, coded {want} (q {}, sf {})",
                    c.q[k],
                    c.sf[b]
                );
            }
        }
    }
}

#[test]
fn every_codeword_decodes_through_ffmpeg() {
    if !have_ffmpeg() {
        return;
    }
    let mut rng = Lcg(7);
    // Spectral books: one frame per book holding every tuple of it, in index order, with
    // random signs in the unsigned books and escapes of every size up to 8191 in book 11.
    let mut frames = Vec::new();
    for book in &BOOKS {
        let mut q = [0i16; 1024];
        let m = book.modulus() as usize;
        let mut k = 0;
        for idx in 0..book.codes.len() {
            let mut digits = [0usize; 4];
            let mut rest = idx;
            for d in (0..book.dim).rev() {
                digits[d] = rest % m;
                rest /= m;
            }
            for &d in &digits[..book.dim] {
                let v = if book.signed {
                    d as i16 - book.lav as i16
                } else {
                    let mut a = d as i16;
                    if book.number == 11 && a == 16 {
                        a = 16 + (rng.next() % 48) as i16;
                    }
                    if rng.next() % 2 == 0 {
                        -a
                    } else {
                        a
                    }
                };
                q[k] = v;
                k += 1;
            }
        }
        let max_sfb = LONG_44_48.iter().position(|&o| o as usize >= k).unwrap();
        frames.push(build(&q, &[100; BANDS], book.number, max_sfb));
    }
    assert_decodes(&frames, "spectral books");

    // Book 11's escape words at every length (16 to 8191), alone in a frame, amplitudes
    // kept within the decoder's float precision by the scalefactor.
    let mut q = [0i16; 1024];
    for (i, v) in [
        16i16, 31, 32, 63, 64, 127, 128, 255, 256, 511, 512, 1023, 1024, 2047, 2048, 4095, 4096,
        8191,
    ]
    .iter()
    .enumerate()
    {
        q[2 * i] = if i % 2 == 0 { *v } else { -*v };
    }
    let esc = build(&q, &[80; BANDS], 11, 9);
    assert_decodes(&[esc], "escapes");

    // The scalefactor book: every difference -60..=60: 0 is the first band's (from
    // global_gain), the others as +d then -d around 100, 48 per frame after the first band;
    // each band's value sized so that its decoded level is about the same whatever its
    // scalefactor.
    let mut diffs: Vec<i32> = Vec::new();
    for d in 1..=60 {
        diffs.push(d);
        diffs.push(-d);
    }
    let mut frames = Vec::new();
    for chunk in diffs.chunks(BANDS - 1) {
        let mut sf = [100u8; BANDS];
        let mut q = [0i16; 1024];
        let mut s = 100i32;
        for b in 0..BANDS {
            if b > 0 {
                s += chunk.get(b - 1).copied().unwrap_or(0);
            }
            sf[b] = s as u8;
            let level = (1024.0 / ((s as f32 - 100.0) / 4.0).exp2()).powf(0.75);
            q[LONG_44_48[b] as usize] = level.round().max(1.0) as i16;
        }
        frames.push(build(&q, &sf, 11, BANDS));
    }
    assert_decodes(&frames, "scalefactor book");
}

/// Test signals, interleaved, in [-1, 1]: `kind` 0 noise, 1 a speech-like buzz (a 120 Hz
/// pulse train through two resonances, syllables at 4 Hz, hiss bursts), 2 silence.
fn signal(kind: u8, seconds: f32, channels: usize, seed: u64) -> Vec<f32> {
    let rate = 48_000.0;
    let n = (seconds * rate) as usize;
    let mut rng = Lcg(seed);
    let mut out = Vec::with_capacity(n * channels);
    let (mut y1, mut y2, mut z1, mut z2) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    let res = |f: f32, r: f32| {
        (
            2.0 * r * (2.0 * std::f32::consts::PI * f / rate).cos(),
            -r * r,
        )
    };
    let (a1, a2) = res(700.0, 0.995);
    let (b1, b2) = res(1_800.0, 0.99);
    for i in 0..n {
        let t = i as f32 / rate;
        let v = match kind {
            0 => 0.3 * rng.uniform(),
            1 => {
                let pulse = if i % 400 == 0 { 1.0 } else { 0.0 };
                let y = pulse + a1 * y1 + a2 * y2;
                (y2, y1) = (y1, y);
                let z = pulse + b1 * z1 + b2 * z2;
                (z2, z1) = (z1, z);
                let env = (2.0 * std::f32::consts::PI * 4.0 * t).sin().max(0.0);
                let hiss = if (t * 4.0).fract() > 0.8 {
                    0.05 * rng.uniform()
                } else {
                    0.0
                };
                0.02 * env * (y + 0.5 * z) + hiss
            }
            _ => 0.0,
        };
        out.push(v);
        if channels == 2 {
            let noise = if kind == 2 { 0.0 } else { 0.01 * rng.uniform() };
            out.push(0.7 * v + noise);
        }
    }
    out
}

/// Encodes `pcm` block by block: the packets.
fn encode_all(pcm: &[f32], rate: u32, channels: usize, kbps: u32) -> Vec<Vec<u8>> {
    let mut e = AacEncoder::new(channels, rate, kbps * 1000);
    let mut buf = [0u8; crate::audio::ring::MAX_FRAME_BYTES];
    pcm.chunks(1024 * channels)
        .map(|block| {
            let len = e.encode(block, &mut buf).expect("a frame fits");
            buf[..len].to_vec()
        })
        .collect()
}

/// SNR in dB of `decoded` against `pcm`, the decoder's output being one block behind.
fn snr(pcm: &[f32], decoded: &[f32], channels: usize) -> f64 {
    let shift = 1024 * channels;
    let (mut s, mut e) = (0.0f64, 0.0f64);
    for (i, &x) in pcm
        .iter()
        .enumerate()
        .take(decoded.len().saturating_sub(shift))
    {
        let y = f64::from(decoded[i + shift]) / 32768.0;
        s += f64::from(x) * f64::from(x);
        e += (y - f64::from(x)).powi(2);
    }
    10.0 * (s / e.max(1e-30)).log10()
}

#[test]
fn encoded_sound_decodes_close_to_the_input_in_ffmpeg() {
    if !have_ffmpeg() {
        return;
    }
    let cases = [
        (48_000, 1, 64, 1u8, 12.0),
        (48_000, 2, 96, 1, 12.0),
        (44_100, 1, 64, 1, 12.0),
        (44_100, 2, 96, 1, 12.0),
        (48_000, 1, 64, 0, 3.0),
    ];
    for (rate, channels, kbps, kind, min_snr) in cases {
        let pcm = signal(kind, 3.0, channels, 3);
        let packets = encode_all(&pcm, rate, channels, kbps);
        let (decoded, errors) = decode(&packets, rate, channels);
        assert!(errors.is_empty(), "{errors}");
        let snr = snr(&pcm, &decoded, channels);
        let what = format!("{rate} Hz, {channels} ch, {kbps} kbit/s, signal {kind}");
        eprintln!("{what}: SNR {snr:.1} dB");
        assert!(snr > min_snr, "{what}: SNR {snr:.1} dB");
    }
}

#[test]
fn rate_control_holds_the_bit_rate_over_a_minute_of_noise_speech_and_silence() {
    for (channels, kbps) in [(1usize, 64u32), (2, 96)] {
        let mut pcm = Vec::new();
        for (i, kind) in [0u8, 1, 2, 1, 0, 2].iter().enumerate() {
            pcm.extend(signal(*kind, 10.0, channels, i as u64));
        }
        let mut e = AacEncoder::new(channels, 48_000, kbps * 1000);
        let mut buf = [0u8; crate::audio::ring::MAX_FRAME_BYTES];
        let limit = 6144 * channels / 8;
        let mut total = 0usize;
        let mut per_part = [0usize; 6];
        for (n, block) in pcm.chunks(1024 * channels).enumerate() {
            let len = e.encode(block, &mut buf).expect("a frame fits");
            assert!(len <= limit && len <= buf.len(), "frame {n}: {len} bytes");
            // Cumulatively never over the bits asked for.
            total += len;
            let asked = (n + 1) as f64 * 1024.0 / 48_000.0 * f64::from(kbps) * 1000.0 / 8.0;
            assert!(
                total as f64 <= asked + 1.0,
                "frame {n}: {total} bytes, {asked} asked"
            );
            per_part[(n * 1024 / 480_000).min(5)] += len;
        }
        let kbit = |bytes: usize| bytes as f64 * 8.0 / 10.0 / 1000.0;
        eprintln!(
            "{channels} ch {kbps} kbit/s: parts {:?} kbit/s",
            per_part.map(kbit)
        );
        // Noise and speech use what is asked; silence next to nothing (a frame of 4 to 7
        // bytes: element header, ics_info, gains, END).
        for part in [0, 1, 3, 4] {
            assert!(kbit(per_part[part]) > 0.85 * f64::from(kbps), "part {part}");
        }
        assert!(kbit(per_part[2]) < 3.5 && kbit(per_part[5]) < 3.5);
    }
}
