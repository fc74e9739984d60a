//! Helpers that run inside the test guest next to campush (see `tests/guest/`), one static
//! binary with subcommands:
//!
//! - `record ADDR OUT MARKER`: an independent RTMP server (scuffle-rtmp, not campush's code)
//!   on ADDR, writing every audio and video message of the Nth connection as an FLV tag to
//!   OUT-N.flv (flushed per tag; the header announces both tracks) and creating MARKER.N when that publish starts. Connections are taken one
//!   after the other: scuffle-rtmp closes a publisher that sends nothing for 2.5 s, which a
//!   camera outage longer than that causes, and campush then reconnects;
//! - `feed DEVICE CLIP FPS GO_FILE [HOLD_MS [LOOPS TIMES]]`: a v4l2loopback writer: sets H.264
//!   on the device's OUTPUT side, writes the clip's SPS/PPS as a buffer of their own (as the
//!   legacy Pi camera does) every 100 ms until GO_FILE exists, then every access unit of the
//!   clip at FPS (LOOPS times over, SPS/PPS alone before each pass), then keeps the device open
//!   for HOLD_MS and closes it. With TIMES: one line `n before_us after_us` per access unit
//!   written, CLOCK_MONOTONIC just before and after its `write` (v4l2loopback stamps the buffer
//!   within the call);
//! - `m2m CAMERA ENCODER FRAMES GOP [UNPLUG_AFTER]` (size `M2M_SIZE=WxH@FPS`): drives the `v4l2-m2m` source's own code
//!   path (campush's `V4l2Source`, same negotiation, controls, buffers, timestamps and reopen
//!   logic) with FWHT instead of H.264 as the coded format, so vicodec can stand in for the Pi
//!   encoder; prints one line per frame and a verdict; optionally unbinds the vivid platform
//!   device after UNPLUG_AFTER frames and binds it again 1.5 s later;
//! - `alsa-play NAME FORMAT CHANNELS SECONDS [POSITIONS [STOP_FILE]]`: an ALSA player (campush's own `alsa`
//!   module, the playback direction) writing a 1 kHz sine at a quarter of full scale with a
//!   click (24 samples at +0.9 of full scale) at the start of every second of samples, FORMAT
//!   `S16_LE` or `S32_LE`, at 48 kHz, into NAME (e.g. `hw:Loopback,0`). With POSITIONS: after
//!   every write, one line `frames time_us`, the hardware pointer and its CLOCK_MONOTONIC time
//!   (`alsa::Pcm::position`), from which the host tells when each click sounded. With
//!   STOP_FILE: stops early once that file exists (checked before every period written), so a
//!   caller can play for as long as something else takes, within SECONDS;
//! - `alsa-capture NAME FORMAT CHANNELS SECONDS OUT [reopen]`: captures NAME through
//!   `campush::audio::alsa_input` (the `PcmInput` the audio pipeline reads) for SECONDS,
//!   writing the raw samples to OUT.raw and one line `frames time_us` per read to OUT.times,
//!   and a summary line `alsa-capture: ...` with the set-up, overruns and the heap allocations
//!   made by the reads after the first. With `reopen`: after the device is gone, opens it
//!   again every 100 ms (for at most 20 s) and captures one more second;
//! - `alsa-rate-shift CARD_ID VALUE`: sets snd-aloop's "PCM Rate Shift 100000" control of
//!   both cables of substream 0 (100000 = nominal, 100100 = the loopback runs 1000 ppm off);
//! - `exit CODE`: leaves the guest through qemu's isa-debug-exit port (x86), else powers off.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use campush::clock::monotonic_us;
use campush::source::bytestream::ByteStream;
use campush::source::v4l2::{Target, V4l2Source};
use campush::status::{SharedStatus, Status};
use campush::stop::Stop;
use campush::v4l2::device::{BufType, Device, Format};
use campush::v4l2::{FourCc, V4l2Settings};

