//! Recording on the board (`[record]`): campush writes fragmented MP4 segments while it streams
//! to a real nginx-rtmp, and every segment is checked with ffprobe and ffmpeg: it decodes from a
//! keyframe, the segments together last as long as the recording, a segment cut short still
//! plays, retention keeps the directory within `max_mib` by deleting the oldest, a directory
//! that vanishes is a status and recording resumes when it is back, and `outage` mode keeps what
//! the server missed.
//!
//! Needs nginx with the RTMP module, ffmpeg (libx264) and ffprobe; without them these tests
//! print SKIP and pass, unless `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

/// GOP of the clips: 60 frames at 30 fps.
const GOP_S: f64 = 2.0;

/// The finished segments in `dir`, oldest first, and whether a `.part` is left.
fn segments(dir: &Path) -> (Vec<PathBuf>, bool) {
    let mut mp4 = Vec::new();
    let mut part = false;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".part") {
            part = true;
        } else if name.ends_with(".mp4") {
            mp4.push(path);
        }
    }
    mp4.sort();
    (mp4, part)
}

/// What ffprobe says of one segment's video.
#[derive(Debug)]
struct Segment {
    frames: u64,
    duration_s: f64,
    first_packet_key: bool,
    has_audio: bool,
    decode_errors: String,
}

fn probe(path: &Path) -> Segment {
    let run = ffprobe_video(
        path,
        "stream=nb_read_frames,duration:packet=flags",
        "compact=nk=0",
        &[],
    );
    assert_eq!(run.code, Some(0), "ffprobe failed on {path:?}:\n{run}");
    let field = |line: &str, key: &str| -> Option<String> {
        line.split('|')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_owned))
    };
    let mut seg = Segment {
        frames: 0,
        duration_s: 0.0,
        first_packet_key: false,
        has_audio: false,
        decode_errors: String::new(),
    };
    let mut first_packet = true;
    for line in run.stdout.lines() {
        if line.starts_with("packet|") && first_packet {
            first_packet = false;
            seg.first_packet_key = field(line, "flags").is_some_and(|f| f.starts_with('K'));
        }
        if line.starts_with("stream|") {
            seg.frames = field(line, "nb_read_frames").unwrap().parse().unwrap();
            seg.duration_s = field(line, "duration").unwrap().parse().unwrap();
        }
    }
    let audio = ffprobe(
        path,
        &["-select_streams", "a", "-show_entries", "stream=codec_name"],
    );
    seg.has_audio = audio.stdout.contains("codec_name=aac");
    let mut ffmpeg = std::process::Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(path);
    ffmpeg.args(["-f", "null", "-"]);
    let decode = run_bounded(ffmpeg, None, Duration::from_secs(60));
    seg.decode_errors = decode.stderr.trim().to_owned();
    seg
}

fn config(clip: &Clip, url: &str, record: &str, extra: &str) -> String {
    format!(
        "[source]\nspec = \"{}\"\nloop = true\n[[output]]\nurl = \"{url}\"\n\
         [network]\nbackoff_min_s = 0.2\nbackoff_max_s = 1\n{extra}\n[record]\n{record}\n",
        clip.source()
    )
}

