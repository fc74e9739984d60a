//! The microphone: one capture thread per process that turns a capture device into AAC-LC
//! frames on the video's clock, for every destination at once.
//!
//! Owns: [`Mic`] (the thread, started once by the supervisor and stopped when the audio
//! settings change), [`MicFeed`] (what destinations open their [`AudioSource`](super::AudioSource) from: a cursor on
//! the shared [`Ring`]) and [`Pipeline`] (the per-read work, sans thread, so that tests drive it).
//!
//! Per read of the device ([`Pipeline::read_from`]):
//! 1. the device fills a buffer allocated when it was opened ([`PcmInput::read`]);
//! 2. each frame is converted to the encoder's channels ([`Converter`]) and, from a device that
//!    runs at another rate than the encoder, to the encoder's rate ([`Resampler`]: the read
//!    then counts the frames that came out, stamped with the capture time of their place);
//! 3. the drift tracker takes `(frames, time_us)` and answers with silence to insert or input
//!    to skip after a step ([`Drift::observe`]: lost samples, a device back), then each frame
//!    is kept, dropped or repeated as the drift correction says ([`Drift::action`]), into a
//!    1024-frame block;
//! 4. each full block goes to the encoder, whose packet (of the block before it, see
//!    [`super::encoder`]) is stamped from the count of output samples
//!    ([`Drift::stamp_us`]: `base + n / rate` on CLOCK_MONOTONIC) and pushed into the ring.
//!
//! A device that is gone (or fails, or stalls for [`STALL`]) is dropped and opened again with
//! backoff ([`BACKOFF_FIRST`] doubling to [`BACKOFF_MAX`]) through the opener closure; meanwhile
//! [`Pipeline::silence_until`] keeps the track going with digital silence (which the encoder
//! turns into [`super::silent_frame`]'s bytes without encoding) stamped on the same sample
//! clock, [`SILENCE_LAG_US`] behind real time, so when the device is back its first samples
//! land exactly where the silence ends ([`Drift::observe`] fills the difference). The video
//! never waits for any of this: the publishers only read the ring.
//!
//! Overruns are counted and logged once per burst (a burst ends after [`BURST_QUIET`] without
//! one). The status file shows the state, drift, offset and counts ([`AudioStats`]).
//!
//! Invariants: after a device is opened, nothing on this path allocates per frame (the encoder
//! included, see [`super::encoder`]); stamps in the ring strictly increase; the thread ends
//! within one read timeout ([`READ_TIMEOUT`], or two periods of a device with longer ones) plus
//! one frame's encoding of a stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::convert::Converter;
use super::drift::{Action, Drift};
use super::encoder::Encoder;
use super::pcm::{PcmError, PcmInput, PcmParams, PcmRead};
use super::resample::Resampler;
use super::ring::{Reader, Ring};
use super::{AudioFormat, MicSpec, SAMPLES_PER_FRAME};
use crate::status::{AudioStats, MicState};

/// Opens the capture device, set as close as it can to the format asked for. The ALSA capture
/// code provides one (`audio::alsa_input::open`); tests provide generators.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn PcmInput>, PcmError> + Send>;

/// The opener of a configured microphone (`[audio] source = "alsa:DEVICE"`): the PCM capture
/// device `hw:CARD,DEV` below the system `root` (`/`, or `CAMPUSH_ROOT`), set as near the
/// configured rate and channels as it goes ([`super::alsa_input::open`]). The card is looked up
/// again at every open, so a USB microphone that comes back under another number is found.
pub fn alsa_opener(spec: &MicSpec, root: std::path::PathBuf) -> Opener {
    let name = crate::alsa::device::DeviceName::parse(&spec.device);
    let (rate, channels) = (spec.format.rate, spec.format.channels);
    Box::new(move || match &name {
        Ok(name) => super::alsa_input::open_boxed(&root, name, rate, channels),
        // Checked with the configuration; kept as an error, not a panic, all the same.
        Err(e) => Err(PcmError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            e.to_string(),
        ))),
    })
}

/// How long a read waits for samples.
pub const READ_TIMEOUT: Duration = Duration::from_millis(100);
/// A device that gives nothing for this long is opened again.
pub const STALL: Duration = Duration::from_secs(2);
/// First wait before opening a lost device again; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Overruns closer together than this are one burst (logged once).
pub const BURST_QUIET: Duration = Duration::from_secs(10);
/// Silence without a device is produced this far behind real time (more than the drift
/// tracker's step, so a device that comes back is met exactly).
pub const SILENCE_LAG_US: u64 = 60_000;

