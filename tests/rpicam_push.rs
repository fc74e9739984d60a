//! The `rpicam` source end to end: the stand-in rpicam-vid (tests/fixtures/rpicam-vid) crashes
//! twice mid-stream while campush's ingest and publisher (wired as `main` wires them) push to a
//! real nginx-rtmp; the recording must decode cleanly, with each restart resuming on a keyframe.
//!
//! Needs nginx with the RTMP module, ffmpeg, ffprobe and python3; without them the test prints
//! SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use campush::ingest::{Ingest, IngestSettings};
use campush::pool::{slots_for, Pool};
use campush::publisher::{Publisher, PublisherSettings};
use campush::queue::SharedHeaders;
use campush::queue::{FrameQueue, Limits, Outputs, Policy};
use campush::rtmp::url::RtmpUrl;
use campush::source::rpicam::{CameraApp, RawRpicam, RpicamSettings, RpicamSource};
use campush::source::Source;
use campush::status::{Counters, SharedStatus};
use campush::stop::Stop;
use support::*;

const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rpicam-vid/rpicam-vid"
);
const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);

/// (dts in ms, keyframe flag) of every video packet of an FLV file.
fn packets(path: &std::path::Path) -> Vec<(i64, bool)> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", "v:0"]);
    cmd.args(["-show_entries", "packet=dts,flags", "-of", "csv=p=0"])
        .arg(path);
    let run = run_bounded(cmd, None, Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{run}");
    run.stdout
        .lines()
        .filter_map(|l| {
            let (dts, flags) = l.split_once(',')?;
            Some((dts.parse().ok()?, flags.starts_with('K')))
        })
        .collect()
}

#[test]
fn each_restart_of_the_camera_app_resumes_the_push_with_a_decodable_segment() {
    if !require_all() {
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        assert_ne!(
            std::env::var("CAMPUSH_REQUIRE_TOOLS").as_deref(),
            Ok("1"),
            "python3 is missing (the stand-in rpicam-vid)"
        );
        eprintln!("\n*** SKIP: python3 is missing ***\n");
        return;
    }
    // The stand-in, first on PATH, crashing after 50 frames in its first two runs.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("rpicam-vid");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport RPICAM_STANDIN_CLIP='{CLIP}' RPICAM_STANDIN_DIE_AFTER=50 \
             RPICAM_STANDIN_BAD_RUNS=2 RPICAM_STANDIN_LOG='{}/runs'\nexec '{STANDIN}' \"$@\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let search = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let app = CameraApp::find_in(&search).unwrap();
    let settings = RpicamSettings::check(&RawRpicam {
        fps: Some(30.0),
        ..RawRpicam::default()
    })
    .unwrap();

    let nginx = Nginx::start(NginxOpts::default());
    let url = RtmpUrl::parse(&nginx.url("rpicam")).unwrap();
    let status = SharedStatus::new();
    let stop = Stop::new();
    let source = RpicamSource::new(app, settings, status.clone(), stop.clone());
    let limits = Limits::default();
    let queue = Arc::new(FrameQueue::new(limits, Policy::DropGops));
    let pool = Pool::new(
        slots_for(limits.max_frames, 1),
        source.frame_capacity_hint(),
    );
    let outputs = Outputs::new(vec![Arc::clone(&queue)]);
    let headers = SharedHeaders::default();
    let ingest = Ingest::new(
        Box::new(source),
        pool,
        outputs.clone(),
        headers.clone(),
        IngestSettings {
            fps: Some(30.0),
            ..IngestSettings::default()
        },
        status.clone(),
    );
    let ingest_thread = {
        let stop = stop.clone();
        std::thread::spawn(move || ingest.run(&stop))
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let destination = status.set_destinations(1).remove(0);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut publisher = Publisher::new(
        url,
        PublisherSettings::default(),
        Arc::clone(&queue),
        headers,
        destination,
        stop_rx,
    );
    let counters = Arc::clone(&status.counters);
    let outcome = runtime.block_on(async move {
        let task = tokio::spawn(async move { publisher.run().await });
        let deadline = Instant::now() + Duration::from_secs(60);
        // Two crashes, then two seconds of the third run.
        while !(Counters::get(&counters.source_restarts) == 2
            && Counters::get(&counters.frames_sent) >= 50 + 50 + 60)
        {
            assert!(
                Instant::now() < deadline,
                "restarts {}, frames sent {}",
                Counters::get(&counters.source_restarts),
                Counters::get(&counters.frames_sent)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // (Stopping refuses the frame in flight: count the drops before.)
        let dropped = Counters::get(&counters.frames_dropped);
        stop.request();
        outputs.close_all();
        (
            dropped,
            tokio::time::timeout(Duration::from_secs(20), task).await,
        )
    });
    let (dropped, outcome) = outcome;
    assert_eq!(dropped, 0, "nothing was dropped while streaming");
    let outcome = outcome.expect("the publisher finishes").expect("its task");
    assert!(outcome.is_ok(), "{outcome:?}");
    ingest_thread.join().unwrap().unwrap();

    let recording = nginx.recording_of("rpicam");
    let rec = probe_recording(&recording);
    assert_eq!(rec.decode_errors, "", "the whole recording decodes");
    assert!(rec.first_frame_key && rec.first_packet_key);
    assert_eq!(
        rec.frames,
        rec.dts.len() as u64,
        "every packet is a picture"
    );
    strictly_increasing(&rec.dts).unwrap();
    let packets = packets(&recording);
    let gaps: Vec<usize> = (1..packets.len())
        .filter(|&i| packets[i].0 - packets[i - 1].0 > 500)
        .collect();
    assert_eq!(gaps.len(), 2, "one gap per restart: {gaps:?}");
    for &i in &gaps {
        assert!(packets[i].1, "packet {i}, after a restart, is a keyframe");
    }
    assert!(
        gaps[0] >= 45 && gaps[1] - gaps[0] >= 45,
        "each run's frames arrived before it crashed: {gaps:?}"
    );
}
