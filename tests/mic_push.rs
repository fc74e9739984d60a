//! A microphone end to end, without ALSA: a generator in place of the capture device (a 1 kHz
//! tone with a click every second, its sample clock 100 ppm fast, its times on the real
//! monotonic clock) goes through the real capture thread (conversion, drift correction,
//! the AAC encoder, the shared ring) and the real publisher, next to a paced video clip, to
//! nginx-rtmp; ffmpeg decodes the recording: the tone is there, and every click lies where its
//! capture time puts it on the video's clock (the first video frame's capture time is the
//! recording's zero), within 20 ms.
//!
//! Needs nginx with the RTMP module, ffmpeg and ffprobe; without them it prints SKIP and passes,
//! unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campush::audio::mic::{Mic, MicSettings};
use campush::audio::pcm::{PcmError, PcmInput, PcmParams, PcmRead, SampleFormat};
use campush::audio::{AudioFormat, AudioTrack};
use campush::clock::monotonic_us;
use campush::ingest::{Ingest, IngestSettings};
use campush::pool::{FrameMut, Pool};
use campush::publisher::{Outcome, Publisher, PublisherSettings};
use campush::queue::{FrameQueue, Limits, Outputs, Policy, SharedHeaders};
use campush::rtmp::RtmpUrl;
use campush::source::file::FileSource;
use campush::source::{Capture, Source, SourceError};
use campush::status::{AudioStats, SharedStatus};
use support::*;

const FIXTURE: &str = "tests/fixtures/clip-320x240-30fps.h264";
const RATE: f64 = 48_000.0;
const PPM: f64 = 100.0;
/// Seconds of video pushed.
const SECONDS: u64 = 12;

/// The generator: reads come as a device's would (a period once its last frame was captured).
struct Microphone {
    t0_us: u64,
    k: u64,
}

impl Microphone {
    /// Capture time of device sample `k`, µs: the device runs `PPM` fast.
    fn time_of(&self, k: u64) -> u64 {
        self.t0_us + (k as f64 * 1e6 / (RATE * (1.0 + PPM * 1e-6))) as u64
    }

    /// A click (1 ms at 0.9 full scale) at each whole second after t0, else the tone.
    fn sample(&self, k: u64) -> i16 {
        let t = (self.time_of(k) - self.t0_us) as f64 / 1e6;
        if t >= 1.0 && t.fract() < 0.001 {
            29_000
        } else {
            ((2.0 * std::f64::consts::PI * 1000.0 * k as f64 / RATE).sin() * 3000.0) as i16
        }
    }
}

impl PcmInput for Microphone {
    fn params(&self) -> PcmParams {
        PcmParams {
            format: SampleFormat::S16Le,
            rate: 48_000,
            channels: 1,
            period_frames: 480,
        }
    }

    fn read(&mut self, buf: &mut [u8], _: Duration) -> Result<PcmRead, PcmError> {
        let n = 480.min(buf.len() / 2);
        let ready = self.time_of(self.k + n as u64);
        let now = monotonic_us();
        if ready > now {
            std::thread::sleep(Duration::from_micros(ready - now));
        }
        for i in 0..n {
            let s = self.sample(self.k + i as u64);
            buf[2 * i..2 * i + 2].copy_from_slice(&s.to_le_bytes());
        }
        let time_us = self.time_of(self.k);
        self.k += n as u64;
        Ok(PcmRead { frames: n, time_us })
    }
}

/// The video: the fixture, paced, noting the first frame's capture time (the stream's zero).
struct Video {
    file: FileSource,
    first_us: Arc<AtomicU64>,
}

