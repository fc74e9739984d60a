//! Adaptive bitrate (issue 10): when a link is too slow, ask the encoder for fewer bits before
//! the queue has to drop whole GOPs (a frozen picture every few seconds), and come back up when
//! the link allows. The decision only, as a sans-IO state machine: the caller passes the time
//! and each destination's backlog, and applies the bitrate it returns to its encoder.
//!
//! Owns: the current target bitrate and the timers of the rule:
//! - the backlog above [`Tuning::high_us`] for [`Tuning::down_after_us`] → step down,
//!   multiplicatively ([`Tuning::down_factor`]), and again after as long if it stays high and
//!   has not fallen since the last step (a backlog that falls is draining: the last step is
//!   enough, and another would undershoot the link);
//! - below [`Tuning::low_us`] for [`Tuning::up_after_us`] (longer) → step up, additively
//!   ([`Tuning::up_step_kbps`]), toward the configured bitrate, never above it;
//! - never below the floor (`[source] bitrate_min_kbps`: too low a bitrate has frozen the Pi's
//!   encoder in the field);
//! - several destinations: the slowest one that is connected decides; one that is down (no
//!   backlog to report) pulls nothing down, and with none connected nothing changes.
//!
//! This is AIMD, as TCP's congestion control and OBS's dynamic bitrate do it: a quick retreat
//! when the link is overrun, a slow probe back up.
//!
//! Wired by `ingest` (once per frame, on the source thread) to a source that takes a bitrate
//! while streaming (`Source::set_bitrate`: the V4L2 control `V4L2_CID_MPEG_VIDEO_BITRATE`,
//! accepted while streaming by the Pi's bcm2835-codec); `[source] adaptive_bitrate` and
//! `bitrate_min_kbps` turn it on and set the floor.
//!
//! Invariants: `floor <= current <= ceiling` at all times; at most one change per
//! observation; a change is returned once (the caller logs it once, not per frame); no
//! allocation.

/// The thresholds and steps of the rule (defaults fit a 2 s queue bound).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// A backlog above this is too much...
    pub high_us: u64,
    /// ...once it has lasted this long, and between two steps down.
    pub down_after_us: u64,
    /// Each step down multiplies the bitrate by this.
    pub down_factor: f64,
    /// A backlog below this is room to grow...
    pub low_us: u64,
    /// ...once it has lasted this long, and between two steps up.
    pub up_after_us: u64,
    /// Each step up adds this.
    pub up_step_kbps: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            high_us: 500_000,
            down_after_us: 1_000_000,
            down_factor: 0.75,
            low_us: 150_000,
            up_after_us: 10_000_000,
            up_step_kbps: 250,
        }
    }
}

/// The bitrate controller of one encoder.
#[derive(Debug, Clone)]
pub struct Controller {
    ceiling_kbps: u32,
    floor_kbps: u32,
    current_kbps: u32,
    tuning: Tuning,
    /// Since when the slowest connected destination has been above `high_us` (below `low_us`).
    high_since: Option<u64>,
    low_since: Option<u64>,
    /// The backlog at the last step down (or hold) of the current high spell.
    backlog_at_step: Option<u64>,
}

impl Controller {
    /// Starts at the configured bitrate `ceiling_kbps`; never goes below `floor_kbps` (clamped
    /// to the ceiling).
    pub fn new(ceiling_kbps: u32, floor_kbps: u32, tuning: Tuning) -> Self {
        let ceiling_kbps = ceiling_kbps.max(1);
        Controller {
            ceiling_kbps,
            floor_kbps: floor_kbps.clamp(1, ceiling_kbps),
            current_kbps: ceiling_kbps,
            tuning,
            high_since: None,
            low_since: None,
            backlog_at_step: None,
        }
    }

    /// The bitrate the encoder should have now.
    pub fn current_kbps(&self) -> u32 {
        self.current_kbps
    }

    /// One observation at `now_us`: each destination's backlog (queued and in flight, in µs of
    /// lag), `None` for one that is not connected. Returns the new bitrate when it changes.
    pub fn observe(
        &mut self,
        now_us: u64,
        backlogs: impl IntoIterator<Item = Option<u64>>,
    ) -> Option<u32> {
        let Some(worst) = backlogs.into_iter().flatten().max() else {
            // Nobody connected: nothing to learn about any link.
            self.high_since = None;
            self.low_since = None;
            self.backlog_at_step = None;
            return None;
        };
        let t = self.tuning;
        if worst > t.high_us {
            self.low_since = None;
            let since = *self.high_since.get_or_insert(now_us);
            if now_us.saturating_sub(since) >= t.down_after_us {
                self.high_since = Some(now_us); // the next step needs as long again
                let draining = self.backlog_at_step.is_some_and(|b| worst < b);
                self.backlog_at_step = Some(worst);
                if draining {
                    return None;
                }
                let lower = (f64::from(self.current_kbps) * t.down_factor) as u32;
                return self.set(lower.max(self.floor_kbps));
            }
        } else if worst < t.low_us {
            self.high_since = None;
            self.backlog_at_step = None;
            let since = *self.low_since.get_or_insert(now_us);
            if now_us.saturating_sub(since) >= t.up_after_us {
                self.low_since = Some(now_us);
                let higher = self.current_kbps.saturating_add(t.up_step_kbps);
                return self.set(higher.min(self.ceiling_kbps));
            }
        } else {
            // In between: hold, and start both timers over.
            self.high_since = None;
            self.low_since = None;
            self.backlog_at_step = None;
        }
        None
    }

