//! Sync for days: holds a capture device's sample clock against CLOCK_MONOTONIC (the clock the
//! video's capture times use) and says, sample by sample, where to drop or repeat one.
//!
//! Owns: [`Drift`], sans-IO (no clock, no device: reads are described to it as
//! `(frames, time_us)` pairs, and it answers with [`Gap`]s and per-frame [`Action`]s).
//!
//! The model. Output samples are stamped from their count alone: output sample `j` is stamped
//! `base_us + j / rate`. Input sample `k` (counted from the device's first) was captured at
//! `time_us` of its read plus its place in the read. A microphone's crystal is not the board's:
//! it runs tens of ppm fast or slow, so if every input sample became one output sample, the
//! stamps would drift away from the capture times by up to a second a day. So:
//!
//! - **Measure.** Every read gives one point `(k, time_us)`. The device's true rate is the slope
//!   of those points: an exponentially weighted least-squares line with a time constant of
//!   [`SLOPE_TAU_S`], so read jitter (milliseconds, from scheduling and USB frames) averages
//!   out while a slow change of temperature is still followed. [`Drift::drift_ppm`] is that
//!   slope against the nominal rate.
//! - **Offset.** Per read, `offset = stamp(j) - capture time` of the read's first sample
//!   (positive: the sound is stamped later than it was heard), smoothed over
//!   [`OFFSET_TAU_S`] ([`Drift::offset_us`]).
//! - **Correct.** The correction rate (samples to repeat, or drop if negative, per input sample)
//!   is `-drift - offset / PULL_S` (offset beyond a [`DEAD_BAND_US`] dead band, so read jitter
//!   does not dither an exact device): the measured drift cancels the clock difference, the offset
//!   term pulls what accumulated back to zero. It is clamped to [`MAX_CORRECTION_PPM`], and the
//!   corrections are spaced evenly by a fractional accumulator, so at least
//!   `1 / MAX_CORRECTION_PPM` samples (42 ms at 48 kHz) lie between two of them: single samples,
//!   never a burst. Before the slope is known (the first [`SLOPE_WARMUP_S`]) only the offset
//!   term acts; at 300 ppm it alone keeps the offset near 300 ppm × 30 s = 9 ms.
//! - **Steps.** Lost samples (an overrun) or a device opened again show up as a read whose
//!   time is far (over [`STEP_US`]) from where its first sample would be stamped: the input
//!   count skips the lost samples (so the slope stays a line) and the output gets a [`Gap`]
//!   of silence of the same length, or (time went backwards: a new device) input is dropped.
//!
//! Invariants: the output stamp of every sample is `base_us + j / rate` exactly (`base_us` moves
//! only forward, and only after a step of more than [`MAX_GAP_US`]); corrections
//! are single samples at least `rate / (MAX_CORRECTION_PPM * 1e-6)` input samples apart, except
//! at a [`Gap`]; nothing allocates.

/// Time constant of the drift measurement, seconds.
pub const SLOPE_TAU_S: f64 = 600.0;
/// The drift measurement is used once this much input has been seen, seconds.
pub const SLOPE_WARMUP_S: f64 = 60.0;
/// Time constant of the offset smoothing, seconds.
pub const OFFSET_TAU_S: f64 = 4.0;
/// An offset is pulled back to zero over about this long, seconds.
pub const PULL_S: f64 = 30.0;
/// Offsets smaller than this are not pulled back, µs.
pub const DEAD_BAND_US: f64 = 1_000.0;
/// The most samples corrected per million input samples: 500 ppm is one sample in 2000 (one
/// every 42 ms at 48 kHz).
pub const MAX_CORRECTION_PPM: f64 = 500.0;
/// A read this far from its expected time is a step (lost samples, a device opened again).
pub const STEP_US: f64 = 40_000.0;
/// The longest silence a step fills, µs. Beyond it (a capture time far ahead: a broken
/// timestamp, or a board that slept) the output clock starts again at the read instead, so
/// that no read can make the caller produce hours of silence at once.
pub const MAX_GAP_US: f64 = 60_000_000.0;

/// What to do with one input frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass it on.
    Keep,
    /// Skip it (the device is fast, or the stamps are ahead).
    Drop,
    /// Pass it on twice (the device is slow, or the stamps lag).
    Repeat,
}

