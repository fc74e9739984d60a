//! The recorder: one destination that writes fragmented MP4 segments to a directory, on a thread
//! of its own.
//!
//! Owns: its queue's consumer side, the segment being written (`.part` file, start time, the
//! parameter sets it was started with), the muxer and its buffers, the audio track's source
//! handle, the recording directory's store, and in `outage` mode the GOP kept in memory.
//!
//! Per frame (no allocation in the steady state; a new segment allocates its names):
//! 1. while the directory is failing, drop frames until [`RETRY`] has passed;
//! 2. `outage` mode: keep the frames of the current GOP (refcounted pool slots, at most the
//!    queue's frame cap); when a network destination stops streaming, start a segment at the
//!    GOP's keyframe; once every destination streams again, close it at the next keyframe;
//! 3. at a keyframe past `segment_s` (or with new SPS/PPS), close the segment: last fragment,
//!    `fdatasync`, rename `.part` to `.mp4`; open the next one at this keyframe;
//! 4. hand the frame to the muxer (the audio frames captured up to it first); when it starts a
//!    fragment, write the previous one (moof, mdat) in one go and `fdatasync` it;
//! 5. after each fragment, keep the directory within `max_mib` and `min_free_mib` by deleting
//!    the oldest segments; when nothing is left to delete the directory is full: an error.
//!
//! Any error (full, read-only, missing directory, a write that fails) closes what can be
//! closed, reports `Error(Storage)` with the reason in the status, and the recorder retries at
//! the first keyframe [`RETRY`] later. The network destinations never wait for it: the queue
//! drops whole GOPs when the disk is slow.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::files::{self, Store};
use super::fmp4::{Muxer, VideoSample, VideoTrack};
use super::{Mode, RecordSettings, RETRY};
use crate::audio::{AudioFormat, AudioSource, AudioTrack};
use crate::flv::VIDEO_HEADER_LEN;
use crate::pool::{Frame, FrameMeta};
use crate::queue::{Closed, FrameQueue, SharedHeaders};
use crate::status::{Counters, DestinationStatus, ErrorKind, Status};

#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("fewer than {0} MiB free and no recording left to delete")]
    Full(u64),
    #[error("no SPS/PPS to describe the video yet")]
    NoHeaders,
}

/// The segment being written.
struct Segment {
    file: File,
    part: PathBuf,
    path: PathBuf,
    /// Capture time of its first frame.
    start_us: u64,
    params_gen: u32,
    bytes: u64,
    /// Fragments written: a segment without one holds no picture.
    fragments: u32,
}

/// One recording destination; see the module documentation.
pub struct Recorder {
    settings: RecordSettings,
    queue: Arc<FrameQueue>,
    headers: SharedHeaders,
    status: DestinationStatus,
    /// The network destinations, watched in `outage` mode.
    network: Vec<DestinationStatus>,
    audio: Option<Box<dyn AudioSource>>,
    audio_format: Option<AudioFormat>,
    muxer: Muxer,
    avcc: Vec<u8>,
    store: Store,
    scanned: bool,
    segment: Option<Segment>,
    /// The directory failed: frames are dropped until then.
    retry_at: Option<Instant>,
    /// Over `max_mib` with only the current segment left: end it at the next keyframe, so it
    /// can go.
    cut_soon: bool,
    /// `outage` mode: the frames since the last keyframe, while not recording.
    gop: VecDeque<Frame>,
    gop_cap: usize,
    /// When the recorder started: `outage` mode gives the destinations [`FIRST_CONNECT`] to
    /// connect before one that never streamed counts as an outage.
    started: Instant,
}

/// How long a destination that has not streamed yet may take to connect before `outage` mode
/// records (a camera that boots without network).
pub const FIRST_CONNECT: Duration = Duration::from_secs(10);

impl Recorder {
    /// A recorder of the frames `queue` receives. `network`: the network destinations' status
    /// handles (`outage` mode records while one of them is not streaming). `max_frames`: the
    /// queue's frame cap, which also bounds the GOP kept in `outage` mode.
    pub fn new(
        settings: RecordSettings,
        queue: Arc<FrameQueue>,
        headers: SharedHeaders,
        status: DestinationStatus,
        network: Vec<DestinationStatus>,
        audio: AudioTrack,
        max_frames: usize,
    ) -> Recorder {
        status.set_label(format!("record:{}", settings.dir.display()));
        status.set(match settings.mode {
            Mode::Always => Status::Starting,
            Mode::Outage => Status::Streaming,
        });
        let store = Store::new(settings.dir.clone());
        Recorder {
            queue,
            headers,
            status,
            network,
            audio: audio.open(),
            audio_format: audio.format(),
            muxer: Muxer::new(),
            avcc: Vec::with_capacity(1024),
            store,
            scanned: false,
            segment: None,
            retry_at: None,
            cut_soon: false,
            gop: VecDeque::with_capacity(max_frames),
            gop_cap: max_frames,
            started: Instant::now(),
            settings,
        }
    }

