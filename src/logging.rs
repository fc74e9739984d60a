//! Log output: one line per event on stderr, in the form the reader of that stderr wants.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry a `<N>` syslog priority prefix and no
//! timestamp (the journal adds its own); on a terminal or in a file they start with a UTC
//! timestamp and the level. Nothing here knows about secrets: callers format URLs through
//! `RtmpUrl`'s redacting `Display`, and no stage logs per frame.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

struct Logger {
    journal: bool,
    level: log::LevelFilter,
}

/// Installs the logger. `verbose` enables debug lines.
pub fn init(verbose: bool) {
    let level = if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    let logger = Logger {
        journal: std::env::var_os("JOURNAL_STREAM").is_some(),
        level,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("campush")
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.journal {
            let prio = match record.level() {
                log::Level::Error => 3,
                log::Level::Warn => 4,
                log::Level::Info => 6,
                log::Level::Debug | log::Level::Trace => 7,
            };
            writeln!(err, "<{prio}>{}", record.args())
        } else {
            writeln!(
                err,
                "{} {:5} {}",
                UtcNow::now(),
                record.level(),
                record.args()
            )
        };
    }

    fn flush(&self) {}
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date library (`clock::civil_from_days`), written
/// straight into the line: a log line allocates nothing, so one in the steady state (a
/// reconnect, a change of backlog estimate) costs no heap allocation either.
struct UtcNow(std::time::Duration);

impl UtcNow {
    fn now() -> UtcNow {
        UtcNow(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }
}

impl std::fmt::Display for UtcNow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = crate::clock::civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            self.0.subsec_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_timestamps_have_the_iso_shape() {
        let t = super::UtcNow::now().to_string();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
