//! RTMP servers from the package registries (npm, PyPI) and ffmpeg's own RTMP listener, as child
//! processes on a free loopback port, for tests/interop.rs.
//!
//! - [`installed_dir`]: where `tests/servers/install.sh` put the pinned servers:
//!   `$CAMPUSH_INTEROP_SERVERS`, else `target/interop-servers` (next to `CARGO_TARGET_TMPDIR`).
//! - [`require`]: skip a test when a server is not installed, loudly; with
//!   `CAMPUSH_REQUIRE_TOOLS=1` (CI) fail instead — the rule of `support::require`.
//! - [`Server`]: one running server, out of its own temp dir (recordings land there), its
//!   stdout and stderr in `DIR/server.log`; killed on drop, its log printed if the test failed.
//!   Started by [`node_media_server`], [`pyrtmp`], [`rtmplite3`] and [`ffmpeg_listener`];
//!   [`ffmpeg_player`] plays a stream back from a server that does not record.
//!
//! Invariants: every server binds 127.0.0.1 only; a server counts as started once it holds a
//! socket in LISTEN state on its port (read from /proc/net/tcp and its /proc/PID/fd, so no probe
//! connection is spent on a server that accepts only one, and another test's server on the
//! same port does not count) while the process is still running; every wait is bounded.
#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::{free_port, poll_until};

/// How long a server may take to listen (a cold Python or Node start on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory `tests/servers/install.sh` installs into.
pub fn installed_dir() -> PathBuf {
    match std::env::var_os("CAMPUSH_INTEROP_SERVERS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .join("interop-servers"),
    }
}

/// A server that `tests/servers/install.sh` installs.
#[derive(Clone, Copy, Debug)]
pub enum Installed {
    /// node-media-server 2.7.4 (npm), run by `tests/servers/node_media_server.js`.
    NodeMediaServer,
    /// pyrtmp 0.3.1 (PyPI), run by `tests/servers/pyrtmp_record.py`.
    Pyrtmp,
    /// rtmplite3 0.4.0 (PyPI), run as `python -m rtmplite3.rtmp`.
    Rtmplite3,
    /// prometheus-client 0.26.0 (PyPI): not a server, the Prometheus text parser
    /// (`prometheus_client.parser`) that tests/health.rs reads campush's metrics file with.
    PrometheusClient,
}

/// True when `server` is installed. Otherwise prints a loud SKIP line and returns false, or
/// panics when `CAMPUSH_REQUIRE_TOOLS=1`.
pub fn require(server: Installed) -> bool {
    let dir = installed_dir();
    let problem = match server {
        Installed::NodeMediaServer => {
            let manifest = dir.join("node/node_modules/node-media-server/package.json");
            let node = Command::new("node").arg("--version").output();
            if !node.is_ok_and(|out| out.status.success()) {
                Some("node is not installed".to_string())
            } else if !fs::read_to_string(&manifest).is_ok_and(|m| m.contains("\"2.7.4\"")) {
                Some(format!(
                    "node-media-server 2.7.4 is not in {}",
                    dir.display()
                ))
            } else {
                None
            }
        }
        Installed::Pyrtmp | Installed::Rtmplite3 | Installed::PrometheusClient => {
            let module = match server {
                Installed::Pyrtmp => "pyrtmp",
                Installed::PrometheusClient => "prometheus_client.parser",
                _ => "rtmplite3.rtmp",
            };
            let import = Command::new(dir.join("venv/bin/python"))
                .args(["-c", &format!("import {module}")])
                .stdin(Stdio::null())
                .output();
            (!import.is_ok_and(|out| out.status.success()))
                .then(|| format!("{module} is not in {}/venv", dir.display()))
        }
    };
    match problem {
        None => true,
        Some(problem) => campush::testing::skip_or_fail(&format!(
            "{problem}; install the servers with: tests/servers/install.sh (needs node, npm, python3-venv)"
        )),
    }
}

/// One server process on `127.0.0.1:port`, running out of `dir`.
pub struct Server {
    name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Server {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// The server's own directory (its recordings, its log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read(self.dir.path().join("server.log"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the server has printed `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.log().contains(needle))
    }

    /// Waits until the process exits by itself; false after `timeout` (it keeps running).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        poll_until(timeout, || self.child.try_wait().unwrap().is_some())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- {} log (port {}) ---\n{}",
                self.name,
                self.port,
                self.log()
            );
        }
    }
}

