//! Configuration: raw TOML (or command-line flags) → a checked [`Config`].
//!
//! Owns: the file format, where the file is looked for, the board profiles, how the stages'
//! settings are put together, and the error messages a person fixing a file on an SD card reads.
//! Two steps, as everywhere in campush: [`RawConfig`] mirrors the file exactly (serde, unknown
//! keys rejected); [`RawConfig::check`] produces [`Config`], which the rest of the program uses
//! and which cannot hold an invalid value. Command-line flags are applied to a `RawConfig`
//! first, so both routes meet the same checks.
//!
//! Layout, and the direction of imports (each file uses only those below it; the stages never
//! use `config`, which sits above them):
//!
//! ```text
//! mod.rs     Config, and what check-config prints of it (describe)
//! check.rs   assembly: each section to its stage's check, the board under the file, the LED
//!            to show an error on
//! raw.rs     RawConfig (the file as written), the search path, toml's errors in words
//! board.rs   the board profiles (boards/*.toml, embedded)
//! error.rs   ConfigError, placed in the file: line, column, key, excerpt
//! redact.rs  what counts as a secret, and how an error hides it
//! exposure.rs keys at rest: a file holding a key that every user can read, and the warning
//! platforms.rs the platform rules (crate::platform) over the checked configuration
//! suggest.rs "did you mean ...?"
//! ```
//!
//! Where: `--config FILE`, else the first of [`SEARCH_PATHS`] that exists (the boot partition is
//! FAT and editable from any PC: `/boot/firmware` on Bookworm, `/boot` before it). The search is
//! made below a root ([`system_root`], `/` unless `CAMPUSH_ROOT` is set) so tests never look at
//! the real system.
//!
//! Checks: each stage checks its own section and returns its typed settings (`[source]`:
//! `source::settings`, `[[output]]` and `[network]`: `publisher`, `[queue]`: `queue`, `[status]`:
//! `status`, `[led]`: `led`, `[audio]`: `audio`), with a `setting::Invalid` that names the key.
//! Boards: `board = "rpi-4"` puts a profile under the file: every key the user sets wins.
//!
//! Errors name the file, the line and column, the key, what was expected (type or range), and
//! for a misspelt key or value the nearest valid one ("did you mean ...?"). The exit code for
//! every configuration error is 78, which the systemd unit does not restart.
//!
//! Secrets: stream keys live inside [`RtmpUrl`](crate::rtmp::RtmpUrl), whose `Display`/`Debug`
//! redact them; [`Config::describe`] prints the effective configuration without them; no error
//! shows a key or credential written in the file, whatever the mistake on its line
//! (`redact.rs`). A key may live in its own file (`key_file`; `--key-file` on the command line)
//! so the configuration can be shared, and kept where only campush can read it: the .deb and
//! deploy/remote-install.sh make `/etc/campush` root:campush 0750 with a placeholder
//! `stream.key` (0640), which the template's `key_file` names. A file holding a key that every
//! user can read is warned about ([`Config::key_warnings`], `exposure.rs`): by name and mode,
//! at start, on reload and by check-config; never an error, since on the FAT boot partition it
//! cannot be helped.
//!
//! Relative paths (`key_file`, `tls_ca`) are taken from the configuration file's directory;
//! those given as flags (`--key-file`, `--tls-ca`), from the working directory (`cli.rs` makes
//! them absolute before they meet the file).

pub mod board;
mod check;
mod error;
mod exposure;
mod platforms;
mod raw;
mod redact;
mod suggest;

use std::path::PathBuf;

pub use check::led_from_broken_file;
pub use error::{ConfigError, Place};
pub use raw::{search_paths, system_root, Origin, RawConfig, SEARCH_PATHS};

pub use crate::publisher::{Output, RawOutput};

