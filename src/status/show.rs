//! `campush status`: the status file, summarised for a person on ssh, and an exit code for
//! scripts.
//!
//! Owns: the summary's wording and the command's exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | streaming (every destination) |
//! | 1 | campush runs but is not streaming (starting, connecting, waiting for the camera, an error), or it stopped |
//! | 2 | the status file is stale: not rewritten for [`STALE_AFTER`] (campush is not running, or hangs) |
//! | 3 | no status file: campush is not running, or the file is turned off (`[status] file = ""`) |
//! | 4 | the file cannot be read or is not a campush status file |
//!
//! Invariants: reads the file once, never writes; any content (a foreign or truncated file)
//! gives a message and code 4, never a panic.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::json::{self, Value};

pub const STREAMING: u8 = 0;
pub const NOT_STREAMING: u8 = 1;
pub const STALE: u8 = 2;
pub const NO_FILE: u8 = 3;
pub const UNREADABLE: u8 = 4;

/// The most `campush status` reads of a status file (campush writes a few kilobytes). Only a
/// regular file is read: `/dev/zero` or a FIFO given as the file is refused, not read forever.
pub const STATUS_FILE_LIMIT: usize = 1024 * 1024;

/// The status file is rewritten every 5 s: after this long without a write, nobody writes it.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

/// What `campush status` prints, on standard output (`code` 0 to 2) or standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub text: String,
    pub code: u8,
}

/// Reads the status file at `path` (its age from its modification time, against `now`) and
/// summarises it.
pub fn show(path: &Path, now: SystemTime) -> Shown {
    let text = match crate::small_file::read_to_string(path, STATUS_FILE_LIMIT) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Shown {
                text: format!(
                    "no status file at {}: campush is not running (or writes its status \
                     elsewhere: campush status FILE)\n",
                    path.display()
                ),
                code: NO_FILE,
            }
        }
        Err(e) => {
            return Shown {
                text: format!("cannot read the status file {}: {e}\n", path.display()),
                code: UNREADABLE,
            }
        }
    };
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|written| now.duration_since(written).ok());
    match summarize(&text, age) {
        Ok(shown) => shown,
        Err(why) => Shown {
            text: format!("{} is not a campush status file: {why}\n", path.display()),
            code: UNREADABLE,
        },
    }
}

/// The summary of a status file's contents, written `age` ago (if known).
pub fn summarize(text: &str, age: Option<Duration>) -> Result<Shown, String> {
    let v = json::parse(text).map_err(|e| e.to_string())?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or("it has no \"status\"")?;
    let number = |key: &str| v.get(key).and_then(Value::as_f64);
    let count = |key: &str| number(key).map_or("?".to_owned(), |n| format!("{n:.0}"));
    let mut out = format!("campush: {}", words(status));
    if let Some(up) = number("uptime_s") {
        out += &format!(", up {}", duration(up));
    }
    let stale = age.filter(|a| *a >= STALE_AFTER);
    if let Some(a) = stale {
        out += &format!(
            "\n  STALE: the status file was last written {} ago; campush is not running or hangs",
            duration(a.as_secs_f64())
        );
    }
    out += "\n";
    let line = |out: &mut String, name: &str, text: &str| {
        *out += &format!("  {name:<12}{text}\n");
    };
    if let Some(kbps) = number("bitrate_kbps") {
        let encoder = number("encoder_bitrate_kbps")
            .map(|e| format!(" (encoder at {e:.0} kbit/s, adaptive)"))
            .unwrap_or_default();
        line(&mut out, "bitrate", &format!("{kbps:.0} kbit/s{encoder}"));
    }
    line(
        &mut out,
        "frames",
        &format!(
            "{} in, {} sent, {} dropped",
            count("frames_in"),
            count("frames_sent"),
            count("frames_dropped")
        ),
    );
    let mut reconnects = format!("{} reconnects", count("reconnects"));
    if let Some(restarts) = number("source_restarts").filter(|n| *n > 0.0) {
        reconnects += &format!(", {restarts:.0} source restarts");
    }
    line(&mut out, "network", &reconnects);
    for d in v
        .get("destinations")
        .and_then(Value::as_array)
        .unwrap_or_default()
    {
        let name = d.get("destination").and_then(Value::as_str).unwrap_or("?");
        let state = d.get("status").and_then(Value::as_str).unwrap_or("?");
        let again = d.get("reconnects").and_then(Value::as_f64).unwrap_or(0.0);
        line(
            &mut out,
            "destination",
            &format!(
                "{name}: {}, {again:.0} reconnects{}",
                words(state),
                backlog(d)
            ),
        );
    }
    if let Some(mic) = v.get("audio").and_then(microphone) {
        line(&mut out, "sound", &mic);
    }
    if let Some(board) = v.get("health").and_then(board) {
        line(&mut out, "board", &board);
    }
    if let Some(e) = v.get("last_error").and_then(Value::as_str) {
        line(&mut out, "last error", e);
    }
    let code = if stale.is_some() {
        STALE
    } else if status == "streaming" {
        STREAMING
    } else {
        NOT_STREAMING
    };
    Ok(Shown { text: out, code })
}

