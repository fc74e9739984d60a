//! The supervisor against real peers on loopback: the fixture clip, read by the file source,
//! pushed to an independent RTMP server running in-process (scuffle-rtmp, `tests/inproc`), to a
//! TLS front with a certificate nobody trusts, to a port nobody listens on, and to a peer that
//! hangs up before the publish is accepted. Stop and reload requests go through the supervisor's
//! [`Control`], as the signal shell sends them.

#[path = "../../tests/inproc/mod.rs"]
mod inproc;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::cli::RunArgs;
use crate::status::{Counters, Status};
use crate::transport::{CertificateProblem, TransportError};
use inproc::{Received, ScuffleServer};

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);
const CLIP_FRAMES: usize = 90;
/// Long enough for anything on loopback, short enough to fail a hung test.
const PATIENCE: Duration = Duration::from_secs(20);

/// The configuration `campush run --source SOURCE --url URL... --audio none` gives, with `more`
/// flags set on top.
fn config(source: &str, urls: &[String], more: impl FnOnce(&mut RunArgs)) -> Config {
    checked(source, urls, more).expect("a valid configuration")
}

fn checked(
    source: &str,
    urls: &[String],
    more: impl FnOnce(&mut RunArgs),
) -> Result<Config, ConfigError> {
    let mut args = RunArgs {
        source: Some(source.to_owned()),
        urls: urls.to_vec(),
        audio: Some("none".into()),
        ..RunArgs::default()
    };
    more(&mut args);
    args.to_raw_config().and_then(|raw| raw.check())
}

fn file(path: &Path) -> String {
    format!("file:{}", path.display())
}

fn never_reloaded() -> Result<Config, ConfigError> {
    panic!("this test asks for no reload")
}

/// A supervisor running as in the process: on a thread of its own, with its own runtime.
struct Running {
    control: Control,
    status: SharedStatus,
    thread: JoinHandle<u8>,
}

fn start(
    config: Config,
    reload: impl FnMut() -> Result<Config, ConfigError> + Send + 'static,
) -> Running {
    let supervisor = Supervisor::new(config, reload);
    let control = supervisor.control();
    let status = supervisor.status().clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        supervisor.run(&runtime)
    });
    Running {
        control,
        status,
        thread,
    }
}

impl Running {
    /// The exit code, which must come within `limit`.
    fn exit_code(self, limit: Duration) -> u8 {
        let deadline = Instant::now() + limit;
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the supervisor did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.thread.join().expect("the supervisor thread panicked")
    }

    fn frames_in(&self) -> u64 {
        Counters::get(&self.status.counters.frames_in)
    }
}

fn published(r: &Received, key: &str) -> bool {
    r.publishes
        .iter()
        .any(|(app, name)| app == "live" && name == key)
}

/// Runs `exit_code` for a clip pushed with `urls`, `more` flags on top; at most one attempt per
/// destination.
fn exit_code_of(source: &str, urls: &[String], more: impl FnOnce(&mut RunArgs)) -> u8 {
    let config = config(source, urls, |args| {
        args.max_attempts = Some(1);
        more(args);
    });
    start(config, never_reloaded).exit_code(PATIENCE)
}

#[test]
fn a_clip_pushed_without_pacing_reaches_the_server_whole_and_the_run_exits_0() {
    let server = ScuffleServer::start();
    let config = config(&file(Path::new(CLIP)), &[server.url("whole")], |args| {
        args.no_pace = true
    });
    let running = start(config, never_reloaded);
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
    let r = server.wait_for("the whole clip", PATIENCE, |r| {
        r.videos.len() > CLIP_FRAMES && r.unpublishes == 1
    });
    assert_eq!(r.publishes, [("live".to_owned(), "whole".to_owned())]);
    // One AVC sequence header, then every frame of the clip.
    assert_eq!(r.videos.len(), 1 + CLIP_FRAMES);
    assert_eq!(r.videos[0].1[..2], [0x17, 0x00]);
    assert!(r.videos[1..].iter().all(|(_, tag)| tag[1] == 0x01));
}

#[test]
fn a_stop_request_unpublishes_every_destination_and_the_run_exits_0_within_two_seconds() {
    let server = ScuffleServer::start();
    let config = config(
        &file(Path::new(CLIP)),
        &[server.url("a"), server.url("b")],
        |args| args.looping = true,
    );
    let running = start(config, never_reloaded);
    server.wait_for("both destinations streaming", PATIENCE, |r| {
        published(r, "a") && published(r, "b") && r.videos.len() >= 20
    });
    assert_eq!(running.status.get(), Status::Streaming);
    running.control.stop();
    let asked = Instant::now();
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    let r = server.wait_for("both unpublishes", PATIENCE, |r| r.unpublishes == 2);
    assert_eq!(
        r.publishes.len(),
        2,
        "nobody reconnected: {:?}",
        r.publishes
    );
}