#[test]
fn always_writes_segments_that_each_decode_from_a_keyframe_and_last_as_long_as_the_recording() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20);
    let nginx = Nginx::start(NginxOpts::default());
    let rec = tempfile::tempdir().unwrap();
    let record = format!("dir = \"{}\"\nsegment_s = 4", rec.path().display());
    let url = nginx.url("recorded");
    let mut campush = Campush::start(|_| config(&clip, &url, &record, ""));
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(15));
    let (code, _) = campush.terminate();
    let recorded_s = started.elapsed().as_secs_f64();
    assert_eq!(code, Some(0), "{}", campush.log());

    let (files, part) = segments(rec.path());
    assert!(!part, "a .part is left after a clean stop: {files:?}");
    assert!(files.len() >= 3, "{} segments: {files:?}", files.len());
    let mut total_s = 0.0;
    let mut total_frames = 0;
    for (i, path) in files.iter().enumerate() {
        let seg = probe(path);
        assert!(seg.frames > 0, "{path:?}: {seg:?}");
        assert!(
            seg.first_packet_key,
            "{path:?} does not start at a keyframe"
        );
        assert!(seg.has_audio, "{path:?} has no AAC track");
        assert_eq!(seg.decode_errors, "", "{path:?}");
        // A segment ends at the first keyframe after 4 s: 4 s with a 2 s GOP (the last one
        // ends at the stop).
        if i + 1 < files.len() {
            assert!((seg.duration_s - 4.0).abs() < 0.05, "{path:?}: {seg:?}");
        }
        let expected_s = seg.frames as f64 / 30.0;
        assert!(
            (seg.duration_s - expected_s).abs() < 0.05,
            "{path:?}: {seg:?}"
        );
        total_s += seg.duration_s;
        total_frames += seg.frames;
    }
    assert!(
        (total_s - recorded_s).abs() <= GOP_S,
        "segments last {total_s:.2} s in all ({total_frames} frames), the run {recorded_s:.2} s"
    );
    let streamed = probe_recording(&nginx.recording_of("recorded"));
    assert!(
        streamed.frames >= total_frames - 30,
        "nginx got {streamed:?}"
    );

    // A segment cut at 70% (a power loss) still plays up to its last complete fragment.
    let first = fs::read(&files[0]).unwrap();
    let cut = rec.path().join("cut.mp4");
    fs::write(&cut, &first[..first.len() * 7 / 10]).unwrap();
    let frames = ffprobe(
        &cut,
        &[
            "-count_frames",
            "-select_streams",
            "v",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    let frames: u64 = frames
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        frames > 0 && frames < 120,
        "{frames} frames in the cut segment"
    );
}

#[test]
fn retention_deletes_the_oldest_segments_to_stay_within_max_mib() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20); // about 2 MiB
    let nginx = Nginx::start(NginxOpts { record: false });
    let rec = tempfile::tempdir().unwrap();
    fs::write(rec.path().join("notes.txt"), "not a segment").unwrap();
    let url = nginx.url("retained");
    let mut campush = Campush::start(|_| {
        format!(
            "[source]\nspec = \"{}\"\npace = false\n[[output]]\nurl = \"{url}\"\n\
             [audio]\nsource = \"none\"\n\
             [record]\ndir = \"{}\"\nsegment_s = 2\nmax_mib = 1\nmin_free_mib = 0\n",
            clip.source(),
            rec.path().display()
        )
    });
    assert_eq!(campush.wait_exit(Duration::from_secs(60)), Some(0));
    let log = campush.log();
    let created = log.matches("INFO  recording to ").count();
    let (files, part) = segments(rec.path());
    assert!(!part);
    assert!(
        created >= 9,
        "20 s in 2 s segments: {created} created\n{log}"
    );
    let total: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert!(total <= 1 << 20, "{total} bytes kept in {files:?}");
    assert!(files.len() < created, "nothing was deleted: {files:?}");
    // The newest are kept: the last segment created is among them.
    assert_keeps_the_newest(&log, &files);
    assert!(
        rec.path().join("notes.txt").exists(),
        "a file not ours was touched"
    );
    for f in &files {
        assert!(probe(f).first_packet_key, "{f:?}");
    }
}

/// The newest segment campush's log says it made is among `files`.
fn assert_keeps_the_newest(log: &str, files: &[PathBuf]) {
    let last = log
        .lines()
        .filter_map(|l| l.split("INFO  recording to ").nth(1))
        .next_back()
        .expect("a segment was made")
        .trim();
    assert!(
        files.iter().any(|f| f.to_str() == Some(last)),
        "{last} not in {files:?}"
    );
}

