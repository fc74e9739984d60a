//! Configuration: raw TOML (or command-line flags) → a checked [`Config`].
//!
//! Owns: the file format, where the file is looked for, every default, and the error messages a
//! person fixing a file on an SD card reads. Two steps, as everywhere in campush:
//! [`RawConfig`] mirrors the file exactly (serde, unknown keys rejected);
//! [`RawConfig::check`] validates ranges and cross-field rules and produces [`Config`], which the
//! rest of the program uses and which cannot hold an invalid value. Command-line flags are applied
//! to a `RawConfig` first, so both routes meet the same checks.
//!
//! Where: `--config FILE`, else the first of [`SEARCH_PATHS`] that exists (the boot partition is
//! FAT and editable from any PC: `/boot/firmware` on Bookworm, `/boot` before it). The search is
//! made below a root ([`system_root`], `/` unless `CAMPUSH_ROOT` is set) so tests never look at
//! the real system. Files saved by Windows Notepad load: a UTF-8 byte-order mark is skipped, CRLF
//! line endings are plain TOML.
//!
//! Boards: `board = "rpi-4"` puts a profile (`boards/*.toml`, see [`crate::board`]) under the
//! file: every key the user sets wins, the profile fills in the rest.
//!
//! Errors name the file, the line and column, the key, what was expected (type or range), and
//! for a misspelt key or value the nearest valid one ("did you mean ...?"). The exit code for
//! every configuration error is 78, which the systemd unit does not restart.
//!
//! Secrets: stream keys live inside [`RtmpUrl`], whose `Display`/`Debug` redact them;
//! [`Config::describe`] prints the effective configuration without them. A key may live in its
//! own file (`key_file`, relative to the configuration file) so the configuration can be shared.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audio::{AudioFormat, AudioSpec};
use crate::board::Board;
use crate::flv::AudioMetadata;
use crate::ingest::IngestSettings;
use crate::led::{GpioLine, LedConfig};
use crate::publisher::PublisherSettings;
use crate::queue::Limits;
use crate::rtmp::{RtmpUrl, Scheme};
use crate::source::SourceSpec;
use crate::status::ReportSettings;
use crate::v4l2::V4l2Settings;

/// Where campush looks for its configuration when not given `--config`, in this order.
pub const SEARCH_PATHS: [&str; 3] = [
    "/boot/firmware/campush.toml",
    "/boot/campush.toml",
    "/etc/campush/campush.toml",
];

/// The directory the system paths are taken relative to: `/`, or `CAMPUSH_ROOT` (for tests of
/// the whole binary: configuration search and the sysfs LED are then looked up below it).
pub fn system_root() -> PathBuf {
    std::env::var_os("CAMPUSH_ROOT")
        .filter(|r| !r.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// [`SEARCH_PATHS`] below `root`.
pub fn search_paths(root: &Path) -> Vec<PathBuf> {
    SEARCH_PATHS
        .iter()
        .map(|p| root.join(p.trim_start_matches('/')))
        .collect()
}
use crate::transport::{self, TlsOptions};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No `--config` and no file in any of the search paths (a fresh card).
    #[error("{}", not_found(searched))]
    NotFound { searched: Vec<PathBuf> },
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{path}{}: {message}{excerpt}", position(*at))]
    Parse {
        path: PathBuf,
        /// Line and column, from 1.
        at: Option<(usize, usize)>,
        message: String,
        /// The offending line with a caret under the spot, or empty.
        excerpt: String,
    },
    /// A value of the right type that is out of range or contradicts another key.
    #[error("{key}: {message}")]
    Value { key: String, message: String },
    #[error("{0}")]
    Invalid(String),
    /// An error found while checking a file, with where in the file.
    #[error("{path}{}: {error}{excerpt}", position(*at))]
    InFile {
        path: PathBuf,
        at: Option<(usize, usize)>,
        error: Box<ConfigError>,
        excerpt: String,
    },
}

impl ConfigError {
    fn value(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            key: key.into(),
            message: message.into(),
        }
    }
}

fn position(at: Option<(usize, usize)>) -> String {
    at.map(|(l, c)| format!(", line {l}, column {c}"))
        .unwrap_or_default()
}

fn not_found(searched: &[PathBuf]) -> String {
    let mut s = String::from("no configuration file: campush looked for");
    for p in searched {
        s += &format!("\n    {}", p.display());
    }
    s += "\nPut a campush.toml on the SD card's boot partition (the template is \
          examples/campush.toml), or give --config FILE, or --url and --source.";
    s
}

/// The LED to show `error` on when the file could not even be read as a configuration: a file
/// that is valid TOML (say, with a misspelt key) still names its LED in `[led]` or `board`.
pub fn led_for_error(error: &ConfigError) -> LedConfig {
    #[derive(Deserialize)]
    struct LedOnly {
        board: Option<String>,
        #[serde(default)]
        led: RawLed,
    }
    let ConfigError::Parse { path, .. } = error else {
        return LedConfig::default();
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return LedConfig::default();
    };
    match toml::from_str::<LedOnly>(text.strip_prefix('\u{feff}').unwrap_or(&text)) {
        Ok(only) => RawConfig {
            board: only.board,
            led: only.led,
            ..RawConfig::default()
        }
        .led_for_errors(),
        Err(_) => LedConfig::default(),
    }
}