/// Silence to insert before a read's frames, or input to skip, after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gap {
    /// Silent output frames to insert before the read's first frame.
    pub silence: u64,
    /// Frames at the start of the read to drop.
    pub skip: u64,
}

/// The drift tracker and corrector of one audio pipeline (see the module doc).
#[derive(Debug, Clone)]
pub struct Drift {
    rate: f64,
    /// Stamp of output sample 0, µs; `None` until the first read.
    base_us: Option<u64>,
    /// Output samples produced so far (the next one's index).
    out: u64,
    /// Input clock: the time of input sample 0 of the current device, µs.
    in_base_us: Option<u64>,
    /// Input samples seen on the current device (the next one's index).
    in_frames: u64,
    /// Input seconds seen since the slope started (for the warm-up).
    seen_s: f64,
    // Exponentially weighted regression of (x = input index, y = µs since in_base).
    mx: f64,
    my: f64,
    vxx: f64,
    vxy: f64,
    /// Measured drift, ppm (positive: the device runs fast).
    ppm: f64,
    /// Smoothed offset, µs.
    offset_us: f64,
    /// Correction rate per input sample: > 0 repeat, < 0 drop.
    correction: f64,
    /// Input samples until the next correction.
    until_next: f64,
    drops: u64,
    repeats: u64,
    steps: u64,
    /// Input samples were lost before the next read (an overrun): it is placed by time.
    input_lost: bool,
}

impl Drift {
    /// A tracker for a device set to `rate` frames per second.
    pub fn new(rate: u32) -> Drift {
        Drift {
            rate: f64::from(rate.max(1)),
            base_us: None,
            out: 0,
            in_base_us: None,
            in_frames: 0,
            seen_s: 0.0,
            mx: 0.0,
            my: 0.0,
            vxx: 0.0,
            vxy: 0.0,
            ppm: 0.0,
            offset_us: 0.0,
            correction: 0.0,
            until_next: f64::INFINITY,
            drops: 0,
            repeats: 0,
            steps: 0,
            input_lost: false,
        }
    }

    /// The output clock starts at `base_us` (sample 0's stamp), before any read: for a
    /// pipeline that produces silence before its device opens.
    pub fn start_output_at(&mut self, base_us: u64) {
        if self.base_us.is_none() {
            self.base_us = Some(base_us);
        }
    }

    /// A new device (or the same one opened again): its sample count starts over. The measured
    /// drift is kept as the first guess (it is the same microphone, most of the time).
    pub fn new_device(&mut self) {
        self.in_base_us = None;
        self.in_frames = 0;
        self.seen_s = 0.0;
        self.mx = 0.0;
        self.my = 0.0;
        self.vxx = 0.0;
        self.vxy = 0.0;
    }

    /// Samples were lost before the next read (the device overran and was restarted): that
    /// read is placed by its capture time however small the gap, on the input line (so the
    /// drift measurement stays a straight line) and on the output (silence where the samples
    /// were). Without it a loss under [`STEP_US`] bent the measured line: a 5 ms loss read as
    /// over 100 ppm of drift a minute later.
    pub fn input_lost(&mut self) {
        self.input_lost = true;
    }

    /// Stamp of output sample `j`, µs (`None` before the output clock starts).
    pub fn stamp_us(&self, j: u64) -> Option<u64> {
        let base = self.base_us?;
        let offset = u128::from(j) * 1_000_000 / self.rate as u128;
        Some(base.saturating_add(offset as u64))
    }

    /// Output samples produced so far.
    pub fn out_frames(&self) -> u64 {
        self.out
    }

    /// Counts `n` output samples produced (by [`Action`]s or a [`Gap`]'s silence, or silence
    /// while there is no device).
    pub fn produced(&mut self, n: u64) {
        self.out += n;
    }

    /// Measured drift of the device against CLOCK_MONOTONIC, ppm (positive: it runs fast).
    pub fn drift_ppm(&self) -> f64 {
        self.ppm
    }

    /// Smoothed offset between the stamps and the capture times, µs (positive: stamped late).
    pub fn offset_us(&self) -> f64 {
        self.offset_us
    }

    /// Samples dropped and repeated so far, and the steps taken.
    pub fn corrections(&self) -> (u64, u64, u64) {
        (self.drops, self.repeats, self.steps)
    }

