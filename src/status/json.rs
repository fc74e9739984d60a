//! A small JSON reader, for `campush status` to read the status file back (RFC 8259).
//!
//! Owns: [`Value`] and [`parse`]. Strict where it matters (one value, nothing after it, valid
//! escapes, surrogate pairs), bounded (nesting at most [`MAX_DEPTH`] deep), and never panics on
//! any input: the file may be half-written by a foreign tool, or not ours at all. Numbers are
//! `f64` (every number in the status file fits). Hand-written rather than a crate: the one
//! file it reads does not justify the binary size.

/// Nesting deeper than this is refused (the status file nests two levels).
pub const MAX_DEPTH: usize = 32;

/// A JSON value. Objects keep their members in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Why a text is not JSON, with the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid JSON at byte {at}: {what}")]
pub struct JsonError {
    pub at: usize,
    pub what: &'static str,
}

/// Parses one JSON value, surrounded by white space only.
pub fn parse(text: &str) -> Result<Value, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let value = p.value(0)?;
    p.space();
    if p.i != p.s.len() {
        return Err(p.error("text after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> JsonError {
        JsonError { at: self.i, what }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Value) -> Result<Value, JsonError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(self.error("unknown word"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        self.space();
        match self.peek() {
            None => Err(self.error("unexpected end")),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.space();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.space();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(self.error("expected , or ]")),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.space();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                loop {
                    self.space();
                    if self.peek() != Some(b'"') {
                        return Err(self.error("expected a member name"));
                    }
                    let key = self.string()?;
                    self.space();
                    if self.peek() != Some(b':') {
                        return Err(self.error("expected :"));
                    }
                    self.i += 1;
                    members.push((key, self.value(depth + 1)?));
                    self.space();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Object(members));
                        }
                        _ => return Err(self.error("expected , or }")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let digits = |p: &mut Parser<'_>| {
            let from = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > from
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let first = self.i;
        if !digits(self) {
            return Err(self.error("expected a digit"));
        }
        if self.s[first] == b'0' && self.i - first > 1 {
            return Err(JsonError {
                at: first,
                what: "leading zero",
            });
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(self.error("expected a digit after ."));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.error("expected an exponent"));
            }
        }
        // Only ASCII digits, signs, '.' and 'e' were taken: valid UTF-8 and a valid f64.
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|n| n.parse().ok())
            .map(Value::Number)
            .ok_or(JsonError {
                at: start,
                what: "not a number",
            })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .ok_or(self.error("short \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("bad \\u escape"));
        }
        self.i += 4;
        u32::from_str_radix(text, 16).map_err(|_| self.error("bad \\u escape"))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                if !self.s[self.i..].starts_with(b"\\u") {
                                    return Err(self.error("lone surrogate"));
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.error("lone surrogate"));
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            char::from_u32(code).ok_or(self.error("lone surrogate"))?
                        }
                        _ => return Err(self.error("unknown escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => out.push(b),
            }
        }
        // The input was a &str and escapes were encoded from chars: valid UTF-8.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_values_json_has() {
        let v = parse(
            r#" {"a": null, "b": [true, false], "n": -12.5e1, "z": 0, "s": "x\"\\\/\n\u00e9\ud83d\ude00",
                 "o": {"k": "v"}, "e": [], "f": {}} "#,
        )
        .unwrap();
        assert_eq!(v.get("a"), Some(&Value::Null));
        assert_eq!(
            v.get("b").and_then(Value::as_array),
            Some(&[Value::Bool(true), Value::Bool(false)][..])
        );
        assert_eq!(v.get("n").and_then(Value::as_f64), Some(-125.0));
        assert_eq!(v.get("z").and_then(Value::as_f64), Some(0.0));
        assert_eq!(
            v.get("s").and_then(Value::as_str),
            Some("x\"\\/\né\u{1F600}")
        );
        assert_eq!(
            v.get("o").and_then(|o| o.get("k")).and_then(Value::as_str),
            Some("v")
        );
        assert_eq!(v.get("e"), Some(&Value::Array(Vec::new())));
        assert_eq!(v.get("f"), Some(&Value::Object(Vec::new())));
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn refuses_what_is_not_json_without_panicking() {
        for text in [
            "",
            "   ",
            "{",
            "{\"a\"}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "nul",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\nb\"",
            "{} {}",
            "{\"a\":1} x",
            "NaN",
        ] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert_eq!(parse(&deep).unwrap_err().what, "nested too deep");
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn reads_back_the_status_file_it_writes() {
        use crate::status::{Counters, SharedStatus, Status};
        let status = SharedStatus::new();
        let d = status.set_destinations(1);
        d[0].set_label("rtmp://h:1935/live/<redacted>".into());
        d[0].set(Status::Streaming);
        Counters::add(&status.counters.frames_sent, 7);
        status.set_last_error(&"a \"quoted\"\nerror\t\u{1}");
        let v = parse(&status.to_json(12.0, std::time::Duration::from_secs(3))).unwrap();
        assert_eq!(v.get("status").and_then(Value::as_str), Some("streaming"));
        assert_eq!(v.get("frames_sent").and_then(Value::as_f64), Some(7.0));
        assert_eq!(
            v.get("last_error").and_then(Value::as_str),
            Some("a \"quoted\"\nerror\t\u{1}")
        );
        let dest = &v.get("destinations").and_then(Value::as_array).unwrap()[0];
        assert_eq!(
            dest.get("destination").and_then(Value::as_str),
            Some("rtmp://h:1935/live/<redacted>")
        );
        let health = v.get("health").unwrap();
        assert_eq!(health.get("temp_c"), Some(&Value::Null));
        assert_eq!(health.get("clock_synced"), Some(&Value::Null));
    }
}
