//! The bounded queue between the source thread and one destination's publisher.
//!
//! Owns: the frames waiting for one destination, its bounds, and its drop policy; and what the
//! source thread hands every destination besides frames: the current set of queues
//! ([`Outputs`]) and the stream headers sent first on every connection ([`SharedHeaders`]).
//!
//! Bounds: media time (newest minus oldest timestamp), bytes, and frames (the pool's size makes
//! this a hard cap). Two policies:
//! - [`Policy::DropGops`] (live sources): `push` never blocks. When a bound is exceeded, whole
//!   GOPs are dropped from the front: everything before the next keyframe goes, so no frame is
//!   ever dropped while a later queued frame references it. If the queue holds no later keyframe
//!   (one GOP longer than the bound), everything is dropped, the next frames are refused until a
//!   keyframe arrives, and a keyframe is requested from the source. Memory stays flat whatever the
//!   network does. (MediaMTX's forwarders and ustreamer's rings work the same way.)
//! - [`Policy::Block`] (a file pushed with `--no-pace`): `push` waits for room, so every frame
//!   arrives; the source is not a camera and loses nothing by waiting. Such a queue needs
//!   backpressure, not a buffer, so it holds at most [`BLOCKING_DEPTH`] frames whatever the
//!   configured bounds: every queued frame is resident memory (its pool slot stays touched).
//!
//! The publisher reports the capture time of the oldest frame it has sent that the server has
//! not received yet ([`FrameQueue::set_oldest_in_flight`], measured by `crate::backlog`); under
//! `DropGops` the time bound runs from there (or from the oldest queued frame, if older) to the
//! newest frame, so `max_seconds` bounds the lag a viewer sees, not only this queue. Dropping because of the backlog never asks the source for a
//! keyframe (a keyframe is the largest frame; the link is already too slow).
//!
//! After a (re)connect the publisher calls [`FrameQueue::resync`] so that the first frame it sends
//! is a keyframe. Allocation-free after construction: the deque has capacity for the frame cap.
//!
//! Settings: `[queue]` ([`RawQueue`] → [`Limits::check`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;

use crate::pool::Frame;
use crate::setting::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    DropGops,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_duration_us: u64,
    pub max_bytes: usize,
    pub max_frames: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_duration_us: 2_000_000,
            max_bytes: 8 * 1024 * 1024,
            max_frames: 128,
        }
    }
}

/// `[queue]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub max_seconds: Option<f64>,
    pub max_mib: Option<f64>,
}

impl Limits {
    /// The bounds `[queue]` asks for (default 2 s and 8 MiB), with a frame cap that covers the
    /// time bound at 60 fps (the pool is sized from it).
    pub fn check(raw: &RawQueue) -> Result<Limits, Invalid> {
        let max_seconds = raw.max_seconds.unwrap_or(2.0);
        if !(max_seconds.is_finite() && (0.1..=60.0).contains(&max_seconds)) {
            return Err(Invalid::new(
                "max_seconds",
                format!("{max_seconds} is out of range: expected 0.1 to 60"),
            ));
        }
        let max_mib = raw.max_mib.unwrap_or(8.0);
        if !(max_mib.is_finite() && (0.5..=1024.0).contains(&max_mib)) {
            return Err(Invalid::new(
                "max_mib",
                format!("{max_mib} is out of range: expected 0.5 to 1024"),
            ));
        }
        Ok(Limits {
            max_duration_us: (max_seconds * 1e6) as u64,
            max_bytes: (max_mib * 1024.0 * 1024.0) as usize,
            max_frames: ((max_seconds * 60.0).ceil() as usize).max(16),
        })
    }

    /// The bounds a queue of `policy` keeps: a blocking queue holds at most [`BLOCKING_DEPTH`]
    /// frames (the frame pool is sized from this).
    pub fn for_policy(self, policy: Policy) -> Limits {
        match policy {
            Policy::Block => Limits {
                max_frames: self.max_frames.min(BLOCKING_DEPTH),
                ..self
            },
            Policy::DropGops => self,
        }
    }
}

