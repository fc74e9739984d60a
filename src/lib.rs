//! campush: hardware-encoded H.264 from V4L2 (or a file, or stdin) pushed to RTMP ingest
//! servers, repackaged into FLV in buffers allocated once, reconnecting on its own.
//!
//! The data path, one module per stage (see `main.rs` for the wiring):
//!
//! ```text
//! source (file | stdin | v4l2) -> access units: Annex B bytes in a pool slot, timestamp, key flag
//!   -> h264                    -> NAL units, SPS/PPS cache, AVCDecoderConfigurationRecord, SPS facts
//!   -> flv                     -> FLV tag bodies written in place of the Annex B bytes
//!   -> queue                   -> one bounded queue per destination, shared (refcounted) slots
//!   -> publisher               -> tokio shell: connect, publish, write media, finish;
//!                                 interleaves audio (`audio`: silent AAC-LC) by timestamp
//!   -> rtmp                    -> sans-IO: handshake, chunk writer/reader, AMF0 commands, session
//!   -> transport               -> TCP or TLS (rustls) with deadlines
//! ```
//!
//! `pool` owns every frame buffer; `config` turns raw TOML or command-line flags into a checked
//! `Config` (with `board` profiles); `status` is the one observable value, which `led` (the
//! status LED), `notify` (systemd) and the reporter in `status` (log summary, /run/campush/status.json) observe, started
//! together by `observers`.

pub mod alloc;
pub mod amf0;
pub mod audio;
pub mod cli;
pub mod config;
pub mod exit;
pub mod flv;
pub mod h264;
pub mod ingest;
pub mod led;
pub mod logging;
pub mod notify;
pub mod observers;
pub mod pool;
pub mod publisher;
pub mod queue;
pub mod rtmp;
pub mod setting;
pub mod source;
pub mod status;
pub mod transport;
pub mod v4l2;
