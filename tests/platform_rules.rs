//! Settings the platforms reject, as a person meets them: `campush check-config` warns of a
//! setting YouTube, Twitch, Facebook or H.264 object to (exit 0, the key, whose rule, the value
//! that works) and refuses one that cannot work (exit 78, at its line); and a running stream
//! whose keyframe spacing or level campush does not set (a file here, a camera in the field) is
//! measured and named once in the log, while the push to a real nginx-rtmp goes on.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const KEY: &str = "sk_live_PLATFORMKEY";

/// The file as a careful owner keeps it (0600): no warning about a key others can read.
fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("campush.toml");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn check_config(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    let run = run_campush(
        &["check-config", path.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(
        !run.stdout.contains(KEY) && !run.stderr.contains(KEY),
        "the key must never be printed:\n{run}"
    );
    run
}

fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("campush: warning:"))
        .collect()
}

#[test]
fn a_keyframe_every_6_s_to_youtube_warns_with_the_gop_that_works_and_the_file_still_checks() {
    let run = check_config(&format!(
        "board = \"rpi-4\"\n\n[source]\nspec = \"rpicam\"\nfps = 25\ngop = 150\n\n\
         [[output]]\nurl = \"rtmp://a.rtmp.youtube.com/live2/{KEY}\"\n"
    ));
    assert_eq!(run.code, Some(0), "a warning is not an error:\n{run}");
    let w = warnings(&run);
    assert_eq!(w.len(), 1, "{run}");
    assert!(
        w[0].contains("source.gop: a keyframe every 6.0 s: YouTube and Facebook take at most 4 s"),
        "{run}"
    );
    assert!(w[0].contains("gop = 50 gives 2 s"), "{run}");
    assert!(run.stdout.contains("gop = 150"), "the description:\n{run}");
}

#[test]
fn the_boards_own_settings_raise_no_warning_for_any_platform() {
    for board in ["rpi-zero-w", "rpi-zero-2w", "rpi-3", "rpi-4", "rpi-5"] {
        let run = check_config(&format!(
            "board = \"{board}\"\n\n[[output]]\nurl = \"rtmp://a.rtmp.youtube.com/live2/{KEY}\"\n\n\
             [[output]]\nurl = \"rtmp://live.twitch.tv/app/{KEY}\"\n\n\
             [[output]]\nurl = \"rtmps://live-api-s.facebook.com:443/rtmp/{KEY}\"\n"
        ));
        assert_eq!(run.code, Some(0), "{board}:\n{run}");
        assert!(warnings(&run).is_empty(), "{board}:\n{run}");
    }
}

#[test]
fn twitch_is_held_to_its_own_keyframe_and_frame_rate_rules() {
    let text = |host: &str| {
        format!(
            "[source]\nspec = \"rpicam\"\nfps = 15\ngop = 45\n\n[[output]]\n\
             url = \"rtmp://{host}/app/{KEY}\"\n"
        )
    };
    let to_twitch = check_config(&text("live.twitch.tv"));
    assert_eq!(to_twitch.code, Some(0), "{to_twitch}");
    let w = warnings(&to_twitch);
    assert_eq!(w.len(), 2, "{to_twitch}");
    assert!(
        w.iter().any(|l| l.contains(
            "source.gop: a keyframe every 3.0 s: Twitch requires one every 2 s; gop = 30"
        )),
        "{to_twitch}"
    );
    assert!(
        w.iter()
            .any(|l| l.contains("source.fps: 15 fps: Twitch's broadcast requirements")),
        "{to_twitch}"
    );
    let to_own_server = check_config(&text("127.0.0.1"));
    assert!(warnings(&to_own_server).is_empty(), "{to_own_server}");
}

#[test]
fn a_level_too_low_for_the_picture_is_refused_at_its_line_with_the_level_that_works() {
    let run = check_config(
        "[source]\nspec = \"rpicam\"\nwidth = 1920\nheight = 1080\nfps = 60\nlevel = \"4.1\"\n\n\
         [[output]]\nurl = \"rtmp://127.0.0.1/live/x\"\n",
    );
    assert_eq!(run.code, Some(78), "{run}");
    assert!(
        run.stderr.contains("line 6"),
        "placed at level's line:\n{run}"
    );
    assert!(
        run.stderr
            .contains("level 4.1 is too low for 1920x1080 at 60 fps: H.264 Table A-1"),
        "{run}"
    );
    assert!(run.stderr.contains("level 4.2 or higher works"), "{run}");
    let fixed = check_config(
        "[source]\nspec = \"rpicam\"\nwidth = 1920\nheight = 1080\nfps = 60\nlevel = \"4.2\"\n\n\
         [[output]]\nurl = \"rtmp://127.0.0.1/live/x\"\n",
    );
    assert_eq!(fixed.code, Some(0), "{fixed}");
    assert!(warnings(&fixed).is_empty(), "{fixed}");
}

