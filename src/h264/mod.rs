//! H.264 elementary-stream handling: everything between "bytes from an
//! encoder" and "samples for an FLV/RTMP muxer".
//!
//! * [`nal`]: finds NAL units in an Annex B byte stream (ITU-T H.264 Annex B).
//! * [`split`]: groups NAL units into access units, incrementally and without
//!   doing any IO (ITU-T H.264 7.4.1.2.3 and 7.4.1.2.4).
//! * [`params`]: caches the SPS/PPS and builds the AVCDecoderConfigurationRecord
//!   (ITU-T H.264 7.3.2.1, 7.3.2.2; ISO/IEC 14496-15 5.2.4.1.1).
//! * [`avcc`]: rewrites an Annex B access unit as length-prefixed NAL units
//!   (ISO/IEC 14496-15 5.2.3).
//! * [`order`]: display order from the picture order count (ITU-T H.264 8.2.1), for the
//!   composition time of streams with B-frames.
//!
//! ISO/IEC 14496-15 clause numbers are those of its 2004/2010 editions.
//!
//! Invariants shared by all submodules: no input can make them panic (the
//! lints below forbid indexing, `unwrap` and friends outside tests), and the
//! per-frame path (splitting, observing unchanged parameter sets, AVCC
//! conversion into a buffer with enough capacity) never allocates.

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable
    )
)]

pub mod avcc;
pub mod nal;
pub mod order;
pub mod params;
pub mod split;

pub use avcc::annexb_to_avcc;
pub use nal::{nal_type, nal_units, NalUnits};
pub use order::Reorder;
pub use params::{AuInfo, ParamSets, SpsInfo};
pub use split::{split_whole, AccessUnitSplitter, Split, MAX_UNIT_STARTS};

/// Everything that can go wrong while interpreting an H.264 stream.
#[derive(Debug, thiserror::Error)]
pub enum H264Error {
    /// A decoder configuration was requested before an SPS and a PPS arrived.
    #[error("no SPS/PPS seen yet")]
    NoParameterSets,
    /// A sequence parameter set could not be parsed or describes nonsense.
    #[error("bad SPS: {0}")]
    BadSps(String),
    /// A picture parameter set could not be parsed.
    #[error("bad PPS: {0}")]
    BadPps(String),
    /// A parameter set is larger than the fixed-size cache slot for it.
    #[error("{kind} of {len} bytes exceeds the {limit}-byte limit")]
    ParameterSetTooLarge {
        kind: &'static str,
        len: usize,
        limit: usize,
    },
}

