//! Configuration: raw TOML (or command-line flags) → a checked [`Config`].
//!
//! Owns: the file format and every default. Two steps, as everywhere in campush:
//! [`RawConfig`] mirrors the file exactly (serde, unknown keys rejected with their name, line and
//! column); [`RawConfig::check`] validates ranges and cross-field rules and produces [`Config`],
//! which the rest of the program uses and which cannot hold an invalid value. Command-line flags
//! are applied to a `RawConfig` first, so both routes meet the same checks.
//!
//! Secrets: stream keys live inside [`RtmpUrl`], whose `Display`/`Debug` redact them;
//! [`Config::describe`] prints the effective configuration without them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audio::{AudioFormat, AudioSpec};
use crate::flv::AudioMetadata;
use crate::ingest::IngestSettings;
use crate::publisher::PublisherSettings;
use crate::queue::Limits;
use crate::rtmp::{RtmpUrl, Scheme};
use crate::source::SourceSpec;
use crate::status::ReportSettings;
use crate::transport::{self, TlsOptions};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// The configuration file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub source: RawSource,
    #[serde(default, rename = "output")]
    pub outputs: Vec<RawOutput>,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub queue: RawQueue,
    #[serde(default)]
    pub status: RawStatus,
    #[serde(default)]
    pub audio: RawAudio,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    /// `silent` (default) or `none`.
    pub source: Option<String>,
    /// 44100 or 48000 (default).
    pub rate: Option<u32>,
    /// 1 or 2 (default).
    pub channels: Option<u8>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// `file:PATH`, `stdin`, `v4l2:DEVICE`, `v4l2-m2m:CAPTURE[,ENCODER]`.
    pub spec: Option<String>,
    pub fps: Option<f64>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    pub pace: Option<bool>,
    /// Announced in onMetaData (and, later, the encoder's target).
    pub bitrate_kbps: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub url: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<PathBuf>,
    /// rtmps:// only: PEM file of extra trusted CA certificates.
    pub tls_ca: Option<PathBuf>,
    /// rtmps:// only: accept any certificate (lab use; warned about at every connect).
    pub tls_insecure: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub connect_timeout_s: Option<f64>,
    pub publish_timeout_s: Option<f64>,
    pub write_timeout_s: Option<f64>,
    pub backoff_min_s: Option<f64>,
    pub backoff_max_s: Option<f64>,
    /// Consecutive failed attempts before giving up; 0 = never.
    pub max_attempts: Option<u32>,
    pub chunk_size: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub max_seconds: Option<f64>,
    pub max_mib: Option<f64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    /// Seconds between summary lines in the log; 0 = none.
    pub summary_interval_s: Option<f64>,
    /// The JSON status file; "" = none. Keep it on a RAM file system, never the SD card.
    pub file: Option<PathBuf>,
}

/// One checked destination.
#[derive(Debug, Clone)]
pub struct Output {
    pub url: RtmpUrl,
    pub tls: TlsOptions,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceSpec,
    pub fps: Option<f64>,
    pub looping: bool,
    pub pace: bool,
    pub outputs: Vec<Output>,
    pub publisher: PublisherSettings,
    pub queue: Limits,
    pub ingest: IngestSettings,
    pub report: ReportSettings,
    pub audio: AudioSpec,
}

