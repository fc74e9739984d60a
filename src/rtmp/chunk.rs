//! RTMP chunk stream (Adobe RTMP 1.0 §5.3): splitting messages into chunks on the way out
//! ([`ChunkWriter`]) and reassembling them on the way in ([`ChunkReader`]).
//!
//! Wire format of one chunk (§5.3.1):
//!
//! ```text
//! basic header   1 byte  fmt(2) csid(6)            csid 2..=63
//!                2 bytes fmt(2) 0, csid-64         csid 64..=319
//!                3 bytes fmt(2) 1, (csid-64) LE16  csid 320..=65599
//! message header fmt 0: timestamp(3) length(3) type(1) stream id(4, little endian)  11 bytes
//!                fmt 1: delta(3) length(3) type(1)                                   7 bytes
//!                fmt 2: delta(3)                                                     3 bytes
//!                fmt 3: nothing (continuation, or a new message repeating the last one)
//! extended ts    4 bytes when the 3-byte field is 0xFFFFFF; also on fmt 3 chunks that follow
//!                such a header (as ffmpeg, nginx-rtmp and SRS write and expect)
//! payload        up to the chunk size (128 until a Set Chunk Size message changes it)
//! ```
//!
//! Writer invariants: it never allocates except through `out`'s growth (it reserves the exact
//! size once per message; with enough capacity, nothing is allocated at all); it keeps the last
//! header of up to [`WRITER_SLOTS`] chunk streams in a fixed array for header compression;
//! fmt 0 is used for a chunk stream's first message, after its stream id changes, when the
//! timestamp goes backwards (a wrapping delta of 2^31 or more) or jumps by 0xFFFFFF or more;
//! fmt 1/2 otherwise; fmt 3 only for continuation chunks (never to start a message: some
//! servers do not apply the previous delta to a fmt-3 message start).
//!
//! Reader invariants: it consumes all the input it is given, buffering at most one partial
//! chunk header (18 bytes) itself; a message longer than the configured maximum is refused as
//! soon as its header is read, before any payload is stored; payload buffers grow only as
//! payload actually arrives, so a peer announcing a huge chunk size or a long message costs
//! nothing until it sends the bytes; at most [`MAX_CHUNK_STREAMS`] chunk streams are tracked.
//! Buffers are kept between messages, so once warmed up, small messages (acknowledgements,
//! pings) are reassembled without allocating; in the worst case a reader holds
//! `MAX_CHUNK_STREAMS * max_message_size` bytes (16 MiB with the 1 MiB default), and only if
//! the peer really sends that much. Timestamps are u32 and wrap. Errors are fatal: after one,
//! the connection must be dropped.

use std::fmt;

/// Chunk size both sides start with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size a peer may announce (§5.4.1: 31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Largest message the 3-byte length field can describe.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Default bound on a reassembled incoming message.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Most chunk streams a peer may use at once (servers use 2 to 8). With the message bound,
/// this caps what a reader can hold: `MAX_CHUNK_STREAMS * max_message_size` bytes at worst.
pub const MAX_CHUNK_STREAMS: usize = 16;
/// Chunk streams whose previous header the writer remembers (we use 5).
pub const WRITER_SLOTS: usize = 8;
/// Lowest and highest chunk stream id (0 and 1 are reserved for the longer basic headers).
pub const MIN_CSID: u32 = 2;
pub const MAX_CSID: u32 = 65599;

const EXTENDED: u32 = 0xFF_FFFF;
/// Basic header (3) + fmt-0 message header (11) + extended timestamp (4).
const MAX_HEADER_LEN: usize = 18;

/// Why the chunk stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size {0} (must be 1 to 2147483647)")]
    InvalidChunkSize(u32),
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("peer uses more than {limit} chunk streams")]
    TooManyChunkStreams { limit: usize },
    #[error("chunk on stream {0} refers to a previous header that was never sent")]
    MissingPreviousHeader(u32),
}

/// One reassembled message. `payload` borrows the reader until the next `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub csid: u32,
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default)]
struct OutHeader {
    /// 0 = empty slot.
    csid: u32,
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Splits outgoing messages into chunks.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: u32,
    slots: [OutHeader; WRITER_SLOTS],
    next_evict: usize,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn push_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    if csid < 64 {
        out.push(fmt | csid as u8);
    } else if csid < 320 {
        out.push(fmt);
        out.push((csid - 64) as u8);
    } else {
        let c = csid - 64;
        out.push(fmt | 1);
        out.push(c as u8);
        out.push((c >> 8) as u8);
    }
}

