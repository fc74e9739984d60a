use std::path::Path;

use super::settings::unreadable_key_file;
use super::*;
use crate::rtmp::RtmpError;
use crate::setting::Invalid;
use crate::status::ErrorKind;
use crate::transport::{TlsOptions, TransportError};

fn settings(min_ms: u64, max_ms: u64) -> PublisherSettings {
    PublisherSettings {
        backoff_min: Duration::from_millis(min_ms),
        backoff_max: Duration::from_millis(max_ms),
        ..PublisherSettings::default()
    }
}

#[test]
fn a_key_file_closed_to_the_reader_says_how_to_check_it_as_the_service() {
    let path = Path::new("/etc/campush/sk-pasted-here");
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    let msg = unreadable_key_file(path, &denied);
    assert!(
        msg.starts_with("cannot read the key file (in /etc/campush): "),
        "{msg}"
    );
    assert!(
        msg.ends_with("as the service reads it: sudo -u campush campush check-config"),
        "{msg}"
    );
    let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
    let msg = unreadable_key_file(path, &missing);
    assert!(!msg.contains("sudo"), "{msg}");
    assert!(!msg.contains("sk-pasted"), "{msg}");
}

fn output_with_key_file(path: &Path) -> Result<Output, Invalid> {
    Output::check(
        &RawOutput {
            url: Some("rtmp://127.0.0.1/live".into()),
            key_file: Some(path.to_path_buf()),
            ..RawOutput::default()
        },
        None,
    )
}

#[test]
fn a_key_file_is_read_trimmed_and_only_when_it_is_a_small_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.key");
    std::fs::write(&path, "\u{feff}sk-1234\n").unwrap();
    let out = output_with_key_file(&path).unwrap();
    assert_eq!(out.url.stream_key, "sk-1234");

    std::fs::write(&path, vec![b'k'; KEY_FILE_LIMIT + 1]).unwrap();
    let e = output_with_key_file(&path).unwrap_err();
    assert_eq!(e.key, "key_file");
    assert!(
        e.message.contains("larger than 4096 bytes"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("kkkk"), "{}", e.message);

    let t = std::time::Instant::now();
    let e = output_with_key_file(Path::new("/dev/zero")).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(e.message.contains("not a regular file"), "{}", e.message);
}

#[test]
fn a_key_file_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.key");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let asked = path.clone();
    std::thread::spawn(move || {
        let _ = tx.send(output_with_key_file(&asked).map(|_| ()));
    });
    let got = rx.recv_timeout(Duration::from_secs(2));
    if got.is_err() {
        // Unblock the reader (a writer opens and closes), so the thread ends.
        let _ = std::fs::OpenOptions::new().write(true).open(&path);
    }
    let Ok(Err(e)) = got else {
        panic!("a FIFO key file was not refused within 2 s: {got:?}");
    };
    assert!(e.message.contains("a FIFO"), "{}", e.message);
}

#[test]
fn the_backoff_ceiling_doubles_from_the_minimum_up_to_the_maximum() {
    let s = settings(500, 10_000);
    let ceilings: Vec<u64> = (1..=7)
        .map(|n| backoff_delay(&s, n, ErrorKind::Network, 1.0).as_millis() as u64)
        .collect();
    assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    assert_eq!(
        backoff_delay(&s, 1000, ErrorKind::Network, 1.0),
        Duration::from_secs(10)
    );
}

#[test]
fn full_jitter_spreads_the_wait_below_the_ceiling_with_a_floor() {
    let s = settings(500, 10_000);
    assert_eq!(
        backoff_delay(&s, 4, ErrorKind::Network, 0.5),
        Duration::from_millis(2000)
    );
    assert_eq!(
        backoff_delay(&s, 4, ErrorKind::Network, 0.0),
        Duration::from_millis(125)
    );
}

#[test]
fn a_refusal_waits_the_maximum_whatever_the_attempt() {
    let s = settings(500, 10_000);
    for n in [1, 2, 9] {
        assert_eq!(
            backoff_delay(&s, n, ErrorKind::Refused, 0.0),
            Duration::from_secs(10)
        );
    }
}

fn io(kind: std::io::ErrorKind) -> std::io::Error {
    std::io::Error::from(kind)
}

fn connect_failed(kind: std::io::ErrorKind) -> PublishError {
    PublishError::Transport(TransportError::Connect {
        addr: "127.0.0.1:1935".into(),
        source: io(kind),
    })
}

#[test]
fn nobody_listening_or_nobody_reachable_is_retried_quickly() {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, HostUnreachable};
    for kind in [ConnectionRefused, ConnectionReset, HostUnreachable] {
        assert_eq!(
            retry_class(&connect_failed(kind), false, None),
            Retry::Quick,
            "{kind:?}"
        );
    }
    let timed_out = PublishError::Transport(TransportError::ConnectTimeout {
        host: "h".into(),
        port: 1935,
        secs: 10,
    });
    assert_eq!(retry_class(&timed_out, false, None), Retry::Quick);
}

