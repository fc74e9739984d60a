//! The publishing client's state machine: handshake, protocol control (Adobe RTMP 1.0 §5.4),
//! user control (§6.2), and the command sequence (§7.2) that ends in `publish`.
//!
//! ```text
//! Handshaking    --S2 received-->                 send Set Chunk Size, connect(1)
//! Connecting     --_result(1)-->                  send releaseStream(2), FCPublish(3), createStream(4)
//! CreatingStream --_result(4) = stream id-->      send publish(5, key, "live") on that stream
//! Publishing     --onStatus NetStream.Publish.Start-->  Published
//! any            --finish()-->                    send FCUnpublish(6), deleteStream(7); Closed
//! ```
//!
//! In every state after the handshake it answers ping requests (user control 6 → 7), sends an
//! Acknowledgement each time the bytes received since the last one reach the server's Window
//! Acknowledgement Size, and honours Set Chunk Size and Abort. Set Peer Bandwidth is parsed and
//! otherwise ignored, as OBS (librtmp) does when publishing. It ignores `onBWDone`,
//! `onFCPublish`, and the `_result`/`_error` of `releaseStream` and `FCPublish` (many servers
//! do not know those commands).
//!
//! Refusals are typed: `_error` for connect / createStream / publish, or an `onStatus` (or
//! `_result`) whose info object has level `"error"`, becomes [`RtmpError::Refused`] with the
//! server's code and description. Servers echo the stream key in descriptions, so both have the
//! key replaced by `<redacted>` — with every piece of it and of the app a server may echo, its
//! query parameters and their values among them ([`secret_pieces`]) — and then become
//! [`PeerText`]: one line, 200 characters at most, whatever the server sent.
//!
//! What the session accepts from a server, after reading what ffmpeg (libavformat/rtmpproto.c,
//! also a publishing client) and nginx-rtmp (ngx_rtmp_receive.c) accept; the chunk-level cases
//! are in [`super::chunk`]. Accepted where the meaning is clear, refused where it is not:
//!
//! | Server sends | ffmpeg, nginx-rtmp | Here |
//! |---|---|---|
//! | S0 other than 3 | ffmpeg does not look at it; nginx refuses C0 other than 3 | refused ([`RtmpError::NotRtmp`]): RTMPE, which we do not speak, or not RTMP at all (a TLS or HTTP port) |
//! | S2 not echoing C1 | neither checks (outside the Flash Player 9 handshake) | accepted |
//! | a control message (Set Chunk Size, Abort, Window Ack Size, Set Peer Bandwidth) shorter than 4 bytes | ffmpeg refuses; nginx ignores it | refused: ignoring a Set Chunk Size would misread everything after it |
//! | a control message longer than needed | both read the first bytes | accepted |
//! | Window Acknowledgement Size 0 | ffmpeg refuses; nginx sends no acknowledgements | accepted: no acknowledgements |
//! | a user control message shorter than 2 bytes, or a ping request without its 4-byte timestamp | ffmpeg refuses; nginx ignores it | refused |
//! | message types a publisher has no use for (audio, video, data, shared objects, aggregate, type 0) | ignored | ignored |
//! | a command in AMF3 (type 17) | ffmpeg ignores it; nginx skips the format byte and reads AMF0 | read as nginx does |
//! | commands on any message stream id | neither checks | accepted |
//! | `_result` or `_error` for a transaction we did not send or no longer wait for | ffmpeg ignores results, fails on errors | ignored |
//! | `_error` for releaseStream or FCPublish | ignored (historical Adobe commands) | ignored |
//! | `onStatus` with level `"error"`, in any state | ffmpeg fails | refused |
//! | createStream's `_result` without a usable stream id | ffmpeg warns and publishes on the stream id it had | refused: a guessed stream id publishes nowhere |
//! | undecodable AMF0 after a command's name and transaction id | ffmpeg reads only the fields it looks for | the values before it are kept |
//! | code or description of any length and content | ffmpeg keeps 255 bytes | kept as [`PeerText`] |
//!
//! Invariants: sans-IO (bytes in, bytes appended to `out`, typed result); the only state
//! buffered from the peer is inside the [`ChunkReader`] and is bounded by it; any error is
//! fatal — the session becomes [`SessionState::Closed`] and refuses further input; writing
//! media and answering pings and acknowledgements do not allocate once the chunk reader has
//! warmed up and `out` has capacity (AMF0 command decoding does allocate; commands are rare).

use std::fmt;

use super::chunk::{
    ChunkError, ChunkReader, ChunkWriter, Framing, Message, ReaderLimits, DEFAULT_MAX_MESSAGE_SIZE,
};
use super::handshake::{ClientHandshake, HandshakeError};
use super::url::{secret_pieces, RtmpUrl};
use super::{msg_type, user_control};
use super::{CSID_AUDIO, CSID_COMMAND, CSID_DATA, CSID_PROTOCOL_CONTROL, CSID_VIDEO};
use crate::amf0::{self, Amf0Error, Value};
use crate::peer_text::PeerText;

const TX_CONNECT: f64 = 1.0;
const TX_RELEASE_STREAM: f64 = 2.0;
const TX_FC_PUBLISH: f64 = 3.0;
const TX_CREATE_STREAM: f64 = 4.0;
const TX_PUBLISH: f64 = 5.0;
const TX_FC_UNPUBLISH: f64 = 6.0;
const TX_DELETE_STREAM: f64 = 7.0;

/// Most AMF0 values read from one command (name, transaction, command object, arguments).
const MAX_COMMAND_VALUES: usize = 8;
/// The `flashVer` we announce unless configured otherwise.
pub const DEFAULT_FLASH_VER: &str = "FMLE/3.0 (compatible; campush)";
/// Our outgoing chunk size unless configured otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;

/// What the session needs to know. `Debug` hides the stream key.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub app: String,
    pub tc_url: String,
    /// Secret; sent in releaseStream, FCPublish, publish and FCUnpublish only.
    pub stream_key: String,
    /// e.g. `"FMLE/3.0 (compatible; campush)"`.
    pub flash_ver: String,
    /// Our outgoing chunk size, e.g. 4096 (clamped to 1..=0xFFFFFF).
    pub chunk_size: u32,
    /// Seed for the handshake's C1 filler.
    pub seed: u64,
    /// Bound on any incoming message, and on all unfinished ones together (the connection's
    /// byte budget); commands and data messages are bound to 64 KiB at most
    /// ([`ReaderLimits::publisher`]).
    pub max_message_size: usize,
}