/// Helpers shared by the tests of the submodules.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;
    use std::process::Command;

    use crate::testing;

    /// A deterministic xorshift64 generator; enough randomness for fuzz-ish tests.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }

        pub fn byte(&mut self) -> u8 {
            (self.next_u64() >> 32) as u8
        }
    }

    /// Writes the bits of an RBSP, most significant bit first.
    #[derive(Default)]
    pub struct BitWriter {
        bytes: Vec<u8>,
        bits: u32,
    }

    impl BitWriter {
        pub fn bit(&mut self, b: bool) -> &mut Self {
            if self.bits % 8 == 0 {
                self.bytes.push(0);
            }
            if b {
                let last = self.bytes.last_mut().unwrap();
                *last |= 0x80 >> (self.bits % 8);
            }
            self.bits += 1;
            self
        }

        pub fn u(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
            self
        }

        pub fn ue(&mut self, v: u32) -> &mut Self {
            let v1 = u64::from(v) + 1;
            let len = 64 - v1.leading_zeros();
            self.u(len - 1, 0).u(len, v1)
        }

        /// Appends rbsp_trailing_bits and returns the bytes.
        pub fn finish(&mut self) -> Vec<u8> {
            self.bit(true);
            while self.bits % 8 != 0 {
                self.bit(false);
            }
            std::mem::take(&mut self.bytes)
        }
    }

    /// Turns an RBSP into a NAL unit: header byte plus emulation prevention.
    pub fn nal(header: u8, rbsp: &[u8]) -> Vec<u8> {
        let mut out = vec![header];
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(b);
            zeros = if b == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    /// A slice NAL unit whose header starts with the given fields, followed
    /// by a few bytes of pretend slice data.
    pub fn slice(header: u8, first_mb: u32, pps_id: u32) -> Vec<u8> {
        let slice_type = if header & 0x1f == 5 { 7 } else { 5 };
        let mut w = BitWriter::default();
        w.ue(first_mb).ue(slice_type).ue(pps_id).u(32, 0xdead_beef);
        nal(header, &w.finish())
    }

    /// Joins NAL units into an Annex B stream with 4-byte start codes.
    pub fn annexb(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(u);
        }
        out
    }

    /// [`super::split::split_whole`], failing the test on a broken contract.
    pub fn run_splitter(input: &[u8], chunk: impl FnMut() -> usize) -> (Vec<Vec<u8>>, usize) {
        super::split::split_whole(input, chunk).unwrap_or_else(|e| panic!("splitter: {e}"))
    }

    /// Encodes a test pattern with ffmpeg/libx264 into an Annex B file and
    /// returns its path and bytes, or `None` when ffmpeg with libx264 or
    /// ffprobe (for the cross-checks below) is not installed: the test is
    /// skipped loudly, or fails under `CAMPUSH_REQUIRE_TOOLS=1`
    /// ([`crate::testing::skip_or_fail`]).
    /// `args` are the input and encoder options, separated by spaces.
    pub fn encode_clip(name: &str, args: &str) -> Option<(PathBuf, Vec<u8>)> {
        if !(testing::require_ffmpeg_x264() && testing::require_tool("ffprobe")) {
            return None;
        }
        let path =
            std::env::temp_dir().join(format!("h264-test-{}-{name}.h264", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi"])
            .args(args.split_whitespace())
            .args(["-f", "h264"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg could not encode the clip {name}");
        let bytes = std::fs::read(&path).expect("clip is readable");
        Some((path, bytes))
    }

    /// Counts the frames of a clip with ffprobe, independently of our code.
    pub fn ffprobe_frame_count(path: &std::path::Path) -> usize {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .args(["stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.trim().parse().expect("a frame count")
    }

    /// The (position, size) of every packet ffmpeg's own H.264 parser cuts
    /// from a raw clip.
    pub fn ffprobe_packets(path: &std::path::Path) -> Vec<(usize, usize)> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "packet=pos,size"])
            .args(["-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.lines()
            .map(|line| {
                let (size, pos) = line.split_once(',').expect("size,pos");
                (pos.parse().expect("pos"), size.parse().expect("size"))
            })
            .collect()
    }

    pub fn from_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

/// End-to-end checks on clips encoded by libx264, cross-checked with
/// ffprobe; skipped (loudly) when ffmpeg or ffprobe is not installed, unless
/// `CAMPUSH_REQUIRE_TOOLS=1`.
#[cfg(test)]
mod end_to_end_tests {
    use super::test_support::{
        encode_clip, ffprobe_frame_count, ffprobe_packets, run_splitter, XorShift,
    };
    use super::*;

    /// What the whole module makes of a clip.
    struct Summary {
        units: Vec<Vec<u8>>,
        keyframes: usize,
        changes: usize,
        params: ParamSets,
    }

    fn summarize(clip: &[u8]) -> Summary {
        let (units, skipped) = run_splitter(clip, || 64 * 1024);
        assert_eq!(skipped, 0);
        let mut params = ParamSets::new();
        let (mut keyframes, mut changes) = (0, 0);
        let mut avcc = Vec::new();
        for unit in &units {
            let info = params.observe(unit).unwrap();
            assert!(info.has_picture);
            keyframes += usize::from(info.keyframe);
            changes += usize::from(info.params_changed);
            avcc.clear();
            let n = annexb_to_avcc(unit, &mut avcc);
            assert_eq!(n, avcc.len());
            assert_eq!(avcc_units(&avcc), annexb_units_without_aud(unit));
        }
        Summary {
            units,
            keyframes,
            changes,
            params,
        }
    }

    /// (offset, length) of each unit within the clip.
    fn boundaries(units: &[Vec<u8>]) -> Vec<(usize, usize)> {
        let mut at = 0;
        units
            .iter()
            .map(|u| {
                at += u.len();
                (at - u.len(), u.len())
            })
            .collect()
    }

    fn avcc_units(mut avcc: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !avcc.is_empty() {
            let len = u32::from_be_bytes(avcc[..4].try_into().unwrap()) as usize;
            out.push(&avcc[4..4 + len]);
            avcc = &avcc[4 + len..];
        }
        out
    }

    fn annexb_units_without_aud(annexb: &[u8]) -> Vec<&[u8]> {
        nal_units(annexb)
            .filter(|u| nal_type(u) != nal_type::AUD)
            .collect()
    }

    #[test]
    fn splits_a_720p_clip_with_four_slices_and_aud_into_60_frames() {
        let Some((path, clip)) = encode_clip(
            "720p-slices4-aud",
            "-i testsrc2=size=1280x720:rate=30 -t 2 -c:v libx264 -bf 0 -g 30 -x264-params scenecut=0:slices=4:aud=1",
        ) else {
            return;
        };
        let s = summarize(&clip);
        assert_eq!(s.units.len(), 60);
        assert_eq!(s.units.len(), ffprobe_frame_count(&path));
        assert_eq!(boundaries(&s.units), ffprobe_packets(&path));
        assert_eq!((s.keyframes, s.changes), (2, 1));
        for unit in &s.units {
            assert_eq!(nal_type(nal_units(unit).next().unwrap()), nal_type::AUD);
            let slices = nal_units(unit)
                .filter(|u| nal_type::is_vcl(nal_type(u)))
                .count();
            assert_eq!(slices, 4);
        }
        let info = s.params.info().unwrap();
        assert_eq!(
            (info.width, info.height, info.profile_idc, info.level_idc),
            (1280, 720, 100, 31)
        );
        assert_eq!(info.fps, Some(30.0));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn splits_a_1080p_high_profile_clip_with_b_frames_into_60_frames_of_1920x1080() {
        let Some((path, clip)) = encode_clip(
            "1080p-high-bframes",
            "-i testsrc2=size=1920x1080:rate=30 -t 2 -c:v libx264 -profile:v high -g 30",
        ) else {
            return;
        };
        let s = summarize(&clip);
        assert_eq!(s.units.len(), 60);
        assert_eq!(s.units.len(), ffprobe_frame_count(&path));
        assert_eq!(boundaries(&s.units), ffprobe_packets(&path));
        assert_eq!((s.keyframes, s.changes), (2, 1));
        let info = s.params.info().unwrap();
        // 1088 coded lines, 8 cropped.
        assert_eq!((info.width, info.height), (1920, 1080));
        assert_eq!(
            (info.profile_idc, info.level_idc, info.fps),
            (100, 40, Some(30.0))
        );
        assert_eq!(
            (
                info.chroma_format_idc,
                info.bit_depth_luma,
                info.bit_depth_chroma
            ),
            (1, 8, 8)
        );
        let mut record = Vec::new();
        s.params.write_decoder_config(&mut record).unwrap();
        assert_eq!(record[..4], [1, 100, 0, 40]);
        assert_eq!(record[record.len() - 4..], [0xfd, 0xf8, 0xf8, 0]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn splits_a_baseline_clip_with_two_slices_and_no_aud() {
        let Some((path, clip)) = encode_clip(
            "360p-baseline-slices2",
            "-i testsrc2=size=640x360:rate=25 -t 2 -c:v libx264 -profile:v baseline -g 10 -x264-params slices=2",
        ) else {
            return;
        };
        let s = summarize(&clip);
        assert_eq!(s.units.len(), 50);
        assert_eq!(s.units.len(), ffprobe_frame_count(&path));
        assert_eq!(boundaries(&s.units), ffprobe_packets(&path));
        assert_eq!(s.keyframes, 5);
        let info = s.params.info().unwrap();
        assert_eq!(
            (info.width, info.height, info.profile_idc, info.fps),
            (640, 360, 66, Some(25.0))
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn gives_the_same_units_fed_one_byte_at_a_time_as_fed_whole() {
        let Some((path, clip)) = encode_clip(
            "240p-slices4-aud",
            "-i testsrc2=size=320x240:rate=30 -t 2 -c:v libx264 -g 15 -x264-params slices=4:aud=1",
        ) else {
            return;
        };
        let whole = run_splitter(&clip, || usize::MAX);
        assert_eq!(whole.0.len(), 60);
        assert_eq!(run_splitter(&clip, || 1), whole);
        let mut rng = XorShift(2024);
        for _ in 0..20 {
            let max = 1 + rng.below(5000);
            assert_eq!(run_splitter(&clip, || 1 + rng.below(max) as usize), whole);
        }
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn survives_ten_thousand_random_buffers() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let real_sps =
            test_support::from_hex("6764001facd9405005bb0110000003001000000303c0f1831960");
        let pieces: [&[u8]; 10] = [
            &real_sps,
            &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0],
            &[0, 0, 1],
            &[0, 0, 0, 1],
            &[0, 0, 3],
            &[0, 0],
            &[0x67, 0x64, 0x00, 0x1f, 0xac],
            &[0x68, 0xeb],
            &[0x65, 0x88],
            &[0x41, 0x9a],
        ];
        let mut avcc = Vec::new();
        for _ in 0..10_000 {
            let mut buf = Vec::new();
            for _ in 0..rng.below(40) {
                match rng.below(3) {
                    0 => buf.extend_from_slice(pieces[rng.below(pieces.len() as u64) as usize]),
                    _ => buf.push(rng.byte()),
                }
            }
            let chunk = 1 + rng.below(8) as usize;
            let (units, skipped) = run_splitter(&buf, || chunk);
            assert_eq!(units.concat().len() + skipped, buf.len());
            let mut params = ParamSets::new();
            for unit in units.iter().map(Vec::as_slice).chain([buf.as_slice()]) {
                let _ = params.observe(unit);
                let _ = params.write_decoder_config(&mut avcc);
                avcc.clear();
                annexb_to_avcc(unit, &mut avcc);
            }
        }
    }
}