#[test]
fn a_connection_reset_before_the_server_said_a_word_is_retried_quickly() {
    let reset = PublishError::Io(io(std::io::ErrorKind::ConnectionReset));
    assert_eq!(retry_class(&reset, false, None), Retry::Quick);
}

#[test]
fn a_clean_hang_up_after_our_handshake_is_a_refusal_even_without_a_word() {
    // A server that read C0 and C1 and closed: how one refusing us without RTMP looks.
    let closed = PublishError::Closed(CLOSED_WHILE_PUBLISHING);
    assert_eq!(closed.kind(), ErrorKind::Refused);
    assert_eq!(retry_class(&closed, false, None), Retry::Backoff);
}

#[test]
fn a_server_that_answered_and_then_failed_us_gets_the_backoff() {
    let garbage = PublishError::Rtmp(RtmpError::NotRtmp(0x48));
    assert_eq!(retry_class(&garbage, true, None), Retry::Backoff);
    let closed_after_speaking = PublishError::Closed(CLOSED_WHILE_PUBLISHING);
    assert_eq!(
        retry_class(&closed_after_speaking, true, None),
        Retry::Backoff
    );
    let silent = PublishError::Timeout("handshake and publish", Duration::from_secs(10));
    assert_eq!(retry_class(&silent, false, None), Retry::Backoff);
    let refused = PublishError::Rtmp(RtmpError::Refused {
        command: "publish",
        code: crate::peer_text::PeerText::new("NetStream.Publish.BadName"),
        description: crate::peer_text::PeerText::new("in use"),
    });
    assert_eq!(retry_class(&refused, true, None), Retry::Backoff);
    let certificate = PublishError::Transport(TransportError::Certificate {
        host: "h".into(),
        problem: crate::transport::CertificateProblem::UnknownIssuer,
    });
    assert_eq!(retry_class(&certificate, false, None), Retry::Backoff);
    let unresolved = PublishError::Transport(TransportError::Resolve {
        host: "typo.example".into(),
        source: io(std::io::ErrorKind::NotFound),
    });
    assert_eq!(retry_class(&unresolved, false, None), Retry::Backoff);
}

#[test]
fn a_stream_lost_after_streaming_a_while_is_retried_quickly_one_dropped_at_once_is_not() {
    let lost = PublishError::Closed("while streaming");
    let long = Some(Duration::from_secs(5));
    let short = Some(Duration::from_millis(500));
    assert_eq!(retry_class(&lost, true, long), Retry::Quick);
    assert_eq!(retry_class(&lost, true, short), Retry::Backoff);
    let reset = PublishError::Io(io(std::io::ErrorKind::ConnectionReset));
    assert_eq!(retry_class(&reset, true, long), Retry::Quick);
    let stalled = PublishError::Timeout("a write that made no progress", Duration::from_secs(5));
    assert_eq!(retry_class(&stalled, true, long), Retry::Backoff);
}

#[test]
fn a_quick_retry_never_waits_longer_than_the_cap_however_many_attempts_failed() {
    let s = settings(500, 10_000);
    for failures in [1, 2, 3, 10, 1000] {
        for jitter in [0.0, 0.5, 0.999] {
            let d = retry_delay(&s, failures, ErrorKind::Network, Retry::Quick, jitter);
            assert!(d <= QUICK_RETRY_CAP, "attempt {failures}: {d:?}");
            assert!(d >= Duration::from_millis(125), "attempt {failures}: {d:?}");
        }
    }
    // While the backoff of the same attempt would wait up to its maximum.
    assert_eq!(
        retry_delay(&s, 10, ErrorKind::Network, Retry::Backoff, 0.999),
        Duration::from_secs(10).mul_f64(0.999)
    );
    // A configured maximum below the cap still holds.
    let fast = settings(20, 100);
    assert_eq!(
        retry_delay(&fast, 9, ErrorKind::Network, Retry::Quick, 1.0),
        Duration::from_millis(100)
    );
}

#[tokio::test(start_paused = true)]
async fn with_nobody_listening_attempts_come_at_most_the_quick_cap_apart() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = PublisherSettings {
        max_attempts: Some(12),
        ..settings(500, 10_000)
    };
    let (mut p, _status, _stop) = publisher(port, s);
    let start = tokio::time::Instant::now();
    p.run().await.unwrap_err();
    let waited = start.elapsed();
    // Eleven waits of at most 1.5 s each, where the backoff would allow up to 73.5 s.
    assert!(waited <= QUICK_RETRY_CAP * 11, "{waited:?}");
}