impl RawConfig {
    /// Parses TOML text. `path` only names the file in errors. A UTF-8 byte-order mark (Windows
    /// Notepad) is ignored; CRLF line endings are plain TOML.
    pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        RawConfig::parse(&text, path)
    }

    /// Validates everything and applies defaults.
    pub fn check(&self) -> Result<Config, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let Some(spec) = &self.source.spec else {
            return invalid(
                "no source: set [source] spec = \"file:PATH\" | \"stdin\" | ... (or --source)"
                    .into(),
            );
        };
        let source = SourceSpec::parse(spec).map_err(ConfigError::Invalid)?;
        let fps = match self.source.fps {
            Some(f) if !(f.is_finite() && f > 0.0 && f <= 240.0) => {
                return invalid(format!(
                    "source.fps = {f}: expected a frame rate between 0 and 240"
                ))
            }
            other => other,
        };
        let looping = self.source.looping.unwrap_or(false);
        if looping && !matches!(source, SourceSpec::File(_)) {
            return invalid("source.loop only applies to a file: source".into());
        }
        if self.outputs.is_empty() {
            return invalid(
                "no destination: add an [[output]] with url = \"rtmp://host/app/key\" (or --url)"
                    .into(),
            );
        }
        let outputs = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| check_output(i, o))
            .collect::<Result<Vec<_>, _>>()?;

        let n = &self.network;
        let secs = |v: Option<f64>, name: &str, default: f64, max: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(ConfigError::Invalid(format!(
                    "network.{name} = {v}: expected seconds between 0 and {max}"
                )))
            }
        };
        let mut publisher = PublisherSettings {
            connect_timeout: secs(n.connect_timeout_s, "connect_timeout_s", 10.0, 300.0)?,
            publish_timeout: secs(n.publish_timeout_s, "publish_timeout_s", 10.0, 300.0)?,
            write_timeout: secs(n.write_timeout_s, "write_timeout_s", 5.0, 300.0)?,
            backoff_min: secs(n.backoff_min_s, "backoff_min_s", 0.5, 3600.0)?,
            backoff_max: secs(n.backoff_max_s, "backoff_max_s", 10.0, 3600.0)?,
            // A one-shot file push is a job: fail fast with the error. Live sources and looping
            // files never give up unless told to.
            max_attempts: match n.max_attempts {
                Some(0) => None,
                Some(m) => Some(m),
                None if matches!(source, SourceSpec::File(_)) && !looping => Some(1),
                None => None,
            },
            ..PublisherSettings::default()
        };
        if publisher.backoff_min > publisher.backoff_max {
            return invalid("network.backoff_min_s is larger than network.backoff_max_s".into());
        }
        if let Some(size) = n.chunk_size {
            if !(128..=65536).contains(&size) {
                return invalid(format!(
                    "network.chunk_size = {size}: expected 128 to 65536"
                ));
            }
            publisher.chunk_size = size;
        }

        let q = &self.queue;
        let max_seconds = q.max_seconds.unwrap_or(2.0);
        if !(max_seconds.is_finite() && (0.1..=60.0).contains(&max_seconds)) {
            return invalid(format!(
                "queue.max_seconds = {max_seconds}: expected 0.1 to 60"
            ));
        }
        let max_mib = q.max_mib.unwrap_or(8.0);
        if !(max_mib.is_finite() && (0.5..=1024.0).contains(&max_mib)) {
            return invalid(format!("queue.max_mib = {max_mib}: expected 0.5 to 1024"));
        }
        let mut report = ReportSettings::default();
        if let Some(s) = self.status.summary_interval_s {
            if s == 0.0 {
                report.summary_every = None;
            } else if s.is_finite() && s > 0.0 && s <= 86_400.0 {
                report.summary_every = Some(Duration::from_secs_f64(s));
            } else {
                return invalid(format!(
                    "status.summary_interval_s = {s}: expected 0 (off) to 86400 seconds"
                ));
            }
        }
        match &self.status.file {
            Some(p) if p.as_os_str().is_empty() => report.file = None,
            Some(p) => report.file = Some(p.clone()),
            None => {}
        }

        let a = &self.audio;
        let format = AudioFormat::new(
            a.rate.unwrap_or(AudioFormat::default().rate),
            a.channels.unwrap_or(AudioFormat::default().channels),
        )
        .map_err(|e| ConfigError::Invalid(format!("[audio] {e}")))?;
        let audio = match a.source.as_deref().map(str::trim) {
            None | Some("silent") => AudioSpec::Silent(format),
            Some("none") => AudioSpec::None,
            Some(other) => {
                return invalid(format!(
                    "audio.source = {other:?}: expected \"silent\" (a silent AAC track, which YouTube and Facebook need) or \"none\""
                ))
            }
        };

        // Enough frames for the time bound at 60 fps; the pool is sized from this.
        let max_frames = ((max_seconds * 60.0).ceil() as usize).max(16);
        Ok(Config {
            source,
            fps,
            looping,
            pace: self.source.pace.unwrap_or(true),
            outputs,
            publisher,
            queue: Limits {
                max_duration_us: (max_seconds * 1e6) as u64,
                max_bytes: (max_mib * 1024.0 * 1024.0) as usize,
                max_frames,
            },
            ingest: IngestSettings {
                fps,
                video_kbps: self.source.bitrate_kbps.map(f64::from),
                audio: audio.format().map(|f| AudioMetadata {
                    rate: f.rate,
                    channels: f.channels,
                    kbps: audio.kbps().unwrap_or(0.0),
                }),
            },
            report,
            audio,
        })
    }
}

