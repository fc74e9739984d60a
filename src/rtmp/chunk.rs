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
//! chunk header (18 bytes) itself; a message longer than its type's bound ([`ReaderLimits`]:
//! commands and data apart from the rest) is refused as soon as its header is read, before any
//! payload is stored, and so is a message that would take the announced lengths of all
//! unfinished messages together past the connection's byte budget; payload buffers grow only
//! as payload actually arrives and never past the message's length, so a peer announcing a
//! huge chunk size or a long message costs nothing until it sends the bytes; at most
//! [`MAX_CHUNK_STREAMS`] chunk streams are tracked. A chunk stream's buffer is kept between
//! messages up to [`RETAINED_CAPACITY`] bytes (released when the next read starts), so once
//! warmed up, small messages (acknowledgements, pings) are reassembled without allocating. So a
//! reader holds at most `budget + MAX_CHUNK_STREAMS * RETAINED_CAPACITY` bytes of payload,
//! whatever the peer sends. Timestamps are u32 and wrap. Errors are fatal: after one, the
//! connection must be dropped.
//!
//! What the reader accepts beyond the letter of §5.3, after reading what ffmpeg
//! (libavformat/rtmppkt.c) and nginx-rtmp (ngx_rtmp_handler.c) accept from their peer. The rule:
//! accept where both read the bytes the same way and the meaning is clear; refuse where they
//! disagree or where accepting would cost unbounded memory.
//!
//! | Peer sends | ffmpeg, nginx-rtmp | Here |
//! |---|---|---|
//! | first chunk of a chunk stream with a fmt 1 header (no message stream id) | previous fields are zero: stream id 0 | accepted: stream id 0, timestamp = the delta (one real server does this) |
//! | first chunk with a fmt 2 or fmt 3 header (no length, no type) | previous fields are zero: an empty message of type 0 | accepted: an empty message of type 0, which the session ignores |
//! | a fmt 0/1/2 header in the middle of a message, repeating its length and type (and, fmt 0, stream id) | continues the message; the new timestamp is ignored | accepted as a continuation chunk; the message keeps its first timestamp |
//! | a fmt 0/1 header in the middle of a message with another length | ffmpeg refuses (size mismatch); nginx continues with the new length | refused: [`ChunkError::HeaderChangedMidMessage`] |
//! | the same with another type or stream id | ffmpeg keeps the old type, nginx takes the new one | refused: [`ChunkError::HeaderChangedMidMessage`] |
//! | fmt 3 chunks after an extended-timestamp header | both read the 4-byte extended field again | read it too (whether the chunk continues a message or starts one) |
//! | a message longer than the bound | ffmpeg takes up to 16 MiB per chunk stream; nginx refuses over 1 MiB | refused at its header, per type (commands 64 KiB in a session) and against the byte budget |
//! | more chunk streams than servers use | ffmpeg takes any; nginx refuses chunk stream ids of 32 and up | ids 2 to 65599 accepted, at most [`MAX_CHUNK_STREAMS`] of them in use |
//! | Set Chunk Size 0 or with bit 31 set | ffmpeg refuses (it reads a signed int) | refused: [`ChunkError::InvalidChunkSize`] |
//! | Abort for a chunk stream with nothing in progress | ignored | ignored |

use std::fmt;

use super::msg_type;

/// Chunk size both sides start with (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size a peer may announce (§5.4.1: 31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Largest message the 3-byte length field can describe.
pub const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Default bound on a reassembled incoming message, and on all unfinished ones together.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;
/// Bound on a command or data message (types 15, 17, 18, 20) in a session: servers send a few
/// hundred bytes (ffmpeg reads the fields it needs into 256-byte buffers).
pub const MAX_COMMAND_MESSAGE: usize = 64 * 1024;
/// Most chunk streams a peer may use at once (servers use 2 to 8).
pub const MAX_CHUNK_STREAMS: usize = 16;
/// Payload capacity a chunk stream keeps between messages (more is released).
pub const RETAINED_CAPACITY: usize = 4096;
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
    #[error(
        "unfinished messages would hold {held} + {wanted} bytes, over the budget of {budget} bytes"
    )]
    BudgetExceeded {
        held: usize,
        wanted: usize,
        budget: usize,
    },
    #[error("chunk stream {0}: a header with another length, type or stream id arrived in the middle of a message")]
    HeaderChangedMidMessage(u32),
}