    /// The current correction rate, ppm of input samples (> 0 repeat, < 0 drop).
    pub fn correction_ppm(&self) -> f64 {
        self.correction * 1e6
    }

    /// A read of `frames` frames whose first was captured at `time_us`: updates the measurement
    /// and says what to insert or skip before its frames. Call [`Drift::action`] for each of
    /// its frames next (after the gap's skipped ones).
    pub fn observe(&mut self, frames: usize, time_us: u64) -> Gap {
        let base = *self.base_us.get_or_insert(time_us);
        let in_base = *self.in_base_us.get_or_insert(time_us);
        let mut gap = Gap::default();
        // Where this read's first sample would be stamped, against when it was captured.
        let stamp = self.stamp_us(self.out).unwrap_or(base);
        let mut raw = stamp as f64 - time_us as f64;
        let lost = std::mem::take(&mut self.input_lost);
        if raw.abs() > STEP_US || (lost && raw < 0.0) {
            self.steps += 1;
            if raw < -MAX_GAP_US {
                // Too far behind to fill: the output clock starts again where this read is
                // (its stamps jump forward, still increasing).
                let produced = u128::from(self.out) * 1_000_000 / self.rate as u128;
                self.base_us = Some(time_us.saturating_sub(produced as u64));
            } else if raw < 0.0 {
                // Stamps lag: samples were lost (or a device came back). Fill with silence.
                gap.silence = ((-raw) * self.rate / 1e6).round() as u64;
                self.out += gap.silence;
            } else {
                // Stamps ahead of the capture: skip input until they meet.
                let extra = (raw * self.rate / 1e6).round() as u64;
                gap.skip = extra.min(frames as u64);
            }
            raw = self.stamp_us(self.out).unwrap_or(base) as f64
                - (time_us as f64 + gap.skip as f64 * 1e6 / self.rate);
            self.offset_us = raw;
        }
        // Lost input samples keep the input line straight: count them.
        if self.in_frames > 0 {
            let expected = in_base as f64 + self.in_frames as f64 * self.slope_us();
            let late = time_us as f64 - expected;
            if lost {
                // Where the fitted line puts this capture time (the nominal rate before a
                // second of input), never behind the samples already counted.
                let y = time_us.saturating_sub(in_base) as f64;
                let x = if self.seen_s >= 1.0 && self.vxx > 0.0 && self.vxy > 0.0 {
                    self.mx + (y - self.my) * self.vxx / self.vxy
                } else {
                    self.in_frames as f64 + late * self.rate / 1e6
                };
                self.in_frames = self.in_frames.max(x.round().max(0.0) as u64);
            } else if late > STEP_US {
                self.in_frames += (late * self.rate / 1e6).round() as u64;
            } else if late < -STEP_US {
                // Time went backwards for this device: start its line again.
                self.new_device();
                self.in_base_us = Some(time_us);
            }
        }
        self.fit(
            self.in_frames as f64,
            time_us.saturating_sub(in_base) as f64,
            frames,
        );
        self.in_frames += frames as u64;
        // Smooth the offset (time-weighted, so the read size does not matter).
        let a = 1.0 - (-(frames as f64) / (OFFSET_TAU_S * self.rate)).exp();
        self.offset_us += a * (raw - self.offset_us);
        self.update_correction();
        gap
    }

    /// What to do with the next input frame of the current read.
    pub fn action(&mut self) -> Action {
        if self.correction == 0.0 {
            self.out += 1;
            return Action::Keep;
        }
        self.until_next -= 1.0;
        if self.until_next > 0.0 {
            self.out += 1;
            return Action::Keep;
        }
        self.until_next += 1.0 / self.correction.abs();
        if self.correction > 0.0 {
            self.repeats += 1;
            self.out += 2;
            Action::Repeat
        } else {
            self.drops += 1;
            Action::Drop
        }
    }

    /// Passes on up to `max` input frames that need no correction, at once (what `max` calls
    /// of [`Drift::action`] answering [`Action::Keep`] would do); returns how many. The next
    /// frame after them, if fewer than `max`, is a correction: ask [`Drift::action`].
    pub fn keep_run(&mut self, max: u64) -> u64 {
        let n = if self.correction == 0.0 {
            max
        } else {
            // Frames before the one whose countdown reaches zero.
            let free = (self.until_next - 1.0).ceil().max(0.0);
            (free as u64).min(max)
        };
        if self.correction != 0.0 {
            self.until_next -= n as f64;
        }
        self.out += n;
        n
    }

