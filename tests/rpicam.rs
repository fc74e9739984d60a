//! The `rpicam` source against a stand-in rpicam-vid (tests/fixtures/rpicam-vid/rpicam-vid,
//! options, messages and exit codes taken from rpicam-apps' source), found first on PATH: video
//! flows, and whatever the app does — dies, freezes, ignores SIGTERM, finds no camera, refuses its
//! options — the source reacts as documented in `src/source/rpicam/mod.rs`. Needs python3.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use campush::h264::{nal_type, nal_units, split_whole};
use campush::pool::Pool;
use campush::source::rpicam::{
    list_cameras, CameraApp, RawRpicam, RpicamSettings, RpicamSource, BACKOFF_MIN,
};
use campush::source::{Source, SourceError};
use campush::status::{Counters, SharedStatus, Status};
use campush::stop::Stop;

mod support;

use support::{group_members, json_number, python3_present, STANDIN, STANDIN_CLIP as CLIP};

/// A directory with an `rpicam-vid` that runs the stand-in with `env`, first on PATH.
struct Camera {
    dir: tempfile::TempDir,
    app: CameraApp,
}

impl Camera {
    fn new(env: &[(&str, &str)]) -> Camera {
        let dir = tempfile::tempdir().unwrap();
        let mut script = String::from("#!/bin/sh\n");
        let log = dir.path().join("runs.jsonl");
        let base = [
            ("RPICAM_STANDIN_CLIP", CLIP.to_string()),
            ("RPICAM_STANDIN_LOG", log.display().to_string()),
        ];
        for (k, v) in base
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .chain(env.iter().copied())
        {
            script += &format!("export {k}='{v}'\n");
        }
        // exec: the stand-in keeps this pid, and so leads the process group campush made.
        script += &format!("exec '{STANDIN}' \"$@\"\n");
        let path = dir.path().join("rpicam-vid");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let search = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let app = CameraApp::find_in(&search).expect("the stand-in is on PATH");
        assert_eq!(app.path, path, "the stand-in comes first on PATH");
        Camera { dir, app }
    }