impl SessionConfig {
    /// App, tcUrl and key from `url`; default flashVer, chunk size 4096, 1 MiB message bound.
    pub fn for_url(url: &RtmpUrl, seed: u64) -> Self {
        SessionConfig {
            app: url.app.clone(),
            tc_url: url.tc_url.clone(),
            stream_key: url.stream_key.clone(),
            flash_ver: DEFAULT_FLASH_VER.to_owned(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            seed,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The app's query may hold a token (`live?token=...`), and tcUrl holds the app.
        let before_query = |s: &str| s.split('?').next().unwrap_or_default().to_owned();
        f.debug_struct("SessionConfig")
            .field("app", &before_query(&self.app))
            .field("tc_url", &before_query(&self.tc_url))
            .field("stream_key", &"<redacted>")
            .field("flash_ver", &self.flash_ver)
            .field("chunk_size", &self.chunk_size)
            .field("seed", &self.seed)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// Where the publish sequence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// C0+C1 sent (after `start`); waiting for S0/S1/S2.
    Handshaking,
    /// `connect` sent; waiting for its `_result`.
    Connecting,
    /// `createStream` sent; waiting for the stream id.
    CreatingStream,
    /// `publish` sent; waiting for `NetStream.Publish.Start`.
    Publishing,
    /// Media may be written.
    Published,
    /// `finish` was called, or an error ended the session.
    Closed,
}

/// Why the session ended.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("not an RTMP server (first byte 0x{0:02x}, expected 0x03)")]
    NotRtmp(u8),
    #[error("server refused {command}: {code}: {description}")]
    Refused {
        command: &'static str,
        code: PeerText,
        description: PeerText,
    },
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    #[error("incoming message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("RTMP chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("AMF0: {0}")]
    Amf0(#[from] Amf0Error),
}

impl RtmpError {
    /// The server said no (bad key, name in use, ...): retrying at once will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, RtmpError::Refused { .. })
    }
}

/// A message reduced to what the session acts on, owning no borrow of the reader.
enum Incoming {
    SetChunkSize(u32),
    Abort(u32),
    WindowAckSize(u32),
    PingRequest(u32),
    Command(Vec<Value>),
    Ignored,
}

fn be_u32(payload: &[u8], what: &str) -> Result<u32, RtmpError> {
    match payload.get(..4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(RtmpError::Protocol(format!(
            "{what} message has {} bytes, expected 4",
            payload.len()
        ))),
    }
}

fn classify(msg: &Message<'_>) -> Result<Incoming, RtmpError> {
    let p = msg.payload;
    Ok(match msg.type_id {
        msg_type::SET_CHUNK_SIZE => Incoming::SetChunkSize(be_u32(p, "Set Chunk Size")?),
        msg_type::ABORT => Incoming::Abort(be_u32(p, "Abort")?),
        msg_type::WINDOW_ACK_SIZE => {
            Incoming::WindowAckSize(be_u32(p, "Window Acknowledgement Size")?)
        }
        msg_type::SET_PEER_BANDWIDTH => {
            be_u32(p, "Set Peer Bandwidth")?;
            Incoming::Ignored
        }
        msg_type::USER_CONTROL => match p {
            [hi, lo, data @ ..] if u16::from_be_bytes([*hi, *lo]) == user_control::PING_REQUEST => {
                Incoming::PingRequest(be_u32(data, "Ping Request")?)
            }
            [_, _, ..] => Incoming::Ignored,
            _ => {
                return Err(RtmpError::Protocol(
                    "user control message shorter than its event type".into(),
                ))
            }
        },
        msg_type::COMMAND_AMF0 => Incoming::Command(decode_command(p)?),
        // AMF3 command: a format byte (0) and then AMF0 values.
        msg_type::COMMAND_AMF3 => {
            Incoming::Command(decode_command(p.get(1..).unwrap_or_default())?)
        }
        _ => Incoming::Ignored,
    })
}

/// Decodes up to [`MAX_COMMAND_VALUES`] values, with [`amf0::MAX_VALUES`] values in all. A
/// value that fails to decode after the name and transaction id ends the list instead of
/// failing the session (servers append odd extras); failing earlier, or going past the
/// decoder's limits anywhere, is an error.
fn decode_command(mut payload: &[u8]) -> Result<Vec<Value>, RtmpError> {
    let mut values = Vec::with_capacity(4);
    let mut left = amf0::MAX_VALUES;
    while !payload.is_empty() && values.len() < MAX_COMMAND_VALUES {
        match amf0::decode_counted(&mut payload, &mut left) {
            Ok(v) => values.push(v),
            Err(e) if values.len() >= 2 && !e.is_limit() => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(values)
}

/// The info object of `_result` / `_error` / `onStatus`: after the transaction id, the last
/// object carrying a `code` or `level` (connect's `_result` puts a properties object first),
/// or else the last object.
fn info_object(values: &[Value]) -> Option<&Value> {
    let objects = || {
        values
            .iter()
            .skip(2)
            .rev()
            .filter(|v| matches!(v, Value::Object(_) | Value::EcmaArray(_)))
    };
    objects()
        .find(|v| v.get("code").is_some() || v.get("level").is_some())
        .or_else(|| objects().next())
}

fn info_str<'v>(info: Option<&'v Value>, key: &str) -> &'v str {
    info.and_then(|i| i.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The publishing client. See the module doc for the sequence. `Debug` shows the state only
/// (buffers may hold the key or server text).
pub struct ClientSession {
    cfg: SessionConfig,
    state: SessionState,
    failed: bool,
    handshake: ClientHandshake,
    reader: ChunkReader,
    writer: ChunkWriter,
    /// Message stream id from createStream's `_result`.
    stream_id: Option<u32>,
    bytes_received: u64,
    /// Server's Window Acknowledgement Size; 0 = none announced, no acks.
    ack_window: u32,
    /// `bytes_received` when we last acknowledged.
    last_ack: u64,
    /// Reused buffer for encoding commands.
    scratch: Vec<u8>,
}

impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("cfg", &self.cfg)
            .field("state", &self.state)
            .field("failed", &self.failed)
            .field("stream_id", &self.stream_id)
            .field("bytes_received", &self.bytes_received)
            .field("ack_window", &self.ack_window)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    pub fn new(cfg: SessionConfig) -> Self {
        let reader = ChunkReader::with_limits(ReaderLimits::publisher(cfg.max_message_size));
        let handshake = ClientHandshake::new(cfg.seed);
        ClientSession {
            cfg,
            state: SessionState::Handshaking,
            failed: false,
            handshake,
            reader,
            writer: ChunkWriter::new(),
            stream_id: None,
            bytes_received: 0,
            ack_window: 0,
            last_ack: 0,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Appends C0+C1. Call once, first.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        self.handshake.start(out);
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    /// `NetStream.Publish.Start` was seen and the session is not closed.
    pub fn is_published(&self) -> bool {
        self.state == SessionState::Published
    }

    /// The message stream id createStream returned, once known.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Every byte given to [`Self::receive`], handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Consumes all of `input` and appends whatever must be sent to `out`. An error is final:
    /// the session is then [`SessionState::Closed`] and refuses further input.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Protocol("session already failed".into()));
        }
        let result = self.receive_inner(input, out);
        if result.is_err() {
            self.failed = true;
            self.state = SessionState::Closed;
        }
        result
    }

    fn receive_inner(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RtmpError> {
        self.bytes_received += input.len() as u64;
        let mut pos = 0;
        if self.state == SessionState::Handshaking {
            pos = self.handshake.receive(input, out).map_err(|e| match e {
                HandshakeError::NotRtmp(b) => RtmpError::NotRtmp(b),
                HandshakeError::NotStarted => {
                    RtmpError::Protocol("bytes received before the handshake started".into())
                }
            })?;
            if !self.handshake.is_done() {
                return Ok(());
            }
            self.on_handshake_done(out);
        }
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            let (n, msg) = self.reader.read(rest).map_err(|e| match e {
                ChunkError::MessageTooLarge { size, limit } => {
                    RtmpError::MessageTooLarge { size, limit }
                }
                other => RtmpError::Chunk(other),
            })?;
            pos += n;
            let Some(msg) = msg else {
                break;
            };
            let incoming = classify(&msg)?;
            self.on_message(incoming, out)?;
        }
        if self.ack_window > 0 && self.bytes_received - self.last_ack >= u64::from(self.ack_window)
        {
            self.last_ack = self.bytes_received;
            let seq = self.bytes_received as u32; // wraps, as §5.4.3 intends
            self.write_control(out, msg_type::ACKNOWLEDGEMENT, &seq.to_be_bytes());
        }
        Ok(())
    }

    fn write_control(&mut self, out: &mut Vec<u8>, type_id: u8, payload: &[u8]) {
        self.writer
            .write_message(out, CSID_PROTOCOL_CONTROL, 0, type_id, 0, payload);
    }

    fn on_handshake_done(&mut self, out: &mut Vec<u8>) {
        let size = self.cfg.chunk_size.clamp(1, 0xFF_FFFF);
        self.write_control(out, msg_type::SET_CHUNK_SIZE, &size.to_be_bytes());
        self.writer.set_chunk_size(size);
        self.send_command(out, 0, |buf, cfg| {
            amf0::write_string(buf, "connect");
            amf0::write_number(buf, TX_CONNECT);
            amf0::write_object_start(buf);
            amf0::write_key(buf, "app");
            amf0::write_string(buf, &cfg.app);
            amf0::write_key(buf, "type");
            amf0::write_string(buf, "nonprivate");
            amf0::write_key(buf, "flashVer");
            amf0::write_string(buf, &cfg.flash_ver);
            amf0::write_key(buf, "swfUrl");
            amf0::write_string(buf, &cfg.tc_url);
            amf0::write_key(buf, "tcUrl");
            amf0::write_string(buf, &cfg.tc_url);
            amf0::write_key(buf, "fpad");
            amf0::write_bool(buf, false);
            amf0::write_key(buf, "capabilities");
            amf0::write_number(buf, 15.0);
            amf0::write_key(buf, "audioCodecs");
            amf0::write_number(buf, 3191.0);
            amf0::write_key(buf, "videoCodecs");
            amf0::write_number(buf, 252.0);
            amf0::write_key(buf, "videoFunction");
            amf0::write_number(buf, 1.0);
            amf0::write_object_end(buf);
        });
        self.state = SessionState::Connecting;
    }

    /// Encodes a command with `encode` into the scratch buffer and sends it on the command
    /// chunk stream, message stream `stream_id`, timestamp 0.
    fn send_command(
        &mut self,
        out: &mut Vec<u8>,
        stream_id: u32,
        encode: impl FnOnce(&mut Vec<u8>, &SessionConfig),
    ) {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        encode(&mut buf, &self.cfg);
        self.writer.write_message(
            out,
            CSID_COMMAND,
            0,
            msg_type::COMMAND_AMF0,
            stream_id,
            &buf,
        );
        self.scratch = buf;
    }

    /// `name(tx, null, key)` on stream 0: releaseStream, FCPublish, FCUnpublish.
    fn send_key_command(&mut self, out: &mut Vec<u8>, name: &str, tx: f64) {
        self.send_command(out, 0, |buf, cfg| {
            amf0::write_string(buf, name);
            amf0::write_number(buf, tx);
            amf0::write_null(buf);
            amf0::write_string(buf, &cfg.stream_key);
        });
    }

    fn on_message(&mut self, incoming: Incoming, out: &mut Vec<u8>) -> Result<(), RtmpError> {
        match incoming {
            Incoming::SetChunkSize(size) => self.reader.set_chunk_size(size)?,
            Incoming::Abort(csid) => self.reader.abort(csid),
            Incoming::WindowAckSize(size) => {
                self.ack_window = size;
            }
            Incoming::PingRequest(ts) => {
                let mut payload = [0u8; 6];
                let (event, data) = payload.split_at_mut(2);
                event.copy_from_slice(&user_control::PING_RESPONSE.to_be_bytes());
                data.copy_from_slice(&ts.to_be_bytes());
                self.write_control(out, msg_type::USER_CONTROL, &payload);
            }
            Incoming::Command(values) => self.on_command(&values, out)?,
            Incoming::Ignored => {}
        }
        Ok(())
    }

    fn refused(&self, command: &'static str, info: Option<&Value>) -> RtmpError {
        // Redacted first: cutting could leave the start of a key that redaction would miss.
        let secrets = secret_pieces(&self.cfg.stream_key, &self.cfg.app);
        let text = |field| PeerText::redacted(info_str(info, field), &secrets);
        RtmpError::Refused {
            command,
            code: text("code"),
            description: text("description"),
        }
    }

    fn on_command(&mut self, values: &[Value], out: &mut Vec<u8>) -> Result<(), RtmpError> {
        let name = values.first().and_then(Value::as_str).unwrap_or("");
        let tx = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        let info = info_object(values);
        let is_error_level = info_str(info, "level") == "error";
        match (name, self.state) {
            ("_result", SessionState::Connecting) if tx == TX_CONNECT => {
                if is_error_level {
                    return Err(self.refused("connect", info));
                }
                self.send_key_command(out, "releaseStream", TX_RELEASE_STREAM);
                self.send_key_command(out, "FCPublish", TX_FC_PUBLISH);
                self.send_command(out, 0, |buf, _| {
                    amf0::write_string(buf, "createStream");
                    amf0::write_number(buf, TX_CREATE_STREAM);
                    amf0::write_null(buf);
                });
                self.state = SessionState::CreatingStream;
            }
            ("_result", SessionState::CreatingStream) if tx == TX_CREATE_STREAM => {
                let id = values
                    .iter()
                    .skip(2)
                    .find_map(Value::as_number)
                    .filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
                    .filter(|n| n.fract() == 0.0)
                    .ok_or_else(|| {
                        RtmpError::Protocol("createStream result has no valid stream id".into())
                    })?;
                let stream_id = id as u32;
                self.stream_id = Some(stream_id);
                self.send_command(out, stream_id, |buf, cfg| {
                    amf0::write_string(buf, "publish");
                    amf0::write_number(buf, TX_PUBLISH);
                    amf0::write_null(buf);
                    amf0::write_string(buf, &cfg.stream_key);
                    amf0::write_string(buf, "live");
                });
                self.state = SessionState::Publishing;
            }
            ("_error", SessionState::Connecting) if tx == TX_CONNECT => {
                return Err(self.refused("connect", info));
            }
            ("_error", SessionState::CreatingStream) if tx == TX_CREATE_STREAM => {
                return Err(self.refused("createStream", info));
            }
            ("_error", SessionState::Publishing | SessionState::Published) if tx == TX_PUBLISH => {
                return Err(self.refused("publish", info));
            }
            ("onStatus", SessionState::Closed) => {}
            ("onStatus", state) => {
                if is_error_level {
                    let command = match state {
                        SessionState::Handshaking | SessionState::Connecting => "connect",
                        SessionState::CreatingStream => "createStream",
                        _ => "publish",
                    };
                    return Err(self.refused(command, info));
                }
                if state == SessionState::Publishing
                    && info_str(info, "code") == "NetStream.Publish.Start"
                {
                    self.state = SessionState::Published;
                }
            }
            // onBWDone, onFCPublish, _checkbw, |RtmpSampleAccess, results of releaseStream,
            // FCPublish, FCUnpublish and deleteStream, late duplicates: nothing to do.
            _ => {}
        }
        Ok(())
    }

    fn write_media(&mut self, out: &mut Vec<u8>, csid: u32, ts: u32, type_id: u8, body: &[u8]) {
        if let (SessionState::Published, Some(sid)) = (self.state, self.stream_id) {
            self.writer.write_message(out, csid, ts, type_id, sid, body);
        }
    }

    /// Appends a data message (type 18, timestamp 0) on the publish stream. `body` is the
    /// already encoded `"@setDataFrame", "onMetaData", {..}`. Does nothing unless published.
    pub fn write_metadata(&mut self, out: &mut Vec<u8>, body: &[u8]) {
        self.write_media(out, CSID_DATA, 0, msg_type::DATA_AMF0, body);
    }

    /// Appends a video message (type 9, an FLV video tag body). Does nothing unless published.
    /// Allocation-free when `out` has room for the body plus chunk headers.
    pub fn write_video(&mut self, out: &mut Vec<u8>, timestamp: u32, body: &[u8]) {
        self.write_media(out, CSID_VIDEO, timestamp, msg_type::VIDEO, body);
    }

    /// Appends the first chunk header of a video message of `length` bytes and returns how its
    /// body follows ([`Framing`]), for a caller that sends the body from where it lies, with
    /// the continuation headers between its chunks (one `writev`). `None`, with nothing
    /// written, unless published.
    pub fn write_video_header(
        &mut self,
        out: &mut Vec<u8>,
        timestamp: u32,
        length: usize,
    ) -> Option<Framing> {
        let (SessionState::Published, Some(sid)) = (self.state, self.stream_id) else {
            return None;
        };
        self.writer
            .write_message_header(out, CSID_VIDEO, timestamp, msg_type::VIDEO, sid, length)
    }

    /// Appends an audio message (type 8, an FLV audio tag body). Does nothing unless published.
    pub fn write_audio(&mut self, out: &mut Vec<u8>, timestamp: u32, body: &[u8]) {
        self.write_media(out, CSID_AUDIO, timestamp, msg_type::AUDIO, body);
    }

    /// Appends FCUnpublish(key) and deleteStream(stream id) if a stream was created, and closes
    /// the session. Bytes received afterwards are still parsed (and pings answered) but
    /// commands are ignored.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if let (SessionState::Publishing | SessionState::Published, Some(sid)) =
            (self.state, self.stream_id)
        {
            self.send_key_command(out, "FCUnpublish", TX_FC_UNPUBLISH);
            self.send_command(out, 0, |buf, _| {
                amf0::write_string(buf, "deleteStream");
                amf0::write_number(buf, TX_DELETE_STREAM);
                amf0::write_null(buf);
                amf0::write_number(buf, f64::from(sid));
            });
        }
        self.state = SessionState::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The session refused with exactly this command, code and (redacted) description.
    fn assert_refused(result: Result<(), RtmpError>, command: &str, code: &str, description: &str) {
        match result {
            Err(RtmpError::Refused {
                command: c,
                code: k,
                description: d,
            }) => assert_eq!((c, k.as_str(), d.as_str()), (command, code, description)),
            other => panic!("expected a refusal of {command}, got {other:?}"),
        }
    }
    use crate::rtmp::handshake::HANDSHAKE_SIZE;

    const KEY: &str = "live_4242_SeCrEt?auth=xyz";

    fn config() -> SessionConfig {
        SessionConfig {
            app: "live".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
            stream_key: KEY.into(),
            flash_ver: DEFAULT_FLASH_VER.into(),
            chunk_size: 4096,
            seed: 99,
            max_message_size: 1 << 20,
        }
    }

    /// What the client sent, decoded.
    #[derive(Debug, Clone, PartialEq)]
    enum Sent {
        Control {
            type_id: u8,
            payload: Vec<u8>,
        },
        Command {
            stream_id: u32,
            values: Vec<Value>,
        },
        Media {
            type_id: u8,
            csid: u32,
            timestamp: u32,
            stream_id: u32,
            payload: Vec<u8>,
        },
    }

    /// A scripted server: writes server messages and decodes what the client sent.
    struct Server {
        writer: ChunkWriter,
        reader: ChunkReader,
        /// Client bytes not yet decoded (after the handshake).
        skipped_handshake: bool,
        pending: Vec<u8>,
    }

    impl Server {
        fn new() -> Self {
            Server {
                writer: ChunkWriter::new(),
                reader: ChunkReader::new(1 << 24),
                skipped_handshake: false,
                pending: Vec::new(),
            }
        }

        fn s0s1s2() -> Vec<u8> {
            let mut v = vec![3u8];
            v.extend((0..HANDSHAKE_SIZE).map(|i| (i % 251) as u8));
            v.extend(std::iter::repeat_n(0u8, HANDSHAKE_SIZE));
            v
        }

        fn control(&mut self, type_id: u8, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            self.writer
                .write_message(&mut out, 2, 0, type_id, 0, payload);
            out
        }

        fn command(&mut self, stream_id: u32, values: &[Value]) -> Vec<u8> {
            let mut body = Vec::new();
            for v in values {
                amf0::write_value(&mut body, v);
            }
            let mut out = Vec::new();
            self.writer
                .write_message(&mut out, 3, 0, 20, stream_id, &body);
            out
        }

        fn result(&mut self, tx: f64, args: Vec<Value>) -> Vec<u8> {
            let mut values = vec![s("_result"), Value::Number(tx)];
            values.extend(args);
            self.command(0, &values)
        }

        fn on_status(&mut self, stream_id: u32, level: &str, code: &str, desc: &str) -> Vec<u8> {
            self.command(
                stream_id,
                &[
                    s("onStatus"),
                    Value::Number(0.0),
                    Value::Null,
                    obj(&[
                        ("level", s(level)),
                        ("code", s(code)),
                        ("description", s(desc)),
                    ]),
                ],
            )
        }

        /// Decodes all client output given so far.
        fn decode(&mut self, client_out: &[u8]) -> Vec<Sent> {
            self.pending.extend_from_slice(client_out);
            if !self.skipped_handshake {
                if self.pending.len() < 1 + 2 * HANDSHAKE_SIZE {
                    return vec![];
                }
                self.pending.drain(..1 + 2 * HANDSHAKE_SIZE);
                self.skipped_handshake = true;
            }
            let input = std::mem::take(&mut self.pending);
            let mut sent = Vec::new();
            let mut pos = 0;
            loop {
                let (n, msg) = self
                    .reader
                    .read(&input[pos..])
                    .expect("client chunk stream");
                pos += n;
                let Some(m) = msg else { break };
                let item = match m.type_id {
                    20 => {
                        let mut p = m.payload;
                        Sent::Command {
                            stream_id: m.stream_id,
                            values: amf0::decode_all(&mut p, 16).expect("amf0"),
                        }
                    }
                    1..=6 => Sent::Control {
                        type_id: m.type_id,
                        payload: m.payload.to_vec(),
                    },
                    _ => Sent::Media {
                        type_id: m.type_id,
                        csid: m.csid,
                        timestamp: m.timestamp,
                        stream_id: m.stream_id,
                        payload: m.payload.to_vec(),
                    },
                };
                if let Sent::Control {
                    type_id: 1,
                    payload,
                } = &item
                {
                    let size = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes"));
                    self.reader.set_chunk_size(size).expect("valid size");
                }
                sent.push(item);
            }
            sent
        }
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn obj(props: &[(&str, Value)]) -> Value {
        Value::Object(
            props
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn cmd(stream_id: u32, values: Vec<Value>) -> Sent {
        Sent::Command { stream_id, values }
    }

    fn connect_result() -> Vec<Value> {
        vec![
            obj(&[
                ("fmsVer", s("FMS/3,0,1,123")),
                ("capabilities", Value::Number(31.0)),
            ]),
            obj(&[
                ("level", s("status")),
                ("code", s("NetConnection.Connect.Success")),
                ("description", s("Connection succeeded.")),
                ("objectEncoding", Value::Number(0.0)),
            ]),
        ]
    }

    /// Drives a session to Published; returns it with the server and the client output so far.
    fn published() -> (ClientSession, Server, Vec<Sent>) {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut sent = srv.decode(&out);
        for step in script(&mut srv) {
            out.clear();
            c.receive(&step, &mut out).expect("accepted");
            sent.extend(srv.decode(&out));
        }
        assert!(c.is_published());
        (c, srv, sent)
    }

    fn script(srv: &mut Server) -> Vec<Vec<u8>> {
        let mut steps = vec![
            Server::s0s1s2(),
            srv.control(5, &2_500_000u32.to_be_bytes()),
            srv.control(6, &[0x00, 0x26, 0x25, 0xA0, 2]),
            srv.control(1, &60000u32.to_be_bytes()),
        ];
        srv.writer.set_chunk_size(60000);
        steps.push(srv.result(1.0, connect_result()));
        steps.push(srv.command(0, &[s("onBWDone"), Value::Number(0.0), Value::Null]));
        steps.push(srv.result(4.0, vec![Value::Null, Value::Number(1.0)]));
        steps.push(srv.control(4, &[0, 0, 0, 0, 0, 1])); // Stream Begin 1
        steps.push(srv.on_status(
            1,
            "status",
            "NetStream.Publish.Start",
            "live_4242_SeCrEt is now published.",
        ));
        steps
    }

    #[test]
    fn publish_sequence_and_states() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        assert_eq!(c.state(), SessionState::Handshaking);
        c.start(&mut out);
        assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);

        let steps = script(&mut srv);
        let expected_states = [
            SessionState::Connecting,
            SessionState::Connecting,
            SessionState::Connecting,
            SessionState::Connecting,
            SessionState::CreatingStream,
            SessionState::CreatingStream,
            SessionState::Publishing,
            SessionState::Publishing,
            SessionState::Published,
        ];
        let mut sent = srv.decode(&out);
        let mut total = out.len();
        for (i, step) in steps.iter().enumerate() {
            out.clear();
            c.receive(step, &mut out).expect("accepted");
            if i == 0 {
                // C2 is the S1 echo
                assert_eq!(&out[..HANDSHAKE_SIZE], &step[1..1 + HANDSHAKE_SIZE]);
            }
            total += out.len();
            sent.extend(srv.decode(&out));
            assert_eq!(c.state(), expected_states[i], "after step {i}");
        }
        assert!(c.is_published());
        assert_eq!(c.stream_id(), Some(1));
        let steps_len: usize = steps.iter().map(Vec::len).sum();
        assert_eq!(c.bytes_received(), steps_len as u64);
        assert!(total > 0);

        let expected = vec![
            Sent::Control {
                type_id: 1,
                payload: 4096u32.to_be_bytes().to_vec(),
            },
            cmd(
                0,
                vec![
                    s("connect"),
                    Value::Number(1.0),
                    obj(&[
                        ("app", s("live")),
                        ("type", s("nonprivate")),
                        ("flashVer", s("FMLE/3.0 (compatible; campush)")),
                        ("swfUrl", s("rtmp://127.0.0.1:1935/live")),
                        ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
                        ("fpad", Value::Boolean(false)),
                        ("capabilities", Value::Number(15.0)),
                        ("audioCodecs", Value::Number(3191.0)),
                        ("videoCodecs", Value::Number(252.0)),
                        ("videoFunction", Value::Number(1.0)),
                    ]),
                ],
            ),
            cmd(
                0,
                vec![s("releaseStream"), Value::Number(2.0), Value::Null, s(KEY)],
            ),
            cmd(
                0,
                vec![s("FCPublish"), Value::Number(3.0), Value::Null, s(KEY)],
            ),
            cmd(0, vec![s("createStream"), Value::Number(4.0), Value::Null]),
            cmd(
                1,
                vec![
                    s("publish"),
                    Value::Number(5.0),
                    Value::Null,
                    s(KEY),
                    s("live"),
                ],
            ),
        ];
        assert_eq!(sent, expected);

        // Media on the publish stream, then finish.
        out.clear();
        c.write_metadata(&mut out, b"meta");
        c.write_video(&mut out, 0, b"\x17\x00keyframe");
        c.write_video(&mut out, 33, b"\x27\x01inter");
        c.write_audio(&mut out, 20, b"\xAF\x01aac");
        c.finish(&mut out);
        assert_eq!(c.state(), SessionState::Closed);
        assert!(!c.is_published());
        let sent = srv.decode(&out);
        let media = |type_id, csid, timestamp, payload: &[u8]| Sent::Media {
            type_id,
            csid,
            timestamp,
            stream_id: 1,
            payload: payload.to_vec(),
        };
        assert_eq!(
            sent,
            vec![
                media(18, 5, 0, b"meta"),
                media(9, 6, 0, b"\x17\x00keyframe"),
                media(9, 6, 33, b"\x27\x01inter"),
                media(8, 4, 20, b"\xAF\x01aac"),
                cmd(
                    0,
                    vec![s("FCUnpublish"), Value::Number(6.0), Value::Null, s(KEY)]
                ),
                cmd(
                    0,
                    vec![
                        s("deleteStream"),
                        Value::Number(7.0),
                        Value::Null,
                        Value::Number(1.0)
                    ]
                ),
            ]
        );

        // After finish: media is not written, server chatter is tolerated.
        out.clear();
        c.write_video(&mut out, 66, b"late");
        assert!(out.is_empty());
        let bye = srv.on_status(1, "status", "NetStream.Unpublish.Success", "");
        c.receive(&bye, &mut out).expect("tolerated");
        assert!(out.is_empty());
    }

    #[test]
    fn media_before_published_is_not_written() {
        let mut c = ClientSession::new(config());
        let mut out = Vec::new();
        c.write_video(&mut out, 0, b"x");
        c.write_audio(&mut out, 0, b"x");
        c.write_metadata(&mut out, b"x");
        assert!(out.is_empty());
        c.finish(&mut out);
        assert!(out.is_empty(), "nothing to unpublish");
        assert_eq!(c.state(), SessionState::Closed);
    }

    #[test]
    fn whole_script_in_one_buffer_and_byte_by_byte() {
        let mut srv = Server::new();
        let all: Vec<u8> = script(&mut srv).concat();
        for step in [all.len(), 1, 7, 1000] {
            let mut c = ClientSession::new(config());
            let mut out = Vec::new();
            c.start(&mut out);
            for piece in all.chunks(step) {
                c.receive(piece, &mut out).expect("accepted");
            }
            assert!(c.is_published(), "step {step}");
            let mut check = Server::new();
            let sent = check.decode(&out);
            assert_eq!(sent.len(), 6, "step {step}");
        }
    }

    #[test]
    fn ping_gets_pong() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        let ping = srv.control(4, &[0, 6, 0x12, 0x34, 0x56, 0x78]);
        c.receive(&ping, &mut out).expect("ok");
        assert_eq!(
            srv.decode(&out),
            vec![Sent::Control {
                type_id: 4,
                payload: vec![0, 7, 0x12, 0x34, 0x56, 0x78]
            }]
        );
        // Other user control events are ignored.
        out.clear();
        c.receive(&srv.control(4, &[0, 31, 0, 0, 0, 1]), &mut out)
            .expect("ok");
        assert!(out.is_empty());
    }

    #[test]
    fn acknowledges_per_window() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut sent = srv.decode(&out);
        let feed = |c: &mut ClientSession, bytes: &[u8], sent: &mut Vec<Sent>, srv: &mut Server| {
            let mut out = Vec::new();
            c.receive(bytes, &mut out).expect("ok");
            sent.extend(srv.decode(&out));
        };
        let hs = Server::s0s1s2();
        feed(&mut c, &hs, &mut sent, &mut srv);
        let win = srv.control(5, &5000u32.to_be_bytes());
        feed(&mut c, &win, &mut sent, &mut srv);
        let acks = |sent: &[Sent]| -> Vec<u32> {
            sent.iter()
                .filter_map(|m| match m {
                    Sent::Control {
                        type_id: 3,
                        payload,
                    } => Some(u32::from_be_bytes(payload[..4].try_into().unwrap())),
                    _ => None,
                })
                .collect()
        };
        // The handshake (3073 bytes) plus the window message stays under 5000.
        assert!(acks(&sent).is_empty());
        // Server-side chatter: onBWDone commands, ~30 bytes each.
        let chatter = srv.command(0, &[s("onBWDone"), Value::Number(0.0), Value::Null]);
        let mut fed = c.bytes_received();
        while fed < 12_000 {
            feed(&mut c, &chatter, &mut sent, &mut srv);
            fed += chatter.len() as u64;
        }
        let got = acks(&sent);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0] >= 5000 && got[0] < 5000 + chatter.len() as u32 + 1);
        assert!(got[1] - got[0] >= 5000);
    }

