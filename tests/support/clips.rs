//! H.264 test clips and the NAL-level helpers to inspect them: Annex B elementary streams made
//! once with ffmpeg + libx264 (a test pattern, `testsrc2`) and cached under the target dir, each
//! with what was put into it ([`Clip`]); [`annexb_nals`], [`NalCounts`] and
//! [`strip_repeated_parameter_sets`] (a stream as a Raspberry Pi encoder makes it).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use super::runs::{ffprobe_video, run_bounded};

/// An H.264 Annex B elementary stream and what was put into it.
#[derive(Clone, Debug)]
pub struct Clip {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pictures in the stream, counted by ffprobe.
    pub frames: u64,
}

impl Clip {
    /// `file:PATH`, for `--source`.
    pub fn source(&self) -> String {
        format!("file:{}", self.path.display())
    }

    pub fn nal_counts(&self) -> NalCounts {
        NalCounts::of(&fs::read(&self.path).unwrap())
    }
}

/// 1080p30 High profile, no B-frames, GOP 60, with SPS/PPS only at the very start (later
/// copies stripped), as a Raspberry Pi hardware encoder produces.
pub fn clip_1080p_high_headers_at_start(secs: u32) -> Clip {
    let args = "-profile:v high -bf 0 -g 60 -x264-params scenecut=0";
    cached_clip(
        &format!("1080p30-high-hdrs-at-start-{secs}s"),
        1920,
        1080,
        secs,
        args,
        true,
    )
}

/// 720p30, four slices per picture and an access unit delimiter before each one, GOP 60.
pub fn clip_720p_slices_aud(secs: u32) -> Clip {
    let args = "-bf 0 -g 60 -x264-params scenecut=0:slices=4:aud=1";
    cached_clip(
        &format!("720p30-slices4-aud-{secs}s"),
        1280,
        720,
        secs,
        args,
        false,
    )
}

/// 640x360 at 30 fps, High profile with three B-frames and a B-pyramid (x264's defaults), GOP
/// 60: pictures arrive in decode order, not display order.
pub fn clip_360p_b_frames(secs: u32) -> Clip {
    let args = "-preset veryfast -profile:v high -bf 3 -b_strategy 0 -g 60 -x264-params scenecut=0:b-pyramid=normal";
    cached_clip(
        &format!("360p30-bframes-{secs}s"),
        640,
        360,
        secs,
        args,
        false,
    )
}

/// 640x360 at 30 fps, GOP 60, no B-frames: a light clip for long pushes.
pub fn clip_360p(secs: u32) -> Clip {
    let args = "-preset veryfast -bf 0 -g 60 -x264-params scenecut=0";
    cached_clip(&format!("360p30-{secs}s"), 640, 360, secs, args, false)
}

/// 640x360 at 30 fps, no B-frames, a keyframe every `gop` frames, the SPS declaring `level`
/// (x264 writes what it is told, even a level too low for the picture).
pub fn clip_360p_gop_level(secs: u32, gop: u32, level: &str) -> Clip {
    let args = format!(
        "-preset veryfast -bf 0 -g {gop} -keyint_min {gop} -level {level} -x264-params scenecut=0"
    );
    cached_clip(
        &format!("360p30-gop{gop}-level{level}-{secs}s"),
        640,
        360,
        secs,
        &args,
        false,
    )
}

/// Generates the clip once (keyed by name and encoder arguments) into the target dir.
fn cached_clip(name: &str, w: u32, h: u32, secs: u32, x264: &str, strip: bool) -> Clip {
    static GENERATING: Mutex<()> = Mutex::new(());
    let fps = 30;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-clips");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{name}-{:016x}.h264",
        fnv1a(&format!("{x264} {strip}"))
    ));
    let _one_at_a_time = GENERATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"]);
        cmd.arg(format!("testsrc2=size={w}x{h}:rate={fps}"));
        cmd.args(["-t", &secs.to_string(), "-c:v", "libx264"])
            .args(x264.split(' '));
        cmd.args(["-pix_fmt", "yuv420p", "-f", "h264"]).arg(&tmp);
        let run = run_bounded(cmd, None, Duration::from_secs(300));
        assert!(run.code == Some(0), "ffmpeg could not make {name}:\n{run}");
        if strip {
            let stripped = strip_repeated_parameter_sets(&fs::read(&tmp).unwrap());
            fs::write(&tmp, stripped).unwrap();
        }
        fs::rename(&tmp, &path).unwrap();
    }
    let frames = ffprobe_count_frames(&path, &["-f", "h264"]);
    Clip {
        path,
        width: w,
        height: h,
        fps,
        frames,
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn ffprobe_count_frames(path: &Path, input_opts: &[&str]) -> u64 {
    let run = ffprobe_video(path, "stream=nb_read_frames", "csv=p=0", input_opts);
    let count = run.stdout.trim().trim_end_matches(',');
    count
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe could not count frames of {path:?}:\n{run}"))
}

/// One NAL unit of an Annex B stream: `start` is where its start code begins, `header` the
/// index of its NAL header byte, `end` where the next start code (or the data) ends.
#[derive(Clone, Copy, Debug)]
pub struct Nal {
    pub start: usize,
    pub header: usize,
    pub end: usize,
}

/// Splits Annex B data at `00 00 01` start codes. Zero bytes before a start code belong to
/// it (a 4-byte start code or trailing_zero_8bits), never to the previous NAL unit.
pub fn annexb_nals(data: &[u8]) -> Vec<Nal> {
    let mut nals: Vec<Nal> = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let floor = nals.last().map_or(0, |nal| nal.header + 1);
        let mut start = i;
        while start > floor && data[start - 1] == 0 {
            start -= 1;
        }
        if let Some(prev) = nals.last_mut() {
            prev.end = start;
        }
        nals.push(Nal {
            start,
            header: i + 3,
            end: data.len(),
        });
        i += 3;
    }
    nals.retain(|nal| nal.header < nal.end);
    nals
}

/// Keeps SPS (7) and PPS (8) units only before the first slice; drops every later copy.
pub fn strip_repeated_parameter_sets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut seen_slice = false;
    for nal in annexb_nals(data) {
        let nal_type = data[nal.header] & 0x1f;
        seen_slice |= (1..=5).contains(&nal_type);
        if !(seen_slice && (nal_type == 7 || nal_type == 8)) {
            out.extend_from_slice(&data[nal.start..nal.end]);
        }
    }
    out
}

/// How many NAL units of each kind a stream holds.
#[derive(Clone, Debug, Default)]
pub struct NalCounts {
    pub sps: usize,
    pub pps: usize,
    pub idr_slices: usize,
    pub non_idr_slices: usize,
    pub aud: usize,
    /// Parameter sets that come after the first slice.
    pub parameter_sets_after_first_slice: usize,
}

impl NalCounts {
    pub fn of(data: &[u8]) -> NalCounts {
        let mut counts = NalCounts::default();
        for nal in annexb_nals(data) {
            let slices_so_far = counts.idr_slices + counts.non_idr_slices;
            match data[nal.header] & 0x1f {
                1 => counts.non_idr_slices += 1,
                5 => counts.idr_slices += 1,
                7 => counts.sps += 1,
                8 => counts.pps += 1,
                9 => counts.aud += 1,
                _ => continue,
            }
            if slices_so_far > 0 && matches!(data[nal.header] & 0x1f, 7 | 8) {
                counts.parameter_sets_after_first_slice += 1;
            }
        }
        counts
    }
}
