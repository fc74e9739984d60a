//! The steady state performs zero heap allocations per frame: file source → ingest (h264 + flv)
//! → queue → publisher (+ the silent AAC track) → rtmp → TCP, against a real RTMP server
//! (scuffle-rtmp, in-process); and the same over TLS (an in-process rustls front), with each
//! TLS version and each kind of AEAD, since campush seals and opens TLS records in place in
//! buffers allocated once per connection. Recording (`[record]`: file source → ingest → the
//! recorder's queue → fragmented MP4 on disk, with the silent AAC track) is measured the same
//! way, on the ingest and recorder threads.
//!
//! The microphone's path (a capture device's reads → conversion → drift correction → the AAC
//! encoder → the shared ring → each destination's reader) is measured on its own, driven by a
//! generator in place of ALSA: it allocates nothing per audio frame, with a silent device (the
//! encoder's silence shortcut) and with sound (campush's AAC encoder allocates only when it is
//! built; see `src/audio/aac/mod.rs`).
//!
//! The counting global allocator (`campush::alloc::Counting`) counts only on threads watched as
//! campush's (the ingest thread and the publisher's runtime thread), so the server's own
//! allocations are not counted. The count is
//! sampled after a warm-up of `WARMUP` frames and again once every frame has been sent, before the
//! stream is closed. The ingest thread holds still after the warm-up until the sample is taken, so
//! the measured span is exactly `FRAMES - WARMUP` frames however the machine schedules threads.
//! One-time growth is not a per-frame cost: the warm-up also makes tokio grow its list of tasks
//! that exhausted their cooperative budget (otherwise that happens at a random moment under load).

mod inproc;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campush::audio::{AudioFormat, AudioTrack};
use campush::ingest::{Ingest, IngestSettings};
use campush::platform::Platforms;
use campush::pool::Pool;
use campush::publisher::{Outcome, Publisher, PublisherSettings};
use campush::queue::{FrameQueue, Limits, Outputs, Policy, SharedHeaders};
use campush::record::{RecordSettings, Recorder};
use campush::rtmp::RtmpUrl;
use campush::source::file::FileSource;
use campush::status::{Counters, SharedStatus};
use campush::transport::TlsOptions;

/// Counts, besides every allocation, those of the threads that call
/// [`campush::alloc::watch_this_thread`]: here campush's ingest and publisher threads.
#[global_allocator]
static ALLOCATOR: campush::alloc::Counting = campush::alloc::Counting;

const FIXTURE: &str = "tests/fixtures/clip-320x240-30fps.h264";
const FRAMES: u64 = 900; // the 90-frame fixture, looped ten times
const WARMUP: u64 = 100;

/// The allocation counter is global: one measurement at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What one measured push cost.
struct Measured {
    frames: u64,
    allocs: u64,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    bytes_sent: u64,
}