    #[test]
    fn bad_name_is_a_refusal_with_key_redacted() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut steps = script(&mut srv);
        steps.pop();
        for step in &steps {
            c.receive(step, &mut out).expect("ok");
        }
        assert_eq!(c.state(), SessionState::Publishing);
        let refusal = srv.on_status(
            1,
            "error",
            "NetStream.Publish.BadName",
            "Stream live_4242_SeCrEt?auth=xyz is already publishing; live_4242_SeCrEt busy",
        );
        let err = c.receive(&refusal, &mut out).expect_err("refused");
        assert!(err.is_refusal());
        match &err {
            RtmpError::Refused {
                command,
                code,
                description,
            } => {
                assert_eq!(*command, "publish");
                assert_eq!(code, "NetStream.Publish.BadName");
                assert_eq!(
                    description,
                    "Stream <redacted> is already publishing; <redacted> busy"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(!text.contains("SeCrEt"), "{text}");
        assert_eq!(c.state(), SessionState::Closed);
        // The session refuses further input.
        assert!(matches!(
            c.receive(&[], &mut out),
            Err(RtmpError::Protocol(_))
        ));
    }

    #[test]
    fn connect_error_is_a_refusal() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        let err_msg = srv.command(
            0,
            &[
                s("_error"),
                Value::Number(1.0),
                Value::Null,
                obj(&[
                    ("level", s("error")),
                    ("code", s("NetConnection.Connect.Rejected")),
                    (
                        "description",
                        s("Connection failed: Application rejected connection."),
                    ),
                ]),
            ],
        );
        assert_refused(
            c.receive(&err_msg, &mut out),
            "connect",
            "NetConnection.Connect.Rejected",
            "Connection failed: Application rejected connection.",
        );
    }

    #[test]
    fn connect_result_with_error_level_is_a_refusal() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        let r = srv.result(
            1.0,
            vec![
                obj(&[("fmsVer", s("FMS/3,0,1,123"))]),
                obj(&[
                    ("level", s("error")),
                    ("code", s("NetConnection.Connect.Rejected")),
                    (
                        "description",
                        s("[ AccessManager.Reject ] : No such application"),
                    ),
                ]),
            ],
        );
        assert_refused(
            c.receive(&r, &mut out),
            "connect",
            "NetConnection.Connect.Rejected",
            "[ AccessManager.Reject ] : No such application",
        );
    }