    /// Records until the queue is closed and drained, then closes the segment.
    pub fn run(mut self) {
        crate::alloc::watch_this_thread();
        loop {
            match self.queue.pop_wait(Duration::from_millis(500)) {
                Ok(Some(frame)) => self.frame(frame),
                Ok(None) => {}
                Err(Closed) => break,
            }
        }
        if let Err(e) = self.close_segment(None) {
            self.fail(e);
        }
        if self.retry_at.is_none() {
            self.status.set(Status::Stopped);
        }
    }

    fn frame(&mut self, frame: Frame) {
        let meta = *frame.meta();
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return;
            }
        }
        if self.settings.mode == Mode::Outage {
            let outage = self.outage();
            if self.segment.is_some() && !outage && meta.keyframe {
                // Every destination streams again, and this GOP they all get: stop here.
                if let Err(e) = self.close_segment(Some(meta.timestamp_us)) {
                    self.fail(e);
                }
            }
            if self.segment.is_none() {
                self.keep_in_gop(&frame);
                if outage && self.retry_at.is_none_or(|at| Instant::now() >= at) {
                    self.record_kept_gop();
                }
                return;
            }
        }
        self.record(frame);
    }

    /// A network destination is not streaming: one that streamed before, or any once the
    /// first connections had their time. A destination stopped on purpose (campush stopping)
    /// is no outage.
    fn outage(&self) -> bool {
        let grace_over = self.started.elapsed() >= FIRST_CONNECT;
        self.network.iter().any(|d| {
            !matches!(d.get(), Status::Streaming | Status::Stopped)
                && (grace_over || Counters::get(&d.counters().frames_sent) > 0)
        })
    }

    /// `outage` mode, not recording: the GOP so far, for an outage that may begin in it.
    fn keep_in_gop(&mut self, frame: &Frame) {
        if frame.meta().keyframe {
            self.gop.clear();
        }
        if self.gop.is_empty() && !frame.meta().keyframe {
            return; // the GOP outgrew the cap: wait for the next keyframe
        }
        if self.gop.len() < self.gop_cap {
            self.gop.push_back(frame.clone());
        } else {
            self.gop.clear();
        }
    }

    /// An outage began: the kept GOP goes first (it starts at a keyframe).
    fn record_kept_gop(&mut self) {
        while let Some(frame) = self.gop.pop_front() {
            self.record(frame);
        }
    }

    fn record(&mut self, frame: Frame) {
        let meta = *frame.meta();
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return;
            }
        }
        if let Some(seg) = &self.segment {
            let long_enough = meta.timestamp_us.saturating_sub(seg.start_us)
                >= self.settings.segment.as_micros() as u64;
            if meta.keyframe && (long_enough || self.cut_soon || meta.params_gen != seg.params_gen)
            {
                if let Err(e) = self.close_segment(Some(meta.timestamp_us)) {
                    self.fail(e);
                    return;
                }
            }
        }
        if self.segment.is_none() {
            if !meta.keyframe {
                return;
            }
            if let Err(e) = self.open_segment(&meta) {
                self.fail(e);
                return;
            }
        }
        if let Err(e) = self.write_frame(&frame) {
            self.fail(e);
        }
    }

    fn open_segment(&mut self, meta: &FrameMeta) -> Result<(), RecordError> {
        if !self.scanned {
            self.store.scan()?;
            self.scanned = true;
        }
        let (width, height) = {
            let h = self.headers.lock();
            let Some(avcc) = h
                .sequence_header
                .get(VIDEO_HEADER_LEN..)
                .filter(|a| !a.is_empty())
            else {
                return Err(RecordError::NoHeaders);
            };
            self.avcc.clear();
            self.avcc.extend_from_slice(avcc);
            (h.width, h.height)
        };
        let new = self.store.create(SystemTime::now())?;
        let track = VideoTrack {
            avcc: &self.avcc,
            width,
            height,
        };
        let init = self.muxer.init_segment(&track, self.audio_format);
        let mut file = new.file;
        if let Err(e) = file.write_all(init) {
            let _ = std::fs::remove_file(&new.part);
            return Err(e.into());
        }
        let bytes = init.len() as u64;
        if let Some(audio) = &mut self.audio {
            audio.start(meta.timestamp_us);
        }
        log::info!("recording to {}", new.path.display());
        self.segment = Some(Segment {
            file,
            part: new.part,
            path: new.path,
            start_us: meta.timestamp_us,
            params_gen: meta.params_gen,
            bytes,
            fragments: 0,
        });
        self.cut_soon = false;
        if self.retry_at.take().is_some() {
            log::info!(
                "recording: {} is writable again",
                self.store.dir().display()
            );
        }
        self.status.set(Status::Streaming);
        self.make_room()
    }

    fn write_frame(&mut self, frame: &Frame) -> Result<(), RecordError> {
        let meta = *frame.meta();
        let Some(seg) = &self.segment else {
            return Ok(());
        };
        let time_us = meta.timestamp_us.saturating_sub(seg.start_us);
        if self.muxer.wants_new_fragment(time_us, meta.keyframe) {
            self.flush(Some(time_us))?;
        }
        if let Some(audio) = &mut self.audio {
            while let Some(a) = audio.next_until(meta.timestamp_us) {
                self.muxer.add_audio(a.data);
            }
        }
        let body = frame.bytes();
        let Some(data) = body.get(VIDEO_HEADER_LEN..) else {
            return Ok(());
        };
        // The FLV header's composition time: a signed 24-bit count of milliseconds.
        let cts_ms = i32::from_be_bytes([0, body[2], body[3], body[4]]) << 8 >> 8;
        self.muxer.add_video(&VideoSample {
            time_us,
            composition_us: i64::from(cts_ms) * 1000,
            keyframe: meta.keyframe,
            data,
        });
        Counters::add(&self.status.counters().frames_sent, 1);
        Ok(())
    }

    /// Writes the buffered fragment (if any), syncs it, and keeps the directory within bounds.
    fn flush(&mut self, end_us: Option<u64>) -> Result<(), RecordError> {
        let Some(seg) = &mut self.segment else {
            return Ok(());
        };
        if let Some(f) = self.muxer.fragment(end_us) {
            seg.file.write_all(f.head)?;
            seg.file.write_all(f.video)?;
            seg.file.write_all(f.audio)?;
            seg.file.sync_data()?;
            seg.bytes += f.len() as u64;
            seg.fragments += 1;
            Counters::add(&self.status.counters().bytes_sent, f.len() as u64);
        }
        self.make_room()
    }

    /// Deletes the oldest segments while over `max_mib` or under `min_free_mib`.
    fn make_room(&mut self) -> Result<(), RecordError> {
        let Some(seg) = &self.segment else {
            return Ok(());
        };
        let mut free = files::free_bytes(&seg.file)?;
        let (max, min_free) = (self.settings.max_bytes, self.settings.min_free_bytes);
        while self.store.closed_bytes() + seg.bytes > max || free < min_free {
            match self.store.delete_oldest() {
                Some(freed) => free += freed,
                None => break,
            }
        }
        if free < min_free {
            return Err(RecordError::Full(min_free >> 20));
        }
        self.cut_soon = self.store.closed_bytes() + seg.bytes > max;
        Ok(())
    }

    /// Ends the segment: its last fragment (lasting until `end_us`, capture time), a sync, the
    /// rename that marks it complete.
    fn close_segment(&mut self, end_us: Option<u64>) -> Result<(), RecordError> {
        let Some(start) = self.segment.as_ref().map(|s| s.start_us) else {
            return Ok(());
        };
        let flushed = self.flush(end_us.map(|t| t.saturating_sub(start)));
        let Some(seg) = self.segment.take() else {
            return flushed;
        };
        let synced = seg.file.sync_data();
        drop(seg.file);
        std::fs::rename(&seg.part, &seg.path)?;
        self.store.add_closed(seg.path, seg.bytes);
        flushed?;
        synced?;
        Ok(())
    }

    /// The directory failed: keep what can be kept, report, retry later.
    fn fail(&mut self, e: RecordError) {
        let dir = self.store.dir().display().to_string();
        if self.retry_at.is_none() {
            log::warn!(
                "recording to {dir}: {e}; retrying every {} s",
                RETRY.as_secs()
            );
        }
        // The error first: a status write woken by the state change shows both.
        self.status
            .shared()
            .set_last_error(&format_args!("recording to {dir}: {e}"));
        self.status.set(Status::Error(ErrorKind::Storage));
        if let Some(seg) = self.segment.take() {
            // What reached the file plays up to its last complete fragment: keep it as a
            // segment when the directory still allows the rename. Without a fragment it holds
            // no picture: it goes.
            drop(seg.file);
            if seg.fragments == 0 {
                let _ = std::fs::remove_file(&seg.part);
            } else if std::fs::rename(&seg.part, &seg.path).is_ok() {
                self.store.add_closed(seg.path, seg.bytes);
            }
        }
        self.muxer.fragment(None);
        self.gop.clear();
        self.scanned = false;
        self.retry_at = Some(Instant::now() + RETRY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Ingest, IngestSettings};
    use crate::pool::Pool;
    use crate::queue::{Limits, Outputs, Policy};
    use crate::source::file::FileSource;
    use crate::status::SharedStatus;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clip-320x240-30fps.h264"
    );

    /// Feeds `frames` frames of the looping fixture (30 fps, a keyframe every 30) to a recorder
    /// in `mode`, calling `network(i)` before frame `i` to set the network destination's state.
    fn record(
        dir: &std::path::Path,
        mode: Mode,
        segment_s: u64,
        frames: u64,
        mut network: impl FnMut(u64, &DestinationStatus),
    ) {
        let source = FileSource::open(std::path::Path::new(FIXTURE), None, false, true).unwrap();
        let pool = Pool::new(64, 64 * 1024);
        let queue = Arc::new(FrameQueue::new(Limits::default(), Policy::DropGops));
        let headers = SharedHeaders::default();
        let status = SharedStatus::new();
        let mut dests = status.set_destinations(2);
        let mine = dests.pop().unwrap();
        let settings = RecordSettings {
            mode,
            segment: Duration::from_secs(segment_s),
            min_free_bytes: 0,
            ..RecordSettings::in_dir(dir.to_owned())
        };
        let mut recorder = Recorder::new(
            settings,
            Arc::clone(&queue),
            headers.clone(),
            mine,
            dests.clone(),
            AudioTrack::None,
            128,
        );
        let mut ingest = Ingest::new(
            Box::new(source),
            pool,
            Outputs::new(vec![Arc::clone(&queue)]),
            headers,
            IngestSettings::default(),
            status,
        );
        for i in 0..frames {
            network(i, &dests[0]);
            assert!(ingest.step().unwrap());
            while let Ok(Some(frame)) = queue.try_pop() {
                recorder.frame(frame);
            }
        }
        queue.close();
        recorder.run();
    }

    fn finished(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files
                .iter()
                .all(|f| f.extension().is_some_and(|e| e == "mp4")),
            "{files:?}"
        );
        files
    }

    fn frames_in(path: &std::path::Path) -> Option<u64> {
        if !crate::testing::require_tool("ffprobe") {
            return None;
        }
        let out = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    #[test]
    fn outage_mode_records_from_the_keyframe_before_the_outage_to_the_one_after_it() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), Mode::Outage, 60, 300, |i, d| match i {
            0 => {
                d.set(Status::Streaming);
                d.count_frame_sent();
            }
            100 => d.set(Status::Error(ErrorKind::Network)),
            200 => d.set(Status::Streaming),
            _ => {}
        });
        let files = finished(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        // Keyframes every 30 frames: from frame 90 (before the outage at 100) to frame 210 (the
        // first keyframe once streaming again at 200).
        if let Some(frames) = frames_in(&files[0]) {
            assert_eq!(frames, 120);
        }
    }

    #[test]
    fn outage_mode_records_nothing_while_every_destination_streams_or_stops_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), Mode::Outage, 60, 200, |i, d| match i {
            0 => {
                d.set(Status::Streaming);
                d.count_frame_sent();
            }
            150 => d.set(Status::Stopped),
            _ => {}
        });
        assert_eq!(finished(dir.path()), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_destination_that_never_connected_is_an_outage_only_after_its_first_connect_time() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), Mode::Outage, 60, 100, |_, d| {
            d.set(Status::Connecting)
        });
        assert_eq!(
            finished(dir.path()),
            Vec::<PathBuf>::new(),
            "within {FIRST_CONNECT:?}"
        );
    }

    #[test]
    fn always_mode_starts_a_segment_at_the_first_keyframe_after_segment_s() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), Mode::Always, 2, 100, |_, _| {});
        let files = finished(dir.path());
        // 2 s at 30 fps is frame 60, a keyframe: segments of 60 and 40 frames.
        assert_eq!(files.len(), 2, "{files:?}");
        let frames: Vec<_> = files.iter().filter_map(|f| frames_in(f)).collect();
        if !frames.is_empty() {
            assert_eq!(frames, [60, 40]);
        }
    }
}
