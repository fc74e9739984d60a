//! Configuration errors, placed in the file for the person who fixes it.
//!
//! Owns: [`ConfigError`], and how an error is placed in the file: line and column (from 1, in
//! characters), the offending line with a caret under the spot, and the key (`output[2].url`)
//! found in the file by its name. Every error about a setting carries its key; when it came
//! from a file it carries the file, and the line when the file has the key.
//!
//! Secrets: [`FileText`] is the one door from the file into an error. Every excerpt and every
//! message about a file goes through its [`Redactor`] (see `redact.rs`): no stream key or
//! credential written in the file reaches an error, whatever the mistake on its line. An error
//! about settings given on the command line only goes through [`without_file`], which hides
//! the URLs and keys given the same way.

use std::fmt;
use std::path::{Path, PathBuf};

use super::redact::Redactor;
use crate::setting::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No `--config` and no file in any of the search paths (a fresh card).
    #[error("{}", not_found(searched))]
    NotFound { searched: Vec<PathBuf> },
    /// The file is not UTF-8 or not TOML, or toml found a key unknown or of the wrong type.
    #[error("{place}: {message}{}", place.excerpt)]
    Parse {
        place: Box<Place>,
        /// The key the mistake is on, when the file shows one ("source.fps").
        key: Option<String>,
        message: String,
    },
    /// A value of the right type that a check refused: out of range, missing, or contradicting
    /// another key.
    #[error("{}", display_value(key, message, place.as_deref()))]
    Value {
        /// Qualified: "network.write_timeout_s", `output[2].url`, "board".
        key: String,
        message: String,
        /// Where, when the setting came from a file.
        place: Option<Box<Place>>,
    },
}

/// Where in a file an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub path: PathBuf,
    /// Line and column, from 1; `None` when the file does not have the key.
    pub at: Option<(usize, usize)>,
    /// The line (secrets redacted) with a caret under the spot, or empty.
    pub excerpt: String,
}

impl fmt::Display for Place {
    /// `FILE, line L, column C` (the excerpt goes after the message).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((l, c)) = self.at {
            write!(f, ", line {l}, column {c}")?;
        }
        Ok(())
    }
}

fn display_value(key: &str, message: &str, place: Option<&Place>) -> String {
    match place {
        Some(p) => format!("{p}: {key}: {message}{}", p.excerpt),
        None => format!("{key}: {message}"),
    }
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

impl ConfigError {
    /// A value refused by a check, not yet placed (see [`FileText::locate`], [`without_file`]).
    pub(crate) fn value(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Value {
            key: key.into(),
            message: message.into(),
            place: None,
        }
    }

    /// A stage's refusal of a key in `section` ("source", `output[2]`).
    pub(crate) fn setting(section: &str, invalid: Invalid) -> ConfigError {
        ConfigError::value(format!("{section}.{}", invalid.key), invalid.message)
    }

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Value { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::NotFound { .. } => None,
        }
    }
}

/// A configuration file's text, to place errors in it: the one door through which anything of
/// the file reaches an error (see the module doc).
pub struct FileText<'a> {
    path: &'a Path,
    text: &'a str,
    redactor: Redactor,
}

impl<'a> FileText<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> FileText<'a> {
        FileText {
            path,
            text,
            redactor: Redactor::for_text(text),
        }
    }

    /// Hides `values` too: URLs and keys that may not be written in the file (command-line
    /// flags put over it).
    pub fn with_values<'v>(mut self, values: impl IntoIterator<Item = &'v str>) -> FileText<'a> {
        self.redactor = self.redactor.with_values(values);
        self
    }

    /// A parse error at byte `offset`.
    pub fn parse_error(
        &self,
        offset: Option<usize>,
        key: Option<String>,
        message: &str,
    ) -> ConfigError {
        let (place, message) = self.show(offset, message);
        ConfigError::Parse {
            place: Box::new(place),
            key,
            message,
        }
    }

    /// `error` placed in this file: a value at its key's line (or at the nearest enclosing
    /// table the file has).
    pub fn locate(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Value {
                key,
                message,
                place: None,
            } => {
                let offset = find_key(self.text, &key);
                let (place, message) = self.show(offset, &message);
                ConfigError::Value {
                    key,
                    message,
                    place: Some(Box::new(place)),
                }
            }
            other => other,
        }
    }

    /// The key assigned on the line holding byte `offset` (`key = value`).
    pub fn key_on_line(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let (key, _) = self.text[start..].split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty() && !key.contains('\n')).then(|| key.to_owned())
    }

    /// The table (`[name]` or `[[name]]`) byte `offset` is in; empty at the top of the file.
    pub fn section_at(&self, offset: usize) -> String {
        self.text[..offset.min(self.text.len())]
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

    /// Everything an error shows of the file, with the file's secrets removed: the place of
    /// byte `offset` with the excerpt of its line, and `message`.
    fn show(&self, offset: Option<usize>, message: &str) -> (Place, String) {
        let place = Place {
            path: self.path.to_owned(),
            at: offset.map(|o| line_col(self.text, o)),
            excerpt: offset
                .map(|o| excerpt(self.text, o, &self.redactor))
                .unwrap_or_default(),
        };
        (place, self.redactor.message(message))
    }
}

