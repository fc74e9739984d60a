//! The interop matrix: campush publishes the same clip, with its silent AAC track, to six
//! independent RTMP server implementations, and ffprobe checks what each one received: every
//! video frame, in order and decodable, and an AAC-LC audio track as long as the video.
//!
//! How the check sees what a server received: servers that record write an FLV file; the
//! in-process server's messages are written into one; node-media-server records nothing, so
//! ffmpeg plays the stream back from it (`-c copy`) while campush publishes, and the copy is
//! checked (a player that joins before the publisher gets every frame, not a cached GOP).
//!
//! The servers, how each reads the protocol, and whether it sends Acknowledgement messages to a
//! publisher that announced a Window Acknowledgement Size (issue 10). "Measured": a scratch
//! publisher sent Window Acknowledgement Size 100000 (or none), then 2 MB of video, and counted
//! the Acknowledgements; the rest is read from each server's source. Each test also checks which
//! estimate of its backlog campush settles on with that server (it announces 32 KiB): the
//! server's acknowledgements, or for pyrtmp, which sends none, the socket's send queue.
//!
//! - **nginx-rtmp** 1.2.2 (Debian `libnginx-mod-rtmp`), C, records with `record all`. nginx's
//!   event loop and a hand-written chunk parser working on nginx buffers. Acknowledges once the
//!   publisher announced a window, every window (measured: none without, every ~100 kB with
//!   100000); its byte count restarts at 0 past 0xF0000000.
//! - **scuffle-rtmp** 0.2 (crates.io), Rust, in this test process (tests/inproc); its messages
//!   are written into an FLV file here. tokio and a `bytes` chunk reader; a read that waits over
//!   2.5 s ends the session. Acknowledges also without a window (2.5 MB default), with the byte
//!   count from *before* the read that crossed the window.
//! - **ffmpeg `-listen 1`** 5.1 (Debian `ffmpeg`), C, writes what it receives with `-c copy`.
//!   libavformat's rtmppkt.c and rtmpproto.c, the client's code run as a server for one
//!   publisher. Acknowledges also without a window (measured: every ~1 MiB), with one every half
//!   window (measured: every ~60 kB with 100000).
//! - **node-media-server** 2.7.4 (npm), JavaScript, run by tests/servers/node_media_server.js:
//!   relays, records nothing, so ffmpeg plays the stream back. A parser state machine over Node
//!   buffers modelled on nginx-rtmp's; acknowledges as nginx-rtmp does (measured), with the same
//!   counter reset. Version 4.x, the current rewrite, keeps that parser but never sends an
//!   Acknowledgement (its sendACK has no caller); 2.x is the one deployed widely.
//! - **pyrtmp** 0.3.1 (PyPI), Python asyncio, recording through tests/servers/pyrtmp_record.py.
//!   Bit-level reads through `bitstring`; a message opened by a type-3 header keeps the previous
//!   timestamp (no delta added). It compresses the headers it *writes* against the previous
//!   chunk of any chunk stream, so its first chunk on chunk stream 3 (the `_result` of
//!   `connect`) has a type-1 header. Never acknowledges (measured).
//! - **rtmplite3** 0.4.0 (PyPI), Python 3 port of the Flash-era rtmplite, records with `-k`. A
//!   generator per connection reading exact byte counts; the first header on a chunk stream may
//!   be of any type. Acknowledges once the publisher announced a window, every window
//!   (measured), with the total byte count, which its 32-bit packing cannot hold past 4 GiB.
//!
//! The three registry servers are installed, pinned, by `tests/servers/install.sh` (CI runs it);
//! tests find them in `$CAMPUSH_INTEROP_SERVERS`, else `target/interop-servers`. Without them, or
//! without nginx-rtmp or ffmpeg, a test prints SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod inproc;
mod servers;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use servers::Installed;
use support::*;

const PUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take, after campush left, to close its recording.
const SETTLE: Duration = Duration::from_secs(20);

/// The clip every server receives: 4 s of 640x360 at 30 fps, no B-frames, GOP 60.
fn clip() -> Clip {
    clip_360p(4)
}