    #[test]
    fn create_stream_and_publish_errors_are_refusals() {
        // createStream _error
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        for step in script(&mut srv).into_iter().take(6) {
            c.receive(&step, &mut out).expect("ok");
        }
        assert_eq!(c.state(), SessionState::CreatingStream);
        let e = srv.command(
            0,
            &[s("_error"), Value::Number(4.0), Value::Null, Value::Null],
        );
        match c.receive(&e, &mut out) {
            Err(RtmpError::Refused {
                command: "createStream",
                code,
                ..
            }) => assert_eq!(code, ""),
            other => panic!("unexpected {other:?}"),
        }

        // publish _error
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        c.start(&mut out);
        for step in script(&mut srv).into_iter().take(8) {
            c.receive(&step, &mut out).expect("ok");
        }
        assert_eq!(c.state(), SessionState::Publishing);
        let e = srv.command(
            1,
            &[
                s("_error"),
                Value::Number(5.0),
                Value::Null,
                obj(&[
                    ("level", s("error")),
                    ("code", s("NetStream.Publish.Denied")),
                ]),
            ],
        );
        let err = c.receive(&e, &mut out).expect_err("refused");
        assert!(matches!(
            err,
            RtmpError::Refused {
                command: "publish",
                ..
            }
        ));
    }

