//! campush against a real nginx-rtmp server, which records what it receives: the recording
//! must be exactly what was pushed, and every failure must end promptly with the documented
//! exit code and a message that never contains the stream key.
//!
//! Needs nginx with the RTMP module, ffmpeg (libx264) and ffprobe; without them these tests
//! print SKIP and pass, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::time::Duration;
use support::*;

const PUSH_TIMEOUT: Duration = Duration::from_secs(60);
const SECRET_KEY: &str = "sk_live_SECRET123";

/// `campush run --url URL --source SOURCE [extra...]`
fn run_args<'a>(url: &'a str, source: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--url", url, "--source", source];
    args.extend_from_slice(extra);
    args
}

/// Pushes `clip` unpaced from a file and checks the server recorded exactly that.
fn push_file_and_check(clip: &Clip, key: &str) -> Recording {
    let nginx = Nginx::start(NginxOpts::default());
    let (url, source) = (nginx.url(key), clip.source());
    let run = run_campush(&run_args(&url, &source, &["--no-pace"]), PUSH_TIMEOUT);
    assert_eq!(
        run.code,
        Some(0),
        "campush should publish the whole file and exit 0:\n{run}"
    );
    let rec = probe_recording(&nginx.recording_of(key));
    rec.assert_matches(clip);
    rec
}

#[test]
fn file_1080p30_high_profile_headers_only_at_start() {
    if !require_all() {
        return;
    }
    let clip = clip_1080p_high_headers_at_start(4);
    let nals = clip.nal_counts();
    assert_eq!(
        (nals.sps, nals.pps),
        (1, 1),
        "fixture: one SPS and one PPS: {nals:?}"
    );
    assert!(
        nals.idr_slices >= 2,
        "fixture: IDRs after the first lack headers: {nals:?}"
    );
    push_file_and_check(&clip, "cam1080");
}

#[test]
fn file_720p_four_slices_with_aud() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nals = clip.nal_counts();
    assert_eq!(
        nals.aud as u64, clip.frames,
        "fixture: one AUD per picture: {nals:?}"
    );
    let slices = (nals.idr_slices + nals.non_idr_slices) as u64;
    assert_eq!(
        slices,
        4 * clip.frames,
        "fixture: four slices per picture: {nals:?}"
    );
    push_file_and_check(&clip, "cam720");
}

#[test]
fn file_with_b_frames_is_shown_in_display_order() {
    if !require_all() {
        return;
    }
    let clip = clip_360p_b_frames(4);
    let rec = push_file_and_check(&clip, "cambframes");
    // The packets really carry reordered pictures: some are shown after later-decoded ones.
    assert!(
        rec.pts.windows(2).any(|w| w[1] < w[0]),
        "fixture: no reordering in {:?}",
        &rec.pts[..12.min(rec.pts.len())]
    );
}

#[test]
fn stdin_through_a_pipe() {
    if !require_all() {
        return;
    }
    let clip = clip_1080p_high_headers_at_start(4);
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("piped");
    let run = run_campush_stdin(
        &run_args(&url, "stdin", &["--no-pace"]),
        &clip.path,
        PUSH_TIMEOUT,
    );
    assert_eq!(
        run.code,
        Some(0),
        "campush should publish all of stdin and exit 0:\n{run}"
    );
    probe_recording(&nginx.recording_of("piped")).assert_matches(&clip);
}

/// Publishes to a key another publisher holds: refused by the server, exit 77.
fn refused_publish(nginx: &Nginx, clip: &Clip, key: &str) -> Run {
    let _holder = ffmpeg_publish_forever(&clip.path, &nginx.url(key));
    let published = format!("publish: name='{key}'");
    assert!(
        nginx.wait_for_log(&published, Duration::from_secs(15)),
        "the first publisher never published:\n{}",
        nginx.error_log()
    );
    let (url, source) = (nginx.url(key), clip.source());
    run_campush(&run_args(&url, &source, &["--no-pace"]), PUSH_TIMEOUT)
}

#[test]
fn busy_key_is_refused_with_exit_77_naming_the_servers_reason() {
    if !require_all() {
        return;
    }
    // Distinctive, so that finding it in a message means the key leaked, not the word "busy".
    let key = "busy_k3y";
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start(NginxOpts::default());
    let run = refused_publish(&nginx, &clip, key);
    assert_eq!(
        run.code,
        Some(77),
        "a refused publish should exit 77:\n{run}"
    );
    assert!(
        run.stderr.contains("NetStream.Publish.BadName"),
        "stderr should name the server's refusal (NetStream.Publish.BadName):\n{run}"
    );
    assert!(
        !run.stderr.contains(key),
        "stderr must not contain the stream key {key:?}:\n{run}"
    );
}