/// How campush measures the backlog to a server (it logs which, once per connection): by the
/// server's RTMP acknowledgements, or, for a server that sends none, by its socket's send queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measured {
    ByAcks,
    BySendQueue,
}

/// Publishes `clip` unpaced from a file to `url` (with the default silent AAC track) and expects
/// campush to deliver it all and exit 0, measuring its backlog as `measured` says.
fn publish(url: &str, clip: &Clip, measured: Measured) {
    let source = clip.source();
    let args = ["run", "--url", url, "--source", &source, "--no-pace"];
    let run = run_campush(&args, PUSH_TIMEOUT);
    assert_eq!(
        run.code,
        Some(0),
        "campush should publish the whole file and exit 0:\n{run}"
    );
    let said = |what: &str| run.stderr.contains(&format!("backlog measured by {what}"));
    let (acks, queue) = (
        said("the server's RTMP acknowledgements"),
        said("the socket's send queue"),
    );
    assert_eq!(
        (acks, queue),
        (
            measured == Measured::ByAcks,
            measured == Measured::BySendQueue
        ),
        "expected the backlog {measured:?}:\n{run}"
    );
}

/// What `server` received, in `flv`, is the whole clip: every video frame (as
/// [`Recording::assert_matches`] checks them: count, size, order, timestamps, decodes cleanly)
/// and an AAC-LC track that starts with the video and lasts as long (within 100 ms).
fn assert_received_everything(server: &str, flv: &Path, clip: &Clip) {
    assert!(flv.is_file(), "{server}: nothing recorded at {flv:?}");
    let rec = probe_recording(flv);
    let problems = rec.problems_against(clip);
    assert!(
        problems.is_empty(),
        "{server} did not receive the clip as pushed:\n- {}",
        problems.join("\n- ")
    );
    assert_eq!(
        audio_stream(flv),
        "aac,LC,48000,2",
        "{server}: the audio track"
    );
    let pk = packets(flv);
    let (v0, v1) = span(&pk, false).expect("video packets");
    let (a0, a1) = span(&pk, true).unwrap_or_else(|| panic!("{server}: no audio packet"));
    let (video_ms, audio_ms) = (v1 - v0, a1 - a0);
    eprintln!(
        "{server}: {} video frames, {video_ms} ms from {v0}; {} audio packets, {audio_ms} ms from {a0}",
        rec.frames,
        pk.iter().filter(|p| p.audio).count()
    );
    let frame_ms = 1000 / clip.fps as i64;
    assert!(
        (a0 - v0).abs() <= frame_ms,
        "{server}: audio starts at {a0} ms, video at {v0} ms"
    );
    assert!(
        (audio_ms - video_ms).abs() < 100,
        "{server}: audio lasts {audio_ms} ms, video {video_ms} ms"
    );
}

#[test]
fn nginx_rtmp_records_every_frame_and_the_audio_track() {
    if !require_all() {
        return;
    }
    let clip = clip();
    let nginx = Nginx::start(NginxOpts::default());
    publish(&nginx.url("matrix"), &clip, Measured::ByAcks);
    assert_received_everything("nginx-rtmp", &nginx.recording_of("matrix"), &clip);
}

#[test]
fn scuffle_rtmp_in_process_receives_every_frame_and_the_audio_track() {
    if ![Tool::Ffmpeg, Tool::Ffprobe].into_iter().all(require) {
        return;
    }
    let clip = clip();
    let server = inproc::ScuffleServer::start();
    publish(&server.url("matrix"), &clip, Measured::ByAcks);
    let received = server.wait_for("the end of the publish", SETTLE, |r| r.unpublishes >= 1);
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("matrix.flv");
    std::fs::write(&flv, flv_of(&received)).unwrap();
    assert_received_everything("scuffle-rtmp", &flv, &clip);
}

