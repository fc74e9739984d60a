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
        let mut err = Line::new(std::io::stderr().lock());
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
        let _ = err.flush();
    }

    fn flush(&self) {}
}

/// A log line assembled on the stack and written with one `write` (stderr is unbuffered: written
/// to directly, a line would take a system call per formatted piece, and lines of two threads
/// could interleave). A longer line goes out in pieces of [`LINE_CAPACITY`] bytes.
const LINE_CAPACITY: usize = 512;

struct Line<W: Write> {
    buf: [u8; LINE_CAPACITY],
    len: usize,
    out: W,
}

impl<W: Write> Line<W> {
    fn new(out: W) -> Self {
        Line {
            buf: [0; LINE_CAPACITY],
            len: 0,
            out,
        }
    }
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.len == self.buf.len() {
            self.flush()?;
        }
        let room = self.buf.get_mut(self.len..).unwrap_or_default();
        let n = room.len().min(bytes.len());
        room.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(bytes.get(..n).unwrap_or_default());
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let line = self.buf.get(..self.len).unwrap_or_default();
        self.len = 0;
        self.out.write_all(line)
    }
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
    use std::io::Write;

    /// Counts the writes it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);
    impl Write for &mut Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_goes_out_in_one_write_and_a_long_one_whole_in_pieces() {
        let mut writes = Writes::default();
        let mut line = super::Line::new(&mut writes);
        let level = "INFO";
        writeln!(line, "2026-12-07 {level:5} {}", 42).unwrap();
        line.flush().unwrap();
        assert_eq!(writes.0, vec![b"2026-12-07 INFO  42\n".to_vec()]);

        let long = "x".repeat(1300);
        let mut writes = Writes::default();
        let mut line = super::Line::new(&mut writes);
        writeln!(line, "{long}").unwrap();
        line.flush().unwrap();
        assert_eq!(writes.0.len(), 3);
        assert_eq!(writes.0.concat(), format!("{long}\n").into_bytes());
    }

    #[test]
    fn utc_timestamps_have_the_iso_shape() {
        let t = super::UtcNow::now().to_string();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
