//! The status file: what campush is doing, for scripts and people on the board
//! (`cat /run/campush/status`), as an observer of the status board.
//!
//! Owns: the file's format and its updates. Under systemd the unit's `RuntimeDirectory=campush`
//! gives `RUNTIME_DIRECTORY=/run/campush` (removed again when the service stops); without it
//! there is no status file. The file is rewritten on every status change and every
//! [`PERIOD`], atomically (a temporary file renamed over it), so a reader never sees half of it:
//!
//! ```text
//! status=streaming
//! frames_in=1234
//! frames_sent=1230
//! frames_dropped=0
//! bytes_sent=4567890
//! connects=1
//! updated_unix=1767225600
//! ```
//!
//! The text is formatted into one buffer reused for every update: no allocation per update once
//! it has grown to size.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::status::{Counters, StatusBoard};

/// How often the counters are refreshed while the status stays the same.
pub const PERIOD: Duration = Duration::from_secs(5);

/// The status file's path under systemd (`$RUNTIME_DIRECTORY/status`), if any.
pub fn path_from_env() -> Option<PathBuf> {
    path_in(std::env::var("RUNTIME_DIRECTORY").ok()?.as_str())
}

/// `status` in the first of the runtime directories (systemd separates several with ':').
fn path_in(runtime_directory: &str) -> Option<PathBuf> {
    let first = runtime_directory.split(':').next()?;
    (!first.is_empty()).then(|| Path::new(first).join("status"))
}

/// Keeps `path` up to date until the board is gone (then writes the final state and returns).
pub async fn run_status_file(board: StatusBoard, path: PathBuf) {
    let mut rx = board.subscribe();
    let counters = std::sync::Arc::clone(&board.counters);
    drop(board);
    let tmp = path.with_extension("tmp");
    let mut text = String::with_capacity(256);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        let status = *rx.borrow_and_update();
        text.clear();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let c = &counters;
        let _ = write!(
            text,
            "status={status}\nframes_in={}\nframes_sent={}\nframes_dropped={}\nbytes_sent={}\nconnects={}\nupdated_unix={now}\n",
            Counters::get(&c.frames_in),
            Counters::get(&c.frames_sent),
            Counters::get(&c.frames_dropped),
            Counters::get(&c.bytes_sent),
            Counters::get(&c.connects),
        );
        // Readable by everyone whatever the umask (the unit's is 0077): it holds no secret.
        let written = std::fs::write(&tmp, text.as_bytes())
            .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            if !warned {
                log::warn!("status file {}: {e}", path.display());
                warned = true;
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_file_follows_the_status_and_the_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        let board = StatusBoard::new();
        let task = tokio::spawn(run_status_file(board.clone(), path.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            read(&path).starts_with("status=starting\nframes_in=0\n"),
            "{}",
            read(&path)
        );

        board.set(Status::Streaming);
        Counters::add(&board.counters.frames_sent, 42);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let text = read(&path);
        assert!(text.starts_with("status=streaming\n"), "{text}");

        // The counters are refreshed within a period even when the status stays the same.
        Counters::add(&board.counters.frames_sent, 8);
        tokio::time::sleep(PERIOD).await;
        assert!(
            read(&path).contains("\nframes_sent=50\n"),
            "{}",
            read(&path)
        );

        drop(board);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
        assert!(!dir.path().join("status.tmp").exists());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o644,
            "readable by everyone, whatever the umask"
        );
    }

    #[test]
    fn the_path_is_in_the_first_runtime_directory() {
        assert_eq!(
            path_in("/run/campush:/run/other").unwrap(),
            Path::new("/run/campush/status")
        );
        assert_eq!(path_in(""), None);
    }
}
