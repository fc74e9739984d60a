//! campush as a service, end to end: the real binary under a pretend systemd (a notify socket
//! in a temporary directory) and a pretend board (a `/sys/class/leds/ACT` and a boot partition
//! below `CAMPUSH_ROOT`, also a temporary directory), streaming to the in-process RTMP server.
//! Every wait is bounded; nothing is written outside the temporary directories.

mod inproc;
mod support;

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inproc::ScuffleServer;
use support::{poll_until, python3_present, signal, wait_child, StandIn, CAMPUSH};

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);

/// A temporary root with a boot partition, an onboard LED, and systemd's notify socket.
struct Board {
    root: tempfile::TempDir,
    notify: UnixDatagram,
    messages: Vec<String>,
}

impl Board {
    fn new() -> Board {
        let root = tempfile::tempdir().unwrap();
        let led = root.path().join("sys/class/leds/ACT");
        std::fs::create_dir_all(&led).unwrap();
        std::fs::write(led.join("trigger"), "none rc-feedback [mmc0] timer\n").unwrap();
        std::fs::write(led.join("brightness"), "0\n").unwrap();
        std::fs::write(led.join("max_brightness"), "255\n").unwrap();
        let notify = UnixDatagram::bind(root.path().join("notify")).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Board {
            root,
            notify,
            messages: Vec::new(),
        }
    }

    fn write_config(&self, text: &str) -> PathBuf {
        let path = self.root.path().join("boot/firmware/campush.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn led(&self, file: &str) -> String {
        std::fs::read_to_string(self.root.path().join("sys/class/leds/ACT").join(file))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `campush ARGS` as systemd would start it (with the journal and the watchdog).
    fn start(&self, args: &[&str]) -> Child {
        self.start_with_env(args, &[])
    }

    /// [`Board::start`] with `env` on top (e.g. `PATH` with a stand-in camera app first).
    fn start_with_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Child {
        let runtime_dir = self.root.path().join("run/campush");
        std::fs::create_dir_all(&runtime_dir).unwrap();
        Command::new(CAMPUSH)
            .args(args)
            .envs(env.iter().copied())
            .env("CAMPUSH_ROOT", self.root.path())
            .env("NOTIFY_SOCKET", self.root.path().join("notify"))
            .env("WATCHDOG_USEC", "2000000")
            .env("JOURNAL_STREAM", "8:12345")
            .env("RUNTIME_DIRECTORY", runtime_dir)
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits (bounded) for a notification containing `needle`; returns it.
    fn wait_for_message(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.messages.iter().find(|m| m.contains(needle)) {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} from campush within {timeout:?}; got {:?}",
                self.messages
            );
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// Every notification that arrives during `how_long`, with when it arrived.
    fn collect(&mut self, how_long: Duration) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + how_long;
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.push((Instant::now(), m.clone()));
                self.messages.push(m);
            }
        }
        got
    }