    /// One line per run of the stand-in: `{"pid": .., "pgid": .., "ppid": .., "argv": [..]}`.
    fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("runs.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn path_var(&self) -> std::ffi::OsString {
        std::env::join_paths(std::iter::once(self.dir.path().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap()
    }
}

fn settings(stall_timeout_s: f64, extra: &[&str]) -> RpicamSettings {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    RpicamSettings::check(&RawRpicam {
        fps: Some(30.0),
        stall_timeout_s: Some(stall_timeout_s),
        rpicam_args: &extra,
        ..RawRpicam::default()
    })
    .unwrap()
}

/// One access unit as the source delivered it.
#[derive(Debug)]
struct Unit {
    bytes: Vec<u8>,
    timestamp_us: u64,
    at: Instant,
    app_pid: Option<u32>,
    restarts: u64,
}

impl Unit {
    fn nal_types(&self) -> Vec<u8> {
        nal_units(&self.bytes).map(nal_type).collect()
    }

    fn starts_decodable(&self) -> bool {
        let t = self.nal_types();
        t.contains(&7) && t.contains(&8) && t.contains(&5)
    }
}

/// The source on its own thread (the thread that starts the app, as the ingest thread does),
/// delivering into a channel.
struct Driver {
    rx: Receiver<Result<Unit, SourceError>>,
    status: SharedStatus,
    /// The source's stop request; its thread ends when the source returns `Ok(None)`.
    stop: Stop,
}

fn drive(app: CameraApp, settings: RpicamSettings) -> Driver {
    let status = SharedStatus::new();
    // As the ingest stage leaves it once video flowed: the source reports only its trouble.
    status.set_source(Status::Streaming);
    let board = status.clone();
    let stop = Stop::new();
    let asked = stop.clone();
    let (tx, rx) = mpsc::sync_channel(1000);
    std::thread::spawn(move || {
        let mut source = RpicamSource::new(app, settings, board, asked);
        let pool = Pool::new(4, source.frame_capacity_hint());
        loop {
            let mut slot = pool.acquire().expect("slot");
            let unit = match source.next_access_unit(&mut slot) {
                Ok(Some(c)) => Ok(Unit {
                    // What the app wrote, after the room the pool leaves in front.
                    bytes: slot.bytes()[campush::pool::FRONT_ROOM..].to_vec(),
                    timestamp_us: c.timestamp_us,
                    at: Instant::now(),
                    app_pid: source.app_pid(),
                    restarts: source.restarts(),
                }),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let end = unit.is_err();
            if tx.send(unit).is_err() || end {
                return;
            }
        }
    });
    Driver { rx, status, stop }
}

impl Driver {
    fn next(&self, within: Duration) -> Unit {
        match self.rx.recv_timeout(within) {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => panic!("the source failed: {e}"),
            Err(RecvTimeoutError::Timeout) => panic!(
                "no access unit within {within:?}; status {}, last error {:?}",
                self.status.get(),
                self.status.last_error()
            ),
            Err(e) => panic!("the source thread ended: {e}"),
        }
    }

    fn error(&self, within: Duration) -> SourceError {
        match self.rx.recv_timeout(within) {
            Ok(Err(e)) => e,
            Ok(Ok(u)) => panic!(
                "expected the source to fail, got a unit of {} bytes",
                u.bytes.len()
            ),
            Err(e) => panic!("expected the source to fail: {e}"),
        }
    }

    /// Whether the source ended (`Ok(None)`, its thread gone) within `within`, whatever it
    /// delivered before.
    fn ended(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the source failed: {e}"),
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Polls the status board until `done` or `within` passes.
    fn wait_status(&self, within: Duration, done: impl Fn(&SharedStatus) -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done(&self.status) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        done(&self.status)
    }
}

/// The clip's access units, as campush's own splitter cuts them.
fn clip_units() -> Vec<Vec<u8>> {
    let data = std::fs::read(CLIP).unwrap();
    split_whole(&data, || 4096).unwrap().0
}

/// Exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

const FIRST_UNIT: Duration = Duration::from_secs(20);
/// Allowance for starting the stand-in (python) and its first two units, on a busy machine.
const START_UP: Duration = Duration::from_secs(4);

#[test]
fn video_flows_at_the_requested_rate_with_every_option_the_pipeline_needs() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[]);
    let driver = drive(cam.app.clone(), settings(5.0, &["--shutter", "10000"]));
    let clip = clip_units();
    let units: Vec<Unit> = (0..45).map(|_| driver.next(FIRST_UNIT)).collect();
    assert!(units[0].starts_decodable(), "{:?}", units[0].nal_types());
    for (n, u) in units.iter().enumerate() {
        assert_eq!(
            u.bytes,
            clip[n % clip.len()],
            "unit {n} is the clip's, whole"
        );
    }
    let stamps: Vec<u64> = units.iter().map(|u| u.timestamp_us).collect();
    assert!(stamps.windows(2).all(|w| w[1] > w[0]), "{stamps:?}");
    let span = (stamps[44] - stamps[14]) as f64 / 30.0;
    assert!(
        (span - 33_333.0).abs() < 2_000.0,
        "30 fps: {span:.0} µs per frame"
    );
    let arrival = units[44].at - units[14].at;
    assert!(
        arrival >= Duration::from_millis(900) && arrival <= Duration::from_millis(3000),
        "the stand-in paces at 30 fps (never faster): 30 frames in {arrival:?}"
    );
    let runs = cam.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    for needed in [
        "\"--timeout\", \"0\"",
        "\"--nopreview\"",
        "\"--codec\", \"h264\"",
        "\"--inline\"",
        "\"--flush\"",
        "\"--output\", \"-\"",
        "\"--libav-format\", \"h264\"",
        "\"--framerate\", \"30\"",
        "\"--intra\", \"60\"",
        "\"--shutter\", \"10000\"",
    ] {
        assert!(runs[0].contains(needed), "{needed} missing: {}", runs[0]);
    }
    let pid = units[0].app_pid.unwrap();
    assert_eq!(
        json_number(&runs[0], "pgid"),
        pid,
        "the app leads its own group"
    );
    assert_eq!(json_number(&runs[0], "ppid"), std::process::id());
}

#[test]
fn an_app_that_dies_mid_stream_is_restarted_and_resumes_with_sps_pps_and_a_keyframe() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_DIE_AFTER", "40"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let driver = drive(cam.app.clone(), settings(5.0, &[]));
    let clip = clip_units();
    let units: Vec<Unit> = (0..70).map(|_| driver.next(FIRST_UNIT)).collect();
    let first = units
        .iter()
        .position(|u| u.restarts == 1)
        .expect("a restart");
    assert_eq!(
        first, 40,
        "the 40 whole units before the crash arrive, the half-written 41st does not"
    );
    for (n, u) in units.iter().enumerate() {
        let k = if n < first { n } else { n - first };
        assert_eq!(
            u.bytes,
            clip[k % clip.len()],
            "unit {n} is a whole unit of the clip"
        );
    }
    assert!(
        units[first].starts_decodable(),
        "{:?}",
        units[first].nal_types()
    );
    assert_ne!(units[first].app_pid, units[0].app_pid);
    assert!(!running(units[0].app_pid.unwrap()));
    let stamps: Vec<u64> = units.iter().map(|u| u.timestamp_us).collect();
    assert!(
        stamps.windows(2).all(|w| w[1] > w[0]),
        "timestamps keep rising across the restart: {stamps:?}"
    );
    assert!(
        stamps[first] - stamps[first - 1] >= BACKOFF_MIN.as_micros() as u64,
        "the gap shows in the timeline"
    );
    assert_eq!(Counters::get(&driver.status.counters.source_restarts), 1);
    assert!(driver.status.summary(0.0).contains("1 source restart(s)"));
    assert_eq!(cam.runs().len(), 2);
}

#[test]
fn a_frozen_app_is_replaced_within_the_stall_timeout_plus_the_backoff() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_FREEZE_AFTER", "20"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let stall = Duration::from_secs(1);
    let driver = drive(cam.app.clone(), settings(stall.as_secs_f64(), &[]));
    let before: Vec<Unit> = (0..19).map(|_| driver.next(FIRST_UNIT)).collect();
    let after = driver.next(Duration::from_secs(15));
    let gap = after.at - before[18].at;
    assert!(
        gap >= stall && gap <= stall + BACKOFF_MIN + START_UP,
        "replaced after {gap:?} (stall timeout {stall:?} + backoff {BACKOFF_MIN:?} + start-up)"
    );
    assert_eq!(after.restarts, 1);
    assert!(after.starts_decodable());
    assert!(
        !running(before[0].app_pid.unwrap()),
        "the frozen app is gone"
    );
    assert!(driver
        .status
        .last_error()
        .unwrap()
        .contains("no video for 1.0 s"));
}

