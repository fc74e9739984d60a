//! `ClientSession` driven over real TCP by a thin tokio shell, against independent servers:
//!
//! 1. scuffle-rtmp's `ServerSession`, in-process on 127.0.0.1 (always runs);
//! 2. nginx-rtmp (the `support` fixture), if the nginx binary and its RTMP module are installed
//!    (a loud SKIP otherwise, or a failure when `CAMPUSH_REQUIRE_TOOLS=1`).
//!
//! It also checks, with a counting allocator, that writing media and answering pings and
//! acknowledgements do not allocate. Network traffic goes to 127.0.0.1 only, and every wait is
//! bounded by a timeout.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use campush::amf0;
use campush::rtmp::{ChunkWriter, ClientSession, RtmpError, RtmpUrl, SessionConfig, SessionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

// Allocation counting: only the allocations of the test thread that asks for it, so parallel
// tests do not disturb each other.

#[global_allocator]
static GLOBAL: campush::alloc::Counting = campush::alloc::Counting;

// ---------------------------------------------------------------------------------------------
// The thin shell.

const STEP: Duration = Duration::from_secs(10);

/// Fields are read through `Debug` in failure messages.
#[allow(dead_code)]
#[derive(Debug)]
enum ShellError {
    Io(std::io::Error),
    Rtmp(RtmpError),
    Timeout(&'static str),
    Eof,
}

impl From<std::io::Error> for ShellError {
    fn from(e: std::io::Error) -> Self {
        ShellError::Io(e)
    }
}

struct Conn {
    tcp: TcpStream,
    session: ClientSession,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, url: &RtmpUrl, seed: u64) -> Result<Conn, ShellError> {
        let tcp = timeout(STEP, TcpStream::connect(addr))
            .await
            .map_err(|_| ShellError::Timeout("connect"))??;
        tcp.set_nodelay(true)?;
        Ok(Conn {
            tcp,
            session: ClientSession::new(SessionConfig::for_url(url, seed)),
            out: Vec::with_capacity(256 * 1024),
            buf: vec![0; 64 * 1024],
        })
    }

    async fn flush(&mut self) -> Result<(), ShellError> {
        if !self.out.is_empty() {
            timeout(STEP, self.tcp.write_all(&self.out))
                .await
                .map_err(|_| ShellError::Timeout("write"))??;
            self.out.clear();
        }
        Ok(())
    }

    /// One read (bounded by `limit`), fed to the session, answers flushed. `Ok(0)` on EOF.
    async fn pump(&mut self, limit: Duration) -> Result<usize, ShellError> {
        let n = timeout(limit, self.tcp.read(&mut self.buf))
            .await
            .map_err(|_| ShellError::Timeout("read"))??;
        self.session
            .receive(&self.buf[..n], &mut self.out)
            .map_err(ShellError::Rtmp)?;
        self.flush().await?;
        Ok(n)
    }

    async fn publish(&mut self) -> Result<(), ShellError> {
        self.session.start(&mut self.out);
        self.flush().await?;
        let deadline = Instant::now() + STEP;
        while !self.session.is_published() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ShellError::Timeout("publish"));
            }
            if self.pump(left).await? == 0 {
                return Err(ShellError::Eof);
            }
        }
        Ok(())
    }

    /// Reads (and answers) until the server closes or `limit` passes. True if it closed.
    async fn drain_until_close(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.pump(left).await {
                Ok(0) => return true,
                Ok(_) => {}
                Err(ShellError::Timeout(_)) => return false,
                Err(ShellError::Io(_)) => return true,
                Err(e) => panic!("unexpected error while draining: {e:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test media.

/// `"@setDataFrame", "onMetaData", {width, height, framerate, videocodecid, encoder}`.
fn metadata() -> Vec<u8> {
    let mut b = Vec::new();
    amf0::write_string(&mut b, "@setDataFrame");
    amf0::write_string(&mut b, "onMetaData");
    amf0::write_ecma_array_start(&mut b, 5);
    amf0::write_key(&mut b, "width");
    amf0::write_number(&mut b, 320.0);
    amf0::write_key(&mut b, "height");
    amf0::write_number(&mut b, 240.0);
    amf0::write_key(&mut b, "framerate");
    amf0::write_number(&mut b, 30.0);
    amf0::write_key(&mut b, "videocodecid");
    amf0::write_number(&mut b, 7.0);
    amf0::write_key(&mut b, "encoder");
    amf0::write_string(&mut b, "campush-test");
    amf0::write_object_end(&mut b);
    b
}

/// (timestamp, FLV video tag body): an AVC sequence header, a key frame and inter frames, some
/// larger than the 4096-byte chunk size, and a jump past 0xFFFFFF (extended timestamps).
fn videos() -> Vec<(u32, Vec<u8>)> {
    // Baseline 320x240 SPS and a PPS, in an AVCDecoderConfigurationRecord.
    let sps = [
        0x67, 0x42, 0xC0, 0x0D, 0x8C, 0x8D, 0x40, 0xA0, 0xFD, 0x00, 0xF0, 0x88, 0x45, 0x38,
    ];
    let pps = [0x68, 0xCE, 0x3C, 0x80];
    let mut seq = vec![0x17, 0x00, 0, 0, 0, 1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    seq.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    seq.extend_from_slice(&sps);
    seq.push(1);
    seq.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    seq.extend_from_slice(&pps);

    let frame = |key: bool, len: usize, fill: u8| {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
        let nal_len = (len - 9) as u32;
        v.extend_from_slice(&nal_len.to_be_bytes());
        v.push(if key { 0x65 } else { 0x41 });
        v.extend((1..nal_len).map(|i| fill ^ (i as u8)));
        v
    };
    vec![
        (0, seq),
        (0, frame(true, 10_000, 0x11)),
        (33, frame(false, 3_000, 0x22)),
        (66, frame(false, 9_000, 0x33)),
        (100, frame(false, 50, 0x44)),
        (0x0100_0000, frame(true, 9_000, 0x55)),
        (0x0100_0021, frame(false, 5_000, 0x66)),
    ]
}

// ---------------------------------------------------------------------------------------------
// 1. scuffle-rtmp, in-process.

mod scuffle {
    use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
    use tokio::sync::mpsc::UnboundedSender;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Event {
        Publish { app: String, name: String },
        Video { timestamp: u32, data: Vec<u8> },
        Audio { timestamp: u32, data: Vec<u8> },
        Data { timestamp: u32, data: Vec<u8> },
        Unpublish,
    }

    pub struct Recorder(pub UnboundedSender<Event>);

    impl SessionHandler for Recorder {
        async fn on_publish(
            &mut self,
            _stream_id: u32,
            app_name: &str,
            stream_name: &str,
        ) -> Result<(), ServerSessionError> {
            let _ = self.0.send(Event::Publish {
                app: app_name.to_owned(),
                name: stream_name.to_owned(),
            });
            Ok(())
        }

        async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
            let _ = self.0.send(Event::Unpublish);
            Ok(())
        }

        async fn on_data(
            &mut self,
            _stream_id: u32,
            data: SessionData,
        ) -> Result<(), ServerSessionError> {
            let event = match data {
                SessionData::Video { timestamp, data } => Event::Video {
                    timestamp,
                    data: data.to_vec(),
                },
                SessionData::Audio { timestamp, data } => Event::Audio {
                    timestamp,
                    data: data.to_vec(),
                },
                SessionData::Amf0 { timestamp, data } => Event::Data {
                    timestamp,
                    data: data.to_vec(),
                },
            };
            let _ = self.0.send(event);
            Ok(())
        }
    }
}

#[tokio::test]
async fn publishes_to_scuffle_rtmp() {
    use scuffle::{Event, Recorder};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let (tcp, _) = timeout(STEP, listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        scuffle_rtmp::ServerSession::new(tcp, Recorder(tx))
            .run()
            .await
    });

    let url = RtmpUrl::parse(&format!("rtmp://{addr}/live/cam-key-123")).expect("url");
    let mut conn = Conn::open(addr, &url, 0xC0FFEE).await.expect("tcp");
    conn.publish().await.expect("published");
    assert_eq!(conn.session.state(), SessionState::Published);

    let meta = metadata();
    let videos = videos();
    conn.session.write_metadata(&mut conn.out, &meta);
    for (ts, body) in &videos {
        conn.session.write_video(&mut conn.out, *ts, body);
    }
    conn.session
        .write_audio(&mut conn.out, 10, &[0xAF, 0x01, 1, 2, 3]);
    conn.flush().await.expect("media sent");
    conn.session.finish(&mut conn.out);
    conn.flush().await.expect("finish sent");
    // Read the deleteStream answer, then close our side: the server ends on EOF.
    let _ = conn.pump(Duration::from_secs(2)).await;
    drop(conn);

    let clean = timeout(STEP, server)
        .await
        .expect("server ends in time")
        .expect("server task")
        .expect("server session ok");
    assert!(clean, "server saw every publisher unpublish");

    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let mut expected = vec![
        Event::Publish {
            app: "live".into(),
            name: "cam-key-123".into(),
        },
        Event::Data {
            timestamp: 0,
            data: meta,
        },
    ];
    expected.extend(
        videos
            .into_iter()
            .map(|(timestamp, data)| Event::Video { timestamp, data }),
    );
    expected.push(Event::Audio {
        timestamp: 10,
        data: vec![0xAF, 0x01, 1, 2, 3],
    });
    expected.push(Event::Unpublish);
    assert_eq!(events.len(), expected.len(), "{events:#?}");
    for (i, (got, want)) in events.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "event {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. nginx-rtmp, if installed.

/// (tag type, timestamp, body) of every tag in an FLV file.
fn flv_tags(data: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    assert!(data.len() >= 13 && &data[..3] == b"FLV", "not an FLV file");
    let mut tags = Vec::new();
    let mut pos = 13;
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = pos + 11 + size;
        if end + 4 > data.len() {
            break;
        }
        tags.push((h[0], ts, data[pos + 11..end].to_vec()));
        pos = end + 4;
    }
    tags
}

#[tokio::test]
async fn publishes_to_nginx_rtmp_and_gets_refused_for_a_duplicate_name() {
    if !support::require(support::Tool::NginxRtmp) {
        return;
    }
    let nginx = support::Nginx::start(support::NginxOpts::default());
    let addr = SocketAddr::from(([127, 0, 0, 1], nginx.port()));
    let key = "cam1?token=SeCrEt42";
    let url =
        RtmpUrl::with_key(&format!("rtmp://127.0.0.1:{}/live", nginx.port()), key).expect("url");

    let mut first = Conn::open(addr, &url, 1).await.expect("tcp");
    first.publish().await.expect("first publisher is accepted");

    // A second publisher of the same name: nginx-rtmp answers NetStream.Publish.BadName.
    let mut second = Conn::open(addr, &url, 2).await.expect("tcp");
    match second.publish().await {
        Err(ShellError::Rtmp(err)) => {
            eprintln!("nginx-rtmp refusal: {err}");
            assert!(err.is_refusal(), "{err:?}");
            match &err {
                RtmpError::Refused {
                    command,
                    code,
                    description,
                } => {
                    assert_eq!(*command, "publish");
                    assert_eq!(code, "NetStream.Publish.BadName");
                    assert!(!description.contains("SeCrEt42"), "{description}");
                }
                other => panic!("{other:?}"),
            }
            assert!(!err.to_string().contains("SeCrEt42"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(second.session.state(), SessionState::Closed);
    let second_closed = second.drain_until_close(Duration::from_secs(2)).await;
    eprintln!("nginx-rtmp closed the refused connection by itself: {second_closed}");
    drop(second);

    // The first publisher is unaffected: metadata, video, finish.
    let meta = metadata();
    let videos = videos();
    first.session.write_metadata(&mut first.out, &meta);
    for (ts, body) in &videos {
        first.session.write_video(&mut first.out, *ts, body);
    }
    first.flush().await.expect("media sent");
    first.session.finish(&mut first.out);
    first.flush().await.expect("finish sent");
    let closed = first.drain_until_close(Duration::from_secs(2)).await;
    eprintln!("nginx-rtmp closed the connection after deleteStream: {closed}");
    drop(first);

    // nginx-rtmp recorded what it received (the file is complete once every connection is
    // closed); the video tags must be ours, exactly.
    let tags = flv_tags(&std::fs::read(nginx.recording_of("cam1")).expect("the recording"));
    let got: Vec<(u32, Vec<u8>)> = tags
        .iter()
        .filter(|t| t.0 == 9)
        .map(|t| (t.1, t.2.clone()))
        .collect();
    assert_eq!(got.len(), videos.len(), "video tags recorded by nginx");
    for (i, (g, w)) in got.iter().zip(&videos).enumerate() {
        assert_eq!(g.0, w.0, "timestamp of video {i}");
        assert!(g.1 == w.1, "body of video {i} differs");
    }

    let log = nginx.error_log();
    assert!(
        log.contains("publish: name='cam1' args='token=SeCrEt42' type=live"),
        "nginx saw the stream name and args:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Zero allocation on the per-frame path and for pings / acknowledgements.

/// A scripted server's bytes that take a session to Published, plus a writer to send more.
fn scripted_server() -> (Vec<u8>, ChunkWriter) {
    let mut w = ChunkWriter::new();
    let mut s = vec![3u8];
    s.extend(std::iter::repeat_n(7u8, 1536));
    s.extend(std::iter::repeat_n(0u8, 1536));
    w.write_message(&mut s, 2, 0, 5, 0, &1000u32.to_be_bytes()); // ack window: 1000 bytes
    let cmd = |s: &mut Vec<u8>, w: &mut ChunkWriter, sid: u32, f: &dyn Fn(&mut Vec<u8>)| {
        let mut body = Vec::new();
        f(&mut body);
        w.write_message(s, 3, 0, 20, sid, &body);
    };
    cmd(&mut s, &mut w, 0, &|b| {
        amf0::write_string(b, "_result");
        amf0::write_number(b, 1.0);
        amf0::write_null(b);
        amf0::write_object_start(b);
        amf0::write_key(b, "level");
        amf0::write_string(b, "status");
        amf0::write_key(b, "code");
        amf0::write_string(b, "NetConnection.Connect.Success");
        amf0::write_object_end(b);
    });
    cmd(&mut s, &mut w, 0, &|b| {
        amf0::write_string(b, "_result");
        amf0::write_number(b, 4.0);
        amf0::write_null(b);
        amf0::write_number(b, 1.0);
    });
    cmd(&mut s, &mut w, 1, &|b| {
        amf0::write_string(b, "onStatus");
        amf0::write_number(b, 0.0);
        amf0::write_null(b);
        amf0::write_object_start(b);
        amf0::write_key(b, "level");
        amf0::write_string(b, "status");
        amf0::write_key(b, "code");
        amf0::write_string(b, "NetStream.Publish.Start");
        amf0::write_object_end(b);
    });
    (s, w)
}

#[test]
fn media_pings_and_acks_do_not_allocate() {
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/k").expect("url");
    let mut session = ClientSession::new(SessionConfig::for_url(&url, 3));
    let mut out = Vec::with_capacity(1 << 20);
    session.start(&mut out);
    let (script, mut w) = scripted_server();
    session.receive(&script, &mut out).expect("published");
    assert!(session.is_published());

    let frame = vec![0x27u8; 60_000];
    let audio = [0xAFu8; 400];
    let mut control = Vec::with_capacity(4096);
    // Warm up: the first ping creates the reader's buffer for chunk stream 2.
    w.write_message(&mut control, 2, 0, 4, 0, &[0, 6, 0, 0, 0, 0]);
    session.receive(&control, &mut out).expect("ping");

    campush::alloc::watch_this_thread();
    let before = campush::alloc::watched_allocations();
    std::hint::black_box(Vec::<u8>::with_capacity(1));
    assert!(
        campush::alloc::watched_allocations() > before,
        "the counter counts this thread"
    );
    let before = campush::alloc::watched_allocations();
    for i in 0..200u32 {
        out.clear();
        session.write_video(&mut out, i * 33, &frame);
        session.write_audio(&mut out, i * 23, &audio);
        // A ping, a server acknowledgement and a window-sized amount of chatter (acks due).
        control.clear();
        w.write_message(&mut control, 2, 0, 4, 0, &[0, 6, 0, 0, 0, i as u8]);
        w.write_message(&mut control, 2, 0, 3, 0, &(i * 1000).to_be_bytes());
        for _ in 0..60 {
            w.write_message(&mut control, 2, 0, 4, 0, &[0, 0, 0, 0, 0, 1]); // Stream Begin
        }
        session.receive(&control, &mut out).expect("control");
    }
    let after = campush::alloc::watched_allocations();
    assert_eq!(after - before, 0, "allocations on the per-frame path");
    assert!(!out.is_empty());
}
