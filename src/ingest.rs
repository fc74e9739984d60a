//! The ingest stage: the loop on the source thread that turns access units into shared FLV
//! frames and hands them to every destination's queue.
//!
//! Owns: the source, the SPS/PPS cache (`h264::ParamSets`), the writing of the stream headers
//! every publisher sends after (re)connecting ([`SharedHeaders`], kept in `queue`), and the FLV
//! video tag under construction ([`flv::VideoTag`]).
//!
//! Per access unit, with no allocation in the steady state:
//! 1. take a pool slot, let the source fill it with Annex B bytes (after
//!    [`crate::pool::FRONT_ROOM`] free bytes);
//! 2. walk its NAL units once (where they begin is searched for, unless the source's splitter
//!    found it already: [`Source::nal_starts`]): each one is observed (changed SPS/PPS are cached, the first
//!    slice's picture order is read) and rewritten length-prefixed in the slot itself
//!    (`h264::avcc::InPlace`: a 4-byte start code becomes the length, nothing is copied); from
//!    a unit whose 3-byte start code leaves no room on, into the FLV video tag
//!    ([`flv::VideoTag`]) instead; when SPS/PPS changed, rebuild the
//!    [`Headers`](crate::queue::Headers) (AVC sequence header + `onMetaData`) under one short
//!    lock;
//! 3. a unit without a picture (the legacy Pi camera sends SPS/PPS alone) or before any SPS/PPS
//!    is counted and skipped;
//! 4. finish the FLV tag body: the header (keyframe, composition time) into the front room, or
//!    the tag finished and its buffer swapped with the slot's (the tag keeps the old capacity
//!    for the next frame);
//! 5. freeze the slot and push a reference to every destination queue.
//!
//! 6. with the adaptive bitrate on (`[source] adaptive_bitrate`, a source whose encoder takes a
//!    new bitrate while streaming: [`Source::adjustable_bitrate`]), read each queue's backlog
//!    behind the frame just pushed ([`FrameQueue::backlog_us`](crate::queue::FrameQueue::backlog_us):
//!    queued and in flight, `None` for a destination that is not streaming), hand the slowest
//!    streaming one to the controller (`crate::bitrate`), and apply what it decides to the
//!    source ([`Source::set_bitrate`]), logged once per change, shown in the status
//!    (`Counters::encoder_kbps`). The controller attaches when the source first has such an
//!    encoder, not only at start: a V4L2 device missing at start, or `auto` before it picks,
//!    has none yet (`Adaptation`); it detaches when the source no longer has one (`auto`
//!    picked another camera) and attaches afresh, at that encoder's bitrate, when one comes.
//!
//! The source never waits for the network: queues drop whole GOPs instead (see `queue`). When the
//! pool itself runs dry (only if every slot is held), the frame is read into a spare slot and
//! dropped, and nothing is pushed until the next keyframe.

use std::sync::atomic::Ordering;

use crate::bitrate::{Controller, Tuning};
use crate::flv;
use crate::h264::{avcc, AuInfo, H264Error, ParamSets, Reorder, SpsInfo};
use crate::platform::{self, KeyframeWatch, Level, Platforms};
use crate::pool::{FrameMeta, FrameMut, Pool, FRONT_ROOM};

// The room sources leave in front of a frame is where its FLV tag header goes.
const _: () = assert!(FRONT_ROOM == flv::VIDEO_HEADER_LEN);
use crate::queue::{Outputs, Pushed, SharedHeaders};
use crate::source::{Source, SourceError};
use crate::status::{Counters, SharedStatus, Status};
use crate::stop::Stop;

/// Pictures without SPS/PPS after which the input is declared unusable.
pub const MAX_PICTURES_WITHOUT_PARAMETERS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the input has pictures but no usable SPS/PPS (after {0} pictures); is it an H.264 Annex B stream with parameter sets (rpicam-vid: --inline)?")]
    NoParameterSets(u64),
}

