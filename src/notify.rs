//! systemd service notifications (`sd_notify`), as an observer of the shared status.
//!
//! Owns: the `NOTIFY_SOCKET` datagram protocol (sd_notify(3)) and the watchdog policy. Pure std:
//! an `AF_UNIX` datagram socket, either a path or an abstract-namespace name (`@...`, which is what
//! systemd passes). Messages are `KEY=VALUE` lines in one datagram:
//!
//! - `READY=1` once the pipeline runs (the status has left `Starting`), with `Type=notify` this
//!   is what makes `systemctl start` return;
//! - `STATUS=...` on every status change (shown by `systemctl status campush`);
//! - `WATCHDOG=1` every `WatchdogSec/2` while campush is alive and trying (see
//!   [`watchdog_due`]): frames flow, or the source loop is waiting for its camera and says so
//!   ([`Counters::source_alive`]). A wedged process, a source thread stuck past every deadline
//!   it has, or a stream that stops moving while connected stops the pings, and systemd
//!   restarts campush. Waiting for a camera does not: the sources retry on their own (a camera
//!   app that exits or freezes is restarted, a device that vanishes is reopened), and a restart
//!   of campush every `WatchdogSec` would only cut those retries short;
//!
//!   The status judged is [`WatchdogView::judged`]: the shared status without the destinations
//!   that gave up on a configuration error (a TLS setup failing at run time), which would
//!   otherwise, as the least healthy part, stand for the whole process and keep the pings
//!   coming whatever the rest does. A source that falls silent while streaming and says it is
//!   waiting (within its own stall rule, [`WatchdogView::source_stall`]) keeps the pings going
//!   for as long as that rule lets it be silent; its rule then reports it waiting for its camera
//!   (pinged as above). Silent for longer while the status still says streaming, it is stuck:
//!   the pings stop;
//! - `STOPPING=1` when the status becomes `Stopped`.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) nothing is sent.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crate::status::{Counters, ErrorKind, SharedStatus, Status, WatchdogView};

/// A connection to the service manager's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`; `None` when it is not set.
    pub fn from_env() -> Option<io::Result<Notifier>> {
        let path = std::env::var("NOTIFY_SOCKET").ok()?;
        Some(Notifier::connect(&path))
    }

    /// `path` is a filesystem path or `@name` for the abstract namespace.
    pub fn connect(path: &str) -> io::Result<Notifier> {
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={path:?} is neither a path nor @abstract"),
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, addr })
    }

    /// Sends one notification (several `KEY=VALUE` lines may go in one message).
    pub fn notify(&self, message: &str) -> io::Result<()> {
        self.socket.send_to_addr(message.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process per `WATCHDOG_PID`).
pub fn watchdog_from_env() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Which counters moved since the last watchdog tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Access units came from the source.
    pub frames_in: bool,
    /// Frames reached a server.
    pub frames_sent: bool,
    /// The source loop took a step while waiting (a read slice, a backoff slice, a look for the
    /// camera): it is alive, waiting for its camera.
    pub source_alive: bool,
}

/// How long the source has been silent (no access unit since), and how long its own stall rule
/// lets it be silent while it counts as streaming ([`WatchdogView::source_stall`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Silence {
    pub lasted: Duration,
    pub allowed: Duration,
}

/// Whether to ping the watchdog, given the status (as [`WatchdogView::judged`] folds it), which
/// counters moved since the last ping, and how long the source has been silent.
///
/// The ping means "campush is alive and trying". While streaming, that is frames reaching the
/// server: a stream that stops moving while connected is wedged. One exception: the source fell
/// silent and its loop steps while it waits for data (the camera app has frozen, and the source
/// waits out `stall_timeout_s` before replacing it): pinged while the silence is within the
/// source's stall rule, not after (a source still "streaming" then has missed its own deadline).
/// In every other running state it is any sign of the data path working: frames arriving from
/// the source (the network is down and the publishers reconnect), or the source loop stepping
/// while it waits for its camera (a camera app being restarted, a device being reopened, `auto`
/// looking again). Neither a network outage nor a missing camera gets campush restarted (that
/// would restart the camera, or cut the source's own retries short); a source thread stuck past
/// every deadline it has does. A configuration error of the whole process (campush holds the
/// error pattern on the LED until stopped) and a stop in progress are deliberate idleness.
pub fn watchdog_due(status: Status, moved: Moved, silence: Silence) -> bool {
    match status {
        Status::Streaming => {
            moved.frames_sent
                || (moved.source_alive && !moved.frames_in && silence.lasted < silence.allowed)
        }
        Status::Starting
        | Status::Connecting
        | Status::WaitingForSource
        | Status::Error(
            ErrorKind::Network | ErrorKind::Refused | ErrorKind::Source | ErrorKind::Storage,
        ) => moved.frames_in || moved.frames_sent || moved.source_alive,
        Status::Error(ErrorKind::Config) | Status::Stopped => true,
    }
}

