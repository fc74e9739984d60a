//! Recording on the board: the stream written to local files in fragmented MP4, next to (or,
//! in `outage` mode, instead of) the network destinations.
//!
//! Owns: the fMP4 byte layout ([`fmp4`], sans-IO).
//!
//! Settings: `[record]`.

pub mod fmp4;
