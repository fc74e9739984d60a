//! RTMP client protocol core: everything needed to publish FLV tag bodies to an ingest server
//! (nginx-rtmp, SRS, MediaMTX, YouTube, Twitch, Facebook), as a sans-IO state machine.
//!
//! * [`url`] — ingest URLs, app / stream key / tcUrl, key redaction.
//! * [`handshake`] — C0/C1/C2 against S0/S1/S2 (Adobe RTMP 1.0 §5.2).
//! * [`chunk`] — chunk writer and reader (§5.3).
//! * [`session`] — protocol control messages (§5.4), user control (§6.2), and the
//!   `connect` → `createStream` → `publish` command sequence (§7) as a typed state machine.
//!
//! Sans-IO: the core takes received bytes in, appends bytes to send to a caller-owned
//! `Vec<u8>`, and returns typed results. It owns no socket, reads no clock and draws no
//! randomness (the caller passes a seed). The async shell that moves bytes between a TCP (or
//! TLS) stream and [`ClientSession`] lives elsewhere, and so do timeouts and reconnects.
//!
//! Why not `rml_rtmp`: its outgoing path allocates a `Vec` per packet, which we cannot afford
//! per video frame, and its chunk reader has no bound on message size, so a hostile or broken
//! server can make it buffer without limit. What a publisher needs is small: this core writes
//! media with zero heap allocation into a buffer the caller keeps, bounds every buffer it holds
//! against the peer (message size per type, one byte budget for all unfinished messages, number
//! of chunk streams, AMF0 values per command: about 1 MiB per connection at most), and never
//! panics on peer input. Text the server sends reaches logs only as a
//! [`crate::peer_text::PeerText`].
//!
//! Chunk stream ids we use: 2 protocol control, 3 commands, 4 audio, 5 data (metadata),
//! 6 video. Media and `publish` go on the message stream id `createStream` returned.
//!
//! No panic on peer input: the lints below deny indexing, `unwrap`, `expect` and `panic!` in
//! this module and every submodule (outside tests), so a byte from the server can only ever
//! become a typed error.

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod chunk;
pub mod handshake;
pub mod session;
pub mod url;

pub use chunk::{ChunkError, ChunkReader, ChunkWriter, Framing, Message};
pub use handshake::{ClientHandshake, HandshakeError};
pub use session::{ClientSession, RtmpError, SessionConfig, SessionState};
pub use url::{RtmpUrl, Scheme, UrlError};

/// Chunk stream for protocol control and user control messages (§5.4, §6.2).
pub const CSID_PROTOCOL_CONTROL: u32 = 2;
/// Chunk stream for commands.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio messages.
pub const CSID_AUDIO: u32 = 4;
/// Chunk stream for data (metadata) messages.
pub const CSID_DATA: u32 = 5;
/// Chunk stream for video messages.
pub const CSID_VIDEO: u32 = 6;

/// RTMP message type ids (§5.4, §6.2, §7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
}

/// User control event types (§6.2, §7.1.7).
pub mod user_control {
    pub const STREAM_BEGIN: u16 = 0;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}