fn check_output(i: usize, o: &RawOutput) -> Result<Output, ConfigError> {
    let which = format!("output #{}", i + 1);
    let Some(url) = &o.url else {
        return Err(ConfigError::Invalid(format!("{which}: url is missing")));
    };
    let key = match (&o.key, &o.key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid(format!(
                "{which}: set key or key_file, not both"
            )))
        }
        (Some(k), None) => Some(k.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let url = match key {
        Some(key) if key.is_empty() => {
            return Err(ConfigError::Invalid(format!(
                "{which}: the stream key is empty"
            )))
        }
        Some(key) => RtmpUrl::with_key(url, &key),
        None => RtmpUrl::parse(url),
    }
    .map_err(|e| ConfigError::Invalid(format!("{which}: {e}")))?;
    let tls = TlsOptions {
        ca_file: o.tls_ca.clone(),
        insecure: o.tls_insecure.unwrap_or(false),
    };
    let invalid = |m: String| Err(ConfigError::Invalid(format!("{which}: {m}")));
    match url.scheme {
        Scheme::Rtmp if tls.ca_file.is_some() || tls.insecure => {
            return invalid(
                "tls_ca and tls_insecure only apply to rtmps:// URLs (this one is rtmp://)".into(),
            )
        }
        Scheme::Rtmp => {}
        Scheme::Rtmps if !transport::TLS_AVAILABLE => {
            return invalid(
                "rtmps:// needs TLS, and this campush was built without it (cargo feature `tls`)"
                    .into(),
            )
        }
        Scheme::Rtmps => {}
    }
    if tls.insecure && tls.ca_file.is_some() {
        return invalid("set tls_ca or tls_insecure, not both".into());
    }
    if let Some(path) = &tls.ca_file {
        transport::check_ca_file(path)
            .map_err(|e| ConfigError::Invalid(format!("{which}: {e}")))?;
    }
    Ok(Output { url, tls })
}

impl Config {
    /// Whether `other` configures the same source, so a reload can keep it running.
    pub fn same_source(&self, other: &Config) -> bool {
        self.source == other.source
            && self.fps == other.fps
            && self.looping == other.looping
            && self.pace == other.pace
            && self.ingest.video_kbps == other.ingest.video_kbps
            && self.queue.max_frames == other.queue.max_frames
            && self.audio == other.audio
            && self.outputs.len() <= other.pool_destinations()
    }

    /// How many destinations the frame pool is sized for (see `pool::slots_for`): at least four,
    /// so that a reload adding a destination or two keeps the source running. Unused slots cost
    /// address space, not memory.
    pub fn pool_destinations(&self) -> usize {
        self.outputs.len().max(4)
    }

    /// The effective configuration, for `check-config` and the start-up log. No secrets.
    pub fn describe(&self) -> String {
        let mut s = format!("source = {}\n", self.source);
        if let Some(fps) = self.fps {
            s += &format!("fps = {fps}\n");
        }
        s += &format!("loop = {}\npace = {}\n", self.looping, self.pace);
        s += &format!("audio = {}\n", self.audio);
        for o in &self.outputs {
            s += &format!("output = {}", o.url);
            if let Some(ca) = &o.tls.ca_file {
                s += &format!(" (tls_ca = {})", ca.display());
            }
            if o.tls.insecure {
                s += " (TLS certificate verification OFF: tls_insecure = true)";
            }
            s += "\n";
        }
        let p = &self.publisher;
        s += &format!(
            "connect_timeout = {:?}, publish_timeout = {:?}, write_timeout = {:?}\n",
            p.connect_timeout, p.publish_timeout, p.write_timeout
        );
        s += &format!(
            "backoff = {:?}..{:?}, max_attempts = {}\n",
            p.backoff_min,
            p.backoff_max,
            p.max_attempts
                .map_or("never give up".to_string(), |m| m.to_string())
        );
        s += &format!(
            "queue = {:.1} s / {:.1} MiB\n",
            self.queue.max_duration_us as f64 / 1e6,
            self.queue.max_bytes as f64 / 1048576.0
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text, Path::new("test.toml"))?.check()
    }