#[test]
fn a_reload_with_the_same_source_moves_the_destinations_while_the_source_keeps_running() {
    let server = ScuffleServer::start();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.h264");
    std::fs::copy(CLIP, &clip).unwrap();
    // Three seconds of video with a keyframe every second, not looping (a loop would open the
    // file again): the new destination starts at the next keyframe.
    let before = config(&file(&clip), &[server.url("before")], |_| {});
    let after = config(&file(&clip), &[server.url("after")], |_| {});
    let running = start(before, move || Ok(after.clone()));
    server.wait_for("the first destination streaming", PATIENCE, |r| {
        published(r, "before") && r.videos.len() >= 3
    });
    // A source opened again now would fail, and end the run with 66.
    std::fs::remove_file(&clip).unwrap();
    let frames_before = running.frames_in();

    running.control.reload();
    let r = server.wait_for("the new destination streaming", PATIENCE, |r| {
        published(r, "after") && r.unpublishes == 1
    });
    let videos_at_switch = r.videos.len();
    server.wait_for("frames for the new destination", PATIENCE, |r| {
        r.videos.len() >= videos_at_switch + 3
    });
    assert!(running.frames_in() > frames_before);
    running.control.stop();
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
    assert_eq!(server.received().publishes.len(), 2);
}

#[test]
fn a_reload_to_another_source_restarts_the_pipeline_with_that_source() {
    let server = ScuffleServer::start();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.h264");
    std::fs::copy(CLIP, &copy).unwrap();
    let looping = |args: &mut RunArgs| args.looping = true;
    let before = config(&file(Path::new(CLIP)), &[server.url("before")], looping);
    let after = config(&file(&copy), &[server.url("after")], looping);
    let running = start(before, move || Ok(after.clone()));
    server.wait_for("the first source streaming", PATIENCE, |r| {
        published(r, "before") && r.videos.len() >= 3
    });
    running.control.reload();
    let r = server.wait_for("the second source streaming", PATIENCE, |r| {
        published(r, "after")
    });
    let videos_at_switch = r.videos.len();
    server.wait_for("frames from the second source", PATIENCE, |r| {
        r.videos.len() >= videos_at_switch + 3
    });
    assert_eq!(
        running.status.get(),
        Status::Streaming,
        "the new pipeline says it streams (its first frame is not the process's)"
    );
    running.control.stop();
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
}

#[test]
fn a_reload_away_from_an_absent_camera_ends_its_retries_before_the_new_source_starts() {
    let server = ScuffleServer::start();
    let absent = config("v4l2:/nonexistent/video99", &[server.url("before")], |_| {});
    let clip = config(&file(Path::new(CLIP)), &[server.url("after")], |args| {
        args.looping = true
    });
    let running = start(absent, move || Ok(clip.clone()));
    let alive = || Counters::get(&running.status.counters.source_alive);
    let deadline = Instant::now() + PATIENCE;
    while alive() < 3 {
        assert!(
            Instant::now() < deadline,
            "the absent device is not retried"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running.control.reload();
    server.wait_for("the new source streaming", PATIENCE, |r| {
        published(r, "after") && r.videos.len() >= 3
    });
    // The file source never notes itself alive: only the old retry loop could.
    let at_switch = alive();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        alive(),
        at_switch,
        "the old source still retries its device after the reload"
    );
    running.control.stop();
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
}

#[test]
fn a_reload_to_a_source_that_cannot_be_opened_ends_the_run_with_66() {
    let server = ScuffleServer::start();
    let looping = |args: &mut RunArgs| args.looping = true;
    let before = config(&file(Path::new(CLIP)), &[server.url("before")], looping);
    let gone = config(
        "file:/nonexistent/clip.h264",
        &[server.url("after")],
        looping,
    );
    let running = start(before, move || Ok(gone.clone()));
    server.wait_for("the first source streaming", PATIENCE, |r| {
        published(r, "before") && r.videos.len() >= 3
    });
    running.control.reload();
    assert_eq!(running.exit_code(PATIENCE), exit::NO_INPUT);
    assert!(!published(&server.received(), "after"));
}

#[test]
fn an_invalid_reload_is_refused_and_the_run_goes_on_unchanged() {
    let server = ScuffleServer::start();
    let config = config(&file(Path::new(CLIP)), &[server.url("kept")], |args| {
        args.looping = true
    });
    let tried = Arc::new(AtomicBool::new(false));
    let running = start(config, {
        let tried = Arc::clone(&tried);
        move || {
            tried.store(true, Ordering::SeqCst);
            checked("camera", &[], |_| {})
        }
    });
    server.wait_for("streaming", PATIENCE, |r| r.videos.len() >= 3);
    running.control.reload();
    let deadline = Instant::now() + PATIENCE;
    while !tried.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the reload was never tried");
        std::thread::sleep(Duration::from_millis(10));
    }
    let videos = server.received().videos.len();
    let r = server.wait_for("frames after the refused reload", PATIENCE, |r| {
        r.videos.len() >= videos + 10
    });
    assert_eq!(r.publishes.len(), 1, "the destination was not restarted");
    assert_eq!(r.unpublishes, 0);
    running.control.stop();
    assert_eq!(running.exit_code(PATIENCE), exit::OK);
}

