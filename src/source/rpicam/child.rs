//! The camera app as a child process: started in its own process group, tied to campush's life,
//! its stdout read (with a deadline), its stderr turned into log lines, stopped with escalation.
//!
//! Owns: the running [`std::process::Child`] and its pipes, the stderr line assembly and rate
//! limit ([`super::messages`]), the "waiting for the camera" report while the app is in trouble,
//! and [`run_collect`] for one-shot runs (`--list-cameras`).
//!
//! Invariants:
//! - The app is the leader of a new process group (`setpgid(0, 0)`), so one `kill(-pgid)`
//!   reaches everything it started. Group signals are sent only while the leader is not yet
//!   reaped: until then its pid, and so the group id, cannot be reused by another process.
//! - `PR_SET_PDEATHSIG(SIGKILL)` is set in the child between fork and exec, then `getppid()` is
//!   compared with campush's pid: if campush died in between, the child was already reparented
//!   and would never get the signal, so it exits at once (the classic race). The death signal
//!   fires when the *thread* that forked exits, so the source must start the app from the thread
//!   that reads it (the ingest thread, which lives as long as the source). An orphaned camera app
//!   would hold the camera and fail the next start with "failed to acquire camera"
//!   (raspberrypi/userland#268).
//! - Reading never blocks past the deadline: one `poll` on stdout and stderr together, so stderr
//!   is drained while waiting for video and a silent app ends the read with `TimedOut`. End of
//!   stdout is `UnexpectedEof`, never `Ok(0)`: the byte stream must not flush a truncated last
//!   access unit of a dead app as if it were whole.
//! - Stopping: SIGTERM to the group, SIGKILL after the grace period (2 s), then SIGKILL to the
//!   group once more for stragglers, then reap (bounded).

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::messages::{classify, Failure, Forwarder, LineAssembler};
use crate::status::{SharedStatus, Status, ALIVE_SLICE};
use crate::stop::{self, Stop};

/// Between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a killed app to be reaped before giving up on it.
const REAP_LIMIT: Duration = Duration::from_secs(5);
/// How long to keep reading stderr after the app ended (its last words).
const LAST_WORDS: Duration = Duration::from_millis(500);

/// `app args...` in a new process group, killed with the spawning thread, stdin from
/// /dev/null, stdout and stderr piped.
pub fn command(app: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(app);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: getpid is async-signal-safe; the closure below runs in the forked child before
    // exec and only calls prctl, getppid and _exit, all async-signal-safe.
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // campush died before the death signal was armed: nobody would kill us.
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd
}

/// Whether the process `pid` (our child) has ended, without reaping it.
fn has_ended(pid: libc::pid_t) -> bool {
    // SAFETY: waitid writes into the zeroed siginfo we own; WNOWAIT leaves the child waitable.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // ECHILD: already reaped (cannot happen here, but then it has certainly ended).
        rc != 0 || info.si_pid() != 0
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: plain kill(2) on our own child's process group (see the module invariants).
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Stops `child`'s group: SIGTERM, SIGKILL after `grace`, reap. Returns the exit status (None
/// if the child could not be reaped in time) and whether SIGKILL was needed.
pub fn terminate(child: &mut Child, grace: Duration) -> (Option<ExitStatus>, bool) {
    let pid = child.id() as libc::pid_t;
    let mut killed = false;
    if !has_ended(pid) {
        signal_group(pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while !has_ended(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !has_ended(pid) {
            signal_group(pid, libc::SIGKILL);
            killed = true;
        }
    }
    // Whatever else the app started in its group goes too (the leader is unreaped, so the
    // group id is still ours).
    signal_group(pid, libc::SIGKILL);
    let deadline = Instant::now() + REAP_LIMIT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), killed),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => return (None, killed),
        }
    }
}

struct Running {
    child: Child,
    stdout: ChildStdout,
    stderr: Option<ChildStderr>,
}

/// How a run of the app ended.
#[derive(Debug)]
pub struct Ended {
    pub status: Option<ExitStatus>,
    /// SIGTERM was not enough.
    pub killed: bool,
    /// The last failure the app reported on stderr, if any.
    pub failure: Option<Failure>,
}