/// The most frames a [`Policy::Block`] queue holds: enough to keep the source and the publisher
/// busy at the same time, few enough that an unpaced push stays as small as a live one.
pub const BLOCKING_DEPTH: usize = 8;

/// [`FrameQueue::set_oldest_in_flight`]'s "nothing in flight", as stored.
const NONE_IN_FLIGHT: u64 = u64::MAX;

/// What is on its way to the server beyond the queue, as the publisher last said.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    oldest_us: Option<u64>,
    bytes: u64,
    link_bytes_per_s: Option<u64>,
}

impl InFlight {
    const NONE: InFlight = InFlight {
        oldest_us: None,
        bytes: 0,
        link_bytes_per_s: None,
    };
}

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; `dropped` older frames (whole GOPs) were dropped to make room.
    Queued { dropped: usize },
    /// Not queued: the queue waits for a keyframe, or is closed.
    Refused,
}

struct Inner {
    frames: VecDeque<Frame>,
    bytes: usize,
    closed: bool,
    need_key: bool,
    /// A producer waits in `push` for room (`Policy::Block`).
    producer_waiting: bool,
    /// A consumer on a thread of its own waits in [`FrameQueue::pop_wait`]: only then does
    /// `push` signal `ready_sync` (a condition variable's signal is a system call even when
    /// nobody waits).
    consumer_waiting: bool,
}

pub struct FrameQueue {
    inner: Mutex<Inner>,
    limits: Limits,
    policy: Policy,
    /// Wakes the publisher (async side).
    ready: Notify,
    /// Wakes a blocked producer (sync side, `Policy::Block`).
    room: Condvar,
    /// Wakes a consumer on a thread of its own ([`FrameQueue::pop_wait`]: the recorder).
    ready_sync: Condvar,
    keyframe_wanted: AtomicBool,
    dropped: AtomicU64,
    /// Capture time of the oldest frame the publisher sent that has not arrived at the server
    /// yet (`crate::backlog`); [`NONE_IN_FLIGHT`] when there is none or it is not known.
    oldest_in_flight_us: AtomicU64,
    /// Bytes sent that have not arrived, and the link's rate in bytes per second (0: unknown).
    in_flight_bytes: AtomicU64,
    link_bytes_per_s: AtomicU64,
    /// The publisher is connected and streaming: [`Self::backlog_us`] says something about a
    /// link only then.
    streaming: AtomicBool,
}