#[global_allocator]
static ALLOC: campush::alloc::Counting = campush::alloc::Counting;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("record") if args.len() == 4 => record(&args[1], &args[2], &args[3]),
        Some("feed") if args.len() >= 5 => feed(
            &args[1],
            &args[2],
            args[3].parse().expect("FPS"),
            &args[4],
            args.get(5).map_or(0, |h| h.parse().expect("HOLD_MS")),
            args.get(6).map_or(1, |l| l.parse().expect("LOOPS")),
            args.get(7).map(String::as_str),
        ),
        Some("m2m") if args.len() >= 5 => m2m(
            &args[1],
            &args[2],
            args[3].parse().expect("FRAMES"),
            args[4].parse().expect("GOP"),
            args.get(5).map(|u| u.parse().expect("UNPLUG_AFTER")),
        ),
        Some("alsa-play") if (5..=7).contains(&args.len()) => alsa_play(
            &args[1],
            &args[2],
            args[3].parse().expect("CHANNELS"),
            args[4].parse().expect("SECONDS"),
            args.get(5).map(String::as_str),
            args.get(6).map(String::as_str),
        ),
        Some("alsa-capture") if args.len() >= 6 => alsa_capture(
            &args[1],
            &args[2],
            args[3].parse().expect("CHANNELS"),
            args[4].parse().expect("SECONDS"),
            &args[5],
            args.get(6).is_some_and(|a| a == "reopen"),
        ),
        Some("alsa-rate-shift") if args.len() == 3 => {
            alsa_rate_shift(&args[1], args[2].parse().expect("VALUE"))
        }
        Some("exit") if args.len() == 2 => guest_exit(args[1].parse().expect("CODE")),
        _ => {
            eprintln!("usage: v4l2_testbed record|feed|m2m|exit ... (see the source)");
            2
        }
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// record

struct FlvWriter {
    file: std::fs::File,
    tags: u64,
    audio_tags: u64,
}

impl FlvWriter {
    fn tag(&mut self, kind: u8, timestamp: u32, body: &[u8]) -> std::io::Result<()> {
        let len = body.len() as u32;
        let mut h = [0u8; 11];
        h[0] = kind;
        h[1..4].copy_from_slice(&len.to_be_bytes()[1..]);
        h[4..7].copy_from_slice(&timestamp.to_be_bytes()[1..]);
        h[7] = (timestamp >> 24) as u8;
        self.file.write_all(&h)?;
        self.file.write_all(body)?;
        self.file.write_all(&(len + 11).to_be_bytes())?;
        self.file.flush()?;
        if kind == 8 {
            self.audio_tags += 1;
        } else {
            self.tags += 1;
        }
        Ok(())
    }
}

struct Recorder {
    out: Arc<Mutex<FlvWriter>>,
    marker: PathBuf,
}

impl scuffle_rtmp::session::server::SessionHandler for Recorder {
    async fn on_data(
        &mut self,
        _stream_id: u32,
        data: scuffle_rtmp::session::server::SessionData,
    ) -> Result<(), scuffle_rtmp::session::server::ServerSessionError> {
        use scuffle_rtmp::session::server::SessionData;
        let (kind, timestamp, data) = match data {
            SessionData::Video { timestamp, data } => (9, timestamp, data),
            SessionData::Audio { timestamp, data } => (8, timestamp, data),
            _ => return Ok(()),
        };
        let mut w = self.out.lock().unwrap();
        if let Err(e) = w.tag(kind, timestamp, &data) {
            eprintln!("record: write: {e}");
        }
        Ok(())
    }

    async fn on_publish(
        &mut self,
        _stream_id: u32,
        app: &str,
        name: &str,
    ) -> Result<(), scuffle_rtmp::session::server::ServerSessionError> {
        eprintln!("record: publish {app}/{name}");
        let _ = std::fs::write(&self.marker, format!("{app}/{name}\n"));
        Ok(())
    }

    async fn on_unpublish(
        &mut self,
        _stream_id: u32,
    ) -> Result<(), scuffle_rtmp::session::server::ServerSessionError> {
        eprintln!("record: unpublish");
        Ok(())
    }
}

