//! The observers that write: the summary line in the log, the JSON status file and the
//! Prometheus text file, kept current by [`run_reporter`], and the `[status]` settings that
//! say where and how often ([`RawStatus`] → [`ReportSettings::check`]).
//!
//! Owns: [`write_atomically`] (a temporary file created exclusively, then renamed: readers never
//! see half a file and a planted link is never written through), [`default_status_file`]
//! (systemd's `RuntimeDirectory`: RAM, never the SD card). Invariants: a file that cannot be
//! written is reported once and left alone, never a reason to stop streaming.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Counters, SharedStatus};
use crate::setting::Invalid;

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then rename.
///
/// The temporary file is created exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`) under a name
/// nobody can foresee, so a symlink or file planted in the directory is never written through
/// or truncated: a planted name only makes campush pick another one (a bounded number of
/// times). The file is made readable by everyone (0644) whatever the umask (the service's is
/// 0077): a person running `campush status` and node_exporter read these files, and they hold
/// no secret.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for _ in 0..8 {
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{name}.{}.{n}.{nanos:08x}.tmp",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let written = file
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .and_then(|()| file.write_all(contents.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written;
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AlreadyExists.into()))
}

/// Where and how often the observers report.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// A summary line in the log this often (`None`: never).
    pub summary_every: Option<Duration>,
    /// The JSON status file, rewritten every `file_every` (`None`: no file).
    pub file: Option<PathBuf>,
    pub file_every: Duration,
    /// The file was configured (not the default): failing to write it is worth a warning.
    pub file_configured: bool,
    /// The Prometheus text file, rewritten with the status file (`None`: none).
    pub prometheus_file: Option<PathBuf>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            summary_every: Some(Duration::from_secs(60)),
            file: Some(default_status_file(
                std::env::var("RUNTIME_DIRECTORY").ok().as_deref(),
            )),
            file_every: Duration::from_secs(5),
            file_configured: false,
            prometheus_file: None,
        }
    }
}

/// `[status]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    /// Seconds between summary lines in the log; 0 = none.
    pub summary_interval_s: Option<f64>,
    /// The JSON status file; "" = none. Keep it on a RAM file system, never the SD card.
    pub file: Option<PathBuf>,
    /// The Prometheus text file (node_exporter's textfile collector); "" or absent = none.
    pub prometheus_file: Option<PathBuf>,
}

impl ReportSettings {
    /// The defaults with what `[status]` sets on top.
    pub fn check(raw: &RawStatus) -> Result<ReportSettings, Invalid> {
        let mut report = ReportSettings::default();
        if let Some(s) = raw.summary_interval_s {
            if s == 0.0 {
                report.summary_every = None;
            } else if s.is_finite() && s > 0.0 && s <= 86_400.0 {
                report.summary_every = Some(Duration::from_secs_f64(s));
            } else {
                return Err(Invalid::new(
                    "summary_interval_s",
                    format!("{s} is out of range: expected 0 (off) to 86400 seconds"),
                ));
            }
        }
        match &raw.file {
            Some(p) if p.as_os_str().is_empty() => report.file = None,
            Some(p) => {
                report.file = Some(p.clone());
                report.file_configured = true;
            }
            None => {}
        }
        match &raw.prometheus_file {
            Some(p) if p.as_os_str().is_empty() => {}
            // node_exporter's textfile collector reads `*.prom` and nothing else: any other name
            // would be written and never collected, silently.
            Some(p) if p.extension().is_none_or(|e| e != "prom") => {
                return Err(Invalid::new(
                    "prometheus_file",
                    format!(
                        "{} does not end in .prom: node_exporter's textfile collector reads only \
                         *.prom files (e.g. \"/var/lib/prometheus/node-exporter/campush.prom\")",
                        p.display()
                    ),
                ))
            }
            Some(p) => report.prometheus_file = Some(p.clone()),
            None => {}
        }
        Ok(report)
    }
}

/// `status.json` in systemd's `RuntimeDirectory` (the first, if several), else
/// `/run/campush/status.json`: always a RAM file system, never the SD card.
pub fn default_status_file(runtime_directory: Option<&str>) -> PathBuf {
    match runtime_directory.and_then(|d| d.split(':').next()) {
        Some(dir) if !dir.is_empty() => Path::new(dir).join("status.json"),
        _ => PathBuf::from("/run/campush/status.json"),
    }
}