#[test]
fn secret_stream_key_never_appears_in_output() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start(NginxOpts::default());
    let (url, source) = (nginx.url(SECRET_KEY), clip.source());
    let mut runs = Vec::new();

    let ok = run_campush(&run_args(&url, &source, &["--no-pace"]), PUSH_TIMEOUT);
    assert_eq!(
        ok.code,
        Some(0),
        "publishing with a secret key should work:\n{ok}"
    );
    nginx.recording_of(SECRET_KEY); // the key really reached the server
    runs.push(("successful publish", ok));

    runs.push((
        "refused publish",
        refused_publish(&nginx, &clip, SECRET_KEY),
    ));

    let missing = "file:/nonexistent/campush-test-clip.h264";
    let no_source = run_campush(&run_args(&url, missing, &["--no-pace"]), PUSH_TIMEOUT);
    runs.push(("source cannot be opened", no_source));

    let unreachable = format!("rtmp://127.0.0.1:{}/live/{SECRET_KEY}", free_port());
    let no_server = run_campush(
        &run_args(&unreachable, &source, &["--no-pace"]),
        PUSH_TIMEOUT,
    );
    runs.push(("nothing listening", no_server));

    for (what, run) in &runs {
        assert!(!run.timed_out, "{what}: campush did not finish:\n{run}");
        let leaked = |out: &str| out.lines().any(|line| line.contains(SECRET_KEY));
        assert!(
            !leaked(&run.stderr) && !leaked(&run.stdout),
            "{what}: the stream key leaked:\n{run}"
        );
    }
}

#[test]
fn source_that_cannot_be_opened_exits_66() {
    if !require_all() {
        return;
    }
    let nginx = Nginx::start(NginxOpts::default());
    let url = nginx.url("nofile");
    let source = "file:/nonexistent/campush-test-clip.h264";
    let run = run_campush(&run_args(&url, source, &["--no-pace"]), PUSH_TIMEOUT);
    assert_eq!(
        run.code,
        Some(66),
        "an unopenable source should exit 66:\n{run}"
    );
}

#[test]
fn a_short_file_without_parameter_sets_exits_65_instead_of_succeeding_with_nothing_sent() {
    if !require_all() {
        return;
    }
    // The 3 s clip without its SPS and PPS: 90 pictures, none of them decodable.
    let clip = clip_360p(3);
    let data = std::fs::read(&clip.path).unwrap();
    let slices_only: Vec<u8> = annexb_nals(&data)
        .iter()
        .filter(|n| !matches!(data[n.header] & 0x1f, 7 | 8))
        .flat_map(|n| data[n.start..n.end].iter().copied())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-sps.h264");
    std::fs::write(&path, slices_only).unwrap();
    let nginx = Nginx::start(NginxOpts::default());
    let (url, source) = (nginx.url("nosps"), format!("file:{}", path.display()));
    let run = run_campush(&run_args(&url, &source, &["--no-pace"]), PUSH_TIMEOUT);
    assert_eq!(run.code, Some(65), "{run}");
    assert!(
        run.stderr.contains("no usable SPS/PPS (after 90 pictures)"),
        "{run}"
    );
}

#[test]
fn a_paced_low_bitrate_push_allocates_nothing_after_the_warm_up_even_when_it_logs() {
    if !require_all() {
        return;
    }
    // 320x240 at 30 fps fills the 32 KiB acknowledgement window only after the warm-up (30
    // frames), so the line naming the backlog estimate is logged in the measured span.
    let nginx = Nginx::start(NginxOpts { record: false });
    let url = nginx.url("quiet");
    let mut cmd = std::process::Command::new(CAMPUSH);
    cmd.args(["run", "--url", &url, "--source"])
        .arg("file:tests/fixtures/clip-320x240-30fps.h264")
        .env("CAMPUSH_ALLOC_STATS", "1");
    let run = run_bounded(cmd, None, PUSH_TIMEOUT);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("backlog measured by"), "{run}");
    let stats = run
        .stderr
        .lines()
        .find(|l| l.starts_with("alloc-stats:"))
        .unwrap_or_else(|| panic!("no alloc-stats line:\n{run}"));
    assert!(
        stats.contains(" allocs_steady=0 ") && stats.contains("frames=60 "),
        "{stats}\n{run}"
    );
}

#[test]
fn paced_push_takes_real_time() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(2);
    let nginx = Nginx::start(NginxOpts::default());
    let (url, source) = (nginx.url("paced"), clip.source());
    let run = run_campush(&run_args(&url, &source, &[]), PUSH_TIMEOUT);
    assert_eq!(run.code, Some(0), "paced push should exit 0:\n{run}");
    let secs = run.elapsed.as_secs_f64();
    assert!(
        (1.5..=10.0).contains(&secs),
        "a 2 s clip pushed in real time should take 1.5-10 s, took {secs:.2} s:\n{run}"
    );
    probe_recording(&nginx.recording_of("paced")).assert_matches(&clip);
}

#[test]
fn nothing_listening_fails_promptly_with_a_clear_message() {
    if !require_all() {
        return;
    }
    let clip = clip_720p_slices_aud(2);
    let url = format!("rtmp://127.0.0.1:{}/live/nobody", free_port());
    let run = run_campush(
        &run_args(&url, &clip.source(), &["--no-pace"]),
        Duration::from_secs(30),
    );
    assert!(
        !run.timed_out,
        "campush should give up on a refused connection:\n{run}"
    );
    assert!(
        run.elapsed < Duration::from_secs(15),
        "giving up took too long:\n{run}"
    );
    assert!(
        matches!(run.code, Some(code) if code != 0),
        "should exit non-zero:\n{run}"
    );
    let stderr = run.stderr.to_lowercase();
    assert!(
        ["refused", "connect", "unreachable"]
            .iter()
            .any(|word| stderr.contains(word)),
        "stderr should say the server could not be reached:\n{run}"
    );
}