/// The status file's `"status"` and `last_error` once `done` holds for them, or a panic.
fn wait_for_status(file: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = poll_until(Duration::from_secs(20), || {
        last = fs::read_to_string(file).unwrap_or_default();
        done(&last)
    });
    assert!(ok, "the status file never showed {what}: {last}");
    last
}

#[test]
fn a_vanished_directory_is_a_storage_error_and_recording_resumes_when_it_is_back() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20);
    let nginx = Nginx::start(NginxOpts { record: false });
    let base = tempfile::tempdir().unwrap();
    let rec = base.path().join("usb");
    fs::create_dir(&rec).unwrap();
    let status = base.path().join("status.json");
    let url = nginx.url("vanishing");
    let record = format!("dir = \"{}\"\nsegment_s = 2", rec.display());
    let extra = format!("[status]\nfile = \"{}\"", status.display());
    let mut campush = Campush::start(|_| config(&clip, &url, &record, &extra));
    wait_for_status(&status, "streaming", |s| {
        s.contains("\"status\":\"streaming\"")
    });
    fs::remove_dir_all(&rec).unwrap(); // the USB stick is pulled
    let failed = wait_for_status(&status, "error_storage", |s| {
        s.contains("\"status\":\"error_storage\"")
    });
    assert!(failed.contains("recording to "), "{failed}");
    // The stream goes on meanwhile (the status file is rewritten every 5 s).
    let sent = |s: &str| json_number(&s.replace("\":", "\": "), "frames_sent");
    let before = sent(&failed);
    std::thread::sleep(Duration::from_secs(6));
    let later = fs::read_to_string(&status).unwrap();
    assert!(
        sent(&later) > before,
        "streaming stopped with the disk: {later}"
    );

    fs::create_dir(&rec).unwrap(); // and put back
    wait_for_status(&status, "streaming again", |s| {
        s.contains("\"status\":\"streaming\"")
    });
    assert!(
        poll_until(Duration::from_secs(10), || !segments(&rec).0.is_empty()),
        "no segment after the directory came back:\n{}",
        campush.log()
    );
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0));
    for f in segments(&rec).0 {
        assert!(probe(&f).first_packet_key, "{f:?}");
    }
}

#[test]
fn outage_mode_records_what_the_server_missed_from_the_gop_before_and_little_more() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20);
    let mut nginx = Nginx::start(NginxOpts { record: false });
    let rec = tempfile::tempdir().unwrap();
    let record = format!("dir = \"{}\"\nmode = \"outage\"", rec.path().display());
    let url = nginx.url("outage");
    let mut campush = Campush::start(|_| config(&clip, &url, &record, ""));
    assert!(
        nginx.wait_for_log("publish: name='outage'", Duration::from_secs(10)),
        "campush never published:\n{}",
        campush.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        segments(rec.path()).0.is_empty(),
        "recorded while streaming"
    );
    let outage = Instant::now();
    nginx.terminate();
    std::thread::sleep(Duration::from_secs(10));
    nginx.restart();
    let outage_s = outage.elapsed().as_secs_f64();
    // Back to streaming, then the rest of that GOP, then the segment closes.
    assert!(
        poll_until(Duration::from_secs(15), || {
            let (files, part) = segments(rec.path());
            !files.is_empty() && !part
        }),
        "the outage segment was never closed:\n{}",
        campush.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0));
    let (files, _) = segments(rec.path());
    let mut total_s = 0.0;
    for f in &files {
        let seg = probe(f);
        assert!(seg.first_packet_key, "{f:?}");
        assert_eq!(seg.decode_errors, "", "{f:?}");
        total_s += seg.duration_s;
    }
    // The GOP before the outage (up to 2 s), the outage, the reconnect (backoff up to 1 s, then
    // the handshake) and the rest of the GOP streaming resumed in (up to 2 s).
    assert!(
        total_s >= outage_s && total_s <= outage_s + 2.0 * GOP_S + 2.5,
        "{total_s:.2} s recorded for an outage of {outage_s:.2} s: {files:?}\n{}",
        campush.log()
    );
}

