//! Board health and the fleet's view of a camera, end to end: the real binary on a pretend
//! Raspberry Pi (sysfs and proc files below `CAMPUSH_ROOT`, written as the kernel writes them),
//! streaming to the in-process RTMP server, seen through status.json, the Prometheus file (read
//! by the reference parser, prometheus-client from PyPI), `campush status` and the log.
//! Every wait is bounded; nothing is written outside temporary directories.

mod inproc;
mod servers;
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use campush::alloc::{watch_this_thread, watched_allocations, Counting};
use campush::health::sampler::{Live, Sampler};
use campush::health::{Conditions, FirmwareFlags, Health, Interface, Wifi};
use campush::status::{BacklogEstimate, Counters, SharedStatus, Status};
use inproc::ScuffleServer;
use servers::Installed;
use support::{kill_with_parent, poll_until, run_bounded, signal, wait_child, CAMPUSH};

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);

const KEY: &str = "healthkey-SECRET";

// Counts allocations, for the test that a health sample makes none.
#[global_allocator]
static GLOBAL: Counting = Counting;

/// A Raspberry Pi's health files below `root`: firmware flags, the cpu-thermal zone, and Wi-Fi
/// associated at `dbm` (the lines as drivers/firmware/raspberrypi.c, thermal_sysfs.c and
/// net/wireless/wext-proc.c print them).
fn pretend_pi(root: &Path, flags: &str, millicelsius: i32, dbm: i32) {
    let write = |rel: &str, text: &str| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        &format!("{flags}\n"),
    );
    write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    write(
        "sys/class/thermal/thermal_zone0/temp",
        &format!("{millicelsius}\n"),
    );
    write(
        "proc/net/wireless",
        &format!(
            "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n \
             face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n\
             {:>6}: {:04x}  {:>3}.  {:>3}.  {:>3}   {:>6} {:>6} {:>6} {:>6} {:>6}   {:>6}\n",
            "wlan0",
            0,
            (dbm + 110).clamp(0, 70),
            dbm,
            -256,
            0,
            0,
            0,
            0,
            260,
            0
        ),
    );
}

/// `campush run --config FILE` with `root` as the system root, under umask 077 (the unit's),
/// its log in `log`.
fn start_campush(root: &Path, config: &Path, log: &Path) -> Child {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 077; exec \"$0\" run --config \"$1\"", CAMPUSH])
        .arg(config)
        .env("CAMPUSH_ROOT", root)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUNTIME_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap());
    kill_with_parent(&mut cmd);
    cmd.spawn().expect("spawn campush")
}

/// `campush status ARGS`: exit code and standard output.
fn campush_status(args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(CAMPUSH);
    cmd.arg("status")
        .args(args)
        .env("CAMPUSH_ROOT", "/nonexistent");
    let run = run_bounded(cmd, None, Duration::from_secs(10));
    (run.code, run.stdout, run.stderr)
}

/// The samples of a Prometheus text file as the reference parser reads them, one line each:
/// `TYPE NAME LABELS VALUE` (labels as sorted JSON), after checking that no series repeats.
/// `None` when the parser is not installed (the test is then skipped, or fails under
/// `CAMPUSH_REQUIRE_TOOLS=1`).
fn parsed_by_prometheus_client(file: &Path) -> Option<Vec<String>> {
    if !servers::require(Installed::PrometheusClient) {
        return None;
    }
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
seen = set()
for family in text_string_to_metric_families(open(sys.argv[1], encoding="utf-8").read()):
    assert family.documentation, "no HELP for " + family.name
    for s in family.samples:
        key = (s.name, json.dumps(s.labels, sort_keys=True))
        assert key not in seen, "repeated series " + repr(key)
        seen.add(key)
        print(family.type, s.name, json.dumps(s.labels, sort_keys=True), repr(float(s.value)))
"#;
    let mut cmd = Command::new(servers::installed_dir().join("venv/bin/python"));
    cmd.args(["-c", script]).arg(file);
    let run = run_bounded(cmd, None, Duration::from_secs(30));
    assert_eq!(
        run.code,
        Some(0),
        "prometheus_client refused the file:\n{run}\n--- file ---\n{}",
        fs::read_to_string(file).unwrap_or_default()
    );
    Some(run.stdout.lines().map(str::to_owned).collect())
}