fn record(addr: &str, out: &str, marker: &str) -> i32 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("record: listening on {addr}");
        // Bounded by the test, which kills us when it is done.
        for n in 1..=16 {
            let (stream, _) = listener.accept().await?;
            let mut file = std::fs::File::create(format!("{out}-{n}.flv"))?;
            // FLV header: version 1, audio and video (0x05), header size 9, PreviousTagSize0.
            file.write_all(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")?;
            let flv = Arc::new(Mutex::new(FlvWriter {
                file,
                tags: 0,
                audio_tags: 0,
            }));
            let handler = Recorder {
                out: Arc::clone(&flv),
                marker: PathBuf::from(format!("{marker}.{n}")),
            };
            let r = scuffle_rtmp::ServerSession::new(stream, handler)
                .run()
                .await;
            let (tags, audio) = {
                let w = flv.lock().unwrap();
                (w.tags, w.audio_tags)
            };
            eprintln!(
                "record: session {n} ended ({r:?}), {tags} video tags and {audio} audio tags written"
            );
        }
        Ok::<(), std::io::Error>(())
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("record: {e}");
            1
        }
    }
}

// ---------------------------------------------------------------------------------------------
// feed

/// Splits the parameter-set NAL units (SPS, PPS) off the front of an access unit.
fn split_parameter_sets(unit: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= unit.len() {
        if unit[i] == 0 && unit[i + 1] == 0 && unit[i + 2] == 1 {
            let begin = if i > 0 && unit[i - 1] == 0 { i - 1 } else { i };
            starts.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut params = Vec::new();
    let mut rest = Vec::new();
    for (n, &(begin, payload)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(unit.len(), |s| s.0);
        let nal_type = unit.get(payload).map_or(0, |b| b & 0x1f);
        if matches!(nal_type, 7 | 8) {
            params.extend_from_slice(&unit[begin..end]);
        } else if nal_type != 9 {
            rest.extend_from_slice(&unit[begin..end]);
        }
    }
    (params, rest)
}

fn feed(
    device: &str,
    clip: &str,
    fps: f64,
    go: &str,
    hold_ms: u64,
    loops: usize,
    times_out: Option<&str>,
) -> i32 {
    let mut units = Vec::new();
    let file = std::fs::File::open(clip).expect("open the clip");
    let mut stream = ByteStream::new(file, clip.to_string(), 1 << 20);
    while let Some(u) = stream.next_unit().expect("read the clip") {
        units.push(u.to_vec());
    }
    let (params, first) = split_parameter_sets(&units[0]);
    assert!(!params.is_empty(), "the clip starts without SPS/PPS");
    units[0] = first;

    let dev = Device::open(Path::new(device)).expect("open the loopback device");
    let mut fmt = Format::request(FourCc::H264, 320, 240);
    fmt.planes[0].sizeimage = 512 * 1024;
    match dev.set_format(BufType::OUTPUT, &fmt) {
        Ok(f) => eprintln!("feed: {device}: output format {f}"),
        Err(e) => {
            eprintln!("feed: {device}: S_FMT: {e}");
            return 1;
        }
    }
    let write = |buf: &[u8]| -> bool {
        // SAFETY: writing from a live slice to an fd we own.
        let n = unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&dev),
                buf.as_ptr().cast(),
                buf.len(),
            )
        };
        if n != buf.len() as isize {
            eprintln!("feed: write: {}", std::io::Error::last_os_error());
            return false;
        }
        true
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut primes = 0;
    while !Path::new(go).exists() {
        if Instant::now() > deadline {
            eprintln!("feed: nobody said go within 60 s");
            return 1;
        }
        if !write(&params) {
            return 1;
        }
        primes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "feed: primed with {primes} parameter-set buffers; writing {} access units",
        units.len()
    );
    // The clip proper: SPS/PPS alone, then every access unit, paced; as often as asked.
    let mut times: Vec<(u64, u64)> = Vec::with_capacity(units.len() * loops);
    let t0 = Instant::now();
    let mut n = 0;
    for _ in 0..loops {
        if !write(&params) {
            return 1;
        }
        for unit in &units {
            let due = t0 + Duration::from_secs_f64((n + 1) as f64 / fps);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let before = monotonic_us();
            if !write(unit) {
                return 1;
            }
            times.push((before, monotonic_us()));
            n += 1;
        }
    }
    eprintln!(
        "feed: wrote {n} access units in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    if let Some(out) = times_out {
        let mut text = String::new();
        for (i, (before, after)) in times.iter().enumerate() {
            text.push_str(&format!("{i} {before} {after}\n"));
        }
        std::fs::write(out, text).expect("write the feed's times");
    }
    std::thread::sleep(Duration::from_millis(hold_ms));
    0
}