/// Settings of the ingest stage that come from the configuration.
#[derive(Debug, Clone, Default)]
pub struct IngestSettings {
    /// Frame rate to announce when the SPS has no timing info.
    pub fps: Option<f64>,
    /// Video bit rate to announce in `onMetaData`, kbit/s.
    pub video_kbps: Option<f64>,
    /// The audio track the publishers send, announced in `onMetaData`.
    pub audio: Option<flv::AudioMetadata>,
    /// The destinations' platforms, whose rules the running stream is held to.
    pub platforms: Platforms,
    /// Measure the keyframe spacing: the source's encoder is not one campush configures, so
    /// the configuration could not check it.
    pub watch_keyframes: bool,
    /// Adapt the encoder's bitrate to the slowest destination (`None`: off, or the source
    /// cannot).
    pub adaptive_bitrate: Option<AdaptiveBitrate>,
}

/// `[source] adaptive_bitrate = true`, checked: the floor, and the controller's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveBitrate {
    /// `[source] bitrate_min_kbps`: the bitrate never goes below this.
    pub floor_kbps: u32,
    pub tuning: Tuning,
}

/// The slowest streaming destination's backlog behind a frame captured at `newest_us`, in µs;
/// `None` when no destination streams (one that is down says nothing about its link, and must
/// not pull the bitrate down). One read lock and one queue lock per destination, no allocation.
pub fn slowest_backlog_us(outputs: &Outputs, newest_us: u64) -> Option<u64> {
    let mut worst = None;
    outputs.for_each(|q| worst = worst.max(q.backlog_us(newest_us)));
    worst
}

/// The adaptive bitrate on the source thread: off, waiting for the source to have an encoder
/// that takes a bitrate while streaming, or running. Looked at once per frame pushed: one call
/// to [`Source::adjustable_bitrate`] (a field read), no allocation.
enum Adaptation {
    /// Not configured, or ended: the encoder refused a bitrate.
    Off,
    /// Configured, and the source has no adjustable encoder (yet).
    Waiting(AdaptiveBitrate),
    Running(AdaptiveBitrate, Adaptive),
}

impl Adaptation {
    /// As configured, attached at once when the source already has an adjustable encoder.
    fn new(settings: Option<AdaptiveBitrate>, source: &dyn Source, status: &SharedStatus) -> Self {
        let Some(a) = settings else {
            return Adaptation::Off;
        };
        let mut adaptation = Adaptation::Waiting(a);
        if !adaptation.attach(source, status) {
            log::info!(
                "adaptive bitrate: the source has no encoder that takes a bitrate while                  streaming (yet); it starts when one appears"
            );
        }
        adaptation
    }

    /// Waiting, and the source has an adjustable encoder now: starts a controller at its
    /// bitrate (said once). True when running afterwards.
    fn attach(&mut self, source: &dyn Source, status: &SharedStatus) -> bool {
        let Adaptation::Waiting(a) = *self else {
            return matches!(self, Adaptation::Running(..));
        };
        let Some(bps) = source.adjustable_bitrate() else {
            return false;
        };
        let ceiling = (bps / 1000).max(1);
        log::info!(
            "adaptive bitrate: {} to {ceiling} kbit/s, following the slowest destination",
            a.floor_kbps.min(ceiling)
        );
        status
            .counters
            .encoder_kbps
            .store(u64::from(ceiling), Ordering::Relaxed);
        let controller = Controller::new(ceiling, a.floor_kbps, a.tuning);
        *self = Adaptation::Running(a, Adaptive { controller });
        true
    }

    /// After a frame captured at `now_us` was pushed: attaches, detaches, or lets the
    /// controller observe the destinations and apply its decision.
    fn after_frame(
        &mut self,
        outputs: &Outputs,
        now_us: u64,
        source: &mut dyn Source,
        status: &SharedStatus,
    ) {
        match self {
            Adaptation::Off => {}
            Adaptation::Waiting(_) => {
                self.attach(source, status);
            }
            Adaptation::Running(a, _) if source.adjustable_bitrate().is_none() => {
                // The encoder went with the camera (`auto` picked another): wait for the next.
                log::info!("adaptive bitrate: the new source's encoder takes no bitrate; paused");
                status.counters.encoder_kbps.store(0, Ordering::Relaxed);
                *self = Adaptation::Waiting(*a);
            }
            Adaptation::Running(_, adaptive) => {
                if !adaptive.step(outputs, now_us, source, status) {
                    *self = Adaptation::Off;
                }
            }
        }
    }
}