    const MINIMAL: &str = r#"
[source]
spec = "file:clip.h264"

[[output]]
url = "rtmp://127.0.0.1/live/secretkey"
"#;

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.source, SourceSpec::File("clip.h264".into()));
        assert!(c.pace && !c.looping);
        assert_eq!(c.publisher.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.publisher.write_timeout, Duration::from_secs(5));
        assert_eq!(c.queue.max_duration_us, 2_000_000);
        assert_eq!(c.queue.max_bytes, 8 << 20);
        assert_eq!(c.outputs[0].url.stream_key, "secretkey");
        assert_eq!(
            c.audio,
            AudioSpec::Silent(AudioFormat::new(48_000, 2).unwrap())
        );
    }

    #[test]
    fn the_audio_section_chooses_the_track() {
        let base = "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[audio]\n";
        let c = parse(&format!("{base}source = \"none\"\n")).unwrap();
        assert_eq!(c.audio, AudioSpec::None);
        assert!(c.ingest.audio.is_none());
        let c = parse(&format!("{base}rate = 44100\nchannels = 1\n")).unwrap();
        assert_eq!(
            c.audio,
            AudioSpec::Silent(AudioFormat::new(44_100, 1).unwrap())
        );
        assert_eq!(c.ingest.audio.unwrap().rate, 44_100);
        for (text, needle) in [
            ("source = \"mic\"", "audio.source"),
            ("rate = 32000", "44100 or 48000"),
            ("channels = 6", "1 or 2"),
        ] {
            let msg = parse(&format!("{base}{text}\n")).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name_with_its_line() {
        let err = parse("[source]\nspec = \"stdin\"\nfsp = 30\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("fsp"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn windows_notepad_files_load() {
        let crlf = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
        assert!(parse(&crlf).is_ok());
    }

    #[test]
    fn the_described_config_never_contains_the_key() {
        let c = parse(MINIMAL).unwrap();
        let text = c.describe();
        assert!(!text.contains("secretkey"), "{text}");
        assert!(!format!("{c:?}").contains("secretkey"));
        assert!(text.contains("127.0.0.1"));
    }

    #[test]
    fn a_separate_key_makes_the_whole_url_path_the_app() {
        let c = parse(
            "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://a.example/live2\"\nkey=\" abc \"\n",
        )
        .unwrap();
        assert_eq!(c.outputs[0].url.app, "live2");
        assert_eq!(c.outputs[0].url.stream_key, "abc");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_an_rtmps_url_is_a_configuration_error() {
        let msg = parse("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmps://h/a/k\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("built without"), "{msg}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_settings_apply_to_rtmps_only_and_are_checked() {
        let base = "[source]\nspec=\"stdin\"\n[[output]]\n";
        let c = parse(&format!(
            "{base}url=\"rtmps://live.example/app/k\"\ntls_insecure=true\n"
        ))
        .unwrap();
        assert!(c.outputs[0].tls.insecure);
        assert!(c.describe().contains("verification OFF"));
        for (text, needle) in [
            (
                "url=\"rtmp://h/a/k\"\ntls_insecure=true",
                "only apply to rtmps://",
            ),
            (
                "url=\"rtmp://h/a/k\"\ntls_ca=\"ca.pem\"",
                "only apply to rtmps://",
            ),
            (
                "url=\"rtmps://h/a/k\"\ntls_ca=\"ca.pem\"\ntls_insecure=true",
                "not both",
            ),
            (
                "url=\"rtmps://h/a/k\"\ntls_ca=\"/nonexistent/ca.pem\"",
                "CA file",
            ),
        ] {
            let msg = parse(&format!("{base}{text}\n")).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (text, needle) in [
            ("[source]\nspec=\"stdin\"\nfps=0\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.fps"),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[network]\nwrite_timeout_s=-1", "write_timeout_s"),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[queue]\nmax_seconds=0", "queue.max_seconds"),
            ("[source]\nspec=\"stdin\"\nloop=true\n[[output]]\nurl=\"rtmp://h/a/k\"", "loop"),
            ("[source]\nspec=\"stdin\"\n", "no destination"),
            ("[[output]]\nurl=\"rtmp://h/a/k\"", "no source"),
            ("[source]\nspec=\"stdin\"\nfps=\"thirty\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "fps"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }
}
