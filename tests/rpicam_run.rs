//! `campush run --config FILE` with a Camera Module, end to end: the real binary, the stand-in
//! rpicam-vid (tests/fixtures/rpicam-vid, first on PATH) as the camera, and a real nginx-rtmp
//! recording what arrives; ffprobe and ffmpeg judge the recording.
//!
//! What it proves: `spec = "rpicam"` streams and the recording decodes; a camera app that dies
//! mid-stream is started again, counted (status file, summary line), and the push resumes on a
//! keyframe; one whose camera times out and that exits shows "waiting for source" in the status
//! file, then "streaming" again once its replacement delivers; a frozen one is replaced within
//! `stall_timeout_s` plus the backoff; when campush
//! itself is SIGKILLed no process of the app's group is left; `spec = "auto"` picks the stand-in
//! camera, and one plugged in after the start; and the README's walkthrough, `board = "rpi-4"`
//! with one `[[output]]`, streams with the board's settings reaching the camera app.
//!
//! Needs nginx with the RTMP module, ffmpeg, ffprobe and python3; without them each test prints
//! SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// A configuration streaming `[source]` (TOML lines) to `url`, its status file in `dir`.
fn config(dir: &Path, source: &str, url: &str) -> String {
    format!(
        "[source]\n{source}\n[[output]]\nurl = \"{url}\"\n\
         [status]\nfile = \"{}\"\nsummary_interval_s = 1\n",
        dir.join("status.json").display()
    )
}

/// campush on `config`, with the stand-in first on PATH and the system paths below its dir.
fn start(camera: &StandIn, config: impl FnOnce(&Path) -> String) -> Campush {
    let path = camera.path_var();
    let root = tempfile::tempdir().unwrap().keep();
    Campush::start_with_env(
        config,
        &[
            ("PATH", path.as_os_str()),
            ("CAMPUSH_ROOT", root.as_os_str()),
        ],
    )
}

fn status_file(campush: &Campush) -> String {
    std::fs::read_to_string(campush.dir().join("status.json")).unwrap_or_default()
}