    fn set(&mut self, kbps: u32) -> Option<u32> {
        (kbps != self.current_kbps).then(|| {
            self.current_kbps = kbps;
            kbps
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    fn controller() -> Controller {
        Controller::new(4000, 1000, Tuning::default())
    }

    /// Observes one destination with `backlog_us` every 100 ms from `from_us` to `to_us`,
    /// returning every change.
    fn run(c: &mut Controller, from_us: u64, to_us: u64, backlog_us: Option<u64>) -> Vec<u32> {
        (from_us..to_us)
            .step_by(100_000)
            .filter_map(|t| c.observe(t, [backlog_us]))
            .collect()
    }

    #[test]
    fn a_backlog_that_stays_high_steps_the_bitrate_down_by_a_quarter_each_second() {
        let mut c = controller();
        assert_eq!(run(&mut c, 0, 900_000, Some(S)), vec![], "not yet a second");
        assert_eq!(run(&mut c, S, 3 * S + 1, Some(S)), vec![3000, 2250, 1687]);
    }

    #[test]
    fn a_high_backlog_that_is_draining_after_a_step_is_not_stepped_down_again() {
        let mut c = controller();
        assert_eq!(run(&mut c, 0, S + 1, Some(2 * S)), vec![3000]);
        // Still high, but falling since the step: the step is working.
        let changes: Vec<u32> = (11..40u64)
            .filter_map(|i| c.observe(i * 100_000, [Some(2 * S - i * 30_000)]))
            .collect();
        assert_eq!(changes, vec![]);
        assert_eq!(c.current_kbps(), 3000);
        // Growing again: the next step comes.
        let changes: Vec<u32> = (40..50u64)
            .filter_map(|i| c.observe(i * 100_000, [Some(S + i * 10_000)]))
            .collect();
        assert_eq!(changes, vec![2250]);
    }

    #[test]
    fn a_short_spike_changes_nothing() {
        let mut c = controller();
        run(&mut c, 0, 800_000, Some(S));
        run(&mut c, 800_000, 900_000, Some(300_000)); // back in the middle band
        assert_eq!(run(&mut c, 900_000, 1_700_000, Some(S)), vec![]);
        assert_eq!(c.current_kbps(), 4000);
    }

    #[test]
    fn the_floor_holds_however_long_the_link_stays_bad() {
        let mut c = controller();
        let changes = run(&mut c, 0, 60 * S, Some(5 * S));
        assert_eq!(*changes.last().unwrap(), 1000);
        assert_eq!(c.current_kbps(), 1000);
        assert!(changes.windows(2).all(|w| w[1] < w[0]), "{changes:?}");
    }

    #[test]
    fn a_long_quiet_period_steps_back_up_additively_to_the_configured_bitrate() {
        let mut c = controller();
        run(&mut c, 0, 3 * S + 1, Some(S)); // down to 1687
        let ups = run(&mut c, 4 * S, 200 * S, Some(0));
        assert_eq!(&ups[..3], &[1937, 2187, 2437]);
        assert_eq!(
            *ups.last().unwrap(),
            4000,
            "never above the configured bitrate"
        );
        assert_eq!(c.current_kbps(), 4000);
    }

    #[test]
    fn stepping_up_needs_ten_quiet_seconds_each_time() {
        let mut c = controller();
        run(&mut c, 0, S + 1, Some(S)); // 3000
        assert_eq!(run(&mut c, 2 * S, 11 * S, Some(0)), vec![]);
        assert_eq!(run(&mut c, 11 * S, 12 * S + 1, Some(0)), vec![3250]);
    }

    #[test]
    fn the_slowest_connected_destination_decides_and_a_fast_one_does_not_mask_it() {
        let mut c = controller();
        let changes: Vec<u32> = (0..=10)
            .filter_map(|i| c.observe(i * 100_000, [Some(0), Some(S)]))
            .collect();
        assert_eq!(changes, vec![3000]);
    }

    #[test]
    fn a_destination_that_is_down_pulls_nothing_down() {
        let mut c = controller();
        // One connected and keeping up, one down (its queue would grow without bound).
        let changes: Vec<u32> = (0..=100)
            .filter_map(|i| c.observe(i * 100_000, [Some(0), None]))
            .collect();
        assert_eq!(changes, vec![]);
        // None connected at all: hold.
        assert_eq!(run(&mut c, 11 * S, 30 * S, None), vec![]);
        assert_eq!(c.current_kbps(), 4000);
    }

    #[test]
    fn a_floor_above_the_ceiling_is_the_ceiling() {
        let c = Controller::new(800, 1000, Tuning::default());
        assert_eq!(c.current_kbps(), 800);
        let mut c = c;
        assert_eq!(run(&mut c, 0, 10 * S, Some(S)), vec![]);
    }
}
