//! The steady state performs zero heap allocations per frame: file source → ingest (h264 + flv)
//! → queue → publisher → rtmp → TCP, against a real RTMP server (scuffle-rtmp, in-process).
//!
//! A counting global allocator counts only on threads marked as campush's (the ingest thread and
//! the publisher's runtime thread), so the server's own allocations are not counted. The count is
//! sampled after a warm-up of 100 frames and again once every frame has been sent, before the
//! stream is closed.

mod inproc;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use campush::ingest::{Ingest, IngestSettings, SharedHeaders};
use campush::pool::Pool;
use campush::publisher::{Outcome, Publisher, PublisherSettings};
use campush::queue::{FrameQueue, Limits, Outputs, Policy};
use campush::rtmp::RtmpUrl;
use campush::source::file::FileSource;
use campush::status::{Counters, StatusBoard};

struct CountingOnMarkedThreads;

static COUNTED: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if MARKED.with(|m| m.get()) {
        COUNTED.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to System unchanged.
unsafe impl GlobalAlloc for CountingOnMarkedThreads {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingOnMarkedThreads = CountingOnMarkedThreads;

fn mark_this_thread() {
    MARKED.with(|m| m.set(true));
}

const FIXTURE: &str = "tests/fixtures/clip-320x240-30fps.h264";
const FRAMES: u64 = 900; // the 90-frame fixture, looped ten times

#[test]
fn steady_state_streaming_allocates_nothing_per_frame() {
    let server = inproc::ScuffleServer::start();
    let url = RtmpUrl::parse(&server.url("zeroalloc")).unwrap();

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
    let status = StatusBoard::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ingest_done = Arc::new(AtomicBool::new(false));
    let ingest_thread = {
        let mut ingest = Ingest::new(
            Box::new(source),
            pool.clone(),
            Outputs::new(vec![Arc::clone(&queue)]),
            headers.clone(),
            IngestSettings::default(),
            status.clone(),
        );
        let done = Arc::clone(&ingest_done);
        std::thread::spawn(move || {
            mark_this_thread();
            for _ in 0..FRAMES {
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
                ..PublisherSettings::default()
            },
            Arc::clone(&queue),
            headers,
            status.set_destinations(1).remove(0),
            stop_rx,
        );
        std::thread::spawn(move || {
            mark_this_thread();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(publisher.run())
        })
    };

    let sent = || Counters::get(&status.counters.frames_sent);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent() < 100 {
        assert!(Instant::now() < deadline, "never reached 100 frames sent");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (frames_start, allocs_start) = (sent(), COUNTED.load(Ordering::SeqCst));
    while !(ingest_done.load(Ordering::SeqCst) && sent() == FRAMES) {
        assert!(Instant::now() < deadline, "stuck at {} frames sent", sent());
        std::thread::sleep(Duration::from_millis(1));
    }
    let (frames_end, allocs_end) = (sent(), COUNTED.load(Ordering::SeqCst));

    queue.close();
    let outcome = publisher_thread.join().unwrap().expect("publish succeeds");
    assert_eq!(outcome, Outcome::Finished);
    drop(ingest_thread.join().unwrap());
    let _ = stop_tx.send(true);

    let frames = frames_end - frames_start;
    assert!(frames >= 500, "measured over too few frames: {frames}");
    assert_eq!(
        allocs_end - allocs_start,
        0,
        "heap allocations during {frames} steady-state frames"
    );

    // And the server really got every frame, in order, starting with the sequence header.
    let got = server.wait_for("all frames", Duration::from_secs(10), |r| {
        r.videos.len() as u64 > FRAMES
    });
    assert_eq!(
        got.videos.len() as u64,
        FRAMES + 1,
        "sequence header + frames"
    );
    assert_eq!(
        got.videos[0].1[..2],
        [0x17, 0x00],
        "AVC sequence header first"
    );
    assert_eq!(got.videos[1].1[..2], [0x17, 0x01], "then a keyframe");
    assert!(
        got.videos.windows(2).skip(1).all(|w| w[1].0 > w[0].0),
        "timestamps increase"
    );
    assert_eq!(
        pool.available(),
        pool.size(),
        "every slot is back in the pool"
    );
}