#[test]
fn a_source_that_cannot_be_opened_exits_66() {
    let server = ScuffleServer::start();
    let code = exit_code_of("file:/nonexistent/clip.h264", &[server.url("k")], |_| {});
    assert_eq!(code, exit::NO_INPUT);
}

#[test]
fn an_input_that_is_not_h264_exits_65() {
    let server = ScuffleServer::start();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a video\n".repeat(1000)).unwrap();
    let code = exit_code_of(&file(&text), &[server.url("k")], |args| args.no_pace = true);
    assert_eq!(code, exit::DATA);
}

#[test]
fn a_server_nobody_answers_for_exits_69_after_the_allowed_attempts() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("rtmp://127.0.0.1:{port}/live/k");
    let code = exit_code_of(&file(Path::new(CLIP)), &[url], |args| args.no_pace = true);
    assert_eq!(code, exit::UNAVAILABLE);
}

#[test]
fn a_server_that_hangs_up_before_accepting_the_publish_exits_77() {
    // Reads the client's C0 and C1 in full (so closing sends a FIN, not a reset), then hangs up:
    // what a server that refuses the stream key, or is not an RTMP server, looks like.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut c0c1 = [0u8; 1 + 1536];
        socket.read_exact(&mut c0c1).unwrap();
    });
    let url = format!("rtmp://127.0.0.1:{port}/live/k");
    let code = exit_code_of(&file(Path::new(CLIP)), &[url], |args| args.no_pace = true);
    assert_eq!(code, exit::REFUSED);
    peer.join().unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn a_server_certificate_nobody_trusts_exits_76() {
    let server = ScuffleServer::start();
    let (port, _pem) = inproc::tls_front(
        server.port,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    );
    let url = format!("rtmps://localhost:{port}/live/k");
    let code = exit_code_of(&file(Path::new(CLIP)), &[url], |args| args.no_pace = true);
    assert_eq!(code, exit::CERTIFICATE);
}

#[test]
fn every_kind_of_error_has_its_documented_exit_code() {
    let io = || std::io::Error::other("x");
    let what = || "file x".to_owned();
    let sources = [
        (
            SourceError::Open {
                what: what(),
                source: io(),
            },
            exit::NO_INPUT,
        ),
        (
            SourceError::Read {
                what: what(),
                source: io(),
            },
            exit::IO,
        ),
        (SourceError::NotAnnexB { what: what() }, exit::DATA),
        (
            SourceError::AccessUnitTooLarge {
                what: what(),
                limit: 1,
            },
            exit::DATA,
        ),
        (SourceError::Unsupported("x".into()), exit::CONFIG),
        (SourceError::Device("x".into()), exit::CONFIG),
    ];
    for (e, code) in sources {
        assert_eq!(source_exit_code(&e), code, "{e}");
        assert_eq!(ingest_exit_code(&IngestError::Source(e)), code);
    }
    assert_eq!(
        ingest_exit_code(&IngestError::NoParameterSets(300)),
        exit::DATA
    );

    let certificate = TransportError::Certificate {
        host: "h".into(),
        problem: CertificateProblem::UnknownIssuer,
    };
    let refused = crate::rtmp::RtmpError::Refused {
        command: "publish",
        code: crate::peer_text::PeerText::new("NetStream.Publish.BadName"),
        description: crate::peer_text::PeerText::new("x"),
    };
    let publishes = [
        (PublishError::Transport(certificate), exit::CERTIFICATE),
        (PublishError::Rtmp(refused), exit::REFUSED),
        (
            PublishError::Transport(TransportError::TlsSetup("x".into())),
            exit::CONFIG,
        ),
        (
            PublishError::Transport(TransportError::Connect {
                addr: "a".into(),
                source: io(),
            }),
            exit::UNAVAILABLE,
        ),
        (
            PublishError::Rtmp(crate::rtmp::RtmpError::Chunk(
                crate::rtmp::ChunkError::TooManyChunkStreams { limit: 64 },
            )),
            exit::UNAVAILABLE,
        ),
        (PublishError::Io(io()), exit::UNAVAILABLE),
        (
            PublishError::Timeout("a write", Duration::from_secs(5)),
            exit::UNAVAILABLE,
        ),
    ];
    for (e, code) in publishes {
        assert_eq!(publish_exit_code(&e), code, "{e}");
    }
}