/// Where a [`RawConfig`] was read from, for error positions and relative `key_file`s.
#[derive(Debug, Clone)]
pub struct Origin {
    pub path: PathBuf,
    /// The text as parsed (byte-order mark removed).
    pub text: String,
}

/// The configuration file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// A board profile (`boards/NAME.toml`) whose defaults sit under this file's keys.
    pub board: Option<String>,
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
    pub led: RawLed,
    /// Set by [`RawConfig::parse`]; not a key.
    #[serde(skip)]
    pub origin: Option<Origin>,
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
    /// Announced in onMetaData, and the encoder's target bit rate (`v4l2-m2m`).
    pub bitrate_kbps: Option<u32>,
    // V4L2 sources (see `v4l2::V4l2Settings`): capture size, raw format, encoder controls.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub pixel_format: Option<String>,
    pub bitrate_mode: Option<String>,
    pub gop: Option<u32>,
    pub profile: Option<String>,
    pub level: Option<String>,
    pub repeat_sequence_header: Option<bool>,
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

/// `[led]`. When the file has this section, it replaces the board profile's `[led]` whole.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLed {
    /// Default: `gpio` when `line` is set, else `sysfs`.
    pub backend: Option<LedBackend>,
    /// sysfs: the LED under /sys/class/leds (default `ACT`, else `led0`).
    pub name: Option<String>,
    /// gpio: the chip (`gpiochip0`, a path, a number or a label).
    pub chip: Option<String>,
    /// gpio: a line name (`"GPIO17"`) or an offset on `chip`.
    pub line: Option<RawLine>,
    pub active_low: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    Gpio,
    Sysfs,
    None,
}

/// A GPIO line as written: a name in quotes or an offset number.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLine(pub GpioLine);