/// Observes `status` and notifies systemd, if campush runs under it. Returns when the shared status is gone.
pub async fn run_notifier(status: SharedStatus) {
    match Notifier::from_env() {
        None => {}
        Some(Ok(notifier)) => run(notifier, status, watchdog_from_env()).await,
        Some(Err(e)) => log::warn!("systemd notify socket: {e}"),
    }
}

/// The notifier loop, with the socket and watchdog interval given (tests).
pub async fn run(notifier: Notifier, status: SharedStatus, watchdog: Option<Duration>) {
    let mut rx = status.subscribe();
    let counters = std::sync::Arc::clone(&status.counters);
    let view: std::sync::Arc<WatchdogView> = status.watchdog();
    drop(status); // observe only: the loop ends when everyone else has let go of the shared status
    let send = |message: &str| {
        if let Err(e) = notifier.notify(message) {
            log::debug!("systemd notify: {e}");
        }
    };
    let mut ready = false;
    let mut announce = |status: Status| {
        let mut message = String::new();
        if !ready && status != Status::Starting {
            message.push_str("READY=1\n");
            ready = true;
        }
        if status == Status::Stopped {
            message.push_str("STOPPING=1\n");
        }
        message.push_str(&format!("STATUS={status}"));
        send(&message);
    };
    announce(*rx.borrow_and_update());

    let mut ticker = watchdog.map(|w| {
        let mut t = tokio::time::interval((w / 2).max(Duration::from_millis(10)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let read = || {
        [
            Counters::get(&counters.frames_in),
            Counters::get(&counters.frames_sent),
            Counters::get(&counters.source_alive),
        ]
    };
    let mut seen = read();
    let mut last_in = tokio::time::Instant::now();
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                let status = *rx.borrow_and_update();
                announce(status);
            }
            _ = tick(&mut ticker) => {
                let now = read();
                let moved = Moved {
                    frames_in: now[0] > seen[0],
                    frames_sent: now[1] > seen[1],
                    source_alive: now[2] > seen[2],
                };
                if moved.frames_in {
                    last_in = tokio::time::Instant::now();
                }
                let silence = Silence {
                    lasted: last_in.elapsed(),
                    allowed: view.source_stall(),
                };
                if watchdog_due(view.judged(), moved, silence) {
                    send("WATCHDOG=1");
                }
                seen = now;
            }
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service manager's end: a datagram socket in a temporary directory.
    struct Manager {
        _dir: tempfile::TempDir,
        socket: UnixDatagram,
        path: String,
    }

    impl Manager {
        fn new() -> Manager {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify");
            let socket = UnixDatagram::bind(&path).unwrap();
            socket.set_nonblocking(true).unwrap();
            Manager {
                path: path.to_str().unwrap().to_owned(),
                _dir: dir,
                socket,
            }
        }

        /// Every message received so far.
        fn received(&self) -> Vec<String> {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.socket.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            out
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_comes_once_the_pipeline_runs_and_status_follows_every_change() {
        let manager = Manager::new();
        let status = SharedStatus::new();
        let notifier = Notifier::connect(&manager.path).unwrap();
        let task = tokio::spawn(run(notifier, status.clone(), None));
        settle().await;
        assert_eq!(manager.received(), ["STATUS=starting"]);
        status.set(Status::Connecting);
        settle().await;
        status.set(Status::Streaming);
        settle().await;
        status.set(Status::Stopped);
        settle().await;
        assert_eq!(
            manager.received(),
            [
                "READY=1\nSTATUS=connecting",
                "STATUS=streaming",
                "STOPPING=1\nSTATUS=stopped"
            ]
        );
        drop(status);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_only_while_frames_flow() {
        let manager = Manager::new();
        let status = SharedStatus::new();
        status.set(Status::Streaming);
        let notifier = Notifier::connect(&manager.path).unwrap();
        let _task = tokio::spawn(run(notifier, status.clone(), Some(Duration::from_secs(10))));
        settle().await;
        assert_eq!(manager.received(), ["READY=1\nSTATUS=streaming"]);
        let pings = |m: &Manager| m.received().iter().filter(|s| *s == "WATCHDOG=1").count();
        // Ticks fall at 5 s, 10 s, ...; phases start half-way between two ticks, and the first
        // tick of each phase still judges the end of the previous one: it is not counted.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let phase = |frames_in: u64, frames_sent: u64| {
            let counters = std::sync::Arc::clone(&status.counters);
            async move {
                for _ in 0..300 {
                    Counters::add(&counters.frames_in, frames_in);
                    Counters::add(&counters.frames_sent, frames_sent);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };

        // Frames reach the server: a ping every 5 s.
        phase(3, 3).await;
        let fed = pings(&manager);
        assert!((5..=6).contains(&fed), "{fed} pings in 30 s of streaming");

        // Connected, the camera delivers, but nothing leaves (a wedged stream): no ping after the
        // first tick, and systemd will restart us.
        tokio::time::sleep(Duration::from_secs(5)).await;
        manager.received();
        phase(3, 0).await;
        assert_eq!(pings(&manager), 0, "pings while the stream is wedged");

        // The network is down, the camera still delivers: reconnecting is alive, keep feeding.
        status.set(Status::Error(ErrorKind::Network));
        phase(3, 0).await;
        assert!(pings(&manager) >= 5);

        // The camera stalled as well: no ping.
        tokio::time::sleep(Duration::from_secs(5)).await;
        manager.received();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(pings(&manager), 0, "pings with nothing flowing");
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_while_the_source_waits_for_its_camera_and_not_once_it_is_stuck() {
        let manager = Manager::new();
        let status = SharedStatus::new();
        status.set_source(Status::WaitingForSource);
        let notifier = Notifier::connect(&manager.path).unwrap();
        let _task = tokio::spawn(run(notifier, status.clone(), Some(Duration::from_secs(10))));
        settle().await;
        manager.received();
        let pings = |m: &Manager| m.received().iter().filter(|s| *s == "WATCHDOG=1").count();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // Waiting for a camera (a camera app being restarted, a device being reopened): the
        // source loop notes itself alive every second, no frame comes.
        for _ in 0..30 {
            status.source_alive();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let fed = pings(&manager);
        assert!((5..=6).contains(&fed), "{fed} pings in 30 s of waiting");
        // The source thread is stuck (no step, no frame): the pings stop, systemd restarts us.
        tokio::time::sleep(Duration::from_secs(5)).await;
        manager.received();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(pings(&manager), 0, "pings with a stuck source loop");
    }

    #[test]
    fn the_watchdog_policy_reads_as_a_table() {
        use ErrorKind::*;
        let (none, frames_in, sent, alive) = (
            Moved::default(),
            Moved {
                frames_in: true,
                ..Moved::default()
            },
            Moved {
                frames_in: true,
                frames_sent: true,
                ..Moved::default()
            },
            Moved {
                source_alive: true,
                ..Moved::default()
            },
        );
        for (status, moved, due) in [
            (Status::Streaming, sent, true),
            (Status::Streaming, frames_in, false),
            (Status::Streaming, alive, false),
            (Status::Connecting, frames_in, true),
            (Status::Connecting, none, false),
            (Status::Error(Network), frames_in, true),
            (Status::Error(Refused), frames_in, true),
            (Status::WaitingForSource, alive, true),
            (Status::WaitingForSource, none, false),
            (Status::Starting, alive, true),
            (Status::Error(Config), none, true),
            (Status::Stopped, none, true),
        ] {
            assert_eq!(
                watchdog_due(status, moved, Silence::default()),
                due,
                "{status} {moved:?}"
            );
        }
    }

    #[test]
    fn a_silent_source_that_says_it_waits_is_pinged_while_streaming_only_within_its_stall_rule() {
        let alive = Moved {
            source_alive: true,
            ..Moved::default()
        };
        let silence = |secs: u64| Silence {
            lasted: Duration::from_secs(secs),
            allowed: Duration::from_secs(8),
        };
        assert!(watchdog_due(Status::Streaming, alive, silence(5)));
        assert!(!watchdog_due(Status::Streaming, alive, silence(9)));
        let never_waits = Silence {
            lasted: Duration::ZERO,
            allowed: Duration::ZERO,
        };
        assert!(
            !watchdog_due(Status::Streaming, alive, never_waits),
            "a source without a stall rule gets no grace"
        );
        assert!(
            !watchdog_due(Status::Streaming, Moved::default(), silence(5)),
            "a source that is silent and does not step is stuck"
        );
        let wedged = Moved {
            frames_in: true,
            source_alive: true,
            ..Moved::default()
        };
        assert!(
            !watchdog_due(Status::Streaming, wedged, silence(0)),
            "frames come in and none leaves: wedged, whatever the source does"
        );
        assert!(
            watchdog_due(Status::WaitingForSource, alive, silence(600)),
            "waiting for the camera is pinged however long it lasts"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_frozen_camera_keeps_the_pings_until_its_stall_rule_and_a_stuck_one_stops_them() {
        let manager = Manager::new();
        let status = SharedStatus::new();
        status.set_destinations(1)[0].set(Status::Streaming);
        status.set_source(Status::Streaming);
        status.set_source_stall(Duration::from_secs(20));
        let notifier = Notifier::connect(&manager.path).unwrap();
        let _task = tokio::spawn(run(notifier, status.clone(), Some(Duration::from_secs(10))));
        settle().await;
        manager.received();
        let pings = |m: &Manager| m.received().iter().filter(|s| *s == "WATCHDOG=1").count();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for _ in 0..50 {
            Counters::add(&status.counters.frames_in, 1);
            Counters::add(&status.counters.frames_sent, 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        manager.received();
        // The camera froze; the source waits for data within its stall rule (20 s), noting
        // itself alive each second, and the status still says streaming.
        for _ in 0..18 {
            status.source_alive();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let fed = pings(&manager);
        assert!(fed >= 3, "{fed} pings in the first 18 s of a frozen camera");
        // Past its rule and still "streaming": the source missed its own deadline.
        tokio::time::sleep(Duration::from_secs(5)).await;
        manager.received();
        for _ in 0..60 {
            status.source_alive();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(
            pings(&manager),
            0,
            "pings for a source silent past its stall rule"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_destination_that_gave_up_on_its_configuration_does_not_mask_a_wedged_one() {
        let manager = Manager::new();
        let status = SharedStatus::new();
        let destinations = status.set_destinations(2);
        destinations[0].set(Status::Error(ErrorKind::Config));
        destinations[1].set(Status::Streaming);
        status.set_source(Status::Streaming);
        assert_eq!(
            status.get(),
            Status::Error(ErrorKind::Config),
            "the LED shows it"
        );
        let notifier = Notifier::connect(&manager.path).unwrap();
        let _task = tokio::spawn(run(notifier, status.clone(), Some(Duration::from_secs(10))));
        settle().await;
        manager.received();
        let pings = |m: &Manager| m.received().iter().filter(|s| *s == "WATCHDOG=1").count();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // The camera delivers, nothing reaches the other server: wedged.
        for _ in 0..300 {
            Counters::add(&status.counters.frames_in, 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            pings(&manager) <= 1,
            "pings while the live destination is wedged"
        );
        // It sends again: pinged.
        for _ in 0..300 {
            Counters::add(&status.counters.frames_in, 1);
            Counters::add(&status.counters.frames_sent, 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(pings(&manager) >= 5);
        // A configuration error of the whole process is still pinged, idle as it is.
        status.set(Status::Error(ErrorKind::Config));
        tokio::time::sleep(Duration::from_secs(5)).await;
        manager.received();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(pings(&manager) >= 5);
    }

    #[test]
    fn abstract_namespace_sockets_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("campush-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier::connect(&format!("@{name}")).unwrap();
        notifier.notify("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn a_relative_notify_socket_is_refused() {
        assert!(Notifier::connect("run/notify").is_err());
    }
}