const BLOCK: usize = SAMPLES_PER_FRAME as usize;
/// Device rates the resampler takes, Hz.
pub const MIN_DEVICE_RATE: u32 = 8_000;
pub const MAX_DEVICE_RATE: u32 = 192_000;

/// What the microphone thread is set up with.
#[derive(Debug, Clone)]
pub struct MicSettings {
    pub format: AudioFormat,
    pub bitrate_kbps: u32,
    /// `alsa:DEVICE`, for the logs.
    pub label: String,
}

impl From<&MicSpec> for MicSettings {
    fn from(spec: &MicSpec) -> Self {
        MicSettings {
            format: spec.format,
            bitrate_kbps: spec.bitrate_kbps,
            label: spec.label(),
        }
    }
}

/// Where destinations get the microphone's frames: cheap to clone.
#[derive(Clone)]
pub struct MicFeed {
    ring: Arc<Ring>,
}

impl MicFeed {
    pub fn new(ring: Arc<Ring>) -> MicFeed {
        MicFeed { ring }
    }

    pub fn format(&self) -> AudioFormat {
        self.ring.format()
    }

    /// A cursor for one destination.
    pub fn reader(&self) -> Reader {
        self.ring.reader()
    }

    pub fn ring(&self) -> &Arc<Ring> {
        &self.ring
    }
}

/// The per-read work of the capture thread (see the module doc).
pub struct Pipeline {
    format: AudioFormat,
    drift: Drift,
    encoder: Encoder,
    /// The block being filled, interleaved in the encoder's channels.
    block: Vec<f32>,
    fill: usize,
    ring: Arc<Ring>,
    stats: Arc<AudioStats>,
    converter: Option<Converter>,
    /// For a device at another rate than the encoder's.
    resampler: Option<Resampler>,
    /// A read's frames at the encoder's rate, when resampled (sized when a device opens).
    resampled: Vec<[f32; 2]>,
    /// The device's read buffer (sized when a device opens).
    buf: Vec<u8>,
    frame_bytes: usize,
    encode_failures: u64,
}

impl Pipeline {
    pub fn new(settings: &MicSettings, ring: Arc<Ring>, stats: Arc<AudioStats>) -> Pipeline {
        let format = settings.format;
        Pipeline {
            format,
            drift: Drift::new(format.rate),
            encoder: Encoder::new(format, settings.bitrate_kbps),
            block: vec![0.0; BLOCK * usize::from(format.channels)],
            fill: 0,
            ring,
            stats,
            converter: None,
            resampler: None,
            resampled: Vec::new(),
            buf: Vec::new(),
            frame_bytes: 0,
            encode_failures: 0,
        }
    }

    /// A device was opened with `params`: checks them, sizes the read buffer and, for a device
    /// at another rate than the encoder's, sets up the resampler (once per open).
    pub fn device_opened(&mut self, params: PcmParams) -> Result<(), String> {
        if !(MIN_DEVICE_RATE..=MAX_DEVICE_RATE).contains(&params.rate) {
            return Err(format!(
                "the device runs at {} Hz; campush takes {MIN_DEVICE_RATE} to {MAX_DEVICE_RATE} Hz",
                params.rate
            ));
        }
        let frames = (params.period_frames as usize).clamp(BLOCK, 16 * BLOCK);
        self.frame_bytes = params.frame_bytes();
        self.buf.clear();
        self.buf.resize(frames * self.frame_bytes, 0);
        self.converter = Some(Converter::new(params, self.format.channels));
        self.resampler = (params.rate != self.format.rate)
            .then(|| Resampler::new(params.rate, self.format.rate));
        let most = self
            .resampler
            .as_ref()
            .map_or(0, |r| frames * r.max_out_per_in());
        self.resampled.clear();
        self.resampled.resize(most, [0.0; 2]);
        self.drift.new_device();
        Ok(())
    }

    /// The device is gone: what was read stays; silence follows.
    pub fn device_lost(&mut self) {
        self.converter = None;
    }

