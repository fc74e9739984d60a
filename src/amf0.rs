//! AMF0: the value encoding RTMP commands (`connect`, `publish`, `onStatus`, ...) and
//! `@setDataFrame`/`onMetaData` data messages are written in.
//!
//! This module owns two halves with different rules:
//!
//! * **Encoders** (`write_*`) append to a caller-owned `Vec<u8>` and never allocate beyond
//!   that vector's growth; with enough capacity they do not allocate at all. They cannot fail.
//! * **Decoder** ([`decode`]) turns peer bytes into an owned [`Value`] tree. It may allocate
//!   (commands are rare), but every allocation is bounded by the bytes actually present in the
//!   input slice: a length prefix is checked against the remaining input before anything is
//!   reserved, a strict array's announced count only sizes the vector up to what the remaining
//!   input could possibly hold, containers nest at most [`MAX_DEPTH`] deep, and one decode
//!   produces at most [`MAX_VALUES`] values, nested ones included. The count matters as much as
//!   the input's length: a null is one byte on the wire and 32 in memory, so without it a
//!   64 KiB command could cost 2 MiB. Peer input can make it return an [`Amf0Error`], never
//!   panic.
//!
//! Supported markers (AMF0 specification, Adobe, 2006, §2.2–§2.14): number (0x00), boolean
//! (0x01), string (0x02), object (0x03), null (0x05), undefined (0x06), ECMA array (0x08),
//! object end (0x09, only as a terminator), strict array (0x0A), date (0x0B) and long string
//! (0x0C). Movie clip (0x04), reference (0x07), unsupported (0x0D), record set (0x0E), XML
//! document (0x0F), typed object (0x10) and the AVM+ switch (0x11) are rejected: no RTMP ingest
//! server sends them in the commands a publisher has to understand.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

/// Deepest nesting of objects, ECMA arrays and strict arrays [`decode`] accepts.
pub const MAX_DEPTH: usize = 16;
/// Most values one [`decode`] or [`decode_all`] produces, nested ones included. A command a
/// publisher receives holds a few dozen; this many cost at most about 100 KiB.
pub const MAX_VALUES: usize = 1024;

const MARKER_NUMBER: u8 = 0x00;
const MARKER_BOOLEAN: u8 = 0x01;
const MARKER_STRING: u8 = 0x02;
const MARKER_OBJECT: u8 = 0x03;
const MARKER_NULL: u8 = 0x05;
const MARKER_UNDEFINED: u8 = 0x06;
const MARKER_REFERENCE: u8 = 0x07;
const MARKER_ECMA_ARRAY: u8 = 0x08;
const MARKER_OBJECT_END: u8 = 0x09;
const MARKER_STRICT_ARRAY: u8 = 0x0A;
const MARKER_DATE: u8 = 0x0B;
const MARKER_LONG_STRING: u8 = 0x0C;

/// One decoded AMF0 value. Objects and ECMA arrays keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    /// A string (0x02) or a long string (0x0C).
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch; the time-zone field is read and dropped (the spec
    /// says it is reserved and should be 0).
    Date(f64),
}

