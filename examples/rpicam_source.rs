//! Runs campush's `rpicam` source on its own, without a server: for trying a camera on a Pi and
//! for the tests that need a process owning the camera app (tests/rpicam.rs kills it with
//! SIGKILL and checks that the app died with it).
//!
//! - `rpicam_source list`: the cameras `rpicam-vid --list-cameras` reports;
//! - `rpicam_source stream [STALL_TIMEOUT_S [RPICAM_ARG...]]`: starts the camera app (found on
//!   PATH) and prints `app <pid>` once it runs, then one line per access unit:
//!   `unit <n> <bytes> <timestamp_us> <idr 0|1>`, until killed.

use std::io::Write;
use std::time::Duration;

use campush::pool::Pool;
use campush::source::rpicam::{list_cameras, CameraApp, RawRpicam, RpicamSettings, RpicamSource};
use campush::source::Source;
use campush::status::SharedStatus;
use campush::stop::Stop;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(app) = CameraApp::find() else {
        eprintln!("neither rpicam-vid nor libcamera-vid is on PATH");
        std::process::exit(66);
    };
    match args.first().map(String::as_str) {
        Some("list") => match list_cameras(&app, Duration::from_secs(20)) {
            Ok(cams) if cams.is_empty() => println!("no cameras"),
            Ok(cams) => cams.iter().for_each(|c| println!("{c}")),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        Some("stream") => stream(app, &args[1..]),
        _ => {
            eprintln!("usage: rpicam_source list | stream [STALL_TIMEOUT_S [RPICAM_ARG...]]");
            std::process::exit(64);
        }
    }
}

fn stream(app: CameraApp, args: &[String]) {
    let stall = args
        .first()
        .map(|s| s.parse::<f64>().expect("a number of seconds"));
    let extra = args.get(1..).unwrap_or_default();
    let settings = RpicamSettings::check(&RawRpicam {
        stall_timeout_s: stall,
        rpicam_args: extra,
        ..RawRpicam::default()
    })
    .unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(78);
    });
    let mut source = RpicamSource::new(app, settings, SharedStatus::new(), Stop::new());
    let pool = Pool::new(2, source.frame_capacity_hint());
    let mut out = std::io::stdout().lock();
    let mut announced = None;
    for n in 0u64.. {
        let mut slot = pool.acquire().expect("a free slot");
        let capture = match source.next_access_unit(&mut slot) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        };
        if announced != source.app_pid() {
            announced = source.app_pid();
            if let Some(pid) = announced {
                let _ = writeln!(out, "app {pid}");
            }
        }
        let slot_bytes = slot.bytes();
        // What the app wrote, after the room the pool leaves in front.
        let bytes = &slot_bytes[campush::pool::FRONT_ROOM..];
        let idr = campush::h264::nal_units(bytes).any(|nal| campush::h264::nal_type(nal) == 5);
        let _ = writeln!(
            out,
            "unit {n} {} {} {}",
            bytes.len(),
            capture.timestamp_us,
            u8::from(idr)
        );
        let _ = out.flush();
    }
}
