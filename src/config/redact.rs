//! Secrets out of configuration errors: what an error shows of the file never holds a stream
//! key or a credential, whatever the mistake on the line.
//!
//! Owns: what counts as a secret in a configuration file, and how it is hidden, for the two
//! places an error shows text: the excerpt (the offending line under the message) and the
//! message (toml's words quote values: "found integer 7312905846"). `error.rs` passes both
//! through a [`Redactor`] of the file, and nothing else of the file reaches an error.
//!
//! Secret:
//! - the value of `url`, `key` and `key_file`, and of any key that looks like one: a misspelling
//!   (`kye`, `ulr`), a guess (`stream_key`, `token`, `password`). A person fixing a file may have
//!   put the key anywhere near, and `key_file` is where a pasted key lands by mistake;
//! - every URL anywhere in the file, under any key or none: its credentials before `@`, and
//!   everything after its app (`rtmp://host:port/app/<redacted>`; the app is the first path
//!   segment when another follows, else nothing of the path is kept);
//! - the lines of a secret value that spans several (a multi-line string);
//! - URLs and keys given on the command line ([`Redactor::with_values`]).
//!
//! The same rule for a URL's path holds once it is checked: `RtmpUrl`'s `Display` prints the
//! app only up to its first segment (`rtmp/url.rs`), so a url that still holds a key next to a
//! separate `key` is not printed whole by check-config or in a log line either.
//!
//! Over-redacting a line costs a person a little help; under-redacting puts a key in the journal.
//! So the rules are blunt. In an excerpt, a secret value is hidden from the `=` to the end of its
//! line (a missing closing quote leaves no reliable end), a URL from its app to the end of the
//! line. In a message, each secret value collected from the file is replaced wherever it appears
//! (campush's own words, such as "expected rtmp://host/app/KEY", stay); values shorter than
//! [`MIN_SEARCHED`] characters are not searched for (they would match ordinary words, and are no
//! credential), but their line is still redacted.

use super::suggest::nearest;

/// What is shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// The keys of `[[output]]` whose values hold or name a stream key.
const SECRET_KEYS: [&str; 3] = ["url", "key", "key_file"];

/// Words in a key name that suggest a secret value.
const SECRET_WORDS: [&str; 7] = ["key", "url", "secret", "token", "pass", "auth", "cred"];

/// The shortest secret value searched for in messages.
pub const MIN_SEARCHED: usize = 4;

/// Whether the value of key `name` (`url`, `output[2].key`, `"key_file"`) is treated as secret.
pub fn is_secret_key(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    let last = last
        .split('[')
        .next()
        .unwrap_or(last)
        .trim_matches(|c| c == '"' || c == '\'')
        .to_lowercase();
    !last.is_empty()
        && (SECRET_WORDS.iter().any(|w| last.contains(w))
            || nearest(&last, SECRET_KEYS.into_iter()).is_some())
}

/// The secrets of one file (and of the command line), to hide them in what an error shows.
#[derive(Debug, Default)]
pub struct Redactor {
    /// (as written, as shown), longest first.
    secrets: Vec<(String, String)>,
}

impl Redactor {
    /// Collects the secret values written in `text` (which need not be valid TOML): the values
    /// of secret keys, and every URL.
    pub fn for_text(text: &str) -> Redactor {
        let mut r = Redactor::default();
        // Inside a multi-line value of a secret key: the delimiter that closes it.
        let mut open: Option<&str> = None;
        for line in text.lines() {
            r.add_urls(line);
            if let Some(close) = open {
                match line.find(close) {
                    Some(end) => {
                        r.add(&line[..end]);
                        open = None;
                    }
                    None => r.add(line),
                }
                continue;
            }
            for a in assignments(line) {
                if !is_secret_key(a.key) {
                    continue;
                }
                let value = &line[a.value..];
                let multi = [r#"""""#, "'''"].into_iter().find(|d| value.starts_with(d));
                match multi {
                    Some(d) => match value[3..].find(d) {
                        Some(end) => r.add(&value[3..3 + end]),
                        None => {
                            r.add(&value[3..]);
                            open = Some(d);
                        }
                    },
                    None if value.starts_with('[') && !value.contains(']') => {
                        r.add(value);
                        open = Some("]");
                    }
                    None if value.starts_with('[') => r.add(value),
                    None => r.add(&line[a.value..a.end]),
                }
            }
        }
        r.sorted()
    }

    /// Adds values that may hold a secret without being written in the file (a URL or key given
    /// on the command line).
    pub fn with_values<'v>(mut self, values: impl IntoIterator<Item = &'v str>) -> Redactor {
        for v in values {
            self.add(v);
        }
        self.sorted()
    }