impl Value {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array; `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(props) | Value::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Why [`decode`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    #[error("AMF0 input ends in the middle of a value")]
    UnexpectedEof,
    #[error("AMF0 marker 0x{0:02x} is not supported")]
    UnsupportedMarker(u8),
    #[error("AMF0 references (marker 0x07) are not supported")]
    Reference,
    #[error("AMF0 object-end marker where a value was expected")]
    UnexpectedObjectEnd,
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    #[error("AMF0 values nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("AMF0 input holds more than {MAX_VALUES} values")]
    TooManyValues,
}

impl Amf0Error {
    /// The input is well-formed as far as it was read but larger than the decoder accepts.
    pub fn is_limit(&self) -> bool {
        matches!(self, Amf0Error::TooDeep | Amf0Error::TooManyValues)
    }
}

/// Decodes one value from the front of `input` and advances `input` past it.
/// On error `input` is left at an unspecified position inside the value.
pub fn decode(input: &mut &[u8]) -> Result<Value, Amf0Error> {
    let mut left = MAX_VALUES;
    decode_counted(input, &mut left)
}

/// [`decode`], counting every value it produces (nested ones included) against `left`, which
/// several calls can share: past it, [`Amf0Error::TooManyValues`].
pub fn decode_counted(input: &mut &[u8], left: &mut usize) -> Result<Value, Amf0Error> {
    decode_value(input, 0, left)
}

/// Decodes values until `input` is exhausted, at most `limit` of them (the rest is left in
/// `input`) and at most [`MAX_VALUES`] values in all. Convenient for command messages, which
/// are a flat sequence of values.
pub fn decode_all(input: &mut &[u8], limit: usize) -> Result<Vec<Value>, Amf0Error> {
    let mut values = Vec::new();
    let mut left = MAX_VALUES;
    while !input.is_empty() && values.len() < limit {
        values.push(decode_counted(input, &mut left)?);
    }
    Ok(values)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Amf0Error> {
    if input.len() < n {
        return Err(Amf0Error::UnexpectedEof);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], Amf0Error> {
    let bytes = take(input, N)?;
    <[u8; N]>::try_from(bytes).map_err(|_| Amf0Error::UnexpectedEof)
}

fn take_u8(input: &mut &[u8]) -> Result<u8, Amf0Error> {
    let [b] = take_array::<1>(input)?;
    Ok(b)
}

fn take_u16(input: &mut &[u8]) -> Result<u16, Amf0Error> {
    Ok(u16::from_be_bytes(take_array(input)?))
}

fn take_u32(input: &mut &[u8]) -> Result<u32, Amf0Error> {
    Ok(u32::from_be_bytes(take_array(input)?))
}

fn take_f64(input: &mut &[u8]) -> Result<f64, Amf0Error> {
    Ok(f64::from_be_bytes(take_array(input)?))
}

fn take_str(input: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let bytes = take(input, len)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Amf0Error::InvalidUtf8)
}

/// Reads `name value` pairs up to and including the `00 00 09` terminator.
fn decode_properties(
    input: &mut &[u8],
    depth: usize,
    left: &mut usize,
) -> Result<Vec<(String, Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let key_len = usize::from(take_u16(input)?);
        if key_len == 0 && input.first() == Some(&MARKER_OBJECT_END) {
            *input = input.get(1..).unwrap_or_default();
            return Ok(props);
        }
        let key = take_str(input, key_len)?;
        let value = decode_value(input, depth, left)?;
        props.push((key, value));
    }
}

fn decode_value(input: &mut &[u8], depth: usize, left: &mut usize) -> Result<Value, Amf0Error> {
    *left = left.checked_sub(1).ok_or(Amf0Error::TooManyValues)?;
    let marker = take_u8(input)?;
    match marker {
        MARKER_NUMBER => Ok(Value::Number(take_f64(input)?)),
        MARKER_BOOLEAN => Ok(Value::Boolean(take_u8(input)? != 0)),
        MARKER_STRING => {
            let len = usize::from(take_u16(input)?);
            Ok(Value::String(take_str(input, len)?))
        }
        MARKER_LONG_STRING => {
            let len = usize::try_from(take_u32(input)?).map_err(|_| Amf0Error::UnexpectedEof)?;
            Ok(Value::String(take_str(input, len)?))
        }
        MARKER_NULL => Ok(Value::Null),
        MARKER_UNDEFINED => Ok(Value::Undefined),
        MARKER_DATE => {
            let millis = take_f64(input)?;
            let _time_zone = take_u16(input)?;
            Ok(Value::Date(millis))
        }
        MARKER_OBJECT | MARKER_ECMA_ARRAY | MARKER_STRICT_ARRAY => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(Amf0Error::TooDeep);
            }
            match marker {
                MARKER_OBJECT => Ok(Value::Object(decode_properties(input, depth, left)?)),
                MARKER_ECMA_ARRAY => {
                    // The count is only a hint (encoders get it wrong); the terminator decides.
                    let _count = take_u32(input)?;
                    Ok(Value::EcmaArray(decode_properties(input, depth, left)?))
                }
                _ => {
                    let count = take_u32(input)?;
                    let count = usize::try_from(count).unwrap_or(usize::MAX);
                    // Every element takes at least one byte and one value of the count: never
                    // reserve more than could fit in either.
                    let mut items = Vec::with_capacity(count.min(input.len()).min(*left));
                    for _ in 0..count {
                        items.push(decode_value(input, depth, left)?);
                    }
                    Ok(Value::StrictArray(items))
                }
            }
        }
        MARKER_REFERENCE => Err(Amf0Error::Reference),
        MARKER_OBJECT_END => Err(Amf0Error::UnexpectedObjectEnd),
        other => Err(Amf0Error::UnsupportedMarker(other)),
    }
}

/// Appends a number (0x00).
pub fn write_number(out: &mut Vec<u8>, v: f64) {
    out.push(MARKER_NUMBER);
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a boolean (0x01).
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(MARKER_BOOLEAN);
    out.push(u8::from(v));
}

/// Appends a string: 0x02 with a 16-bit length, or 0x0C (long string) with a 32-bit length
/// when it is longer than 65535 bytes. Strings longer than `u32::MAX` bytes are cut there.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    match u16::try_from(bytes.len()) {
        Ok(len) => {
            out.push(MARKER_STRING);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Err(_) => {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            out.push(MARKER_LONG_STRING);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes.get(..len as usize).unwrap_or(bytes));
        }
    }
}

/// Appends null (0x05).
pub fn write_null(out: &mut Vec<u8>) {
    out.push(MARKER_NULL);
}

/// Appends undefined (0x06).
pub fn write_undefined(out: &mut Vec<u8>) {
    out.push(MARKER_UNDEFINED);
}

/// Appends the object marker (0x03); follow with `write_key` + value pairs and
/// [`write_object_end`].
pub fn write_object_start(out: &mut Vec<u8>) {
    out.push(MARKER_OBJECT);
}

/// Appends a property name (16-bit length + UTF-8, no marker). Names are ours and short; one
/// longer than 65535 bytes is cut there.
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    let bytes = key.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

/// Appends the object-end sequence `00 00 09` that closes objects and ECMA arrays.
pub fn write_object_end(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00, MARKER_OBJECT_END]);
}

/// Appends the ECMA-array marker (0x08) and its element count; follow with `write_key` +
/// value pairs and [`write_object_end`].
pub fn write_ecma_array_start(out: &mut Vec<u8>, count: u32) {
    out.push(MARKER_ECMA_ARRAY);
    out.extend_from_slice(&count.to_be_bytes());
}

/// Appends the strict-array marker (0x0A) and its element count; follow with exactly `count`
/// values and nothing else.
pub fn write_strict_array_start(out: &mut Vec<u8>, count: u32) {
    out.push(MARKER_STRICT_ARRAY);
    out.extend_from_slice(&count.to_be_bytes());
}

/// Appends a date (0x0B): milliseconds since the epoch and a zero time zone.
pub fn write_date(out: &mut Vec<u8>, millis: f64) {
    out.push(MARKER_DATE);
    out.extend_from_slice(&millis.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

/// Appends any [`Value`], recursively. Allocation-free apart from `out`'s growth.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Number(n) => write_number(out, *n),
        Value::Boolean(b) => write_bool(out, *b),
        Value::String(s) => write_string(out, s),
        Value::Null => write_null(out),
        Value::Undefined => write_undefined(out),
        Value::Date(d) => write_date(out, *d),
        Value::Object(props) => {
            write_object_start(out);
            write_properties(out, props);
        }
        Value::EcmaArray(props) => {
            write_ecma_array_start(out, u32::try_from(props.len()).unwrap_or(u32::MAX));
            write_properties(out, props);
        }
        Value::StrictArray(items) => {
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            write_strict_array_start(out, count);
            for item in items.iter().take(count as usize) {
                write_value(out, item);
            }
        }
    }
}

fn write_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (key, value) in props {
        write_key(out, key);
        write_value(out, value);
    }
    write_object_end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    fn decode_exact(bytes: &[u8]) -> Value {
        let mut input = bytes;
        let v = decode(&mut input).expect("decodes");
        assert!(input.is_empty(), "trailing bytes: {input:02x?}");
        v
    }

    /// (value, exact encoding): checked both ways.
    fn table() -> Vec<(Value, Vec<u8>)> {
        vec![
            (Value::Number(0.0), vec![0x00, 0, 0, 0, 0, 0, 0, 0, 0]),
            (Value::Number(1.0), vec![0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]),
            (
                Value::Number(-2.5),
                vec![0x00, 0xC0, 0x04, 0, 0, 0, 0, 0, 0],
            ),
            (
                Value::Number(1935.0),
                vec![0x00, 0x40, 0x9E, 0x3C, 0, 0, 0, 0, 0],
            ),
            (Value::Boolean(true), vec![0x01, 0x01]),
            (Value::Boolean(false), vec![0x01, 0x00]),
            (s(""), vec![0x02, 0x00, 0x00]),
            (s("live"), vec![0x02, 0x00, 0x04, b'l', b'i', b'v', b'e']),
            (s("é"), vec![0x02, 0x00, 0x02, 0xC3, 0xA9]),
            (Value::Null, vec![0x05]),
            (Value::Undefined, vec![0x06]),
            (
                Value::Date(1000.0),
                vec![0x0B, 0x40, 0x8F, 0x40, 0, 0, 0, 0, 0, 0x00, 0x00],
            ),
            (Value::Object(vec![]), vec![0x03, 0x00, 0x00, 0x09]),
            (
                Value::Object(vec![("a".into(), Value::Boolean(true))]),
                vec![0x03, 0x00, 0x01, b'a', 0x01, 0x01, 0x00, 0x00, 0x09],
            ),
            (
                Value::EcmaArray(vec![("w".into(), Value::Null), ("h".into(), Value::Null)]),
                vec![
                    0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, b'w', 0x05, 0x00, 0x01, b'h', 0x05,
                    0x00, 0x00, 0x09,
                ],
            ),
            (
                Value::StrictArray(vec![Value::Null, Value::Boolean(false)]),
                vec![0x0A, 0x00, 0x00, 0x00, 0x02, 0x05, 0x01, 0x00],
            ),
            (
                // nested: {o: {n: [null]}}
                Value::Object(vec![(
                    "o".into(),
                    Value::Object(vec![("n".into(), Value::StrictArray(vec![Value::Null]))]),
                )]),
                vec![
                    0x03, 0x00, 0x01, b'o', 0x03, 0x00, 0x01, b'n', 0x0A, 0x00, 0x00, 0x00, 0x01,
                    0x05, 0x00, 0x00, 0x09, 0x00, 0x00, 0x09,
                ],
            ),
        ]
    }

    #[test]
    fn table_encodes_and_decodes() {
        for (value, bytes) in table() {
            let mut out = Vec::new();
            write_value(&mut out, &value);
            assert_eq!(out, bytes, "encoding {value:?}");
            assert_eq!(decode_exact(&bytes), value, "decoding {bytes:02x?}");
        }
    }

    #[test]
    fn long_strings_both_ways() {
        // 65535 bytes still fits a plain string.
        let max_short = "x".repeat(65535);
        let mut out = Vec::new();
        write_string(&mut out, &max_short);
        assert_eq!(&out[..3], &[0x02, 0xFF, 0xFF]);
        assert_eq!(out.len(), 3 + 65535);
        assert_eq!(decode_exact(&out), Value::String(max_short));

        let long = "y".repeat(65536);
        let mut out = Vec::new();
        write_string(&mut out, &long);
        assert_eq!(&out[..5], &[0x0C, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(out.len(), 5 + 65536);
        assert_eq!(decode_exact(&out), Value::String(long));

        let small_long = [0x0C, 0, 0, 0, 2, b'h', b'i'];
        assert_eq!(decode_exact(&small_long), s("hi"));
    }

    #[test]
    fn piecewise_encoders_match_value_encoder() {
        let mut a = Vec::new();
        write_ecma_array_start(&mut a, 2);
        write_key(&mut a, "width");
        write_number(&mut a, 1280.0);
        write_key(&mut a, "encoder");
        write_string(&mut a, "campush");
        write_object_end(&mut a);
        let mut b = Vec::new();
        write_value(
            &mut b,
            &Value::EcmaArray(vec![
                ("width".into(), Value::Number(1280.0)),
                ("encoder".into(), s("campush")),
            ]),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn encoders_do_not_allocate_with_capacity() {
        let mut out = Vec::with_capacity(256);
        let ptr = out.as_ptr();
        write_object_start(&mut out);
        write_key(&mut out, "k");
        write_number(&mut out, 1.0);
        write_key(&mut out, "b");
        write_bool(&mut out, true);
        write_key(&mut out, "s");
        write_string(&mut out, "v");
        write_key(&mut out, "n");
        write_null(&mut out);
        write_object_end(&mut out);
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.capacity(), 256);
    }

    /// `connect` as ffmpeg (`-f flv rtmp://127.0.0.1/live/key`) sends it and nginx-rtmp parses it.
    #[test]
    fn real_connect_command() {
        #[rustfmt::skip]
        let bytes: Vec<u8> = [
            &[0x02, 0x00, 0x07][..], b"connect",
            &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0],
            &[0x03],
            &[0x00, 0x03], b"app", &[0x02, 0x00, 0x04], b"live",
            &[0x00, 0x04], b"type", &[0x02, 0x00, 0x0A], b"nonprivate",
            &[0x00, 0x08], b"flashVer", &[0x02, 0x00, 0x23], b"FMLE/3.0 (compatible; Lavf61.7.100)",
            &[0x00, 0x05], b"tcUrl", &[0x02, 0x00, 0x1A], b"rtmp://127.0.0.1:1935/live",
            &[0x00, 0x00, 0x09],
        ]
        .concat();