fn push_u24(out: &mut Vec<u8>, v: u32) {
    let b = v.to_be_bytes();
    out.extend_from_slice(&[b[1], b[2], b[3]]);
}

impl ChunkWriter {
    pub fn new() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
            slots: [OutHeader::default(); WRITER_SLOTS],
            next_evict: 0,
        }
    }

    /// Current outgoing chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Switches to `size` (clamped to 1..=0xFFFFFF; larger is pointless since no message is
    /// longer). Call right after queueing our Set Chunk Size message, which itself still goes
    /// out in the old size.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, EXTENDED);
    }

    /// Forgets every remembered header, so each chunk stream starts again with fmt 0.
    pub fn reset(&mut self) {
        self.slots = [OutHeader::default(); WRITER_SLOTS];
    }

    fn slot_for(&mut self, csid: u32) -> (usize, Option<OutHeader>) {
        if let Some(i) = self.slots.iter().position(|s| s.csid == csid) {
            return (i, self.slots.get(i).copied());
        }
        if let Some(i) = self.slots.iter().position(|s| s.csid == 0) {
            return (i, None);
        }
        let i = self.next_evict % WRITER_SLOTS;
        self.next_evict = (i + 1) % WRITER_SLOTS;
        (i, None)
    }

    /// Appends `payload` as one chunked message (see the module doc for the header choice).
    /// `csid` is clamped to 2..=65599. A payload longer than [`MAX_MESSAGE_LEN`] cannot be
    /// framed; it is dropped (nothing is written) rather than corrupting the stream, and a
    /// debug build asserts. Never allocates when `out` has room for the framed message.
    pub fn write_message(
        &mut self,
        out: &mut Vec<u8>,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        debug_assert!(
            payload.len() <= MAX_MESSAGE_LEN,
            "message too long to frame"
        );
        let Some(length) = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l as usize <= MAX_MESSAGE_LEN)
        else {
            return;
        };
        debug_assert!((MIN_CSID..=MAX_CSID).contains(&csid), "invalid csid {csid}");
        let csid = csid.clamp(MIN_CSID, MAX_CSID);

        let (slot, prev) = self.slot_for(csid);
        let (fmt, field) = match prev {
            Some(p) if p.stream_id == stream_id => {
                let delta = timestamp.wrapping_sub(p.timestamp);
                // Forward by less than 0xFFFFFF. (Backwards, a wrapping delta of 2^31 or
                // more, is also excluded by this.)
                if delta < EXTENDED {
                    if p.length == length && p.type_id == type_id {
                        (2u8, delta)
                    } else {
                        (1u8, delta)
                    }
                } else {
                    (0u8, timestamp)
                }
            }
            _ => (0u8, timestamp),
        };
        let extended = field >= EXTENDED;

        let chunk_size = self.chunk_size.max(1) as usize;
        let continuations = payload.len().saturating_sub(1) / chunk_size;
        let ext_len = if extended { 4 } else { 0 };
        out.reserve(MAX_HEADER_LEN + payload.len() + continuations * (3 + ext_len));

        push_basic_header(out, fmt, csid);
        push_u24(out, if extended { EXTENDED } else { field });
        if fmt <= 1 {
            push_u24(out, length);
            out.push(type_id);
        }
        if fmt == 0 {
            out.extend_from_slice(&stream_id.to_le_bytes());
        }
        if extended {
            out.extend_from_slice(&field.to_be_bytes());
        }
        for (i, chunk) in payload.chunks(chunk_size).enumerate() {
            if i > 0 {
                push_basic_header(out, 3, csid);
                if extended {
                    out.extend_from_slice(&field.to_be_bytes());
                }
            }
            out.extend_from_slice(chunk);
        }

        if let Some(s) = self.slots.get_mut(slot) {
            *s = OutHeader {
                csid,
                timestamp,
                length,
                type_id,
                stream_id,
            };
        }
    }
}

