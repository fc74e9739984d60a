//! Recording on the board: the stream written to local files in fragmented MP4, next to the
//! network destinations (`always`) or while they cannot stream (`outage`).
//!
//! Owns: the fMP4 byte layout ([`fmp4`], sans-IO), the recording directory (`files`: segment
//! names, leftovers of a crash, retention by whole files, free space), and the recorder
//! ([`Recorder`]): one more destination with a bounded queue of its own, on a thread of its own,
//! so the disk never holds up the network path (and vice versa).
//!
//! Segments are named by their UTC start time (`2026-12-06T20-15-00Z.mp4`), written as
//! `NAME.mp4.part` and renamed when closed, so a copy never picks up half a file unknowingly. A
//! new segment starts at the first keyframe after `segment_s`. Writes are large and sequential
//! (one moof+mdat per fragment, from buffers allocated once), `fdatasync` runs once per fragment,
//! nothing written is ever rewritten, and retention deletes whole files, oldest first.
//!
//! A directory that is full, read-only or missing is an `Error(Storage)` status (the LED and the
//! status file show it) and is retried every [`RETRY`]; the live stream goes on meanwhile.
//!
//! Settings: `[record]` ([`RawRecord`] → [`RecordSettings::check`]) or `--record DIR`.

mod files;
pub mod fmp4;
mod recorder;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::setting::Invalid;

pub use recorder::Recorder;

/// How long a failed directory waits before the recorder tries it again.
pub const RETRY: Duration = Duration::from_secs(5);

/// The directory the systemd unit's `StateDirectory=campush` provides.
pub const DEFAULT_DIR: &str = "/var/lib/campush/recordings";

/// When to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything, next to the network destinations.
    Always,
    /// Only while a network destination is not streaming, from the keyframe before the outage
    /// to the end of the GOP in which every destination streams again.
    Outage,
}

/// The recorder's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    pub dir: PathBuf,
    pub mode: Mode,
    /// A new segment starts at the first keyframe after this much media.
    pub segment: Duration,
    /// All segments together, in bytes: the oldest are deleted first.
    pub max_bytes: u64,
    /// Never fill the file system below this many free bytes.
    pub min_free_bytes: u64,
}

impl RecordSettings {
    /// The defaults, recording to `dir` (`--record DIR`).
    pub fn in_dir(dir: PathBuf) -> RecordSettings {
        RecordSettings {
            dir,
            mode: Mode::Always,
            segment: Duration::from_secs(60),
            max_bytes: 2048 * MIB,
            min_free_bytes: 256 * MIB,
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// `[record]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    pub dir: Option<PathBuf>,
    /// `always` (default) or `outage`.
    pub mode: Option<String>,
    pub segment_s: Option<f64>,
    pub max_mib: Option<f64>,
    pub min_free_mib: Option<f64>,
}

impl RecordSettings {
    /// The recorder `[record]` asks for.
    pub fn check(raw: &RawRecord) -> Result<RecordSettings, Invalid> {
        let dir = raw
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
        if dir.as_os_str().is_empty() || dir.is_relative() {
            return Err(Invalid::new(
                "dir",
                format!(
                    "{:?} is not an absolute path (e.g. {DEFAULT_DIR:?})",
                    dir.display().to_string()
                ),
            ));
        }
        let mode = match raw.mode.as_deref().map(str::trim) {
            None | Some("always") => Mode::Always,
            Some("outage") => Mode::Outage,
            Some(other) => {
                return Err(Invalid::new(
                    "mode",
                    format!("{other:?}: expected \"always\" or \"outage\""),
                ))
            }
        };
        let number = |v: Option<f64>, key: &'static str, default: f64, min: f64, max: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(Invalid::new(
                    key,
                    format!("{v} is out of range: expected {min} to {max}"),
                ))
            }
        };
        let segment_s = number(raw.segment_s, "segment_s", 60.0, 1.0, 86_400.0)?;
        let max_mib = number(raw.max_mib, "max_mib", 2048.0, 1.0, 16.0 * 1024.0 * 1024.0)?;
        let min_free_mib = number(raw.min_free_mib, "min_free_mib", 256.0, 0.0, 1e9)?;
        Ok(RecordSettings {
            dir,
            mode,
            segment: Duration::from_secs_f64(segment_s),
            max_bytes: (max_mib * MIB as f64) as u64,
            min_free_bytes: (min_free_mib * MIB as f64) as u64,
        })
    }
}

impl std::fmt::Display for RecordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {} s segments, at most {} MiB, at least {} MiB free)",
            self.dir.display(),
            match self.mode {
                Mode::Always => "always",
                Mode::Outage => "outage",
            },
            self.segment.as_secs_f64(),
            self.max_bytes / MIB,
            self.min_free_bytes / MIB
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawRecord {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_empty_record_section_records_always_to_the_state_directory() {
        let s = RecordSettings::check(&raw("")).unwrap();
        assert_eq!(s, RecordSettings::in_dir(PathBuf::from(DEFAULT_DIR)));
        assert_eq!(s.segment, Duration::from_secs(60));
        assert_eq!(s.max_bytes, 2 << 30);
        assert_eq!(s.min_free_bytes, 256 << 20);
    }

    #[test]
    fn every_key_is_read() {
        let s = RecordSettings::check(&raw(
            "dir = \"/mnt/usb\"\nmode = \"outage\"\nsegment_s = 4\nmax_mib = 10\nmin_free_mib = 0",
        ))
        .unwrap();
        assert_eq!(s.dir, PathBuf::from("/mnt/usb"));
        assert_eq!(s.mode, Mode::Outage);
        assert_eq!(s.segment, Duration::from_secs(4));
        assert_eq!(s.max_bytes, 10 << 20);
        assert_eq!(s.min_free_bytes, 0);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("mode = \"sometimes\"", "mode"),
            ("segment_s = 0", "segment_s"),
            ("max_mib = -1", "max_mib"),
            ("min_free_mib = nan", "min_free_mib"),
            ("dir = \"recordings\"", "dir"),
        ] {
            assert_eq!(
                RecordSettings::check(&raw(text)).unwrap_err().key,
                key,
                "{text}"
            );
        }
    }
}