    /// Reads once from `device` and encodes what came; returns the frames read.
    pub fn read_from(
        &mut self,
        device: &mut dyn PcmInput,
        timeout: Duration,
    ) -> Result<usize, PcmError> {
        let read = match device.read(&mut self.buf, timeout) {
            Err(PcmError::Overrun) => {
                self.drift.input_lost();
                return Err(PcmError::Overrun);
            }
            r => r?,
        };
        self.take(read);
        Ok(read.frames)
    }

    /// Handles a read whose frames are at the start of the read buffer.
    fn take(&mut self, read: PcmRead) {
        let frames = read.frames.min(self.buf.len() / self.frame_bytes.max(1));
        if let Some(c) = &mut self.converter {
            if let Some(live) = c.watch(&self.buf, frames) {
                log_live_channels(live, c.channels());
            }
        }
        let Some(conv) = self.converter else { return };
        // From a device at another rate: the frames at the encoder's rate this read completes,
        // and the capture time of the first one's place (it lies among earlier inputs).
        let (count, time_us) = match &mut self.resampler {
            None => (frames, read.time_us),
            Some(rs) => {
                let lead_us = rs.lead() * 1e6 / f64::from(rs.in_rate());
                let mut n = 0;
                for i in 0..frames {
                    n += rs.push(conv.frame(&self.buf, i), &mut self.resampled[n..]);
                }
                let time_us = (read.time_us as f64 + lead_us).max(0.0) as u64;
                (n, time_us)
            }
        };
        let gap = self.drift.observe(count, time_us);
        for _ in 0..gap.silence {
            self.push([0.0; 2]);
        }
        for i in gap.skip as usize..count {
            let s = match self.resampler {
                None => conv.frame(&self.buf, i),
                Some(_) => self.resampled[i],
            };
            match self.drift.action() {
                Action::Keep => self.push(s),
                Action::Repeat => {
                    self.push(s);
                    self.push(s);
                }
                Action::Drop => {}
            }
        }
        self.stats
            .set_drift(self.drift.drift_ppm(), self.drift.offset_us());
        let (drops, repeats, _) = self.drift.corrections();
        self.stats
            .corrections
            .store(drops + repeats, Ordering::Relaxed);
        self.stats
            .frames_lost
            .store(self.ring.lost(), Ordering::Relaxed);
    }

    /// Without a device: digital silence up to [`SILENCE_LAG_US`] before `now_us`, on the
    /// sample clock (which starts now if nothing started it).
    pub fn silence_until(&mut self, now_us: u64) {
        self.drift.start_output_at(now_us);
        let Some(limit) = now_us.checked_sub(SILENCE_LAG_US) else {
            return;
        };
        loop {
            let rest = (BLOCK - self.fill) as u64;
            let end = self.drift.out_frames() + rest;
            match self.drift.stamp_us(end) {
                Some(t) if t <= limit => {}
                _ => return,
            }
            self.drift.produced(rest);
            for _ in 0..rest {
                self.push([0.0; 2]);
            }
        }
    }

    /// The drift correction's state, for tests and logs.
    pub fn drift(&self) -> &Drift {
        &self.drift
    }

    fn push(&mut self, s: [f32; 2]) {
        let ch = usize::from(self.format.channels);
        let at = self.fill * ch;
        self.block[at..at + ch].copy_from_slice(&s[..ch]);
        self.fill += 1;
        if self.fill == BLOCK {
            self.fill = 0;
            self.encode_block();
        }
    }

    fn encode_block(&mut self) {
        if let Err(e) = self.encoder.push(&self.block) {
            self.encode_failures += 1;
            if self.encode_failures == 1 {
                log::error!("audio: {e} (the frame is lost; further failures are counted)");
            }
            return;
        }
        let Some(first) = self.drift.stamp_us(0) else {
            return;
        };
        let stamp = match u64::try_from(self.encoder.packet_block()) {
            Ok(b) => self.drift.stamp_us(b * SAMPLES_PER_FRAME).unwrap_or(first),
            // The packet before the stream's first block (its overlap partner).
            Err(_) => first.saturating_sub(self.format.frame_time_us(0, 1)),
        };
        self.ring.push(stamp, self.encoder.packet());
    }
}