/// What a [`ChunkReader`] accepts from its peer and may hold for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Longest command or data message (AMF0 or AMF3: types 15, 17, 18, 20).
    pub max_command: usize,
    /// Longest message of any other type.
    pub max_other: usize,
    /// Most bytes the unfinished messages may announce together: the connection's budget.
    pub budget: usize,
}

impl ReaderLimits {
    /// Every message up to `max` bytes, and all unfinished messages together up to `max`.
    pub fn uniform(max: usize) -> Self {
        ReaderLimits {
            max_command: max,
            max_other: max,
            budget: max,
        }
    }

    /// A publishing client's: commands and data up to [`MAX_COMMAND_MESSAGE`], other messages
    /// (which it ignores, apart from protocol control) and all unfinished ones together up to
    /// `max`.
    pub fn publisher(max: usize) -> Self {
        ReaderLimits {
            max_command: MAX_COMMAND_MESSAGE.min(max),
            max_other: max,
            budget: max,
        }
    }

    fn max_for(&self, type_id: u8) -> usize {
        match type_id {
            msg_type::COMMAND_AMF0
            | msg_type::COMMAND_AMF3
            | msg_type::DATA_AMF0
            | msg_type::DATA_AMF3 => self.max_command,
            _ => self.max_other,
        }
    }
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

/// The basic header of a chunk: 1 to 3 bytes, and how many.
fn basic_header(fmt: u8, csid: u32) -> ([u8; 3], usize) {
    let fmt = fmt << 6;
    if csid < 64 {
        ([fmt | csid as u8, 0, 0], 1)
    } else if csid < 320 {
        ([fmt, (csid - 64) as u8, 0], 2)
    } else {
        let c = csid - 64;
        ([fmt | 1, c as u8, (c >> 8) as u8], 3)
    }
}

fn push_basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let (bytes, len) = basic_header(fmt, csid);
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
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
        let Some(framing) =
            self.write_message_header(out, csid, timestamp, type_id, stream_id, payload.len())
        else {
            return;
        };
        out.reserve(framing.framed_len(payload.len()));
        for (continuation, chunk) in framing.pieces(payload) {
            out.extend_from_slice(continuation);
            out.extend_from_slice(chunk);
        }
    }

    /// Appends the first chunk header of a message of `length` payload bytes and returns how
    /// the payload goes out after it ([`Framing`]), so a caller can send the payload from
    /// where it lies (one `writev`) instead of copying it into `out`. `None` (nothing written)
    /// for a payload longer than [`MAX_MESSAGE_LEN`]. The writer's state moves on as if the
    /// whole message had been written: the caller must send the payload as framed.
    pub fn write_message_header(
        &mut self,
        out: &mut Vec<u8>,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        length: usize,
    ) -> Option<Framing> {
        debug_assert!(length <= MAX_MESSAGE_LEN, "message too long to frame");
        let length = u32::try_from(length)
            .ok()
            .filter(|&l| l as usize <= MAX_MESSAGE_LEN)?;
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

        out.reserve(MAX_HEADER_LEN);
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

        if let Some(s) = self.slots.get_mut(slot) {
            *s = OutHeader {
                csid,
                timestamp,
                length,
                type_id,
                stream_id,
            };
        }
        // The header of every chunk after the first: type 3, and the extended timestamp again.
        let mut continuation = heapless::Vec::new();
        let (basic, basic_len) = basic_header(3, csid);
        let _ = continuation.extend_from_slice(basic.get(..basic_len).unwrap_or_default());
        if extended {
            let _ = continuation.extend_from_slice(&field.to_be_bytes());
        }
        Some(Framing {
            chunk_size: self.chunk_size.max(1) as usize,
            continuation,
        })
    }
}

/// How a message's payload follows its first chunk header: in pieces of `chunk_size` bytes,
/// each after the first preceded by the same continuation header (type 3, and the extended
/// timestamp when the message has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    chunk_size: usize,
    continuation: heapless::Vec<u8, 7>,
}

