//! campush against real V4L2 kernel drivers: a Debian 6.1 kernel boots under qemu (TCG) with
//! vivid (raw camera), v4l2loopback (an H.264 "camera" fed by a writer) and vicodec (a stateful
//! M2M encoder), and a static campush runs inside it (`tests/guest/run.sh`, `init.sh`).
//!
//! What the guest run proves, checked here from the files it leaves on the 9p share:
//! - `campush probe` lists vivid, v4l2loopback and vicodec with the right capabilities;
//! - H.264 captured from v4l2loopback (SPS/PPS arriving in a buffer of their own, as the legacy
//!   Pi camera sends them) reaches an independent RTMP server: every frame arrives and decodes;
//! - the capture device can go silent, vanish (module removed) and come back: campush releases
//!   it, waits, and streams again without restarting;
//! - the README's configuration (`board = "rpi-4"` and one `[[output]]`) with no camera app
//!   installed (the guest has busybox only): the board's `auto` picks the v4l2loopback H.264
//!   device over vivid (raw, and no H.264 encoder) and vicodec (not H.264), says so, asks it for
//!   the board's 1920x1080 and takes the nearest size it offers, and streams: every frame
//!   arrives and decodes; `campush probe` says what libcamera and `auto` have;
//! - vicodec driven through the `v4l2-m2m` source's own code path (FWHT instead of H.264):
//!   frames flow, capture timestamps come out of the encoder, the GOP control is honoured,
//!   both DMABUF and copy transfers work, and unplugging the camera (unbinding vivid) mid-stream
//!   is survived.
//!
//! Needs qemu-system-x86, ffprobe, gcc/make (modules build out of tree) and apt (Debian packages,
//! cached in `$CAMPUSH_GUEST_CACHE`, default ~/.cache/campush-guest, which the GPIO guest test
//! shares). Without them it prints SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.
//!
//! - sound: snd-aloop (the ALSA loopback driver) carries a 1 kHz tone with clicks from the
//!   testbed's player to campush's ALSA capture code (`alsa`, `audio::alsa_input`): the tone,
//!   the clicks' spacing by the capture timestamps, CLOCK_MONOTONIC timestamps, S16 mono and
//!   S32 stereo, a simulated clock drift measured from the timestamps, the card unbound under
//!   a running capture and back (`tests/alsa_check`); on both guests.
//! - a microphone end to end (x86_64 only): `campush run --audio alsa:hw:Loopback,1` with
//!   H.264 from v4l2loopback, the loopback's clock 100 ppm off, to the in-guest recorder: the
//!   recording's audio is AAC-LC carrying the tone, every click lies within 20 ms of where its
//!   play time puts it against the video frames' write times (one CLOCK_MONOTONIC for both),
//!   over a minute 100 ppm slow, where the status file shows the drift, and over 24 s 100 ppm
//!   fast, where its offset stays within bounds too and the microphone is pulled out (the card
//!   unbound) and put back: silence meanwhile, no hole in the audio track, the video complete,
//!   one reopen; SIGTERM ends each cleanly (`alsa_check::verify_push`). The aarch64 guest leaves it out: what it adds there (the
//!   ALSA ioctls, the capture timestamps) `alsa_scenario` proves already, and the minute it
//!   takes would count again in the slower emulated ARM guest, with the AAC encoder emulated
//!   too.
//!
//! A second test boots an arm64 Debian kernel (`qemu-system-aarch64 -M virt -cpu cortex-a57`)
//! with the aarch64 musl build from the cross route of `scripts/cross-build.sh` (the ABI check
//! that matters for the Pi: the same ioctls and structs on a 64-bit ARM kernel), and runs the
//! capture scenario only: H.264 from v4l2loopback, every frame arriving and decoding. It also
//! needs qemu-system-arm, gcc-aarch64-linux-gnu (v4l2loopback is cross-built) and the cross
//! tools (`scripts/cross-build.sh --setup` makes them).

mod alsa_check;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use support::{cross_cache, ffprobe_video, require_tools, set_up_cross_tools};

const CLIP_FRAMES: u64 = 90;