/// The adaptive bitrate as the source thread runs it: the controller, fed once per frame.
struct Adaptive {
    controller: Controller,
}

impl Adaptive {
    /// Observes the destinations after a frame captured at `now_us` was pushed; a change is
    /// applied to `source`, logged and shown once. A source that refuses a change ends the
    /// adaptation (said once): `false`.
    fn step(
        &mut self,
        outputs: &Outputs,
        now_us: u64,
        source: &mut dyn Source,
        status: &SharedStatus,
    ) -> bool {
        let worst = slowest_backlog_us(outputs, now_us);
        let Some(kbps) = self.controller.observe(now_us, [worst]) else {
            return true;
        };
        if !source.set_bitrate(kbps.saturating_mul(1000)) {
            log::warn!("the encoder refused a bitrate of {kbps} kbit/s; adaptive bitrate is off");
            status.counters.encoder_kbps.store(0, Ordering::Relaxed);
            return false;
        }
        log::info!(
            "adaptive bitrate: video at {kbps} kbit/s (slowest destination {} ms behind)",
            worst.unwrap_or(0) / 1000
        );
        status
            .counters
            .encoder_kbps
            .store(u64::from(kbps), Ordering::Relaxed);
        true
    }
}

pub struct Ingest {
    source: Box<dyn Source>,
    pool: Pool,
    spare: Option<FrameMut>,
    outputs: Outputs,
    headers: SharedHeaders,
    params: ParamSets,
    order: Reorder,
    /// The video tag a frame is finished in when its start codes leave no room to convert it
    /// in place (3-byte start codes); `in_tag`: the current frame is there.
    tag: flv::VideoTag,
    in_tag: bool,
    /// Where the current unit's NAL units begin, when the source found them
    /// ([`Source::nal_starts`]): the conversion then does not search the bytes again.
    starts: heapless::Vec<u32, { crate::h264::MAX_UNIT_STARTS }>,
    starts_known: bool,
    /// The SPS facts last logged, so a change is logged once.
    logged_info: Option<SpsInfo>,
    keyframes: KeyframeWatch,
    settings: IngestSettings,
    status: SharedStatus,
    need_key: bool,
    /// This pipeline has reported `Streaming` (on its first unit).
    delivering: bool,
    pictures_without_params: u64,
    bad_units: u64,
    adaptation: Adaptation,
}

impl Ingest {
    pub fn new(
        source: Box<dyn Source>,
        pool: Pool,
        outputs: Outputs,
        headers: SharedHeaders,
        settings: IngestSettings,
        status: SharedStatus,
    ) -> Self {
        let tag = flv::VideoTag::with_capacity(source.frame_capacity_hint());
        let spare = pool.acquire();
        status.set_source(Status::WaitingForSource);
        let adaptation = Adaptation::new(settings.adaptive_bitrate, source.as_ref(), &status);
        Ingest {
            source,
            pool,
            spare,
            outputs,
            headers,
            params: ParamSets::new(),
            order: Reorder::new(),
            tag,
            in_tag: false,
            starts: heapless::Vec::new(),
            starts_known: false,
            logged_info: None,
            keyframes: KeyframeWatch::new(settings.platforms),
            settings,
            status,
            need_key: false,
            delivering: false,
            pictures_without_params: 0,
            bad_units: 0,
            adaptation,
        }
    }

    /// Runs until the source ends, fails, or `stop` is requested (the source, which holds the
    /// same request, then ends its waits and returns); closes every queue on the way out.
    pub fn run(mut self, stop: &Stop) -> Result<(), IngestError> {
        let result = self.run_inner(stop);
        self.outputs.close_all();
        result
    }