impl<'de> Deserialize<'de> for RawLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a line name like \"GPIO17\" or a line offset number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawLine, E> {
                u32::try_from(v)
                    .map(|o| RawLine(GpioLine::Offset(o)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawLine, E> {
                u32::try_from(v)
                    .map(|o| RawLine(GpioLine::Offset(o)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawLine, E> {
                if v.trim().is_empty() {
                    return Err(E::invalid_value(serde::de::Unexpected::Str(v), &self));
                }
                Ok(RawLine(GpioLine::Name(v.trim().to_owned())))
            }
        }
        d.deserialize_any(Visitor)
    }
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
    /// Device settings of `v4l2:` and `v4l2-m2m:` sources.
    pub v4l2: V4l2Settings,
    /// The board profile, if `board` was set (its defaults are already applied above).
    pub board: Option<Board>,
    pub led: LedConfig,
    /// The file this came from, if any.
    pub file: Option<PathBuf>,
    pub audio: AudioSpec,
}

impl RawConfig {
    /// Parses TOML text. `path` names the file in errors and anchors a relative `key_file`. A
    /// UTF-8 byte-order mark (Windows Notepad) is ignored; CRLF line endings are plain TOML.
    pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut raw: RawConfig = toml::from_str(text).map_err(|e| parse_error(text, path, &e))?;
        raw.origin = Some(Origin {
            path: path.to_owned(),
            text: text.to_owned(),
        });
        Ok(raw)
    }

    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            at: None,
            message: format!(
                "not UTF-8 text (byte {}): save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
            excerpt: String::new(),
        })?;
        RawConfig::parse(&text, path)
    }

    /// Loads the first of [`SEARCH_PATHS`] below `root` that exists.
    pub fn find(root: &Path) -> Result<RawConfig, ConfigError> {
        let searched = search_paths(root);
        match searched.iter().find(|p| p.exists()) {
            Some(path) => RawConfig::load(path),
            None => Err(ConfigError::NotFound { searched }),
        }
    }

    /// The LED to show an error on even when the configuration does not check: this file's (or
    /// its board's) if those are valid, else the onboard LED.
    pub fn led_for_errors(&self) -> LedConfig {
        let board = self.board.as_deref().and_then(|b| Board::named(b).ok());
        check_led(&self.led, board.as_ref()).unwrap_or_default()
    }

    /// Validates everything and applies defaults (the board's, then campush's). An error found in
    /// a file says where in the file.
    pub fn check(&self) -> Result<Config, ConfigError> {
        self.check_values().map_err(|e| self.locate(e))
    }

    /// Wraps `error` with the file and, for a value, its line and column.
    fn locate(&self, error: ConfigError) -> ConfigError {
        let Some(origin) = &self.origin else {
            return error;
        };
        let found = match &error {
            ConfigError::Value { key, .. } => find_key(&origin.text, key),
            _ => None,
        };
        ConfigError::InFile {
            path: origin.path.clone(),
            at: found.map(|f| line_col(&origin.text, f)),
            excerpt: found.map(|f| excerpt(&origin.text, f)).unwrap_or_default(),
            error: Box::new(error),
        }
    }

    /// The user's `[source]` with the board's defaults under it: every key the user set wins.
    /// Resolution, bitrate and frame rate are camera settings: they apply to V4L2 sources only
    /// (a file or pipe has its own).
    fn source_with(&self, board: Option<&Board>) -> RawSource {
        let mut s = self.source.clone();
        let Some(d) = board.map(|b| &b.source) else {
            return s;
        };
        let spec = s.spec.get_or_insert_with(|| d.spec.clone());
        if spec.starts_with("v4l2") {
            s.fps.get_or_insert(d.fps);
            s.bitrate_kbps.get_or_insert(d.bitrate_kbps);
            // width, height, gop: here too, once [source] has those keys.
        }
        s
    }

    fn check_values(&self) -> Result<Config, ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let board = match &self.board {
            Some(name) => Some(Board::named(name).map_err(|m| ConfigError::value("board", m))?),
            None => None,
        };
        let src = self.source_with(board.as_ref());
        let Some(spec) = &src.spec else {
            return invalid(
                "no source: set [source] spec = \"file:PATH\" | \"stdin\" | ... (or --source)"
                    .into(),
            );
        };
        let source = SourceSpec::parse(spec).map_err(|m| ConfigError::value("source.spec", m))?;
        let fps = match src.fps {
            Some(f) if !(f.is_finite() && f > 0.0 && f <= 240.0) => {
                return Err(ConfigError::value(
                    "source.fps",
                    format!("{f} is out of range: expected a frame rate above 0, at most 240"),
                ));
            }
            other => other,
        };
        let looping = src.looping.unwrap_or(false);
        if looping && !matches!(source, SourceSpec::File(_)) {
            return Err(ConfigError::value(
                "source.loop",
                "applies only to a file: source",
            ));
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
            .map(|(i, o)| check_output(i, o, self.origin.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;

        let n = &self.network;
        let secs = |v: Option<f64>, name: &str, default: f64, max: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(ConfigError::value(
                    format!("network.{name}"),
                    format!("{v} is out of range: expected seconds above 0, at most {max}"),
                ))
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
            return Err(ConfigError::value(
                "network.backoff_min_s",
                "is larger than network.backoff_max_s",
            ));
        }
        if let Some(size) = n.chunk_size {
            if !(128..=65536).contains(&size) {
                return Err(ConfigError::value(
                    "network.chunk_size",
                    format!("{size} is out of range: expected 128 to 65536"),
                ));
            }
            publisher.chunk_size = size;
        }

        let q = &self.queue;
        let max_seconds = q.max_seconds.unwrap_or(2.0);
        if !(max_seconds.is_finite() && (0.1..=60.0).contains(&max_seconds)) {
            return Err(ConfigError::value(
                "queue.max_seconds",
                format!("{max_seconds} is out of range: expected 0.1 to 60"),
            ));
        }
        let max_mib = q.max_mib.unwrap_or(8.0);
        if !(max_mib.is_finite() && (0.5..=1024.0).contains(&max_mib)) {
            return Err(ConfigError::value(
                "queue.max_mib",
                format!("{max_mib} is out of range: expected 0.5 to 1024"),
            ));
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
            Some(p) => {
                report.file = Some(p.clone());
                report.file_configured = true;
            }
            None => {}
        }

        let led = check_led(&self.led, board.as_ref())?;
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
        let v4l2 = check_v4l2(&self.source, &source)?;
        Ok(Config {
            source,
            fps,
            looping,
            pace: src.pace.unwrap_or(true),
            outputs,
            publisher,
            queue: Limits {
                max_duration_us: (max_seconds * 1e6) as u64,
                max_bytes: (max_mib * 1024.0 * 1024.0) as usize,
                max_frames,
            },
            ingest: IngestSettings {
                fps,
                video_kbps: src.bitrate_kbps.map(f64::from),
                audio: audio.format().map(|f| AudioMetadata {
                    rate: f.rate,
                    channels: f.channels,
                    kbps: audio.kbps().unwrap_or(0.0),
                }),
            },
            report,
            v4l2,
            board,
            led,
            file: self.origin.as_ref().map(|o| o.path.clone()),
            audio,
        })
    }
}

/// The V4L2 device keys of `[source]`: checked by `v4l2::V4l2Settings`, and rejected by name
/// for sources that have no device.
fn check_v4l2(s: &RawSource, spec: &SourceSpec) -> Result<V4l2Settings, ConfigError> {
    let raw = crate::v4l2::RawV4l2 {
        width: s.width,
        height: s.height,
        fps: s.fps,
        pixel_format: s.pixel_format.as_deref(),
        bitrate_kbps: s.bitrate_kbps,
        bitrate_mode: s.bitrate_mode.as_deref(),
        gop: s.gop,
        profile: s.profile.as_deref(),
        level: s.level.as_deref(),
        repeat_sequence_header: s.repeat_sequence_header,
    };
    let device_keys = [
        ("width", s.width.is_some()),
        ("pixel_format", s.pixel_format.is_some()),
        ("bitrate_mode", s.bitrate_mode.is_some()),
        ("gop", s.gop.is_some()),
        ("profile", s.profile.is_some()),
        ("level", s.level.is_some()),
        ("repeat_sequence_header", s.repeat_sequence_header.is_some()),
    ];
    let encoder_only = [
        "pixel_format",
        "bitrate_mode",
        "gop",
        "profile",
        "level",
        "repeat_sequence_header",
    ];
    for (key, set) in device_keys {
        let applies = match spec {
            SourceSpec::V4l2M2m { .. } => true,
            SourceSpec::V4l2(_) => !encoder_only.contains(&key),
            _ => false,
        };
        if set && !applies {
            return Err(ConfigError::Invalid(format!(
                "source.{key} does not apply to source {spec} (it is for {})",
                if encoder_only.contains(&key) {
                    "v4l2-m2m: sources"
                } else {
                    "v4l2: and v4l2-m2m: sources"
                }
            )));
        }
    }
    V4l2Settings::check(&raw).map_err(ConfigError::Invalid)
}