#[test]
fn an_app_that_ignores_sigterm_is_killed() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_FREEZE_AFTER", "10"),
        ("RPICAM_STANDIN_IGNORE_SIGTERM", "1"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let stall = Duration::from_secs(1);
    let driver = drive(cam.app.clone(), settings(stall.as_secs_f64(), &[]));
    let before: Vec<Unit> = (0..9).map(|_| driver.next(FIRST_UNIT)).collect();
    let after = driver.next(Duration::from_secs(20));
    let gap = after.at - before[8].at;
    let grace = campush::source::rpicam::child::KILL_GRACE;
    assert!(
        gap >= stall + grace,
        "SIGKILL only after the grace period: {gap:?}"
    );
    assert!(gap <= stall + grace + BACKOFF_MIN + START_UP, "{gap:?}");
    assert!(!running(before[0].app_pid.unwrap()));
    assert!(
        driver.status.last_error().unwrap().contains("SIGKILL"),
        "{:?}",
        driver.status.last_error()
    );
    assert!(after.starts_decodable());
}

#[test]
fn no_camera_shows_waiting_for_source_with_the_reason_until_one_appears() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_FAIL", "no-cameras"),
        ("RPICAM_STANDIN_BAD_RUNS", "2"),
    ]);
    let driver = drive(cam.app.clone(), settings(5.0, &[]));
    assert!(
        driver.wait_status(Duration::from_secs(10), |s| {
            s.get() == Status::WaitingForSource
                && s.last_error()
                    .is_some_and(|e| e.contains("no cameras available"))
        }),
        "status {}, last error {:?}",
        driver.status.get(),
        driver.status.last_error()
    );
    // Two failed runs (1 s, then 2 s of backoff), then the camera is there.
    let unit = driver.next(Duration::from_secs(20));
    assert!(unit.starts_decodable());
    assert_eq!(unit.restarts, 2);
    assert_eq!(driver.status.get(), Status::Streaming, "video again");
    assert_eq!(Counters::get(&driver.status.counters.source_restarts), 2);
}