        let mut input = &bytes[..];
        let values = decode_all(&mut input, 8).expect("decodes");
        assert!(input.is_empty());
        assert_eq!(values.len(), 3);
        assert_eq!(values[0].as_str(), Some("connect"));
        assert_eq!(values[1].as_number(), Some(1.0));
        let obj = &values[2];
        assert_eq!(obj.get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(obj.get("type").and_then(Value::as_str), Some("nonprivate"));
        assert_eq!(
            obj.get("tcUrl").and_then(Value::as_str),
            Some("rtmp://127.0.0.1:1935/live")
        );
        assert_eq!(obj.get("missing"), None);

        // And our encoders produce exactly the same bytes.
        let mut out = Vec::new();
        write_string(&mut out, "connect");
        write_number(&mut out, 1.0);
        write_object_start(&mut out);
        write_key(&mut out, "app");
        write_string(&mut out, "live");
        write_key(&mut out, "type");
        write_string(&mut out, "nonprivate");
        write_key(&mut out, "flashVer");
        write_string(&mut out, "FMLE/3.0 (compatible; Lavf61.7.100)");
        write_key(&mut out, "tcUrl");
        write_string(&mut out, "rtmp://127.0.0.1:1935/live");
        write_object_end(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        let cases: &[(&[u8], Amf0Error)] = &[
            (&[], Amf0Error::UnexpectedEof),
            (&[0x00, 0x3F], Amf0Error::UnexpectedEof),
            (&[0x02, 0x00, 0x05, b'a'], Amf0Error::UnexpectedEof),
            (
                &[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
                Amf0Error::UnexpectedEof,
            ),
            (&[0x02, 0x00, 0x01, 0xFF], Amf0Error::InvalidUtf8),
            (&[0x07, 0x00, 0x01], Amf0Error::Reference),
            (&[0x04], Amf0Error::UnsupportedMarker(0x04)),
            (&[0x0D], Amf0Error::UnsupportedMarker(0x0D)),
            (&[0x10], Amf0Error::UnsupportedMarker(0x10)),
            (&[0x11], Amf0Error::UnsupportedMarker(0x11)),
            (&[0xFF], Amf0Error::UnsupportedMarker(0xFF)),
            (&[0x09], Amf0Error::UnexpectedObjectEnd),
            // object without terminator
            (&[0x03, 0x00, 0x01, b'a', 0x05], Amf0Error::UnexpectedEof),
            // strict array announcing 4 billion elements, holding none
            (&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF], Amf0Error::UnexpectedEof),
        ];
        for (bytes, want) in cases {
            let mut input = *bytes;
            assert_eq!(decode(&mut input).as_ref(), Err(want), "input {bytes:02x?}");
        }
    }

    #[test]
    fn nesting_depth_is_limited() {
        let nested = |depth: usize| {
            let mut v = Vec::new();
            for _ in 0..depth {
                v.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
            }
            v.push(0x05);
            v
        };
        assert!(decode(&mut &nested(MAX_DEPTH)[..]).is_ok());
        assert_eq!(
            decode(&mut &nested(MAX_DEPTH + 1)[..]),
            Err(Amf0Error::TooDeep)
        );
        // Deep enough to overflow the stack if depth were not checked.
        assert_eq!(decode(&mut &nested(100_000)[..]), Err(Amf0Error::TooDeep));
    }

    #[test]
    fn the_values_one_decode_produces_are_counted() {
        // A strict array of MAX_VALUES - 1 nulls is MAX_VALUES values with the array itself.
        let array = |count: usize| {
            let mut v = vec![0x0A];
            v.extend_from_slice(&(count as u32).to_be_bytes());
            v.resize(5 + count, 0x05);
            v
        };
        assert!(decode(&mut &array(MAX_VALUES - 1)[..]).is_ok());
        assert_eq!(
            decode(&mut &array(MAX_VALUES)[..]),
            Err(Amf0Error::TooManyValues)
        );
        // 60 000 nulls in 60 KB (tests/hostile_server.rs measures what that costs now).
        let bytes = array(60_000);
        let mut input = &bytes[..];
        assert_eq!(decode(&mut input), Err(Amf0Error::TooManyValues));
        // Object properties count too, and so does every value of a decode_all.
        let mut object = vec![0x03];
        for _ in 0..MAX_VALUES {
            object.extend_from_slice(&[0, 1, b'k', 0x05]);
        }
        object.extend_from_slice(&[0, 0, 9]);
        assert_eq!(decode(&mut &object[..]), Err(Amf0Error::TooManyValues));
        let nulls = vec![0x05; MAX_VALUES + 1];
        assert_eq!(
            decode_all(&mut &nulls[..], usize::MAX),
            Err(Amf0Error::TooManyValues)
        );
        // A shared count runs out across calls.
        let mut left = 2;
        let mut input = &[0x05, 0x05, 0x05][..];
        assert!(decode_counted(&mut input, &mut left).is_ok());
        assert!(decode_counted(&mut input, &mut left).is_ok());
        assert_eq!(
            decode_counted(&mut input, &mut left),
            Err(Amf0Error::TooManyValues)
        );
        assert!(Amf0Error::TooManyValues.is_limit() && Amf0Error::TooDeep.is_limit());
        assert!(!Amf0Error::UnexpectedEof.is_limit());
    }

    #[test]
    fn decode_advances_input_and_decode_all_limits() {
        let bytes = [0x05, 0x01, 0x01, 0x06];
        let mut input = &bytes[..];
        assert_eq!(decode(&mut input), Ok(Value::Null));
        assert_eq!(input, &[0x01, 0x01, 0x06]);
        let values = decode_all(&mut input, 1).expect("decodes");
        assert_eq!(values, vec![Value::Boolean(true)]);
        assert_eq!(input, &[0x06]);
    }

    #[test]
    fn ecma_array_count_is_only_a_hint() {
        // count says 5, one property follows, then the terminator
        let bytes = [0x08, 0, 0, 0, 5, 0, 1, b'a', 0x05, 0, 0, 9];
        assert_eq!(
            decode_exact(&bytes),
            Value::EcmaArray(vec![("a".into(), Value::Null)])
        );
    }

    #[test]
    fn accessors() {
        let v = Value::EcmaArray(vec![("n".into(), Value::Number(2.0))]);
        assert_eq!(v.get("n").and_then(Value::as_number), Some(2.0));
        assert_eq!(v.as_str(), None);
        assert_eq!(Value::Null.get("n"), None);
        assert_eq!(Value::Number(1.0).as_str(), None);
        assert_eq!(s("x").as_number(), None);
    }
}
