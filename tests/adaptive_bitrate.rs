//! Issue 10, adaptive bitrate, end to end: an encoder behind the `Source` trait whose output
//! follows the bitrate it is given, pushed through a link slower than its starting bitrate (the
//! throttling proxy of `tests/backlog.rs`, deep-buffered, to nginx-rtmp). The bitrate must come
//! down below the link rate and settle around it (AIMD probes up past it by one step at most,
//! then comes back down), and once settled the queue must drop no GOP.
//!
//! The encoder is the 320x240 fixture, paced and looped, each access unit padded to
//! bitrate / 8 / fps bytes with an SEI NAL unit (user data unregistered): valid H.264 whose
//! size follows the bitrate, as a real encoder's would. The figures are printed for the record.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use campush::bitrate::Tuning;
use campush::ingest::{AdaptiveBitrate, Ingest, IngestSettings};
use campush::pool::{slots_for, FrameMut, Pool};
use campush::publisher::{Publisher, PublisherSettings};
use campush::queue::{FrameQueue, Limits, Outputs, Policy, SharedHeaders};
use campush::rtmp::RtmpUrl;
use campush::source::file::FileSource;
use campush::source::{Capture, Source, SourceError};
use campush::status::{Counters, SharedStatus};
use support::{require_all, throttling_proxy, Buffer, Nginx, NginxOpts};

const FIXTURE: &str = "tests/fixtures/clip-320x240-30fps.h264";
const FPS: u32 = 30;
const START_KBPS: u32 = 2400;
const FLOOR_KBPS: u32 = 300;
const LINK_KBPS: u32 = 1500;
/// Until the bitrate has settled, then the span in which nothing may be dropped.
const SETTLE: Duration = Duration::from_secs(25);
const HOLD: Duration = Duration::from_secs(20);

/// The fixture, padded to the bitrate last set.
struct PaddedEncoder {
    clip: FileSource,
    bps: Arc<AtomicU32>,
}

/// An SEI NAL unit (user data unregistered) of about `len` bytes, start code included,
/// written into `out` (within its capacity: no allocation).
fn push_sei(out: &mut Vec<u8>, len: usize) {
    const UUID: [u8; 16] = *b"campush-abr-test";
    let payload = len.saturating_sub(4 + 1 + 1 + 2 + 16 + 1).max(1);
    out.extend_from_slice(&[0, 0, 0, 1, 0x06, 0x05]);
    let size = payload + UUID.len();
    out.extend(std::iter::repeat_n(0xFF, size / 255));
    out.push((size % 255) as u8);
    out.extend_from_slice(&UUID);
    out.extend(std::iter::repeat_n(0x55, payload));
    out.push(0x80); // rbsp trailing bits
}

impl Source for PaddedEncoder {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        let capture = self.clip.next_access_unit(frame)?;
        let target = (self.bps.load(Ordering::Relaxed) / 8 / FPS) as usize;
        let mut bytes = frame.bytes();
        if target > bytes.len() + 64 {
            let pad = target - bytes.len();
            push_sei(&mut bytes, pad);
        }
        Ok(capture)
    }

    fn frame_capacity_hint(&self) -> usize {
        256 * 1024
    }

    fn adjustable_bitrate(&self) -> Option<u32> {
        Some(self.bps.load(Ordering::Relaxed))
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        self.bps.store(bps, Ordering::Relaxed);
        true
    }
}