impl Source for Video {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        let c = self.file.next_access_unit(frame)?;
        if let Some(c) = &c {
            let _ = self.first_us.compare_exchange(
                0,
                c.timestamp_us,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        Ok(c)
    }
}

/// Decodes the recording's audio to mono 48 kHz samples.
fn decode_audio(path: &Path) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let pcm = dir.path().join("audio.s16le");
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(path);
    ffmpeg.args(["-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le"]);
    ffmpeg.arg(&pcm);
    let run = run_bounded(ffmpeg, None, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{run}");
    let bytes = std::fs::read(&pcm).unwrap();
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Power of `hz` in `x` (Goertzel), per sample.
fn power_at(x: &[i16], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / RATE;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
}

#[test]
fn a_drifting_microphone_is_heard_with_its_clicks_on_the_video_clock() {
    if !require_all() {
        return;
    }
    let nginx = Nginx::start(NginxOpts::default());
    let url = RtmpUrl::parse(&nginx.url("mic")).unwrap();

    // The microphone starts first, as the supervisor starts it before the destinations.
    let format = AudioFormat::new(48_000, 1).unwrap();
    let t0_us = monotonic_us();
    let stats = Arc::new(AudioStats::default());
    let mic = Mic::start(
        MicSettings {
            format,
            bitrate_kbps: 64,
            label: "alsa:generator".into(),
        },
        Box::new(move || Ok(Box::new(Microphone { t0_us, k: 0 }) as Box<dyn PcmInput>)),
        Arc::clone(&stats),
    )
    .unwrap();

    let first_us = Arc::new(AtomicU64::new(0));
    let video = Video {
        file: FileSource::open(Path::new(FIXTURE), None, true, true).unwrap(),
        first_us: Arc::clone(&first_us),
    };
    let pool = Pool::new(64, 64 * 1024);
    let queue = Arc::new(FrameQueue::new(Limits::default(), Policy::DropGops));
    let headers = SharedHeaders::default();
    let status = SharedStatus::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut ingest = Ingest::new(
        Box::new(video),
        pool,
        Outputs::new(vec![Arc::clone(&queue)]),
        headers.clone(),
        IngestSettings::default(),
        status.clone(),
    );
    let ingest_thread = std::thread::spawn(move || {
        for _ in 0..SECONDS * 30 {
            assert!(ingest.step().unwrap(), "a looping file never ends");
        }
        ingest
    });
    let mut publisher = Publisher::new(
        url,
        PublisherSettings {
            max_attempts: Some(1),
            audio: AudioTrack::Mic(mic.feed()),
            ..PublisherSettings::default()
        },
        Arc::clone(&queue),
        headers,
        status.set_destinations(1).remove(0),
        stop_rx,
    );
    let publisher_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(publisher.run())
    });
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 30);
    while !ingest_thread.is_finished() {
        assert!(Instant::now() < deadline, "the push did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last video frame's audio is encoded a block (21 ms) later, the capture thread's
    // next read.
    std::thread::sleep(Duration::from_millis(200));
    queue.close();
    let outcome = publisher_thread.join().unwrap().expect("publish succeeds");
    assert_eq!(outcome, Outcome::Finished);
    drop(ingest_thread.join().unwrap());
    let _ = stop_tx.send(true);
    drop(mic);
    assert!(nginx.wait_idle(Duration::from_secs(10)));

    let path = nginx.recording_of("mic");
    assert!(
        audio_stream(&path).starts_with("aac,LC,48000,1"),
        "{}",
        audio_stream(&path)
    );
    let packets = packets(&path);
    let (video_start, _) = span(&packets, false).expect("video");
    let (audio_start, _) = span(&packets, true).expect("audio");
    let pcm = decode_audio(&path);
    assert!(
        pcm.len() as f64 > (SECONDS as f64 - 1.0) * RATE,
        "{} samples",
        pcm.len()
    );

    // The tone: 1 kHz stands far above its neighbours, between the clicks.
    let quiet = &pcm[(0.3 * RATE) as usize..(0.8 * RATE) as usize];
    let (tone, beside) = (power_at(quiet, 1000.0), power_at(quiet, 1500.0));
    assert!(
        tone > 100.0 * beside,
        "1 kHz at {tone:.1}, 1.5 kHz at {beside:.1}"
    );

    // The clicks: each onset against where its capture time puts it on the video's clock.
    let base_us = first_us.load(Ordering::SeqCst);
    let (mut checked, mut worst) = (0, 0.0f64);
    let mut i = 0;
    while i < pcm.len() {
        if pcm[i].unsigned_abs() > 15_000 {
            let at_ms = audio_start as f64 + i as f64 * 1000.0 / RATE;
            // Clicks are at whole seconds of the generator's clock.
            let nearest_s =
                ((at_ms - video_start as f64) * 1000.0 + base_us as f64 - t0_us as f64) / 1e6;
            let click_us = t0_us as f64 + nearest_s.round() * 1e6;
            let expected_ms = video_start as f64 + (click_us - base_us as f64) / 1000.0;
            assert!(
                (at_ms - expected_ms).abs() <= 20.0,
                "the click of {:.0} s is at {at_ms:.1} ms, expected {expected_ms:.1} ms",
                nearest_s.round()
            );
            worst = worst.max((at_ms - expected_ms).abs());
            checked += 1;
            i += (0.5 * RATE) as usize;
        } else {
            i += 1;
        }
    }
    assert!(checked as u64 >= SECONDS - 3, "{checked} clicks found");
    eprintln!("{checked} clicks, the farthest {worst:.1} ms from its capture time");
    // The status shows the microphone capturing, never reopened.
    let s = stats.snapshot("alsa:generator");
    assert_eq!((s.overruns, s.reopens), (0, 0), "{s:?}");
}