#[derive(Debug)]
struct InStream {
    csid: u32,
    timestamp: u32,
    /// Delta a fmt-3 message start adds (for fmt 0: the timestamp itself, as in §5.3.1.2.4).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last fmt 0/1/2 header carried an extended timestamp, so fmt-3 chunks do too.
    extended: bool,
    /// A message has started and `buf` holds fewer than `length` bytes of it.
    in_progress: bool,
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Collecting a chunk header in `hdr[..hdr_len]`.
    Header,
    /// Copying `remaining` payload bytes of the current chunk into `streams[slot]`.
    Payload { slot: usize, remaining: usize },
}

/// Reassembles incoming chunks into messages.
pub struct ChunkReader {
    chunk_size: u32,
    max_message_size: usize,
    streams: Vec<InStream>,
    state: ReadState,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: usize,
    bytes_received: u64,
}

fn be24(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 3) {
        Some(&[x, y, z]) => u32::from_be_bytes([0, x, y, z]),
        _ => 0,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_be_bytes([w, x, y, z]),
        _ => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => u32::from_le_bytes([w, x, y, z]),
        _ => 0,
    }
}

/// Decoded header fields; which are meaningful depends on `fmt`.
struct Header {
    fmt: u8,
    csid: u32,
    field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
}

impl Default for ChunkReader {
    /// A reader bounded by [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl fmt::Debug for ChunkReader {
    /// Sizes and state only; payload bytes are not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkReader")
            .field("chunk_size", &self.chunk_size)
            .field("max_message_size", &self.max_message_size)
            .field("chunk_streams", &self.streams.len())
            .field("state", &self.state)
            .field("bytes_received", &self.bytes_received)
            .finish_non_exhaustive()
    }
}