    /// Samples the LED's brightness for `how_long`; returns the distinct values seen, in order.
    fn watch_led(&self, how_long: Duration) -> Vec<String> {
        let deadline = Instant::now() + how_long;
        let mut seen: Vec<String> = Vec::new();
        while Instant::now() < deadline {
            let b = self.led("brightness");
            if seen.last() != Some(&b) {
                seen.push(b);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    }
}

fn terminate(child: &Child) {
    signal(child.id(), libc::SIGTERM);
}

/// Waits (bounded) for the exit; returns the code and stderr. Kills the child on timeout.
fn wait_exit(mut child: Child, timeout: Duration) -> (Option<i32>, String) {
    let exited = wait_child(&mut child, timeout);
    if exited.is_none() {
        let _ = child.kill();
    }
    let stderr = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned();
    match exited {
        Some(status) => (status.code(), stderr),
        None => panic!("campush did not exit within {timeout:?}; stderr:\n{stderr}"),
    }
}

#[test]
fn a_fresh_card_without_a_config_says_where_campush_looked() {
    let board = Board::new();
    let out = Command::new(CAMPUSH)
        .arg("check-config")
        .env("CAMPUSH_ROOT", board.root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for p in [
        "boot/firmware/campush.toml",
        "boot/campush.toml",
        "etc/campush/campush.toml",
    ] {
        assert!(
            err.contains(&board.root.path().join(p).display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn check_config_finds_the_file_on_the_boot_partition_and_hides_the_key() {
    let board = Board::new();
    board.write_config(
        "\u{feff}board = \"rpi-4\"\r\n[[output]]\r\nurl = \"rtmp://h/live2\"\r\nkey = \"s3cret\"\r\n",
    );
    let out = Command::new(CAMPUSH)
        .arg("check-config")
        .env("CAMPUSH_ROOT", board.root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("board = rpi-4"), "{stdout}");
    assert!(
        stdout.contains("source = auto\n") && stdout.contains("through /dev/video11"),
        "the board's camera search and encoder: {stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
}

#[test]
fn on_a_terminal_a_config_error_exits_78_at_once() {
    let board = Board::new();
    let config = board.write_config("[source]\nspec = \"stdin\"\nfsp = 30\n");
    let started = Instant::now();
    let out = Command::new(CAMPUSH)
        .args(["run", "--config"])
        .arg(&config)
        .env("CAMPUSH_ROOT", board.root.path())
        .env_remove("NOTIFY_SOCKET")
        .env("JOURNAL_STREAM", "8:1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("<3>") && err.contains("line 3, column 1") && err.contains("\"fps\""),
        "{err}"
    );
    // Not under systemd: the LED was not touched.
    assert_eq!(board.led("trigger"), "none rc-feedback [mmc0] timer");
}

#[test]
fn under_systemd_a_config_error_blinks_until_stopped_then_exits_78() {
    let mut board = Board::new();
    board.write_config(
        "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://127.0.0.1/live/k\"\n[network]\nwrite_timeout_s = 0\n",
    );
    let child = board.start(&["run"]);
    let status = board.wait_for_message("READY=1", Duration::from_secs(10));
    assert!(
        status.contains("STATUS=configuration error: ")
            && status.contains("campush.toml, line 6, column 19"),
        "{status}"
    );
    // The double blink: lit and dark in turn, with the trigger taken.
    let seen = board.watch_led(Duration::from_millis(1800));
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.iter().any(|b| b == "255") && seen.iter().any(|b| b == "0"));
    assert_eq!(board.led("trigger"), "none");
    // The watchdog is fed: campush is deliberately idle, not hung.
    board.wait_for_message("WATCHDOG=1", Duration::from_secs(5));

    terminate(&child);
    let (code, stderr) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(78), "{stderr}");
    board.wait_for_message("STOPPING=1", Duration::from_secs(2));
    assert_eq!(board.led("trigger"), "mmc0", "the LED is given back");
    assert!(stderr.lines().all(|l| l.starts_with('<')), "{stderr}");
}

#[test]
fn under_systemd_a_missing_config_blinks_too() {
    let mut board = Board::new();
    let child = board.start(&["run"]);
    let status = board.wait_for_message("READY=1", Duration::from_secs(10));
    assert!(
        status.contains("no configuration file: campush looked for")
            && status.contains("boot/firmware/campush.toml"),
        "{status}"
    );
    let seen = board.watch_led(Duration::from_millis(1800));
    assert!(seen.len() >= 3, "{seen:?}");
    terminate(&child);
    let (code, _) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(78));
    assert_eq!(board.led("trigger"), "mmc0");
}

#[test]
fn a_service_run_is_ready_streams_solid_feeds_the_watchdog_and_stops_cleanly() {
    let server = ScuffleServer::start();
    let mut board = Board::new();
    board.write_config(&format!(
        "[source]\nspec = \"file:{CLIP}\"\nloop = true\n[[output]]\nurl = \"{}\"\n",
        server.url("servicekey")
    ));
    let child = board.start(&["run"]);
    board.wait_for_message("READY=1", Duration::from_secs(10));
    board.wait_for_message("STATUS=streaming", Duration::from_secs(10));
    server.wait_for("video", Duration::from_secs(10), |r| r.videos.len() > 10);
    // Solid while streaming.
    let seen = board.watch_led(Duration::from_millis(700));
    assert_eq!(seen, ["255"]);
    assert_eq!(board.led("trigger"), "none");
    // WATCHDOG_USEC is 2 s: pings every second while frames flow.
    board.wait_for_message("WATCHDOG=1", Duration::from_secs(5));
    // The status file in the runtime directory.
    let path = board.root.path().join("run/campush/status.json");
    let mut status = String::new();
    poll_until(Duration::from_secs(10), || {
        status = std::fs::read_to_string(&path).unwrap_or_default();
        status.contains("\"status\":\"streaming\"")
    });
    assert!(
        status.contains("\"status\":\"streaming\"") && status.contains("\"frames_sent\":"),
        "{status}"
    );

    terminate(&child);
    let (code, stderr) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
    board.wait_for_message("STOPPING=1", Duration::from_secs(2));
    assert_eq!(board.led("brightness"), "0");
    assert_eq!(board.led("trigger"), "mmc0");
    assert!(!stderr.contains("servicekey"), "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with('<') && !l.starts_with("<7>")),
        "journal lines carry a priority and no timestamp:\n{stderr}"
    );
}

#[test]
fn a_service_waiting_for_its_camera_says_so_blinks_no_camera_and_keeps_the_watchdog_fed() {
    if !python3_present() || !support::require(support::Tool::NginxRtmp) {
        return;
    }
    // The camera app starts, finds no camera, exits: campush starts it again and again.
    let camera = StandIn::new(&[("RPICAM_STANDIN_FAIL", "no-cameras")]);
    // nginx-rtmp holds a publisher that sends nothing for its 60 s read timeout, so the last
    // error stays the camera's (an in-process server that drops idle publishers after 2.5 s
    // would put its own error there, at a moment load decides).
    let server = support::Nginx::start(support::NginxOpts::default());
    let mut board = Board::new();
    board.write_config(&format!(
        "[source]\nspec = \"rpicam\"\n[[output]]\nurl = \"{}\"\n",
        server.url("waiting")
    ));
    let path = camera.path_var();
    let child = board.start_with_env(&["run"], &[("PATH", path.as_os_str())]);
    board.wait_for_message("READY=1", Duration::from_secs(10));
    board.wait_for_message("STATUS=waiting for source", Duration::from_secs(20));
    // The no-camera pattern: a fast blink (5 per second).
    let seen = board.watch_led(Duration::from_millis(1200));
    assert!(seen.len() >= 5, "fast blink: {seen:?}");

    // WATCHDOG_USEC is 2 s: a ping every second while campush is alive and trying, through
    // restarts of the app and backoffs of 1, 2, 4 s, though not one frame arrives.
    let window = Duration::from_secs(9);
    let started = Instant::now();
    let pings: Vec<Instant> = board
        .collect(window)
        .into_iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(at, _)| at)
        .collect();
    assert!(pings.len() >= 6, "{} pings in {window:?}", pings.len());
    let mut last = started;
    for at in &pings {
        assert!(
            *at - last < Duration::from_millis(2000),
            "a gap of {:?} between pings: systemd would have restarted campush",
            *at - last
        );
        last = *at;
    }
    let status_path = board.root.path().join("run/campush/status.json");
    let status = std::fs::read_to_string(&status_path).unwrap();
    assert!(
        status.contains("\"status\":\"waiting_for_source\"")
            && status.contains("no cameras available")
            && !status.contains("\"source_restarts\":0,"),
        "{status}"
    );
    assert!(camera.runs().len() >= 3, "{:?}", camera.runs());

    terminate(&child);
    let (code, stderr) = wait_exit(child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{stderr}");
}