    #[test]
    fn release_stream_and_fcpublish_errors_are_ignored() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        for step in script(&mut srv).into_iter().take(5) {
            c.receive(&step, &mut out).expect("ok");
        }
        for tx in [2.0, 3.0] {
            let e = srv.command(
                0,
                &[s("_error"), Value::Number(tx), Value::Null, Value::Null],
            );
            c.receive(&e, &mut out).expect("ignored");
            let r = srv.result(tx, vec![Value::Null, Value::Undefined]);
            c.receive(&r, &mut out).expect("ignored");
        }
        let fc = srv.command(
            0,
            &[
                s("onFCPublish"),
                Value::Number(0.0),
                Value::Null,
                obj(&[
                    ("code", s("NetStream.Publish.Start")),
                    ("description", s(KEY)),
                ]),
            ],
        );
        c.receive(&fc, &mut out).expect("ignored");
        assert_eq!(c.state(), SessionState::CreatingStream);
    }

    #[test]
    fn abort_and_set_chunk_size_are_honoured() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        // Server switches to chunk size 50 and starts a long command on csid 3...
        c.receive(&srv.control(1, &50u32.to_be_bytes()), &mut out)
            .expect("ok");
        srv.writer.set_chunk_size(50);
        let long = srv.on_status(1, "error", "NetStream.Publish.Failed", &"x".repeat(200));
        c.receive(&long[..60], &mut out).expect("partial");
        // ...then aborts it. The error-level onStatus never completes.
        let mut abort = Vec::new();
        srv.writer
            .write_message(&mut abort, 2, 0, 2, 0, &3u32.to_be_bytes());
        c.receive(&abort, &mut out).expect("ok");
        assert!(c.is_published());
        // The following complete message parses normally.
        let ok = srv.command(0, &[s("onBWDone"), Value::Number(0.0), Value::Null]);
        c.receive(&ok, &mut out).expect("ok");
        assert!(c.is_published());
    }

    #[test]
    fn hostile_chunk_size_2_31_minus_1_is_accepted_without_allocating() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        c.receive(&srv.control(1, &0x7FFF_FFFFu32.to_be_bytes()), &mut out)
            .expect("legal");
        srv.writer.set_chunk_size(0xFF_FFFF);
        let ping = srv.control(4, &[0, 6, 0, 0, 0, 9]);
        c.receive(&ping, &mut out).expect("ok");
        assert_eq!(srv.decode(&out).len(), 1);
        // A chunk size with the top bit set is an error.
        let mut c2 = published().0;
        let mut srv2 = Server::new();
        let bad = srv2.control(1, &0x8000_0000u32.to_be_bytes());
        assert!(matches!(
            c2.receive(&bad, &mut out),
            Err(RtmpError::Chunk(ChunkError::InvalidChunkSize(0x8000_0000)))
        ));
    }

    #[test]
    fn hostile_message_header_announcing_16_mib() {
        let (mut c, _, _) = published();
        let mut out = Vec::new();
        // fmt 0, csid 3, length 0xFFFFFF, type 20: over the command bound.
        let header = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 20, 0, 0, 0, 0, b'x'];
        match c.receive(&header, &mut out) {
            Err(RtmpError::MessageTooLarge { size, limit }) => {
                assert_eq!((size, limit), (0xFF_FFFF, 64 * 1024));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.state(), SessionState::Closed);
        // The same as a video message: over the bound of everything else.
        let (mut c, _, _) = published();
        let header = [0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0, b'x'];
        match c.receive(&header, &mut out) {
            Err(RtmpError::MessageTooLarge { size, limit }) => {
                assert_eq!((size, limit), (0xFF_FFFF, 1 << 20));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn message_that_never_ends_is_bounded() {
        let mut cfg = config();
        cfg.max_message_size = 4096;
        let mut c = ClientSession::new(cfg);
        let mut out = Vec::new();
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        // Chunk size 1; a message announcing 4096 (allowed) of which 4095 bytes arrive in
        // 1-byte chunks; then a second message on another csid announcing more than the limit.
        let mut w = ChunkWriter::new();
        let mut stream = Vec::new();
        w.write_message(&mut stream, 2, 0, 1, 0, &1u32.to_be_bytes());
        w.set_chunk_size(1);
        w.write_message(&mut stream, 3, 0, 20, 0, &[0u8; 4096]);
        stream.truncate(stream.len() - 2);
        c.receive(&stream, &mut out).expect("still within bounds");
        let too_big = [0x04, 0, 0, 0, 0, 0x10, 0x01, 9, 0, 0, 0, 0];
        assert!(matches!(
            c.receive(&too_big, &mut out),
            Err(RtmpError::MessageTooLarge {
                size: 4097,
                limit: 4096
            })
        ));
    }

    #[test]
    fn garbage_after_handshake_is_a_typed_error() {
        let mut c = ClientSession::new(config());
        let mut out = Vec::new();
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        // fmt 1 on a chunk stream never opened, announcing 4 MB.
        let err = c
            .receive(b"\x47GARBAGE GARBAGE", &mut out)
            .expect_err("garbage");
        assert!(
            matches!(
                err,
                RtmpError::MessageTooLarge {
                    size: 0x42_4147,
                    limit: 0x10_0000
                }
            ),
            "{err:?}"
        );

        // A well-framed command that is not AMF0.
        let mut c = ClientSession::new(config());
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        let mut w = ChunkWriter::new();
        let mut bad = Vec::new();
        w.write_message(&mut bad, 3, 0, 20, 0, b"\x07\x00\x01");
        assert!(matches!(
            c.receive(&bad, &mut out),
            Err(RtmpError::Amf0(Amf0Error::Reference))
        ));

        // Short control messages.
        let mut c = ClientSession::new(config());
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        let mut short = Vec::new();
        w.write_message(&mut short, 2, 0, 1, 0, b"\x00\x01");
        assert!(matches!(
            c.receive(&short, &mut out),
            Err(RtmpError::Protocol(_))
        ));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let mut c = ClientSession::new(config());
            let mut out = Vec::new();
            c.start(&mut out);
            c.receive(&Server::s0s1s2(), &mut out).expect("ok");
            let len = (next() % 3000) as usize;
            let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            for piece in garbage.chunks(1 + (next() % 200) as usize) {
                if c.receive(piece, &mut out).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn undecodable_extras_after_name_and_transaction_are_dropped() {
        // onStatus, 0, null, then a typed object (0x10) we do not support.
        let mut body = Vec::new();
        amf0::write_string(&mut body, "onStatus");
        amf0::write_number(&mut body, 0.0);
        amf0::write_null(&mut body);
        body.push(0x10);
        let values = decode_command(&body).expect("lenient");
        assert_eq!(values, vec![s("onStatus"), Value::Number(0.0), Value::Null]);
        // But a command whose transaction id cannot be read is an error.
        let mut body = Vec::new();
        amf0::write_string(&mut body, "onStatus");
        body.push(0x10);
        assert!(matches!(
            decode_command(&body),
            Err(RtmpError::Amf0(Amf0Error::UnsupportedMarker(0x10)))
        ));
    }

    #[test]
    fn not_rtmp() {
        let mut c = ClientSession::new(config());
        let mut out = Vec::new();
        c.start(&mut out);
        let err = c
            .receive(b"\x16\x03\x01", &mut out)
            .expect_err("TLS is not RTMP");
        assert!(matches!(err, RtmpError::NotRtmp(0x16)));
        assert!(!err.is_refusal());
        assert!(err.to_string().contains("not an RTMP server"));
    }

    #[test]
    fn create_stream_result_without_id_is_a_protocol_error() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        for step in script(&mut srv).into_iter().take(5) {
            c.receive(&step, &mut out).expect("ok");
        }
        let r = srv.result(4.0, vec![Value::Null, Value::Number(-1.0)]);
        assert!(matches!(
            c.receive(&r, &mut out),
            Err(RtmpError::Protocol(_))
        ));
    }

    #[test]
    fn config_debug_hides_key() {
        let cfg = config();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("SeCrEt"), "{dbg}");
        let sess = format!("{:?}", ClientSession::new(cfg));
        assert!(!sess.contains("SeCrEt"), "{sess}");
        let url = RtmpUrl::parse("rtmp://h/app/k").expect("url");
        let cfg = SessionConfig::for_url(&url, 5);
        assert_eq!((cfg.app.as_str(), cfg.stream_key.as_str()), ("app", "k"));
        assert_eq!(cfg.tc_url, "rtmp://h/app");
    }

    #[test]
    fn media_writes_do_not_allocate() {
        let (mut c, mut srv, _) = published();
        let body = vec![0x27u8; 30_000];
        let mut out = Vec::with_capacity(64 * 1024);
        let ptr = out.as_ptr();
        for i in 0..100u32 {
            out.clear();
            c.write_video(&mut out, i * 33, &body);
            c.write_audio(&mut out, i * 21, &body[..300]);
            assert_eq!(out.as_ptr(), ptr);
        }
        // Pong and ack go into the same buffer without reallocating it either.
        out.clear();
        let ping = srv.control(4, &[0, 6, 0, 0, 0, 1]);
        c.receive(&ping, &mut out).expect("ok");
        assert_eq!(out.as_ptr(), ptr);
        assert!(!out.is_empty());
    }

    #[test]
    fn tokens_in_the_key_and_the_app_are_redacted_from_what_the_server_says() {
        let mut cfg = config();
        cfg.app = "live?token=apptoken99".into();
        cfg.stream_key = "name?secret=keysecret77&v=1".into();
        let mut c = ClientSession::new(cfg);
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut steps = script(&mut srv);
        steps.pop();
        for step in &steps {
            c.receive(step, &mut out).expect("ok");
        }
        let refusal = srv.on_status(
            1,
            "error",
            "NetStream.Publish.Denied",
            "app live?token=apptoken99: bad token apptoken99; secret=keysecret77 (keysecret77) \
             for name, v=1",
        );
        let err = c.receive(&refusal, &mut out).expect_err("refused");
        let text = err.to_string();
        for secret in ["apptoken99", "keysecret77", "v=1"] {
            assert!(!text.contains(secret), "{secret}: {text}");
        }
        assert!(
            text.contains("app live?<redacted>: bad token <redacted>"),
            "{text}"
        );
    }

    #[test]
    fn a_key_pasted_as_the_app_is_redacted_from_what_the_server_says() {
        let mut cfg = config();
        cfg.app = "sk-PASTED-4242".into();
        cfg.stream_key = "other".into();
        let mut c = ClientSession::new(cfg);
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        c.receive(&Server::s0s1s2(), &mut out).expect("ok");
        let refusal = srv.command(
            0,
            &[
                s("_error"),
                Value::Number(1.0),
                Value::Null,
                obj(&[
                    ("level", s("error")),
                    ("code", s("NetConnection.Connect.Rejected")),
                    ("description", s("no such application: sk-PASTED-4242")),
                ]),
            ],
        );
        let err = c.receive(&refusal, &mut out).expect_err("refused");
        let text = err.to_string();
        assert!(!text.contains("PASTED"), "{text}");
    }

    /// Whether `text` could go into a log line as it is: one line, no control characters.
    fn one_clean_line(text: &str) -> bool {
        !text.chars().any(char::is_control)
    }

    #[test]
    fn server_text_reaches_the_error_as_one_short_line() {
        // 600 KB of description with a forged journal entry in it: refused by its size alone.
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        let desc = format!("bad\n<3>forged{}", "x".repeat(600_000));
        let err = c
            .receive(
                &srv.on_status(1, "error", "NetStream.Publish.Denied", &desc),
                &mut out,
            )
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.len() < 200 && one_clean_line(&text), "{text}");

        // Within the command bound, code and description become short single lines.
        let (mut c, mut srv, _) = published();
        let code = format!(
            "NetStream.Publish.Denied\r\n<3>forged{}",
            "c".repeat(20_000)
        );
        let desc = format!("bad\n<3>forged entry\u{1b}[2J{}", "d".repeat(40_000));
        let err = c
            .receive(&srv.on_status(1, "error", &code, &desc), &mut out)
            .expect_err("refused");
        assert!(err.is_refusal());
        let text = err.to_string();
        assert!(text.chars().count() < 450, "{} chars", text.chars().count());
        assert!(one_clean_line(&text), "{text:?}");
        assert!(text.contains("bad\\n<3>forged entry\\u{1b}[2J"), "{text}");
        assert!(
            text.contains("NetStream.Publish.Denied\\r\\n<3>forged"),
            "{text}"
        );
    }

    #[test]
    fn the_key_is_redacted_before_the_text_is_cut() {
        // Cut first, the 200-character limit would fall inside the key and leave its start.
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        let desc = format!("{}{KEY} is in use", "x".repeat(185));
        let err = c
            .receive(
                &srv.on_status(1, "error", "NetStream.Publish.BadName", &desc),
                &mut out,
            )
            .expect_err("refused");
        let text = err.to_string();
        assert!(!text.contains("live_4242"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    /// `chunk` (one whole message in one chunk, fmt 0, csid below 64, no extended timestamp)
    /// with a fmt 1 header instead: no message stream id.
    fn as_fmt1(chunk: &[u8]) -> Vec<u8> {
        assert_eq!(chunk[0] >> 6, 0, "fmt 0");
        let mut v = vec![0x40 | chunk[0]];
        v.extend_from_slice(&chunk[1..8]);
        v.extend_from_slice(&chunk[12..]);
        v
    }

    #[test]
    fn a_server_opening_chunk_streams_with_fmt1_headers_is_followed() {
        // One RTMP server in the wild starts each chunk stream with a type-1 header; ffmpeg
        // publishes to it, reading message stream id 0.
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut steps = script(&mut srv);
        steps[1] = as_fmt1(&steps[1]); // first message on chunk stream 2
        steps[4] = as_fmt1(&steps[4]); // first message on chunk stream 3
        for step in steps {
            c.receive(&step, &mut out).expect("accepted");
        }
        assert!(c.is_published());
    }

    #[test]
    fn messages_a_publisher_has_no_use_for_are_ignored() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        // Acknowledgement, audio, video, AMF3 and AMF0 data, shared objects, aggregate, and
        // types nobody defined.
        for type_id in [0u8, 3, 8, 9, 15, 16, 18, 19, 22, 99] {
            let mut m = Vec::new();
            srv.writer
                .write_message(&mut m, 7, 0, type_id, 1, b"\x02\x00\x01?");
            c.receive(&m, &mut out).expect("ignored");
        }
        // fmt 2 and fmt 3 first chunks: empty messages of type 0.
        c.receive(&[0x88, 0, 0, 1], &mut out).expect("ignored");
        c.receive(&[0xC9], &mut out).expect("ignored");
        assert!(c.is_published());
        assert!(out.is_empty(), "nothing to answer");
    }

    #[test]
    fn an_amf3_command_is_read_after_its_format_byte() {
        let mut c = ClientSession::new(config());
        let mut srv = Server::new();
        let mut out = Vec::new();
        c.start(&mut out);
        let mut steps = script(&mut srv);
        steps.pop(); // the AMF0 onStatus
        for step in steps {
            c.receive(&step, &mut out).expect("accepted");
        }
        let mut body = vec![0u8];
        for v in [
            s("onStatus"),
            Value::Number(0.0),
            Value::Null,
            obj(&[
                ("level", s("status")),
                ("code", s("NetStream.Publish.Start")),
            ]),
        ] {
            amf0::write_value(&mut body, &v);
        }
        let mut m = Vec::new();
        srv.writer.write_message(&mut m, 5, 0, 17, 1, &body);
        c.receive(&m, &mut out).expect("accepted");
        assert!(c.is_published());
    }

    #[test]
    fn control_messages_longer_than_needed_and_a_zero_window_are_accepted() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        // Set Chunk Size 4096 with two bytes too many: applied.
        c.receive(&srv.control(1, &[0, 0, 0x10, 0, 0xAB, 0xCD]), &mut out)
            .expect("accepted");
        srv.writer.set_chunk_size(4096);
        // Window Acknowledgement Size 0, with a byte too many: no acknowledgements.
        c.receive(&srv.control(5, &[0, 0, 0, 0, 9]), &mut out)
            .expect("accepted");
        // A 20 KB status message (several 4096-byte chunks) parses, so the size took effect.
        let status = srv.on_status(1, "status", "NetStream.Info", &"i".repeat(20_000));
        c.receive(&status, &mut out).expect("accepted");
        assert!(c.is_published());
        assert!(srv.decode(&out).is_empty(), "no acknowledgement");
    }

    #[test]
    fn short_user_control_messages_are_refused() {
        // An event type cut short, and a ping request without its timestamp (as ffmpeg).
        for payload in [&[0u8][..], &[0, 6, 0, 0]] {
            let (mut c, mut srv, _) = published();
            let mut out = Vec::new();
            assert!(
                matches!(
                    c.receive(&srv.control(4, payload), &mut out),
                    Err(RtmpError::Protocol(_))
                ),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn results_and_errors_for_transactions_we_did_not_send_are_ignored() {
        let (mut c, mut srv, _) = published();
        let mut out = Vec::new();
        let error = obj(&[("level", s("error")), ("code", s("Whatever.Failed"))]);
        let e = srv.command(0, &[s("_error"), Value::Number(99.0), Value::Null, error]);
        c.receive(&e, &mut out).expect("ignored");
        let r = srv.result(99.0, vec![Value::Null, Value::Number(3.0)]);
        c.receive(&r, &mut out).expect("ignored");
        assert!(c.is_published());
        assert_eq!(c.stream_id(), Some(1));
    }

    #[test]
    fn a_command_over_the_value_count_is_an_error_even_after_name_and_transaction() {
        // Decoding stops at a value it cannot read once name and transaction are known, but
        // not at one too large to read: that is a hostile server, not an odd extra.
        let mut body = Vec::new();
        amf0::write_string(&mut body, "onStatus");
        amf0::write_number(&mut body, 0.0);
        amf0::write_strict_array_start(&mut body, 5000);
        body.resize(body.len() + 5000, 0x05);
        assert!(matches!(
            decode_command(&body),
            Err(RtmpError::Amf0(Amf0Error::TooManyValues))
        ));
    }
}