impl FrameQueue {
    pub fn new(limits: Limits, policy: Policy) -> Self {
        let limits = limits.for_policy(policy);
        FrameQueue {
            inner: Mutex::new(Inner {
                frames: VecDeque::with_capacity(limits.max_frames + 1),
                bytes: 0,
                closed: false,
                need_key: true,
                producer_waiting: false,
                consumer_waiting: false,
            }),
            limits,
            policy,
            ready: Notify::new(),
            room: Condvar::new(),
            ready_sync: Condvar::new(),
            keyframe_wanted: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            oldest_in_flight_us: AtomicU64::new(NONE_IN_FLIGHT),
            in_flight_bytes: AtomicU64::new(0),
            link_bytes_per_s: AtomicU64::new(0),
            streaming: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame (source side). Never blocks under `DropGops`.
    pub fn push(&self, frame: Frame) -> Pushed {
        let mut inner = self.lock();
        if self.policy == Policy::Block {
            while !inner.closed
                && !inner.frames.is_empty()
                && self.over(&inner, &frame, InFlight::NONE)
            {
                inner.producer_waiting = true;
                inner = self
                    .room
                    .wait_timeout(inner, Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                inner.producer_waiting = false;
            }
        }
        if inner.closed {
            return Pushed::Refused;
        }
        if inner.need_key {
            if !frame.meta().keyframe {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Pushed::Refused;
            }
            inner.need_key = false;
        }
        let mut dropped = 0;
        if self.policy == Policy::DropGops {
            let in_flight = self.in_flight();
            while self.over(&inner, &frame, in_flight) {
                match self.drop_oldest_gop(&mut inner) {
                    Some(n) => dropped += n,
                    None => {
                        // One GOP longer than the bounds, or the backlog beyond the queue over
                        // them: start over at the next keyframe that fits, which is none while
                        // the backlog alone is over the time bound (sending it would put the
                        // viewer further behind). Only a GOP too long for the queue by itself
                        // asks the source for a keyframe sooner; one into a congested link
                        // would only make it worse.
                        let too_long = self.over(&inner, &frame, InFlight::NONE);
                        let backlogged = self.over_by(None, 0, 0, &frame, in_flight);
                        dropped += inner.frames.len();
                        inner.frames.clear();
                        inner.bytes = 0;
                        if !frame.meta().keyframe || backlogged {
                            dropped += 1;
                            inner.need_key = true;
                            if too_long {
                                self.keyframe_wanted.store(true, Ordering::Relaxed);
                            }
                            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                            return Pushed::Refused;
                        }
                        break;
                    }
                }
            }
            if dropped > 0 {
                self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
        }
        inner.bytes += frame.meta().len as usize;
        inner.frames.push_back(frame);
        let wake_sync = inner.consumer_waiting;
        drop(inner);
        // Costs no system call unless the publisher's task sleeps on it (tokio's `Notify` is
        // atomics; waking the sleeping runtime is the one unavoidable hand-over).
        self.ready.notify_one();
        if wake_sync {
            self.ready_sync.notify_one();
        }
        Pushed::Queued { dropped }
    }

    /// Would adding `next` exceed a bound? The time bound holds for two measures of the lag a
    /// viewer would have once `next` arrives: the span from the oldest frame not yet at the
    /// server (queued, or sent and still on the way) to `next`, and, when the link's rate is
    /// known, the time the bytes in flight, those queued and `next`'s take to get through it.
    /// A frame alone in the queue with nothing in flight exceeds nothing.
    fn over(&self, inner: &Inner, next: &Frame, in_flight: InFlight) -> bool {
        let front = inner.frames.front().map(|f| f.meta().timestamp_us);
        self.over_by(front, inner.frames.len(), inner.bytes, next, in_flight)
    }

    /// [`Self::over`] for a queue whose oldest frame has capture time `front`, holding `frames`
    /// frames of `bytes` bytes.
    fn over_by(
        &self,
        front: Option<u64>,
        frames: usize,
        bytes: usize,
        next: &Frame,
        in_flight: InFlight,
    ) -> bool {
        if let Some(rate) = in_flight.link_bytes_per_s {
            let total = in_flight.bytes + bytes as u64 + u64::from(next.meta().len);
            let drain_us = total.saturating_mul(1_000_000) / rate.max(1);
            if drain_us > self.limits.max_duration_us {
                return true;
            }
        }
        let oldest = match (in_flight.oldest_us, front) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        let span = next.meta().timestamp_us.saturating_sub(oldest);
        frames + 1 > self.limits.max_frames
            || bytes + next.meta().len as usize > self.limits.max_bytes
            || span > self.limits.max_duration_us
    }

    /// The capture time of the oldest frame the publisher has sent that the server has not
    /// received yet (`None`: every frame sent has arrived, or not connected). Under
    /// [`Policy::DropGops`] the time bound runs from there, so that it bounds the lag a viewer
    /// sees; a [`Policy::Block`] queue ignores it.
    pub fn set_oldest_in_flight(&self, timestamp_us: Option<u64>) {
        let v = timestamp_us.map_or(NONE_IN_FLIGHT, |t| t.min(NONE_IN_FLIGHT - 1));
        self.oldest_in_flight_us.store(v, Ordering::Relaxed);
    }

    /// The bytes sent that have not arrived, and the rate of the link they cross in bytes per
    /// second (`None`: unknown). When known, the time they, the queued bytes and a new frame
    /// take to get through is held to the time bound as well (a link slower than the stream
    /// takes longer to deliver a backlog than the media time it holds).
    pub fn set_link(&self, in_flight_bytes: u64, link_bytes_per_s: Option<u64>) {
        self.in_flight_bytes
            .store(in_flight_bytes, Ordering::Relaxed);
        self.link_bytes_per_s
            .store(link_bytes_per_s.unwrap_or(0), Ordering::Relaxed);
    }

    /// What the publisher said is in flight (all unknown when not connected).
    fn in_flight(&self) -> InFlight {
        let oldest = self.oldest_in_flight_us.load(Ordering::Relaxed);
        let rate = self.link_bytes_per_s.load(Ordering::Relaxed);
        InFlight {
            oldest_us: (oldest != NONE_IN_FLIGHT).then_some(oldest),
            bytes: self.in_flight_bytes.load(Ordering::Relaxed),
            link_bytes_per_s: (rate > 0).then_some(rate),
        }
    }

    /// Says whether the publisher is connected and streaming (set on publish, cleared when the
    /// connection ends).
    pub fn set_streaming(&self, streaming: bool) {
        self.streaming.store(streaming, Ordering::Relaxed);
    }

    /// The lag a viewer has behind a frame captured at `newest_us` (the source side passes the
    /// frame it has just pushed), in µs: from the oldest frame not yet at the server (queued,
    /// or sent and on the way) to `newest_us`, or, when the link's rate is known and longer,
    /// the time the bytes queued and in flight take to get through it. `None` while the
    /// publisher is not streaming: a destination that is down says nothing about its link.
    /// Takes the queue's lock once; no allocation.
    pub fn backlog_us(&self, newest_us: u64) -> Option<u64> {
        if !self.streaming.load(Ordering::Relaxed) {
            return None;
        }
        let in_flight = self.in_flight();
        let (front, bytes) = {
            let inner = self.lock();
            (
                inner.frames.front().map(|f| f.meta().timestamp_us),
                inner.bytes as u64,
            )
        };
        let oldest = match (in_flight.oldest_us, front) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let span = oldest.map_or(0, |t| newest_us.saturating_sub(t));
        let drain = in_flight.link_bytes_per_s.map_or(0, |rate| {
            (in_flight.bytes + bytes).saturating_mul(1_000_000) / rate.max(1)
        });
        Some(span.max(drain))
    }

    /// The last value given to [`Self::set_oldest_in_flight`].
    pub fn oldest_in_flight(&self) -> Option<u64> {
        self.in_flight().oldest_us
    }

    /// Drops the frames before the second keyframe from the front (the oldest GOP, or what is
    /// left of it). `None` when there is no such keyframe.
    fn drop_oldest_gop(&self, inner: &mut Inner) -> Option<usize> {
        let next_key = inner
            .frames
            .iter()
            .skip(1)
            .position(|f| f.meta().keyframe)?
            + 1;
        let removed: usize = inner
            .frames
            .drain(..next_key)
            .map(|f| f.meta().len as usize)
            .sum();
        inner.bytes -= removed;
        Some(next_key)
    }

    /// Takes the next frame if there is one (publisher side). `Err(())` once closed and drained.
    pub fn try_pop(&self) -> Result<Option<Frame>, Closed> {
        let mut inner = self.lock();
        match inner.frames.pop_front() {
            Some(f) => {
                inner.bytes -= f.meta().len as usize;
                // Wake a waiting producer once the queue is half empty, not at every frame: it
                // then refills in one go, and the hand-over costs a wake-up per few frames.
                let wake =
                    inner.producer_waiting && inner.frames.len() <= self.limits.max_frames / 2;
                drop(inner);
                if wake {
                    self.room.notify_one();
                }
                Ok(Some(f))
            }
            None if inner.closed => Err(Closed),
            None => Ok(None),
        }
    }

    /// Waits for the next frame; `None` once the queue is closed and drained. Cancel-safe.
    pub async fn pop(&self) -> Option<Frame> {
        loop {
            let notified = self.ready.notified();
            match self.try_pop() {
                Ok(Some(f)) => return Some(f),
                Err(Closed) => return None,
                Ok(None) => notified.await,
            }
        }
    }

    /// Waits up to `timeout` for the next frame, for a consumer on a thread of its own (the
    /// recorder): `Ok(None)` when none came, `Err(Closed)` once closed and drained.
    pub fn pop_wait(&self, timeout: Duration) -> Result<Option<Frame>, Closed> {
        {
            let mut inner = self.lock();
            if inner.frames.is_empty() && !inner.closed {
                inner.consumer_waiting = true;
                let (mut inner, _) = self
                    .ready_sync
                    .wait_timeout(inner, timeout)
                    .unwrap_or_else(|e| e.into_inner());
                inner.consumer_waiting = false;
            }
        }
        self.try_pop()
    }

    /// Drops what precedes a queued keyframe, so the next frame popped decodes on its own: the
    /// newest keyframe after a reconnect of a live queue (least latency), else the oldest (lose
    /// nothing: the first connection of a stream, or a blocking queue). With no keyframe queued,
    /// drops everything, refuses frames until a keyframe arrives and asks the source for one.
    /// Returns how many frames were dropped.
    pub fn resync(&self, first_connection: bool) -> usize {
        let mut inner = self.lock();
        let mut keys = inner.frames.iter().map(|f| f.meta().keyframe);
        let key = if first_connection || self.policy == Policy::Block {
            keys.position(|k| k)
        } else {
            keys.rposition(|k| k)
        };
        let cut = key.unwrap_or(inner.frames.len());
        let removed: usize = inner
            .frames
            .drain(..cut)
            .map(|f| f.meta().len as usize)
            .sum();
        inner.bytes -= removed;
        if key.is_none() {
            inner.need_key = true;
            self.keyframe_wanted.store(true, Ordering::Relaxed);
        }
        drop(inner);
        if cut > 0 {
            self.dropped.fetch_add(cut as u64, Ordering::Relaxed);
            self.room.notify_one();
        }
        cut
    }

    /// Ends the stream: the publisher drains what is queued, then sees the end.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
        self.ready_sync.notify_all();
        self.room.notify_all();
    }

    /// Whether a keyframe was requested since the last call (source side).
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Frames dropped by this queue so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().frames.len()
    }

    /// Closed, and nothing left to send: the stream this queue carried is over.
    pub fn is_finished(&self) -> bool {
        let inner = self.lock();
        inner.closed && inner.frames.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most frames this queue holds.
    pub fn max_frames(&self) -> usize {
        self.limits.max_frames
    }

    /// Media time between the oldest and newest queued frames.
    pub fn span_us(&self) -> u64 {
        let inner = self.lock();
        match (inner.frames.front(), inner.frames.back()) {
            (Some(a), Some(b)) => b.meta().timestamp_us - a.meta().timestamp_us,
            _ => 0,
        }
    }
}

/// The current set of destination queues, shared by the ingest thread (which pushes every frame
/// to each) and the supervisor (which swaps the set when the configuration is reloaded).
/// Reading it per frame takes an uncontended read lock and allocates nothing.
#[derive(Clone, Default)]
pub struct Outputs(Arc<RwLock<Vec<Arc<FrameQueue>>>>);

impl Outputs {
    pub fn new(queues: Vec<Arc<FrameQueue>>) -> Self {
        Outputs(Arc::new(RwLock::new(queues)))
    }

    /// Installs a new set; the old queues are closed, so their publishers drain and finish.
    pub fn replace(&self, queues: Vec<Arc<FrameQueue>>) {
        let old = std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|e| e.into_inner()),
            queues,
        );
        for q in old {
            q.close();
        }
    }

    /// Runs `f` on every current queue.
    pub fn for_each(&self, mut f: impl FnMut(&FrameQueue)) {
        for q in self.0.read().unwrap_or_else(|e| e.into_inner()).iter() {
            f(q);
        }
    }

    /// Closes every current queue: the end of the stream.
    pub fn close_all(&self) {
        self.for_each(|q| q.close());
    }
}

/// The queue is closed and empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What every publisher sends first on every connection, rebuilt by the ingest stage when
/// SPS/PPS change.
#[derive(Debug, Default)]
pub struct Headers {
    /// Generation of the parameter sets these headers were built from (0 = none yet).
    pub generation: u32,
    /// FLV video tag body: AVC sequence header (AVCDecoderConfigurationRecord).
    pub sequence_header: Vec<u8>,
    /// FLV script data body: `@setDataFrame` `onMetaData` {...}.
    pub metadata: Vec<u8>,
    /// Picture size from the SPS (for the recorder's MP4 track header).
    pub width: u32,
    pub height: u32,
}

/// Headers shared between the ingest thread and the publishers.
#[derive(Clone, Default)]
pub struct SharedHeaders(Arc<Mutex<Headers>>);

impl SharedHeaders {
    pub fn lock(&self) -> MutexGuard<'_, Headers> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{FrameMeta, Pool, FRONT_ROOM};