impl Framing {
    /// The header before every chunk after the first.
    pub fn continuation(&self) -> &[u8] {
        &self.continuation
    }

    /// How many chunks after the first a payload of `length` bytes takes.
    pub fn continuations(&self, length: usize) -> usize {
        length.saturating_sub(1) / self.chunk_size
    }

    /// The bytes a payload of `length` bytes takes on the wire after the message header: the
    /// payload and the continuation headers between its chunks.
    pub fn framed_len(&self, length: usize) -> usize {
        length + self.continuations(length) * self.continuation.len()
    }

    /// The payload's pieces in order, each with the header that goes before it (empty for the
    /// first, which follows the message header).
    pub fn pieces<'a>(
        &'a self,
        payload: &'a [u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone {
        payload
            .chunks(self.chunk_size)
            .enumerate()
            .map(|(i, chunk)| (if i == 0 { &[][..] } else { self.continuation() }, chunk))
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
    limits: ReaderLimits,
    streams: Vec<InStream>,
    /// The stream whose message the last `read` returned: its buffer is trimmed at the next.
    returned: Option<usize>,
    state: ReadState,
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: usize,
    bytes_received: u64,
}

/// Empties `buf`, giving back all but [`RETAINED_CAPACITY`] bytes of its capacity.
fn release(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > RETAINED_CAPACITY {
        buf.shrink_to(RETAINED_CAPACITY);
    }
}

/// Makes room for `n` more bytes in `buf`, which will hold at most `length` bytes: doubling (so
/// a message costs a logarithmic number of allocations) but never past `length`, so a buffer is
/// never more than its message.
fn grow_within(buf: &mut Vec<u8>, n: usize, length: usize) {
    let need = buf.len().saturating_add(n);
    if need <= buf.capacity() {
        return;
    }
    let target = buf.capacity().saturating_mul(2).min(length).max(need);
    buf.reserve_exact(target - buf.len());
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
            .field("limits", &self.limits)
            .field("chunk_streams", &self.streams.len())
            .field("state", &self.state)
            .field("bytes_received", &self.bytes_received)
            .finish_non_exhaustive()
    }
}

impl ChunkReader {
    /// A reader refusing messages longer than `max_message_size` bytes, and unfinished
    /// messages announcing more than that together.
    pub fn new(max_message_size: usize) -> Self {
        Self::with_limits(ReaderLimits::uniform(max_message_size))
    }

    /// A reader bounded by `limits`.
    pub fn with_limits(limits: ReaderLimits) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: Vec::with_capacity(MAX_CHUNK_STREAMS),
            returned: None,
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

    /// The configured bounds.
    pub fn limits(&self) -> ReaderLimits {
        self.limits
    }