/// Logs the summary line and keeps the status file and the Prometheus file current until the
/// task is dropped. A file that cannot be written is reported once and then left alone: it is a
/// convenience, never a reason to stop streaming.
pub async fn run_reporter(status: SharedStatus, settings: ReportSettings) {
    let start = Instant::now();
    let tick = settings
        .summary_every
        .map_or(settings.file_every, |s| s.min(settings.file_every));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rx = status.subscribe();
    let mut last_summary = Instant::now();
    let mut last_bytes = (Instant::now(), 0u64);
    let mut kbps = 0.0;
    let mut file = settings.file.clone();
    let mut prometheus = settings.prometheus_file.clone();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = rx.changed() => if changed.is_err() { return },
        }
        let now = Instant::now();
        let bytes = Counters::get(&status.counters.bytes_sent);
        let dt = now.duration_since(last_bytes.0).as_secs_f64();
        if dt >= 1.0 {
            kbps = (bytes - last_bytes.1) as f64 * 8.0 / 1000.0 / dt;
            last_bytes = (now, bytes);
        }
        if let Some(every) = settings.summary_every {
            if now.duration_since(last_summary) >= every {
                last_summary = now;
                log::info!("{}", status.summary(kbps));
            }
        }
        if let Some(path) = &file {
            if let Err(e) = write_atomically(path, &status.to_json(kbps, start.elapsed())) {
                // The default place (/run/campush) exists under systemd; elsewhere its absence
                // is normal, not a problem worth a warning.
                if settings.file_configured {
                    log::warn!(
                        "status file {}: {e}; not writing it any more",
                        path.display()
                    );
                } else {
                    log::debug!("status file {}: {e}; not writing it", path.display());
                }
                file = None;
            }
        }
        if let Some(path) = &prometheus {
            if let Err(e) = write_atomically(path, &status.to_prometheus(kbps, start.elapsed())) {
                log::warn!(
                    "Prometheus file {}: {e}; not writing it any more",
                    path.display()
                );
                prometheus = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    #[test]
    fn the_status_file_is_never_written_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let status = dir.path().join("status.json");
        // The names a fixed-name writer would use, planted as links to the victim.
        std::os::unix::fs::symlink(&victim, dir.path().join("status.json.tmp")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".status.json.tmp")).unwrap();
        for round in 0..3 {
            super::write_atomically(&status, &format!("{{\"round\": {round}}}")).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read_to_string(&status).unwrap(), "{\"round\": 2}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| {
                n.ends_with(".tmp") && n.starts_with(".status.json.") && n != ".status.json.tmp"
            })
            .collect();
        assert_eq!(
            left,
            Vec::<String>::new(),
            "no temporary file is left behind"
        );
    }

    #[test]
    fn the_prometheus_file_is_off_by_default_and_must_end_in_prom() {
        let check = |file: Option<&str>| {
            ReportSettings::check(&RawStatus {
                prometheus_file: file.map(PathBuf::from),
                ..RawStatus::default()
            })
        };
        assert_eq!(check(None).unwrap().prometheus_file, None);
        assert_eq!(check(Some("")).unwrap().prometheus_file, None);
        assert_eq!(
            check(Some("/run/campush/campush.prom"))
                .unwrap()
                .prometheus_file,
            Some(PathBuf::from("/run/campush/campush.prom"))
        );
        for bad in [
            "/run/campush/campush.txt",
            "/run/campush/campush",
            "/run/.prom",
        ] {
            let e = check(Some(bad)).unwrap_err();
            assert_eq!(e.key, "prometheus_file");
            assert!(e.message.contains("*.prom"), "{e}");
        }
    }

    /// Settings that write the status file (and `prometheus`) every 5 s and log nothing.
    fn writing(file: PathBuf, prometheus: Option<PathBuf>) -> ReportSettings {
        ReportSettings {
            summary_every: None,
            file: Some(file),
            file_every: Duration::from_secs(5),
            file_configured: true,
            prometheus_file: prometheus,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_reporter_writes_the_prometheus_file_with_the_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let (file, prom) = (
            dir.path().join("status.json"),
            dir.path().join("campush.prom"),
        );
        let status = SharedStatus::new();
        let d = status.set_destinations(1);
        let task = tokio::spawn(run_reporter(
            status.clone(),
            writing(file.clone(), Some(prom.clone())),
        ));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(
            text.contains("campush_status{status=\"starting\"} 1"),
            "{text}"
        );
        d[0].set(Status::Streaming);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let text = std::fs::read_to_string(&prom).unwrap();
        assert!(
            text.contains("campush_status{status=\"streaming\"} 1"),
            "{text}"
        );
        task.abort();
    }

    #[test]
    fn the_status_file_lives_in_the_runtime_directory() {
        assert_eq!(
            default_status_file(Some("/run/campush:/run/other")),
            Path::new("/run/campush/status.json")
        );
        assert_eq!(
            default_status_file(None),
            Path::new("/run/campush/status.json")
        );
        assert_eq!(
            default_status_file(Some("/tmp/x")),
            Path::new("/tmp/x/status.json")
        );
    }

    #[test]
    fn the_status_file_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        write_atomically(&path, "one").unwrap();
        write_atomically(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reporter_writes_the_status_file_on_change_and_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let status = SharedStatus::new();
        let d = status.set_destinations(1);
        let task = tokio::spawn(run_reporter(status.clone(), writing(path.clone(), None)));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(std::fs::read_to_string(&path).unwrap().contains("starting"));
        d[0].set(Status::Streaming);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("\"streaming\""));
        task.abort();
    }
}