fn check_output(i: usize, o: &RawOutput, origin: Option<&Origin>) -> Result<Output, ConfigError> {
    let key_name = |k: &str| format!("output[{}].{k}", i + 1);
    let Some(url) = &o.url else {
        return Err(ConfigError::value(
            key_name("url"),
            "missing: every [[output]] needs url = \"rtmp://host/app\"",
        ));
    };
    let key = match (&o.key, &o.key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::value(
                key_name("key_file"),
                "set key or key_file, not both",
            ))
        }
        (Some(k), None) => Some(k.trim().to_owned()),
        (None, Some(path)) => {
            // Relative to the configuration file: a key file beside campush.toml on the card.
            let path = match origin.and_then(|o| o.path.parent()) {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.clone(),
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::value(
                    key_name("key_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Some(text.trim_start_matches('\u{feff}').trim().to_owned())
        }
        (None, None) => None,
    };
    let url = match key {
        Some(key) if key.is_empty() => {
            let which = if o.key.is_some() { "key" } else { "key_file" };
            return Err(ConfigError::value(
                key_name(which),
                "the stream key is empty",
            ));
        }
        Some(key) => RtmpUrl::with_key(url, &key),
        None => RtmpUrl::parse(url),
    }
    .map_err(|e| ConfigError::value(key_name("url"), e.to_string()))?;
    let tls = TlsOptions {
        ca_file: o.tls_ca.clone(),
        insecure: o.tls_insecure.unwrap_or(false),
    };
    let invalid = |m: String| Err(ConfigError::value(key_name("tls_ca"), m));
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
            .map_err(|e| ConfigError::value(key_name("tls_ca"), e.to_string()))?;
    }
    Ok(Output { url, tls })
}

/// `[led]` over the board's `[led]` (replaced whole when the file has any LED key).
fn check_led(user: &RawLed, board: Option<&Board>) -> Result<LedConfig, ConfigError> {
    let led = match board {
        Some(b) if *user == RawLed::default() => &b.led,
        _ => user,
    };
    let gpio_key = if led.line.is_some() {
        Some("led.line")
    } else if led.chip.is_some() {
        Some("led.chip")
    } else {
        None
    };
    let backend = led.backend.unwrap_or(if gpio_key.is_some() {
        LedBackend::Gpio
    } else {
        LedBackend::Sysfs
    });
    let active_low = led.active_low.unwrap_or(false);
    Ok(match backend {
        LedBackend::None => LedConfig::None,
        LedBackend::Sysfs => {
            if let Some(key) = gpio_key {
                return Err(ConfigError::value(
                    key,
                    "applies to backend = \"gpio\", not \"sysfs\"",
                ));
            }
            if let Some(name) = &led.name {
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    return Err(ConfigError::value(
                        "led.name",
                        format!("{name:?}: expected the name of an LED in /sys/class/leds, like \"ACT\""),
                    ));
                }
            }
            LedConfig::Sysfs {
                name: led.name.clone(),
                active_low,
            }
        }
        LedBackend::Gpio => {
            if led.name.is_some() {
                return Err(ConfigError::value(
                    "led.name",
                    "applies to backend = \"sysfs\"; a GPIO LED is chosen by line (and chip)",
                ));
            }
            let Some(RawLine(line)) = &led.line else {
                return Err(ConfigError::value(
                    "led.line",
                    "missing: backend = \"gpio\" needs line = \"GPIO17\" (a line name) or an offset number",
                ));
            };
            LedConfig::Gpio {
                chip: led.chip.clone(),
                line: line.clone(),
                active_low,
            }
        }
    })
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
        let mut s = String::new();
        if let Some(file) = &self.file {
            s += &format!("file = {}\n", file.display());
        }
        if let Some(b) = &self.board {
            s += &format!("board = {} ({})\n", b.board.name, b.board.description);
        }
        s += &format!("source = {}\n", self.source);
        if let Some(fps) = self.fps {
            s += &format!("fps = {fps}\n");
        }
        if let Some(kbps) = self.ingest.video_kbps {
            s += &format!("bitrate_kbps = {kbps}\n");
        }
        s += &format!("loop = {}\npace = {}\n", self.looping, self.pace);
        let device = self.v4l2.describe();
        if !device.is_empty() {
            s += &format!("device: {device}\n");
        }
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
        s += &format!("led = {}\n", self.led);
        s
    }
}

// ---- Error messages for a person editing the file ----------------------------------------------