/// The camera app's process and pipes; reading it yields its stdout.
pub struct AppProcess {
    program: &'static str,
    running: Option<Running>,
    deadline: Instant,
    lines: LineAssembler,
    forwarder: Forwarder,
    failure: Option<Failure>,
    errbuf: Vec<u8>,
    status: SharedStatus,
    /// The status board shows this source waiting (set here or by the source).
    waiting: bool,
    /// Reads give up (an `Other` error, "stopped") once this is requested.
    stop: Stop,
    /// When a read with no data last noted the source alive.
    noted_alive: Instant,
}

impl AppProcess {
    pub fn new(program: &'static str, status: SharedStatus, stop: Stop) -> Self {
        AppProcess {
            program,
            running: None,
            deadline: Instant::now(),
            lines: LineAssembler::new(),
            forwarder: Forwarder::new(program, Instant::now()),
            failure: None,
            errbuf: vec![0; 4096],
            status,
            waiting: false,
            stop,
            noted_alive: Instant::now(),
        }
    }

    /// Starts the app; reading fails with `TimedOut` if no byte comes before `deadline`.
    pub fn start(&mut self, app: &Path, args: &[String], deadline: Instant) -> io::Result<u32> {
        debug_assert!(self.running.is_none(), "one app at a time");
        let mut child = command(app, args).spawn()?;
        let (Some(stdout), stderr) = (child.stdout.take(), child.stderr.take()) else {
            let _ = terminate(&mut child, Duration::ZERO);
            return Err(io::Error::other("the app's stdout is not a pipe"));
        };
        let pid = child.id();
        self.running = Some(Running {
            child,
            stdout,
            stderr,
        });
        self.failure = None;
        self.forwarder.clear_recent();
        self.deadline = deadline;
        Ok(pid)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The process (and group) id of the running app.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Stops the app (if it still runs), collects its last words from stderr, reaps it.
    pub fn stop(&mut self) -> Option<Ended> {
        let mut run = self.running.take()?;
        let (status, killed) = terminate(&mut run.child, KILL_GRACE);
        if let Some(mut err) = run.stderr.take() {
            let until = Instant::now() + LAST_WORDS;
            while Instant::now() < until {
                match poll_one(err.as_raw_fd(), until) {
                    Ok(true) => match err.read(&mut self.errbuf) {
                        Ok(0) => break,
                        Ok(n) => self.take_stderr(n),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    },
                    Ok(false) => break,
                    Err(_) => break,
                }
            }
        }
        self.flush_stderr();
        Some(Ended {
            status,
            killed,
            failure: self.failure.take(),
        })
    }

    /// The last lines the app wrote to stderr, oldest first.
    pub fn recent_lines(&self) -> impl Iterator<Item = &str> {
        self.forwarder.recent()
    }

    /// Shows the source as waiting for the camera, with `reason` as the last error.
    pub fn report_waiting(&mut self, reason: &dyn std::fmt::Display) {
        self.status
            .set_last_error(&format_args!("{}: {reason}", self.program));
        if !self.waiting {
            self.waiting = true;
            self.status.set_source(Status::WaitingForSource);
        }
    }

    /// The app delivers video: the source is no longer waiting. Returns whether it was.
    pub fn report_delivering(&mut self) -> bool {
        if self.waiting {
            self.waiting = false;
            self.status.set_source(Status::Streaming);
            return true;
        }
        false
    }

    fn take_stderr(&mut self, n: usize) {
        let now = Instant::now();
        let Self {
            lines,
            forwarder,
            errbuf,
            ..
        } = self;
        let mut newest = None;
        lines.feed(&errbuf[..n], |line| {
            let c = classify(line);
            forwarder.forward(line, c.level, now);
            if let Some(f) = c.failure {
                newest = Some(f);
            }
        });
        self.note_failure(newest);
    }

    fn flush_stderr(&mut self) {
        let now = Instant::now();
        let mut newest = None;
        let Self {
            lines, forwarder, ..
        } = self;
        lines.flush(|line| {
            let c = classify(line);
            forwarder.forward(line, c.level, now);
            if let Some(f) = c.failure {
                newest = Some(f);
            }
        });
        self.note_failure(newest);
    }

    fn note_failure(&mut self, failure: Option<Failure>) {
        let Some(f) = failure else { return };
        if f == Failure::DeviceTimeout {
            // The app keeps running and tries to recover by itself; show the trouble now. The
            // stall timeout replaces the app if no video follows.
            self.report_waiting(&f);
        }
        self.failure = Some(f);
    }
}

/// Waits until `fd` is readable (or closed) or `until` passes. `Ok(false)`: timed out.
fn poll_one(fd: i32, until: Instant) -> io::Result<bool> {
    let mut fds = [libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }];
    let ms = until.saturating_duration_since(Instant::now()).as_millis();
    // SAFETY: poll on one pollfd we own.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms.min(i32::MAX as u128) as i32) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0)
}