/// Streams `FRAMES` frames of the looping fixture to `url`, counting the allocations of the
/// campush threads between the 100th frame sent and the last, then checks what the server got.
fn stream_and_count(server: &inproc::ScuffleServer, url: &str, tls: TlsOptions) -> Measured {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let url = RtmpUrl::parse(url).unwrap();
    let received_before = server.received();
    let source = FileSource::open(Path::new(FIXTURE), None, false, true).unwrap();
    let pool = Pool::new(64, 64 * 1024);
    let queue = Arc::new(FrameQueue::new(
        Limits {
            max_frames: 48,
            ..Limits::default()
        },
        Policy::Block,
    ));
    let headers = SharedHeaders::default();
    let status = SharedStatus::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ingest_done = Arc::new(AtomicBool::new(false));
    // Plain flags, not channels: a blocking channel receive allocates its waiter on first use.
    let warm = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let ingest_thread = {
        let mut ingest = Ingest::new(
            Box::new(source),
            pool.clone(),
            Outputs::new(vec![Arc::clone(&queue)]),
            headers.clone(),
            // The keyframe watch runs for a file (its GOP is not campush's to set); the
            // fixture's spacing breaks no rule, so nothing is said in the measured span.
            IngestSettings {
                watch_keyframes: true,
                platforms: Platforms::of_hosts(["a.rtmp.youtube.com"]),
                ..IngestSettings::default()
            },
            status.clone(),
        );
        let done = Arc::clone(&ingest_done);
        let (warm, go) = (Arc::clone(&warm), Arc::clone(&go));
        std::thread::spawn(move || {
            campush::alloc::watch_this_thread();
            for i in 0..FRAMES {
                if i == WARMUP {
                    warm.store(true, Ordering::SeqCst);
                    while !go.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                assert!(ingest.step().unwrap(), "a looping file never ends");
            }
            done.store(true, Ordering::SeqCst);
            ingest // keep the source alive until the test closes the queue
        })
    };

    let publisher_thread = {
        let mut publisher = Publisher::new(
            url,
            PublisherSettings {
                max_attempts: Some(1),
                audio: AudioTrack::Silent(AudioFormat::default()),
                tls,
                ..PublisherSettings::default()
            },
            Arc::clone(&queue),
            headers,
            status.set_destinations(1).remove(0),
            stop_rx,
        );
        std::thread::spawn(move || {
            campush::alloc::watch_this_thread();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                // tokio keeps, per `block_on`, a list of the tasks that ran out of their
                // cooperative budget; the list grows once, the first time that happens. Make it
                // happen here, before the count, not at a moment the machine's load decides.
                for _ in 0..1024 {
                    tokio::task::consume_budget().await;
                }
                publisher.run().await
            })
        })
    };

    let sent = || Counters::get(&status.counters.frames_sent);
    let bytes = || Counters::get(&status.counters.bytes_sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !warm.load(Ordering::SeqCst) || sent() < WARMUP {
        assert!(
            Instant::now() < deadline,
            "stuck at {} warm-up frames sent",
            sent()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let (frames_start, allocs_start, bytes_start) =
        (sent(), campush::alloc::watched_allocations(), bytes());
    go.store(true, Ordering::SeqCst);
    while !(ingest_done.load(Ordering::SeqCst) && sent() == FRAMES) {
        assert!(Instant::now() < deadline, "stuck at {} frames sent", sent());
        std::thread::sleep(Duration::from_millis(1));
    }
    let (frames_end, allocs_end, bytes_end) =
        (sent(), campush::alloc::watched_allocations(), bytes());

    queue.close();
    let outcome = publisher_thread.join().unwrap().expect("publish succeeds");
    assert_eq!(outcome, Outcome::Finished);
    drop(ingest_thread.join().unwrap());
    let _ = stop_tx.send(true);

    // The server really got every frame, in order, starting with the sequence headers, and the
    // silent audio track next to it.
    let (v0, a0) = (received_before.videos.len(), received_before.audios.len());
    let got = server.wait_for("all frames", Duration::from_secs(10), |r| {
        (r.videos.len() - v0) as u64 > FRAMES
    });
    let (videos, audios) = (&got.videos[v0..], &got.audios[a0..]);
    assert_eq!(videos.len() as u64, FRAMES + 1, "sequence header + frames");
    assert_eq!(videos[0].1[..2], [0x17, 0x00], "AVC sequence header first");
    assert_eq!(videos[1].1[..2], [0x17, 0x01], "then a keyframe");
    assert!(
        videos.windows(2).skip(1).all(|w| w[1].0 > w[0].0),
        "timestamps increase"
    );
    assert_eq!(audios[0].1, [0xaf, 0x00, 0x11, 0x90], "AAC sequence header");
    // 30 s of video at 30 fps; 48000 / 1024 = 46.875 audio frames per second.
    let expected_audio = (FRAMES - 1) as f64 / 30.0 * 46.875;
    assert!(
        (audios.len() as f64 - 1.0 - expected_audio).abs() <= 2.0,
        "{} audio frames, expected about {expected_audio}",
        audios.len() - 1
    );
    assert_eq!(
        pool.available(),
        pool.size(),
        "every slot is back in the pool"
    );
    let frames = frames_end - frames_start;
    assert_eq!(frames, FRAMES - WARMUP, "the measured span");
    Measured {
        frames,
        allocs: allocs_end - allocs_start,
        bytes_sent: bytes_end - bytes_start,
    }
}

#[test]
fn steady_state_streaming_allocates_nothing_per_frame() {
    let server = inproc::ScuffleServer::start();
    let m = stream_and_count(&server, &server.url("zeroalloc"), TlsOptions::default());
    assert_eq!(
        m.allocs, 0,
        "heap allocations during {} steady-state frames",
        m.frames
    );
}

/// Over TLS the records are sealed and opened in place, in buffers allocated with the
/// connection: nothing per frame either, whichever version and AEAD the server picks (TLS 1.2
/// AES-GCM carries an explicit nonce in each record; ChaCha20-Poly1305 is what boards without
/// AES instructions prefer).
#[cfg(feature = "tls")]
#[test]
fn over_tls_steady_state_streaming_allocates_nothing_per_frame() {
    use rustls::CipherSuite as S;
    let server = inproc::ScuffleServer::start();
    let dir = tempfile::tempdir().unwrap();
    for suite in [
        S::TLS13_AES_128_GCM_SHA256,
        S::TLS13_CHACHA20_POLY1305_SHA256,
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let (port, pem) = inproc::tls_front(server.port, suite);
        let ca = dir.path().join(format!("{suite:?}.pem"));
        std::fs::write(&ca, pem).unwrap();
        let url = format!("rtmps://localhost:{port}/live/zeroalloc-tls");
        let tls = TlsOptions {
            ca_file: Some(ca),
            insecure: false,
        };
        let m = stream_and_count(&server, &url, tls);
        eprintln!(
            "RTMPS {suite:?}: {} allocations over {} frames ({} bytes, {:.0} bytes per frame)",
            m.allocs,
            m.frames,
            m.bytes_sent,
            m.bytes_sent as f64 / m.frames as f64
        );
        assert_eq!(
            m.allocs, 0,
            "{suite:?}: heap allocations during {} steady-state frames over TLS",
            m.frames
        );
    }
}

#[test]
fn steady_state_recording_allocates_nothing_per_frame() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let source = FileSource::open(Path::new(FIXTURE), None, false, true).unwrap();
    let pool = Pool::new(64, 64 * 1024);
    let limits = Limits {
        max_frames: 48,
        ..Limits::default()
    };
    let queue = Arc::new(FrameQueue::new(limits, Policy::Block));
    let headers = SharedHeaders::default();
    let status = SharedStatus::new();
    let recorder_status = status.set_destinations(1).remove(0);
    let settings = RecordSettings {
        // One segment for the whole run: opening one allocates (its names), a frame must not.
        segment: Duration::from_secs(3600),
        min_free_bytes: 0,
        ..RecordSettings::in_dir(dir.path().to_owned())
    };
    let recorder = Recorder::new(
        settings,
        Arc::clone(&queue),
        headers.clone(),
        recorder_status.clone(),
        Vec::new(),
        AudioTrack::Silent(AudioFormat::default()),
        limits.max_frames,
    );
    let recorder_thread = std::thread::spawn(move || recorder.run());
    let mut ingest = Ingest::new(
        Box::new(source),
        pool.clone(),
        Outputs::new(vec![Arc::clone(&queue)]),
        headers,
        IngestSettings::default(),
        status.clone(),
    );
    let recorded = || Counters::get(&recorder_status.counters().frames_sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ingest_thread = std::thread::spawn({
        let recorder_status = recorder_status.clone();
        move || {
            campush::alloc::watch_this_thread();
            let recorded = || Counters::get(&recorder_status.counters().frames_sent);
            let mut counted = (0, 0);
            for i in 0..FRAMES {
                if i == WARMUP {
                    while recorded() < WARMUP {
                        assert!(
                            Instant::now() < deadline,
                            "stuck at {} recorded",
                            recorded()
                        );
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    counted.0 = campush::alloc::watched_allocations();
                }
                assert!(ingest.step().unwrap(), "a looping file never ends");
            }
            while recorded() < FRAMES {
                assert!(
                    Instant::now() < deadline,
                    "stuck at {} recorded",
                    recorded()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            counted.1 = campush::alloc::watched_allocations();
            (ingest, counted)
        }
    });
    let (ingest, (start, end)) = ingest_thread.join().unwrap();
    queue.close();
    recorder_thread.join().unwrap();
    drop(ingest);
    assert_eq!(recorded(), FRAMES);
    let allocs = end - start;
    eprintln!(
        "recording: {allocs} allocations over {} frames",
        FRAMES - WARMUP
    );
    assert_eq!(allocs, 0, "allocations per recorded frame");

    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].extension().is_some_and(|e| e == "mp4"),
        "{files:?}"
    );
    assert_eq!(
        pool.available(),
        pool.size(),
        "every slot is back in the pool"
    );
}

/// A generator in place of a capture device: stereo S16 at 48 kHz, 480 frames per read, a
/// 1 kHz tone (or silence), its times on a simulated clock 100 ppm fast.
struct Generator {
    k: u64,
    loud: bool,
}

impl campush::audio::pcm::PcmInput for Generator {
    fn params(&self) -> campush::audio::pcm::PcmParams {
        campush::audio::pcm::PcmParams {
            format: campush::audio::pcm::SampleFormat::S16Le,
            rate: 48_000,
            channels: 2,
            period_frames: 480,
        }
    }

    fn read(
        &mut self,
        buf: &mut [u8],
        _: Duration,
    ) -> Result<campush::audio::pcm::PcmRead, campush::audio::pcm::PcmError> {
        let n = 480.min(buf.len() / 4);
        for (i, frame) in buf.chunks_exact_mut(4).take(n).enumerate() {
            let t = (self.k + i as u64) as f64 / 48_000.0;
            let v = if self.loud {
                ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 8000.0) as i16
            } else {
                0
            };
            frame[..2].copy_from_slice(&v.to_le_bytes());
            frame[2..].copy_from_slice(&v.to_le_bytes());
        }
        let time_us = 1_000_000 + (self.k as f64 * 1e6 / (48_000.0 * 1.0001)) as u64;
        self.k += n as u64;
        Ok(campush::audio::pcm::PcmRead { frames: n, time_us })
    }
}

/// Heap allocations per encoded audio frame on the microphone's path, after a warm-up, on a
/// watched thread of its own; and the frames the readers got.
fn mic_path_allocations(loud: bool) -> (f64, u64) {
    use campush::audio::mic::{MicSettings, Pipeline};
    use campush::audio::ring::Ring;
    use campush::audio::AudioSource;
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::spawn(move || {
        campush::alloc::watch_this_thread();
        let settings = MicSettings {
            format: AudioFormat::default(),
            bitrate_kbps: 96,
            label: "alsa:generator".into(),
        };
        let ring = Ring::new(settings.format);
        // Two destinations, each with its own cursor.
        let mut readers = [ring.reader(), ring.reader()];
        readers.iter_mut().for_each(|r| r.start(0));
        let mut p = Pipeline::new(&settings, Arc::clone(&ring), Arc::default());
        let mut device = Generator { k: 0, loud };
        p.device_opened(campush::audio::pcm::PcmInput::params(&device))
            .unwrap();
        let mut run = |reads: usize| {
            let mut got = 0u64;
            for _ in 0..reads {
                p.read_from(&mut device, Duration::from_millis(100))
                    .unwrap();
                for r in &mut readers {
                    while r.next_until(u64::MAX).is_some() {
                        got += 1;
                    }
                }
            }
            got
        };
        run(2_000); // 20 s: warm-up
        let before = campush::alloc::watched_allocations();
        let got = run(6_000); // 60 s of sound
        let allocs = campush::alloc::watched_allocations() - before;
        (allocs as f64 / (got / 2) as f64, got / 2)
    })
    .join()
    .unwrap()
}

#[test]
fn the_microphone_path_allocates_nothing_per_audio_frame_while_the_device_is_silent() {
    let (per_frame, frames) = mic_path_allocations(false);
    // 60 s at 48 kHz is 2812 frames (the ring and readers are not short of any).
    assert!(frames > 2_780, "{frames} frames");
    assert_eq!(per_frame, 0.0, "{per_frame} allocations per audio frame");
}

#[test]
fn the_microphone_path_allocates_nothing_per_audio_frame_with_sound_either() {
    let (per_frame, frames) = mic_path_allocations(true);
    assert!(frames > 2_780, "{frames} frames");
    assert_eq!(per_frame, 0.0, "{per_frame} allocations per audio frame");
}
