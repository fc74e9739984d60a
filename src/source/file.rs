//! `file:PATH`: an H.264 Annex B file, paced in real time, optionally looped.
//!
//! Owns: the file handle, the frame clock and the pacing sleep.
//!
//! Timestamps are media time, not arrival time: frame `n` is stamped `t0 + n / fps` on the
//! monotonic clock, where `t0` is when the file was opened, and counting continues across loops
//! so the stream stays continuous. Pacing sleeps until that instant (never cumulative sleeps, so
//! there is no drift); `--no-pace` skips the sleep but keeps the media timestamps, which is what
//! a benchmark wants. The frame rate comes from the configuration, else the SPS VUI timing of the
//! first access unit, else 30.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::into_slot::{Fd, SlotStream};
use super::{fps_from_sps, Capture, Source, SourceError};
use crate::clock::monotonic_us;
use crate::pool::FrameMut;

/// Frame rate used when neither the configuration nor the SPS gives one.
pub const DEFAULT_FPS: f64 = 30.0;

pub struct FileSource {
    path: PathBuf,
    stream: SlotStream<Fd<File>>,
    configured_fps: Option<f64>,
    frame_us: Option<f64>,
    pace: bool,
    looping: bool,
    t0_us: u64,
    frames: u64,
}

impl FileSource {
    pub fn open(
        path: &Path,
        fps: Option<f64>,
        pace: bool,
        looping: bool,
    ) -> Result<Self, SourceError> {
        let file = open(path)?;
        Ok(FileSource {
            path: path.to_owned(),
            stream: SlotStream::new(Fd(file), format!("file {}", path.display()), Self::CAPACITY),
            configured_fps: fps,
            frame_us: fps.map(|f| 1e6 / f),
            pace,
            looping,
            t0_us: monotonic_us(),
            frames: 0,
        })
    }

    /// The frame period in microseconds, fixed on the first access unit.
    fn frame_us(&mut self, first_unit: &[u8]) -> f64 {
        if let Some(us) = self.frame_us {
            return us;
        }
        // Runs once per source: the SPS parse may allocate, which is fine at start-up.
        let from_sps = fps_from_sps(first_unit);
        let fps = self.configured_fps.or(from_sps).unwrap_or(DEFAULT_FPS);
        log::info!(
            "{}: {} fps ({})",
            self.path.display(),
            fps,
            if self.configured_fps.is_some() {
                "configured"
            } else if from_sps.is_some() {
                "from the SPS timing info"
            } else {
                "default"
            }
        );
        let us = 1e6 / fps;
        self.frame_us = Some(us);
        us
    }
}

impl FileSource {
    /// A slot's capacity: the stream reads into the slots and trades buffers with them.
    const CAPACITY: usize = 512 * 1024;
}

fn open(path: &Path) -> Result<File, SourceError> {
    File::open(path).map_err(|source| SourceError::Open {
        what: format!("file {}", path.display()),
        source,
    })
}

impl Source for FileSource {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        let can_loop = self.looping && self.stream.units() > 0;
        let mut got = self.stream.next_unit(frame)?;
        if !got && can_loop {
            self.stream.reset(Fd(open(&self.path)?));
            got = self.stream.next_unit(frame)?;
        }
        if !got {
            return Ok(None);
        }
        let period = match self.frame_us {
            Some(us) => us,
            None => {
                let bytes = frame.bytes().clone();
                self.frame_us(&bytes)
            }
        };
        let timestamp_us = self.t0_us + (self.frames as f64 * period).round() as u64;
        self.frames += 1;
        if self.pace {
            let now = monotonic_us();
            if timestamp_us > now {
                std::thread::sleep(Duration::from_micros(timestamp_us - now));
            }
        }
        Ok(Some(Capture { timestamp_us }))
    }

    fn frame_capacity_hint(&self) -> usize {
        Self::CAPACITY
    }

    fn nal_starts(&self) -> Option<&[u32]> {
        self.stream.nal_starts()
    }

    fn skipped_bytes(&self) -> u64 {
        self.stream.skipped_bytes()
    }
}
