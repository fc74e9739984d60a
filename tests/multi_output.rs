//! Several destinations at once, and nothing couples them: a destination that is frozen or
//! dead never delays, starves or gaps another.
//!
//! - In process: the real ingest stage with two queues, one never drained (a frozen
//!   destination), the other drained frame by frame: with the pool sized as campush sizes it,
//!   the healthy queue gets every frame and the source never runs out of slots.
//! - Against two real nginx-rtmp servers: one is frozen (SIGSTOP) and later killed during a
//!   paced push; the other's recording has every frame of the clip with no timestamp gap.
//!
//! The nginx test needs nginx with the RTMP module, ffmpeg (libx264) and ffprobe; without them
//! it prints SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use campush::ingest::{Ingest, IngestSettings};
use campush::pool::{self, Pool};
use campush::queue::{FrameQueue, Limits, Outputs, Policy, SharedHeaders};
use campush::source::file::FileSource;
use campush::status::{Counters, SharedStatus};
use support::*;

const FIXTURE: &str = "tests/fixtures/clip-320x240-30fps.h264";

#[test]
fn a_frozen_destination_with_a_full_queue_never_starves_another() {
    // A frame cap, not the time bound, limits the queues here: the worst case for the pool.
    let limits = Limits {
        max_duration_us: 3_600_000_000,
        max_bytes: 1 << 30,
        max_frames: 48,
    };
    let pool = Pool::new(pool::slots_for(limits.max_frames, 2), 64 * 1024);
    let frozen = Arc::new(FrameQueue::new(limits, Policy::DropGops));
    let healthy = Arc::new(FrameQueue::new(limits, Policy::DropGops));
    let status = SharedStatus::new();
    let source = FileSource::open(Path::new(FIXTURE), None, false, true).unwrap();
    let mut ingest = Ingest::new(
        Box::new(source),
        pool.clone(),
        Outputs::new(vec![Arc::clone(&frozen), Arc::clone(&healthy)]),
        SharedHeaders::default(),
        IngestSettings::default(),
        status.clone(),
    );

    // The frozen publisher is stuck writing the first frame and holds it forever.
    assert!(ingest.step().unwrap());
    let stuck = frozen.try_pop().unwrap().expect("first frame");
    let mut in_flight = healthy.try_pop().unwrap().expect("first frame");
    let mut last_ts = in_flight.meta().timestamp_us;
    let frames = 20 * limits.max_frames;
    for _ in 1..frames {
        assert!(ingest.step().unwrap());
        // The healthy publisher pops the next frame while it still holds the previous one.
        let next = healthy
            .try_pop()
            .unwrap()
            .expect("the healthy queue lost a frame");
        assert!(next.meta().timestamp_us > last_ts);
        last_ts = next.meta().timestamp_us;
        in_flight = next;
    }
    drop(in_flight);
    assert_eq!(healthy.dropped(), 0, "the healthy destination lost frames");
    assert!(
        frozen.dropped() > 0,
        "the frozen queue must have dropped GOPs"
    );
    assert!(frozen.len() <= limits.max_frames);
    assert_eq!(
        Counters::get(&status.counters.frames_dropped),
        frozen.dropped(),
        "every drop was the frozen destination's (none for want of a slot)"
    );
    assert_eq!(Counters::get(&status.counters.frames_in), frames as u64);
    drop(stuck);
}

#[test]
fn one_server_frozen_then_killed_leaves_the_others_recording_whole_and_gapless() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20);
    let healthy = Nginx::start(NginxOpts { record: true });
    let mut victim = Nginx::start(NginxOpts { record: true });
    let started = Instant::now();
    let mut campush = Campush::start(|_| {
        format!(
            "[source]\nspec = \"{}\"\n\n[[output]]\nurl = \"{}\"\n\n[[output]]\nurl = \"{}\"\n\n\
             [network]\nmax_attempts = 0\nwrite_timeout_s = 1\npublish_timeout_s = 1\n\
             backoff_min_s = 0.2\nbackoff_max_s = 1\n\n[status]\nsummary_interval_s = 0\nfile = \"\"\n",
            clip.source(),
            healthy.url("whole"),
            victim.url("victim"),
        )
    });
    wait_until("both publishes", Duration::from_secs(10), || {
        healthy.publishes("whole") >= 1 && victim.publishes("victim") >= 1
    });

    // Frozen for 5 s: its socket fills, campush's write to it stalls and times out.
    thread::sleep(Duration::from_secs(3));
    victim.freeze();
    thread::sleep(Duration::from_secs(5));
    victim.thaw();
    // Then killed outright for 3 s, and back, so the push can end cleanly.
    thread::sleep(Duration::from_secs(2));
    victim.stop();
    thread::sleep(Duration::from_secs(3));
    victim.restart();

    let code = campush.wait_exit(Duration::from_secs(60).saturating_sub(started.elapsed()));
    let log_text = campush.log();
    assert_eq!(code, Some(0), "{log_text}");
    let victim_failures = log_text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("/live/<redacted>"))
        .filter(|l| l.contains(&format!(":{}/", victim.port())))
        .count();
    let healthy_failures = log_text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&format!(":{}/", healthy.port())))
        .count();
    eprintln!("victim: {victim_failures} failed connection(s); healthy: {healthy_failures}");
    assert!(
        victim_failures >= 2,
        "the victim was never disrupted:\n{log_text}"
    );
    assert_eq!(healthy_failures, 0, "{log_text}");

    let rec = probe_recording(&healthy.recording_of("whole"));
    rec.assert_matches(&clip);
    let max_step = rec.dts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        max_step <= 34,
        "a {max_step} ms gap in the healthy destination's recording"
    );
}
