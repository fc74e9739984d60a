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
//! Taking the stream key out is the caller's job, and must come first: cutting could otherwise
//! leave the start of a key that redaction no longer recognises.

use std::fmt;

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