#[test]
fn behind_a_slow_link_the_bitrate_settles_below_the_link_rate_and_no_gop_is_dropped_after() {
    if !require_all() {
        return;
    }
    let nginx = Nginx::start(NginxOpts { record: false });
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = throttling_proxy(
        nginx.port(),
        (LINK_KBPS * 1000 / 8) as usize,
        Buffer::Deep(16 << 20),
        Arc::clone(&cut),
        (SETTLE + HOLD) * 2,
    );
    let url = RtmpUrl::parse(&format!("rtmp://127.0.0.1:{proxy}/live/abr")).unwrap();

    let bps = Arc::new(AtomicU32::new(START_KBPS * 1000));
    let source = PaddedEncoder {
        clip: FileSource::open(Path::new(FIXTURE), None, true, true).unwrap(),
        bps: Arc::clone(&bps),
    };
    let limits = Limits::default(); // 2 s
    let queue = Arc::new(FrameQueue::new(limits, Policy::DropGops));
    let pool = Pool::new(slots_for(limits.max_frames, 1), 256 * 1024);
    let headers = SharedHeaders::default();
    let status = SharedStatus::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let done = Arc::new(AtomicBool::new(false));

    let ingest = {
        let mut ingest = Ingest::new(
            Box::new(source),
            pool,
            Outputs::new(vec![Arc::clone(&queue)]),
            headers.clone(),
            IngestSettings {
                adaptive_bitrate: Some(AdaptiveBitrate {
                    floor_kbps: FLOOR_KBPS,
                    tuning: Tuning::default(),
                }),
                ..IngestSettings::default()
            },
            status.clone(),
        );
        let done = Arc::clone(&done);
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                assert!(ingest.step().unwrap(), "a looping file never ends");
            }
        })
    };
    let publisher = {
        let mut publisher = Publisher::new(
            url,
            PublisherSettings {
                max_attempts: Some(1),
                write_timeout: Duration::from_secs(60),
                ..PublisherSettings::default()
            },
            Arc::clone(&queue),
            headers,
            status.set_destinations(1).remove(0),
            stop_rx,
        );
        thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(publisher.run())
        })
    };

    // Settle, then watch: the bitrate every 100 ms, and the drops.
    let started = Instant::now();
    let mut trace = Vec::new();
    while started.elapsed() < SETTLE {
        thread::sleep(Duration::from_millis(100));
        trace.push(bps.load(Ordering::Relaxed) / 1000);
    }
    let dropped_settled = queue.dropped();
    let mut held = Vec::new();
    while started.elapsed() < SETTLE + HOLD {
        thread::sleep(Duration::from_millis(100));
        held.push(bps.load(Ordering::Relaxed) / 1000);
    }
    let dropped_end = queue.dropped();
    let sent = Counters::get(&status.counters.frames_sent);

    done.store(true, Ordering::Relaxed);
    stop_tx.send(true).unwrap();
    cut.store(true, Ordering::Relaxed);
    queue.close();
    ingest.join().unwrap();
    let _ = publisher.join().unwrap();

    let steps: Vec<u32> = trace
        .iter()
        .chain(&held)
        .copied()
        .fold(Vec::new(), |mut v, k| {
            if v.last() != Some(&k) {
                v.push(k);
            }
            v
        });
    let mean = held.iter().map(|k| u64::from(*k)).sum::<u64>() / held.len() as u64;
    eprintln!(
        "link {LINK_KBPS} kbit/s, start {START_KBPS}: bitrate steps {steps:?}; over the last {} s \
         mean {mean} kbit/s, max {} kbit/s; dropped {dropped_settled} frames while settling, \
         {} after; {sent} frames sent",
        HOLD.as_secs(),
        held.iter().max().unwrap(),
        dropped_end - dropped_settled
    );
    assert!(sent > 600, "only {sent} frames sent");
    assert!(steps.len() > 1, "the bitrate never changed: {steps:?}");
    assert!(
        steps.iter().any(|k| *k < LINK_KBPS),
        "never below the {LINK_KBPS} kbit/s link: {steps:?}"
    );
    // Settled: AIMD probes up past the link by one step at most, and comes back down.
    let step = Tuning::default().up_step_kbps;
    assert!(
        mean <= u64::from(LINK_KBPS + LINK_KBPS / 20),
        "settled at {mean} kbit/s on average, above the {LINK_KBPS} kbit/s link: {steps:?}"
    );
    assert!(
        held.iter()
            .all(|k| (FLOOR_KBPS..LINK_KBPS + step).contains(k)),
        "{steps:?}"
    );
    assert_eq!(
        dropped_end, dropped_settled,
        "GOPs were still dropped after settling: {steps:?}"
    );
}