#[test]
fn a_stop_request_during_the_backoff_ends_the_source_and_no_app_is_started_again() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[("RPICAM_STANDIN_FAIL", "no-cameras")]);
    let driver = drive(cam.app.clone(), settings(5.0, &[]));
    // Two failed runs: the source now waits out a backoff of 2 s, then 4 s.
    assert!(
        driver.wait_status(Duration::from_secs(10), |_| cam.runs().len() >= 2),
        "runs: {:?}",
        cam.runs()
    );
    let asked = Instant::now();
    driver.stop.request();
    assert!(
        driver.ended(Duration::from_millis(800)),
        "the source still runs 0.8 s after the stop"
    );
    assert!(asked.elapsed() < Duration::from_secs(1));
    let (runs, alive) = (
        cam.runs().len(),
        Counters::get(&driver.status.counters.source_alive),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(cam.runs().len(), runs, "the app was started after the stop");
    assert_eq!(
        Counters::get(&driver.status.counters.source_alive),
        alive,
        "the stopped source still notes itself alive"
    );
}

#[test]
fn a_stop_request_while_streaming_stops_and_reaps_the_app_before_the_source_ends() {
    if !python3_present() {
        return;
    }
    // SIGTERM is not enough: the stop takes the grace period, then SIGKILL.
    let cam = Camera::new(&[("RPICAM_STANDIN_IGNORE_SIGTERM", "1")]);
    let driver = drive(cam.app.clone(), settings(5.0, &[]));
    let pid = driver
        .next(FIRST_UNIT)
        .app_pid
        .expect("the app runs while it delivers");
    driver.stop.request();
    assert!(
        driver.ended(Duration::from_secs(6)),
        "the source still runs 6 s after the stop"
    );
    assert!(
        group_members(pid).is_empty(),
        "the app's group outlived its source"
    );
    assert_eq!(cam.runs().len(), 1, "the app was started again");
}

#[test]
fn a_camera_held_by_another_process_is_waited_for_as_busy() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_FAIL", "busy"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let driver = drive(cam.app.clone(), settings(5.0, &[]));
    assert!(driver.wait_status(Duration::from_secs(10), |s| {
        s.last_error().is_some_and(|e| {
            e.contains("camera busy") && e.contains("failed to acquire camera /base/")
        })
    }));
    assert!(driver.next(Duration::from_secs(20)).starts_decodable());
}

