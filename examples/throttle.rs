//! A throttling TCP proxy on loopback, standalone, for `bench/lag.sh`: a link slower than the
//! stream in front of a server, with a deep buffer (a bloated router or Wi-Fi driver: it takes
//! everything at once and forwards it at the link rate) or a shallow one. The proxy itself is
//! `campush::testing::throttle`, the one the backlog tests use.
//!
//! Prints the port it listens on (127.0.0.1) as one line, then forwards every connection made
//! to it until it is killed (killing it drops whatever it still holds, as a cut link does), or
//! for at most LIFETIME_S seconds (default 600).
//!
//!     cargo run --release --example throttle -- TARGET_PORT BYTES_PER_S deep:BYTES|shallow:BYTES [LIFETIME_S]

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use campush::testing::throttle::{throttling_proxy, Buffer};

const USAGE: &str = "usage: throttle TARGET_PORT BYTES_PER_S deep:BYTES|shallow:BYTES [LIFETIME_S]";

fn buffer(arg: &str) -> Option<Buffer> {
    let (kind, bytes) = arg.split_once(':')?;
    match kind {
        "deep" => bytes.parse().ok().map(Buffer::Deep),
        "shallow" => bytes.parse().ok().map(Buffer::Shallow),
        _ => None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (
        args.first().and_then(|a| a.parse::<u16>().ok()),
        args.get(1).and_then(|a| a.parse::<usize>().ok()),
        args.get(2).and_then(|a| buffer(a)),
        args.get(3).map_or(Some(600), |a| a.parse::<u64>().ok()),
    );
    let (Some(target), Some(rate), Some(buffer), Some(lifetime)) = parsed else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let lifetime = Duration::from_secs(lifetime);
    let cut = Arc::new(AtomicBool::new(false));
    let port = throttling_proxy(target, rate, buffer, cut, lifetime);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{port}");
    let _ = out.flush();
    std::thread::sleep(lifetime);
}