impl Read for AppProcess {
    /// The app's stdout. `TimedOut` at the deadline, `UnexpectedEof` when the app closed it,
    /// `NotConnected` when no app runs. Stderr is read (and forwarded) while waiting.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(run) = self.running.as_mut() else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            let now = Instant::now();
            if now >= self.deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let mut fds = [
                libc::pollfd {
                    fd: run.stdout.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    // A negative fd is ignored by poll: stderr already closed.
                    fd: run.stderr.as_ref().map_or(-1, |e| e.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // In slices: a silent app is waited for up to its deadline, noting the source
            // alive each second (the systemd watchdog's view of "trying") and looking at the
            // stop request between slices.
            if self.stop.requested() {
                return Err(io::Error::other("stopped"));
            }
            let wait = (self.deadline - now).min(stop::SLICE);
            let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: poll on two pollfds we own.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                if self.noted_alive.elapsed() >= ALIVE_SLICE {
                    self.noted_alive = Instant::now();
                    self.status.source_alive();
                }
                continue;
            }
            if fds[1].revents != 0 {
                let got = match self.running.as_mut().and_then(|r| r.stderr.as_mut()) {
                    Some(err) => err.read(&mut self.errbuf),
                    None => Ok(0),
                };
                match got {
                    Ok(n) if n > 0 => self.take_stderr(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    _ => {
                        if let Some(r) = self.running.as_mut() {
                            r.stderr = None;
                        }
                    }
                }
            }
            if fds[0].revents != 0 {
                let Some(run) = self.running.as_mut() else {
                    continue;
                };
                return match run.stdout.read(buf) {
                    Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
            }
        }
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if let Some(mut run) = self.running.take() {
            terminate(&mut run.child, KILL_GRACE);
        }
    }
}

/// What a one-shot run of the app printed.
#[derive(Debug)]
pub struct Collected {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `app args...` to completion (killed after `timeout`), collecting its output.
pub fn run_collect(app: &Path, args: &[String], timeout: Duration) -> io::Result<Collected> {
    let mut child = command(app, args).spawn()?;
    let deadline = Instant::now() + timeout;
    let mut pipes = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>),
    ];
    let mut out = [Vec::new(), Vec::new()];
    let mut buf = [0u8; 4096];
    let mut timed_out = false;
    while pipes.iter().any(Option::is_some) {
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|p| libc::pollfd {
                fd: p.as_ref().map_or(-1, |p| p.fd()),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        if ms == 0 {
            timed_out = true;
            break;
        }
        // SAFETY: poll on pollfds we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms.min(i32::MAX as u128) as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            terminate(&mut child, Duration::ZERO);
            return Err(e);
        }
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            if let Some(p) = pipes[i].as_mut() {
                match p.read(&mut buf) {
                    Ok(0) | Err(_) => pipes[i] = None,
                    Ok(k) if out[i].len() < 1 << 20 => out[i].extend_from_slice(&buf[..k]),
                    Ok(_) => {}
                }
            }
        }
    }
    let (status, _) = terminate(
        &mut child,
        Duration::from_millis(if timed_out { 0 } else { 500 }),
    );
    if timed_out {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} did not finish within {} s",
                app.display(),
                timeout.as_secs()
            ),
        ));
    }
    let status = status.ok_or_else(|| io::Error::other("the app could not be reaped"))?;
    let [stdout, stderr] = out;
    Ok(Collected {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// A pipe end we can poll and read.
trait ReadFd: Read {
    fn fd(&self) -> i32;
}

impl ReadFd for ChildStdout {
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

impl ReadFd for ChildStderr {
    fn fd(&self) -> i32 {
        self.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    /// Exists and is not a zombie (an orphan's zombie waits for whoever reaps orphans here).
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
            == Some(false)
    }

    #[test]
    fn the_app_leads_its_own_process_group() {
        let mut child = command(Path::new("/bin/sh"), &sh("sleep 30"))
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        // SAFETY: getpgid on our child.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        let (status, killed) = terminate(&mut child, KILL_GRACE);
        assert!(!killed, "sleep ends on SIGTERM");
        assert!(status.is_some());
    }

    #[test]
    fn an_app_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let mut child = command(
            Path::new("/bin/sh"),
            &sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"),
        )
        .spawn()
        .unwrap();
        let mut ready = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut ready)
            .unwrap();
        let start = Instant::now();
        let (status, killed) = terminate(&mut child, Duration::from_millis(300));
        assert!(killed);
        assert!(start.elapsed() >= Duration::from_millis(300));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGKILL));
    }

    #[test]
    fn stopping_also_kills_what_the_app_started_in_its_group() {
        let mut child = command(
            Path::new("/bin/sh"),
            &sh("sleep 30 & echo $!; trap '' TERM; wait"),
        )
        .spawn()
        .unwrap();
        let mut line = String::new();
        let mut byte = [0u8; 1];
        let out = child.stdout.as_mut().unwrap();
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(alive(grandchild));
        terminate(&mut child, Duration::from_millis(100));
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !alive(grandchild)
        });
        assert!(gone, "the grandchild {grandchild} survived");
    }

    #[test]
    fn reading_ends_at_the_deadline_or_at_the_end_of_stdout_with_stderr_forwarded() {
        let mut app = AppProcess::new("test-app", SharedStatus::new(), Stop::new());
        app.start(
            Path::new("/bin/sh"),
            &sh("echo 'ERROR: *** no cameras available ***' >&2; printf abc; exit 255"),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        let mut buf = [0u8; 16];
        let mut got = Vec::new();
        let err = loop {
            match app.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(got, b"abc");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let ended = app.stop().unwrap();
        assert_eq!(ended.status.and_then(|s| s.code()), Some(255));
        assert_eq!(
            ended.failure,
            Some(Failure::NoCamera("no cameras available".into()))
        );

        app.start(
            Path::new("/bin/sh"),
            &sh("sleep 30"),
            Instant::now() + Duration::from_millis(200),
        )
        .unwrap();
        let start = Instant::now();
        let err = app.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(app.stop().is_some());
        assert_eq!(
            app.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
    }

    #[test]
    fn a_read_waiting_for_a_silent_app_gives_up_soon_after_a_stop_request() {
        let stop = Stop::new();
        let mut app = AppProcess::new("test-app", SharedStatus::new(), stop.clone());
        app.start(
            Path::new("/bin/sh"),
            &sh("sleep 30"),
            Instant::now() + Duration::from_secs(20),
        )
        .unwrap();
        let asker = stop.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            asker.request();
        });
        let start = Instant::now();
        let mut buf = [0u8; 16];
        let err = app.read(&mut buf).unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "the read went on for {:?} after the stop",
            start.elapsed()
        );
        assert_ne!(err.kind(), io::ErrorKind::TimedOut);
        assert!(app.stop().is_some());
        thread.join().unwrap();
    }

    #[test]
    fn a_device_timeout_shows_the_source_waiting_at_once() {
        let status = SharedStatus::new();
        status.set_source(Status::Streaming);
        let mut app = AppProcess::new("test-app", status.clone(), Stop::new());
        app.start(
            Path::new("/bin/sh"),
            &sh("echo 'ERROR: Device timeout detected, attempting a restart!!!' >&2; sleep 30"),
            Instant::now() + Duration::from_millis(500),
        )
        .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            app.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(status.get(), Status::WaitingForSource);
        assert!(status.last_error().unwrap().contains("device timeout"));
        app.stop();
        assert!(app.report_delivering());
        assert_eq!(status.get(), Status::Streaming);
    }

    #[test]
    fn one_shot_runs_collect_both_streams_and_are_bounded() {
        let c = run_collect(
            Path::new("/bin/sh"),
            &sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!((c.stdout.as_str(), c.stderr.as_str()), ("out\n", "err\n"));
        assert_eq!(c.status.code(), Some(3));
        let start = Instant::now();
        let e = run_collect(
            Path::new("/bin/sh"),
            &sh("sleep 30"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