    /// One line of the file, as an excerpt may show it.
    pub fn line(&self, line: &str) -> String {
        let line = &self.scrub(line);
        match assignments(line).into_iter().find(|a| is_secret_key(a.key)) {
            Some(a) => {
                let value = if line[a.value..a.end].contains("://") {
                    urls(&line[a.value..])
                } else {
                    REDACTED.to_owned()
                };
                format!("{}{value}", &line[..a.value])
            }
            None if is_plain(line) || line.contains("://") => urls(line),
            // Not TOML a reader can place (a key pasted alone, `abc?x=1&a=TOKEN`): hidden.
            None => REDACTED.to_owned(),
        }
    }

    /// A message about the file, as an error may show it.
    pub fn message(&self, message: &str) -> String {
        self.scrub(message)
    }

    /// `text` with every secret value replaced, in one pass: at each place the longest value
    /// that matches wins, and what replaced it is not searched again.
    fn scrub(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let hit = self.secrets.iter().find(|(secret, _)| {
                secret.len() >= MIN_SEARCHED && rest.starts_with(secret.as_str())
            });
            match hit {
                Some((secret, shown)) => {
                    out += shown;
                    rest = &rest[secret.len()..];
                }
                None => {
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        out
    }

    /// A secret value as written (quotes and brackets around it do not count), and each of its
    /// words long enough to search for.
    fn add(&mut self, value: &str) {
        let unquote = |v: &str| {
            v.trim()
                .trim_matches(|c| matches!(c, '"' | '\'' | '[' | ']'))
                .trim()
                .to_owned()
        };
        let value = unquote(value);
        if value.is_empty() {
            return;
        }
        for word in value.split(|c: char| c.is_whitespace() || c == ',') {
            let word = unquote(word);
            if word.len() >= MIN_SEARCHED && word != value {
                let shown = shown(&word);
                self.secrets.push((word, shown));
            }
        }
        let shown = shown(&value);
        self.secrets.push((value, shown));
    }

    /// Every URL on `line`: to its closing quote when quoted, else to the next space.
    fn add_urls(&mut self, line: &str) {
        let mut from = 0;
        while let Some(i) = line[from..].find("://").map(|i| from + i) {
            let start = scheme_start(line, i);
            let end = match line[..start].chars().next_back() {
                Some(q @ ('"' | '\'')) => line[i..].find(q).map_or(line.len(), |e| i + e),
                _ => line[i..]
                    .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
                    .map_or(line.len(), |e| i + e),
            };
            self.add(&line[start..end]);
            from = i + 3;
        }
    }

    fn sorted(mut self) -> Redactor {
        self.secrets
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
        self
    }
}

/// How a secret value is shown: a URL with its tail redacted, anything else not at all.
fn shown(value: &str) -> String {
    if value.contains("://") {
        urls(value)
    } else {
        REDACTED.to_owned()
    }
}

/// `key = value` on one line: the key's name and where its value starts and ends (bytes).
struct Assignment<'a> {
    key: &'a str,
    value: usize,
    end: usize,
}

/// Every `key = value` on `line`, inline tables included (`{ key = "...", url = "..." }`). Quoted
/// values are skipped whole, so an `=` inside one (`?token=...`) is not taken for another key.
fn assignments(line: &str) -> Vec<Assignment<'_>> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(eq) = line[pos..].find('=').map(|i| pos + i) {
        let before = line[..eq].trim_end();
        let start = after_last(before, |c| {
            !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\''))
        });
        let key = before[start..].trim_matches(|c| c == '"' || c == '\'');
        let key = key.rsplit('.').next().unwrap_or(key);
        let value = eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len());
        let rest = &line[value..];
        let len = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |i| i + 2),
            // A list or an inline table: its own assignments follow.
            Some('[' | '{') => 1,
            _ => rest.find([',', '}', ']', '#']).unwrap_or(rest.len()),
        };
        found.push(Assignment {
            key,
            value,
            end: value + len,
        });
        pos = value + len.max(1);
        if pos >= line.len() {
            break;
        }
    }
    found
}