/// A publisher to `port`, the status it reports to, and its stop switch (kept by the caller:
/// dropping it would read as "stop").
fn publisher(
    port: u16,
    settings: PublisherSettings,
) -> (Publisher, crate::status::SharedStatus, watch::Sender<bool>) {
    let status = crate::status::SharedStatus::new();
    let dest = status.set_destinations(1).remove(0);
    let (stop, rx) = watch::channel(false);
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{port}/live/key")).unwrap();
    let queue = Arc::new(FrameQueue::new(
        crate::queue::Limits::default(),
        crate::queue::Policy::DropGops,
    ));
    let p = Publisher::new(url, settings, queue, SharedHeaders::default(), dest, rx);
    (p, status, stop)
}

#[tokio::test(start_paused = true)]
async fn reconnect_attempts_follow_the_backoff_schedule_and_give_up_when_told() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = PublisherSettings {
        max_attempts: Some(6),
        ..settings(500, 4000)
    };
    let (mut p, status, _stop) = publisher(port, s);
    let start = tokio::time::Instant::now();
    let err = p.run().await.unwrap_err();
    let waited = start.elapsed();
    assert!(matches!(err, PublishError::Transport(_)), "{err}");
    // Five waits between six attempts, each at most its ceiling: 0.5+1+2+4+4 s.
    assert!(waited <= Duration::from_millis(11_500), "{waited:?}");
    assert!(waited >= Duration::from_millis(5 * 125), "{waited:?}");
    assert_eq!(Counters::get(&status.counters.connects), 6);
    assert_eq!(Counters::get(&status.counters.reconnects), 5);
    assert_eq!(status.get(), Status::Error(ErrorKind::Network));
    assert!(status.last_error().unwrap().contains("<redacted>"));
}

#[tokio::test(start_paused = true)]
async fn a_destination_down_when_the_input_ends_gives_up_instead_of_holding_the_end() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (mut p, _status, _stop) = publisher(port, settings(500, 4000)); // never gives up by count
    p.queue.close();
    let err = p.run().await.unwrap_err();
    assert!(matches!(err, PublishError::Transport(_)), "{err}");
}

#[test]
fn a_certificate_refused_for_its_dates_blames_an_unsynchronised_clock_only() {
    use crate::transport::CertificateProblem;
    let refused = |problem| {
        PublishError::Transport(TransportError::Certificate {
            host: "h".into(),
            problem,
        })
    };
    for dated in [
        CertificateProblem::Expired(String::new()),
        CertificateProblem::NotValidYet(" since 2030-01-01".into()),
    ] {
        let e = refused(dated);
        assert!(e
            .clock_note(Some(false))
            .contains("clock is not synchronised"));
        assert_eq!(
            e.clock_note(Some(true)),
            "",
            "a synchronised clock is not to blame"
        );
        assert_eq!(e.clock_note(None), "", "an unknown clock is not blamed");
    }
    assert_eq!(
        refused(CertificateProblem::UnknownIssuer).clock_note(Some(false)),
        ""
    );
    assert_eq!(PublishError::Closed("x").clock_note(Some(false)), "");
}

/// A TLS server on loopback presenting a certificate for localhost that expired in 2021,
/// signed by a CA in the returned PEM file; its port and the task (abort it when done).
#[cfg(feature = "tls")]
async fn expired_tls_server(
    dir: &std::path::Path,
) -> (u16, std::path::PathBuf, tokio::task::JoinHandle<()>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = acceptor.accept(sock).await;
        }
    });
    (port, ca_file, task)
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn an_expired_certificate_while_the_clock_is_unsynchronised_says_so_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca_file, server) = expired_tls_server(dir.path()).await;
    for (clock_synced, blamed) in [(Some(false), true), (Some(true), false)] {
        let status = crate::status::SharedStatus::new();
        status.set_health(crate::health::Health {
            clock_synced,
            ..crate::health::Health::default()
        });
        let (_stop, rx) = watch::channel(false);
        let url = RtmpUrl::parse(&format!("rtmps://localhost:{port}/live/key")).unwrap();
        let settings = PublisherSettings {
            max_attempts: Some(1),
            tls: TlsOptions {
                ca_file: Some(ca_file.clone()),
                insecure: false,
            },
            ..settings(500, 4000)
        };
        let queue = Arc::new(FrameQueue::new(
            crate::queue::Limits::default(),
            crate::queue::Policy::DropGops,
        ));
        let dest = status.set_destinations(1).remove(0);
        let mut p = Publisher::new(url, settings, queue, SharedHeaders::default(), dest, rx);
        let err = p.run().await.unwrap_err();
        assert!(
            matches!(&err, PublishError::Transport(t) if t.is_certificate()),
            "{err}"
        );
        let last = status.last_error().unwrap();
        assert!(last.contains("has expired"), "{last}");
        assert_eq!(
            last.contains("the system clock is not synchronised"),
            blamed,
            "clock synchronised: {clock_synced:?}: {last}"
        );
    }
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn a_server_that_accepts_and_never_answers_hits_the_publish_deadline() {
    let (port, hold) = crate::transport::silent_server().await;
    let s = PublisherSettings {
        max_attempts: Some(1),
        publish_timeout: Duration::from_secs(10),
        ..settings(500, 4000)
    };
    let (mut p, _status, _stop) = publisher(port, s);
    let start = tokio::time::Instant::now();
    let err = p.run().await.unwrap_err();
    assert!(
        matches!(err, PublishError::Timeout("handshake and publish", d) if d == Duration::from_secs(10)),
        "{err}"
    );
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(10) && waited < Duration::from_secs(11));
    hold.abort();
}