#[test]
fn the_pi_encoder_refuses_a_picture_wider_than_1920_on_its_boards_only() {
    let text = |board: &str| {
        format!(
            "board = \"{board}\"\n\n[source]\nwidth = 2028\nheight = 1520\nfps = 30\n\n\
             [[output]]\nurl = \"rtmp://127.0.0.1/live/x\"\n"
        )
    };
    let pi4 = check_config(&text("rpi-4"));
    assert_eq!(pi4.code, Some(78), "{pi4}");
    assert!(
        pi4.stderr
            .contains("the Pi's H.264 encoder takes at most 1920"),
        "{pi4}"
    );
    let pi5 = check_config(&text("rpi-5"));
    assert_eq!(pi5.code, Some(0), "a Pi 5 encodes in software:\n{pi5}");
}

#[test]
fn rtmp_to_facebook_cannot_work_and_no_sound_warns_for_youtube() {
    let plain = check_config(&format!(
        "[source]\nspec = \"stdin\"\n\n[[output]]\nurl = \"rtmp://live-api-s.facebook.com:80/rtmp/{KEY}\"\n"
    ));
    assert_eq!(plain.code, Some(78), "{plain}");
    assert!(plain.stderr.contains("output[1].url"), "{plain}");
    assert!(
        plain
            .stderr
            .contains("Facebook takes RTMPS only: use rtmps://live-api-s.facebook.com:443/rtmp/"),
        "{plain}"
    );
    let silent = check_config(&format!(
        "[source]\nspec = \"stdin\"\n\n[audio]\nsource = \"none\"\n\n[[output]]\n\
         url = \"rtmp://a.rtmp.youtube.com/live2/{KEY}\"\n"
    ));
    assert_eq!(silent.code, Some(0), "{silent}");
    let w = warnings(&silent);
    assert_eq!(w.len(), 1, "{silent}");
    assert!(
        w[0].contains("audio.source: no audio track: YouTube refuses"),
        "{silent}"
    );
}

/// Pushes `clip` unpaced to a real nginx-rtmp; returns campush's run (its log on stderr).
fn push(clip: &Clip) -> Run {
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("platform");
    let run = run_campush(
        &[
            "run",
            "--url",
            &url,
            "--source",
            &clip.source(),
            "--no-pace",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "{run}");
    let rec = probe_recording(&nginx.recording_of("platform"));
    rec.assert_matches(clip);
    run
}

#[test]
fn a_stream_with_a_keyframe_every_5_s_is_named_once_in_the_log_and_still_pushed() {
    if !require_all() {
        return;
    }
    let long = push(&clip_360p_gop_level(21, 150, "3.0"));
    let said: Vec<&str> = long
        .stderr
        .lines()
        .filter(|l| l.contains("keyframe every"))
        .collect();
    assert_eq!(said.len(), 1, "once, not per keyframe:\n{long}");
    assert!(
        said[0].contains(
            "the stream has a keyframe every 5.0 s: YouTube and Facebook take at most 4 s"
        ),
        "{long}"
    );
    assert!(said[0].contains("(60 frames)"), "{long}");

    let two_s = push(&clip_360p_gop_level(21, 60, "3.0"));
    assert!(!two_s.stderr.contains("keyframe every"), "{two_s}");
}

#[test]
fn a_stream_whose_sps_declares_too_low_a_level_is_named_in_the_log() {
    if !require_all() {
        return;
    }
    let low = push(&clip_360p_gop_level(3, 60, "2.1"));
    assert!(
        low.stderr.contains(
            "the stream's SPS: level 2.1 is too low for 640x360 at 30 fps: H.264 Table A-1 \
             allows 792 macroblocks a frame"
        ),
        "{low}"
    );
    assert!(low.stderr.contains("level 3.0 or higher works"), "{low}");
    let right = push(&clip_360p_gop_level(3, 60, "3.0"));
    assert!(!right.stderr.contains("too low"), "{right}");
}