/// Turns toml/serde's error into one that names the key, the expected type and a likely fix.
fn parse_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigError {
    let span = e.span();
    let at = span.as_ref().map(|s| line_col(text, s.start));
    let section = span
        .as_ref()
        .map(|s| section_at(text, s.start))
        .unwrap_or_default();
    let raw = e.message().trim();
    let qualify = |key: &str| {
        if section.is_empty() {
            key.to_owned()
        } else {
            format!("{section}.{key}")
        }
    };
    let message = if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (unknown, expected) = backticked(rest);
        let mut m = format!("unknown key {:?}", qualify(&unknown));
        if let Some(near) = nearest(&unknown, expected.iter().map(String::as_str)) {
            m += &format!("; did you mean {near:?}?");
        } else if let Some(home) = home_of(&unknown, &section) {
            m += &format!("; {unknown:?} belongs in {home}");
        }
        if !expected.is_empty() {
            let place = if section.is_empty() {
                "at the top".to_owned()
            } else {
                format!("in [{section}]")
            };
            m += &format!(" (valid keys {place}: {})", expected.join(", "));
        }
        m
    } else if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let (unknown, expected) = backticked(rest);
        let key = span
            .as_ref()
            .and_then(|s| key_on_line(text, s.start))
            .map(|k| qualify(&k))
            .unwrap_or_default();
        let mut m = format!("{key}: unknown value {unknown:?}");
        if let Some(near) = nearest(&unknown, expected.iter().map(String::as_str)) {
            m += &format!("; did you mean {near:?}?");
        }
        m + &format!(" (expected one of {})", expected.join(", "))
    } else if let Some((found, expected)) = raw
        .strip_prefix("invalid type: ")
        .or_else(|| raw.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "))
    {
        let key = span
            .as_ref()
            .and_then(|s| key_on_line(text, s.start))
            .map(|k| format!("{}: ", qualify(&k)))
            .unwrap_or_default();
        format!(
            "{key}expected {}, found {}",
            plain_type(expected),
            found.replace('`', "")
        )
    } else if let Some(rest) = raw.strip_prefix("duplicate key ") {
        let (key, _) = backticked(rest);
        format!("{:?} is set twice", qualify(&key))
    } else {
        // TOML syntax: the parser's own words are precise; keep them on one line.
        format!("not valid TOML: {}", raw.replace('\n', "; "))
    };
    ConfigError::Parse {
        path: path.to_owned(),
        at,
        message,
        excerpt: span.map(|s| excerpt(text, s.start)).unwrap_or_default(),
    }
}

/// The first backticked word, and the backticked words after it.
fn backticked(s: &str) -> (String, Vec<String>) {
    let mut words = s.split('`').skip(1).step_by(2).map(str::to_owned);
    let first = words.next().unwrap_or_default();
    (first, words.collect())
}

/// serde's type names in words.
fn plain_type(expected: &str) -> String {
    match expected {
        "f64" | "f32" => "a number".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "text in quotes".into(),
        "a sequence" => "a list [ ... ]".into(),
        t if t.starts_with("struct ") => "a table".into(),
        t => t.replace('`', ""),
    }
}

/// Line and column (from 1, in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The line holding byte `offset`, and a caret under it, indented for the log.
fn excerpt(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim_end_matches('\r');
    let pad: String = text[start..offset]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("\n    | {line}\n    | {pad}^")
}

/// The table (`[name]` or `[[name]]`) the byte `offset` is in; empty at the top of the file.
fn section_at(text: &str, offset: usize) -> String {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            let l = l.split('#').next().unwrap_or(l).trim();
            l.trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The key assigned on the line holding byte `offset` (`key = value`).
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[start..].split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.contains('\n')).then(|| key.to_owned())
}

/// Where `key` ("network.write_timeout_s", "output[2].url") is in the file (a byte offset): its
/// value if it is there, else the nearest enclosing table that is.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut span = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((_, mut value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
            break;
        };
        if let Some(i) = index {
            match value
                .get_ref()
                .as_array()
                .and_then(|a| a.get(i.checked_sub(1)?))
            {
                Some(v) => value = v,
                None => break,
            }
        }
        span = Some(value.span());
        match value.get_ref().as_table() {
            Some(t) => table = t,
            None => break,
        }
    }
    span.map(|s| s.start)
}

