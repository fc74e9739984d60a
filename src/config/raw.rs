//! The configuration file as written: where it is looked for, how it is read, and toml's
//! complaints about it in words a person can act on.
//!
//! Owns: [`RawConfig`] (the top level; each section's struct belongs to the stage that checks
//! it: `[source]` to `source::settings`, `[[output]]` and `[network]` to `publisher`, `[queue]`
//! to `queue`, `[status]` to `status`, `[led]` to `led`, `[audio]` to `audio`), the search path,
//! and the translation of toml's errors: the unknown key with the nearest valid one, or the
//! table it belongs in; the wrong type in words ("expected a number"). Unknown keys are refused
//! everywhere (`deny_unknown_fields`), so a misspelling never passes silently.
//!
//! Files saved by Windows Notepad load: a UTF-8 byte-order mark is skipped, CRLF line endings
//! are plain TOML.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, FileText, Place};
use super::suggest::nearest;
use crate::audio::RawAudio;
use crate::led::RawLed;
use crate::publisher::{RawNetwork, RawOutput};
use crate::queue::RawQueue;
use crate::record::RawRecord;
use crate::source::settings::RawSource;
use crate::status::RawStatus;

/// The largest configuration file read: a real one is a few KiB.
pub const CONFIG_LIMIT: usize = 1 << 20;

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

/// Where a [`RawConfig`] was read from, for error positions and relative `key_file`s.
#[derive(Debug, Clone)]
pub struct Origin {
    pub path: PathBuf,
    /// The text as parsed (byte-order mark removed).
    pub text: String,
    /// Whether the file holds a stream key: an `[[output]]` with `key`, or with its key in
    /// `url` (no `key_file`). Kept even when `--url` replaces the file's outputs: the key is
    /// still at rest in the file.
    pub holds_key: bool,
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
    #[serde(default)]
    pub audio: RawAudio,
    /// `[record]`: recording on the board; absent, nothing is recorded.
    pub record: Option<RawRecord>,
    /// Set by [`RawConfig::parse`]; not a key.
    #[serde(skip)]
    pub origin: Option<Origin>,
}

impl RawConfig {
    /// Parses TOML text. `path` names the file in errors and anchors a relative `key_file` or
    /// `tls_ca`. A
    /// UTF-8 byte-order mark (Windows Notepad) is ignored; CRLF line endings are plain TOML.
    pub fn parse(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut raw: RawConfig =
            toml::from_str(text).map_err(|e| parse_error(&FileText::new(path, text), &e))?;
        let holds_key = raw
            .outputs
            .iter()
            .any(|o| o.key.is_some() || (o.url.is_some() && o.key_file.is_none()));
        raw.origin = Some(Origin {
            path: path.to_owned(),
            text: text.to_owned(),
            holds_key,
        });
        Ok(raw)
    }

    /// Reads and parses the file at `path` (at most `CONFIG_LIMIT` bytes, a regular file:
    /// a FIFO or a device given by mistake is refused at once, not read forever).
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let bytes =
            crate::small_file::read(path, CONFIG_LIMIT).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            place: Box::new(Place {
                path: path.to_owned(),
                at: None,
                excerpt: String::new(),
            }),
            key: None,
            message: format!(
                "not UTF-8 text (byte {}): save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
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
}

// ---- toml's errors in words ---------------------------------------------------------------------

/// Turns toml/serde's error into one that names the key, the expected type and a likely fix.
fn parse_error(file: &FileText<'_>, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start);
    let section = offset.map(|o| file.section_at(o)).unwrap_or_default();
    let raw = e.message().trim();
    let qualify = |key: &str| {
        if section.is_empty() {
            key.to_owned()
        } else {
            format!("{section}.{key}")
        }
    };
    let on_line = offset
        .and_then(|o| file.key_on_line(o))
        .map(|k| qualify(&k));
    let (key, message) = if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (unknown, expected) = backticked(rest);
        let key = qualify(&unknown);
        let mut m = format!("unknown key {key:?}");
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
        (Some(key), m)
    } else if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let (unknown, expected) = backticked(rest);
        let mut m = format!(
            "{}: unknown value {unknown:?}",
            on_line.as_deref().unwrap_or_default()
        );
        if let Some(near) = nearest(&unknown, expected.iter().map(String::as_str)) {
            m += &format!("; did you mean {near:?}?");
        }
        (
            on_line,
            m + &format!(" (expected one of {})", expected.join(", ")),
        )
    } else if let Some((found, expected)) = raw
        .strip_prefix("invalid type: ")
        .or_else(|| raw.strip_prefix("invalid value: "))
        .and_then(|r| r.rsplit_once(", expected "))
    {
        let m = format!(
            "{}expected {}, found {}",
            on_line
                .as_ref()
                .map(|k| format!("{k}: "))
                .unwrap_or_default(),
            plain_type(expected),
            found.replace('`', "")
        );
        (on_line, m)
    } else if let Some(rest) = raw.strip_prefix("duplicate key ") {
        let (key, _) = backticked(rest);
        let key = qualify(&key);
        (Some(key.clone()), format!("{key:?} is set twice"))
    } else {
        // TOML syntax: the parser's own words are precise; keep them on one line.
        (
            on_line,
            format!("not valid TOML: {}", raw.replace('\n', "; ")),
        )
    };
    file.parse_error(offset, key, &message)
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

/// The keys serde accepts in `section` ("" = the top level), asked of serde itself, so the list
/// cannot drift from the structs.
pub(super) fn keys_of(section: &str) -> Vec<String> {
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

    const MINIMAL: &str = "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/live/k\"\n";

    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    // ---- where the file is found --------------------------------------------------------------

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

    #[test]
    fn windows_notepad_files_load() {
        let crlf = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
        let raw = RawConfig::parse(&crlf, Path::new("c.toml")).unwrap();
        assert_eq!(raw.source.spec.as_deref(), Some("stdin"));
    }

    // ---- toml's errors, in words ----------------------------------------------------------------

    fn error_in_file(text: &str) -> String {
        RawConfig::parse(text, Path::new("/boot/firmware/campush.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn an_unknown_key_is_rejected_by_name_with_its_line() {
        let err = RawConfig::parse(
            "[source]\nspec = \"stdin\"\nfsp = 30\n",
            Path::new("t.toml"),
        );
        let msg = err.unwrap_err().to_string();
        assert!(msg.contains("fsp"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
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
            let err = RawConfig::parse(text, Path::new("c.toml")).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("line 2, column "), "{msg}");
            assert!(msg.contains(&format!("{key}: ")), "{key}: {msg}");
            assert!(msg.contains(expected), "{key}: {msg}");
        }
    }

    #[test]
    fn an_unknown_led_backend_suggests_the_nearest() {
        let msg = error_in_file("[led]\nbackend = \"gpi0\"\n");
        assert!(
            msg.contains("led.backend: unknown value \"gpi0\"; did you mean \"gpio\"?"),
            "{msg}"
        );
    }

    #[test]
    fn a_key_set_twice_is_named() {
        let err = RawConfig::parse("[source]\nfps = 1\nfps = 2\n", Path::new("c.toml"));
        let err = err.unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
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
}
