//! RTMPS against a real server: nginx's `stream` module terminates TLS (certificates from a
//! throwaway CA that `openssl` makes for each test) in front of nginx-rtmp, which records.
//! With the CA given, the push succeeds and the recording is exactly the clip; a certificate for
//! another host and a certificate from an unknown CA are refused with exit code 76 and a message
//! that says which, and how to fix it.
//!
//! Needs nginx with the RTMP and stream modules, openssl, ffmpeg (libx264) and ffprobe; without
//! them these tests print SKIP and pass, unless `CAMPUSH_REQUIRE_TOOLS=1`. A build without the
//! `tls` feature has no RTMPS to test.
#![cfg(feature = "tls")]

mod support;

use std::time::Duration;
use support::*;

const PUSH_TIMEOUT: Duration = Duration::from_secs(60);
const KEY: &str = "tls_k3y_SECRET";

fn tools() -> bool {
    require_all() && require(Tool::NginxTls)
}

fn push(url: &str, clip: &Clip, extra: &[&str]) -> Run {
    let source = clip.source();
    let mut args = vec!["run", "--url", url, "--source", &source, "--no-pace"];
    args.extend_from_slice(extra);
    run_campush(&args, PUSH_TIMEOUT)
}

#[test]
fn rtmps_with_the_servers_ca_records_exactly_the_clip() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts::default());
    let ca = nginx.tls().ca.to_str().unwrap().to_owned();
    let run = push(&nginx.url_tls(KEY), &clip, &["--tls-ca", &ca]);
    assert_eq!(
        run.code,
        Some(0),
        "the push over TLS should succeed:\n{run}"
    );
    assert!(!run.stderr.contains(KEY), "the key leaked:\n{run}");
    probe_recording(&nginx.recording_of(KEY)).assert_matches(&clip);
}

#[test]
fn an_ip_literal_sends_no_sni_and_is_checked_against_the_ip_san() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts::default());
    let ca = nginx.tls().ca.to_str().unwrap().to_owned();
    let url = format!("rtmps://127.0.0.1:{}/live/ip", nginx.tls().port);
    let run = push(&url, &clip, &["--tls-ca", &ca]);
    assert_eq!(run.code, Some(0), "{run}");
    probe_recording(&nginx.recording_of("ip")).assert_matches(&clip);
}

#[test]
fn a_certificate_for_another_host_is_refused_with_exit_76() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts { record: false });
    let ca = nginx.tls().ca.to_str().unwrap().to_owned();
    let url = format!(
        "rtmps://localhost:{}/live/{KEY}",
        nginx.tls().wrong_host_port
    );
    let run = push(&url, &clip, &["--tls-ca", &ca]);
    assert_eq!(run.code, Some(76), "{run}");
    assert!(
        run.stderr.contains("not valid for host localhost") && run.stderr.contains("other.example"),
        "the error should name the host and the certificate's names:\n{run}"
    );
    assert!(!run.stderr.contains(KEY), "the key leaked:\n{run}");
    assert!(
        !nginx.error_log().contains("publish: name="),
        "nothing may be published over a refused connection"
    );
}

#[test]
fn an_expired_certificate_is_refused_with_exit_76_naming_the_clock() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts { record: false });
    let ca = nginx.tls().ca.to_str().unwrap().to_owned();
    let url = format!("rtmps://localhost:{}/live/{KEY}", nginx.tls().expired_port);
    let run = push(&url, &clip, &["--tls-ca", &ca]);
    assert_eq!(run.code, Some(76), "{run}");
    assert!(
        run.stderr.contains("has expired") && run.stderr.contains("clock"),
        "the error should say the certificate expired, and that the clock may be wrong:\n{run}"
    );
    assert!(!run.stderr.contains(KEY), "the key leaked:\n{run}");
    assert!(!nginx.error_log().contains("publish: name="));
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_naming_the_fix() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts { record: false });
    let run = push(&nginx.url_tls(KEY), &clip, &[]);
    assert_eq!(run.code, Some(76), "{run}");
    assert!(
        run.stderr.contains("unknown issuer") && run.stderr.contains("--tls-ca"),
        "the error should say the issuer is unknown and how to trust it:\n{run}"
    );
    assert!(!nginx.error_log().contains("publish: name="));
}

#[test]
fn tls_insecure_connects_without_the_ca_and_warns_at_every_connect() {
    if !tools() {
        return;
    }
    let clip = clip_720p_slices_aud(4);
    let nginx = Nginx::start_tls(NginxOpts { record: false });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("campush.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nspec = \"{}\"\npace = false\n\n[[output]]\nurl = \"{}\"\ntls_insecure = true\n",
            clip.source(),
            nginx.url_tls("insecure")
        ),
    )
    .unwrap();
    let run = run_campush(&["run", "--config", config.to_str().unwrap()], PUSH_TIMEOUT);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("TLS certificate verification is OFF"),
        "tls_insecure must be warned about:\n{run}"
    );
}

#[test]
fn a_missing_ca_file_is_a_configuration_error() {
    let run = run_campush(
        &[
            "run",
            "--url",
            "rtmps://localhost:1/live/k",
            "--source",
            "file:tests/fixtures/clip-320x240-30fps.h264",
            "--tls-ca",
            "/nonexistent/ca.pem",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(78), "{run}");
    assert!(run.stderr.contains("cannot read the CA file"), "{run}");
}