/// Spawns `command(port)` in a fresh temp dir (its working directory) with a free port until
/// one run listens on its port (5 tries: a free port can be taken before the server binds it).
fn start(name: &'static str, command: impl Fn(u16, &Path) -> Command) -> Server {
    let dir = tempfile::Builder::new()
        .prefix(&format!("campush-{name}-"))
        .tempdir()
        .unwrap();
    let mut failures = String::new();
    for _ in 0..5 {
        let port = free_port();
        let log = fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = command(port, dir.path());
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        kill_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let listening = poll_until(START_TIMEOUT, || {
            child.try_wait().unwrap().is_some() || listens(child.id(), port)
        });
        if listening && child.try_wait().unwrap().is_none() {
            return Server {
                name,
                child,
                dir,
                port,
            };
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        failures += &format!("port {port}:\n{log}\n");
    }
    panic!("{name} did not start listening:\n{failures}");
}

/// True when process `pid` holds a socket in LISTEN state on 127.0.0.1:`port` (or on every
/// address). Ownership matters: a free port can be taken by another test's server between
/// [`free_port`] and the bind, and that server's socket must not count as this one's.
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening =
                fields.len() > 9 && wanted.iter().any(|w| w == fields[1]) && fields[3] == "0A";
            listening.then(|| format!("socket:[{}]", fields[9]))
        })
        .collect();
    if sockets.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
    })
}

/// node-media-server 2.7.4: relays what it receives to players; records nothing itself.
/// Prints `play /live/KEY` when a player asks for a stream.
pub fn node_media_server() -> Server {
    let dir = installed_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/node_media_server.js");
    start("node-media-server", |port, _| {
        let mut cmd = Command::new("node");
        cmd.env("NODE_PATH", dir.join("node/node_modules"));
        cmd.arg(&script).arg(port.to_string());
        cmd
    })
}

/// pyrtmp 0.3.1 recording each publish to `DIR/NAME.flv`; prints `recorded NAME` once that file
/// is closed.
pub fn pyrtmp() -> Server {
    let python = installed_dir().join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/pyrtmp_record.py");
    start("pyrtmp", |port, dir| {
        let mut cmd = Command::new(&python);
        cmd.env("PYTHONUNBUFFERED", "1"); // its lines reach the log as they are printed
        cmd.arg(&script).arg(port.to_string()).arg(dir);
        cmd
    })
}

/// rtmplite3 0.4.0 recording each publish to `DIR/NAME.flv` (`-k`); with `-d` it prints
/// `closing flv file` once that file is closed.
pub fn rtmplite3() -> Server {
    let python = installed_dir().join("venv/bin/python");
    start("rtmplite3", |port, dir| {
        let mut cmd = Command::new(&python);
        cmd.env("PYTHONUNBUFFERED", "1"); // its lines reach the log as they are printed
                                          // The package's own entry point (`python -m rtmplite3`) drops -k and -d: it sets
                                          // variables of its own instead of the module's.
        cmd.args(["-m", "rtmplite3.rtmp", "-i", "127.0.0.1", "-k", "-d"]);
        cmd.arg("-p").arg(port.to_string());
        cmd.arg("-r").arg(format!("{}/", dir.display()));
        cmd
    })
}

/// `ffmpeg -listen 1`: accepts one publisher for `live/KEY` and copies what it receives into
/// `DIR/KEY.flv`, exiting when the publisher leaves.
pub fn ffmpeg_listener(key: &str) -> Server {
    start("ffmpeg-listen", |port, dir| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-listen",
            "1",
        ]);
        cmd.arg("-i")
            .arg(format!("rtmp://127.0.0.1:{port}/live/{key}"));
        cmd.args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(dir.join(format!("{key}.flv")));
        cmd
    })
}

/// ffmpeg playing `url` and copying what it receives into `out` (FLV), until the stream ends.
pub struct Player {
    child: Child,
    log: PathBuf,
}

/// Starts [`Player`]; its stderr goes to `out` with `.log` appended.
pub fn ffmpeg_player(url: &str, out: &Path) -> Player {
    let log = out.with_extension("log");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]);
    cmd.args(["-i", url, "-map", "0", "-c", "copy", "-f", "flv"])
        .arg(out);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    kill_with_parent(&mut cmd);
    let child = cmd.spawn().expect("spawn ffmpeg");
    Player { child, log }
}

impl Player {
    /// True while ffmpeg runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What ffmpeg printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until ffmpeg exits by itself (the stream ended); its exit code and stderr.
    /// Panics after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let done = poll_until(timeout, || self.child.try_wait().unwrap().is_some());
        let stderr = fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            done,
            "the ffmpeg player did not stop within {timeout:?}:\n{stderr}"
        );
        (self.child.wait().unwrap().code(), stderr)
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// If the test process dies, so does the child (no stray servers after a killed test run).
fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
