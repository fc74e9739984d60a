//! campush: hardware-encoded H.264 from V4L2 (or a file, or stdin) pushed to RTMP ingest
//! servers, repackaged into FLV in buffers allocated once, reconnecting on its own.
//!
//! The data path, one module per stage (wired by `supervisor`):
//!
//! ```text
//! source (auto | rpicam | v4l2 | file | stdin)
//!                            -> access units: Annex B bytes in a pool slot, timestamp, key flag
//!   -> h264                    -> NAL units, SPS/PPS cache, AVCDecoderConfigurationRecord, SPS facts
//!   -> flv                     -> FLV tag bodies written in place of the Annex B bytes
//!   -> queue                   -> one bounded queue per destination, shared (refcounted) slots
//!   -> publisher               -> tokio shell: connect, publish, write media, finish;
//!                                 interleaves audio (`audio`: silent AAC-LC) by timestamp
//!   -> rtmp                    -> sans-IO: handshake, chunk writer/reader, AMF0 commands, session
//!   -> transport               -> TCP or TLS (rustls) with deadlines
//!   -> record (with [record])  -> one more destination: fragmented MP4 segments on the board,
//!                                 on a thread of its own (`record::fmp4` writes the boxes)
//! ```
//!
//! `ingest` runs the first half (source to queues) on the source thread, `publisher` the second
//! (queue to server) once per destination. `status` is the one observable value, which `led`
//! (the status LED), `notify` (systemd) and the reporter in `status` (log summary,
//! /run/campush/status.json) observe, started together by `observers`.
//!
//! ## Layout
//!
//! Top to bottom, one line per layer. A module uses only modules of the lines below its own
//! (and its own submodules): imports point down, never up or sideways, so there are no cycles.
//! `tests/layout.rs` checks the code against this table; a new module gets a line here.
//!
//! ```text
//! supervisor/            the run: one pipeline per life of the source (pool, queues, ingest
//!                        thread, publishers), stop and reload requests (signals), exit codes
//! observers              LED, systemd and reporter around a run; a configuration error shown
//! cli                    the command line; main.rs is parse, load, hand over, exit
//! config/                raw TOML or flags -> the checked Config: the file format, assembly
//!                        of each stage's checked section, error places and redaction of
//!                        secrets, board profiles (boards/*.toml)
//! led, notify, logging   observers of the status: the LED, systemd; log lines
//! ingest, publisher,     the two halves of the data path: the source thread (source -> h264 ->
//!   record/              flv -> queues) and one per destination (queue -> rtmp -> transport;
//!                        or queue -> fragmented MP4 files on the board)
//! source/, queue,        the Source trait and sources; per-destination queues, stream headers;
//!   backlog, bitrate     what a connection has sent and the server not received, as media
//!                        time; the adaptive bitrate rule (sans-IO)
//! flv, rtmp/, audio,     FLV tag bodies; the sans-IO RTMP client; the audio track; V4L2
//!   v4l2/, transport/    devices (capture, m2m encoder, probe); TCP or TLS with deadlines
//! alsa/                   microphones through the kernel's ALSA PCM ioctls (no alsa-lib): device
//!                        names, set-up, reads with CLOCK_MONOTONIC capture times, probe
//! h264/, amf0            the H.264 bitstream (NAL units, SPS/PPS, AVCC, display order); AMF0
//! pool, status           frame buffers allocated once; the one observable status, counters,
//!                        the status file and the Prometheus file
//! health/                board health (firmware flags, temperature, Wi-Fi, clock): sans-IO
//!                        parsers, the sampler below the system root, its thread
//! clock, alloc, exit,    CLOCK_MONOTONIC in µs; the allocation counter; exit codes; text a
//!   peer_text, stop,     peer sent, made safe to log (short, one line, no control characters);
//!   small_file, ioctl    the stop request a source's loops look at; a small text file read
//!                        whole, bounded (regular files only); ioctl request numbers (_IOC)
//! platform               settings the platforms reject: YouTube/Twitch/Facebook rules, H.264
//!                        Table A-1, the Pi encoder's limits (pure rules, no IO)
//! testing                for tests only: the one skip-or-require rule for outside tools; the
//!                        throttling proxy of the backlog tests and bench/lag.sh
//! setting                `Invalid { key, message }`: what a stage's check of its own section
//!                        returns; `config` places it in the file
//! ```
//!
//! Stages take their settings as typed values of their own (`PublisherSettings`,
//! `V4l2Settings`, ...): `config` builds them, no stage reads `config`.

pub mod alloc;
pub mod alsa;
pub mod amf0;
pub mod audio;
pub mod backlog;
pub mod bitrate;
pub mod cli;
pub mod clock;
pub mod config;
pub mod exit;
pub mod flv;
pub mod h264;
pub mod health;
pub mod ingest;
pub mod ioctl;
pub mod led;
pub mod logging;
pub mod notify;
pub mod observers;
pub mod peer_text;
pub mod platform;
pub mod pool;
pub mod publisher;
pub mod queue;
pub mod record;
pub mod rtmp;
pub mod setting;
pub mod small_file;
pub mod source;
pub mod status;
pub mod stop;
pub mod supervisor;
pub mod transport;
pub mod v4l2;

#[doc(hidden)]
pub mod testing;