/// Says once per change which of the device's channels are mixed (a dead I2S slot left out).
fn log_live_channels(live: u32, channels: usize) {
    let dead: Vec<String> = (0..channels.min(16))
        .filter(|c| live & (1 << c) == 0)
        .map(|c| (c + 1).to_string())
        .collect();
    if dead.is_empty() {
        log::info!("audio: every channel of the device carries sound again; all are mixed");
    } else {
        log::info!(
            "audio: channel(s) {} of the device are silent (an empty I2S slot?); mixing the others",
            dead.join(", ")
        );
    }
}

/// The running microphone: its thread and its feed. Stops (and waits for) the thread when
/// dropped.
pub struct Mic {
    settings: MicSettings,
    feed: MicFeed,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mic {
    /// Starts the capture thread: it opens the device through `opener` (at once, then with
    /// backoff whenever it is lost) and fills a new ring.
    pub fn start(
        settings: MicSettings,
        opener: Opener,
        stats: Arc<AudioStats>,
    ) -> std::io::Result<Mic> {
        let ring = Ring::new(settings.format);
        let feed = MicFeed::new(Arc::clone(&ring));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (settings, stop) = (settings.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("audio".into())
                .spawn(move || capture(settings, opener, ring, stats, &stop))?
        };
        Ok(Mic {
            settings,
            feed,
            stop,
            thread: Some(thread),
        })
    }

    pub fn settings(&self) -> &MicSettings {
        &self.settings
    }

    pub fn feed(&self) -> MicFeed {
        self.feed.clone()
    }
}

impl Drop for Mic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The capture thread: open, read until the device is lost, silence and reopen; until `stop`.
fn capture(
    settings: MicSettings,
    mut opener: Opener,
    ring: Arc<Ring>,
    stats: Arc<AudioStats>,
    stop: &AtomicBool,
) {
    let mut pipeline = Pipeline::new(&settings, ring, Arc::clone(&stats));
    let label = &settings.label;
    let mut backoff = BACKOFF_FIRST;
    let mut next_attempt = Instant::now();
    let mut ever_opened = false;
    let mut failures = 0u32;
    stats.set_state(MicState::Opening);
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() < next_attempt {
            pipeline.silence_until(crate::clock::monotonic_us());
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let opened = opener()
            .map_err(|e| e.to_string())
            .and_then(|d| pipeline.device_opened(d.params()).map(|_| d));
        let mut device = match opened {
            Ok(d) => d,
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    log::warn!("audio: cannot open {label}: {e}; sending silence and trying again");
                } else {
                    log::debug!("audio: cannot open {label}: {e}");
                }
                next_attempt = Instant::now() + backoff;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                stats.set_state(if ever_opened {
                    MicState::Reopening
                } else {
                    MicState::Opening
                });
                continue;
            }
        };
        if ever_opened {
            stats.reopens.fetch_add(1, Ordering::Relaxed);
            if failures <= 1 {
                log::info!("audio: {label} is back");
            } else {
                log::debug!("audio: {label} is back");
            }
        } else {
            let p = device.params();
            log::info!(
                "audio: capturing {label}: {:?}, {} Hz, {} channel(s), {} frames per period",
                p.format,
                p.rate,
                p.channels,
                p.period_frames
            );
        }
        ever_opened = true;
        stats.set_state(MicState::Capturing);
        let (lost, delivered) = read_until_lost(&mut pipeline, device.as_mut(), &stats, stop);
        drop(device);
        pipeline.device_lost();
        if let Some(why) = lost {
            // Only a device that gave samples starts the schedule over: one that opens and
            // then stalls or fails at once (an I2S overlay without a clock) backs off like one
            // that does not open, and is logged once, not every half second.
            if delivered {
                failures = 0;
                backoff = BACKOFF_FIRST;
            }
            failures += 1;
            if failures == 1 {
                log::warn!("audio: {label}: {why}; sending silence and opening it again");
            } else {
                log::debug!("audio: {label}: {why}");
            }
            stats.set_state(MicState::Reopening);
            next_attempt = Instant::now() + backoff;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// Reads until the device is lost (why) or a stop is requested (`None`), and whether it
/// delivered any samples meanwhile.
fn read_until_lost(
    pipeline: &mut Pipeline,
    device: &mut dyn PcmInput,
    stats: &AudioStats,
    stop: &AtomicBool,
) -> (Option<String>, bool) {
    let mut last_overrun: Option<Instant> = None;
    let mut last_samples = Instant::now();
    let mut delivered = false;
    // A device whose period is longer than the read timeout would time out between periods
    // that come on time, and the silence filled meanwhile would take their place.
    let p = device.params();
    let period =
        Duration::from_micros(u64::from(p.period_frames) * 1_000_000 / u64::from(p.rate.max(1)));
    let timeout = READ_TIMEOUT.max(2 * period);
    while !stop.load(Ordering::Relaxed) {
        match pipeline.read_from(device, timeout) {
            Ok(0) | Err(PcmError::Timeout(_)) => {
                // Silence only up to a period before [`SILENCE_LAG_US`]: samples still on
                // their way take their own place.
                let now = crate::clock::monotonic_us();
                pipeline.silence_until(now.saturating_sub(period.as_micros() as u64));
                if last_samples.elapsed() >= STALL {
                    let why = format!("no samples for {} s", STALL.as_secs());
                    return (Some(why), delivered);
                }
            }
            Ok(_) => {
                last_samples = Instant::now();
                delivered = true;
            }
            Err(PcmError::Overrun) => {
                stats.overruns.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                if last_overrun.is_none_or(|t| now.duration_since(t) >= BURST_QUIET) {
                    log::warn!(
                        "audio: capture overrun, samples lost (filled with silence; overruns in this burst are counted, not logged)"
                    );
                }
                last_overrun = Some(now);
            }
            Err(e @ (PcmError::Gone(_) | PcmError::Io(_))) => {
                return (Some(e.to_string()), delivered);
            }
        }
    }
    (None, delivered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::pcm::SampleFormat;
    use crate::audio::AudioSource;

    /// A tone generator on a simulated clock: `period` frames per read, its rate `ppm` off.
    struct Tone {
        params: PcmParams,
        k: u64,
        t0: u64,
        ppm: f64,
        /// Peak sample value (0: digital silence, which the encoder does not run on).
        amplitude: f64,
    }

    impl PcmInput for Tone {
        fn params(&self) -> PcmParams {
            self.params
        }
        fn read(&mut self, buf: &mut [u8], _: Duration) -> Result<PcmRead, PcmError> {
            let n = (self.params.period_frames as usize).min(buf.len() / 4);
            for i in 0..n {
                let t = (self.k + i as u64) as f64 / f64::from(self.params.rate);
                let v = ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * self.amplitude) as i16;
                buf[4 * i..4 * i + 2].copy_from_slice(&v.to_le_bytes());
                buf[4 * i + 2..4 * i + 4].copy_from_slice(&v.to_le_bytes());
            }
            let rate = f64::from(self.params.rate);
            let time_us = self.t0 + (self.k as f64 * 1e6 / (rate * (1.0 + self.ppm * 1e-6))) as u64;
            self.k += n as u64;
            Ok(PcmRead { frames: n, time_us })
        }
    }

    fn tone(ppm: f64) -> Tone {
        Tone {
            params: PcmParams {
                format: SampleFormat::S16Le,
                rate: 48_000,
                channels: 2,
                period_frames: 480,
            },
            k: 0,
            t0: 10_000_000,
            ppm,
            amplitude: 8000.0,
        }
    }

    fn settings(channels: u8) -> MicSettings {
        MicSettings {
            format: AudioFormat::new(48_000, channels).unwrap(),
            bitrate_kbps: 64,
            label: "alsa:test".into(),
        }
    }

    /// A pipeline for `channels` at 48 kHz and a reader of its ring from the start.
    fn pipeline(channels: u8) -> (Pipeline, Reader) {
        let s = settings(channels);
        let ring = Ring::new(s.format);
        let mut reader = ring.reader();
        reader.start(0);
        (Pipeline::new(&s, ring, Arc::default()), reader)
    }

    #[test]
    fn a_minute_of_tone_becomes_a_minute_of_frames_stamped_from_the_first_sample() {
        let (mut p, mut reader) = pipeline(1);
        let mut dev = tone(0.0);
        p.device_opened(dev.params()).unwrap();
        let mut stamps = Vec::new();
        for _ in 0..6_000 {
            p.read_from(&mut dev, READ_TIMEOUT).unwrap();
            while let Some(f) = reader.next_until(u64::MAX) {
                assert!(!f.data.is_empty());
                stamps.push(f.timestamp_us);
            }
        }
        // 60 s = 2812.5 frames: 2812 blocks pushed, a packet each (the first is the one before
        // block 0; the last block's own packet waits for the next block).
        assert_eq!(stamps.len(), 2_812);
        // The packet before the first block, then block 0 at the first sample's time.
        assert_eq!(stamps[1], 10_000_000);
        assert_eq!(stamps[0], 10_000_000 - 21_333);
        assert_eq!(stamps[1000], 10_000_000 + 999 * 1024 * 1_000_000 / 48_000);
    }

    #[test]
    fn a_device_at_another_rate_is_resampled_and_held_on_the_clock() {
        for (rate, ppm) in [(16_000, 100.0), (44_100, -100.0), (32_000, 0.0)] {
            let (mut p, mut reader) = pipeline(1);
            // Silent, so that the (unoptimised) encoder does not run: the timing is the point.
            let mut dev = Tone {
                amplitude: 0.0,
                ..tone(ppm)
            };
            dev.params.rate = rate;
            dev.params.period_frames = rate / 100;
            p.device_opened(dev.params()).unwrap();
            let mut stamps = Vec::new();
            // 100 s of reads of 10 ms (the drift is measured after 60 s).
            for _ in 0..10_000 {
                p.read_from(&mut dev, READ_TIMEOUT).unwrap();
                while let Some(f) = reader.next_until(u64::MAX) {
                    stamps.push(f.timestamp_us);
                }
            }
            let offset_ms = p.drift().offset_us() / 1e3;
            let drift = p.drift().drift_ppm();
            assert!(
                offset_ms.abs() < 2.0,
                "{rate} Hz {ppm:+} ppm: offset {offset_ms} ms"
            );
            assert!(
                (drift - ppm).abs() < 10.0,
                "{rate} Hz {ppm:+} ppm: drift {drift}"
            );
            // 100 s at 48 kHz is 4687.5 frames; the encoder holds the last few back.
            assert!(
                stamps.len() > 4_650 && stamps.len() <= 4_688,
                "{rate} Hz: {}",
                stamps.len()
            );
            assert!(stamps.windows(2).all(|w| w[1] > w[0]));
            // The first block lies where the first sample was captured, less the filter's
            // half length, which the first output waits for but does not move.
            assert!(
                stamps[1].abs_diff(10_000_000) <= 1,
                "{rate} Hz: {}",
                stamps[1]
            );
        }
    }

    #[test]
    fn a_device_outside_the_rates_campush_takes_is_refused_with_the_reason() {
        let mut p = Pipeline::new(&settings(1), Ring::new(settings(1).format), Arc::default());
        let mut params = tone(0.0).params;
        params.rate = 384_000;
        let e = p.device_opened(params).unwrap_err();
        assert!(
            e.contains("384000 Hz") && e.contains("8000 to 192000"),
            "{e}"
        );
    }

    /// Opens at once, then fails its first read (an I2S overlay without a clock).
    struct Broken;

    impl PcmInput for Broken {
        fn params(&self) -> PcmParams {
            tone(0.0).params
        }
        fn read(&mut self, _: &mut [u8], _: Duration) -> Result<PcmRead, PcmError> {
            Err(PcmError::Io(std::io::Error::other("input/output error")))
        }
    }

    #[test]
    fn a_device_that_opens_but_gives_nothing_backs_off_like_one_that_does_not_open() {
        let opens = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = Arc::clone(&opens);
        let opener: Opener = Box::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(Broken) as Box<dyn PcmInput>)
        });
        let stats = Arc::new(AudioStats::default());
        let mic = Mic::start(settings(2), opener, Arc::clone(&stats)).unwrap();
        std::thread::sleep(Duration::from_millis(3_200));
        drop(mic);
        // Backing off: at 0, 0.5, 1.5 s (then 3.5 s); starting over each time would have
        // opened it every half second, 7 times.
        let n = opens.load(Ordering::Relaxed);
        assert!((3..=4).contains(&n), "{n} opens in 3.2 s");
        assert_eq!(stats.state(), MicState::Reopening);
    }

    /// A device with 200 ms periods in real time: a read gets nothing before its period is
    /// complete (then `Timeout`, as ALSA's would), and it asks to stop after `reads` periods.
    struct LongPeriods {
        t0: u64,
        k: u64,
        reads: u32,
        stop: Arc<AtomicBool>,
    }

    impl PcmInput for LongPeriods {
        fn params(&self) -> PcmParams {
            PcmParams {
                period_frames: 9_600,
                ..tone(0.0).params
            }
        }
        fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<PcmRead, PcmError> {
            let ready = self.t0 + (self.k + 9_600) * 1_000_000 / 48_000;
            let now = crate::clock::monotonic_us();
            if ready > now + timeout.as_micros() as u64 {
                std::thread::sleep(timeout);
                return Err(PcmError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_micros(ready.saturating_sub(now)));
            let n = 9_600.min(buf.len() / 4);
            buf[..4 * n].fill(0);
            let time_us = self.t0 + self.k * 1_000_000 / 48_000;
            self.k += n as u64;
            self.reads -= 1;
            if self.reads == 0 {
                self.stop.store(true, Ordering::Relaxed);
            }
            Ok(PcmRead { frames: n, time_us })
        }
    }

    #[test]
    fn a_device_with_periods_longer_than_the_read_timeout_is_read_without_gaps() {
        let s = settings(2);
        let ring = Ring::new(s.format);
        let stats = Arc::new(AudioStats::default());
        let mut p = Pipeline::new(&s, Arc::clone(&ring), Arc::clone(&stats));
        let stop = Arc::new(AtomicBool::new(false));
        let mut dev = LongPeriods {
            t0: crate::clock::monotonic_us(),
            k: 0,
            reads: 6,
            stop: Arc::clone(&stop),
        };
        p.device_opened(dev.params()).unwrap();
        let (lost, delivered) = read_until_lost(&mut p, &mut dev, &stats, &stop);
        assert_eq!(lost, None);
        assert!(delivered);
        // No silence took the place of samples that were on their way, so no step either.
        assert_eq!(p.drift().corrections().2, 0, "steps");
        assert_eq!(p.drift().out_frames(), 6 * 9_600);
    }

    #[test]
    fn without_a_device_silence_is_produced_on_the_clock_behind_real_time() {
        let (mut p, mut reader) = pipeline(2);
        p.silence_until(1_000_000);
        p.silence_until(3_000_000);
        let frames: Vec<_> = std::iter::from_fn(|| {
            reader
                .next_until(u64::MAX)
                .map(|f| (f.timestamp_us, f.data == crate::audio::SILENT_STEREO))
        })
        .collect();
        assert!(frames.iter().all(|&(_, silent)| silent));
        // 2 s less the lag, less the block still in the encoder, from 1 s on.
        let last = frames.last().unwrap().0;
        assert!(
            last < 3_000_000 - SILENCE_LAG_US && last > 2_500_000,
            "{last}"
        );
        assert!(frames.windows(2).all(|w| w[1].0 - w[0].0 < 21_400));
    }

    #[test]
    fn a_device_that_comes_back_continues_the_track_where_the_silence_ends() {
        let (mut p, mut reader) = pipeline(2);
        let mut dev = tone(0.0);
        p.device_opened(dev.params()).unwrap();
        for _ in 0..100 {
            p.read_from(&mut dev, READ_TIMEOUT).unwrap();
        }
        // Pulled out at 11 s: silence until 13 s, then back with samples from 13.2 s on.
        p.device_lost();
        p.silence_until(13_000_000);
        let mut back = tone(0.0);
        back.t0 = 13_200_000;
        p.device_opened(back.params()).unwrap();
        for _ in 0..200 {
            p.read_from(&mut back, READ_TIMEOUT).unwrap();
        }
        let mut last = 0;
        let mut n = 0;
        while let Some(f) = reader.next_until(u64::MAX) {
            assert!(f.timestamp_us > last);
            // One track without holes: consecutive frames 1024 samples apart.
            if last > 0 {
                assert!(
                    f.timestamp_us - last <= 21_334,
                    "{last} -> {}",
                    f.timestamp_us
                );
            }
            last = f.timestamp_us;
            n += 1;
        }
        assert!(last > 14_000_000, "{last}");
        assert!(n > 180);
        assert!(
            p.drift().offset_us().abs() < 1_000.0,
            "{}",
            p.drift().offset_us()
        );
    }
}