// ---------------------------------------------------------------------------------------------
// m2m

/// FWHT frame header flags (big-endian, offset 20); bit 10 = I-frame (`V4L2_FWHT_FL_I_FRAME`).
fn fwht_is_iframe(frame: &[u8]) -> Option<bool> {
    if frame.len() < 44 || frame[..8] != [0x4f, 0x4f, 0x4f, 0x4f, 0xff, 0xff, 0xff, 0xff] {
        return None;
    }
    let flags = u32::from_be_bytes(frame[20..24].try_into().unwrap());
    Some(flags & (1 << 10) != 0)
}

fn sysfs_write(path: &str, value: &str) -> bool {
    match std::fs::write(path, value) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("m2m: {path} <- {value}: {e}");
            false
        }
    }
}

fn m2m(camera: &str, encoder: &str, frames: u64, gop: u32, unplug_after: Option<u64>) -> i32 {
    // As in campush itself: one destination that streams, and the source's own part of the
    // shared status, which the V4L2 source drives while the device comes and goes.
    let status = SharedStatus::new();
    let destinations = status.set_destinations(1);
    destinations[0].set(Status::Streaming);
    status.set_source(Status::Streaming);
    // WIDTHxHEIGHT@FPS from M2M_SIZE; 640x480@25 by default (vicodec keeps that size, so
    // the layouts match and DMABUF can be used; 640x360 makes vicodec pad to 368 lines).
    let size = std::env::var("M2M_SIZE").unwrap_or_else(|_| "640x480@25".into());
    let (dims, fps) = size.split_once('@').expect("M2M_SIZE = WxH@FPS");
    let (w, h) = dims.split_once('x').expect("M2M_SIZE = WxH@FPS");
    let settings = V4l2Settings {
        width: Some(w.parse().expect("width")),
        height: Some(h.parse().expect("height")),
        fps: Some(fps.parse().expect("fps")),
        gop: Some(gop),
        ..V4l2Settings::default()
    };
    let target = Target::M2m {
        camera: camera.into(),
        encoder: Some(encoder.into()),
        coded: FourCc::FWHT,
    };
    let mut source = match V4l2Source::new(target, settings, status.clone(), Stop::new()) {
        Ok(s) => s,
        Err(e) => {
            println!("m2m: FAIL open: {e}");
            return 1;
        }
    };
    println!(
        "m2m: zero_copy={:?} can_force_keyframes={}",
        source.zero_copy(),
        source.can_force_keyframes()
    );
    let mut failures = Vec::new();
    let mut last_ts = 0u64;
    let mut opens_seen = source.opens();
    let mut since_open = 0u64; // frames since the (re)open
    let mut iframes = 0u64;
    let mut gop_ok = true;
    let mut force_checked = false;
    let saw_waiting = Arc::new(AtomicBool::new(false));
    let mut rebind: Option<std::thread::JoinHandle<()>> = None;
    let started = Instant::now();
    let mut n = 0u64;
    while n < frames {
        if started.elapsed() > Duration::from_secs(90) {
            failures.push(format!("only {n} of {frames} frames within 90 s"));
            break;
        }
        let mut iframe = None;
        let info = match source.next_frame_with(&mut |bytes| iframe = fwht_is_iframe(bytes)) {
            Ok(Some(i)) => i,
            Ok(None) => {
                failures.push("the source ended (stopped)".to_string());
                break;
            }
            Err(e) => {
                failures.push(format!("source error: {e}"));
                break;
            }
        };
        let now = monotonic_us();
        if source.opens() != opens_seen {
            opens_seen = source.opens();
            since_open = 0;
            println!("m2m: reopened (open #{opens_seen})");
        }
        let Some(is_i) = iframe else {
            failures.push(format!("frame {n}: not an FWHT frame ({} bytes)", info.len));
            n += 1;
            continue;
        };
        // vicodec starts every context with an I-frame, then one every `gop` frames.
        let expect_i = since_open % gop as u64 == 0;
        if is_i != expect_i {
            gop_ok = false;
        }
        iframes += is_i as u64;
        if info.timestamp_us <= last_ts {
            failures.push(format!(
                "frame {n}: timestamp {} after {last_ts}",
                info.timestamp_us
            ));
        }
        // Capture time, not some other clock: within a few seconds of now. (vivid stamps a frame
        // with its scheduled capture time, which can be a few ms after the dequeue; under
        // emulation on a loaded machine, raw frames can wait over a second in the encoder's
        // queue.) Another clock would be far off: the realtime clock by decades, a clock
        // started with the stream by the guest's whole uptime before the stream began.
        if now.abs_diff(info.timestamp_us) > 5_000_000 {
            failures.push(format!(
                "frame {n}: timestamp {} is {} us from now: not the capture time",
                info.timestamp_us,
                now as i64 - info.timestamp_us as i64
            ));
        }
        println!(
            "frame {n} seq {} len {} ts {} iframe {is_i} stats {:?}",
            info.sequence,
            info.len,
            info.timestamp_us,
            source.m2m_stats()
        );
        last_ts = info.timestamp_us;
        since_open += 1;
        n += 1;
        if n == 5 && !force_checked {
            force_checked = true;
            source.force_keyframe();
            if source.can_force_keyframes() {
                println!("m2m: forced a keyframe after frame 4");
            } else {
                println!("m2m: force_key_frame: the encoder has no such control (not checked)");
            }
        }
        if Some(n) == unplug_after {
            println!("m2m: unplugging vivid.0");
            if !sysfs_write("/sys/bus/platform/drivers/vivid/unbind", "vivid.0") {
                failures.push("cannot unbind vivid".into());
                continue;
            }
            let status = status.clone();
            let saw = Arc::clone(&saw_waiting);
            rebind = Some(std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < until {
                    if status.get() == Status::WaitingForSource {
                        saw.store(true, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                println!("m2m: plugging vivid.0 back in");
                sysfs_write("/sys/bus/platform/drivers/vivid/bind", "vivid.0");
            }));
        }
    }
    if let Some(t) = rebind {
        let _ = t.join();
        if !saw_waiting.load(Ordering::Relaxed) {
            failures.push("the status never showed WaitingForSource while unplugged".into());
        }
        if source.opens() < 2 {
            failures.push("the source did not reopen after the unplug".into());
        }
        if status.get() != Status::Streaming {
            failures.push(format!("status after recovery: {}", status.get()));
        }
    }
    if !gop_ok {
        failures.push(format!("I-frames not every {gop} frames"));
    }
    println!(
        "m2m: {n} frames, {iframes} I-frames, {} opens, stats {:?}, zero_copy={:?}",
        source.opens(),
        source.m2m_stats(),
        source.zero_copy()
    );
    if failures.is_empty() {
        println!("m2m: PASS");
        0
    } else {
        for f in &failures {
            println!("m2m: FAIL {f}");
        }
        1
    }
}

// ---------------------------------------------------------------------------------------------
// ALSA

const ALSA_RATE: u32 = 48_000;
/// The test tone, Hz.
const TONE_HZ: f64 = 1_000.0;
/// Samples of each click, at the start of every second of samples.
const CLICK_SAMPLES: u64 = 24;

fn alsa_format(name: &str) -> campush::alsa::Format {
    match name {
        "S16_LE" => campush::alsa::Format::S16Le,
        "S32_LE" => campush::alsa::Format::S32Le,
        other => panic!("format {other}: S16_LE or S32_LE"),
    }
}

fn alsa_formats(f: campush::alsa::Format) -> &'static [campush::alsa::Format] {
    match f {
        campush::alsa::Format::S16Le => &[campush::alsa::Format::S16Le],
        campush::alsa::Format::S32Le => &[campush::alsa::Format::S32Le],
    }
}

