//! What a capture device delivers: interleaved PCM with the time it was captured.
//!
//! Owns: [`PcmInput`], the one interface between a capture device (ALSA's PCM ioctls, or a
//! generator in tests) and the audio pipeline that converts, corrects drift and encodes, plus
//! the sample formats real microphones offer ([`SampleFormat`]: S16_LE from USB microphones,
//! S32_LE from I2S MEMS microphones).
//!
//! Invariants: [`PcmInput::read`] fills a buffer the caller owns (no allocation per read);
//! `time_us` is on CLOCK_MONOTONIC, the clock the video's capture times use, so audio and
//! video can be held against each other; frames are whole (a read never returns half a
//! frame).

use std::time::Duration;

/// How one sample is stored, little-endian, interleaved by channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// 16-bit signed (`SNDRV_PCM_FORMAT_S16_LE`).
    S16Le,
    /// 32-bit signed (`SNDRV_PCM_FORMAT_S32_LE`): I2S microphones put 18 or 24 bits at the top.
    S32Le,
}

impl SampleFormat {
    /// Bytes per sample of one channel.
    pub fn bytes(self) -> usize {
        match self {
            SampleFormat::S16Le => 2,
            SampleFormat::S32Le => 4,
        }
    }
}

/// What a capture device was set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmParams {
    pub format: SampleFormat,
    /// Frames per second as the device was set (its own crystal decides the true rate).
    pub rate: u32,
    pub channels: u8,
    /// Frames the device delivers per wake-up.
    pub period_frames: u32,
}

impl PcmParams {
    /// Bytes of one frame (one sample of every channel).
    pub fn frame_bytes(self) -> usize {
        self.format.bytes() * usize::from(self.channels)
    }
}

/// One successful read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmRead {
    /// Whole frames written at the start of the caller's buffer.
    pub frames: usize,
    /// CLOCK_MONOTONIC time at which the first of them was captured, in microseconds.
    pub time_us: u64,
}

/// Why a read gave no samples.
#[derive(Debug, thiserror::Error)]
pub enum PcmError {
    /// The device's buffer overflowed and samples were lost; the device was prepared again
    /// and the next read goes on (the samples' times say how many were lost).
    #[error("capture overrun: samples were lost")]
    Overrun,
    /// Nothing arrived within the timeout: a stalled device.
    #[error("no samples for {0:?}")]
    Timeout(Duration),
    /// The device went away (a USB microphone pulled out): open it again later.
    #[error("the capture device is gone: {0}")]
    Gone(std::io::Error),
    #[error("capture failed: {0}")]
    Io(std::io::Error),
}

/// A capture device, opened and started (see the module doc).
pub trait PcmInput: Send {
    fn params(&self) -> PcmParams;

    /// Waits up to `timeout` for samples and copies whole frames into `buf`.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<PcmRead, PcmError>;
}