    fn run_inner(&mut self, stop: &Stop) -> Result<(), IngestError> {
        while !stop.requested() {
            if !self.step()? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Processes one access unit. `Ok(false)` at the end of the input.
    pub fn step(&mut self) -> Result<bool, IngestError> {
        let mut keyframe_wanted = false;
        self.outputs
            .for_each(|q| keyframe_wanted |= q.take_keyframe_request());
        if keyframe_wanted {
            self.source.request_keyframe();
        }
        let (mut slot, pooled) = match self.pool.acquire() {
            Some(slot) => (slot, true),
            None => match self.spare.take() {
                Some(spare) => (spare, false),
                None => unreachable_spare(),
            },
        };
        let captured = self.source.next_access_unit(&mut slot);
        let capture = match captured {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.give_back(slot, pooled);
                // An input that ended before it could be sent at all is not a success.
                if !self.params.is_ready() && self.pictures_without_params > 0 {
                    return Err(IngestError::NoParameterSets(self.pictures_without_params));
                }
                return Ok(false);
            }
            Err(e) => {
                self.give_back(slot, pooled);
                return Err(e.into());
            }
        };
        // This pipeline's first unit (the counter is the process's: a reload to another source
        // starts a new pipeline with the count far from zero).
        if !self.delivering {
            self.delivering = true;
            self.status.set_source(Status::Streaming);
        }
        Counters::add(&self.status.counters.frames_in, 1);
        self.starts.clear();
        self.starts_known = self
            .source
            .nal_starts()
            .is_some_and(|s| self.starts.extend_from_slice(s).is_ok());

        let observed = self.observe_and_convert(&mut slot);
        let info = match observed {
            Ok(info) => info,
            Err(e) => {
                self.skip_bad_unit(&e);
                self.give_back(slot, pooled);
                return Ok(true);
            }
        };
        if info.params_changed && self.params.is_ready() {
            self.rebuild_headers();
        }
        if !info.has_picture {
            self.give_back(slot, pooled);
            return Ok(true);
        }
        if !self.params.is_ready() {
            self.pictures_without_params += 1;
            Counters::add(&self.status.counters.skipped_units, 1);
            if self.pictures_without_params == 1 {
                log::warn!("waiting for SPS/PPS: pictures before them are skipped");
            }
            self.give_back(slot, pooled);
            if self.pictures_without_params >= MAX_PICTURES_WITHOUT_PARAMETERS {
                return Err(IngestError::NoParameterSets(self.pictures_without_params));
            }
            return Ok(true);
        }
        // Every picture moves the display order on, including those dropped below.
        let composition_ms = self.composition_ms(&info);
        if !pooled || (self.need_key && !info.keyframe) {
            // Every slot is held, or we are waiting to resynchronise after such a drop.
            if !pooled && !self.need_key {
                log::warn!(
                    "all {} frame buffers are in use; dropping frames until the next keyframe",
                    self.pool.size()
                );
            }
            self.need_key = true;
            self.keyframes.restart();
            self.source.request_keyframe();
            Counters::add(&self.status.counters.frames_dropped, 1);
            self.give_back(slot, pooled);
            return Ok(true);
        }
        self.need_key = false;
        if self.settings.watch_keyframes {
            self.watch_keyframes(capture.timestamp_us, info.keyframe);
        }

        self.rewrite_as_flv(&mut slot, info.keyframe, composition_ms);
        let frame = slot.freeze(FrameMeta {
            timestamp_us: capture.timestamp_us,
            keyframe: info.keyframe,
            params_gen: self.params.generation(),
            len: 0,
        });
        let mut dropped = 0;
        self.outputs.for_each(|q| match q.push(frame.clone()) {
            Pushed::Queued { dropped: n } => dropped += n as u64,
            Pushed::Refused => dropped += 1,
        });
        if dropped > 0 {
            Counters::add(&self.status.counters.frames_dropped, dropped);
        }
        self.adaptation.after_frame(
            &self.outputs,
            capture.timestamp_us,
            self.source.as_mut(),
            &self.status,
        );
        Ok(true)
    }

    /// Observes the slot's NAL units and rewrites them as length-prefixed units: in the slot
    /// itself while the start codes leave room for the lengths (no copy: the common case), else,
    /// from the first unit that does not fit on, into the video tag (one copy). One pass over the
    /// bytes, no allocation.
    fn observe_and_convert(&mut self, slot: &mut FrameMut) -> Result<AuInfo, H264Error> {
        let mut bytes = slot.bytes();
        let mut info = AuInfo::default();
        let mut conv = if self.starts_known {
            avcc::InPlace::with_starts(&self.starts, FRONT_ROOM)
        } else {
            avcc::InPlace::new(&bytes, FRONT_ROOM)
        };
        self.in_tag = false;
        while let Some(unit) = conv.next_unit(&bytes) {
            let nal = bytes.get(unit.clone()).unwrap_or_default();
            self.params.observe_unit(nal, &mut info)?;
            if self.in_tag {
                self.tag.push_nal_unit(nal);
            } else if !conv.place(&mut bytes, unit.clone()) {
                self.in_tag = true;
                self.tag.begin(bytes.len());
                let placed = bytes.get(FRONT_ROOM..conv.written()).unwrap_or_default();
                self.tag.push_converted(placed);
                self.tag.push_nal_unit(bytes.get(unit).unwrap_or_default());
            }
        }
        if !self.in_tag {
            bytes.truncate(conv.written());
        }
        Ok(info)
    }

    /// Writes the FLV tag header in front of the units converted in place, or finishes the tag
    /// and swaps it into the slot.
    fn rewrite_as_flv(&mut self, slot: &mut FrameMut, keyframe: bool, composition_ms: i32) {
        if self.in_tag {
            self.tag.finish(keyframe, composition_ms);
            self.tag.swap(&mut slot.bytes());
        } else if let Some(room) = slot.bytes().get_mut(..FRONT_ROOM) {
            room.copy_from_slice(&flv::video_header(
                keyframe,
                flv::AvcPacketType::Nalu,
                composition_ms,
            ));
        }
    }

    /// The nominal frame rate: the SPS's, else the configured one, else 30 fps.
    fn nominal_fps(&self) -> f64 {
        self.params
            .info()
            .and_then(|sps| sps.fps)
            .or(self.settings.fps)
            .filter(|f| *f > 0.0)
            .unwrap_or(30.0)
    }

    /// Holds the stream's keyframe spacing to the platforms' rules; says so once.
    fn watch_keyframes(&mut self, timestamp_us: u64, keyframe: bool) {
        if !keyframe {
            return;
        }
        let fps = self.nominal_fps();
        if let Some(finding) = self.keyframes.observe(timestamp_us, true, fps) {
            log::warn!("the stream has {finding}");
        }
    }

    /// How long after its decode time the picture is shown (0 without B-frames), in ms of the
    /// nominal frame duration: the SPS's rate, else the configured one, else 30 fps.
    fn composition_ms(&mut self, info: &AuInfo) -> i32 {
        let Some(sps) = self.params.info() else {
            return 0;
        };
        let frames = self.order.next(info.slice.as_ref(), &sps.poc);
        if frames == 0 {
            return 0;
        }
        (f64::from(frames) * 1000.0 / self.nominal_fps()).round() as i32
    }

    fn give_back(&mut self, slot: FrameMut, pooled: bool) {
        if pooled {
            drop(slot);
        } else {
            self.spare = Some(slot);
        }
    }

    fn skip_bad_unit(&mut self, e: &H264Error) {
        self.bad_units += 1;
        Counters::add(&self.status.counters.skipped_units, 1);
        // Logged with exponential spacing so a broken stream cannot flood the log.
        if self.bad_units.is_power_of_two() {
            log::warn!(
                "skipped a broken access unit ({} so far): {e}",
                self.bad_units
            );
        }
    }

    fn rebuild_headers(&mut self) {
        let mut h = self.headers.lock();
        h.sequence_header.clear();
        let mut record = Vec::new();
        if let Err(e) = self.params.write_decoder_config(&mut record) {
            log::warn!("cannot build the AVC decoder configuration: {e}");
            return;
        }
        flv::write_sequence_header(&mut h.sequence_header, &record);
        let info = self.params.info().cloned();
        h.metadata.clear();
        if let Some(i) = &info {
            (h.width, h.height) = (i.width, i.height);
            flv::write_metadata(
                &mut h.metadata,
                &flv::Metadata {
                    width: i.width,
                    height: i.height,
                    framerate: i.fps.or(self.settings.fps),
                    video_kbps: self.settings.video_kbps,
                    encoder: concat!("campush/", env!("CARGO_PKG_VERSION")),
                    audio: self.settings.audio,
                },
            );
            if self.logged_info.as_ref() != Some(i) {
                log::info!(
                    "H.264 {}x{} profile {} level {}.{}{}",
                    i.width,
                    i.height,
                    i.profile_idc,
                    i.level_idc / 10,
                    i.level_idc % 10,
                    i.fps.map(|f| format!(", {f} fps")).unwrap_or_default()
                );
                self.check_level(i);
            }
        }
        self.logged_info = info;
        h.generation = self.params.generation();
    }

    /// A stream whose SPS declares a level too low for its own picture size and rate: players
    /// and transcoders that size their buffers by the level may refuse it. Said once per SPS.
    fn check_level(&self, sps: &SpsInfo) {
        let plan = platform::Plan {
            width: Some(sps.width),
            height: Some(sps.height),
            fps: sps.fps.or(self.settings.fps),
            level: Level::of_idc(sps.level_idc),
            audio: true,
            encoder: platform::Encoder::Carried,
            ..platform::Plan::default()
        };
        for finding in platform::check(&plan, &[]) {
            log::warn!("the stream's SPS: {finding}");
        }
    }
}

#[cold]
fn unreachable_spare() -> ! {
    // The spare slot is only ever out of `self.spare` for the duration of one `step`.
    panic!("frame pool: the spare slot is missing")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::queue::{FrameQueue, Limits, Policy};

    fn queue() -> Arc<FrameQueue> {
        Arc::new(FrameQueue::new(Limits::default(), Policy::DropGops))
    }

    #[test]
    fn the_slowest_streaming_destination_decides_and_one_that_is_down_is_ignored() {
        let (fast, slow, down) = (queue(), queue(), queue());
        let outputs = Outputs::new(vec![fast.clone(), slow.clone(), down.clone()]);
        assert_eq!(
            slowest_backlog_us(&outputs, 10_000_000),
            None,
            "none streams"
        );
        fast.set_streaming(true);
        fast.set_oldest_in_flight(Some(9_900_000));
        slow.set_streaming(true);
        slow.set_oldest_in_flight(Some(9_000_000));
        // Down, with a stale backlog of 9 s: it must not pull the bitrate down.
        down.set_oldest_in_flight(Some(1_000_000));
        assert_eq!(slowest_backlog_us(&outputs, 10_000_000), Some(1_000_000));
        slow.set_streaming(false);
        assert_eq!(slowest_backlog_us(&outputs, 10_000_000), Some(100_000));
    }

    /// A source that records the bitrates it is given.
    struct Encoder {
        set: Vec<u32>,
        accept: bool,
        /// The encoder's bitrate (bit/s) when it takes one while streaming.
        adjustable: Option<u32>,
    }

    impl Source for Encoder {
        fn next_access_unit(
            &mut self,
            _: &mut crate::pool::FrameMut,
        ) -> Result<Option<crate::source::Capture>, SourceError> {
            Ok(None)
        }
        fn adjustable_bitrate(&self) -> Option<u32> {
            self.adjustable
        }
        fn set_bitrate(&mut self, bps: u32) -> bool {
            self.set.push(bps);
            self.accept
        }
    }

    impl Encoder {
        fn new(adjustable: Option<u32>, accept: bool) -> Self {
            Encoder {
                set: Vec::new(),
                accept,
                adjustable,
            }
        }
    }

    fn adaptive() -> Adaptive {
        Adaptive {
            controller: Controller::new(4000, 1000, Tuning::default()),
        }
    }

    /// One destination's queue, streaming, and the outputs that hold it.
    fn streaming() -> (Arc<FrameQueue>, Outputs) {
        let q = queue();
        q.set_streaming(true);
        (q.clone(), Outputs::new(vec![q]))
    }

    /// The capture time of frame `i` at 30 fps from 10 s, with the server 0.8 s behind it.
    fn behind(q: &FrameQueue, i: u64) -> u64 {
        let now = 10_000_000 + i * 33_333;
        q.set_oldest_in_flight(Some(now - 800_000));
        now
    }

    #[test]
    fn a_lasting_backlog_lowers_the_encoders_bitrate_once_per_step_not_per_frame() {
        let (q, outputs) = streaming();
        let status = SharedStatus::new();
        let mut encoder = Encoder::new(Some(4_000_000), true);
        let mut a = adaptive();
        // 3 s at 30 fps with the server 0.8 s behind: steps at 1 s and 2 s (and 3 s, the last
        // frame is at 2.966 s: not yet).
        for i in 0..90u64 {
            let now = behind(&q, i);
            assert!(a.step(&outputs, now, &mut encoder, &status));
        }
        assert_eq!(encoder.set, vec![3_000_000, 2_250_000]);
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 2250);
    }