/// Sample `n` of the test signal, in [-1, 1].
fn test_signal(n: u64) -> f64 {
    if n % u64::from(ALSA_RATE) < CLICK_SAMPLES {
        0.9
    } else {
        0.25 * (2.0 * std::f64::consts::PI * TONE_HZ * n as f64 / f64::from(ALSA_RATE)).sin()
    }
}

fn alsa_play(
    name: &str,
    format: &str,
    channels: u32,
    seconds: f64,
    positions_out: Option<&str>,
    stop: Option<&str>,
) -> i32 {
    use campush::alsa::{device, Direction, Pcm, Wish};
    let root = Path::new("/");
    let format = alsa_format(format);
    let node = match device::DeviceName::parse(name)
        .map_err(campush::alsa::AlsaError::from)
        .and_then(|n| device::resolve(root, &n, Direction::Playback))
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("alsa-play: {e}");
            return 1;
        }
    };
    let wish = Wish {
        rate: ALSA_RATE,
        channels,
        formats: alsa_formats(format),
        // Long periods: a starved emulated guest wakes the player late.
        period_us: 50_000,
    };
    let mut pcm = match Pcm::open(&node, Direction::Playback, &wish) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("alsa-play: {e}");
            return 1;
        }
    };
    let setup = pcm.setup();
    eprintln!("alsa-play: {} {setup:?}", node.display());
    let total = (seconds * f64::from(setup.rate)) as u64;
    let chunk = setup.period_frames as usize;
    let frame_bytes = setup.frame_bytes();
    let mut buf = vec![0u8; chunk * frame_bytes];
    let mut n = 0u64;
    let mut underruns = 0;
    let mut positions = Vec::with_capacity(total as usize / chunk + 16);
    while n < total {
        if stop.is_some_and(|f| Path::new(f).exists()) {
            eprintln!("alsa-play: told to stop");
            break;
        }
        let frames = chunk.min((total - n) as usize);
        for i in 0..frames {
            let v = test_signal(n + i as u64);
            for c in 0..setup.channels as usize {
                let at = i * frame_bytes + c * format.bytes();
                match format {
                    campush::alsa::Format::S16Le => buf[at..at + 2]
                        .copy_from_slice(&((v * f64::from(i16::MAX)) as i16).to_le_bytes()),
                    campush::alsa::Format::S32Le => buf[at..at + 4]
                        .copy_from_slice(&((v * f64::from(i32::MAX)) as i32).to_le_bytes()),
                }
            }
        }
        let mut off = 0;
        while off < frames {
            match pcm.write(
                &buf[off * frame_bytes..frames * frame_bytes],
                Duration::from_secs(2),
            ) {
                Ok(w) => off += w,
                Err(campush::alsa::AlsaError::Xrun) => underruns += 1,
                Err(e) => {
                    eprintln!("alsa-play: {e} after {n} frames");
                    return 1;
                }
            }
        }
        n += frames as u64;
        if positions_out.is_some() && positions.len() < positions.capacity() {
            match pcm.position() {
                Ok(p) => positions.push(p),
                Err(e) => eprintln!("alsa-play: position: {e}"),
            }
        }
    }
    eprintln!("alsa-play: {n} frames written, {underruns} underruns");
    if let Some(out) = positions_out {
        let mut text = String::new();
        for p in &positions {
            text.push_str(&format!("{} {}\n", p.frames, p.time_us));
        }
        std::fs::write(out, text).expect("write the player's positions");
    }
    0
}

