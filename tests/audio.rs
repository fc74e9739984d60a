//! The silent AAC track against a real server: nginx-rtmp records what campush sends, and
//! ffprobe/ffmpeg must find an `aac` stream that decodes without errors to pure silence, lasts as
//! long as the video (within 100 ms over a 60 s push), and is interleaved with it by timestamp.
//!
//! Needs nginx with the RTMP module, ffmpeg (libx264) and ffprobe; without them these tests
//! print SKIP and pass, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

/// Pushes `clip` unpaced to `nginx` under `key` with `--audio AUDIO`, expects exit 0, and returns
/// the server's recording.
fn push_unpaced(nginx: &Nginx, key: &str, clip: &Clip, audio: &str, timeout: Duration) -> PathBuf {
    let (url, source) = (nginx.url(key), clip.source());
    let args = [
        "run",
        "--url",
        &url,
        "--source",
        &source,
        "--no-pace",
        "--audio",
        audio,
    ];
    let run = run_campush(&args, timeout);
    assert_eq!(run.code, Some(0), "{run}");
    nginx.recording_of(key)
}

/// Decodes the audio track to 16-bit PCM: (samples, how many are not zero, decoder stderr).
fn decode_audio(path: &Path) -> (usize, usize, String) {
    let dir = tempfile::tempdir().unwrap();
    let pcm = dir.path().join("audio.s16le");
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(path);
    ffmpeg.args(["-map", "0:a", "-f", "s16le"]).arg(&pcm);
    let run = run_bounded(ffmpeg, None, Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{run}");
    let pcm = std::fs::read(&pcm).unwrap();
    let samples = pcm.len() / 2;
    let loud = pcm.chunks(2).filter(|s| s != &[0, 0]).count();
    (samples, loud, run.stderr.trim().to_string())
}

/// How far, at most, a packet's timestamp lies behind one already written: 0 when the file
/// is perfectly interleaved, a muxer's queue depth otherwise.
fn max_lag_behind(packets: &[Packet]) -> i64 {
    let mut newest = i64::MIN;
    let mut lag = 0;
    for p in packets {
        lag = lag.max(newest - p.pts);
        newest = newest.max(p.pts);
    }
    lag
}

#[test]
fn a_60_s_push_carries_a_silent_aac_track_as_long_as_the_video_and_interleaved() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(60);
    let nginx = Nginx::start(NginxOpts::default());
    let rec = push_unpaced(&nginx, "audio60", &clip, "silent", Duration::from_secs(120));

    // The video is untouched by the audio next to it.
    probe_recording(&rec).assert_matches(&clip);
    assert_eq!(audio_stream(&rec), "aac,LC,48000,2");

    let (samples, loud, errors) = decode_audio(&rec);
    assert!(
        errors.is_empty(),
        "the AAC track has decode errors:\n{errors}"
    );
    assert_eq!(loud, 0, "the silent track has {loud} non-zero samples");

    let pk = packets(&rec);
    let (v0, v1) = span(&pk, false).expect("video packets");
    let (a0, a1) = span(&pk, true).expect("audio packets");
    let (video_ms, audio_ms) = (v1 - v0, a1 - a0);
    let decoded_ms = samples as i64 / 2 * 1000 / 48_000;
    eprintln!(
        "video {video_ms} ms from {v0}, audio {audio_ms} ms from {a0} ({} packets, {decoded_ms} ms decoded); max lag behind {} ms",
        pk.iter().filter(|p| p.audio).count(),
        max_lag_behind(&pk)
    );
    assert!(video_ms >= 59_900, "video lasts {video_ms} ms");
    assert_eq!(a0, v0, "audio starts with the video");
    assert!(
        (audio_ms - video_ms).abs() < 100,
        "audio lasts {audio_ms} ms, video {video_ms} ms"
    );
    assert!(
        (decoded_ms - audio_ms).abs() < 100,
        "decoded {decoded_ms} ms"
    );
    // Interleaved by timestamp: no packet arrives after one newer than it (1 ms of rounding).
    let lag = max_lag_behind(&pk);
    assert!(lag <= 1, "a packet came {lag} ms behind a newer one");
}

#[test]
fn mono_44100_from_the_config_file_is_what_the_server_records() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start(NginxOpts::default());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campush.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nspec = \"{}\"\npace = false\n\n[[output]]\nurl = \"{}\"\n\n[audio]\nrate = 44100\nchannels = 1\n",
            clip.source(),
            nginx.url("mono")
        ),
    )
    .unwrap();
    let run = run_campush(
        &["run", "--config", config.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{run}");
    let rec = nginx.recording_of("mono");
    probe_recording(&rec).assert_matches(&clip);
    assert_eq!(audio_stream(&rec), "aac,LC,44100,1");
    let (samples, loud, errors) = decode_audio(&rec);
    assert!(errors.is_empty(), "{errors}");
    assert!(samples > 44_100 * 3, "{samples} samples");
    assert_eq!(loud, 0);
}

#[test]
fn audio_none_sends_video_only() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start(NginxOpts::default());
    let rec = push_unpaced(&nginx, "noaudio", &clip, "none", Duration::from_secs(60));
    probe_recording(&rec).assert_matches(&clip);
    assert_eq!(audio_stream(&rec), "");
}
