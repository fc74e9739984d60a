//! The recording directory: segment names, the segments already there, retention by whole files,
//! and free space.
//!
//! Owns: which files in the directory are campush's segments (`YYYY-MM-DDTHH-MM-SSZ.mp4`, or
//! `..Z_NN.mp4` (01 to 99) when several start in the same second, which sorts after the first:
//! names sort in time order; nothing else is ever touched or deleted), the list of closed segments oldest first with their sizes, and the creation of a
//! new `.part` file (exclusively: an existing file is never overwritten).
//!
//! Invariants: a segment is deleted whole, oldest first; a `.part` left by a crash or a power
//! loss is renamed to `.mp4` when the directory is scanned (it plays up to its last complete
//! fragment). Listing and naming allocate, once per segment, never per frame.

use crate::clock::civil_from_days;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file suffix of a segment being written.
pub const PART: &str = ".part";

/// A new segment's files: the open `.part`, and the name it gets when closed.
#[derive(Debug)]
pub struct NewSegment {
    pub file: File,
    pub part: PathBuf,
    pub path: PathBuf,
}

/// The segments of one directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Closed segments, oldest first.
    closed: VecDeque<(PathBuf, u64)>,
    closed_bytes: u64,
    /// The stem and number of the last segment created: the next one in the same second gets
    /// a higher number, even when retention deleted that one already.
    last: Option<(String, u32)>,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store {
            dir,
            closed: VecDeque::new(),
            closed_bytes: 0,
            last: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory: renames leftover `.part` segments to `.mp4`, then lists every
    /// segment, oldest first. Fails when the directory cannot be read.
    pub fn scan(&mut self) -> io::Result<()> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            let path = match name.strip_suffix(PART) {
                Some(done) if is_segment_name(done) => {
                    let to = self.dir.join(done);
                    match std::fs::rename(&path, &to) {
                        Ok(()) => {
                            log::info!("recording: kept {done} (cut short by a stop or crash)");
                            to
                        }
                        Err(_) => continue,
                    }
                }
                Some(_) => continue,
                None if is_segment_name(name) => path,
                None => continue,
            };
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => found.push((path, m.len())),
                _ => {}
            }
        }
        // Names sort in time order.
        found.sort();
        self.closed_bytes = found.iter().map(|(_, len)| len).sum();
        self.closed = found.into();
        Ok(())
    }

    /// Creates the `.part` file of a segment starting at `now` (UTC in its name).
    pub fn create(&mut self, now: SystemTime) -> io::Result<NewSegment> {
        let stem = segment_stem(now);
        let first = match &self.last {
            Some((last, n)) if *last == stem => n + 1,
            _ => 0,
        };
        let mut last = None;
        for n in first..100 {
            let name = match n {
                0 => format!("{stem}.mp4"),
                n => format!("{stem}_{n:02}.mp4"),
            };
            let path = self.dir.join(&name);
            let part = self.dir.join(format!("{name}{PART}"));
            if path.exists() {
                continue;
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&part)
            {
                Ok(file) => {
                    // Readable by the campush group whatever the umask (the service's is 0077);
                    // a file system without modes (FAT) refuses, which is fine.
                    use std::os::unix::fs::PermissionsExt;
                    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o640));
                    self.last = Some((stem, n));
                    return Ok(NewSegment { file, part, path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::ErrorKind::AlreadyExists.into()))
    }

    /// A segment was closed (renamed to `path`) with `len` bytes.
    pub fn add_closed(&mut self, path: PathBuf, len: u64) {
        self.closed_bytes += len;
        self.closed.push_back((path, len));
    }

    /// Bytes of the closed segments.
    pub fn closed_bytes(&self) -> u64 {
        self.closed_bytes
    }

    /// Deletes the oldest closed segment; the bytes it freed, or `None` when there is none.
    pub fn delete_oldest(&mut self) -> Option<u64> {
        let (path, len) = self.closed.pop_front()?;
        self.closed_bytes -= len;
        match std::fs::remove_file(&path) {
            Ok(()) => log::info!("recording: deleted {} ({len} bytes)", path.display()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::warn!("recording: cannot delete {}: {e}", path.display()),
        }
        Some(len)
    }
}

/// Bytes available to campush on the file system holding `file` (no allocation).
pub fn free_bytes(file: &File) -> io::Result<u64> {
    // SAFETY: statvfs is plain data, and fstatvfs only writes into it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the whole call; `st` is a valid, writable statvfs.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Both are u64 here; f_frsize is 32 bits on 32-bit ARM.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(st.f_bavail), u64::from(st.f_frsize));
    Ok(blocks.saturating_mul(size))
}

/// `2026-12-06T20-15-00Z`: the UTC time of `t` to the second, with `-` for `:` (which FAT file
/// systems, and Windows, refuse). Names sort in time order.
pub fn segment_stem(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whether `name` is a segment's file name (with or without a `_N` suffix).
pub fn is_segment_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".mp4") else {
        return false;
    };
    let (time, suffix) = stem.split_at(stem.len().min(20));
    let shape = time.len() == 20
        && time.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 => b == b'-',
            10 => b == b'T',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    shape
        && (suffix.is_empty()
            || suffix
                .strip_prefix('_')
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_segment_is_named_by_its_utc_start_to_the_second() {
        let t = UNIX_EPOCH + Duration::from_secs(1_796_588_100); // 2026-12-06 20:15:00 UTC
        assert_eq!(segment_stem(t), "2026-12-06T20-15-00Z");
        assert_eq!(segment_stem(UNIX_EPOCH), "1970-01-01T00-00-00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399); // 2000-02-29
        assert_eq!(segment_stem(leap), "2000-02-29T23-59-59Z");
    }

    #[test]
    fn only_segment_names_are_ours() {
        for ours in ["2026-12-06T20-15-00Z.mp4", "2026-12-06T20-15-00Z_02.mp4"] {
            assert!(is_segment_name(ours), "{ours}");
        }
        for theirs in [
            "holiday.mp4",
            "2026-12-06T20-15-00Z.mp4.part",
            "2026-12-06T20-15-00Z_.mp4",
            "2026-12-06T20-15-00Z-1.mp4",
            "2026-12-06T20-15-00Z_1.mp4",
            "2026-12-06 20-15-00Z.mp4",
            "2026-12-06T20-15-00Zx.mp4",
        ] {
            assert!(!is_segment_name(theirs), "{theirs}");
        }
    }

    #[test]
    fn a_scan_keeps_leftover_parts_lists_oldest_first_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("2026-12-06T20-16-00Z.mp4"), [0; 20]).unwrap();
        std::fs::write(p("2026-12-06T20-15-00Z.mp4"), [0; 10]).unwrap();
        std::fs::write(p("2026-12-06T20-17-00Z.mp4.part"), [0; 5]).unwrap();
        std::fs::write(p("notes.txt"), [0; 99]).unwrap();
        let mut store = Store::new(dir.path().to_owned());
        store.scan().unwrap();
        assert_eq!(store.closed_bytes(), 35);
        assert!(p("2026-12-06T20-17-00Z.mp4").exists());
        assert_eq!(store.delete_oldest(), Some(10));
        assert!(!p("2026-12-06T20-15-00Z.mp4").exists());
        assert_eq!(store.delete_oldest(), Some(20));
        assert_eq!(store.delete_oldest(), Some(5));
        assert_eq!(store.delete_oldest(), None);
        assert!(p("notes.txt").exists(), "not ours: never deleted");
    }

    #[test]
    fn two_segments_in_the_same_second_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path().to_owned());
        let t = UNIX_EPOCH + Duration::from_secs(1_796_588_100);
        let a = store.create(t).unwrap();
        std::fs::rename(&a.part, &a.path).unwrap();
        let b = store.create(t).unwrap();
        assert_ne!(a.path, b.path);
        assert!(b.part.to_str().unwrap().ends_with("Z_01.mp4.part"));
        assert!(b.path > a.path, "the later one sorts after the first");
        // Even once the first is gone (retention), a name is never reused.
        std::fs::remove_file(&a.path).unwrap();
        let c = store.create(t).unwrap();
        assert!(c.path > b.path, "{c:?}");
    }

    #[test]
    fn a_missing_directory_is_an_error_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path().join("gone"));
        assert!(store.scan().is_err());
        assert!(store.create(SystemTime::now()).is_err());
        assert!(!dir.path().join("gone").exists());
    }
}
