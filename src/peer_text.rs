//! Text a server chose (a refusal's code and description, the names in its certificate), made
//! fit for a log line, the status summary and the status file.
//!
//! A server can send anything there: 600 KB of it, newlines (under journald, a line that
//! starts with `<3>` forges an entry of its own), terminal escape sequences, bidirectional
//! overrides that reorder what a person reads. [`PeerText`] is the one way such text reaches
//! campush's output. Invariants of its contents:
//! - a single line of visible characters: every control character (C0, DEL, C1), line and
//!   paragraph separator, and bidirectional or zero-width formatting character is written as a
//!   visible escape (`\n`, `\r`, `\t`, or `\u{…}`);
//! - at most [`MAX_CHARS`] characters, escapes included, cut on a character boundary and never
//!   inside an escape, ending with `…` when something was cut.
//!
//! Secrets go first: [`PeerText::redacted`] replaces each secret the caller names (the stream key
//! and every piece of it a server may echo, see `rtmp::url::secret_pieces`) by `<redacted>`,
//! longest first, before escaping and cutting: cutting could otherwise leave the start of a key
//! that a search no longer recognises. Knowing what is secret is the caller's job.

use std::fmt;

/// What is shown in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// Most characters of server text kept (ffmpeg keeps 255 bytes of a description).
pub const MAX_CHARS: usize = 200;

/// Server text, escaped and cut as the module doc says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerText(String);

/// Whether `c` is shown as an escape rather than as itself.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{200B}'..='\u{200F}' // zero-width characters, left-to-right and right-to-left marks
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}' // zero-width no-break space
        )
}

impl PeerText {
    /// `raw`, escaped and cut. Reads no more of `raw` than it keeps.
    pub fn new(raw: &str) -> Self {
        let mut out = String::with_capacity(raw.len().min(MAX_CHARS + 8));
        let mut chars = 0;
        // Where to cut if what follows does not fit: the end of the last piece that leaves
        // room for the ellipsis.
        let mut cut = 0;
        let mut piece = String::new();
        for c in raw.chars() {
            piece.clear();
            match c {
                '\n' => piece.push_str("\\n"),
                '\r' => piece.push_str("\\r"),
                '\t' => piece.push_str("\\t"),
                c if needs_escape(c) => piece.extend(c.escape_unicode()),
                c => piece.push(c),
            }
            let width = piece.chars().count();
            if chars + width > MAX_CHARS {
                out.truncate(cut);
                out.push('…');
                return PeerText(out);
            }
            out.push_str(&piece);
            chars += width;
            if chars < MAX_CHARS {
                cut = out.len();
            }
        }
        PeerText(out)
    }

    /// `raw` with every one of `secrets` replaced by `<redacted>` (the longest first, so a secret
    /// inside another goes with it; empty ones are skipped), then escaped and cut as [`new`]
    /// does.
    ///
    /// [`new`]: PeerText::new
    pub fn redacted<S: AsRef<str>>(raw: &str, secrets: &[S]) -> Self {
        let mut order: Vec<&str> = secrets
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| !s.is_empty())
            .collect();
        order.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut text = std::borrow::Cow::Borrowed(raw);
        for secret in order {
            if text.contains(secret) {
                text = std::borrow::Cow::Owned(text.replace(secret, REDACTED));
            }
        }
        PeerText::new(&text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for PeerText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for PeerText {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for PeerText {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_is_kept_as_it_is() {
        let text = "NetStream.Publish.BadName: Stream already publishing (é, 流)";
        assert_eq!(PeerText::new(text), text);
        assert_eq!(PeerText::new(""), "");
    }

    #[test]
    fn control_characters_become_visible_escapes() {
        assert_eq!(
            PeerText::new("no\n<3>forged\r\tentry\u{1b}[31m\u{7f}\u{85}"),
            "no\\n<3>forged\\r\\tentry\\u{1b}[31m\\u{7f}\\u{85}"
        );
        assert_eq!(
            PeerText::new("a\u{2028}b\u{202e}c\u{200b}d\u{2066}e\u{feff}"),
            "a\\u{2028}b\\u{202e}c\\u{200b}d\\u{2066}e\\u{feff}"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_an_ellipsis() {
        let exactly = "é".repeat(MAX_CHARS);
        assert_eq!(PeerText::new(&exactly), exactly.as_str());
        let cut = PeerText::new(&"é".repeat(600_051));
        assert_eq!(cut.chars().count(), MAX_CHARS);
        assert!(cut.ends_with("é…"), "{cut}");
        // An escape is never split: it goes whole or not at all.
        let text = format!("{}\u{1b}", "x".repeat(MAX_CHARS - 3));
        let cut = PeerText::new(&text);
        assert_eq!(cut.as_str(), format!("{}…", "x".repeat(MAX_CHARS - 3)));
    }

    #[test]
    fn secrets_go_before_the_text_is_cut_longest_first() {
        let text = format!(
            "{} token abcdef, query token=abcdef&sig=xyz, key name?token=abcdef",
            "x".repeat(100)
        );
        let secrets = [
            "name",
            "name?token=abcdef",
            "abcdef",
            "token=abcdef",
            "",
            "sig=xyz",
        ];
        let shown = PeerText::redacted(&text, &secrets);
        assert_eq!(
            shown.as_str(),
            format!(
                "{} token <redacted>, query <redacted>&<redacted>, key <redacted>",
                "x".repeat(100)
            )
        );
        // A secret that straddles the cut is taken out before the cut, not half left.
        let long = format!("{}SECRETKEY-1234", "y".repeat(MAX_CHARS - 5));
        let shown = PeerText::redacted(&long, &["SECRETKEY-1234"]);
        assert!(!shown.contains("SECR"), "{shown}");
        assert!(shown.ends_with('…'), "{shown}");
    }

    #[test]
    fn nothing_printed_holds_a_line_break() {
        let hostile: String = (0u32..0x3000)
            .filter_map(char::from_u32)
            .cycle()
            .take(5000)
            .collect();
        for start in (0..hostile.len()).step_by(97) {
            let Some(piece) = hostile.get(start..) else {
                continue;
            };
            let text = PeerText::new(piece);
            assert!(text.chars().count() <= MAX_CHARS);
            assert!(!text.chars().any(needs_escape), "{text:?}");
        }
    }
}
