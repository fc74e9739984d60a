//! `stdin`: an H.264 Annex B byte stream from a pipe, e.g.
//! `rpicam-vid -t 0 --codec h264 --inline -o - | campush run --source stdin ...`.
//!
//! Owns: the stdin handle and the frame clock.
//!
//! Timestamps are on the monotonic clock, from arrival, locked to the nominal frame rate when it
//! is known (`--fps`, or the SPS timing info of the first unit); see [`super::arrival`]. An access
//! unit is stamped when its end is known (the next unit's first NAL arrives); reading is paced
//! when the producer runs ahead of real time, unless `--no-pace`.

use std::io::Stdin;
use std::time::Duration;

use super::arrival::ArrivalClock;
use super::into_slot::{Fd, SlotStream};
use super::{fps_from_sps, Capture, Source, SourceError};
use crate::clock::monotonic_us;
use crate::pool::FrameMut;

/// A slot's capacity: the stream reads into the slots and trades buffers with them.
const CAPACITY: usize = 512 * 1024;

pub struct StdinSource {
    stream: SlotStream<Fd<Stdin>>,
    configured_fps: Option<f64>,
    clock: ArrivalClock,
    started: bool,
}

impl StdinSource {
    pub fn new(fps: Option<f64>, pace: bool) -> Self {
        StdinSource {
            // Read through the descriptor, past std's buffer: nothing else reads stdin.
            stream: SlotStream::new(Fd(std::io::stdin()), "stdin".into(), CAPACITY),
            configured_fps: fps,
            clock: ArrivalClock::new(pace),
            started: false,
        }
    }
}

impl Source for StdinSource {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        if !self.stream.next_unit(frame)? {
            return Ok(None);
        }
        let arrival = monotonic_us();
        if !self.started {
            self.started = true;
            // Once, at start-up: the SPS parse may allocate.
            let fps = self
                .configured_fps
                .or_else(|| fps_from_sps(&frame.bytes().clone()));
            if let Some(fps) = fps {
                log::info!("stdin: {fps} fps, timestamps locked to arrival within 1 s");
                self.clock.lock_to_rate(fps, arrival);
            } else {
                log::info!("stdin: no frame rate known (--fps, SPS timing): arrival timestamps");
            }
        }
        let (timestamp_us, wait_us) = self.clock.stamp(arrival);
        if wait_us > 0 {
            std::thread::sleep(Duration::from_micros(wait_us));
        }
        Ok(Some(Capture { timestamp_us }))
    }

    fn frame_capacity_hint(&self) -> usize {
        CAPACITY
    }

    fn nal_starts(&self) -> Option<&[u32]> {
        self.stream.nal_starts()
    }

    fn skipped_bytes(&self) -> u64 {
        self.stream.skipped_bytes()
    }
}