impl ChunkReader {
    /// A reader refusing messages longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_size,
            streams: Vec::with_capacity(MAX_CHUNK_STREAMS),
            state: ReadState::Header,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            bytes_received: 0,
        }
    }

    /// Applies the peer's Set Chunk Size (§5.4.1): 1 to 2^31-1. Costs no memory by itself.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_CHUNK_SIZE {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The configured message-size bound.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Bytes consumed by [`Self::read`] so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Applies the peer's Abort Message (§5.4.2): drops the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.csid == csid) {
            s.in_progress = false;
            s.buf.clear();
        }
    }

    /// Total header length implied by the header bytes collected so far (may grow as more
    /// bytes reveal the format, the csid and the extended-timestamp marker).
    fn header_needed(&self) -> usize {
        let hdr = self.hdr.get(..self.hdr_len).unwrap_or_default();
        let Some(&b0) = hdr.first() else {
            return 1;
        };
        let basic = match b0 & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if hdr.len() < basic {
            return basic;
        }
        let fmt = b0 >> 6;
        let message = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let base = basic + message;
        if hdr.len() < base {
            return base;
        }
        let extended = if fmt < 3 {
            be24(hdr, basic) == EXTENDED
        } else {
            let csid = Self::csid_of(hdr);
            self.streams.iter().any(|s| s.csid == csid && s.extended)
        };
        base + if extended { 4 } else { 0 }
    }

    fn csid_of(hdr: &[u8]) -> u32 {
        match hdr {
            [b0, rest @ ..] => match b0 & 0x3F {
                0 => 64 + u32::from(rest.first().copied().unwrap_or(0)),
                1 => match rest {
                    [lo, hi, ..] => 64 + u32::from(*lo) + (u32::from(*hi) << 8),
                    _ => 64,
                },
                c => u32::from(c),
            },
            [] => 0,
        }
    }

    fn parse_header(&self) -> Header {
        let hdr = self.hdr.get(..self.hdr_len).unwrap_or_default();
        let b0 = hdr.first().copied().unwrap_or(0);
        let basic = match b0 & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let fmt = b0 >> 6;
        let csid = Self::csid_of(hdr);
        let field = be24(hdr, basic);
        let (extended, ext_at) = match fmt {
            0 => (field == EXTENDED, basic + 11),
            1 => (field == EXTENDED, basic + 7),
            2 => (field == EXTENDED, basic + 3),
            _ => (false, basic),
        };
        Header {
            fmt,
            csid,
            field: if extended { be32(hdr, ext_at) } else { field },
            length: be24(hdr, basic + 3),
            type_id: hdr.get(basic + 6).copied().unwrap_or(0),
            stream_id: le32(hdr, basic + 7),
            extended,
        }
    }

    /// Applies a complete header. Returns the slot and the payload length of this chunk, or
    /// `remaining == 0` for a zero-length message that is already complete.
    fn apply_header(&mut self) -> Result<(usize, usize), ChunkError> {
        let h = self.parse_header();
        let slot = match self.streams.iter().position(|s| s.csid == h.csid) {
            Some(i) => i,
            None if h.fmt == 0 => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(ChunkError::TooManyChunkStreams {
                        limit: MAX_CHUNK_STREAMS,
                    });
                }
                self.streams.push(InStream {
                    csid: h.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    in_progress: false,
                    buf: Vec::new(),
                });
                self.streams.len() - 1
            }
            None => return Err(ChunkError::MissingPreviousHeader(h.csid)),
        };
        let chunk_size = self.chunk_size as usize;
        let limit = self.max_message_size;
        let Some(st) = self.streams.get_mut(slot) else {
            return Err(ChunkError::MissingPreviousHeader(h.csid));
        };
        match h.fmt {
            0 => {
                st.timestamp = h.field;
                st.delta = h.field;
                st.length = h.length;
                st.type_id = h.type_id;
                st.stream_id = h.stream_id;
                st.extended = h.extended;
            }
            1 => {
                st.timestamp = st.timestamp.wrapping_add(h.field);
                st.delta = h.field;
                st.length = h.length;
                st.type_id = h.type_id;
                st.extended = h.extended;
            }
            2 => {
                st.timestamp = st.timestamp.wrapping_add(h.field);
                st.delta = h.field;
                st.extended = h.extended;
            }
            _ => {
                if st.in_progress {
                    let left = (st.length as usize).saturating_sub(st.buf.len());
                    return Ok((slot, left.min(chunk_size)));
                }
                st.timestamp = st.timestamp.wrapping_add(st.delta);
            }
        }
        // A new message starts (a fmt 0/1/2 header in the middle of one replaces it).
        let length = st.length as usize;
        if length > limit {
            st.in_progress = false;
            return Err(ChunkError::MessageTooLarge {
                size: length,
                limit,
            });
        }
        st.buf.clear();
        st.in_progress = length > 0;
        Ok((slot, length.min(chunk_size)))
    }

    /// Consumes bytes from `input`; returns `(consumed, Some(message))` when one completes.
    /// Without a message, all of `input` has been consumed (partial data is kept inside). The
    /// caller loops until `consumed == input.len()` and no message came back.
    pub fn read<'a>(
        &'a mut self,
        input: &[u8],
    ) -> Result<(usize, Option<Message<'a>>), ChunkError> {
        let mut pos = 0;
        let complete = loop {
            let rest = input.get(pos..).unwrap_or_default();
            match self.state {
                ReadState::Header => {
                    let needed = self.header_needed();
                    if self.hdr_len < needed {
                        let n = (needed - self.hdr_len).min(rest.len());
                        if n == 0 {
                            break None;
                        }
                        let dst = self.hdr.get_mut(self.hdr_len..self.hdr_len + n);
                        if let (Some(dst), Some(src)) = (dst, rest.get(..n)) {
                            dst.copy_from_slice(src);
                        }
                        self.hdr_len += n;
                        pos += n;
                        continue;
                    }
                    let applied = self.apply_header();
                    self.hdr_len = 0;
                    let (slot, remaining) = applied?;
                    if remaining == 0 {
                        break Some(slot);
                    }
                    self.state = ReadState::Payload { slot, remaining };
                }
                ReadState::Payload { slot, remaining } => {
                    let n = remaining.min(rest.len());
                    if n == 0 {
                        break None;
                    }
                    let Some(st) = self.streams.get_mut(slot) else {
                        self.state = ReadState::Header;
                        continue;
                    };
                    st.buf.extend_from_slice(rest.get(..n).unwrap_or_default());
                    pos += n;
                    if remaining > n {
                        self.state = ReadState::Payload {
                            slot,
                            remaining: remaining - n,
                        };
                        continue;
                    }
                    self.state = ReadState::Header;
                    if st.buf.len() >= st.length as usize {
                        st.in_progress = false;
                        break Some(slot);
                    }
                }
            }
        };
        self.bytes_received += pos as u64;
        let message = complete
            .and_then(|slot| self.streams.get(slot))
            .map(|st| Message {
                csid: st.csid,
                timestamp: st.timestamp,
                type_id: st.type_id,
                stream_id: st.stream_id,
                payload: &st.buf,
            });
        Ok((pos, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Owned {
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: Vec<u8>,
    }

    impl From<Message<'_>> for Owned {
        fn from(m: Message<'_>) -> Self {
            Owned {
                csid: m.csid,
                timestamp: m.timestamp,
                type_id: m.type_id,
                stream_id: m.stream_id,
                payload: m.payload.to_vec(),
            }
        }
    }

    /// Feeds `input` in pieces of `step` bytes and collects every message.
    fn read_all(reader: &mut ChunkReader, input: &[u8], step: usize) -> Vec<Owned> {
        let mut got = Vec::new();
        for piece in input.chunks(step.max(1)) {
            let mut pos = 0;
            loop {
                let (n, msg) = reader.read(&piece[pos..]).expect("valid stream");
                pos += n;
                match msg {
                    Some(m) => got.push(Owned::from(m)),
                    None => {
                        assert_eq!(pos, piece.len(), "no message means all consumed");
                        break;
                    }
                }
            }
        }
        got
    }

    fn written(w: &mut ChunkWriter, csid: u32, ts: u32, ty: u8, sid: u32, p: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        w.write_message(&mut out, csid, ts, ty, sid, p);
        out
    }

    #[test]
    fn header_types_0_1_2() {
        let mut w = ChunkWriter::new();
        // fmt 0, csid 6, ts 1000, len 3, type 9, stream 1
        assert_eq!(
            written(&mut w, 6, 1000, 9, 1, b"abc"),
            [
                0x06, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x03, 0x09, 0x01, 0x00, 0x00, 0x00, b'a', b'b',
                b'c'
            ]
        );
        // same length and type: fmt 2 with delta 40
        assert_eq!(
            written(&mut w, 6, 1040, 9, 1, b"xyz"),
            [0x86, 0x00, 0x00, 0x28, b'x', b'y', b'z']
        );
        // different length: fmt 1 with delta 33
        assert_eq!(
            written(&mut w, 6, 1073, 9, 1, b"12345"),
            [0x46, 0x00, 0x00, 0x21, 0x00, 0x00, 0x05, 0x09, b'1', b'2', b'3', b'4', b'5']
        );
        // different type, same length: fmt 1
        assert_eq!(written(&mut w, 6, 1073, 8, 1, b"12345")[0], 0x46);
        // timestamp backwards: fmt 0
        assert_eq!(written(&mut w, 6, 10, 8, 1, b"12345")[0], 0x06);
        // stream id change: fmt 0
        assert_eq!(written(&mut w, 6, 20, 8, 2, b"12345")[0], 0x06);
        // other csid still starts with fmt 0
        assert_eq!(written(&mut w, 4, 20, 8, 2, b"1")[0], 0x04);
        // same timestamp, same everything: fmt 2 with delta 0 (never fmt 3)
        assert_eq!(written(&mut w, 4, 20, 8, 2, b"1"), [0x84, 0, 0, 0, b'1']);
    }

    #[test]
    fn reader_decodes_header_types_0_1_2_3() {
        #[rustfmt::skip]
        let input: Vec<u8> = vec![
            // fmt 0: csid 3, ts 100, len 2, type 20, stream 0
            0x03, 0x00, 0x00, 0x64, 0x00, 0x00, 0x02, 0x14, 0x00, 0x00, 0x00, 0x00, 0xAA, 0xBB,
            // fmt 1: delta 10, len 1, type 18
            0x43, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x01, 0x12, 0xCC,
            // fmt 2: delta 5
            0x83, 0x00, 0x00, 0x05, 0xDD,
            // fmt 3 as a new message: repeats delta 5
            0xC3, 0xEE,
        ];
        let got = read_all(&mut ChunkReader::new(1024), &input, input.len());
        let ts: Vec<(u32, u8, Vec<u8>)> = got
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.payload.clone()))
            .collect();
        assert_eq!(
            ts,
            vec![
                (100, 20, vec![0xAA, 0xBB]),
                (110, 18, vec![0xCC]),
                (115, 18, vec![0xDD]),
                (120, 18, vec![0xEE]),
            ]
        );
        assert!(got.iter().all(|m| m.csid == 3 && m.stream_id == 0));
    }

    #[test]
    fn fmt3_after_fmt0_adds_the_fmt0_timestamp() {
        // §5.3.1.2.4: after a type 0 chunk, a type 3 message start uses its timestamp as delta.
        let input = [
            0x04, 0, 0, 0x10, 0, 0, 1, 8, 1, 0, 0, 0, 0xA1, //
            0xC4, 0xA2,
        ];
        let got = read_all(&mut ChunkReader::new(64), &input, 1);
        assert_eq!(got[0].timestamp, 0x10);
        assert_eq!(got[1].timestamp, 0x20);
        assert_eq!(got[1].stream_id, 1);
    }

    #[test]
    fn csid_forms_1_2_3_bytes() {
        let cases: &[(u32, &[u8])] = &[
            (2, &[0x02]),
            (63, &[0x3F]),
            (64, &[0x00, 0x00]),
            (319, &[0x00, 0xFF]),
            (320, &[0x01, 0x00, 0x01]),
            (65599, &[0x01, 0xFF, 0xFF]),
        ];
        for &(csid, basic) in cases {
            let mut w = ChunkWriter::new();
            let out = written(&mut w, csid, 0, 20, 0, b"x");
            assert_eq!(&out[..basic.len()], basic, "csid {csid}");
            assert_eq!(out.len(), basic.len() + 11 + 1);
            let got = read_all(&mut ChunkReader::new(16), &out, 1);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].csid, csid);
            assert_eq!(got[0].payload, b"x");
        }
    }

    #[test]
    fn message_larger_than_chunk_size_is_split_exactly() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut w = ChunkWriter::new();
        let out = written(&mut w, 6, 0, 9, 1, &payload);
        // 12-byte header + 128 + (1 + 128) + (1 + 44)
        assert_eq!(out.len(), 12 + 128 + 1 + 128 + 1 + 44);
        assert_eq!(&out[12..140], &payload[..128]);
        assert_eq!(out[140], 0xC6);
        assert_eq!(&out[141..269], &payload[128..256]);
        assert_eq!(out[269], 0xC6);
        assert_eq!(&out[270..], &payload[256..]);
        // exactly one chunk size: no continuation
        let out = written(&mut ChunkWriter::new(), 6, 0, 9, 1, &payload[..128]);
        assert_eq!(out.len(), 12 + 128);
        // 129 bytes: one continuation byte
        let out = written(&mut ChunkWriter::new(), 6, 0, 9, 1, &payload[..129]);
        assert_eq!(out.len(), 12 + 128 + 2);
        // empty payload: header only
        let out = written(&mut ChunkWriter::new(), 6, 0, 9, 1, &[]);
        assert_eq!(out.len(), 12);
        let got = read_all(&mut ChunkReader::new(16), &out, 5);
        assert_eq!(got.len(), 1);
        assert!(got[0].payload.is_empty());
    }

    #[test]
    fn bigger_chunk_size() {
        let payload = vec![7u8; 5000];
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        let out = written(&mut w, 6, 0, 9, 1, &payload);
        assert_eq!(out.len(), 12 + 4096 + 1 + 904);
        let mut r = ChunkReader::new(1 << 20);
        r.set_chunk_size(4096).expect("valid");
        let got = read_all(&mut r, &out, 777);
        assert_eq!(got[0].payload, payload);
    }

    #[test]
    fn extended_timestamp_including_continuation_chunks() {
        let payload = vec![0x55u8; 200];
        let mut w = ChunkWriter::new();
        let out = written(&mut w, 6, 0x0100_0000, 9, 1, &payload);
        #[rustfmt::skip]
        let head = [0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0xC8, 0x09, 0x01, 0x00, 0x00, 0x00,
                    0x01, 0x00, 0x00, 0x00];
        assert_eq!(&out[..16], &head);
        // continuation: basic header + the extended timestamp again
        assert_eq!(
            &out[16 + 128..16 + 128 + 5],
            &[0xC6, 0x01, 0x00, 0x00, 0x00]
        );
        assert_eq!(out.len(), 16 + 128 + 5 + 72);
        let mut r = ChunkReader::new(1024);
        let got = read_all(&mut r, &out, 3);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].timestamp, 0x0100_0000);
        assert_eq!(got[0].payload, payload);

        // The next message has a small delta: fmt 2, no extended field.
        let out2 = written(&mut w, 6, 0x0100_0021, 9, 1, &payload);
        assert_eq!(&out2[..4], &[0x86, 0x00, 0x00, 0x21]);
        assert_eq!(out2[4 + 128], 0xC6);
        assert_eq!(out2.len(), 4 + 128 + 1 + 72);
        let got = read_all(&mut r, &out2, 1);
        assert_eq!(got[0].timestamp, 0x0100_0021);

        // Exactly 0xFFFFFF is extended too.
        let out3 = written(&mut ChunkWriter::new(), 3, 0xFF_FFFF, 20, 0, b"z");
        assert_eq!(&out3[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(&out3[12..16], &[0x00, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            read_all(&mut ChunkReader::new(8), &out3, 1)[0].timestamp,
            0xFF_FFFF
        );
    }

    #[test]
    fn reader_extended_on_fmt3_message_start() {
        // fmt 1 with extended delta, then a fmt 3 new message that repeats it (4 bytes again).
        #[rustfmt::skip]
        let input = [
            0x05, 0, 0, 1, 0, 0, 1, 18, 1, 0, 0, 0, 0xA0,
            0x45, 0xFF, 0xFF, 0xFF, 0, 0, 1, 18, 0x01, 0x00, 0x00, 0x00, 0xA1,
            0xC5, 0x01, 0x00, 0x00, 0x00, 0xA2,
        ];
        let got = read_all(&mut ChunkReader::new(8), &input, 2);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].timestamp, 0x0100_0001);
        assert_eq!(got[2].timestamp, 0x0200_0001);
        assert_eq!(got[2].payload, [0xA2]);
    }

    #[test]
    fn timestamps_wrap() {
        let mut w = ChunkWriter::new();
        let mut r = ChunkReader::new(64);
        let a = written(&mut w, 6, 0xFFFF_FFF0, 9, 1, b"a");
        let b = written(&mut w, 6, 0x0000_0010, 9, 1, b"b");
        // wrapping delta 0x20: fmt 2
        assert_eq!(&b[..4], &[0x86, 0x00, 0x00, 0x20]);
        let got = read_all(&mut r, &[a, b].concat(), 1);
        assert_eq!(got[0].timestamp, 0xFFFF_FFF0);
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn interleaved_chunk_streams() {
        let big: Vec<u8> = (0..400u32).map(|i| (i * 7) as u8).collect();
        let mut w = ChunkWriter::new();
        let video = written(&mut w, 6, 5, 9, 1, &big);
        let audio = written(&mut w, 4, 6, 8, 1, b"aud");
        // Put the whole audio message between the first and second video chunk.
        let mut input = video[..12 + 128].to_vec();
        input.extend_from_slice(&audio);
        input.extend_from_slice(&video[12 + 128..]);
        let got = read_all(&mut ChunkReader::new(1024), &input, 9);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, b"aud");
        assert_eq!(got[1].payload, big);
    }

    #[test]
    fn abort_drops_partial_message() {
        let mut w = ChunkWriter::new();
        let big = written(&mut w, 6, 0, 9, 1, &[1u8; 300]);
        let mut r = ChunkReader::new(1024);
        assert!(read_all(&mut r, &big[..12 + 128], 50).is_empty());
        r.abort(6);
        // A new fmt 3 chunk now starts a new message of the same length (300).
        let again = written(&mut ChunkWriter::new(), 6, 0, 9, 1, &[2u8; 300]);
        let got = read_all(&mut r, &again, 64);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, vec![2u8; 300]);
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn round_trip_many_random_messages() {
        for seed in 1..=8u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut w = ChunkWriter::new();
            let mut r = ChunkReader::new(1 << 16);
            let chunk_size = [1u32, 7, 128, 4096, 60000][rng.below(5) as usize];
            w.set_chunk_size(chunk_size);
            r.set_chunk_size(chunk_size).expect("valid");
            let csids = [2u32, 3, 4, 5, 6, 63, 64, 300, 319, 320, 65599];
            let mut ts = [0u32; 11];
            let mut stream = Vec::new();
            let mut expect = Vec::new();
            for _ in 0..400 {
                let c = rng.below(csids.len() as u64) as usize;
                ts[c] = match rng.below(10) {
                    0 => rng.next() as u32, // anything, even backwards
                    1 => ts[c].wrapping_add(0xFF_FFFF + rng.below(3) as u32), // extended jump
                    _ => ts[c].wrapping_add(rng.below(100) as u32),
                };
                let len = match rng.below(4) {
                    0 => rng.below(5) as usize,
                    1 => rng.below(9000) as usize,
                    _ => 33,
                };
                let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let m = Owned {
                    csid: csids[c],
                    timestamp: ts[c],
                    type_id: [8u8, 9, 18, 20][rng.below(4) as usize],
                    stream_id: rng.below(3) as u32,
                    payload,
                };
                w.write_message(
                    &mut stream,
                    m.csid,
                    m.timestamp,
                    m.type_id,
                    m.stream_id,
                    &m.payload,
                );
                expect.push(m);
            }
            let step = 1 + rng.below(3000) as usize;
            let got = read_all(&mut r, &stream, step);
            assert_eq!(got.len(), expect.len(), "seed {seed}");
            for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
                assert_eq!(g, e, "seed {seed} message {i}");
            }
            assert_eq!(r.bytes_received(), stream.len() as u64);
        }
    }

    #[test]
    fn writer_does_not_allocate_with_capacity() {
        let mut w = ChunkWriter::new();
        w.set_chunk_size(4096);
        let payload = vec![0u8; 20_000];
        let mut out = Vec::with_capacity(32 * 1024);
        for i in 0..50u32 {
            out.clear();
            let ptr = out.as_ptr();
            w.write_message(&mut out, 6, i * 33, 9, 1, &payload);
            assert_eq!(out.as_ptr(), ptr);
            assert_eq!(out.capacity(), 32 * 1024);
        }
    }

    #[test]
    fn hostile_chunk_size_and_lengths() {
        let mut r = ChunkReader::new(DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(r.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
        assert_eq!(
            r.set_chunk_size(0x8000_0000),
            Err(ChunkError::InvalidChunkSize(0x8000_0000))
        );
        // 2^31-1 is legal and costs nothing.
        r.set_chunk_size(MAX_CHUNK_SIZE).expect("legal");
        // A 1 MiB message (within the limit) of which only 10 bytes arrive.
        let header = [0x03, 0, 0, 0, 0x10, 0x00, 0x00, 20, 0, 0, 0, 0];
        let (n, m) = r.read(&header).expect("ok");
        assert_eq!((n, m.is_none()), (12, true));
        let (n, m) = r.read(&[0u8; 10]).expect("ok");
        assert_eq!((n, m.is_none()), (10, true));
        let st = r.streams.iter().find(|s| s.csid == 3).expect("slot");
        assert!(st.buf.capacity() < 4096, "reserved {}", st.buf.capacity());

        // A header announcing 16 MiB is refused at once.
        let mut r = ChunkReader::new(DEFAULT_MAX_MESSAGE_SIZE);
        let header = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
        assert_eq!(
            r.read(&header).map(|(n, _)| n),
            Err(ChunkError::MessageTooLarge {
                size: 0xFF_FFFF,
                limit: DEFAULT_MAX_MESSAGE_SIZE
            })
        );

        // fmt 1 on a csid never seen.
        let mut r = ChunkReader::new(64);
        assert_eq!(
            r.read(&[0x47, 0, 0, 0, 0, 0, 1, 9]).map(|(n, _)| n),
            Err(ChunkError::MissingPreviousHeader(7))
        );
        let mut r = ChunkReader::new(64);
        assert_eq!(
            r.read(&[0xC2]).map(|(n, _)| n),
            Err(ChunkError::MissingPreviousHeader(2))
        );

        // Too many chunk streams.
        let mut r = ChunkReader::new(64);
        let mut w = ChunkWriter::new();
        let mut input = Vec::new();
        for csid in 2..2 + MAX_CHUNK_STREAMS as u32 + 1 {
            w.write_message(&mut input, csid, 0, 20, 0, b"x");
        }
        let mut pos = 0;
        let err = loop {
            match r.read(&input[pos..]) {
                Ok((n, _)) => pos += n,
                Err(e) => break e,
            }
        };
        assert_eq!(
            err,
            ChunkError::TooManyChunkStreams {
                limit: MAX_CHUNK_STREAMS
            }
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0xDEAD_BEEF);
        for _ in 0..200 {
            let mut r = ChunkReader::new(4096);
            let _ = r.set_chunk_size(1 + rng.below(300) as u32);
            let len = rng.below(2000) as usize;
            let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut pos = 0;
            while pos < garbage.len() {
                match r.read(&garbage[pos..]) {
                    Ok((n, Some(m))) => {
                        assert!(m.payload.len() <= 4096);
                        pos += n;
                    }
                    Ok((n, None)) => {
                        pos += n;
                        assert_eq!(pos, garbage.len());
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
