//! Checks of the sound scenario a guest ran (`tests/guest/init.sh`, `alsa_scenario`), from the
//! files it left: what campush's ALSA capture read from snd-aloop while the testbed played a
//! 1 kHz tone with a click at the start of every second of samples.
//!
//! - the tone is there: 1 kHz within 0.5 %, from its zero crossings;
//! - the clicks are one second of samples apart, and one second apart by the capture
//!   timestamps too, within 20 ms (the times say when samples were captured);
//! - the timestamps are on CLOCK_MONOTONIC: increasing, consistent with the frame counts
//!   (every read's time follows from the previous read's within 20 ms), and just before the
//!   capture tool's own CLOCK_MONOTONIC reading at its end;
//! - S16 mono and S32 stereo both; no overrun; no allocation by the reads after the first;
//! - the loopback's clock set 1000 ppm slow ("PCM Rate Shift 100000" = 100100) shows in the
//!   timestamps as 1000 ppm within 150 over a 6 s capture, and the nominal 3 s runs show none
//!   within 200 ppm ([`drift_ppm`]: the loopback's pointer moves in 4 ms timer ticks, late
//!   under TCG, so over seconds that is the resolution; 100 ppm would need a minute);
//! - the card unbound under a running capture reads as gone, and once the driver is back the
//!   same name opens again and delivers.
//!
//! And [`verify_push`]: `campush run` with the microphone, pushed with the video, in sync
//! (`mic_push_scenario`, x86_64 guest only), once per [`PushRun`]: a minute with the
//! loopback's clock 100 ppm slow ([`MIC_SLOW`]) and 24 s with it 100 ppm fast ([`MIC_FAST`]),
//! where the microphone is pulled out and put back while the video streams.

use std::path::Path;

const RATE: f64 = 48_000.0;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| format!("<{name}: {e}>"))
}