fn has(samples: &[String], line: &str) -> bool {
    samples.iter().any(|s| s == line)
}

#[test]
fn sampling_the_board_allocates_nothing_once_the_sampler_is_built() {
    let root = tempfile::tempdir().unwrap();
    pretend_pi(root.path(), "50005", 52_000, -58);
    // The real system's questions too: adjtimex, and the power-saving ioctl (on an interface
    // this machine most likely lacks).
    let mut sampler = Sampler::new(root.path(), Box::new(Live::default()));
    let mut conditions = Conditions::default();
    watch_this_thread();
    let first = sampler.sample(); // opens the ioctl's socket
    assert_eq!(first.under_voltage(), Some(true));
    assert_eq!(first.wifi_signal_dbm(), Some(-58));
    let before = watched_allocations();
    std::hint::black_box(Vec::<u8>::with_capacity(1));
    assert!(watched_allocations() > before, "the counter counts");
    let before = watched_allocations();
    for _ in 0..100 {
        let health = std::hint::black_box(sampler.sample());
        assert_eq!(health.temp_millicelsius, Some(52_000));
        std::hint::black_box(conditions.update(&health).count());
    }
    assert_eq!(
        watched_allocations() - before,
        0,
        "allocations in 100 samples"
    );
}

#[test]
fn the_prometheus_file_reads_the_same_in_the_reference_parser() {
    let status = SharedStatus::new();
    let d = status.set_destinations(3);
    d[0].set_label("rtmp://a.example:1935/live/<redacted>".into());
    d[1].set_label("rtmp://a.example:1935/live/<redacted>".into());
    // What the format must escape: a backslash, a double quote, a line feed.
    d[2].set_label("rtmps://we\\ird\"host:443/a\nb/<redacted>".into());
    d[0].set(Status::Streaming);
    d[0].count_connect();
    d[0].count_bytes_sent(123_456);
    d[0].set_backlog(Some((1_250_000, BacklogEstimate::Acks)));
    Counters::add(&status.counters.frames_in, 900);
    status.set_health(Health {
        firmware: Some(FirmwareFlags(0x50005)),
        temp_millicelsius: Some(63_125),
        wifi: Some(Wifi {
            interface: Interface::new("wlan0").unwrap(),
            link_quality: Some(44),
            signal_dbm: Some(-66),
        }),
        wifi_power_save: Some(true),
        clock_synced: Some(false),
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campush.prom");
    fs::write(&file, status.to_prometheus(1500.0, Duration::from_secs(60))).unwrap();
    let Some(samples) = parsed_by_prometheus_client(&file) else {
        return;
    };
    for line in [
        // One destination streams, two are starting: the camera as a whole is starting.
        r#"gauge campush_status {"status": "starting"} 1.0"#,
        r#"gauge campush_status {"status": "streaming"} 0.0"#,
        "gauge campush_uptime_seconds {} 60.0",
        "gauge campush_bitrate_bits_per_second {} 1500000.0",
        "counter campush_frames_in_total {} 900.0",
        "counter campush_connects_total {} 1.0",
        r#"gauge campush_destination_streaming {"destination": "rtmp://a.example:1935/live/<redacted>"} 1.0"#,
        r#"gauge campush_destination_streaming {"destination": "rtmp://a.example:1935/live/<redacted> #2"} 0.0"#,
        r#"counter campush_destination_bytes_sent_total {"destination": "rtmp://a.example:1935/live/<redacted>"} 123456.0"#,
        r#"gauge campush_destination_streaming {"destination": "rtmps://we\\ird\"host:443/a\nb/<redacted>"} 0.0"#,
        r#"gauge campush_destination_backlog_seconds {"destination": "rtmp://a.example:1935/live/<redacted>"} 1.25"#,
        r#"gauge campush_destination_backlog_estimate {"destination": "rtmp://a.example:1935/live/<redacted>", "estimate": "acks"} 1.0"#,
        r#"gauge campush_destination_backlog_estimate {"destination": "rtmp://a.example:1935/live/<redacted>", "estimate": "socket"} 0.0"#,
        "gauge campush_board_under_voltage {} 1.0",
        "gauge campush_board_throttled {} 1.0",
        "gauge campush_board_freq_capped {} 0.0",
        "gauge campush_board_soft_temp_limit {} 0.0",
        "gauge campush_board_wifi_power_save {} 1.0",
        "gauge campush_board_clock_synced {} 0.0",
        "gauge campush_board_temperature_celsius {} 63.125",
        "gauge campush_board_wifi_signal_dbm {} -66.0",
        "gauge campush_board_wifi_link_quality {} 44.0",
    ] {
        assert!(
            has(&samples, line),
            "{line:?} not among:\n{}",
            samples.join("\n")
        );
    }
    // Every sample of a counter family ends in _total; every name starts with campush_.
    for s in &samples {
        let mut words = s.split(' ');
        let (kind, name) = (words.next().unwrap(), words.next().unwrap());
        assert!(name.starts_with("campush_"), "{s}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{s}");
    }
}

#[test]
fn a_camera_on_an_under_voltage_pi_reports_its_health_in_every_view() {
    let server = ScuffleServer::start();
    let root = tempfile::tempdir().unwrap();
    // Under-voltage and throttled now (vcgencmd: throttled=0x50005), 52 °C, Wi-Fi at -58 dBm.
    pretend_pi(root.path(), "50005", 52_000, -58);
    let dir = tempfile::tempdir().unwrap();
    // A directory anyone may enter, as /run/campush is: the files' own modes are under test.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (status_file, prom_file) = (
        dir.path().join("status.json"),
        dir.path().join("campush.prom"),
    );
    let config = dir.path().join("campush.toml");
    fs::write(
        &config,
        format!(
            "[source]\nspec = \"file:{CLIP}\"\nloop = true\n[[output]]\nurl = \"{}\"\n\
             [status]\nfile = \"{}\"\nprometheus_file = \"{}\"\nsummary_interval_s = 1\n",
            server.url(KEY),
            status_file.display(),
            prom_file.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("campush.log");
    let mut child = start_campush(root.path(), &config, &log);
    let read = |p: &PathBuf| fs::read_to_string(p).unwrap_or_default();
    let streaming = poll_until(Duration::from_secs(20), || {
        read(&status_file).contains("\"status\":\"streaming\"") && prom_file.exists()
    });
    assert!(streaming, "not streaming:\n{}", read(&log));
    // Two health samples (one every 5 s) and a few summary lines.
    std::thread::sleep(Duration::from_secs(6));

    let json = read(&status_file);
    assert!(
        json.contains(
            r#""health":{"under_voltage":true,"throttled":true,"freq_capped":false,"soft_temp_limit":false,"firmware_flags":"0x50005","temp_c":52.0,"wifi_interface":"wlan0","wifi_link_quality":52,"wifi_signal_dbm":-58,"#
        ),
        "{json}"
    );
    // The power-saving and clock questions go to the real system: whatever it says, typed.
    for key in ["wifi_power_save", "clock_synced"] {
        let value = json.split(&format!("\"{key}\":")).nth(1).unwrap_or("");
        assert!(
            ["true", "false", "null"]
                .iter()
                .any(|v| value.starts_with(v)),
            "{key}: {json}"
        );
    }
    let port = server
        .url("")
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let label = format!("rtmp://127.0.0.1:{port}/live/<redacted>");
    assert!(
        json.contains(&format!(
            "\"destination\":\"{label}\",\"status\":\"streaming\""
        )),
        "{json}"
    );

    // Readable by a person and by node_exporter, whatever the service's umask.
    for file in [&status_file, &prom_file] {
        let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", file.display());
    }

    if let Some(samples) = parsed_by_prometheus_client(&prom_file) {
        for line in [
            r#"gauge campush_status {"status": "streaming"} 1.0"#.to_owned(),
            "gauge campush_board_under_voltage {} 1.0".to_owned(),
            "gauge campush_board_throttled {} 1.0".to_owned(),
            "gauge campush_board_temperature_celsius {} 52.0".to_owned(),
            "gauge campush_board_wifi_signal_dbm {} -58.0".to_owned(),
            format!(r#"gauge campush_destination_streaming {{"destination": "{label}"}} 1.0"#),
        ] {
            assert!(
                has(&samples, &line),
                "{line:?} not among:\n{}",
                samples.join("\n")
            );
        }
        assert!(
            samples.iter().any(|s| s.starts_with(&format!(
                r#"counter campush_destination_frames_sent_total {{"destination": "{label}"}} "#
            )) && !s.ends_with(" 0.0")),
            "{}",
            samples.join("\n")
        );
    }

    // For a person on ssh: the state, the board, exit 0.
    let file = status_file.to_str().unwrap();
    let (code, stdout, stderr) = campush_status(&[file]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("campush: streaming, up "), "{stdout}");
    assert!(
        stdout.contains(
            "board       UNDER-VOLTAGE, THROTTLED, 52.0 °C, Wi-Fi -58 dBm (quality 52/70)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("destination {label}: streaming")),
        "{stdout}"
    );

    // The log: one warning when under-voltage started, not one per sample; the summary line
    // carries the board's state.
    let text = read(&log);
    assert_eq!(
        text.matches("board: under-voltage (firmware flags 0x50005)")
            .count(),
        1,
        "{text}"
    );
    // (The clock is the real one: synchronised or not, it may show between the two.)
    assert!(
        text.contains("; board: under-voltage, throttled, ")
            && text.contains("52.0 °C, Wi-Fi -58 dBm"),
        "{text}"
    );

    signal(child.id(), libc::SIGTERM);
    let exited = wait_child(&mut child, Duration::from_secs(10));
    assert_eq!(exited.and_then(|s| s.code()), Some(0), "{}", read(&log));
    let (code, stdout, _) = campush_status(&[file]);
    assert_eq!(code, Some(1), "a stopped camera is not streaming: {stdout}");
    assert!(stdout.starts_with("campush: stopped"), "{stdout}");

    for (name, text) in [
        ("status.json", read(&status_file)),
        ("the Prometheus file", read(&prom_file)),
        ("the log", read(&log)),
    ] {
        assert!(
            !text.contains("SECRET"),
            "the stream key is in {name}:\n{text}"
        );
    }
}

#[test]
fn campush_status_tells_a_missing_a_stale_and_a_foreign_file_apart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status.json");
    let path = file.to_str().unwrap();
    let (code, _, stderr) = campush_status(&[path]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("campush is not running"), "{stderr}");

    let status = SharedStatus::new();
    status.set_destinations(1)[0].set(Status::Streaming);
    fs::write(&file, status.to_json(0.0, Duration::from_secs(90))).unwrap();
    let (code, stdout, _) = campush_status(&[path]);
    assert_eq!(code, Some(0), "{stdout}");
    // Nobody has written it for ten minutes: campush died without removing it, or hangs.
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    let (code, stdout, _) = campush_status(&[path]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stdout.contains("STALE"), "{stdout}");

    fs::write(&file, "<html>not ours</html>").unwrap();
    let (code, _, stderr) = campush_status(&[path]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("is not a campush status file"), "{stderr}");
}
