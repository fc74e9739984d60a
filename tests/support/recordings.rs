//! What the server recorded, as ffprobe and ffmpeg see it ([`probe_recording`]), and how it
//! compares with the clip that was pushed ([`Recording::assert_matches`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::clips::Clip;
use super::runs::{ffprobe, ffprobe_video, run_bounded};

/// The video stream of a recorded FLV, as ffprobe and ffmpeg see it.
#[derive(Clone, Debug)]
pub struct Recording {
    pub path: PathBuf,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Pictures ffprobe decoded (`nb_read_frames`).
    pub frames: u64,
    /// Video packet timestamps in milliseconds (FLV time base), in file order.
    pub pts: Vec<i64>,
    pub dts: Vec<i64>,
    /// Whether each video packet is flagged as a keyframe, in file order.
    pub keys: Vec<bool>,
    /// Timestamps of the decoded pictures, in the order the decoder output them (display order).
    pub frame_pts: Vec<i64>,
    /// The first video packet is flagged as a keyframe (FLV frame type 1).
    pub first_packet_key: bool,
    /// The first decoded picture is a key frame.
    pub first_frame_key: bool,
    /// stderr of `ffmpeg -v error -i REC -enc_time_base -1 -f null -`: empty when it decodes
    /// cleanly.
    pub decode_errors: String,
}

pub fn probe_recording(path: &Path) -> Recording {
    // One ffprobe pass lists the stream, then packets and decoded frames in file order.
    let entries =
        "stream=codec_name,width,height,nb_read_frames:packet=pts,dts,flags:frame=key_frame,pts";
    let probe = ffprobe_video(path, entries, "compact", &[]);
    let size = fs::metadata(path).map_or(0, |m| m.len());
    assert!(
        probe.code == Some(0),
        "ffprobe failed on {path:?} ({size} bytes):\n{probe}"
    );

    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(path);
    // Frames keep the recording's time base: timestamps closer than the frame rate are for the
    // timestamp checks to report, not the null muxer (as "non monotonically increasing dts").
    ffmpeg.args(["-enc_time_base", "-1", "-f", "null", "-"]);
    let decode = run_bounded(ffmpeg, None, Duration::from_secs(120));
    let mut decode_errors = decode.stderr.trim().to_string();
    if decode.code != Some(0) {
        decode_errors += &format!("\n(ffmpeg exit code {:?})", decode.code);
    }

    let mut rec = Recording {
        path: path.to_path_buf(),
        codec: String::new(),
        width: 0,
        height: 0,
        frames: 0,
        pts: Vec::new(),
        dts: Vec::new(),
        keys: Vec::new(),
        frame_pts: Vec::new(),
        first_packet_key: false,
        first_frame_key: false,
        decode_errors,
    };
    let mut seen_frame = false;
    for line in probe.stdout.lines() {
        let mut fields = line.split('|');
        let section = fields.next().unwrap_or_default();
        let fields: Vec<(&str, &str)> = fields.filter_map(|f| f.split_once('=')).collect();
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("", |(_, v)| *v)
        };
        // "N/A" becomes i64::MIN, which no strictly increasing check accepts.
        let num = |key: &str| get(key).parse::<i64>().unwrap_or(i64::MIN);
        match section {
            "stream" => {
                rec.codec = get("codec_name").to_string();
                (rec.width, rec.height) = (num("width") as u32, num("height") as u32);
                rec.frames = get("nb_read_frames").parse().unwrap_or(0);
            }
            "packet" => {
                if rec.dts.is_empty() {
                    rec.first_packet_key = get("flags").starts_with('K');
                }
                rec.pts.push(num("pts"));
                rec.dts.push(num("dts"));
                rec.keys.push(get("flags").starts_with('K'));
            }
            "frame" => {
                if !seen_frame {
                    seen_frame = true;
                    rec.first_frame_key = get("key_frame") == "1";
                }
                rec.frame_pts.push(num("pts"));
            }
            _ => {}
        }
    }
    rec
}

/// Ok when every value is greater than the one before; else where it first is not.
pub fn strictly_increasing(values: &[i64]) -> Result<(), String> {
    match values.windows(2).position(|w| w[1] <= w[0]) {
        None => Ok(()),
        Some(i) => {
            let around = &values[i.saturating_sub(3)..(i + 5).min(values.len())];
            Err(format!(
                "value #{} ({}) <= #{i} ({}); around it: {around:?}",
                i + 1,
                values[i + 1],
                values[i]
            ))
        }
    }
}

