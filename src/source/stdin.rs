//! `stdin`: an H.264 Annex B byte stream from a pipe, e.g.
//! `rpicam-vid -t 0 --codec h264 --inline -o - | campush run --source stdin ...`.
//!
//! Owns: the stdin handle and the frame clock.
//!
//! Timestamps are on the monotonic clock, from arrival: an access unit is stamped when its end
//! is known (the next unit's first NAL arrives). When the frame rate is known (`--fps`, or the
//! SPS timing info of the first unit), arrival jitter is smoothed out: units are stamped at the
//! nominal rate, locked to arrival time — if the producer falls more than [`MAX_SKEW_US`] behind
//! the nominal clock (it runs slow, or stalled) the clock re-anchors on arrival; if it runs more
//! than that ahead (a file `cat` into the pipe), reading is paced so the timeline stays real time
//! (`--no-pace` lets it run ahead). Without a known rate, timestamps are plain arrival times.
//! Either way they strictly increase, by at least 1 ms (the FLV resolution).

use std::io::Stdin;
use std::time::Duration;

use super::bytestream::ByteStream;
use super::{fps_from_sps, Capture, Source, SourceError};
use crate::clock::monotonic_us;
use crate::pool::FrameMut;

/// How far the nominal clock may drift from arrival time before it is corrected.
pub const MAX_SKEW_US: u64 = 1_000_000;

/// Nominal-rate timestamps: `anchor + (n - anchor_n) * period`.
#[derive(Debug, Clone, Copy)]
struct FrameClock {
    period_us: f64,
    anchor_us: u64,
    anchor_n: u64,
    n: u64,
}

impl FrameClock {
    fn nominal(&self) -> u64 {
        self.anchor_us + ((self.n - self.anchor_n) as f64 * self.period_us).round() as u64
    }
}

pub struct StdinSource {
    stream: ByteStream<Stdin>,
    configured_fps: Option<f64>,
    pace: bool,
    clock: Option<FrameClock>,
    started: bool,
    last_us: Option<u64>,
}

impl StdinSource {
    pub fn new(fps: Option<f64>, pace: bool) -> Self {
        StdinSource {
            stream: ByteStream::new(std::io::stdin(), "stdin".into(), 1024 * 1024),
            configured_fps: fps,
            pace,
            clock: None,
            started: false,
            last_us: None,
        }
    }

    /// The timestamp of a unit that arrived at `arrival`, and how long to wait before handing it
    /// on (pacing a producer that runs ahead of real time).
    fn stamp(&mut self, arrival: u64) -> (u64, u64) {
        let (ts, wait) = match &mut self.clock {
            None => (arrival, 0),
            Some(clock) => {
                let mut ts = clock.nominal();
                if arrival > ts + MAX_SKEW_US {
                    clock.anchor_us = arrival;
                    clock.anchor_n = clock.n;
                    ts = arrival;
                }
                clock.n += 1;
                let lead = ts.saturating_sub(arrival);
                let wait = if self.pace && lead > MAX_SKEW_US {
                    lead - MAX_SKEW_US
                } else {
                    0
                };
                (ts, wait)
            }
        };
        let ts = match self.last_us {
            Some(last) => ts.max(last + 1000),
            None => ts,
        };
        self.last_us = Some(ts);
        (ts, wait)
    }
}

impl Source for StdinSource {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        if self
            .stream
            .next_unit()?
            .map(|u| frame.fill_from(u))
            .is_none()
        {
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
                self.clock = Some(FrameClock {
                    period_us: 1e6 / fps,
                    anchor_us: arrival,
                    anchor_n: 0,
                    n: 0,
                });
            } else {
                log::info!("stdin: no frame rate known (--fps, SPS timing): arrival timestamps");
            }
        }
        let (timestamp_us, wait_us) = self.stamp(arrival);
        if wait_us > 0 {
            std::thread::sleep(Duration::from_micros(wait_us));
        }
        Ok(Some(Capture { timestamp_us }))
    }

    fn skipped_bytes(&self) -> u64 {
        self.stream.skipped_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(fps: Option<f64>, pace: bool) -> StdinSource {
        let mut s = StdinSource::new(fps, pace);
        s.clock = fps.map(|f| FrameClock {
            period_us: 1e6 / f,
            anchor_us: 1_000_000,
            anchor_n: 0,
            n: 0,
        });
        s
    }

    #[test]
    fn a_burst_is_stamped_at_the_nominal_rate_and_paced_beyond_the_slack() {
        let mut s = source(Some(25.0), true);
        let stamps: Vec<(u64, u64)> = (0..50).map(|_| s.stamp(1_000_000)).collect();
        assert_eq!(stamps[1].0 - stamps[0].0, 40_000);
        assert_eq!(stamps[49].0, 1_000_000 + 49 * 40_000);
        assert_eq!(stamps[25].1, 0, "within the slack nothing waits");
        assert_eq!(stamps[49].1, 49 * 40_000 - MAX_SKEW_US);
    }

    #[test]
    fn without_pacing_a_burst_is_never_held_back() {
        let mut s = source(Some(25.0), false);
        assert!((0..100).all(|_| s.stamp(1_000_000).1 == 0));
    }

    #[test]
    fn real_time_arrivals_with_jitter_get_nominal_stamps() {
        let mut s = source(Some(30.0), true);
        for n in 0..300u64 {
            let jitter = (n * 7919 % 20_000) as i64 - 10_000;
            let arrival = (1_000_000 + n as i64 * 33_333 + jitter) as u64;
            let (ts, wait) = s.stamp(arrival);
            assert_eq!(ts, 1_000_000 + (n as f64 * 1e6 / 30.0).round() as u64);
            assert_eq!(wait, 0);
        }
    }

    #[test]
    fn a_stalled_producer_re_anchors_the_clock_on_arrival() {
        let mut s = source(Some(30.0), true);
        s.stamp(1_000_000);
        let (ts, _) = s.stamp(5_000_000);
        assert_eq!(ts, 5_000_000);
        let (ts, _) = s.stamp(5_033_000);
        assert_eq!(ts, 5_033_333);
    }

    #[test]
    fn without_a_rate_arrival_times_strictly_increase_by_a_millisecond() {
        let mut s = source(None, true);
        assert_eq!(s.stamp(7_000_000).0, 7_000_000);
        assert_eq!(s.stamp(7_000_000).0, 7_001_000);
        assert_eq!(s.stamp(9_000_000).0, 9_000_000);
    }
}