/// `campush ARGS` with no system configuration to find; (exit code, stdout, stderr).
fn campush(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_campush"))
        .args(args)
        .env("CAMPUSH_ROOT", "/nonexistent")
        .output()
        .expect("campush runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn check_config_places_a_bad_record_setting_at_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campush.toml");
    for (section, key, line) in [
        ("mode = \"sometimes\"", "record.mode", 6),
        ("dir = \"/srv/rec\"\nsegment_s = 0", "record.segment_s", 7),
        ("max_mib = -5", "record.max_mib", 6),
        ("dir = \"relative/rec\"", "record.dir", 6),
    ] {
        let text = format!(
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[record]\n{section}\n"
        );
        fs::write(&file, &text).unwrap();
        let (code, _, err) = campush(&["check-config", file.to_str().unwrap()]);
        assert_eq!(code, Some(78), "{err}");
        let place = format!("{}, line {line}", file.display());
        assert!(err.contains(&place), "{key}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    }
    // A misspelt key is named, with the nearest one.
    fs::write(
        &file,
        "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[record]\nsegment = 4\n",
    )
    .unwrap();
    let (code, _, err) = campush(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("line 6") && err.contains("segment_s"), "{err}");
}

#[test]
fn check_config_shows_the_recording_it_would_make() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campush.toml");
    fs::write(
        &file,
        "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[record]\nmode = \"outage\"\nsegment_s = 30\n",
    )
    .unwrap();
    let (code, out, err) = campush(&["check-config", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(
            "record = /var/lib/campush/recordings (outage, 30 s segments, at most 2048 MiB, at least 256 MiB free)"
        ),
        "{out}"
    );
}

#[test]
fn a_file_system_below_min_free_mib_is_a_storage_error_after_the_oldest_segments_go() {
    if !require_all() {
        return;
    }
    let clip = clip_360p(20);
    let nginx = Nginx::start(NginxOpts { record: false });
    let base = tempfile::tempdir().unwrap();
    let rec = base.path().join("rec");
    fs::create_dir(&rec).unwrap();
    let old = rec.join("2020-01-01T00-00-00Z.mp4");
    fs::write(&old, [0u8; 1000]).unwrap();
    fs::write(rec.join("notes.txt"), "not a segment").unwrap();
    let status = base.path().join("status.json");
    let url = nginx.url("full");
    // More free space than any test machine has: the file system is always "full".
    let record = format!("dir = \"{}\"\nmin_free_mib = 1000000000", rec.display());
    let extra = format!("[status]\nfile = \"{}\"", status.display());
    let mut campush = Campush::start(|_| config(&clip, &url, &record, &extra));
    let failed = wait_for_status(&status, "error_storage", |s| {
        s.contains("\"status\":\"error_storage\"")
    });
    assert!(
        failed.contains("fewer than 1000000000 MiB free and no recording left to delete"),
        "{failed}"
    );
    assert!(!old.exists(), "the oldest segment was kept");
    assert!(
        rec.join("notes.txt").exists(),
        "a file not ours was deleted"
    );
    assert_eq!(
        segments(&rec),
        (vec![], false),
        "a segment without pictures was left"
    );
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0));
}