    /// Microseconds per input frame, as measured (nominal until measured).
    fn slope_us(&self) -> f64 {
        if self.seen_s >= SLOPE_WARMUP_S && self.vxx > 0.0 {
            self.vxy / self.vxx
        } else {
            1e6 / self.rate
        }
    }

    fn fit(&mut self, x: f64, y: f64, frames: usize) {
        let first = self.seen_s == 0.0;
        self.seen_s += frames as f64 / self.rate;
        // Weight by the time the read covers; the first point sets the means.
        let a = if first {
            1.0
        } else {
            (1.0 - (-(frames as f64) / (SLOPE_TAU_S * self.rate)).exp())
                .max(1.0 / (self.seen_s * self.rate / frames.max(1) as f64))
        };
        let (dx, dy) = (x - self.mx, y - self.my);
        self.mx += a * dx;
        self.my += a * dy;
        self.vxx = (1.0 - a) * (self.vxx + a * dx * dx);
        self.vxy = (1.0 - a) * (self.vxy + a * dx * dy);
        if self.seen_s >= SLOPE_WARMUP_S && self.vxx > 0.0 {
            let us_per_frame = self.vxy / self.vxx;
            if us_per_frame > 0.0 {
                self.ppm = (1e6 / (us_per_frame * self.rate) - 1.0) * 1e6;
            }
        }
    }