/// `alsa:hw:1,0 capturing, drift +12.3 ppm, offset -0.4 ms, 2 overruns, 1 reopen` for the
/// status file's `"audio"` object; `None` without a microphone (`null`, or an older campush).
fn microphone(a: &Value) -> Option<String> {
    let source = a.get("source")?.as_str()?;
    let state = a.get("state").and_then(Value::as_str).unwrap_or("?");
    let n = |k: &str| a.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let mut text = format!(
        "{source} {state}, drift {:+.1} ppm, offset {:+.1} ms",
        n("drift_ppm"),
        n("offset_ms")
    );
    for (key, one, many) in [
        ("overruns", "overrun", "overruns"),
        ("reopens", "reopen", "reopens"),
        ("frames_lost", "frame lost", "frames lost"),
    ] {
        match n(key) {
            0.0 => {}
            1.0 => text += &format!(", 1 {one}"),
            k => text += &format!(", {k:.0} {many}"),
        }
    }
    Some(text)
}

/// `, 1.2 s behind (by the server's acknowledgements)` for a destination that streams; empty
/// without a backlog (not streaming, or a status file of an older campush).
fn backlog(d: &Value) -> String {
    let Some(ms) = d.get("backlog_ms").and_then(Value::as_f64) else {
        return String::new();
    };
    let by = match d.get("backlog_estimate").and_then(Value::as_str) {
        Some("acks") => " (by the server's acknowledgements)",
        Some("socket") => " (by the socket's send queue)",
        _ => "",
    };
    format!(", {:.1} s behind{by}", ms / 1000.0)
}

/// A status name as words (`error_network` → `network error`).
fn words(status: &str) -> String {
    match status.strip_prefix("error_") {
        Some(kind) => format!("{kind} error"),
        None => status.replace('_', " "),
    }
}

/// `3 h 05 min`, `12 min 30 s`, `45 s`, `2 d 03 h`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d} d {h:02} h")
    } else if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// The board line from the status file's `health` object: problems first, then the