use crate::audio::AudioSpec;
use crate::ingest::IngestSettings;
use crate::led::LedConfig;
use crate::publisher::PublisherSettings;
use crate::queue::Limits;
use crate::record::RecordSettings;
use crate::source::rpicam::RpicamSettings;
use crate::source::SourceSpec;
use crate::status::ReportSettings;
use crate::v4l2::V4l2Settings;
use board::Board;

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
    /// Device settings of `v4l2:`, `v4l2-m2m:` and `auto` sources.
    pub v4l2: V4l2Settings,
    /// Camera app settings of `rpicam` and `auto` sources.
    pub rpicam: RpicamSettings,
    /// The H.264 encoder `auto` puts a raw camera through (the board's); `None`: the first one
    /// found.
    pub encoder: Option<PathBuf>,
    /// The board profile, if `board` was set (its defaults are already applied above).
    pub board: Option<Board>,
    pub led: LedConfig,
    /// The file this came from, if any.
    pub file: Option<PathBuf>,
    /// Whether that file holds a stream key (in `key` or in a `url`).
    pub file_holds_key: bool,
    pub audio: AudioSpec,
    /// `[record]` or `--record DIR`: recording on the board, if asked for.
    pub record: Option<RecordSettings>,
}

impl Config {
    /// Whether `other` configures the same source, so a reload can keep it running.
    pub fn same_source(&self, other: &Config) -> bool {
        self.source == other.source
            && self.v4l2 == other.v4l2
            && self.rpicam == other.rpicam
            && self.encoder == other.encoder
            && self.fps == other.fps
            && self.looping == other.looping
            && self.pace == other.pace
            && self.ingest.video_kbps == other.ingest.video_kbps
            && self.ingest.adaptive_bitrate == other.ingest.adaptive_bitrate
            && self.queue.max_frames == other.queue.max_frames
            && self.audio == other.audio
            && self.destinations() <= other.pool_destinations()
    }

    /// The destinations: the outputs, and the recorder with `[record]`.
    pub fn destinations(&self) -> usize {
        self.outputs.len() + usize::from(self.record.is_some())
    }

    /// How many destinations the frame pool is sized for (see `pool::slots_for`): at least four,
    /// so that a reload adding a destination or two keeps the source running. Unused slots cost
    /// address space, not memory.
    pub fn pool_destinations(&self) -> usize {
        self.destinations().max(4)
    }

    /// The files that hold a stream key: the configuration file when it has one, and the key
    /// files of the destinations.
    fn files_with_keys(&self) -> Vec<(PathBuf, exposure::Holder)> {
        let file = self
            .file
            .iter()
            .filter(|_| self.file_holds_key)
            .map(|f| (f.clone(), exposure::Holder::ConfigFile));
        let key_files = self
            .outputs
            .iter()
            .filter_map(|o| o.key_file.clone())
            .map(|f| (f, exposure::Holder::KeyFile));
        file.chain(key_files).collect()
    }

    /// One line per file holding a stream key that every user of the machine can read (all
    /// those on FAT in one line): the file, its mode and what to do; never the key. For the
    /// log at start and on reload, and check-config's standard error.
    pub fn key_warnings(&self) -> Vec<String> {
        exposure::warnings(&self.files_with_keys())
    }

    /// One line per setting a destination's platform, H.264 or the board's encoder objects to
    /// without it being unable to work (those are configuration errors): the key, whose rule,
    /// and the value that works. For the log at start and on reload, and check-config.
    pub fn platform_warnings(&self) -> Vec<String> {
        platforms::warnings(&platforms::findings(self))
    }