fn alsa_capture(
    name: &str,
    format: &str,
    channels: u8,
    seconds: f64,
    out: &str,
    reopen: bool,
) -> i32 {
    use campush::audio::alsa_input;
    use campush::audio::pcm::{PcmError, PcmInput};
    let root = Path::new("/");
    let want = alsa_format(format);
    let name = match campush::alsa::DeviceName::parse(name) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("alsa-capture: {e}");
            return 2;
        }
    };
    let mut input = match alsa_input::open(root, &name, ALSA_RATE, channels) {
        Ok(i) => i,
        Err(e) => {
            println!("alsa-capture: open failed: {e}");
            return 1;
        }
    };
    let params = input.params();
    let got = match params.format {
        campush::audio::pcm::SampleFormat::S16Le => campush::alsa::Format::S16Le,
        campush::audio::pcm::SampleFormat::S32Le => campush::alsa::Format::S32Le,
    };
    if got != want {
        println!("alsa-capture: FAIL the device gave {got:?}, the player set {want:?}");
    }
    let mut raw = std::fs::File::create(format!("{out}.raw")).expect("create OUT.raw");
    let mut buf = vec![0u8; params.period_frames as usize * 4 * params.frame_bytes()];
    let mut times: Vec<(usize, u64)> = Vec::with_capacity(100_000);
    let total = (seconds * f64::from(params.rate)) as usize;
    let mut frames = 0usize;
    let mut overruns = 0u64;
    let mut allocs_before = None;
    let mut result = 0;
    let started = Instant::now();
    while frames < total {
        match input.read(&mut buf, Duration::from_secs(2)) {
            Ok(r) => {
                raw.write_all(&buf[..r.frames * params.frame_bytes()])
                    .expect("write OUT.raw");
                if times.len() < times.capacity() {
                    times.push((r.frames, r.time_us));
                }
                frames += r.frames;
                if allocs_before.is_none() {
                    allocs_before = Some(campush::alloc::allocations());
                }
            }
            Err(PcmError::Overrun) => overruns += 1,
            Err(PcmError::Gone(e)) => {
                let at = started.elapsed().as_secs_f64();
                println!("alsa-capture: gone after {frames} frames ({at:.1} s): {e}");
                drop(input);
                if !reopen {
                    result = 1;
                    break;
                }
                let t = Instant::now();
                let mut again = None;
                while t.elapsed() < Duration::from_secs(20) {
                    match alsa_input::open(root, &name, ALSA_RATE, channels) {
                        Ok(i) => {
                            again = Some(i);
                            break;
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
                let Some(mut i) = again else {
                    println!("alsa-capture: FAIL no reopen within 20 s");
                    return 1;
                };
                println!(
                    "alsa-capture: reopened after {:.1} s: {}",
                    t.elapsed().as_secs_f64(),
                    i.node().display()
                );
                let mut more = 0;
                while more < params.rate as usize {
                    match i.read(&mut buf, Duration::from_secs(2)) {
                        Ok(r) => more += r.frames,
                        Err(e) => {
                            println!("alsa-capture: FAIL after the reopen: {e}");
                            return 1;
                        }
                    }
                }
                println!("alsa-capture: read {more} frames after the reopen");
                return 0;
            }
            Err(e) => {
                println!("alsa-capture: FAIL {e} after {frames} frames");
                result = 1;
                break;
            }
        }
    }
    let allocs = allocs_before.map_or(0, |b| campush::alloc::allocations() - b);
    let mut text = String::new();
    for (f, t) in &times {
        text.push_str(&format!("{f} {t}\n"));
    }
    std::fs::write(format!("{out}.times"), text).expect("write OUT.times");
    println!(
        "alsa-capture: {params:?} reads={} frames={frames} overruns={overruns} \
         allocs_after_first_read={allocs} now_us={}",
        times.len(),
        monotonic_us()
    );
    result
}

fn alsa_rate_shift(card_id: &str, value: i64) -> i32 {
    use campush::alsa::{control, device};
    let root = Path::new("/");
    let name = match device::DeviceName::parse(&format!("hw:{card_id}")) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("alsa-rate-shift: {e}");
            return 2;
        }
    };
    let card = match device::card_index(root, &name) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("alsa-rate-shift: {e}");
            return 1;
        }
    };
    let node = device::control_node(root, card);
    for dev in 0..2 {
        let set =
            control::Control::open(&node, control::Iface::Pcm, "PCM Rate Shift 100000", dev, 0)
                .and_then(|mut c| {
                    c.set(value)?;
                    c.get()
                });
        match set {
            Ok(v) => println!("alsa-rate-shift: device {dev} substream 0 = {v}"),
            Err(e) => {
                eprintln!("alsa-rate-shift: {}: {e}", node.display());
                return 1;
            }
        }
    }
    0
}

// ---------------------------------------------------------------------------------------------
// exit

fn guest_exit(code: u32) -> i32 {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ioperm grants this process the isa-debug-exit port; the `out` writes to it and
    // qemu exits with (code << 1) | 1. Without the device the write is ignored.
    unsafe {
        if libc::ioperm(0xf4, 4, 1) == 0 {
            std::arch::asm!("out dx, eax", in("dx") 0xf4u16, in("eax") code);
        }
    }
    let _ = code;
    // SAFETY: powering off is what this subcommand is for (run as init's child, as root).
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    1
}