fn required_tools_present() -> bool {
    require_tools(
        &[
            "qemu-system-x86_64",
            "ffprobe",
            "make",
            "gcc",
            "apt-get",
            "dpkg-deb",
        ],
        "install qemu-system-x86 ffmpeg gcc make (Debian)",
    )
}

/// Builds the static campush and test helper for the guest, in their own target dir.
fn build_static(root: &Path) -> (PathBuf, PathBuf) {
    let target_dir = root.join("target/guest");
    let t = Instant::now();
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--bin",
            "campush",
            "--example",
            "v4l2_testbed",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // The guest checks behaviour, not speed: skip the release profile's slow LTO link.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .status()
        .expect("run cargo");
    assert!(status.success(), "static build for the guest failed");
    eprintln!("static build: {:.0} s", t.elapsed().as_secs_f64());
    let dir = target_dir.join("x86_64-unknown-linux-gnu/release");
    (dir.join("campush"), dir.join("examples/v4l2_testbed"))
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| format!("<{name}: {e}>"))
}

/// Frames ffprobe decodes from an FLV recording (None: not decodable / empty).
fn decoded_frames(flv: &Path) -> Option<u64> {
    let entries = "stream=nb_read_frames,codec_name,width,height";
    let text = ffprobe_video(flv, entries, "default=nw=1", &[]).stdout;
    if !text.contains("codec_name=h264") || !text.contains("width=320") {
        return None;
    }
    text.lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|n| n.trim().parse().ok())
}

/// campush's `alloc-stats:` line (printed at exit with `CAMPUSH_ALLOC_STATS=1`).
fn alloc_stats(campush_log: &str) -> String {
    campush_log
        .lines()
        .find(|l| l.starts_with("alloc-stats:"))
        .unwrap_or("no alloc-stats line")
        .to_owned()
}

/// Decoded frames of each recorded session that carried video, in order.
fn sessions(share: &Path) -> Vec<u64> {
    (1..=16)
        .map(|n| share.join(format!("capture-{n}.flv")))
        .take_while(|p| p.exists())
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 13).unwrap_or(false))
        .map(|p| decoded_frames(&p).unwrap_or(0))
        .collect()
}

fn run_guest(root: &Path, arch: &str, campush: &Path, testbed: &Path) -> PathBuf {
    let out = root.join(format!("target/guest-run-{arch}"));
    let t = Instant::now();
    let output = Command::new("bash")
        .arg(root.join("tests/guest/run.sh"))
        .args([
            arch.as_ref(),
            campush.as_os_str(),
            testbed.as_os_str(),
            out.as_os_str(),
        ])
        .output()
        .expect("run tests/guest/run.sh");
    eprintln!(
        "{arch} guest stage: {:.0} s\n{}",
        t.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "run.sh failed for {arch}");
    out.join("share")
}