    #[test]
    fn nothing_changes_while_no_destination_streams() {
        let q = queue();
        let outputs = Outputs::new(vec![q.clone()]);
        q.set_oldest_in_flight(Some(0)); // a stale backlog, not streaming
        let status = SharedStatus::new();
        let mut encoder = Encoder::new(Some(4_000_000), true);
        let mut a = adaptive();
        for i in 0..300u64 {
            assert!(a.step(&outputs, 10_000_000 + i * 33_333, &mut encoder, &status));
        }
        assert!(encoder.set.is_empty());
    }

    #[test]
    fn an_encoder_that_refuses_a_bitrate_ends_the_adaptation() {
        let (q, outputs) = streaming();
        let status = SharedStatus::new();
        let mut encoder = Encoder::new(Some(4_000_000), false);
        let mut a = adaptive();
        let mut running = true;
        for i in 0..60u64 {
            let now = behind(&q, i);
            running = a.step(&outputs, now, &mut encoder, &status);
            if !running {
                break;
            }
        }
        assert!(!running);
        assert_eq!(encoder.set.len(), 1);
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 0);
    }

    fn configured() -> Option<AdaptiveBitrate> {
        Some(AdaptiveBitrate {
            floor_kbps: 1000,
            tuning: Tuning::default(),
        })
    }

    #[test]
    fn a_source_that_finds_its_encoder_after_start_gets_the_adaptive_bitrate_then() {
        let (q, outputs) = streaming();
        let status = SharedStatus::new();
        // A camera missing at start: no encoder to adjust yet.
        let mut encoder = Encoder::new(None, true);
        let mut adaptation = Adaptation::new(configured(), &encoder, &status);
        assert!(matches!(adaptation, Adaptation::Waiting(_)));
        for i in 0..60 {
            adaptation.after_frame(&outputs, behind(&q, i), &mut encoder, &status);
        }
        assert!(encoder.set.is_empty(), "nothing to adjust yet");
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 0);
        // The camera appears, its encoder at 3 Mbit/s: the controller starts from there, and
        // a lasting backlog steps it down.
        encoder.adjustable = Some(3_000_000);
        for i in 60..120 {
            adaptation.after_frame(&outputs, behind(&q, i), &mut encoder, &status);
        }
        assert!(matches!(adaptation, Adaptation::Running(..)));
        assert_eq!(encoder.set, vec![2_250_000]);
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 2250);
    }

    #[test]
    fn a_source_whose_encoder_goes_away_pauses_the_adaptive_bitrate_until_another_comes() {
        let (q, outputs) = streaming();
        let status = SharedStatus::new();
        let mut encoder = Encoder::new(Some(4_000_000), true);
        let mut adaptation = Adaptation::new(configured(), &encoder, &status);
        assert!(matches!(adaptation, Adaptation::Running(..)));
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 4000);
        // `auto` picked a camera whose encoder takes no bitrate.
        encoder.adjustable = None;
        for i in 0..60 {
            adaptation.after_frame(&outputs, behind(&q, i), &mut encoder, &status);
        }
        assert!(matches!(adaptation, Adaptation::Waiting(_)));
        assert!(encoder.set.is_empty());
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 0);
        // Another adjustable encoder: a fresh controller at its bitrate.
        encoder.adjustable = Some(2_000_000);
        adaptation.after_frame(&outputs, 20_000_000, &mut encoder, &status);
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 2000);
    }

    #[test]
    fn without_the_setting_an_adjustable_encoder_is_left_alone() {
        let status = SharedStatus::new();
        let encoder = Encoder::new(Some(4_000_000), true);
        let adaptation = Adaptation::new(None, &encoder, &status);
        assert!(matches!(adaptation, Adaptation::Off));
        assert_eq!(Counters::get(&status.counters.encoder_kbps), 0);
    }
}