/// temperature, Wi-Fi and clock; `None` when the board has no source at all.
fn board(h: &Value) -> Option<String> {
    let flag = |key: &str| h.get(key).and_then(Value::as_bool);
    let mut parts: Vec<String> = [
        ("under_voltage", "UNDER-VOLTAGE"),
        ("throttled", "THROTTLED"),
        ("freq_capped", "frequency capped"),
        ("soft_temp_limit", "soft temperature limit"),
    ]
    .iter()
    .filter(|(key, _)| flag(key) == Some(true))
    .map(|(_, word)| (*word).to_owned())
    .collect();
    if let Some(t) = h.get("temp_c").and_then(Value::as_f64) {
        parts.push(format!("{t:.1} °C"));
    }
    if let Some(dbm) = h.get("wifi_signal_dbm").and_then(Value::as_f64) {
        let mut wifi = format!("Wi-Fi {dbm:.0} dBm");
        if let Some(q) = h.get("wifi_link_quality").and_then(Value::as_f64) {
            wifi += &format!(" (quality {q:.0}/70)");
        }
        parts.push(wifi);
    }
    match flag("wifi_power_save") {
        Some(true) => parts.push("Wi-Fi power saving ON".into()),
        Some(false) => parts.push("Wi-Fi power saving off".into()),
        None => {}
    }
    match flag("clock_synced") {
        Some(true) => parts.push("clock synchronised".into()),
        Some(false) => parts.push("clock NOT synchronised".into()),
        None => {}
    }
    if let Some(flags) = h.get("firmware_flags").and_then(Value::as_str) {
        if flags != "0x0" {
            parts.push(format!("firmware flags {flags}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{FirmwareFlags, Health, Interface, Wifi};
    use crate::status::{Counters, SharedStatus, Status};

    fn streaming_board() -> SharedStatus {
        let status = SharedStatus::new();
        let d = status.set_destinations(1);
        d[0].set_label("rtmp://a.example:1935/live2/<redacted>".into());
        d[0].set(Status::Streaming);
        d[0].count_reconnect();
        Counters::add(&status.counters.frames_in, 1200);
        Counters::add(&status.counters.frames_sent, 1190);
        status.set_health(Health {
            firmware: Some(FirmwareFlags(0x50005)),
            temp_millicelsius: Some(61_000),
            wifi: Some(Wifi {
                interface: Interface::new("wlan0").unwrap(),
                link_quality: Some(52),
                signal_dbm: Some(-58),
            }),
            wifi_power_save: Some(true),
            clock_synced: Some(true),
        });
        status
    }

    #[test]
    fn the_encoders_bitrate_under_the_adaptive_bitrate_is_shown_next_to_the_bitrate_sent() {
        let status = streaming_board();
        Counters::add(&status.counters.encoder_kbps, 1875);
        let shown = summarize(&status.to_json(1800.0, Duration::ZERO), None).unwrap();
        assert!(
            shown
                .text
                .contains("bitrate     1800 kbit/s (encoder at 1875 kbit/s, adaptive)"),
            "{}",
            shown.text
        );
    }

    #[test]
    fn a_streaming_camera_shows_its_numbers_and_board_and_exits_0() {
        let json = streaming_board().to_json(2512.4, Duration::from_secs(2 * 3600 + 5 * 60));
        let shown = summarize(&json, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(shown.code, STREAMING);
        let text = &shown.text;
        assert!(
            text.starts_with("campush: streaming, up 2 h 05 min\n"),
            "{text}"
        );
        for needle in [
            "bitrate     2512 kbit/s",
            "frames      1200 in, 1190 sent, 0 dropped",
            "network     1 reconnects",
            "destination rtmp://a.example:1935/live2/<redacted>: streaming, 1 reconnects",
            "board       UNDER-VOLTAGE, THROTTLED, 61.0 °C, Wi-Fi -58 dBm (quality 52/70), \
             Wi-Fi power saving ON, clock synchronised, firmware flags 0x50005",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        assert!(!text.contains("last error"), "{text}");
        assert!(!text.contains("encoder at"), "{text}");
    }

    #[test]
    fn a_microphone_shows_its_state_drift_offset_and_troubles_and_none_shows_nothing() {
        let status = streaming_board();
        let shown = summarize(&status.to_json(1800.0, Duration::ZERO), None).unwrap();
        assert!(!shown.text.contains("sound"), "{}", shown.text);
        let mic = status.set_audio(Some("alsa:hw:Device,0".into()));
        mic.set_state(crate::status::MicState::Capturing);
        mic.set_drift(37.26, -1_250.0);
        mic.overruns.store(1, std::sync::atomic::Ordering::Relaxed);
        mic.reopens.store(3, std::sync::atomic::Ordering::Relaxed);
        let shown = summarize(&status.to_json(1800.0, Duration::ZERO), None).unwrap();
        let want = "sound       alsa:hw:Device,0 capturing, drift +37.3 ppm, offset -1.2 ms, \
                    1 overrun, 3 reopens\n";
        assert!(
            shown.text.contains(want),
            "{want:?} not in:\n{}",
            shown.text
        );
    }

    #[test]
    fn each_streaming_destination_shows_how_far_behind_it_is_and_how_that_is_measured() {
        let status = streaming_board();
        let d = crate::status::destinations_on(&status, &["a.example", "b.example"]);
        d[0].set_backlog(Some((1_870_000, crate::status::BacklogEstimate::Acks)));
        d[1].set_backlog(Some((40_000, crate::status::BacklogEstimate::Socket)));
        let text = summarize(&status.to_json(0.0, Duration::ZERO), None)
            .unwrap()
            .text;
        for needle in [
            "destination rtmp://a.example:1935/live/<redacted>: starting, 0 reconnects, \
             1.9 s behind (by the server's acknowledgements)\n",
            "destination rtmp://b.example:1935/live/<redacted>: starting, 0 reconnects, \
             0.0 s behind (by the socket's send queue)\n",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        d[0].set_backlog(None);
        let text = summarize(&status.to_json(0.0, Duration::ZERO), None)
            .unwrap()
            .text;
        assert!(
            text.contains("a.example:1935/live/<redacted>: starting, 0 reconnects\n"),
            "{text}"
        );
    }

    #[test]
    fn a_camera_that_is_not_streaming_says_why_and_exits_1() {
        let status = streaming_board();
        status.set_source(Status::WaitingForSource);
        status.set_last_error(&"rtmp://a.example:1935/live2/<redacted>: connection lost");
        let shown = summarize(&status.to_json(0.0, Duration::from_secs(40)), None).unwrap();
        assert_eq!(shown.code, NOT_STREAMING);
        assert!(shown
            .text
            .starts_with("campush: waiting for source, up 40 s\n"));
        assert!(shown
            .text
            .contains("last error  rtmp://a.example:1935/live2/<redacted>: connection lost"));
        let refused = r#"{"status":"error_refused","uptime_s":75}"#;
        let shown = summarize(refused, None).unwrap();
        assert_eq!(shown.code, NOT_STREAMING);
        assert!(shown
            .text
            .starts_with("campush: refused error, up 1 min 15 s\n"));
    }

    #[test]
    fn a_file_nobody_writes_any_more_is_stale_and_exits_2() {
        let json = streaming_board().to_json(0.0, Duration::ZERO);
        let shown = summarize(&json, Some(STALE_AFTER + Duration::from_secs(600))).unwrap();
        assert_eq!(shown.code, STALE);
        assert!(shown
            .text
            .contains("STALE: the status file was last written 10 min 30 s ago"));
    }

    #[test]
    fn a_missing_a_foreign_or_a_broken_file_has_its_own_code() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let path = dir.path().join("status.json");
        let shown = show(&path, now);
        assert_eq!(shown.code, NO_FILE);
        assert!(shown.text.contains("campush is not running"));
        std::fs::write(&path, "{\"status\":\"stre").unwrap();
        assert_eq!(show(&path, now).code, UNREADABLE);
        std::fs::write(&path, "{\"something\":\"else\"}").unwrap();
        let shown = show(&path, now);
        assert_eq!(shown.code, UNREADABLE);
        assert!(shown.text.contains("no \"status\""), "{}", shown.text);
        std::fs::write(&path, streaming_board().to_json(1.0, Duration::ZERO)).unwrap();
        assert_eq!(show(&path, SystemTime::now()).code, STREAMING);
        assert_eq!(
            show(
                &path,
                SystemTime::now() + STALE_AFTER + Duration::from_secs(1)
            )
            .code,
            STALE
        );
        assert_eq!(show(dir.path(), now).code, UNREADABLE, "a directory");
    }

    #[test]
    fn a_device_a_fifo_or_a_huge_file_is_refused_at_once_as_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let huge = dir.path().join("huge.json");
        std::fs::write(&huge, vec![b' '; STATUS_FILE_LIMIT + 1]).unwrap();
        let shown = show(&huge, now);
        assert_eq!(shown.code, UNREADABLE);
        assert!(shown.text.contains("larger than"), "{}", shown.text);

        let fifo = dir.path().join("status.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(show(&asked, SystemTime::now()));
        });
        let got = rx.recv_timeout(Duration::from_secs(2));
        if got.is_err() {
            // Unblock the reader (a writer opens and closes), so the thread ends.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        let shown = got.expect("a FIFO status file was not refused within 2 s");
        assert_eq!(shown.code, UNREADABLE);
        assert!(shown.text.contains("a FIFO"), "{}", shown.text);

        let t = std::time::Instant::now();
        let shown = show(Path::new("/dev/zero"), now);
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(shown.code, UNREADABLE);
        assert!(shown.text.contains("not a regular file"), "{}", shown.text);
    }

    #[test]
    fn a_board_without_health_sources_shows_no_board_line() {
        let status = SharedStatus::new();
        status.set_destinations(1)[0].set(Status::Streaming);
        let shown = summarize(&status.to_json(0.0, Duration::ZERO), None).unwrap();
        assert!(!shown.text.contains("board"), "{}", shown.text);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0.0), "0 s");
        assert_eq!(duration(59.9), "59 s");
        assert_eq!(duration(754.0), "12 min 34 s");
        assert_eq!(duration(3_600.0 * 3.0 + 300.0), "3 h 05 min");
        assert_eq!(duration(86_400.0 * 2.0 + 3_600.0 * 3.0), "2 d 03 h");
    }
}