    /// Every warning about this configuration: keys at rest, then the platforms' rules.
    pub fn warnings(&self) -> Vec<String> {
        let mut all = self.key_warnings();
        all.extend(self.platform_warnings());
        all
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
        match &self.ingest.adaptive_bitrate {
            Some(a) => {
                s += &format!(
                    "adaptive_bitrate = true (where the encoder takes it), bitrate_min_kbps = {}\n",
                    a.floor_kbps
                )
            }
            None => s += "adaptive_bitrate = false\n",
        }
        s += &format!("loop = {}\npace = {}\n", self.looping, self.pace);
        let device = self.v4l2.describe();
        match self.source {
            SourceSpec::Rpicam(_) => s += &format!("camera: {}\n", self.rpicam.describe()),
            SourceSpec::Auto => {
                s += &format!(
                    "auto, a libcamera camera: rpicam-vid (else libcamera-vid) with {}\n",
                    self.rpicam.describe()
                );
                s += &format!(
                    "auto, else a V4L2 camera{}{}\n",
                    match &self.encoder {
                        Some(e) => format!(" (raw ones through {})", e.display()),
                        None => String::new(),
                    },
                    if device.is_empty() {
                        String::new()
                    } else {
                        format!(": {device}")
                    }
                );
            }
            _ if !device.is_empty() => s += &format!("device: {device}\n"),
            _ => {}
        }
        s += &format!("audio = {}\n", self.audio);
        if let Some(record) = &self.record {
            s += &format!("record = {record}\n");
        }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TEMPLATE: &str = include_str!("../../examples/campush.toml");

    /// The template's key file, which the .deb and deploy/remote-install.sh create.
    const INSTALLED_KEY_FILE: &str = "/etc/campush/stream.key";

    /// `text` (the template, or a variant) checked as it is once installed: its key file exists,
    /// here in a temporary directory in place of /etc/campush.
    fn checked_as_installed(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("stream.key");
        std::fs::write(&key, "xxxx-xxxx-xxxx-xxxx-xxxx\n").unwrap();
        let text = text.replace(INSTALLED_KEY_FILE, key.to_str().unwrap());
        RawConfig::parse(&text, Path::new("campush.toml"))
            .unwrap()
            .check()
            .unwrap()
    }

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
        let c = checked_as_installed(TEMPLATE);
        assert!(!c.describe().contains("xxxx"), "{}", c.describe());
    }

    #[test]
    fn the_template_keeps_the_key_in_the_file_the_installers_create() {
        let active = |l: &&str| !l.starts_with('#') && l.contains('=');
        let output = TEMPLATE.split("\n[[output]]\n").nth(1).unwrap();
        let output = output.split("\n[").next().unwrap();
        assert_eq!(
            output.lines().filter(active).collect::<Vec<_>>(),
            [
                "url = \"rtmp://a.rtmp.youtube.com/live2\"",
                "key_file = \"/etc/campush/stream.key\""
            ]
        );
        for (installer, text) in [
            ("debian/postinst", include_str!("../../debian/postinst")),
            (
                "deploy/remote-install.sh",
                include_str!("../../deploy/remote-install.sh"),
            ),
        ] {
            assert!(text.contains(INSTALLED_KEY_FILE), "{installer}");
        }
        let c = checked_as_installed(TEMPLATE);
        assert!(!c.file_holds_key, "the template holds no key");
        assert!(c.outputs[0].key_file.is_some());
    }

    #[test]
    fn the_defaults_written_in_the_template_are_the_real_defaults() {
        let describe = |text: &str| checked_as_installed(text).describe();
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
        let top = raw::keys_of("");
        assert!(top.contains(&"board".to_owned()), "{top:?}");
        for section in &top {
            let keys = raw::keys_of(section);
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

    #[test]
    fn a_reload_keeps_the_source_when_only_destinations_change() {
        let config = |url: &str| {
            let text = format!("[source]\nspec = \"stdin\"\n[[output]]\nurl = \"{url}\"\n");
            RawConfig::parse(&text, Path::new("c.toml"))
                .unwrap()
                .check()
                .unwrap()
        };
        let before = config("rtmp://h/live/a");
        assert!(before.same_source(&config("rtmp://other/live/b")));
        let mut paced_off = config("rtmp://h/live/a");
        paced_off.pace = false;
        assert!(!before.same_source(&paced_off));
    }
}
