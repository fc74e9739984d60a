//! Timestamps for H.264 that arrives without any (a pipe from another program): the stamping
//! policy shared by `stdin` and `rpicam`.
//!
//! Owns: [`ArrivalClock`], the frame clock locked to arrival time.
//!
//! An access unit is stamped on the monotonic clock when it arrives. When the frame rate is
//! known, arrival jitter is smoothed out: units are stamped at the nominal rate, locked to
//! arrival time — if the producer falls more than [`MAX_SKEW_US`] behind the nominal clock (it
//! runs slow, stalled, or was restarted) the clock re-anchors on arrival; if it runs more than
//! that ahead (a file `cat` into the pipe), the caller is told how long to wait so the timeline
//! stays real time (when pacing). Without a known rate, timestamps are plain arrival times.
//! Either way they strictly increase, by at least 1 ms (the FLV resolution), for the clock's
//! whole life: a restarted producer continues the same timeline.

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

/// Stamps units on arrival; see the module documentation.
#[derive(Debug, Clone)]
pub struct ArrivalClock {
    pace: bool,
    clock: Option<FrameClock>,
    last_us: Option<u64>,
}

impl ArrivalClock {
    /// A clock that stamps plain arrival times until [`Self::lock_to_rate`] is called.
    /// `pace`: report waits for a producer that runs ahead of real time.
    pub fn new(pace: bool) -> Self {
        ArrivalClock {
            pace,
            clock: None,
            last_us: None,
        }
    }

    /// From now on, stamp at `fps`, anchored at `arrival_us`.
    pub fn lock_to_rate(&mut self, fps: f64, arrival_us: u64) {
        self.clock = Some(FrameClock {
            period_us: 1e6 / fps,
            anchor_us: arrival_us,
            anchor_n: 0,
            n: 0,
        });
    }

    pub fn is_locked(&self) -> bool {
        self.clock.is_some()
    }

    /// The timestamp of a unit that arrived at `arrival`, and how long to wait (µs) before
    /// handing it on (pacing a producer that runs ahead of real time).
    pub fn stamp(&mut self, arrival: u64) -> (u64, u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(fps: Option<f64>, pace: bool) -> ArrivalClock {
        let mut c = ArrivalClock::new(pace);
        if let Some(f) = fps {
            c.lock_to_rate(f, 1_000_000);
        }
        c
    }

    #[test]
    fn a_burst_is_stamped_at_the_nominal_rate_and_paced_beyond_the_slack() {
        let mut s = clock(Some(25.0), true);
        let stamps: Vec<(u64, u64)> = (0..50).map(|_| s.stamp(1_000_000)).collect();
        assert_eq!(stamps[1].0 - stamps[0].0, 40_000);
        assert_eq!(stamps[49].0, 1_000_000 + 49 * 40_000);
        assert_eq!(stamps[25].1, 0, "within the slack nothing waits");
        assert_eq!(stamps[49].1, 49 * 40_000 - MAX_SKEW_US);
    }

    #[test]
    fn without_pacing_a_burst_is_never_held_back() {
        let mut s = clock(Some(25.0), false);
        assert!((0..100).all(|_| s.stamp(1_000_000).1 == 0));
    }

    #[test]
    fn real_time_arrivals_with_jitter_get_nominal_stamps() {
        let mut s = clock(Some(30.0), true);
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
        let mut s = clock(Some(30.0), true);
        s.stamp(1_000_000);
        let (ts, _) = s.stamp(5_000_000);
        assert_eq!(ts, 5_000_000);
        let (ts, _) = s.stamp(5_033_000);
        assert_eq!(ts, 5_033_333);
    }

    #[test]
    fn without_a_rate_arrival_times_strictly_increase_by_a_millisecond() {
        let mut s = clock(None, true);
        assert_eq!(s.stamp(7_000_000).0, 7_000_000);
        assert_eq!(s.stamp(7_000_000).0, 7_001_000);
        assert_eq!(s.stamp(9_000_000).0, 9_000_000);
    }
}
