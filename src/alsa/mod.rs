//! Sound capture through the kernel's ALSA PCM interface, without alsa-lib: device names,
//! the uapi structs and ioctls, a PCM stream that reads (or, in tests, writes) interleaved
//! frames with their CLOCK_MONOTONIC capture time, card controls, and `campush probe`'s list
//! of capture devices.
//!
//! Owns: `sys` (layouts and request numbers, asserted per target), `device` (`hw:CARD,DEV`
//! names, `/proc/asound`, device nodes below the system root), `pcm` (set-up, reads, writes,
//! overrun recovery, capture times), `control` (card identity, integer controls), `probe`.
//!
//! Layering: below `audio`, which adapts [`pcm::Pcm`] to its `PcmInput`
//! (`audio::alsa_input`); this module knows nothing of the audio pipeline. Paths below a root
//! the caller passes (the `config::system_root`), so tests use a fake `/proc` and `/dev`.
//!
//! Invariants: no allocation on the read path; every wait bounded by the caller's timeout;
//! errors say which device and which step, and whether the device is gone
//! ([`AlsaError::Gone`]: reopen later) or refused ([`AlsaError::Unsupported`]: a
//! configuration matter).

pub mod control;
pub mod device;
pub mod pcm;
pub mod probe;
pub mod sys;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use device::{DeviceName, DeviceNameError, Direction};
pub use pcm::{Captured, Format, Pcm, Position, Setup, Wish};

/// Why an ALSA device could not be opened, set up, read or written.
#[derive(Debug, thiserror::Error)]
pub enum AlsaError {
    #[error(transparent)]
    Name(#[from] DeviceNameError),
    #[error("no sound card for {name} (cards: {known}; campush probe lists them)")]
    NoCard { name: String, known: String },
    #[error("{}: cannot open: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    #[error("{}: {op} failed: {source}", path.display())]
    Ioctl {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Samples were lost (capture overrun or playback underrun); the stream goes on.
    #[error("xrun: samples were lost, the stream was prepared again")]
    Xrun,
    #[error("no samples for {0:?}")]
    Timeout(Duration),
    #[error("{}: the device is gone ({source})", path.display())]
    Gone { path: PathBuf, source: io::Error },
    #[error("a buffer of {0} bytes holds no whole frame")]
    SmallBuffer(usize),
}

impl AlsaError {
    /// The device is not there (yet, or any more): try again later.
    pub fn is_gone(&self) -> bool {
        matches!(self, AlsaError::Gone { .. } | AlsaError::NoCard { .. })
    }
}