/// An FLV file (no metadata) holding every audio and video message the server received, merged
/// by timestamp (audio first on a tie, as campush sends it).
fn flv_of(received: &inproc::Received) -> Vec<u8> {
    let mut tags: Vec<(u32, u8, &[u8])> = (received.audios.iter())
        .map(|(ts, body)| (*ts, 8, body.as_slice()))
        .chain((received.videos.iter()).map(|(ts, body)| (*ts, 9, body.as_slice())))
        .collect();
    tags.sort_by_key(|&(ts, kind, _)| (ts, kind));
    let mut flv = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for (ts, kind, body) in tags {
        let len = body.len() as u32;
        flv.push(kind);
        flv.extend_from_slice(&len.to_be_bytes()[1..]);
        flv.extend_from_slice(&ts.to_be_bytes()[1..]);
        flv.push((ts >> 24) as u8);
        flv.extend_from_slice(&[0, 0, 0]);
        flv.extend_from_slice(body);
        flv.extend_from_slice(&(11 + len).to_be_bytes());
    }
    flv
}

#[test]
fn ffmpeg_listener_receives_every_frame_and_the_audio_track() {
    if ![Tool::Ffmpeg, Tool::Ffprobe].into_iter().all(require) {
        return;
    }
    let clip = clip();
    let mut listener = servers::ffmpeg_listener("matrix");
    publish(&listener.url("matrix"), &clip, Measured::ByAcks);
    assert!(
        listener.wait_exit(SETTLE),
        "ffmpeg -listen did not exit after the publisher left:\n{}",
        listener.log()
    );
    let flv = listener.dir().join("matrix.flv");
    assert_received_everything("ffmpeg -listen", &flv, &clip);
}

#[test]
fn node_media_server_2_relays_every_frame_and_the_audio_track_to_a_player() {
    if !require_all() || !servers::require(Installed::NodeMediaServer) {
        return;
    }
    let clip = clip();
    let server = servers::node_media_server();
    let played = server.dir().join("played.flv");
    // A player that gave up before asking (its connection failed on a busy machine) is started
    // again, at most three times.
    let mut player = servers::ffmpeg_player(&server.url("matrix"), &played);
    let mut starts = 1;
    let asked = poll_until(SETTLE * 2, || {
        if server.log().contains("play /live/matrix") {
            return true;
        }
        if !player.running() && starts < 3 {
            eprintln!("the player stopped before asking:\n{}", player.log());
            player = servers::ffmpeg_player(&server.url("matrix"), &played);
            starts += 1;
        }
        false
    });
    assert!(
        asked,
        "the player never asked node-media-server for the stream ({starts} starts; running: \
         {}):\n{}",
        player.running(),
        player.log()
    );
    publish(&server.url("matrix"), &clip, Measured::ByAcks);
    let (code, stderr) = player.wait(SETTLE);
    assert_eq!(code, Some(0), "the ffmpeg player failed:\n{stderr}");
    assert_received_everything("node-media-server (played back)", &played, &clip);
}

#[test]
fn pyrtmp_records_every_frame_and_the_audio_track() {
    if !require_all() || !servers::require(Installed::Pyrtmp) {
        return;
    }
    let clip = clip();
    let server = servers::pyrtmp();
    publish(&server.url("matrix"), &clip, Measured::BySendQueue);
    assert!(
        server.wait_for_log("recorded matrix", SETTLE),
        "pyrtmp did not close its recording"
    );
    assert_received_everything("pyrtmp", &recording(&server, "matrix"), &clip);
}

#[test]
fn rtmplite3_records_every_frame_and_the_audio_track() {
    if !require_all() || !servers::require(Installed::Rtmplite3) {
        return;
    }
    let clip = clip();
    let server = servers::rtmplite3();
    publish(&server.url("matrix"), &clip, Measured::ByAcks);
    assert!(
        server.wait_for_log("closing flv file", SETTLE),
        "rtmplite3 did not close its recording"
    );
    assert_received_everything("rtmplite3", &recording(&server, "matrix"), &clip);
}

/// `DIR/KEY.flv` of a recording server.
fn recording(server: &servers::Server, key: &str) -> PathBuf {
    server.dir().join(format!("{key}.flv"))
}
