//! One destination's settings: `[[output]]` ([`RawOutput`] → [`Output::check`]: the URL with its
//! stream key, from the URL, `key` or a `key_file`, and the TLS options) and `[network]`
//! ([`RawNetwork`] → [`PublisherSettings::check`]: deadlines, backoff, sizes).
//!
//! Invariants: a key file is read bounded and only when it is a small regular file, and no
//! error names it (a key pasted into `key_file` would be its name).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audio::AudioTrack;
use crate::rtmp::{RtmpUrl, Scheme};
use crate::setting::Invalid;
use crate::transport::TlsOptions;

/// Deadlines and sizes of one destination.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub connect_timeout: Duration,
    pub publish_timeout: Duration,
    pub write_timeout: Duration,
    /// How long to wait for the server to close after our unpublish.
    pub finish_timeout: Duration,
    pub chunk_size: u32,
    /// Give up after this many consecutive failed attempts (`None`: never).
    pub max_attempts: Option<u32>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connection that streamed this long resets the backoff schedule.
    pub healthy_after: Duration,
    /// Trust settings for `rtmps://`.
    pub tls: TlsOptions,
    /// The audio track sent with the video.
    pub audio: AudioTrack,
}

impl Default for PublisherSettings {
    fn default() -> Self {
        PublisherSettings {
            connect_timeout: Duration::from_secs(10),
            publish_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            finish_timeout: Duration::from_secs(5),
            chunk_size: 4096,
            max_attempts: None,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
            tls: TlsOptions::default(),
            audio: AudioTrack::None,
        }
    }
}

/// `[network]` of the configuration file, as written.
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

impl PublisherSettings {
    /// The deadlines, backoff and chunk size `[network]` asks for. `one_shot`: the source is a
    /// file pushed once, a job that should fail fast (one attempt unless `max_attempts` says
    /// otherwise); live sources and looping files never give up unless told to.
    pub fn check(raw: &RawNetwork, one_shot: bool) -> Result<PublisherSettings, Invalid> {
        let secs = |v: Option<f64>, key: &'static str, default: f64, max: f64| {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Invalid::new(
                    key,
                    format!("{v} is out of range: expected seconds above 0, at most {max}"),
                ))
            }
        };
        let mut settings = PublisherSettings {
            connect_timeout: secs(raw.connect_timeout_s, "connect_timeout_s", 10.0, 300.0)?,
            publish_timeout: secs(raw.publish_timeout_s, "publish_timeout_s", 10.0, 300.0)?,
            write_timeout: secs(raw.write_timeout_s, "write_timeout_s", 5.0, 300.0)?,
            backoff_min: secs(raw.backoff_min_s, "backoff_min_s", 0.5, 3600.0)?,
            backoff_max: secs(raw.backoff_max_s, "backoff_max_s", 10.0, 3600.0)?,
            max_attempts: match raw.max_attempts {
                Some(0) => None,
                Some(m) => Some(m),
                None if one_shot => Some(1),
                None => None,
            },
            ..PublisherSettings::default()
        };
        if settings.backoff_min > settings.backoff_max {
            return Err(Invalid::new(
                "backoff_min_s",
                "is larger than backoff_max_s",
            ));
        }
        if let Some(size) = raw.chunk_size {
            if !(128..=65536).contains(&size) {
                return Err(Invalid::new(
                    "chunk_size",
                    format!("{size} is out of range: expected 128 to 65536"),
                ));
            }
            settings.chunk_size = size;
        }
        Ok(settings)
    }
}

/// One `[[output]]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub url: Option<String>,
    pub key: Option<String>,
    /// A file holding only the key; relative: to the configuration file's directory.
    pub key_file: Option<PathBuf>,
    /// rtmps:// only: PEM file of extra trusted CA certificates; relative: as `key_file`.
    pub tls_ca: Option<PathBuf>,
    /// rtmps:// only: accept any certificate (lab use; warned about at every connect).
    pub tls_insecure: Option<bool>,
}

/// One destination, checked: where to publish (the key inside the URL) and how to trust it.
#[derive(Debug, Clone)]
pub struct Output {
    pub url: RtmpUrl,
    pub tls: TlsOptions,
    /// The file the key was read from (`key_file`, resolved), if it came from one.
    pub key_file: Option<PathBuf>,
}

impl Output {
    /// Checks an `[[output]]`. A relative `key_file` or `tls_ca` is taken from `base_dir` (the
    /// configuration file's directory: a key file beside campush.toml on the card), not from
    /// the working directory, which for a service is `/`. No error names the key, the URL or
    /// the key file: the key may sit in any of them.
    pub fn check(raw: &RawOutput, base_dir: Option<&Path>) -> Result<Output, Invalid> {
        let resolve = |path: &Path| match base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        let Some(url) = &raw.url else {
            return Err(Invalid::new(
                "url",
                "missing: every [[output]] needs url = \"rtmp://host/app\"",
            ));
        };
        let key_file = raw.key_file.as_deref().map(resolve);
        let (key, key_from) = match (&raw.key, &key_file) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new("key_file", "set key or key_file, not both"))
            }
            (Some(k), None) => (Some(k.trim().to_owned()), "key"),
            (None, Some(path)) => {
                let text = crate::small_file::read_to_string(path, KEY_FILE_LIMIT)
                    .map_err(|e| Invalid::new("key_file", unreadable_key_file(path, &e)))?;
                let key = text.trim_start_matches('\u{feff}').trim().to_owned();
                (Some(key), "key_file")
            }
            (None, None) => (None, "url"),
        };
        let url = match key {
            Some(key) if key.is_empty() => {
                return Err(Invalid::new(key_from, "the stream key is empty"))
            }
            Some(key) => RtmpUrl::with_key(url, &key),
            None => RtmpUrl::parse(url),
        }
        .map_err(|e| {
            use crate::rtmp::UrlError::{EmptyKey, InvalidKey};
            let key = match e {
                EmptyKey | InvalidKey => key_from,
                _ => "url",
            };
            Invalid::new(key, e.to_string())
        })?;
        let tls = TlsOptions::check(
            url.scheme == Scheme::Rtmps,
            raw.tls_ca.as_deref().map(resolve).as_deref(),
            raw.tls_insecure,
        )?;
        Ok(Output { url, tls, key_file })
    }
}

/// The most a key file may hold: a stream key is tens of bytes (a line, maybe a comment more).
/// Only a regular file is read, so `/dev/zero` or a FIFO is refused rather than read forever.
pub const KEY_FILE_LIMIT: usize = 4096;

/// Why a key file cannot be read, naming its directory but not its name (a key pasted into
/// `key_file` by mistake would be its name). A key file kept from other users (root:campush 0640
/// in /etc/campush) is closed to a person checking the configuration as themselves, too: that
/// error says how to check it as the service reads it.
pub(super) fn unreadable_key_file(path: &Path, e: &std::io::Error) -> String {
    let dir = path.parent().unwrap_or(Path::new(""));
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; check the configuration as the service reads it: \
             sudo -u campush campush check-config"
        }
        _ => "",
    };
    format!("cannot read the key file (in {}): {e}{hint}", dir.display())
}