impl Recording {
    /// Everything that differs between this recording and the clip that was pushed.
    pub fn problems_against(&self, clip: &Clip) -> Vec<String> {
        let mut problems = Vec::new();
        if self.codec != "h264" {
            problems.push(format!("codec is {:?}, expected \"h264\"", self.codec));
        }
        if (self.width, self.height) != (clip.width, clip.height) {
            let (w, h) = (clip.width, clip.height);
            problems.push(format!(
                "size is {}x{}, expected {w}x{h}",
                self.width, self.height
            ));
        }
        if self.frames != clip.frames {
            problems.push(format!(
                "decoded {} frames, pushed {}",
                self.frames, clip.frames
            ));
        }
        if self.dts.len() as u64 != clip.frames {
            problems.push(format!(
                "{} video packets, pushed {} frames",
                self.dts.len(),
                clip.frames
            ));
        }
        if let Err(why) = strictly_increasing(&self.dts) {
            problems.push(format!("dts not strictly increasing: {why}"));
        }
        // Pictures are shown in the order they were captured: the decoder outputs them with
        // strictly increasing timestamps (with B-frames, packets carry them out of order), each
        // shown no earlier than it is decoded.
        if let Err(why) = strictly_increasing(&self.frame_pts) {
            problems.push(format!(
                "decoded pictures' pts not strictly increasing: {why}"
            ));
        }
        if let Some(i) =
            (0..self.pts.len().min(self.dts.len())).find(|&i| self.pts[i] < self.dts[i])
        {
            problems.push(format!(
                "packet #{i} is shown before it is decoded: pts {} < dts {}",
                self.pts[i], self.dts[i]
            ));
        }
        if let (Some(first), Some(last)) = (self.frame_pts.first(), self.frame_pts.last()) {
            let expected = 1000.0 / clip.fps as f64;
            let largest = self
                .frame_pts
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or(0);
            if largest as f64 > expected * 1.5 {
                problems.push(format!(
                    "a gap of {largest} ms between shown pictures (pts {first} to {last})"
                ));
            }
        }
        if let (Some(first), Some(last)) = (self.dts.first(), self.dts.last()) {
            let expected = 1000.0 / clip.fps as f64;
            let mean = (last - first) as f64 / (self.dts.len().max(2) - 1) as f64;
            if (mean - expected).abs() > expected * 0.1 {
                problems.push(format!(
                    "mean frame interval {mean:.2} ms, expected {expected:.2} ms"
                ));
            }
        }
        if !self.first_packet_key {
            problems.push("first video packet is not flagged as a keyframe".to_string());
        }
        if !self.first_frame_key {
            problems.push("first decoded picture is not a key frame".to_string());
        }
        if !self.decode_errors.is_empty() {
            problems.push(format!("decode errors:\n{}", self.decode_errors));
        }
        problems
    }

    /// Panics listing every difference from the clip that was pushed.
    pub fn assert_matches(&self, clip: &Clip) {
        let problems = self.problems_against(clip);
        assert!(
            problems.is_empty(),
            "recording {:?} does not match clip {:?}:\n- {}",
            self.path.file_name().unwrap(),
            clip.path.file_name().unwrap(),
            problems.join("\n- ")
        );
    }
}

/// One packet of a recording, in file order.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    pub audio: bool,
    /// Milliseconds.
    pub pts: i64,
    pub duration: i64,
}

/// Every packet of a recording, audio and video, in file order (ffprobe).
pub fn packets(path: &Path) -> Vec<Packet> {
    let entries = "packet=codec_type,pts,duration";
    let run = ffprobe(path, &["-show_entries", entries, "-of", "csv=p=0"]);
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let kind = f.next()?;
            let pts = f.next()?.parse().ok()?;
            let duration = f.next().and_then(|d| d.parse().ok()).unwrap_or(0);
            Some(Packet {
                audio: kind == "audio",
                pts,
                duration,
            })
        })
        .collect()
}

/// `codec_name,profile,sample_rate,channels` of the audio stream, empty when there is none.
pub fn audio_stream(path: &Path) -> String {
    let entries = "stream=codec_name,profile,sample_rate,channels";
    let args = [
        "-select_streams",
        "a",
        "-show_entries",
        entries,
        "-of",
        "csv=p=0",
    ];
    let run = ffprobe(path, &args);
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout.trim().to_string()
}

/// (first pts, end) in milliseconds of the audio or the video packets; None without any.
pub fn span(packets: &[Packet], audio: bool) -> Option<(i64, i64)> {
    let mut mine = packets.iter().filter(|p| p.audio == audio);
    let first = mine.next()?;
    let last = mine.next_back().unwrap_or(first);
    Some((first.pts, last.pts + last.duration))
}