/// Whether `line` is blank, a comment, a table header or `key = value` (a name before the
/// first `=`): the lines an excerpt may show as they are, once secret values are out.
fn is_plain(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
        return true;
    }
    t.split_once('=').is_some_and(|(name, _)| {
        let name = name.trim();
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' '))
    })
}

/// Where the scheme of the `://` at byte `i` of `text` starts.
fn scheme_start(text: &str, i: usize) -> usize {
    after_last(&text[..i], |c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// The byte just after the last character of `text` that matches `stop` (0 when none does): a
/// character boundary even when that character takes several bytes (a typographic quote).
fn after_last(text: &str, stop: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .rev()
        .find(|&(_, c)| stop(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// `text` up to its first URL's app, then [`REDACTED`] for the rest; the URL's credentials are
/// redacted too.
fn urls(text: &str) -> String {
    let Some(i) = text.find("://") else {
        return text.to_owned();
    };
    let mut out = text[..i + 3].to_owned();
    let after = &text[i + 3..];
    let ends_word = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
    let authority_end = after
        .find(|c: char| matches!(c, '/' | '?' | '#') || ends_word(c))
        .unwrap_or(after.len());
    let authority = &after[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            out += REDACTED;
            out += &authority[at..];
        }
        None => out += authority,
    }
    let tail = &after[authority_end..];
    let kept = match tail.strip_prefix('/') {
        Some(path) => {
            let segment = path
                .find(|c: char| matches!(c, '/' | '?' | '#') || ends_word(c))
                .unwrap_or(path.len());
            if path[segment..].starts_with('/') {
                segment + 2
            } else {
                1
            }
        }
        None => 0,
    };
    out += &tail[..kept];
    if kept < tail.len() {
        out += REDACTED;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_keys_and_their_look_alikes_are_secret_and_others_are_not() {
        for key in [
            "url",
            "output[2].key",
            "key_file",
            "\"key\"",
            "kye",
            "ulr",
            "stream_key",
            "token",
            "password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "fps", "spec", "led", "name", "line", "file", "level", "profile", "tls_ca", "board",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn a_url_keeps_host_port_and_app_and_loses_credentials_key_and_query() {
        for (url, shown) in [
            (
                "rtmp://h.example:99999/live/KEY",
                "rtmp://h.example:99999/live/<redacted>",
            ),
            (
                "rtmps://user:pw@h.example/live/KEY?token=T",
                "rtmps://<redacted>@h.example/live/<redacted>",
            ),
            ("rtmp://h.example/KEY", "rtmp://h.example/<redacted>"),
            ("rtmp://h.example/live", "rtmp://h.example/<redacted>"),
            ("rtmp://h.example", "rtmp://h.example"),
            ("rtmp://h.example/a/b/KEY", "rtmp://h.example/a/<redacted>"),
        ] {
            assert_eq!(urls(url), shown, "{url}");
        }
    }

    #[test]
    fn lines_of_secret_keys_keep_the_key_and_lose_the_value() {
        let r = Redactor::default();
        for (line, shown) in [
            ("key = \"KEY", "key = <redacted>"),
            ("  key_file = KEY # mine", "  key_file = <redacted>"),
            (
                "url = \"rtmp://h:99999/live/KEY\"",
                "url = \"rtmp://h:99999/live/<redacted>",
            ),
            ("url = 12345", "url = <redacted>"),
            (
                "output = [{ key = \"KEY\", url = \"rtmp://h/live\" }]",
                "output = [{ key = <redacted>",
            ),
            (
                "ulr = \"rtmp://h/live/KEY\"",
                "ulr = \"rtmp://h/live/<redacted>",
            ),
            (
                "output = \"rtmp://u:p@h/live/KEY\"",
                "output = \"rtmp://<redacted>@h/live/<redacted>",
            ),
            ("rtmp://h/live/KEY", "rtmp://h/live/<redacted>"),
            ("fps = 30", "fps = 30"),
            ("spec = \"file:/a=b.h264\"", "spec = \"file:/a=b.h264\""),
            ("[[output]]", "[[output]]"),
        ] {
            assert_eq!(r.line(line), shown, "{line}");
        }
    }

    #[test]
    fn the_values_of_a_file_are_hidden_in_messages_and_in_the_lines_that_continue_them() {
        let text = "[[output]]\nurl = \"rtmp://h/live\"\nkey = 7312905846\n\
                    key_file = \"sk-live-7f3Qz9\"\n[other]\nnote = \"\"\"\nplain\n\"\"\"\n\
                    [[output]]\nkey = \"\"\"\nsk-second-8\nmore\n\"\"\"\n";
        let r = Redactor::for_text(text);
        assert_eq!(
            r.message("expected text in quotes, found integer 7312905846"),
            "expected text in quotes, found integer <redacted>"
        );
        assert_eq!(
            r.message("cannot read /boot/sk-live-7f3Qz9: gone"),
            "cannot read /boot/<redacted>: gone"
        );
        assert_eq!(r.line("sk-second-8"), "<redacted>");
        assert_eq!(
            r.message("expected rtmp://host/app/KEY, or give the key separately"),
            "expected rtmp://host/app/KEY, or give the key separately",
            "campush's own words"
        );
        assert_eq!(
            r.line("plain"),
            "<redacted>",
            "a line no reader can place (here inside a multi-line string) could be a pasted key"
        );
        assert_eq!(
            r.message("a key"),
            "a key",
            "short values are not searched for"
        );
    }

    #[test]
    fn every_url_of_the_file_is_hidden_in_messages_whatever_its_key() {
        let r = Redactor::for_text(
            "output = \"rtmp://u:pw99@h/live/sk-1 2\"\n[[output]]\nrtmp://h/live/sk-pasted\n",
        );
        assert_eq!(
            r.message("found string \"rtmp://u:pw99@h/live/sk-1 2\", expected a list"),
            "found string \"rtmp://<redacted>@h/live/<redacted>\", expected a list"
        );
        assert_eq!(
            r.message("at rtmp://h/live/sk-pasted"),
            "at rtmp://h/live/<redacted>"
        );
    }

    #[test]
    fn a_url_that_starts_like_another_is_redacted_once() {
        let r = Redactor::for_text(
            "[[output]]\nurl = \"rtmp://h/live\"\n[network]\nurl = \"rtmp://h/live/sk-1\"\n",
        );
        assert_eq!(
            r.line("url = \"rtmp://h/live/sk-1\""),
            "url = \"rtmp://h/live/<redacted>"
        );
        assert_eq!(
            r.message("found \"rtmp://h/live/sk-1\" and \"rtmp://h/live\""),
            "found \"rtmp://h/live/<redacted>\" and \"rtmp://h/<redacted>\""
        );
    }

    #[test]
    fn typographic_quotes_around_a_url_neither_panic_nor_show_the_key() {
        for text in [
            "[[output]]\nurl = \u{201c}rtmp://a.rtmp.youtube.com/live2/SECRETKEY\u{201d}\n",
            "[[output]]\nurl = \u{ab}rtmp://h/live/SECRETKEY\u{bb}\nkey\u{a0}= \"SECRETKEY\"\n",
            "[[output]]\n\u{201e}url\u{201c} = \"rtmp://h/live/SECRETKEY\"\n",
        ] {
            let r = Redactor::for_text(text);
            for line in text.lines() {
                let shown = r.line(line);
                assert!(!shown.contains("SECRETKEY"), "{line:?} -> {shown:?}");
            }
            assert!(!r.message(text).contains("SECRETKEY"), "{text:?}");
        }
    }

    #[test]
    fn a_key_pasted_alone_on_a_line_is_not_shown() {
        let text = "[[output]]\nurl = \"rtmp://a.rtmp.youtube.com/live2\"\nabcd-efgh-SECRET-mnop\nFB-123?s_bl=1&a=SECRETTOKEN\n";
        let r = Redactor::for_text(text);
        for line in text.lines() {
            let shown = r.line(line);
            assert!(!shown.contains("SECRET"), "{line:?} -> {shown:?}");
        }
        assert_eq!(r.line("[[output]]"), "[[output]]");
        assert_eq!(
            r.line("spec = \"auto\"  # a comment"),
            "spec = \"auto\"  # a comment"
        );
    }

    #[test]
    fn values_from_the_command_line_are_hidden_too() {
        let r = Redactor::default().with_values(["rtmp://h/live/sk-flag", "sk-other"]);
        assert_eq!(
            r.message("no rtmp://h/live/sk-flag, no sk-other"),
            "no rtmp://h/live/<redacted>, no <redacted>"
        );
    }
}
