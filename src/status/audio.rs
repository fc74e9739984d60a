//! The microphone's part of the status: its state, the measured drift and the offset between
//! the sound's stamps and its capture times, and what went wrong so far.
//!
//! Owns: [`AudioStats`] (relaxed atomics the capture thread stores into, no lock or allocation
//! on its path) and [`AudioSnapshot`] (what the status file shows as its `"audio"` object, `null`
//! without a microphone).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

/// What the microphone is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicState {
    /// Opening the device for the first time.
    Opening,
    /// Capturing and encoding.
    Capturing,
    /// The device is gone or failed: silence is sent while it is opened again.
    Reopening,
}

impl MicState {
    pub fn name(self) -> &'static str {
        match self {
            MicState::Opening => "opening",
            MicState::Capturing => "capturing",
            MicState::Reopening => "reopening",
        }
    }
}

/// Written by the capture thread, read by the status writer.
#[derive(Debug, Default)]
pub struct AudioStats {
    state: AtomicU8,
    /// Measured drift, in thousandths of a ppm.
    drift_milli_ppm: AtomicI64,
    offset_us: AtomicI64,
    pub overruns: AtomicU64,
    pub reopens: AtomicU64,
    /// Encoded frames the destinations lost by falling behind.
    pub frames_lost: AtomicU64,
    /// Single samples dropped or repeated by the drift correction.
    pub corrections: AtomicU64,
}

impl AudioStats {
    pub fn set_state(&self, s: MicState) {
        self.state.store(s as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> MicState {
        match self.state.load(Ordering::Relaxed) {
            1 => MicState::Capturing,
            2 => MicState::Reopening,
            _ => MicState::Opening,
        }
    }

    /// Stores the drift correction's measurements.
    pub fn set_drift(&self, drift_ppm: f64, offset_us: f64) {
        self.drift_milli_ppm
            .store((drift_ppm * 1000.0) as i64, Ordering::Relaxed);
        self.offset_us.store(offset_us as i64, Ordering::Relaxed);
    }

    pub fn snapshot(&self, source: &str) -> AudioSnapshot {
        AudioSnapshot {
            source: source.to_owned(),
            state: self.state(),
            drift_ppm: self.drift_milli_ppm.load(Ordering::Relaxed) as f64 / 1000.0,
            offset_ms: self.offset_us.load(Ordering::Relaxed) as f64 / 1000.0,
            overruns: self.overruns.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
            frames_lost: self.frames_lost.load(Ordering::Relaxed),
        }
    }
}

/// The microphone at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSnapshot {
    /// `alsa:DEVICE`.
    pub source: String,
    pub state: MicState,
    pub drift_ppm: f64,
    /// Stamps minus capture times, ms (positive: the sound is stamped late).
    pub offset_ms: f64,
    pub overruns: u64,
    pub reopens: u64,
    pub frames_lost: u64,
}

impl AudioSnapshot {
    /// The status file's `"audio"` object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"source\":{},\"state\":\"{}\",\"drift_ppm\":{:.1},\"offset_ms\":{:.1},\"overruns\":{},\"reopens\":{},\"frames_lost\":{}}}",
            super::json_string(&self.source),
            self.state.name(),
            self.drift_ppm,
            self.offset_ms,
            self.overruns,
            self.reopens,
            self.frames_lost,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audio_object_shows_state_drift_offset_and_troubles() {
        let s = AudioStats::default();
        s.set_state(MicState::Capturing);
        s.set_drift(-102.34, 3_456.0);
        s.overruns.store(2, Ordering::Relaxed);
        s.reopens.store(1, Ordering::Relaxed);
        assert_eq!(
            s.snapshot("alsa:hw:1,0").to_json(),
            "{\"source\":\"alsa:hw:1,0\",\"state\":\"capturing\",\"drift_ppm\":-102.3,\"offset_ms\":3.5,\"overruns\":2,\"reopens\":1,\"frames_lost\":0}"
        );
    }
}
