//! Running processes with bounded waits: campush (or any command) to completion, capturing its
//! output ([`run_bounded`], [`run_campush`]); campush in the background from a configuration
//! file, its log in a file ([`Campush`]); any process until dropped ([`Background`]); ffprobe
//! ([`ffprobe`], [`ffprobe_video`]); and waiting for a condition ([`poll_until`],
//! [`wait_until`]) or an exit ([`wait_child`]).
//!
//! Every child dies with the test process ([`kill_with_parent`]) and every wait has a deadline.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const CAMPUSH: &str = env!("CARGO_BIN_EXE_campush");

/// How a bounded process run ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code; None if killed by a signal (including on timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = if self.timed_out {
            " (killed: timed out)"
        } else {
            ""
        };
        writeln!(
            f,
            "exit code {:?} after {:.2?}{ended}",
            self.code, self.elapsed
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Runs campush with `args`, stdin closed, killing it after `timeout`.
pub fn run_campush(args: &[&str], timeout: Duration) -> Run {
    let mut cmd = Command::new(CAMPUSH);
    cmd.args(args);
    run_bounded(cmd, None, timeout)
}

/// Runs campush with the bytes of `input` written into its stdin through a pipe.
pub fn run_campush_stdin(args: &[&str], input: &Path, timeout: Duration) -> Run {
    let mut cmd = Command::new(CAMPUSH);
    cmd.args(args);
    run_bounded(cmd, Some(input), timeout)
}

/// Runs `cmd` to completion or until `timeout` (then kills it), capturing stdout and stderr.
/// With `stdin_from`, that file is copied into the child's stdin pipe, which is then closed.
pub fn run_bounded(mut cmd: Command, stdin_from: Option<&Path>, timeout: Duration) -> Run {
    cmd.stdin(if stdin_from.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    kill_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let writer = stdin_from.map(|path| {
        let (mut file, mut pipe) = (fs::File::open(path).unwrap(), child.stdin.take().unwrap());
        // The child may exit before reading everything; that write error is not ours to report.
        thread::spawn(move || drop(io::copy(&mut file, &mut pipe)))
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let exited = wait_child(&mut child, timeout);
    let timed_out = exited.is_none();
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().unwrap()
    });
    let elapsed = started.elapsed();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed,
        timed_out,
    }
}

/// `ffprobe -v error ARGS... PATH`, killed after two minutes.
pub fn ffprobe(path: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]).args(args).arg(path);
    run_bounded(cmd, None, Duration::from_secs(120))
}

/// [`ffprobe`] of the first video stream, decoding every frame (`-count_frames`, for
/// `stream=nb_read_frames`): `-show_entries ENTRIES -of FORMAT`, after `input_opts`.
pub fn ffprobe_video(path: &Path, entries: &str, format: &str, input_opts: &[&str]) -> Run {
    let mut args = vec!["-count_frames", "-select_streams", "v:0"];
    args.extend_from_slice(&["-show_entries", entries, "-of", format]);
    args.extend_from_slice(input_opts);
    ffprobe(path, &args)
}

/// Waits until `child` exits (its status) or `timeout` passes (None; the child runs on).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `sig` (e.g. `libc::SIGTERM`, `libc::SIGSTOP`) to the test's own child `pid`.
pub fn signal(pid: u32, sig: i32) {
    let pid = i32::try_from(pid).expect("a pid");
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// If the test process dies, so does the child (no stray servers after a killed test run).
pub fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Polls `done` every 20 ms until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// [`poll_until`], panicking with "timed out waiting for WHAT" if `done` never holds.
pub fn wait_until(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(timeout, done), "timed out waiting for {what}");
}

/// A process that runs until dropped, e.g. a publisher holding a stream key.
pub struct Background(pub(super) Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `campush run --config FILE` in the background, the file and its log (stderr) in a temp dir
/// of its own; killed on drop, which prints the log if the test is failing.
pub struct Campush {
    child: Child,
    dir: tempfile::TempDir,
}

impl Campush {
    /// Writes `config(DIR)` to `DIR/campush.toml` and starts campush on it.
    pub fn start(config: impl FnOnce(&Path) -> String) -> Campush {
        Campush::start_with_env(config, &[])
    }

    /// [`Campush::start`] with `env` set for campush (e.g. `PATH` with a stand-in camera app
    /// first).
    pub fn start_with_env(
        config: impl FnOnce(&Path) -> String,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Campush {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("campush.toml");
        fs::write(&file, config(dir.path())).unwrap();
        let mut cmd = Command::new(CAMPUSH);
        cmd.args(["run", "--config"]).arg(&file);
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("campush.log")).unwrap());
        kill_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn campush");
        Campush { child, dir }
    }

    /// The temp dir that holds the configuration file, the log and whatever else the
    /// configuration puts there (e.g. a status file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file, to change before a SIGHUP.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("campush.toml")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything campush logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("campush.log")).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn signal(&self, sig: i32) {
        signal(self.pid(), sig);
    }

    /// Waits (at most `timeout`) for campush to exit by itself; its exit code. Kills it and
    /// panics with the log if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        match wait_child(&mut self.child, timeout) {
            Some(status) => status.code(),
            None => {
                let _ = self.child.kill();
                panic!("campush did not exit within {timeout:?}:\n{}", self.log());
            }
        }
    }

    /// Sends SIGTERM and returns (exit code, time to exit); panics if that takes over 10 s.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let start = Instant::now();
        self.signal(libc::SIGTERM);
        let code = self.wait_exit(Duration::from_secs(10));
        (code, start.elapsed())
    }
}

impl Drop for Campush {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- campush log ---\n{}", self.log());
        }
    }
}