/// `error` of a configuration that came from no file (command-line flags only), with `values`
/// (the URLs and keys given) hidden in its message.
pub fn without_file<'v>(
    error: ConfigError,
    values: impl IntoIterator<Item = &'v str>,
) -> ConfigError {
    match error {
        ConfigError::Value {
            key,
            message,
            place,
        } => ConfigError::Value {
            message: Redactor::default().with_values(values).message(&message),
            key,
            place,
        },
        other => other,
    }
}

/// Line and column (from 1, in characters) of byte `offset`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The line holding byte `offset` as `redactor` shows it, and a caret under the spot (at the
/// end of what is shown, if the spot was in a redacted value), indented for the log.
fn excerpt(text: &str, offset: usize, redactor: &Redactor) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = redactor.line(text[start..end].trim_end_matches('\r'));
    let pad: String = text[start..offset]
        .chars()
        .take(line.chars().count())
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("\n    | {line}\n    | {pad}^")
}

/// Where `key` ("network.write_timeout_s", `output[2].url`) is in the file (a byte offset): its
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "[source]\nspec = \"stdin\"\n\n[[output]]\nurl = \"rtmp://h/a/k\"\n\
                        [[output]]\nurl = \"rtmp://h:99999/live/sk-9f8e7d\"\n\n[network]\n\
                        write_timeout_s = -1\n";

    #[test]
    fn a_key_is_found_at_its_value_and_a_missing_one_at_its_table() {
        let at = |key| find_key(FILE, key).map(|o| line_col(FILE, o));
        assert_eq!(at("network.write_timeout_s"), Some((10, 19)));
        assert_eq!(at("output[2].url"), Some((7, 7)));
        assert_eq!(at("network.chunk_size"), Some((9, 1)), "its table");
        assert_eq!(at("queue.max_mib"), None, "no such table");
    }

    #[test]
    fn a_located_value_names_file_line_column_key_and_shows_the_line() {
        let file = FileText::new(Path::new("/boot/campush.toml"), FILE);
        let e = file.locate(ConfigError::value(
            "network.write_timeout_s",
            "-1 is out of range",
        ));
        assert_eq!(
            e.to_string(),
            "/boot/campush.toml, line 10, column 19: network.write_timeout_s: -1 is out of range\n    \
             | write_timeout_s = -1\n    |                   ^"
        );
        assert_eq!(e.key(), Some("network.write_timeout_s"));
    }

    #[test]
    fn the_line_of_a_url_is_shown_without_its_key_and_the_caret_stays_on_it() {
        let file = FileText::new(Path::new("c.toml"), FILE);
        let e = file.locate(ConfigError::value("output[2].url", "bad port"));
        let text = e.to_string();
        assert!(!text.contains("sk-9f8e7d"), "{text}");
        assert!(
            text.ends_with("| url = \"rtmp://h:99999/live/<redacted>\n    |       ^"),
            "{text}"
        );
    }

    #[test]
    fn a_setting_refused_by_a_stage_is_qualified_by_its_section() {
        let e = ConfigError::setting("output[3]", Invalid::new("key", "the stream key is empty"));
        assert_eq!(e.to_string(), "output[3].key: the stream key is empty");
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        assert_eq!(line_col("ab\ncdé=x", 8), (2, 5));
        assert_eq!(line_col("x", 0), (1, 1));
    }
}