    /// A frame every 100 ms with a keyframe every `gop` frames, `len` bytes each (the pool's
    /// front room included).
    fn frames(pool: &Pool, n: usize, gop: usize, len: usize) -> Vec<Frame> {
        (0..n)
            .map(|i| {
                let mut f = pool.acquire().expect("pool slot");
                f.fill_from(&vec![0u8; len.saturating_sub(FRONT_ROOM)]);
                f.freeze(FrameMeta {
                    timestamp_us: i as u64 * 100_000,
                    keyframe: i % gop == 0,
                    ..FrameMeta::default()
                })
            })
            .collect()
    }

    fn limits(ms: u64, bytes: usize) -> Limits {
        Limits {
            max_duration_us: ms * 1000,
            max_bytes: bytes,
            max_frames: 64,
        }
    }

    fn keys_and_times(q: &FrameQueue) -> Vec<(bool, u64)> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = q.try_pop() {
            out.push((f.meta().keyframe, f.meta().timestamp_us / 100_000));
        }
        out
    }

    #[test]
    fn a_queue_that_keeps_up_drops_nothing() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(2000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 30, 10, 10) {
            assert_eq!(q.push(f), Pushed::Queued { dropped: 0 });
            q.try_pop().unwrap().unwrap();
        }
        assert_eq!(q.dropped(), 0);
    }

    #[test]
    fn the_backlog_is_known_only_while_streaming_and_runs_from_the_oldest_frame_not_arrived() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(10_000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 10, 5, 10) {
            q.push(f);
        }
        assert_eq!(q.backlog_us(900_000), None, "not streaming: nothing to say");
        q.set_streaming(true);
        assert_eq!(q.backlog_us(900_000), Some(900_000), "queued from frame 0");
        q.set_oldest_in_flight(Some(0));
        while q.try_pop().unwrap().is_some() {}
        assert_eq!(
            q.backlog_us(900_000),
            Some(900_000),
            "frame 0 still on the way"
        );
        q.set_oldest_in_flight(None);
        assert_eq!(q.backlog_us(900_000), Some(0), "everything arrived");
        // 100 kB in flight on a 50 kB/s link: 2 s to get through.
        q.set_link(100_000, Some(50_000));
        assert_eq!(q.backlog_us(900_000), Some(2_000_000));
        q.set_streaming(false);
        assert_eq!(q.backlog_us(900_000), None);
    }

    #[test]
    fn over_the_time_bound_whole_gops_are_dropped_from_the_front() {
        let pool = Pool::new(64, 16);
        // 1 s bound, GOP of 5 frames (0.5 s): at most ~2 GOPs stay queued.
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 30, 5, 10) {
            q.push(f);
        }
        let got = keys_and_times(&q);
        assert!(got[0].0, "the queue must start at a keyframe: {got:?}");
        assert!(q.dropped() > 0);
        // The frames that remain are a contiguous tail, so no kept frame lost its reference.
        for w in got.windows(2) {
            assert_eq!(w[1].1, w[0].1 + 1, "gap inside the kept frames: {got:?}");
        }
        assert_eq!(got.last().unwrap().1, 29);
        assert_eq!(q.dropped() as usize + got.len(), 30);
    }

    #[test]
    fn over_the_byte_bound_whole_gops_are_dropped() {
        let pool = Pool::new(64, 1000);
        let q = FrameQueue::new(limits(100_000, 10 * 1000), Policy::DropGops);
        for f in frames(&pool, 20, 4, 1000) {
            q.push(f);
        }
        let got = keys_and_times(&q);
        assert!(got[0].0);
        assert!(got.len() <= 10);
        assert_eq!(got.last().unwrap().1, 19);
    }

    #[test]
    fn a_gop_longer_than_the_bound_restarts_at_the_next_keyframe_and_asks_for_one() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(500, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 12, 10, 10) {
            q.push(f);
        }
        assert!(q.take_keyframe_request());
        // Frames 10 and 11: 10 is a keyframe, accepted after the refusal period.
        let got = keys_and_times(&q);
        assert_eq!(got, vec![(true, 10), (false, 11)]);
    }

    #[test]
    fn the_time_bound_runs_from_the_oldest_frame_still_on_the_way() {
        let pool = Pool::new(64, 16);
        // 1 s bound, GOP of 5 frames (0.5 s); frame 24 (2.4 s) sent and not yet arrived.
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::DropGops);
        q.set_oldest_in_flight(Some(2_400_000));
        let mut fs = frames(&pool, 40, 5, 10).into_iter().skip(25);
        for f in fs.by_ref().take(5) {
            assert!(
                matches!(q.push(f), Pushed::Queued { .. }),
                "up to 2.9 s: within 1 s"
            );
        }
        // Frames 30 to 34 make 1 s at most; from frame 35 on, the lag would be over 1 s
        // whatever the queue dropped.
        for f in fs.by_ref().take(5) {
            assert!(matches!(q.push(f), Pushed::Queued { .. }));
        }
        for f in fs.by_ref().take(5) {
            assert_eq!(q.push(f), Pushed::Refused);
        }
        let got: Vec<u64> = keys_and_times(&q).into_iter().map(|(_, t)| t).collect();
        assert!(got.is_empty(), "everything queued went too: {got:?}");
        assert!(!q.take_keyframe_request());
    }

    #[test]
    fn a_backlog_beyond_the_bound_by_itself_admits_nothing_and_asks_for_no_keyframe() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::DropGops);
        // Frame 0 is still on the way: frames 11 and later are over the bound by themselves.
        q.set_oldest_in_flight(Some(0));
        for f in frames(&pool, 31, 5, 10).into_iter().skip(11) {
            assert_eq!(q.push(f), Pushed::Refused);
        }
        assert!(q.is_empty());
        assert!(!q.take_keyframe_request());
        // Once the backlog drains (frame 30 is the oldest on the way), the next GOP flows whole.
        q.set_oldest_in_flight(Some(3_000_000));
        for f in frames(&pool, 40, 5, 10).into_iter().skip(35) {
            q.push(f);
        }
        assert_eq!(keys_and_times(&q).len(), 5);
    }

    #[test]
    fn a_backlog_that_takes_longer_than_the_bound_to_get_through_the_link_admits_nothing() {
        let pool = Pool::new(64, 1000);
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::DropGops);
        // 1500 bytes on the way through a 1000-byte/s link: 1.5 s, over the 1 s bound.
        q.set_link(1500, Some(1000));
        let mut fs = frames(&pool, 10, 5, 100).into_iter();
        assert_eq!(q.push(fs.next().unwrap()), Pushed::Refused);
        // 500 bytes: frames of 100 bytes fit until the total takes 1 s.
        q.set_link(500, Some(1000));
        let pushed: Vec<Pushed> = fs.by_ref().skip(3).take(6).map(|f| q.push(f)).collect();
        assert_eq!(keys_and_times(&q).len(), 5, "{pushed:?}");
        // Unknown rate: the time span alone decides.
        q.set_link(1_000_000, None);
        let pool2 = Pool::new(8, 1000);
        for f in frames(&pool2, 5, 5, 100) {
            assert!(matches!(q.push(f), Pushed::Queued { .. }));
        }
    }

    #[test]
    fn a_blocking_queue_ignores_the_backlog() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::Block);
        // Frame 0 on the way, frames 50.. (5 s later) queued: a live queue would drop them.
        q.set_oldest_in_flight(Some(0));
        for f in frames(&pool, 50 + BLOCKING_DEPTH, 5, 10)
            .into_iter()
            .skip(50)
        {
            assert_eq!(q.push(f), Pushed::Queued { dropped: 0 });
        }
    }

    #[test]
    fn a_new_queue_waits_for_a_keyframe() {
        let pool = Pool::new(8, 16);
        let q = FrameQueue::new(Limits::default(), Policy::DropGops);
        let fs = frames(&pool, 4, 2, 10);
        let mut it = fs.into_iter().skip(1);
        assert_eq!(q.push(it.next().unwrap()), Pushed::Refused);
        assert_eq!(q.push(it.next().unwrap()), Pushed::Queued { dropped: 0 });
    }

    #[test]
    fn resync_starts_at_the_newest_queued_keyframe() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(100_000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 12, 5, 10) {
            q.push(f);
        }
        assert_eq!(q.resync(false), 10);
        assert_eq!(keys_and_times(&q), vec![(true, 10), (false, 11)]);
    }

    #[test]
    fn resync_of_a_blocking_queue_starts_at_the_oldest_keyframe() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(100_000, 1 << 20), Policy::Block);
        for f in frames(&pool, BLOCKING_DEPTH, 3, 10) {
            q.push(f);
        }
        assert_eq!(q.resync(false), 0);
        assert_eq!(keys_and_times(&q).len(), BLOCKING_DEPTH);
    }

    #[test]
    fn the_first_connection_of_a_live_queue_loses_nothing() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(100_000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 12, 5, 10) {
            q.push(f);
        }
        assert_eq!(q.resync(true), 0);
    }

    #[test]
    fn resync_without_a_keyframe_waits_for_one_and_requests_it() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(100_000, 1 << 20), Policy::DropGops);
        let mut fs = frames(&pool, 8, 6, 10).into_iter();
        q.push(fs.next().unwrap());
        q.try_pop().unwrap();
        for f in fs.by_ref().take(3) {
            q.push(f);
        }
        q.resync(false);
        assert!(q.take_keyframe_request());
        assert_eq!(q.push(fs.next().unwrap()), Pushed::Refused);
        q.push(fs.next().unwrap()); // frame 5: not a key either
        assert!(q.is_empty());
    }

    #[test]
    fn slots_return_to_the_pool_when_dropped_frames_go() {
        let pool = Pool::new(64, 16);
        let q = FrameQueue::new(limits(1000, 1 << 20), Policy::DropGops);
        for f in frames(&pool, 40, 5, 10) {
            q.push(f);
        }
        assert_eq!(pool.available(), 64 - q.len());
    }

    #[test]
    fn a_consumer_waiting_on_its_own_thread_is_woken_by_a_push_not_by_its_timeout() {
        let pool = Pool::new(8, 16);
        let q = std::sync::Arc::new(FrameQueue::new(Limits::default(), Policy::DropGops));
        let consumer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let got = q.pop_wait(Duration::from_secs(30));
                (got.map(|f| f.is_some()), started.elapsed())
            })
        };
        // Push once the consumer waits (bounded: 10 s).
        for _ in 0..1000 {
            if q.lock().consumer_waiting {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(q.lock().consumer_waiting, "the consumer never waited");
        for f in frames(&pool, 1, 1, 10) {
            q.push(f);
        }
        let (got, waited) = consumer.join().unwrap();
        assert_eq!(got, Ok(true));
        assert!(waited < Duration::from_secs(20), "woken by its timeout");
        assert!(!q.lock().consumer_waiting);
    }

    #[test]
    fn a_blocking_queue_holds_the_producer_until_the_consumer_makes_room() {
        let pool = Pool::new(64, 16);
        // Bounded by time (300 ms = 3 frames) here; by BLOCKING_DEPTH whatever the limits say.
        let q = std::sync::Arc::new(FrameQueue::new(limits(300, 1 << 20), Policy::Block));
        let producer = {
            let q = q.clone();
            let fs = frames(&pool, 20, 5, 10);
            std::thread::spawn(move || {
                for f in fs {
                    assert!(matches!(q.push(f), Pushed::Queued { dropped: 0 }));
                }
                q.close();
            })
        };
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            assert!(std::time::Instant::now() < deadline, "consumer stuck");
            match q.try_pop() {
                Ok(Some(f)) => seen.push(f.meta().timestamp_us / 100_000),
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(Closed) => break,
            }
            assert!(q.span_us() <= 300_000);
            assert!(q.len() <= BLOCKING_DEPTH);
        }
        producer.join().unwrap();
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
        assert_eq!(q.dropped(), 0);
    }
}