    /// Bytes consumed by [`Self::read`] so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Applies the peer's Abort Message (§5.4.2): drops the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.csid == csid) {
            s.in_progress = false;
            release(&mut s.buf);
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
            None => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(ChunkError::TooManyChunkStreams {
                        limit: MAX_CHUNK_STREAMS,
                    });
                }
                // A fmt 1/2/3 first chunk takes the missing fields as zero (see the module doc).
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
        };
        let chunk_size = self.chunk_size as usize;
        let limits = self.limits;
        let held: usize = self
            .streams
            .iter()
            .enumerate()
            .filter(|&(i, s)| i != slot && s.in_progress)
            .map(|(_, s)| s.length as usize)
            .sum();
        let Some(st) = self.streams.get_mut(slot) else {
            return Err(ChunkError::TooManyChunkStreams {
                limit: MAX_CHUNK_STREAMS,
            });
        };
        if st.in_progress {
            // A chunk in the middle of a message continues it, whatever its header says about
            // the timestamp; a header that changes the message is refused.
            let same = match h.fmt {
                0 => (h.length, h.type_id, h.stream_id) == (st.length, st.type_id, st.stream_id),
                1 => (h.length, h.type_id) == (st.length, st.type_id),
                _ => true,
            };
            if !same {
                return Err(ChunkError::HeaderChangedMidMessage(h.csid));
            }
            let left = (st.length as usize).saturating_sub(st.buf.len());
            return Ok((slot, left.min(chunk_size)));
        }
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
            _ => st.timestamp = st.timestamp.wrapping_add(st.delta),
        }
        // A new message starts.
        let length = st.length as usize;
        let limit = limits.max_for(st.type_id);
        if length > limit {
            return Err(ChunkError::MessageTooLarge {
                size: length,
                limit,
            });
        }
        if held.saturating_add(length) > limits.budget {
            return Err(ChunkError::BudgetExceeded {
                held,
                wanted: length,
                budget: limits.budget,
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
        if let Some(st) = self
            .returned
            .take()
            .and_then(|slot| self.streams.get_mut(slot))
        {
            release(&mut st.buf);
        }
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
                    grow_within(&mut st.buf, n, st.length as usize);
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
        self.returned = complete;
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

    #[test]
    fn a_header_and_the_payload_from_where_it_lies_frame_a_message_exactly_as_a_copy_does() {
        // Sizes around the chunk size, csids of 1, 2 and 3 basic-header bytes, timestamps that
        // need the extended field, and header compression from one message to the next.
        let payload: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        for chunk_size in [128u32, 4096] {
            for csid in [6u32, 100, 400] {
                let (mut copying, mut framing) = (ChunkWriter::new(), ChunkWriter::new());
                copying.set_chunk_size(chunk_size);
                framing.set_chunk_size(chunk_size);
                let (mut copied, mut framed) = (Vec::new(), Vec::new());
                for (i, (len, ts)) in [
                    (0usize, 0u32),
                    (1, 33),
                    (127, 66),
                    (128, 100),
                    (4097, 133),
                    (4097, 166),
                    (20_000, 0x00ff_fff0),
                    (300, 0x0100_0000),
                    (8192, 0x0100_0021),
                ]
                .into_iter()
                .enumerate()
                {
                    let body = &payload[..len];
                    copying.write_message(&mut copied, csid, ts, 9, 1, body);
                    let f = framing
                        .write_message_header(&mut framed, csid, ts, 9, 1, len)
                        .unwrap();
                    let mut pieces = 0;
                    for (continuation, chunk) in f.pieces(body) {
                        framed.extend_from_slice(continuation);
                        framed.extend_from_slice(chunk);
                        pieces += 1;
                    }
                    assert_eq!(pieces, f.continuations(len) + usize::from(len > 0), "{i}");
                    assert_eq!(framed, copied, "chunk size {chunk_size}, csid {csid}, {i}");
                }
                let mut reader = ChunkReader::new(1 << 20);
                reader.set_chunk_size(chunk_size).unwrap();
                assert_eq!(read_all(&mut reader, &framed, 1000).len(), 9);
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

    /// Reads `input` whole and returns every message, or the first error.
    fn try_read_all(reader: &mut ChunkReader, input: &[u8]) -> Result<Vec<Owned>, ChunkError> {
        let mut got = Vec::new();
        let mut pos = 0;
        loop {
            let (n, msg) = reader.read(&input[pos..])?;
            pos += n;
            match msg {
                Some(m) => got.push(Owned::from(m)),
                None => return Ok(got),
            }
        }
    }

    #[test]
    fn a_fmt1_first_chunk_takes_message_stream_id_0() {
        // One server in the wild opens chunk streams this way; ffmpeg takes the missing fields
        // as zero.
        #[rustfmt::skip]
        let input = [
            // fmt 1 on csid 3, never seen: delta 5, length 2, type 20
            0x43, 0, 0, 5, 0, 0, 2, 20, 0xAA, 0xBB,
            // fmt 3: the next message repeats the delta
            0xC3, 0xCC, 0xDD,
        ];
        let got = read_all(&mut ChunkReader::new(64), &input, 1);
        assert_eq!(
            got,
            vec![
                Owned {
                    csid: 3,
                    timestamp: 5,
                    type_id: 20,
                    stream_id: 0,
                    payload: vec![0xAA, 0xBB]
                },
                Owned {
                    csid: 3,
                    timestamp: 10,
                    type_id: 20,
                    stream_id: 0,
                    payload: vec![0xCC, 0xDD]
                },
            ]
        );
    }

    #[test]
    fn a_fmt2_or_fmt3_first_chunk_is_an_empty_message_of_type_0() {
        // No length, no type: ffmpeg and nginx-rtmp both read an empty message there, and so
        // does the next header.
        #[rustfmt::skip]
        let input = [
            0x82, 0, 0, 7,                                      // fmt 2 on csid 2: delta 7
            0xC5,                                               // fmt 3 on csid 5
            0x05, 0, 0, 1, 0, 0, 1, 20, 0, 0, 0, 0, 0xEE,        // then a normal message on csid 5
        ];
        let got = read_all(&mut ChunkReader::new(64), &input, 1);
        assert_eq!(
            got,
            vec![
                Owned {
                    csid: 2,
                    timestamp: 7,
                    type_id: 0,
                    stream_id: 0,
                    payload: vec![]
                },
                Owned {
                    csid: 5,
                    timestamp: 0,
                    type_id: 0,
                    stream_id: 0,
                    payload: vec![]
                },
                Owned {
                    csid: 5,
                    timestamp: 1,
                    type_id: 20,
                    stream_id: 0,
                    payload: vec![0xEE]
                },
            ]
        );
    }

    #[test]
    fn a_header_repeating_the_message_in_progress_continues_it() {
        // Chunk size 4, two 10-byte messages on csid 6 whose continuation chunks carry full
        // headers with the same length and type instead of fmt 3: the first continues with
        // fmt 0 then fmt 1, the second with fmt 2. Their timestamps are ignored, as ffmpeg and
        // nginx-rtmp ignore them.
        #[rustfmt::skip]
        let input = [
            0x06, 0, 0, 10, 0, 0, 10, 9, 1, 0, 0, 0, 1, 2, 3, 4,
            0x06, 0, 0, 99, 0, 0, 10, 9, 1, 0, 0, 0, 5, 6, 7, 8,
            0x46, 0, 0, 50, 0, 0, 10, 9, 9, 10,
            0x86, 0, 0, 3, 11, 12, 13, 14,
            0x86, 0, 0, 77, 15, 16, 17, 18,
            0xC6, 19, 20,
        ];
        let mut r = ChunkReader::new(64);
        r.set_chunk_size(4).expect("valid");
        let got = read_all(&mut r, &input, 3);
        assert_eq!(
            got,
            vec![
                Owned {
                    csid: 6,
                    timestamp: 10,
                    type_id: 9,
                    stream_id: 1,
                    payload: (1..=10).collect()
                },
                Owned {
                    csid: 6,
                    timestamp: 13,
                    type_id: 9,
                    stream_id: 1,
                    payload: (11..=20).collect()
                },
            ]
        );
    }

    #[test]
    fn a_header_changing_the_message_in_progress_is_refused() {
        let start = [0x06, 0, 0, 10, 0, 0, 10, 9, 1, 0, 0, 0, 1, 2, 3, 4];
        #[rustfmt::skip]
        let changes: [&[u8]; 4] = [
            &[0x46, 0, 0, 0, 0, 0, 11, 9],             // fmt 1, another length
            &[0x46, 0, 0, 0, 0, 0, 10, 8],             // fmt 1, another type
            &[0x06, 0, 0, 0, 0, 0, 10, 9, 2, 0, 0, 0], // fmt 0, another stream id
            &[0x06, 0, 0, 0, 0, 0, 9, 9, 1, 0, 0, 0],  // fmt 0, another length
        ];
        for change in changes {
            let mut r = ChunkReader::new(64);
            r.set_chunk_size(4).expect("valid");
            let input = [&start[..], change].concat();
            assert_eq!(
                try_read_all(&mut r, &input),
                Err(ChunkError::HeaderChangedMidMessage(6)),
                "{change:?}"
            );
        }
    }

    #[test]
    fn unfinished_messages_share_one_budget() {
        let limits = ReaderLimits {
            max_command: 1000,
            max_other: 1000,
            budget: 1000,
        };
        let mut w = ChunkWriter::new();
        w.set_chunk_size(100);
        let header_and_first_chunk = |w: &mut ChunkWriter, csid: u32, len: usize| {
            let mut out = Vec::new();
            w.write_message(&mut out, csid, 0, 9, 1, &vec![7u8; len]);
            out.truncate(12 + len.min(100));
            out
        };
        // 600 + 400 in flight: the whole budget.
        let mut r = ChunkReader::with_limits(limits);
        r.set_chunk_size(100).expect("valid");
        let mut input = header_and_first_chunk(&mut w, 4, 600);
        input.extend(header_and_first_chunk(&mut w, 5, 400));
        assert_eq!(try_read_all(&mut r, &input), Ok(vec![]));
        // One more byte on a third stream is over it.
        let more = header_and_first_chunk(&mut w, 6, 1);
        assert_eq!(
            try_read_all(&mut r, &more),
            Err(ChunkError::BudgetExceeded {
                held: 1000,
                wanted: 1,
                budget: 1000
            })
        );

        // A finished message gives its share back.
        let mut w = ChunkWriter::new();
        w.set_chunk_size(100);
        let mut r = ChunkReader::with_limits(limits);
        r.set_chunk_size(100).expect("valid");
        let mut input = written(&mut w, 4, 0, 9, 1, &[1u8; 600]);
        input.extend(header_and_first_chunk(&mut w, 5, 1000));
        let got = try_read_all(&mut r, &input).expect("within budget");
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn commands_and_data_have_their_own_bound() {
        let limits = ReaderLimits::publisher(1 << 20);
        assert_eq!(limits.max_command, MAX_COMMAND_MESSAGE);
        let over = MAX_COMMAND_MESSAGE as u32 + 1;
        let [_, a, b, c] = over.to_be_bytes();
        for type_id in [15u8, 17, 18, 20] {
            let mut r = ChunkReader::with_limits(limits);
            let header = [0x03, 0, 0, 0, a, b, c, type_id, 0, 0, 0, 0];
            assert_eq!(
                try_read_all(&mut r, &header),
                Err(ChunkError::MessageTooLarge {
                    size: over as usize,
                    limit: MAX_COMMAND_MESSAGE
                }),
                "type {type_id}"
            );
        }
        // Any other type may be as long as the budget.
        let mut r = ChunkReader::with_limits(limits);
        let header = [0x04, 0, 0, 0, a, b, c, 9, 1, 0, 0, 0];
        assert_eq!(try_read_all(&mut r, &header), Ok(vec![]));
    }

    #[test]
    fn a_buffer_never_exceeds_its_message_and_is_trimmed_after_it() {
        let payload = vec![3u8; 100_000];
        let mut w = ChunkWriter::new();
        let mut input = written(&mut w, 6, 0, 9, 1, &payload);
        input.extend(written(&mut w, 6, 1, 9, 1, b"small"));
        let mut r = ChunkReader::new(1 << 20);
        let mut pos = 0;
        let mut capacities = Vec::new();
        loop {
            let (n, msg) = r.read(&input[pos..]).expect("valid");
            pos += n;
            let Some(m) = msg else { break };
            let len = m.payload.len();
            let st = r.streams.iter().find(|s| s.csid == 6).expect("slot");
            capacities.push((len, st.buf.capacity()));
        }
        assert_eq!(capacities.len(), 2);
        let (len, cap) = capacities[0];
        assert_eq!(len, 100_000);
        assert!(cap <= 100_000, "capacity {cap} for a 100000-byte message");
        // Reading the next message released all but the retained capacity.
        assert!(capacities[1].1 <= RETAINED_CAPACITY, "{:?}", capacities[1]);
        // Aborting a long message releases it too.
        let mut r = ChunkReader::new(1 << 20);
        let partial = &written(&mut ChunkWriter::new(), 6, 0, 9, 1, &payload)[..50_000];
        assert_eq!(try_read_all(&mut r, partial), Ok(vec![]));
        r.abort(6);
        let st = r.streams.iter().find(|s| s.csid == 6).expect("slot");
        assert!(
            st.buf.capacity() <= RETAINED_CAPACITY,
            "{}",
            st.buf.capacity()
        );
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
