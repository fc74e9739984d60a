//! Issue 10: behind a link slower than the stream, `queue.max_seconds` bounds the lag a viewer
//! sees, not only campush's queue. A throttling proxy on loopback forwards campush's bytes to
//! nginx-rtmp at half the stream's bitrate; the lag is the wall time at the end minus the media
//! time nginx recorded by then (ffprobe), and the recording must decode.
//!
//! - Deep buffer (a bloated router or Wi-Fi driver): the proxy takes everything campush sends
//!   into a buffer of up to 16 MiB at once (so TCP acknowledges it at once) and forwards it at the
//!   link rate. Only the server's RTMP acknowledgements can see that backlog.
//! - Shallow buffer, acknowledgements ignored (`CAMPUSH_IGNORE_RTMP_ACKS`): the proxy reads no
//!   faster than the link rate through a 32 KiB socket buffer, so the backlog stays in campush's
//!   socket, where the kernel's send queue (the fallback) sees it.
//!
//! Both also read the status file while they run: the destination's end-to-end backlog
//! (`backlog_ms`) must grow behind the link, under the name of the estimate that measures it
//! (`backlog_estimate`: "acks" behind the deep buffer, "socket" without acknowledgements).
//!
//! Lag figures are printed for the record.

mod support;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{probe_recording, require_all, throttling_proxy, Buffer, Campush, Nginx, NginxOpts};

const RUN: Duration = Duration::from_secs(40);
const MAX_SECONDS: f64 = 2.0;

/// What one throttled push showed.
struct Throttled {
    lag: f64,
    frames: usize,
    log: String,
    /// The first destination's backlog in the status file, sampled every half second while it
    /// streamed: (ms, estimate name).
    backlogs: Vec<(u64, String)>,
}

impl Throttled {
    /// The status file showed the backlog growing past `ms`, measured by `estimate`.
    fn assert_status_backlog_grew(&self, ms: u64, estimate: &str) {
        let first = self.backlogs.first().map(|b| b.0);
        let most = self.backlogs.iter().map(|b| b.0).max();
        assert!(
            most.is_some_and(|m| m >= ms && Some(m) > first),
            "the backlog never grew past {ms} ms: {:?}",
            self.backlogs
        );
        let late = &self.backlogs[self.backlogs.len() / 2..];
        assert!(
            late.iter().all(|b| b.1 == estimate),
            "not measured by {estimate}: {:?}",
            self.backlogs
        );
    }
}

/// The first destination's `backlog_ms` and `backlog_estimate` in a status file's text, when
/// it shows one (it streams).
fn status_backlog(json: &str) -> Option<(u64, String)> {
    let after = |key: &str| json.split_once(key).map(|(_, rest)| rest);
    let ms = after("\"backlog_ms\":")?;
    let ms: u64 = ms[..ms.find(|c: char| !c.is_ascii_digit())?].parse().ok()?;
    let name = after("\"backlog_estimate\":\"")?;
    Some((ms, name[..name.find('"')?].to_owned()))
}

/// Samples the status file in `dir` every half second for `run`.
fn sample_status(dir: &std::path::Path, run: Duration) -> Vec<(u64, String)> {
    let until = Instant::now() + run;
    let mut samples = Vec::new();
    while Instant::now() < until {
        thread::sleep(Duration::from_millis(500).min(until - Instant::now()));
        let text = fs::read_to_string(dir.join("status.json")).unwrap_or_default();
        samples.extend(status_backlog(&text));
    }
    samples
}