/// A counter of the status file (`"frames_sent":123`).
fn counter(status: &str, key: &str) -> u64 {
    let Some(at) = status.find(&format!("\"{key}\":")) else {
        return 0;
    };
    status[at + key.len() + 3..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the status file's `key` reaches `at_least`.
fn wait_counter(campush: &Campush, key: &str, at_least: u64, timeout: Duration) {
    let reached = poll_until(timeout, || counter(&status_file(campush), key) >= at_least);
    assert!(
        reached,
        "{key} did not reach {at_least} within {timeout:?}: {}\n{}",
        status_file(campush),
        campush.log()
    );
}

fn tools() -> bool {
    require_all() && python3_present()
}

/// Indices of the packets that follow a gap of more than `ms` in the recording's timestamps.
fn gaps(rec: &Recording, ms: i64) -> Vec<usize> {
    (1..rec.dts.len())
        .filter(|&i| rec.dts[i] - rec.dts[i - 1] > ms)
        .collect()
}

#[test]
fn a_camera_app_that_dies_mid_stream_is_restarted_counted_and_the_push_resumes_on_a_keyframe() {
    if !tools() {
        return;
    }
    // The first run dies after 45 frames (half a unit written, then SIGKILL); the second runs on.
    let camera = StandIn::new(&[
        ("RPICAM_STANDIN_DIE_AFTER", "45"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("cam");
    let mut campush = start(&camera, |dir| {
        config(dir, "spec = \"rpicam\"\nfps = 30", &url)
    });
    wait_counter(&campush, "source_restarts", 1, Duration::from_secs(30));
    // Two seconds of the second run.
    let sent = counter(&status_file(&campush), "frames_sent");
    wait_counter(&campush, "frames_sent", sent + 60, Duration::from_secs(30));
    wait_until("the summary line", Duration::from_secs(10), || {
        campush.log().contains("1 source restart(s)")
    });
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0), "{}", campush.log());

    let log = campush.log();
    assert!(log.contains("rpicam-vid: started (pid "), "{log}");
    assert!(log.contains(", restart 1)"), "{log}");
    assert_eq!(camera.runs().len(), 2, "{:?}", camera.runs());
    let rec = probe_recording(&nginx.recording_of("cam"));
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    assert!(rec.first_packet_key && rec.first_frame_key);
    strictly_increasing(&rec.dts).unwrap();
    let after = gaps(&rec, 500);
    assert_eq!(after.len(), 1, "one gap, at the restart: {after:?}");
    assert!(after[0] >= 40, "the first run's frames arrived: {after:?}");
    assert!(
        rec.keys[after[0]],
        "the packet after the restart is a keyframe"
    );
    assert!(rec.frames >= 45 + 60, "{} frames decoded", rec.frames);
}

/// The `"status"` of a status file (`{"status":"streaming",...`), empty if there is none yet.
fn status_of(status: &str) -> String {
    status
        .strip_prefix("{\"status\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_camera_that_times_out_and_exits_shows_waiting_in_the_status_file_then_streams_again() {
    if !tools() {
        return;
    }
    // The first run stalls after 45 frames: libcamera's dequeue timeout, the app's own restart
    // of the camera fails and it exits. The second run streams.
    let camera = StandIn::new(&[
        ("RPICAM_STANDIN_FAIL", "device-timeout-exit"),
        ("RPICAM_STANDIN_FAIL_AFTER", "45"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("timeout");
    let mut campush = start(&camera, |dir| {
        config(dir, "spec = \"rpicam\"\nfps = 30", &url)
    });
    // Every status the file shows, in order, each once (the first run's start shows waiting
    // too: the source waits for its first video).
    let mut shown: Vec<String> = Vec::new();
    let mut file_while_waiting = String::new();
    let back = poll_until(Duration::from_secs(60), || {
        let file = status_file(&campush);
        let now = status_of(&file);
        if !now.is_empty() && shown.last() != Some(&now) {
            shown.push(now);
        }
        let Some(streamed) = shown.iter().position(|s| s == "streaming") else {
            return false;
        };
        let waited = shown[streamed..].iter().any(|s| s == "waiting_for_source");
        if waited && file_while_waiting.is_empty() && status_of(&file) == "waiting_for_source" {
            file_while_waiting = file;
        }
        waited && shown.last().is_some_and(|s| s == "streaming")
    });
    assert!(
        back,
        "the status file showed {shown:?}, not streaming, waiting, streaming again\n{}",
        campush.log()
    );
    assert!(
        file_while_waiting.contains("\"last_error\":\"rpicam-vid: "),
        "{file_while_waiting}"
    );
    wait_counter(&campush, "source_restarts", 1, Duration::from_secs(10));
    let sent = counter(&status_file(&campush), "frames_sent");
    wait_counter(&campush, "frames_sent", sent + 30, Duration::from_secs(30));
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0), "{}", campush.log());
    let log = campush.log();
    assert!(log.contains("Device timeout detected"), "{log}");
    assert!(
        log.contains("failed to start camera; starting it again in 1.0 s"),
        "{log}"
    );
    assert_eq!(camera.runs().len(), 2, "{:?}", camera.runs());
    let rec = probe_recording(&nginx.recording_of("timeout"));
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    let after = gaps(&rec, 500);
    assert_eq!(after.len(), 1, "one gap, at the restart: {after:?}");
    assert!(
        rec.keys[after[0]],
        "the packet after the restart is a keyframe"
    );
}

#[test]
fn a_frozen_camera_app_is_replaced_within_the_stall_timeout_plus_the_backoff() {
    if !tools() {
        return;
    }
    let camera = StandIn::new(&[
        ("RPICAM_STANDIN_FREEZE_AFTER", "30"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("frozen");
    let mut campush = start(&camera, |dir| {
        config(
            dir,
            "spec = \"rpicam\"\nfps = 30\nstall_timeout_s = 1.5",
            &url,
        )
    });
    wait_counter(&campush, "source_restarts", 1, Duration::from_secs(30));
    let sent = counter(&status_file(&campush), "frames_sent");
    wait_counter(&campush, "frames_sent", sent + 45, Duration::from_secs(30));
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0), "{}", campush.log());
    assert!(
        campush.log().contains("no video for 1.5 s; stopped"),
        "{}",
        campush.log()
    );

    let rec = probe_recording(&nginx.recording_of("frozen"));
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    let after = gaps(&rec, 500);
    assert_eq!(after.len(), 1, "one gap: {after:?}");
    let gap_ms = rec.dts[after[0]] - rec.dts[after[0] - 1];
    // stall timeout 1.5 s + backoff 1 s, plus starting python and its first frame on a busy
    // machine (the app stopped at once: the stand-in does not ignore SIGTERM).
    assert!(
        gap_ms <= 1500 + 1000 + 2500,
        "the frozen app was replaced after {gap_ms} ms"
    );
    assert!(
        rec.keys[after[0]],
        "the packet after the restart is a keyframe"
    );
}

#[test]
fn when_campush_is_sigkilled_no_process_of_the_camera_apps_group_is_left() {
    if !tools() {
        return;
    }
    // Frozen: an app that still writes would die of the broken pipe anyway; a silent one only
    // dies if it is tied to campush.
    let camera = StandIn::new(&[("RPICAM_STANDIN_FREEZE_AFTER", "20")]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("killed");
    let mut campush = start(&camera, |dir| {
        config(dir, "spec = \"rpicam\"\nstall_timeout_s = 60", &url)
    });
    wait_counter(&campush, "frames_in", 15, Duration::from_secs(30));
    let runs = camera.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let pgid = json_number(&runs[0], "pgid");
    assert_eq!(
        pgid,
        json_number(&runs[0], "pid"),
        "the app leads its group"
    );
    assert_eq!(
        json_number(&runs[0], "ppid"),
        campush.pid(),
        "campush's child"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(group_members(pgid), [pgid], "the app runs (frozen)");

    campush.signal(libc::SIGKILL);
    campush.wait_exit(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        group_members(pgid),
        Vec::<u32>::new(),
        "the app died with campush"
    );
}

#[test]
fn auto_picks_the_camera_the_app_lists_and_one_plugged_in_after_the_start() {
    if !tools() {
        return;
    }
    // No camera at first: the stand-in reads its list from a file at every start.
    let plug = tempfile::tempdir().unwrap();
    let cameras = plug.path().join("cameras");
    let camera = StandIn::new(&[("RPICAM_STANDIN_CAMERAS_FILE", cameras.to_str().unwrap())]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("auto");
    let mut campush = start(&camera, |dir| config(dir, "spec = \"auto\"", &url));
    wait_until(
        "the look that finds nothing",
        Duration::from_secs(20),
        || {
            campush
                .log()
                .contains("auto: found no camera: rpicam-vid --list-cameras: no cameras")
        },
    );
    wait_until("waiting for source", Duration::from_secs(10), || {
        status_file(&campush).contains("\"status\":\"waiting_for_source\"")
    });
    assert_eq!(counter(&status_file(&campush), "frames_in"), 0);

    std::fs::write(&cameras, "imx219").unwrap();
    wait_counter(&campush, "frames_sent", 60, Duration::from_secs(40));
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0), "{}", campush.log());
    let log = campush.log();
    assert!(
        log.contains("auto: using rpicam:0: rpicam-vid lists camera 0: imx219"),
        "{log}"
    );
    let rec = probe_recording(&nginx.recording_of("auto"));
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    assert!(rec.first_frame_key && rec.frames >= 60);
}

#[test]
fn the_readme_walkthrough_a_board_and_one_output_streams_a_camera_module() {
    if !tools() {
        return;
    }
    let camera = StandIn::new(&[]);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("walkthrough");
    let runtime = tempfile::tempdir().unwrap();
    let path = camera.path_var();
    // Exactly the README's file: a board and one destination (its key in a key file),
    // nothing else.
    let (app_url, key) = url.rsplit_once('/').unwrap();
    let key_file = runtime.path().join("stream.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let key_file = key_file.display().to_string();
    let mut campush = Campush::start_with_env(
        |_| {
            format!(
                "board = \"rpi-4\"\n\n[[output]]\nurl = \"{app_url}\"\nkey_file = \"{key_file}\"\n"
            )
        },
        &[
            ("PATH", path.as_os_str()),
            ("CAMPUSH_ROOT", runtime.path().as_os_str()),
            ("RUNTIME_DIRECTORY", runtime.path().as_os_str()),
        ],
    );
    let status = || std::fs::read_to_string(runtime.path().join("status.json")).unwrap_or_default();
    let streamed = poll_until(Duration::from_secs(40), || {
        counter(&status(), "frames_sent") >= 60
    });
    assert!(streamed, "{}\n{}", status(), campush.log());
    assert!(
        status().contains("\"status\":\"streaming\""),
        "{}",
        status()
    );
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0), "{}", campush.log());

    assert!(
        campush.log().contains("auto: using rpicam:0"),
        "{}",
        campush.log()
    );
    // The board's 1080p30 at 4.5 Mbit/s and a keyframe every 2 s reached the camera app.
    let runs = camera.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    for words in [
        "\"--width\", \"1920\", \"--height\", \"1080\"",
        "\"--framerate\", \"30\"",
        "\"--bitrate\", \"4500000\"",
        "\"--intra\", \"60\"",
    ] {
        assert!(runs[0].contains(words), "{words} not in {}", runs[0]);
    }
    let rec = probe_recording(&nginx.recording_of("walkthrough"));
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    assert!(rec.first_frame_key && rec.frames >= 60);
}

#[test]
fn check_config_shows_the_camera_apps_settings_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campush.toml");
    std::fs::write(
        &file,
        "board = \"rpi-4\"\n[source]\nspec = \"rpicam:1\"\nhflip = true\nawb = \"cloudy\"\n\
         [[output]]\nurl = \"rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl\"\n",
    )
    .unwrap();
    let run = run_campush(
        &["check-config", file.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stdout.contains("source = rpicam:1\n"), "{run}");
    assert!(
        run.stdout.contains(
            "camera: camera 1, size = 1920x1080, fps = 30, bitrate = 4500 kbit/s, gop = 60, \
             awb = cloudy, hflip, stall_timeout_s = 5"
        ),
        "{run}"
    );
    assert!(!run.stdout.contains("abcd"), "{run}");
}