#[test]
fn a_sensor_stall_is_shown_at_once_and_the_looping_app_replaced() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[
        ("RPICAM_STANDIN_FAIL", "device-timeout"),
        ("RPICAM_STANDIN_FAIL_AFTER", "15"),
        ("RPICAM_STANDIN_BAD_RUNS", "1"),
    ]);
    let stall = Duration::from_secs(3);
    let driver = drive(cam.app.clone(), settings(stall.as_secs_f64(), &[]));
    let before: Vec<Unit> = (0..14).map(|_| driver.next(FIRST_UNIT)).collect();
    assert!(
        driver.wait_status(Duration::from_secs(2), |s| s.get()
            == Status::WaitingForSource),
        "the app's own report shows before the stall timeout"
    );
    assert!(before[13].at.elapsed() < stall);
    assert!(driver
        .status
        .last_error()
        .unwrap()
        .contains("device timeout"));
    let after = driver.next(Duration::from_secs(15));
    assert_eq!(after.restarts, 1);
    assert!(after.starts_decodable());
    assert_eq!(driver.status.get(), Status::Streaming);
}

#[test]
fn options_the_app_refuses_end_the_source_as_a_configuration_error() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[]);
    let driver = drive(cam.app.clone(), settings(5.0, &["--frobnicate", "1"]));
    match driver.error(Duration::from_secs(20)) {
        SourceError::Device(m) => {
            assert!(m.contains("unrecognised option '--frobnicate'"), "{m}");
            assert!(m.contains("--timeout 0"), "the command line is shown: {m}");
        }
        other => panic!("expected a configuration error, got {other}"),
    }
    assert_eq!(cam.runs().len(), 1, "not restarted");
}

#[test]
fn cameras_are_listed_from_the_apps_own_output() {
    if !python3_present() {
        return;
    }
    let cam = Camera::new(&[("RPICAM_STANDIN_CAMERAS", "imx219,imx477")]);
    let cams = list_cameras(&cam.app, Duration::from_secs(20)).unwrap();
    let models: Vec<(u32, &str)> = cams.iter().map(|c| (c.index, c.model.as_str())).collect();
    assert_eq!(models, [(0, "imx219"), (1, "imx477")]);
    assert_eq!(cams[0].modes.len(), 8, "two formats of four sizes");
    assert_eq!(cams[1].bit_depth, Some(12));
    let none = Camera::new(&[("RPICAM_STANDIN_CAMERAS", "none")]);
    assert!(list_cameras(&none.app, Duration::from_secs(20))
        .unwrap()
        .is_empty());
}

/// `examples/rpicam_source`, built on demand (a plain `cargo test --test rpicam` builds no
/// examples).
fn example_binary() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--example", "rpicam_source"])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building examples/rpicam_source failed");
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/rpicam-HASH -> target/debug/examples/rpicam_source
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples/rpicam_source");
    assert!(bin.is_file(), "{bin:?}");
    bin
}

#[test]
fn when_the_owner_is_sigkilled_no_process_of_the_apps_group_is_left() {
    if !python3_present() {
        return;
    }
    // Frozen: an app that still writes would die of the broken pipe anyway; one that is
    // silent (starting up, stalled) only dies if it is tied to its owner.
    let cam = Camera::new(&[("RPICAM_STANDIN_FREEZE_AFTER", "12")]);
    let mut owner = Command::new(example_binary())
        .args(["stream", "60"])
        .env("PATH", cam.path_var())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(owner.stdout.take().unwrap()).lines();
    let mut app_pid = None;
    let deadline = Instant::now() + FIRST_UNIT;
    let mut units = 0;
    while units < 10 && Instant::now() < deadline {
        let line = lines.next().expect("the owner prints").unwrap();
        if let Some(pid) = line.strip_prefix("app ") {
            app_pid = Some(pid.parse::<u32>().unwrap());
        }
        units += usize::from(line.starts_with("unit "));
    }
    let app_pid = app_pid.expect("the owner started the app");
    assert_eq!(units, 10, "video flows through the owner");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        group_members(app_pid),
        [app_pid],
        "the app runs (frozen), alone in its group"
    );
    owner.kill().unwrap(); // SIGKILL: no destructor, no cleanup code of ours runs
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(app_pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        group_members(app_pid),
        Vec::<u32>::new(),
        "the app died with its owner (PR_SET_PDEATHSIG)"
    );
}