/// The candidate nearest to `word` by edit distance (transpositions count one), if near enough
/// to be a typo: one edit for words up to 3 letters, two up to 6, three beyond.
pub fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().replace('-', "_").chars().collect();
    let limit = match w.len() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    candidates
        .map(|c| {
            let v: Vec<char> = c.to_lowercase().replace('-', "_").chars().collect();
            (edit_distance(&w, &v), c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d: Vec<Vec<usize>> = (0..=a.len())
        .map(|i| (0..=b.len()).map(|j| if i == 0 { j } else { i }).collect())
        .collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The keys serde accepts in `section` ("" = the top level), asked of serde itself, so the list
/// cannot drift from the structs.
fn keys_of(section: &str) -> Vec<String> {
    let probe = match section {
        "" => "campush_probe_ = 0".to_owned(),
        "output" => "[[output]]\ncampush_probe_ = 0".to_owned(),
        s => format!("[{s}]\ncampush_probe_ = 0"),
    };
    match toml::from_str::<RawConfig>(&probe) {
        Err(e) => backticked(e.message().strip_prefix("unknown field ").unwrap_or("")).1,
        Ok(_) => Vec::new(),
    }
}

/// `[source]` if `key` is a key of another table than `section`.
fn home_of(key: &str, section: &str) -> Option<String> {
    keys_of("")
        .into_iter()
        .filter(|s| s != section && s != "board")
        .find(|s| keys_of(s).iter().any(|k| k == key))
        .map(|s| {
            if s == "output" {
                "[[output]]".into()
            } else {
                format!("[{s}]")
            }
        })
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
    fn a_v4l2_m2m_source_takes_its_device_settings() {
        let c = parse(
            "[source]\nspec=\"v4l2-m2m:/dev/video0\"\nwidth=1280\nheight=720\nfps=30\n\
             bitrate_kbps=2500\ngop=60\nprofile=\"high\"\nlevel=\"4.1\"\n\
             [[output]]\nurl=\"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!((c.v4l2.width, c.v4l2.height), (Some(1280), Some(720)));
        assert_eq!(c.v4l2.bitrate_bps, Some(2_500_000));
        assert_eq!(
            (c.v4l2.gop, c.v4l2.profile, c.v4l2.level),
            (Some(60), Some(4), Some(12))
        );
        assert!(!c.v4l2.repeat_sequence_header);
        assert!(
            c.describe().contains("device: size = 1280x720"),
            "{}",
            c.describe()
        );
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
            ("[source]\nspec=\"stdin\"\ngop=30\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.gop does not apply"),
            ("[source]\nspec=\"v4l2:/dev/video0\"\nprofile=\"high\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "v4l2-m2m: sources"),
            ("[source]\nspec=\"v4l2-m2m:/dev/video0\"\nlevel=\"9\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.level"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    // ---- where the file is found --------------------------------------------------------------

    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_boot_partition_is_searched_first_then_the_old_boot_then_etc() {
        let root = tempfile::tempdir().unwrap();
        let etc = write(root.path(), "etc/campush/campush.toml", MINIMAL);
        assert_eq!(
            RawConfig::find(root.path()).unwrap().origin.unwrap().path,
            etc
        );
        let boot = write(root.path(), "boot/campush.toml", MINIMAL);
        assert_eq!(
            RawConfig::find(root.path()).unwrap().origin.unwrap().path,
            boot
        );
        let firmware = write(root.path(), "boot/firmware/campush.toml", MINIMAL);
        let found = RawConfig::find(root.path()).unwrap();
        assert_eq!(found.origin.as_ref().unwrap().path, firmware);
        assert_eq!(found.check().unwrap().file, Some(firmware));
    }

    #[test]
    fn a_fresh_card_without_a_file_says_where_campush_looked() {
        let root = tempfile::tempdir().unwrap();
        let err = RawConfig::find(root.path()).unwrap_err();
        assert!(matches!(err, ConfigError::NotFound { .. }));
        let msg = err.to_string();
        for p in SEARCH_PATHS {
            let full = root.path().join(&p[1..]);
            assert!(msg.contains(&full.display().to_string()), "{msg}");
        }
        assert!(msg.contains("--config"), "{msg}");
    }

    // ---- errors a person can act on ------------------------------------------------------------

    fn error_in_file(text: &str) -> String {
        let err = RawConfig::parse(text, Path::new("/boot/firmware/campush.toml"))
            .and_then(|raw| raw.check())
            .unwrap_err();
        err.to_string()
    }

    #[test]
    fn a_misspelt_key_names_file_line_column_and_the_nearest_valid_key() {
        let msg = error_in_file("[source]\nspec = \"stdin\"\n  fsp = 30\n");
        assert!(
            msg.starts_with("/boot/firmware/campush.toml, line 3, column 3: "),
            "{msg}"
        );
        assert!(msg.contains("unknown key \"source.fsp\""), "{msg}");
        assert!(msg.contains("did you mean \"fps\"?"), "{msg}");
        assert!(msg.contains("  fsp = 30\n    |   ^"), "{msg}");
    }

    #[test]
    fn a_key_in_the_wrong_table_is_sent_home() {
        let msg = error_in_file("[network]\nfps = 30\n");
        assert!(msg.contains("\"fps\" belongs in [source]"), "{msg}");
        let msg = error_in_file("[source]\nurl = \"rtmp://h/a/k\"\n");
        assert!(msg.contains("belongs in [[output]]"), "{msg}");
    }

    #[test]
    fn a_misspelt_table_or_top_level_key_is_suggested_too() {
        let msg = error_in_file("[sorce]\nspec = \"stdin\"\n");
        assert!(msg.contains("did you mean \"source\"?"), "{msg}");
        let msg = error_in_file("bord = \"rpi-4\"\n");
        assert!(msg.contains("did you mean \"board\"?"), "{msg}");
        assert!(msg.contains("line 1, column 1"), "{msg}");
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_expected_type() {
        for (text, key, expected) in [
            (
                "[source]\nfps = \"thirty\"\n",
                "source.fps",
                "expected a number",
            ),
            (
                "[source]\npace = \"yes\"\n",
                "source.pace",
                "expected true or false",
            ),
            (
                "[network]\nmax_attempts = -1\n",
                "network.max_attempts",
                "a whole number, 0 or more",
            ),
            (
                "[source]\nspec = 5\n",
                "source.spec",
                "expected text in quotes",
            ),
            (
                "[led]\nline = true\n",
                "led.line",
                "a line name like \"GPIO17\"",
            ),
        ] {
            let msg = error_in_file(text);
            assert!(msg.contains("line 2, column "), "{msg}");
            assert!(msg.contains(&format!("{key}: ")), "{key}: {msg}");
            assert!(msg.contains(expected), "{key}: {msg}");
        }
    }

    #[test]
    fn an_out_of_range_value_is_located_and_names_its_range() {
        let text = "[source]\nspec = \"stdin\"\n\n[[output]]\nurl = \"rtmp://h/a/k\"\n\n[network]\nwrite_timeout_s = -1\n";
        let msg = error_in_file(text);
        assert!(
            msg.starts_with("/boot/firmware/campush.toml, line 8, column 19: network.write_timeout_s: -1 is out of range: expected seconds above 0, at most 300"),
            "{msg}"
        );
    }

    #[test]
    fn errors_in_the_second_output_point_at_it() {
        let text = "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[[output]]\nurl = \"http://h/a/k\"\n";
        let msg = error_in_file(text);
        assert!(msg.contains("line 6, column 7: output[2].url: "), "{msg}");
    }

    #[test]
    fn an_unknown_board_or_led_backend_suggests_the_nearest() {
        let msg = error_in_file("board = \"rpi4\"\n");
        assert!(
            msg.contains(
                "line 1, column 9: board: unknown board \"rpi4\": did you mean \"rpi-4\"?"
            ),
            "{msg}"
        );
        let msg = error_in_file("[led]\nbackend = \"gpi0\"\n");
        assert!(
            msg.contains("led.backend: unknown value \"gpi0\"; did you mean \"gpio\"?"),
            "{msg}"
        );
    }

    #[test]
    fn toml_syntax_errors_are_located() {
        let msg = error_in_file("[source\nspec = \"stdin\"\n");
        assert!(msg.contains("line 1, column 8: not valid TOML"), "{msg}");
    }

    #[test]
    fn windows_notepad_errors_still_have_the_right_line_and_column() {
        let msg = error_in_file("\u{feff}[source]\r\nspec = \"stdin\"\r\nfsp = 30\r\n");
        assert!(
            msg.contains("line 3, column 1: unknown key \"source.fsp\""),
            "{msg}"
        );
        assert!(!msg.contains('\r'), "{msg:?}");
    }

    #[test]
    fn a_file_that_is_not_utf8_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "campush.toml", "");
        std::fs::write(&path, b"[source]\nspec = \"caf\xe9\"\n").unwrap();
        let msg = RawConfig::load(&path).unwrap_err().to_string();
        assert!(msg.contains("not UTF-8"), "{msg}");
    }

    // ---- boards --------------------------------------------------------------------------------

    #[test]
    fn a_board_fills_in_what_the_file_leaves_out() {
        let c = parse("board = \"rpi-4\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n").unwrap();
        assert_eq!(
            c.source,
            SourceSpec::V4l2M2m {
                capture: "/dev/video0".into(),
                encoder: Some("/dev/video11".into())
            }
        );
        assert_eq!(c.fps, Some(30.0));
        assert_eq!(c.ingest.video_kbps, Some(4500.0));
        assert_eq!(c.board.as_ref().unwrap().source.gop, 60);
        assert_eq!(c.led, LedConfig::default());
        assert!(c.describe().contains("board = rpi-4"), "{}", c.describe());
    }

    #[test]
    fn every_key_the_user_sets_wins_over_the_board() {
        let c = parse(
            "board = \"rpi-4\"\n[source]\nspec = \"v4l2:/dev/video2\"\nfps = 25\nbitrate_kbps = 1000\n\
             [[output]]\nurl = \"rtmp://h/a/k\"\n[led]\nline = \"GPIO17\"\n",
        )
        .unwrap();
        assert_eq!(c.source, SourceSpec::V4l2("/dev/video2".into()));
        assert_eq!(c.fps, Some(25.0));
        assert_eq!(c.ingest.video_kbps, Some(1000.0));
        assert!(matches!(c.led, LedConfig::Gpio { .. }), "{:?}", c.led);
    }

    #[test]
    fn camera_defaults_of_a_board_do_not_apply_to_a_file_or_pipe() {
        let c = parse(
            "board = \"rpi-4\"\n[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!(c.fps, None, "the stream's own timing");
        assert_eq!(c.ingest.video_kbps, None);
    }

    #[test]
    fn every_board_gives_a_complete_configuration() {
        for name in crate::board::names() {
            let text = format!("board = \"{name}\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n");
            let c = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name == "generic-arm64" {
                assert_eq!(c.led, LedConfig::None);
            }
        }
    }

    // ---- LED -----------------------------------------------------------------------------------

    fn led(section: &str) -> Result<LedConfig, ConfigError> {
        parse(&format!("{MINIMAL}\n[led]\n{section}\n")).map(|c| c.led)
    }

    #[test]
    fn led_settings_are_checked() {
        assert_eq!(led("").unwrap(), LedConfig::default());
        assert_eq!(led("backend = \"none\"").unwrap(), LedConfig::None);
        assert_eq!(
            led("line = \"GPIO17\"\nactive_low = true").unwrap(),
            LedConfig::Gpio {
                chip: None,
                line: GpioLine::Name("GPIO17".into()),
                active_low: true
            }
        );
        assert_eq!(
            led("backend = \"gpio\"\nchip = \"gpiochip4\"\nline = 17").unwrap(),
            LedConfig::Gpio {
                chip: Some("gpiochip4".into()),
                line: GpioLine::Offset(17),
                active_low: false
            }
        );
        assert_eq!(
            led("name = \"led1\"").unwrap(),
            LedConfig::Sysfs {
                name: Some("led1".into()),
                active_low: false
            }
        );
        for (section, needle) in [
            ("backend = \"gpio\"", "led.line: missing"),
            (
                "backend = \"sysfs\"\nline = \"GPIO17\"",
                "led.line: applies to backend = \"gpio\"",
            ),
            (
                "line = \"GPIO17\"\nname = \"ACT\"",
                "led.name: applies to backend = \"sysfs\"",
            ),
            ("name = \"../../etc\"", "led.name"),
            ("line = -3", "led.line"),
        ] {
            let msg = led(section).unwrap_err().to_string();
            assert!(msg.contains(needle), "{section}: {msg}");
        }
    }

    #[test]
    fn an_invalid_file_still_names_its_led_for_the_error_pattern() {
        let raw = RawConfig::parse(
            "board = \"generic-arm64\"\n[source]\nspec = \"nonsense\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(raw.check().is_err());
        assert_eq!(raw.led_for_errors(), LedConfig::None);
        let raw = RawConfig::parse("[led]\nline = \"GPIO4\"\n", Path::new("c.toml")).unwrap();
        assert!(matches!(raw.led_for_errors(), LedConfig::Gpio { .. }));
    }

    #[test]
    fn a_file_with_an_unknown_key_still_names_its_led() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "campush.toml",
            "[source]\nfsp = 30\n[led]\nline = \"GPIO17\"\n",
        );
        let err = RawConfig::load(&path).unwrap_err();
        assert_eq!(
            led_for_error(&err),
            LedConfig::Gpio {
                chip: None,
                line: GpioLine::Name("GPIO17".into()),
                active_low: false
            }
        );
        std::fs::write(&path, "[led\nline = 3").unwrap();
        let err = RawConfig::load(&path).unwrap_err();
        assert_eq!(led_for_error(&err), LedConfig::default(), "not TOML at all");
    }

    // ---- stream keys in their own file ----------------------------------------------------------

    #[test]
    fn key_file_is_read_relative_to_the_config_and_notepad_endings_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("youtube.key"), "\u{feff}abcd-efgh\r\n").unwrap();
        let path = write(
            dir.path(),
            "campush.toml",
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://a.example/live2\"\nkey_file = \"youtube.key\"\n",
        );
        let c = RawConfig::load(&path).unwrap().check().unwrap();
        assert_eq!(c.outputs[0].url.stream_key, "abcd-efgh");
        assert!(!c.describe().contains("abcd"), "{}", c.describe());
    }

    #[test]
    fn a_missing_key_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "campush.toml",
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://a.example/live2\"\nkey_file = \"gone.key\"\n",
        );
        let msg = RawConfig::load(&path)
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 5, column 12: output[1].key_file: cannot read"),
            "{msg}"
        );
        assert!(msg.contains("gone.key"), "{msg}");
    }

    // ---- the template ---------------------------------------------------------------------------

    const TEMPLATE: &str = include_str!("../examples/campush.toml");

    /// The template with every `#key = default` line switched on.
    fn template_with_defaults_set() -> String {
        TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_template_is_a_valid_configuration() {
        let c = RawConfig::parse(TEMPLATE, Path::new("campush.toml"))
            .unwrap()
            .check()
            .unwrap();
        assert!(!c.describe().contains("xxxx"), "{}", c.describe());
    }

    #[test]
    fn the_defaults_written_in_the_template_are_the_real_defaults() {
        let describe = |text: &str| {
            RawConfig::parse(text, Path::new("campush.toml"))
                .unwrap()
                .check()
                .unwrap()
                .describe()
        };
        let with = template_with_defaults_set();
        assert_ne!(
            with, TEMPLATE,
            "the template shows defaults as #key = value"
        );
        assert_eq!(describe(&with), describe(TEMPLATE));
    }

    #[test]
    fn the_template_documents_every_key() {
        let documented = |section: &str, key: &str| {
            let mut current = "";
            TEMPLATE.lines().any(|l| {
                let t = l.trim_start_matches(['#', ' ']);
                if let Some(h) = t.strip_prefix('[') {
                    current = h.trim_matches(|c| c == '[' || c == ']');
                    return false;
                }
                current == section
                    && t.strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
            })
        };
        let top = keys_of("");
        assert!(top.contains(&"board".to_owned()), "{top:?}");
        for section in &top {
            let keys = keys_of(section);
            if keys.is_empty() {
                assert!(documented("", section), "top-level key {section}");
            }
            for key in keys {
                assert!(
                    documented(section, &key),
                    "[{section}] {key} is not in the template"
                );
            }
        }
    }
}