    fn update_correction(&mut self) {
        let max = MAX_CORRECTION_PPM * 1e-6;
        // Within the dead band the offset is left alone: read jitter would otherwise dither it.
        let off = self.offset_us - self.offset_us.clamp(-DEAD_BAND_US, DEAD_BAND_US);
        let c = (-self.ppm * 1e-6 - off * 1e-6 / PULL_S).clamp(-max, max);
        let was = self.correction;
        self.correction = c;
        if c == 0.0 {
            self.until_next = f64::INFINITY;
        } else if was == 0.0 || !self.until_next.is_finite() {
            self.until_next = 1.0 / c.abs();
        } else {
            // Keep the phase: rescale what is left to the new spacing.
            self.until_next = self.until_next.min(1.0 / c.abs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated device: `ppm` fast (or slow), `period` frames per read, each read's time
    /// jittered by up to `jitter_us` (a small deterministic generator, so runs repeat).
    struct Device {
        rate: f64,
        ppm: f64,
        period: usize,
        jitter_us: f64,
        start_us: f64,
        k: u64,
        seed: u64,
    }

    impl Device {
        fn new(ppm: f64, jitter_us: f64) -> Device {
            Device {
                rate: 48_000.0,
                ppm,
                period: 1024,
                jitter_us,
                start_us: 1_000_000.0,
                k: 0,
                seed: 0x9E37_79B9_7F4A_7C15,
            }
        }
        fn noise(&mut self) -> f64 {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            (self.seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        }
        /// The next read: its frames and the (jittered) time of its first.
        fn read(&mut self) -> (usize, u64) {
            let true_rate = self.rate * (1.0 + self.ppm * 1e-6);
            let t = self.start_us + self.k as f64 * 1e6 / true_rate;
            self.k += self.period as u64;
            let j = self.noise() * self.jitter_us;
            (self.period, (t + j) as u64)
        }
        /// True capture time of input sample `k`.
        fn time_of(&self, k: u64) -> f64 {
            self.start_us + k as f64 * 1e6 / (self.rate * (1.0 + self.ppm * 1e-6))
        }
    }

    struct Run {
        worst_offset_ms: f64,
        final_ppm: f64,
        min_spacing: u64,
        corrections: u64,
    }

    /// Runs `hours` of a device through the tracker, checking the true offset of every read
    /// (output stamp of its first sample against its true capture time).
    fn simulate(ppm: f64, jitter_us: f64, hours: f64) -> Run {
        let mut dev = Device::new(ppm, jitter_us);
        let mut d = Drift::new(48_000);
        let reads = (hours * 3600.0 * 48_000.0 / dev.period as f64) as u64;
        let (mut worst, mut last_corr, mut min_spacing, mut n_corr) = (0.0f64, None, u64::MAX, 0);
        let mut k_in = 0u64;
        for _ in 0..reads {
            let (frames, t) = dev.read();
            let gap = d.observe(frames, t);
            assert_eq!(gap, Gap::default(), "a steady device never steps");
            let truth = d.stamp_us(d.out_frames()).unwrap() as f64 - dev.time_of(k_in);
            worst = worst.max(truth.abs() / 1000.0);
            let mut left = frames as u64;
            while left > 0 {
                let n = d.keep_run(left);
                k_in += n;
                left -= n;
                if left > 0 {
                    if d.action() != Action::Keep {
                        if let Some(prev) = last_corr {
                            min_spacing = min_spacing.min(k_in - prev);
                        }
                        last_corr = Some(k_in);
                        n_corr += 1;
                    }
                    k_in += 1;
                    left -= 1;
                }
            }
        }
        Run {
            worst_offset_ms: worst,
            final_ppm: d.drift_ppm(),
            min_spacing,
            corrections: n_corr,
        }
    }

    fn check(ppm: f64) {
        let run = simulate(ppm, 3_000.0, 24.0);
        assert!(
            run.worst_offset_ms < 20.0,
            "{ppm} ppm: offset reached {:.2} ms",
            run.worst_offset_ms
        );
        assert!(
            (run.final_ppm - ppm).abs() < 2.0,
            "{ppm} ppm measured as {:.2}",
            run.final_ppm
        );
        // 2000 input samples (42 ms) at least between two corrections: never a burst.
        assert!(
            run.min_spacing >= 1999,
            "{ppm} ppm: corrections {} apart",
            run.min_spacing
        );
        // A day at `ppm` needs about ppm × 1e-6 × samples corrections.
        let expected = ppm.abs() * 1e-6 * 48_000.0 * 86_400.0;
        assert!(
            (run.corrections as f64 - expected).abs() < expected * 0.02 + 50.0,
            "{} corrections, expected about {expected:.0}",
            run.corrections
        );
    }

    #[test]
    fn a_device_100_ppm_fast_stays_within_20_ms_for_a_day_and_its_drift_is_measured() {
        check(100.0);
    }

    #[test]
    fn a_device_100_ppm_slow_stays_within_20_ms_for_a_day_and_its_drift_is_measured() {
        check(-100.0);
    }

    #[test]
    fn a_device_300_ppm_fast_stays_within_20_ms_for_a_day_and_its_drift_is_measured() {
        check(300.0);
    }

    #[test]
    fn a_device_300_ppm_slow_stays_within_20_ms_for_a_day_and_its_drift_is_measured() {
        check(-300.0);
    }

    /// Three minutes of a device 100 ppm slow that overruns three times, losing 4.6 ms of
    /// samples each time (under the step threshold), the tracker told of it or not; the final
    /// drift and the worst true offset after the first loss.
    fn overruns(told: bool) -> (f64, f64) {
        let mut dev = Device::new(-100.0, 1_000.0);
        let mut d = Drift::new(48_000);
        let (mut k_in, mut worst) = (0u64, 0.0f64);
        let losses = [20.0, 70.0, 130.0];
        let mut next = 0;
        while (dev.k as f64) < 180.0 * 48_000.0 {
            if next < losses.len() && dev.k as f64 >= losses[next] * 48_000.0 {
                dev.k += 220;
                k_in += 220;
                next += 1;
                if told {
                    d.input_lost();
                }
            }
            let (frames, t) = dev.read();
            let gap = d.observe(frames, t);
            k_in += gap.skip;
            if next > 0 {
                let truth = d.stamp_us(d.out_frames()).unwrap() as f64 - dev.time_of(k_in);
                worst = worst.max(truth.abs() / 1000.0);
            }
            for _ in gap.skip..frames as u64 {
                d.action();
                k_in += 1;
            }
        }
        (d.drift_ppm(), worst)
    }

    #[test]
    fn an_overrun_that_loses_less_than_a_step_neither_bends_the_drift_nor_moves_the_sound() {
        let (ppm, worst_ms) = overruns(true);
        let (untold, untold_worst_ms) = overruns(false);
        eprintln!(
            "told: {ppm:+.1} ppm, {worst_ms:.1} ms; untold: {untold:+.1} ppm, {untold_worst_ms:.1} ms"
        );
        assert!((ppm + 100.0).abs() < 10.0, "drift measured {ppm:+.1} ppm");
        // The tracking itself (before the drift is known, at 100 ppm) and the read jitter
        // account for about 3 ms; a loss left in would add its 4.6 ms.
        assert!(
            worst_ms < 4.0,
            "the sound moved {worst_ms:.1} ms from its capture time"
        );
        // Untold, the same losses read as a different drift: what the guest saw once.
        assert!((untold + 100.0).abs() > 30.0, "untold: {untold:+.1} ppm");
    }

    #[test]
    fn an_exact_device_is_left_alone() {
        let run = simulate(0.0, 3_000.0, 1.0);
        assert!(run.worst_offset_ms < 5.0, "{}", run.worst_offset_ms);
        // What the measurement's own noise costs is less than a 1 ppm drift's worth (173 an
        // hour), nothing like a real drift's.
        assert!(run.corrections < 173, "{} corrections", run.corrections);
    }

    #[test]
    fn a_run_of_keeps_at_once_is_the_same_as_one_at_a_time() {
        let (mut a, mut b) = (Drift::new(48_000), Drift::new(48_000));
        let mut t = 1_000_000u64;
        for _ in 0..20_000 {
            // 400 ppm slow: a correction every few reads.
            a.observe(480, t);
            b.observe(480, t);
            let mut left = 480u64;
            while left > 0 {
                let n = a.keep_run(left);
                left -= n;
                if left > 0 {
                    a.action();
                    left -= 1;
                }
            }
            (0..480).for_each(|_| {
                b.action();
            });
            assert_eq!(a.out_frames(), b.out_frames());
            t += 10_004;
        }
        assert_eq!(a.corrections(), b.corrections());
        assert!(a.corrections().1 > 100, "{:?}", a.corrections());
    }

    #[test]
    fn lost_samples_become_silence_of_the_same_length_and_the_line_stays_straight() {
        let mut d = Drift::new(48_000);
        let mut t = 5_000_000u64;
        for _ in 0..100 {
            assert_eq!(d.observe(480, t), Gap::default());
            (0..480).for_each(|_| assert_eq!(d.action(), Action::Keep));
            t += 10_000;
        }
        // An overrun: 200 ms (9600 frames) never arrive.
        t += 200_000;
        let gap = d.observe(480, t);
        assert_eq!(
            gap,
            Gap {
                silence: 9_600,
                skip: 0
            }
        );
        assert_eq!(d.stamp_us(d.out_frames()), Some(t));
    }

    #[test]
    fn a_device_that_comes_back_later_is_met_with_silence_up_to_its_first_sample() {
        let mut d = Drift::new(48_000);
        d.start_output_at(1_000_000);
        // Silence was produced for a while without a device (0.5 s), then one opens 100 ms
        // later than the silence reached.
        d.produced(24_000);
        d.new_device();
        let gap = d.observe(480, 1_600_000);
        assert_eq!(gap.silence, 4_800);
        assert_eq!(d.stamp_us(d.out_frames()), Some(1_600_000));
    }

    #[test]
    fn a_capture_time_hours_ahead_starts_the_clock_again_instead_of_filling_silence() {
        let mut d = Drift::new(48_000);
        d.start_output_at(1_000_000);
        d.produced(48_000);
        // A broken timestamp: 3 hours later.
        let far = 1_000_000 + 3 * 3_600 * 1_000_000;
        let gap = d.observe(480, far);
        assert_eq!(gap, Gap::default(), "no silence, nothing skipped");
        assert_eq!(d.stamp_us(d.out_frames()), Some(far));
        // A minute is still filled.
        let mut d = Drift::new(48_000);
        d.start_output_at(1_000_000);
        let gap = d.observe(480, 1_000_000 + 59_000_000);
        assert_eq!(gap.silence, 59 * 48_000);
    }

    #[test]
    fn stamps_ahead_of_a_new_device_skip_its_first_samples() {
        let mut d = Drift::new(48_000);
        d.start_output_at(1_000_000);
        d.produced(48_000); // silence up to 2.0 s
        d.new_device();
        let gap = d.observe(4_800, 1_950_000); // its first sample is from 1.95 s
        assert_eq!(
            gap,
            Gap {
                silence: 0,
                skip: 2_400
            }
        );
    }
}