/// Pushes the paced 720p clip (looped) through the proxy for [`RUN`], cuts the link, and
/// measures the lag from what nginx recorded.
fn push_through(buffer: Buffer, key: &str, env: &[(&str, &std::ffi::OsStr)]) -> Throttled {
    let clip = support::clip_720p_slices_aud(4);
    let clip_bytes = fs::metadata(&clip.path).unwrap().len() as f64;
    let bytes_per_sec = clip_bytes / (clip.frames as f64 / 30.0);
    let nginx = Nginx::start(NginxOpts { record: true });
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = throttling_proxy(
        nginx.port(),
        (bytes_per_sec / 2.0) as usize,
        buffer,
        Arc::clone(&cut),
        RUN * 3,
    );
    let url = format!("rtmp://127.0.0.1:{proxy}/live/{key}");
    let started = Instant::now();
    let mut campush = Campush::start_with_env(
        |dir| {
            format!(
                "[source]\nspec = \"{}\"\nloop = true\n\n[[output]]\nurl = \"{url}\"\n\n\
                 [queue]\nmax_seconds = {MAX_SECONDS}\n\n[network]\nwrite_timeout_s = 60\n\n\
                 [status]\nfile = \"{}\"\nsummary_interval_s = 0\n",
                clip.source(),
                dir.join("status.json").display()
            )
        },
        env,
    );
    let backlogs = sample_status(campush.dir(), RUN.saturating_sub(started.elapsed()));
    // The end: what nginx has now is all a viewer could have seen.
    cut.store(true, Ordering::Relaxed);
    let run_for = started.elapsed().as_secs_f64();
    let (code, _) = campush.terminate();
    let log = campush.log();
    assert_eq!(code, Some(0), "{log}");
    let rec = probe_recording(&nginx.recording_of(key));
    assert!(rec.decode_errors.is_empty(), "{}", rec.decode_errors);
    assert!(rec.first_frame_key, "the recording starts at a keyframe");
    support::strictly_increasing(&rec.dts).unwrap();
    let last_media = *rec.dts.last().expect("frames recorded") as f64 / 1000.0;
    eprintln!(
        "{buffer:?} at {:.0} kbit/s (stream {:.0} kbit/s): {} frames recorded, lag {:.2} s",
        bytes_per_sec * 4.0 / 1000.0,
        bytes_per_sec * 8.0 / 1000.0,
        rec.dts.len(),
        run_for - last_media
    );
    eprintln!("status file backlog (ms, estimate), every 0.5 s: {backlogs:?}");
    Throttled {
        lag: run_for - last_media,
        frames: rec.dts.len(),
        log,
        backlogs,
    }
}

#[test]
fn the_status_files_backlog_is_read_with_its_estimate() {
    let json = r#"{"destinations":[{"destination":"rtmp://h:1/live/<redacted>","bytes_sent":9,"backlog_ms":1840,"backlog_estimate":"acks"}]}"#;
    assert_eq!(status_backlog(json), Some((1840, "acks".to_owned())));
    let down = r#"{"destinations":[{"backlog_ms":null,"backlog_estimate":null}]}"#;
    assert_eq!(status_backlog(down), None);
}

#[test]
fn behind_a_deep_buffered_link_at_half_the_bitrate_the_lag_stays_within_the_queue_bound() {
    if !require_all() {
        return;
    }
    let run = push_through(Buffer::Deep(16 << 20), "deep", &[]);
    run.assert_status_backlog_grew(1000, "acks");
    assert!(
        run.log
            .contains("backlog measured by the server's RTMP acknowledgements"),
        "{}",
        run.log
    );
    assert!(run.frames > 100, "only {} frames arrived", run.frames);
    assert!(
        run.lag <= MAX_SECONDS + 1.0,
        "lag {:.2} s exceeds queue.max_seconds + 1 s",
        run.lag
    );
}

#[test]
fn without_acknowledgements_the_socket_send_queue_bounds_the_lag_it_can_see() {
    if !require_all() {
        return;
    }
    let off = std::ffi::OsStr::new("1");
    let run = push_through(
        Buffer::Shallow(32 * 1024),
        "shallow",
        &[("CAMPUSH_IGNORE_RTMP_ACKS", off)],
    );
    run.assert_status_backlog_grew(1000, "socket");
    assert!(
        run.log
            .contains("backlog measured by the socket's send queue"),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("RTMP acknowledgements (what"),
        "{}",
        run.log
    );
    assert!(run.frames > 100, "only {} frames arrived", run.frames);
    assert!(
        run.lag <= MAX_SECONDS + 1.0,
        "lag {:.2} s exceeds queue.max_seconds + 1 s",
        run.lag
    );
}

/// For the record (run with `--ignored`): what the fallback cannot see. With acknowledgements
/// ignored, a deep buffer past the first TCP hop holds seconds that no socket statistic shows.
#[test]
#[ignore]
fn without_acknowledgements_a_deep_buffer_beyond_the_first_hop_is_not_seen() {
    if !require_all() {
        return;
    }
    let off = std::ffi::OsStr::new("1");
    let run = push_through(
        Buffer::Deep(16 << 20),
        "blind",
        &[("CAMPUSH_IGNORE_RTMP_ACKS", off)],
    );
    eprintln!(
        "lag without acknowledgements behind a deep buffer: {:.2} s",
        run.lag
    );
}