#[test]
fn campush_streams_from_real_v4l2_drivers_in_a_qemu_guest() {
    if !required_tools_present() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (campush, testbed) = build_static(root);
    let share = run_guest(root, "x86_64", &campush, &testbed);
    let log = || {
        format!(
            "guest.log:\n{}\ncampush.log:\n{}\nrecord.log:\n{}",
            read(&share, "guest.log"),
            read(&share, "campush.log"),
            read(&share, "record.log")
        )
    };
    // (g) a microphone through campush run, pushed with the video, in sync: alone when the
    // guest ran that scenario alone (`CAMPUSH_GUEST_SCENARIO=mic`, see run.sh).
    let mic_pushes = || {
        for run in [alsa_check::MIC_SLOW, alsa_check::MIC_FAST] {
            let figures = alsa_check::verify_push(&share, &log(), run);
            eprintln!("microphone pushed end to end, {}: {figures:?}", run.name);
        }
    };
    if std::env::var("CAMPUSH_GUEST_SCENARIO").as_deref() == Ok("mic") {
        mic_pushes();
        assert_eq!(read(&share, "result").trim(), "PASS", "{}", log());
        return;
    }

    // (d) probe lists the three drivers, each for what it is.
    let probe = read(&share, "probe.txt");
    eprintln!("campush probe in the guest:\n{probe}");
    for needle in [
        "\"vivid\" (driver vivid",
        "capabilities: capture, single-planar, streaming",
        "YUYV (YUYV 4:2:2): 320x180 @",
        "\"campush-loopback\" (driver v4l2 loopback",
        "use: output only",
        "\"vicodec\" (driver vicodec",
        "capabilities: M2M, multi-planar, streaming",
        "FWHT (FWHT, compressed)",
        "video_gop_size (1..16, default 10)",
        "not an H.264 encoder",
        "libcamera cameras: no rpicam-vid or libcamera-vid on PATH",
        "auto would",
    ] {
        assert!(probe.contains(needle), "probe lacks {needle:?}:\n{probe}");
    }

    // (b) vicodec through the M2M source path, zero-copy and copying.
    let dmabuf = read(&share, "m2m-dmabuf.txt");
    let copy = read(&share, "m2m-copy.txt");
    eprintln!(
        "m2m (default): {}\nm2m (copy): {}",
        dmabuf
            .lines()
            .filter(|l| !l.starts_with("frame"))
            .collect::<Vec<_>>()
            .join("\n"),
        copy.lines()
            .filter(|l| !l.starts_with("frame"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        dmabuf.contains("m2m: PASS"),
        "m2m default transfer:\n{dmabuf}"
    );
    assert!(
        dmabuf.contains("m2m: reopened (open #2)"),
        "no reopen after the unplug:\n{dmabuf}"
    );
    assert!(copy.contains("m2m: PASS"), "m2m copy transfer:\n{copy}");
    assert!(copy.contains("zero_copy=Some(false)"), "{copy}");
    let padded = read(&share, "m2m-padded.txt");
    assert!(
        padded.contains("m2m: PASS"),
        "m2m into a padded encoder frame:\n{padded}"
    );

    // (a) + (c) H.264 from v4l2loopback: every frame before the loss, and the stream after it.
    let decoded = sessions(&share);
    eprintln!("recorded sessions with video, decoded frames each: {decoded:?}");
    assert!(
        decoded.len() >= 2,
        "expected video before and after the device loss: {decoded:?}\n{}",
        log()
    );
    assert_eq!(
        decoded[0],
        CLIP_FRAMES,
        "every frame of the first clip arrives and decodes\n{}",
        log()
    );
    let after: u64 = decoded[1..].iter().sum();
    assert!(
        after >= CLIP_FRAMES * 2 / 3,
        "the stream resumes after the loss ({after} frames)\n{}",
        log()
    );
    let campush_log = read(&share, "campush.log");
    // Not held to zero here: the span includes the device's loss and reopening.
    eprintln!(
        "x86_64 V4L2 capture with a device loss: {}",
        alloc_stats(&campush_log)
    );
    for needle in [
        "rejected a buffer reported completely full",
        "no frame for 2.0 s",
        "the V4L2 device delivers again",
        "campush exit code 0",
    ] {
        assert!(
            campush_log.contains(needle),
            "campush.log lacks {needle:?}\n{}",
            log()
        );
    }

    // (e) a board and one output, no camera app: auto finds the H.264 device, every frame.
    let auto_log = read(&share, "campush-auto.log");
    assert!(
        auto_log.contains(
            "auto: using v4l2:/dev/video10: /dev/video10 (\"campush-loopback\") emits H.264"
        ),
        "campush-auto.log:\n{auto_log}\n{}",
        log()
    );
    assert!(
        auto_log.contains("1920x1080 (the board's default) is not offered for H264")
            || auto_log.contains("when asked for 1920x1080 (the board's default): keeping it"),
        "the board's size, not offered, became the device's own:\n{auto_log}"
    );
    assert!(auto_log.contains("campush exit code 0"), "{auto_log}");

    // (f) sound from snd-aloop through campush's ALSA capture.
    alsa_check::verify(&share, &log());
    // (g) a microphone through campush run, pushed with the video, in sync.
    mic_pushes();
    assert_eq!(
        decoded_frames(&share.join("auto-1.flv")),
        Some(CLIP_FRAMES),
        "every frame of the clip arrives through auto and decodes\n{auto_log}\nrecord-auto.log:\n{}",
        read(&share, "record-auto.log")
    );
    assert_eq!(read(&share, "result").trim(), "PASS", "{}", log());
}

fn aarch64_tools_present(root: &Path) -> bool {
    set_up_cross_tools(root);
    let zigbuild = cross_cache().join("venv/bin/cargo-zigbuild");
    require_tools(
        &[
            "qemu-system-aarch64",
            "aarch64-linux-gnu-gcc",
            "ffprobe",
            "make",
            "apt-get",
            "dpkg-deb",
            "/usr/bin/cargo",
            zigbuild.to_str().expect("a UTF-8 cache path"),
        ],
        "install qemu-system-arm gcc-aarch64-linux-gnu ffmpeg make (Debian); \
         scripts/cross-build.sh --setup makes cargo-zigbuild",
    )
}

/// Builds the static aarch64 campush and test helper through the cross route of
/// scripts/cross-build.sh: Debian's rustc with -Zbuild-std, zig as C compiler and linker.
fn build_aarch64(root: &Path) -> (PathBuf, PathBuf) {
    const TARGET: &str = "aarch64-unknown-linux-musl";
    let target_dir = std::env::var_os("CAMPUSH_CROSS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/cross"));
    let venv_bin = cross_cache().join("venv/bin");
    let t = Instant::now();
    let mut cmd = Command::new("/usr/bin/cargo");
    for var in [
        "RUSTC",
        "RUSTDOC",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_MANIFEST_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .current_dir(root)
        .env("PATH", format!("{}:/usr/bin:/bin", venv_bin.display()))
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
            "-C link-self-contained=no",
        )
        .args([
            "zigbuild",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "-Zbuild-std=std,panic_abort",
            "--bin",
            "campush",
            "--example",
            "v4l2_testbed",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run cargo zigbuild");
    assert!(status.success(), "aarch64 cross build failed");
    eprintln!("aarch64 cross build: {:.0} s", t.elapsed().as_secs_f64());
    let dir = target_dir.join(TARGET).join("release");
    (dir.join("campush"), dir.join("examples/v4l2_testbed"))
}

#[test]
fn campush_captures_h264_in_an_aarch64_guest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !aarch64_tools_present(root) {
        return;
    }
    let t = Instant::now();
    let (campush, testbed) = build_aarch64(root);
    let share = run_guest(root, "aarch64", &campush, &testbed);
    let log = || {
        format!(
            "guest.log:\n{}\ncampush.log:\n{}\nrecord.log:\n{}\nfeed1.log:\n{}",
            read(&share, "guest.log"),
            read(&share, "campush.log"),
            read(&share, "record.log"),
            read(&share, "feed1.log")
        )
    };
    let guest = read(&share, "guest.log");
    eprintln!(
        "guest.log:\n{guest}\nrecord.log:\n{}",
        read(&share, "record.log")
    );
    assert!(
        guest.contains("aarch64; scenario capture"),
        "not an aarch64 guest\n{}",
        log()
    );
    let probe = read(&share, "probe.txt");
    assert!(
        probe.contains("\"campush-loopback\" (driver v4l2 loopback"),
        "probe lacks the loopback device:\n{probe}"
    );
    let decoded = sessions(&share);
    eprintln!("recorded sessions with video, decoded frames each: {decoded:?}");
    assert_eq!(
        decoded.first().copied(),
        Some(CLIP_FRAMES),
        "every frame of the clip arrives and decodes\n{}",
        log()
    );
    let campush_log = read(&share, "campush.log");
    assert!(
        campush_log.contains("campush exit code 0"),
        "campush did not stop cleanly\n{}",
        log()
    );
    // The V4L2 capture path allocates nothing per frame either: from the 30th frame sent to the
    // last, on the target architecture, against the real driver.
    let stats = alloc_stats(&campush_log);
    eprintln!("aarch64 V4L2 capture: {stats}");
    assert!(
        stats.contains(" allocs_steady=0 ") && !stats.contains("frames=0 "),
        "{stats}\n{}",
        log()
    );
    alsa_check::verify(&share, &log());
    assert_eq!(read(&share, "result").trim(), "PASS", "{}", log());
    eprintln!("aarch64 guest test: {:.0} s", t.elapsed().as_secs_f64());
}