/// Frames of the given sizes in a pool (after the pool's front room), as a source fills them.
fn frames(sizes: &[usize]) -> (crate::pool::Pool, Vec<Frame>) {
    let pool = crate::pool::Pool::new(sizes.len(), 1024);
    let frames = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut slot = pool.acquire().expect("a slot per frame");
            let data: Vec<u8> = (0..n).map(|b| (b * 7 + i) as u8).collect();
            slot.fill_from(&data);
            slot.freeze(crate::pool::FrameMeta {
                timestamp_us: i as u64 * 33_333,
                keyframe: i == 0,
                ..Default::default()
            })
        })
        .collect();
    (pool, frames)
}

#[test]
fn a_batch_goes_on_the_wire_as_the_same_frames_sent_one_by_one_in_one_writev() {
    use crate::rtmp::ChunkWriter;
    // Around the chunk size (4096) and across it several times, one empty body, and an audio
    // message before every other frame (what `write_frame` stages besides the header).
    let sizes = [20_000, 0, 4091, 4096 - 5, 4097, 100, 70_000, 1];
    let (_pool, frames) = frames(&sizes);
    let audio = [0xAFu8; 300];
    let writer = || {
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        w
    };

    let mut one_by_one = writer();
    let mut expected = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let ts = i as u32 * 33;
        if i % 2 == 1 {
            one_by_one.write_message(&mut expected, 4, ts, 8, 1, &audio);
        }
        one_by_one.write_message(&mut expected, 6, ts, 9, 1, &f.bytes());
    }

    let mut batched = writer();
    let mut staged = Vec::new();
    let mut batch = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let ts = i as u32 * 33;
        if i % 2 == 1 {
            batched.write_message(&mut staged, 4, ts, 8, 1, &audio);
        }
        let start = batch.last().map_or(0, |b: &Staged| b.staged_end);
        let framing = batched.write_message_header(&mut staged, 6, ts, 9, 1, f.meta().len as usize);
        assert!(framing.is_some());
        // Each frame's length on the wire is its staged part and its framed body.
        let body = framing
            .as_ref()
            .map_or(0, |fr| fr.framed_len(f.meta().len as usize));
        batch.push(Staged {
            frame: f.clone(),
            framing,
            staged_end: staged.len(),
            wire_len: staged.len() - start + body,
        });
    }
    let bodies: Vec<_> = batch.iter().map(|b| b.frame.bytes()).collect();
    let parts = batch_parts(&staged, &batch, &bodies);
    assert_eq!(parts.clone().collect::<Vec<_>>().concat(), expected);
    let total: usize = batch.iter().map(|b| b.wire_len).sum();
    assert_eq!(total, expected.len());

    // A socket that takes everything takes the batch in one call (the slices fit), nothing is
    // copied; one that takes 10 000 bytes leaves exactly the rest in the head buffer.
    let mut calls = 0;
    let mut wire = Vec::new();
    let mut head = Vec::new();
    let written = vectored::write_now(&mut head, parts.clone(), |slices| {
        calls += 1;
        slices.iter().for_each(|s| wire.extend_from_slice(s));
        Ok(slices.iter().map(|s| s.len()).sum())
    })
    .unwrap();
    assert_eq!((calls, written, head.len()), (1, expected.len(), 0));
    assert_eq!(wire, expected);
    let mut wire = Vec::new();
    let written = vectored::write_now(&mut head, parts, |slices| {
        let mut n = 0;
        for s in slices {
            let take = s.len().min(10_000 - n);
            wire.extend_from_slice(&s[..take]);
            n += take;
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    })
    .unwrap();
    assert_eq!(written, 10_000);
    wire.extend_from_slice(&head);
    assert_eq!(wire, expected);
}