/// `(frames, time_us)` per read.
fn times(dir: &Path, name: &str) -> Vec<(u64, u64)> {
    read(dir, &format!("{name}.times"))
        .lines()
        .filter_map(|l| {
            let (f, t) = l.split_once(' ')?;
            Some((f.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

/// The first channel's samples in [-1, 1].
fn samples(dir: &Path, name: &str, bytes: usize, channels: usize) -> Vec<f64> {
    let raw = std::fs::read(dir.join(format!("{name}.raw"))).unwrap_or_default();
    raw.chunks_exact(bytes * channels)
        .map(|frame| match bytes {
            2 => f64::from(i16::from_le_bytes([frame[0], frame[1]])) / f64::from(i16::MAX),
            _ => {
                f64::from(i32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]))
                    / f64::from(i32::MAX)
            }
        })
        .collect()
}

/// Frame indices where a click starts.
fn clicks(x: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < x.len() {
        if x[i] > 0.6 {
            out.push(i);
            i += 1000;
        } else {
            i += 1;
        }
    }
    out
}

/// The tone's frequency from upward zero crossings (clicks are a few samples a second).
fn frequency(x: &[f64]) -> f64 {
    let ups = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    ups as f64 / (x.len() as f64 / RATE)
}

/// The capture time of frame `k`, from the read that holds it.
fn time_of(reads: &[(u64, u64)], k: usize) -> f64 {
    let mut start = 0u64;
    for &(frames, t) in reads {
        if (k as u64) < start + frames {
            return t as f64 + (k as u64 - start) as f64 * 1e6 / RATE;
        }
        start += frames;
    }
    f64::NAN
}

/// The drift of the capture clock against CLOCK_MONOTONIC, ppm (positive: the samples come
/// slower than nominal), from the lower envelope of the timestamps: each read's time less the
/// nominal time of the frames before it; the smallest of those in the first third of the
/// reads and in the last third, and the slope between the two. snd-aloop moves its pointer in
/// timer ticks (4 ms) and a starved TCG guest updates it late, so a timestamp can be late
/// against its samples but never early: a least-squares fit through that one-sided noise
/// leans on whichever end had the busier moment, the envelope does not.
fn drift_ppm(reads: &[(u64, u64)]) -> f64 {
    let mut cum = 0u64;
    let residuals: Vec<(f64, f64)> = reads
        .iter()
        .map(|&(f, t)| {
            let at = cum as f64;
            cum += f;
            (at, t as f64 - at * 1e6 / RATE)
        })
        .collect();
    let third = residuals.len() / 3;
    let lowest = |part: &[(f64, f64)]| {
        part.iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
    };
    let a = lowest(&residuals[..third]);
    let b = lowest(&residuals[residuals.len() - third..]);
    (b.1 - a.1) / ((b.0 - a.0) * 1e6 / RATE) * 1e6
}

/// Checks one capture; returns its measured drift (ppm).
fn check_capture(dir: &Path, name: &str, bytes: usize, channels: usize, log: &str) -> f64 {
    let summary = read(
        dir,
        &format!("alsa-capture-{}.log", name.trim_start_matches("alsa-")),
    );
    assert!(
        summary.contains(&format!("channels: {channels}")) && summary.contains("overruns=0 "),
        "{name}: {summary}\n{log}"
    );
    assert!(
        summary.contains("allocs_after_first_read=0 "),
        "{name}: the reads allocate: {summary}"
    );
    let reads = times(dir, name);
    assert!(reads.len() > 50, "{name}: {} reads\n{summary}", reads.len());
    let x = samples(dir, name, bytes, channels);
    let total: u64 = reads.iter().map(|r| r.0).sum();
    assert_eq!(x.len() as u64, total, "{name}: samples and reads disagree");

    let f = frequency(&x);
    assert!(
        (f - 1000.0).abs() < 5.0,
        "{name}: tone at {f:.1} Hz, not 1 kHz"
    );

    let c = clicks(&x);
    assert!(c.len() >= 2, "{name}: clicks at {c:?}");
    for w in c.windows(2) {
        assert_eq!(
            w[1] - w[0],
            RATE as usize,
            "{name}: clicks at {c:?}: samples lost"
        );
    }
    let ct: Vec<f64> = c.iter().map(|&k| time_of(&reads, k)).collect();
    for (i, w) in ct.windows(2).enumerate() {
        let gap_ms = (w[1] - w[0]) / 1e3;
        assert!(
            (gap_ms - 1000.0).abs() <= 20.0 + 1000.0 * 1.2e-3,
            "{name}: click {i} to {}: {gap_ms:.1} ms apart by the capture times",
            i + 1
        );
    }

    for (i, w) in reads.windows(2).enumerate() {
        let expected = w[0].0 as f64 * 1e6 / RATE;
        let got = w[1].1 as f64 - w[0].1 as f64;
        assert!(
            (got - expected).abs() < 20_000.0,
            "{name}: read {i}: {} frames, the next read's time {:.1} ms later",
            w[0].0,
            got / 1e3
        );
    }
    let now_us: u64 = summary
        .split("now_us=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .expect("now_us in the summary");
    let last = reads.last().unwrap();
    let end = last.1 + last.0 * 1_000_000 / RATE as u64;
    assert!(
        end <= now_us + 20_000 && now_us - end < 500_000,
        "{name}: the last samples end at {end} µs, CLOCK_MONOTONIC read {now_us} µs after"
    );
    let ppm = drift_ppm(&reads);
    eprintln!(
        "{name}: {} reads, {total} frames, tone {f:.1} Hz, clicks {:?} ms apart, drift {ppm:+.0} ppm",
        reads.len(),
        ct.windows(2)
            .map(|w| ((w[1] - w[0]) / 1e3).round())
            .collect::<Vec<_>>()
    );
    ppm
}

/// Every check above, on a guest's share.
pub fn verify(share: &Path, log: &str) {
    let probe = read(share, "probe.txt");
    assert!(
        probe.contains("use: [audio] source = \"alsa:hw:Loopback,1\""),
        "probe lacks the loopback's capture side:\n{probe}"
    );
    assert!(
        probe.contains("card 0 id \"Loopback\""),
        "probe lacks the card:\n{probe}"
    );
    for play in ["S16_LE-1", "S32_LE-2", "drift"] {
        let p = read(share, &format!("alsa-play-{play}.log"));
        assert!(p.contains(" 0 underruns"), "player {play}: {p}");
    }
    let ppm = check_capture(share, "alsa-S16_LE-1", 2, 1, log);
    assert!(ppm.abs() < 200.0, "nominal S16 mono: {ppm:+.0} ppm");
    let ppm = check_capture(share, "alsa-S32_LE-2", 4, 2, log);
    assert!(ppm.abs() < 200.0, "nominal S32 stereo: {ppm:+.0} ppm");

    let shift = read(share, "alsa-rate-shift.log");
    assert!(shift.contains("device 1 substream 0 = 100100"), "{shift}");
    let ppm = check_capture(share, "alsa-drift", 2, 1, log);
    assert!(
        (ppm - 1000.0).abs() < 150.0,
        "the loopback 1000 ppm off: the capture times say {ppm:+.0} ppm"
    );

    let unplug = read(share, "alsa-capture-unplug.log");
    for needle in ["alsa-capture: gone after", "alsa-capture: reopened after"] {
        assert!(
            unplug.contains(needle),
            "unplug: lacks {needle:?}:\n{unplug}\n{log}"
        );
    }
    let after: u64 = unplug
        .split("alsa-capture: read ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        after >= RATE as u64,
        "a second of samples after the reopen, not {after}:\n{unplug}"
    );
    let rmmod = read(share, "alsa-rmmod.log");
    eprintln!("rmmod with a PCM open: {}", rmmod.trim());
}

/// One push of the microphone (`init.sh`, `mic_push`): what was asked of it and what it must show.
#[derive(Debug, Clone, Copy)]
pub struct PushRun {
    /// The files' name: `NAME-1.flv`, `campush-NAME.log`, `NAME-play.positions`, ...
    pub name: &'static str,
    /// The loopback's "PCM Rate Shift 100000" for the run (100010: its clock 100 ppm slow).
    pub rate_shift: u32,
    /// The drift the status file must show, within 50 ppm; `None`: the run is shorter than the
    /// drift measurement's one-minute warm-up, so only the file's offset is held (when there).
    pub drift_ppm: Option<f64>,
    /// Clicks that must be compared at least: the video's seconds less a few (a second at each
    /// end is left out, and the recording's first frames may wait for a key frame).
    pub min_clicks: usize,
    /// The microphone is pulled out during the run and put back (`init.sh`, `mic_unplug`): a
    /// second player (`NAME-play2.positions`) plays after it.
    pub unplug: bool,
}

/// The minute with the loopback 100 ppm slow (campush counts a slow microphone negative).
pub const MIC_SLOW: PushRun = PushRun {
    name: "mic",
    rate_shift: 100_010,
    drift_ppm: Some(-100.0),
    min_clicks: 55,
    unplug: false,
};

/// 24 s with the loopback 100 ppm fast: the offset holds the other way; the microphone is
/// pulled out 6 s into the video and put back (a few seconds without clicks).
pub const MIC_FAST: PushRun = PushRun {
    name: "mic2",
    rate_shift: 99_990,
    drift_ppm: None,
    min_clicks: 14,
    unplug: true,
};

/// What [`verify_push`] measured.
#[derive(Debug)]
pub struct PushFigures {
    /// Clicks compared.
    pub clicks: usize,
    /// Each click's place in the recording less where its play time puts it on the video's
    /// clock, ms (positive: the sound comes late), in order.
    pub offsets_ms: Vec<f64>,
    /// The spread of the video frames' own offsets (write time against recorded timestamp):
    /// 10th and 90th percentile less the median, ms.
    pub video_spread_ms: (f64, f64),
    /// Access units written that the recording lacks (a starved campush; at most 10).
    pub video_lost: usize,
    /// The status file's `drift_ppm` and `offset_ms` (NaN: no file, or no such field).
    pub status_drift_ppm: f64,
    pub status_offset_ms: f64,
    /// The smallest and largest step between consecutive audio packets' timestamps, ms.
    pub audio_steps_ms: (i64, i64),
    /// With [`PushRun::unplug`]: the outage, where the decoded audio is digital silence
    /// (start and end, ms on the recording's clock), and the audio packets' timestamps
    /// from just before it to just after it.
    pub outage_ms: Option<(f64, f64)>,
    pub outage_packets_ms: Vec<i64>,
}

/// `"key":NUMBER` in a JSON text.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-' || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Power of `hz` in `x` (Goertzel), per sample squared.
fn power_at(x: &[f64], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / RATE;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
}

/// The recording's audio decoded by ffmpeg: mono samples in [-1, 1] at 48 kHz.
fn decode_audio(flv: &Path) -> Vec<f64> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pcm = dir.path().join("audio.s16le");
    let mut ffmpeg = std::process::Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(flv);
    ffmpeg.args(["-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le"]);
    ffmpeg.arg(&pcm);
    let run = crate::support::run_bounded(ffmpeg, None, std::time::Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "ffmpeg decoding the audio: {run}");
    std::fs::read(&pcm)
        .expect("the decoded audio")
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// `(dts ms, is audio)` of every packet of the recording, in file order.
fn packet_times(flv: &Path) -> Vec<(i64, bool)> {
    let args = ["-show_entries", "packet=codec_type,dts", "-of", "csv=p=0"];
    let run = crate::support::ffprobe(flv, &args);
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout
        .lines()
        .filter_map(|l| {
            let (kind, dts) = l.split_once(',')?;
            Some((dts.trim().parse().ok()?, kind == "audio"))
        })
        .collect()
}

/// What one recording of the push says about its clicks (see [`verify_push`]).
struct Measured {
    /// The decoded audio.
    pcm: Vec<f64>,
    /// Every audio packet's timestamp, ms.
    audio: Vec<i64>,
    offsets_ms: Vec<f64>,
    /// Where each of those clicks is in `pcm`, which player played it (0: the first), and
    /// whether the player went on for the second after it (the tone is there to check).
    at: Vec<usize>,
    player: Vec<usize>,
    full_second: Vec<bool>,
    /// Each of those clicks' number (the second player's counted from 1000).
    keys: Vec<u32>,
    /// Clicks not found within 250 ms of their place.
    missing: Vec<u32>,
    video_spread_ms: (f64, f64),
    /// Access units written that the recording lacks.
    video_lost: usize,
}

/// Decodes `flv` and puts each click against the video's clock (see [`verify_push`]).
fn measure(share: &Path, name: &str, flv: &Path, all: &dyn Fn() -> String) -> Measured {
    let packets = packet_times(flv);
    let audio: Vec<i64> = packets.iter().filter(|p| p.1).map(|p| p.0).collect();
    let video: Vec<i64> = packets.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let pcm = decode_audio(flv);
    // The audio packets (1024 samples each) span about as long as the video (the clicks'
    // checks below say how well they line up).
    let video_span_ms = video.last().unwrap_or(&0) - video.first().unwrap_or(&0);
    assert!(
        video_span_ms > 10_000 && audio.len() as i64 * 1024 / 48 >= video_span_ms - 2_000,
        "{name}: {} audio packets, {} video frames over {video_span_ms} ms\n{}",
        audio.len(),
        video.len(),
        all()
    );
    assert_eq!(
        pcm.len(),
        audio.len() * 1024,
        "every audio packet decodes to 1024 samples"
    );

    // Where the recording's time zero is on CLOCK_MONOTONIC, from the video frames.
    let feed: Vec<f64> = read(share, &format!("{name}-feed.times"))
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ').skip(1).map(|v| v.parse::<f64>().ok());
            Some((f.next()?? + f.next()??) / 2.0)
        })
        .collect();
    // One recorded frame per access unit written, in order, but a host busy elsewhere can
    // stall the feeder, which then writes the late units back to back, and v4l2loopback hands
    // a starved campush only the newest: a few units may be lost. Recorded frame `i` is then
    // unit `i + k` for some `k` up to the number lost; of those candidates, the one whose write
    // time less the frame's recorded time lies nearest the first frames' (where that is, the
    // median over the first 30 paired one to one) is taken: a wrong unit is a frame interval
    // (33 ms) off, the jitter a few. With none lost, every frame is its own unit. A frame's
    // write time less its recorded time says where the recording's zero lies.
    let video_lost = feed.len().saturating_sub(video.len());
    assert!(
        !video.is_empty() && video.len() <= feed.len() && video_lost <= 10,
        "{name}: {} recorded video frames for {} access units written (at most 10 lost)\n{}",
        video.len(),
        feed.len(),
        all()
    );
    let zero_of = |unit: usize, i: usize| feed[unit] - video[i] as f64 * 1000.0;
    let mut first: Vec<f64> = (0..video.len().min(30)).map(|i| zero_of(i, i)).collect();
    first.sort_by(f64::total_cmp);
    let reference = first[first.len() / 2];
    let mut zero: Vec<f64> = (0..video.len())
        .map(|i| {
            (i..=i + video_lost)
                .map(|unit| zero_of(unit, i))
                .min_by(|a, b| (a - reference).abs().total_cmp(&(b - reference).abs()))
                .expect("a unit")
        })
        .collect();
    zero.sort_by(f64::total_cmp);
    let at = |q: f64| zero[((zero.len() - 1) as f64 * q) as usize];
    let zero_us = at(0.5);
    let video_spread_ms = ((at(0.1) - zero_us) / 1e3, (at(0.9) - zero_us) / 1e3);

    // Each click in the decoded audio, near where its play time puts it.
    let first_ms = *video.first().unwrap() as f64 + 500.0;
    let last_ms = (*video.last().unwrap()).min(*audio.last().unwrap()) as f64 - 500.0;
    let audio_start_ms = audio[0] as f64;
    let mut offsets_ms = Vec::new();
    let mut at = Vec::new();
    let mut player = Vec::new();
    let mut full_second = Vec::new();
    let mut keys = Vec::new();
    let mut missing = Vec::new();
    // The player, and after an unplug the second one (its clicks count from its own start).
    for (n, file) in ["play", "play2"].iter().enumerate() {
        let path = format!("{name}-{file}.positions");
        if n > 0 && !share.join(&path).exists() {
            break;
        }
        // When each click sounded, from the player's pointer.
        let positions: Vec<(f64, f64)> = read(share, &path)
            .lines()
            .filter_map(|l| {
                let (f, t) = l.split_once(' ')?;
                Some((f.parse().ok()?, t.parse().ok()?))
            })
            .collect();
        assert!(
            positions.len() > 100,
            "{path}: {} player positions",
            positions.len()
        );
        // Only clicks the pointer went past sounded (the player is stopped once the video is
        // done, or before the unplug).
        let played_to = positions.iter().map(|p| p.0).fold(0.0, f64::max);
        let played_us = |k: f64| {
            let s = k * RATE;
            if s >= played_to {
                return None;
            }
            positions
                .iter()
                .filter(|p| (p.0 - s).abs() <= RATE)
                .map(|p| p.1 - p.0 * 1e6 / RATE)
                .min_by(f64::total_cmp)
                .map(|t0| t0 + k * 1e6)
        };
        for k in 0..200u32 {
            let Some(p) = played_us(f64::from(k)) else {
                continue;
            };
            let expected_ms = (p - zero_us) / 1e3;
            if expected_ms < first_ms.max(audio_start_ms + 500.0) || expected_ms > last_ms {
                continue;
            }
            let from = ((expected_ms - 250.0 - audio_start_ms) * 48.0) as usize;
            let to = (((expected_ms + 250.0 - audio_start_ms) * 48.0) as usize).min(pcm.len());
            // The loudest sample: the click is 0.9 of full scale for 0.5 ms, the tone 0.25;
            // the encoder's pre-echo may cross a threshold before the click, it is not as loud.
            let peak = (from..to).max_by(|&a, &b| pcm[a].abs().total_cmp(&pcm[b].abs()));
            match peak.filter(|&i| pcm[i].abs() > 0.55) {
                Some(i) => {
                    offsets_ms.push(audio_start_ms + i as f64 / 48.0 - expected_ms);
                    at.push(i);
                    player.push(n);
                    full_second.push(f64::from(k + 1) * RATE < played_to);
                    keys.push(k + 1000 * n as u32);
                }
                // The second player's clicks counted from 1000.
                None => missing.push(k + 1000 * n as u32),
            }
        }
    }
    Measured {
        pcm,
        audio,
        offsets_ms,
        at,
        player,
        full_second,
        keys,
        missing,
        video_spread_ms,
        video_lost,
    }
}

/// Copies an FLV file with every audio tag `ms` later.
fn shift_audio(from: &Path, to: &Path, ms: u32) {
    let mut flv = std::fs::read(from).expect("the recording");
    let mut at = 13; // header and PreviousTagSize0
    while at + 11 <= flv.len() {
        let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
        if flv[at] == 8 {
            let ts = u32::from_be_bytes([flv[at + 7], flv[at + 4], flv[at + 5], flv[at + 6]]) + ms;
            let b = ts.to_be_bytes();
            flv[at + 4..at + 7].copy_from_slice(&b[1..]);
            flv[at + 7] = b[0];
        }
        at += 11 + size + 4;
    }
    std::fs::write(to, flv).expect("write the shifted copy");
}

/// The microphone pushed end to end (`init.sh`, `mic_push`), one [`PushRun`]: `campush run
/// --audio alsa:hw:Loopback,1` capturing snd-aloop (its clock off by `run.rate_shift`) while
/// the testbed plays a 1 kHz tone with a click at every second of samples, H.264 from
/// v4l2loopback, to the in-guest recorder; the recording decoded here.
///
/// - the audio track is AAC-LC, mono, 48 kHz, decodes (every packet), and carries the tone:
///   1 kHz stands 20 dB above 500 Hz, 1.5 kHz and 2 kHz between the clicks (after the
///   second, the middle and the last but one click compared);
/// - the clicks line up with the video within 20 ms. One clock for both: the player logs its
///   hardware pointer with CLOCK_MONOTONIC times (`alsa::Pcm::position`), so click `k`
///   (frame `k · 48000`) sounded at the lower envelope of `time - frames / rate` around it
///   plus `k` seconds (the pointer moves in timer ticks and is never ahead of its stamp); the
///   feeder logs when it wrote each access unit (v4l2loopback takes the buffer in that
///   `write`), and the recording has one video tag per unit, in order (a starved campush may
///   lose a few: at most 10, passed over by their times), so each frame says
///   where the recording's time zero lies on CLOCK_MONOTONIC (the median over the frames:
///   what a viewer sees, including how long campush took to take the frame). A click's place
///   in the decoded audio less where its play time puts it on that clock is the offset
///   between sound and picture; 50 ms of it on either side fails (and is seen to: a copy of
///   the recording with every audio tag 50 ms later puts every click 50 ms further off);
/// - every click the player's pointer passed within the video (less half a second at each
///   end) is found, at least `run.min_clicks` of them (the player plays from before campush
///   starts until the video is done, so a slow start shortens nothing), and every offset
///   stays within ±20 ms over the run;
/// - the status file: with `run.drift_ppm`, it shows that drift within 50 ppm (measured after
///   its one-minute warm-up); its `offset_ms`, when there, lies within ±20 ms;
/// - the audio packets' timestamps step by 21 or 22 ms (1024 samples at 48 kHz, to the
///   millisecond) from the first to the last, and span what their samples last: no hole;
/// - with `run.unplug` (the player stopped, the card unbound while campush streams, then back
///   with a second player): campush logs the loss (sending silence) once and the microphone
///   back once, the status file counts one reopen, the decoded audio holds its longest digital
///   silence between the first player's last click and the second's first, the second
///   player's clicks line up as the first's did (the checks above take both players' clicks)
///   and the tone is there after the card came back; the video stays complete meanwhile (the
///   frames' check above);
/// - campush ends with exit code 0 on SIGTERM.
pub fn verify_push(share: &Path, log: &str, run: PushRun) -> PushFigures {
    let name = run.name;
    let campush = read(share, &format!("campush-{name}.log"));
    let all = || {
        format!(
            "campush-{name}.log:\n{campush}\nrecord-{name}.log:\n{}\n{name}-feed.log:\n{}\n\
             {name}-play.log:\n{}\n{log}",
            read(share, &format!("record-{name}.log")),
            read(share, &format!("{name}-feed.log")),
            read(share, &format!("{name}-play.log"))
        )
    };
    for needle in [
        "audio: capturing alsa:hw:Loopback,1",
        "streaming H264",
        "campush exit code 0",
    ] {
        assert!(
            campush.contains(needle),
            "{name}: lacks {needle:?}\n{}",
            all()
        );
    }
    let shift = read(share, &format!("{name}-rate-shift.log"));
    assert!(
        shift.contains(&format!("device 1 substream 0 = {}", run.rate_shift)),
        "{name}: {shift}"
    );
    let play = read(share, &format!("{name}-play.log"));
    assert!(play.contains(" 0 underruns"), "{name}: {}", all());

    let flv = share.join(format!("{name}-1.flv"));
    let stream = crate::support::audio_stream(&flv);
    assert!(
        stream.starts_with("aac,LC,48000,1"),
        "{name}: audio stream {stream:?}\n{}",
        all()
    );
    let m = measure(share, name, &flv, &all);
    let Measured {
        pcm,
        audio,
        offsets_ms,
        at,
        player,
        full_second,
        keys,
        missing,
        video_spread_ms,
        video_lost,
    } = m;
    assert!(
        missing.is_empty(),
        "{name}: no click within 250 ms of where clicks {missing:?} belong\n{}",
        all()
    );
    assert!(
        offsets_ms.len() >= run.min_clicks.max(4),
        "{name}: {} clicks compared\n{}",
        offsets_ms.len(),
        all()
    );

    // No hole in the audio track, an unplug or not: a packet every 1024 samples (21.3 ms,
    // rounded to the millisecond by FLV); a repeated or dropped sample of the drift
    // correction moves a timestamp by 21 µs.
    let steps: Vec<i64> = audio.windows(2).map(|w| w[1] - w[0]).collect();
    let audio_steps_ms = (
        steps.iter().copied().min().unwrap_or(0),
        steps.iter().copied().max().unwrap_or(0),
    );
    assert!(
        steps.iter().all(|s| (21..=22).contains(s)),
        "{name}: audio packets' timestamps step by {audio_steps_ms:?} ms\n{}",
        all()
    );
    let span_ms = (audio[audio.len() - 1] - audio[0]) as f64;
    let nominal_ms = (audio.len() - 1) as f64 * 1024.0 / 48.0;
    assert!(
        (span_ms - nominal_ms).abs() <= 2.0,
        "{name}: {} audio packets over {span_ms} ms, {nominal_ms:.1} ms of samples",
        audio.len()
    );

    // The tone, between the clicks: from 0.1 s to 0.9 s after a click the player went on
    // for a second after; after an unplug, the second player's too.
    let full: Vec<usize> = (0..at.len()).filter(|&i| full_second[i]).collect();
    let mut tone_at = vec![
        at[full[1]],
        at[full[full.len() / 2]],
        at[full[full.len() - 2]],
    ];
    let after: Vec<usize> = full.iter().copied().filter(|&i| player[i] == 1).collect();
    if run.unplug {
        assert!(
            after.len() >= 3,
            "{name}: {} clicks after the microphone came back\n{}",
            after.len(),
            all()
        );
        tone_at.push(at[after[after.len() / 2]]);
    }
    for click in tone_at {
        let quiet = &pcm[click + 4_800..click + 43_200];
        let tone = power_at(quiet, 1000.0);
        for other in [500.0, 1500.0, 2000.0] {
            let p = power_at(quiet, other);
            assert!(
                tone > 100.0 * p,
                "{name}: after the click at sample {click}: 1 kHz at {tone:.2e}, {other} Hz at {p:.2e}"
            );
        }
    }

    // The check sees a skew: the same recording with the sound 50 ms later fails it. The
    // clicks compared are those of both measurements: the shifted track starts and ends 50 ms
    // later, so a click at either end may come into or fall out of the window.
    let skewed = share.join(format!("{name}-1-audio-50ms-late.flv"));
    shift_audio(&flv, &skewed, 50);
    let late = measure(share, name, &skewed, &all);
    let pairs: Vec<(f64, f64)> = late
        .keys
        .iter()
        .zip(&late.offsets_ms)
        .filter_map(|(k, l)| Some((*l, offsets_ms[keys.iter().position(|o| o == k)?])))
        .collect();
    assert!(
        late.missing.is_empty()
            && pairs.len() + 1 >= offsets_ms.len()
            && pairs
                .iter()
                .all(|(l, o)| (l - o - 50.0).abs() < 1.5 && l.abs() > 20.0),
        "{name}: the sound moved 50 ms: {:?} (clicks {:?}; before, {:?})",
        late.offsets_ms,
        late.keys,
        keys
    );
    let _ = std::fs::remove_file(&skewed);
    let campush_status = read(share, &format!("{name}-status.json"));

    // The unplug: the player stopped, the card unbound, campush said so once and sent
    // silence, the card back with a second player, campush said so once; the status file
    // counts one reopen; the decoded audio is digital silence in between, and the track
    // goes on (checked above) with the second player's clicks in place.
    let (mut outage_ms, mut outage_packets_ms) = (None, Vec::new());
    if run.unplug {
        let lost = "audio: alsa:hw:Loopback,1: ";
        let lost_lines: Vec<&str> = campush
            .lines()
            .filter(|l| l.contains(lost) && l.contains("sending silence and opening it again"))
            .collect();
        let back_lines: Vec<&str> = campush
            .lines()
            .filter(|l| l.contains("audio: alsa:hw:Loopback,1 is back"))
            .collect();
        assert!(
            lost_lines.len() == 1 && back_lines.len() == 1,
            "{name}: the microphone lost {} times and back {} times\n{}",
            lost_lines.len(),
            back_lines.len(),
            all()
        );
        assert_eq!(
            json_number(&campush_status, "reopens"),
            Some(1.0),
            "{name}: the status file:\n{campush_status}"
        );
        let play2 = read(share, &format!("{name}-play2.log"));
        assert!(play2.contains(" 0 underruns"), "{name}: {play2}");
        // The longest run of digital silence lies between the last click before the unplug
        // and the first after.
        let (mut best, mut run_from) = ((0, 0), None);
        for (i, v) in pcm.iter().enumerate() {
            match (v.abs() < 1e-4, run_from) {
                (true, None) => run_from = Some(i),
                (false, Some(f)) => {
                    if i - f > best.1 - best.0 {
                        best = (f, i);
                    }
                    run_from = None;
                }
                _ => {}
            }
        }
        let last_before = (0..at.len())
            .filter(|&i| player[i] == 0)
            .map(|i| at[i])
            .max();
        let first_after = (0..at.len())
            .filter(|&i| player[i] == 1)
            .map(|i| at[i])
            .min();
        let start_ms = audio[0] as f64 + best.0 as f64 / 48.0;
        let end_ms = audio[0] as f64 + best.1 as f64 / 48.0;
        assert!(
            best.1 - best.0 >= 24_000
                && last_before.is_some_and(|c| c < best.0)
                && first_after.is_some_and(|c| c >= best.1),
            "{name}: the silence {start_ms:.0} to {end_ms:.0} ms, the clicks at samples {at:?}\n{}",
            all()
        );
        outage_ms = Some((start_ms, end_ms));
        outage_packets_ms = audio
            .iter()
            .copied()
            .filter(|&t| t as f64 >= start_ms - 70.0 && t as f64 <= start_ms + 50.0)
            .chain(
                audio
                    .iter()
                    .copied()
                    .filter(|&t| t as f64 >= end_ms - 50.0 && t as f64 <= end_ms + 70.0),
            )
            .collect();
        eprintln!(
            "{name}: {} | {} | silence from {start_ms:.0} to {end_ms:.0} ms of the recording; \
             audio packets around its ends (ms) {outage_packets_ms:?}",
            lost_lines[0].trim(),
            back_lines[0].trim()
        );
    }
    let figures = PushFigures {
        clicks: offsets_ms.len(),
        offsets_ms,
        video_spread_ms,
        video_lost,
        status_drift_ppm: json_number(&campush_status, "drift_ppm").unwrap_or(f64::NAN),
        status_offset_ms: json_number(&campush_status, "offset_ms").unwrap_or(f64::NAN),
        audio_steps_ms,
        outage_ms,
        outage_packets_ms,
    };
    eprintln!(
        "{name} push: {} clicks, offsets (ms) {:?}; video frames' spread {:.1}/{:+.1} ms, {} lost; \
         status drift {:+.1} ppm, offset {:+.1} ms; audio packets {:?} ms apart; outage {:?} \
         (packets around its ends at {:?} ms)",
        figures.clicks,
        figures
            .offsets_ms
            .iter()
            .map(|o| (o * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        figures.video_spread_ms.0,
        figures.video_spread_ms.1,
        figures.video_lost,
        figures.status_drift_ppm,
        figures.status_offset_ms,
        figures.audio_steps_ms,
        figures.outage_ms,
        figures.outage_packets_ms
    );
    for (i, o) in figures.offsets_ms.iter().enumerate() {
        assert!(
            o.abs() <= 20.0,
            "{name}: click {i}: the sound is {o:+.1} ms off the picture: {:?}",
            figures.offsets_ms
        );
    }
    if let Some(ppm) = run.drift_ppm {
        assert!(
            (figures.status_drift_ppm - ppm).abs() <= 50.0,
            "{name}: the status file's drift, {ppm:+.0} ppm expected:\n{campush_status}"
        );
    }
    assert!(
        figures.status_offset_ms.is_nan() || figures.status_offset_ms.abs() <= 20.0,
        "{name}: the status file's offset:\n{campush_status}"
    );
    figures
}