/// A tmpfs of `size` mounted on `dir` for the test's life (root only), so the recorder meets a
/// real small file system: its free space, and a read-only remount.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            campush::testing::skip_or_fail("mounting a tmpfs needs root");
            return None;
        }
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -t tmpfs on {dir:?} failed");
        Some(Tmpfs(dir.to_owned()))
    }

    /// Makes the directory read-only for every file opened from now on (a read-only bind
    /// mount over it: a file system with a file open for writing cannot be remounted
    /// read-only as a whole), or writable again.
    fn read_only(&self, yes: bool) {
        let run = |args: &[&str]| {
            let ok = std::process::Command::new(args[0])
                .args(&args[1..])
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "{args:?} on {:?} failed", self.0);
        };
        if yes {
            let dir = self.0.to_str().unwrap();
            run(&["mount", "--bind", dir]);
            run(&["mount", "-o", "remount,bind,ro"]);
        } else {
            run(&["umount"]);
        }
    }

    fn free_bytes(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn on_a_small_tmpfs_the_oldest_segments_go_to_keep_min_free_mib_and_max_mib() {
    if !require_all() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let rec = base.path().join("card");
    fs::create_dir(&rec).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&rec, "3m") else {
        return;
    };
    let clip = clip_360p(20); // about 2 MiB: more than the tmpfs can keep beside 1 MiB free
    let nginx = Nginx::start(NginxOpts { record: true });
    let url = nginx.url("small");
    let mut campush = Campush::start(|_| {
        format!(
            "[source]\nspec = \"{}\"\npace = false\n[[output]]\nurl = \"{url}\"\n\
             [record]\ndir = \"{}\"\nsegment_s = 2\nmax_mib = 2\nmin_free_mib = 1\n",
            clip.source(),
            rec.display()
        )
    });
    assert_eq!(campush.wait_exit(Duration::from_secs(60)), Some(0));
    let log = campush.log();
    let created = log.matches("INFO  recording to ").count();
    let (files, part) = segments(&rec);
    assert!(!part, "{files:?}");
    assert!(
        files.len() < created,
        "nothing was deleted ({created} made):\n{log}"
    );
    let total: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert!(total <= 2 << 20, "max_mib: {total} bytes kept");
    // The newest segment is kept, and at most one fragment's worth below the free minimum.
    assert_keeps_the_newest(&log, &files);
    let free = tmpfs.free_bytes();
    assert!(
        free >= (1 << 20) - (256 << 10),
        "min_free_mib: {free} bytes free"
    );
    for f in &files {
        assert!(probe(f).first_packet_key, "{f:?}");
    }
    // Streaming was not hurt: the server has the whole clip.
    let pushed = probe_recording(&nginx.recording_of("small"));
    assert_eq!(pushed.frames, clip.frames, "{log}");
}

#[test]
fn a_read_only_directory_is_a_storage_error_and_recording_resumes_when_it_is_writable() {
    if !require_all() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let rec = base.path().join("card");
    fs::create_dir(&rec).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&rec, "16m") else {
        return;
    };
    let clip = clip_360p(20);
    let nginx = Nginx::start(NginxOpts { record: false });
    let status = base.path().join("status.json");
    let url = nginx.url("readonly");
    let record = format!(
        "dir = \"{}\"\nsegment_s = 2\nmin_free_mib = 0",
        rec.display()
    );
    let extra = format!("[status]\nfile = \"{}\"", status.display());
    let mut campush = Campush::start(|_| config(&clip, &url, &record, &extra));
    wait_for_status(&status, "streaming", |s| {
        s.contains("\"status\":\"streaming\"")
    });
    tmpfs.read_only(true);
    let failed = wait_for_status(&status, "error_storage", |s| {
        s.contains("\"status\":\"error_storage\"")
    });
    let sent = |s: &str| json_number(&s.replace("\":", "\": "), "frames_sent");
    let before = sent(&failed);
    std::thread::sleep(Duration::from_secs(6));
    let later = fs::read_to_string(&status).unwrap();
    assert!(
        sent(&later) > before,
        "streaming stopped with the disk: {later}"
    );

    tmpfs.read_only(false);
    let count = segments(&rec).0.len();
    wait_for_status(&status, "streaming again", |s| {
        s.contains("\"status\":\"streaming\"")
    });
    assert!(
        poll_until(Duration::from_secs(15), || segments(&rec).0.len() > count),
        "no new segment once writable:\n{}",
        campush.log()
    );
    let (code, _) = campush.terminate();
    assert_eq!(code, Some(0));
    for f in segments(&rec).0 {
        assert!(probe(&f).first_packet_key, "{f:?}");
    }
}
