//! Fragmented MP4 (ISO/IEC 14496-12, "ISO BMFF"; 14496-15 for AVC, 14496-14 for AAC), sans-IO:
//! bytes out, no files and no clocks.
//!
//! Owns the byte layout of a recording segment:
//!
//! ```text
//! ftyp                       isom, compatible iso6 avc1 mp41
//! moov                       mvhd, then per track: trak (tkhd, mdia: mdhd, hdlr, minf: vmhd|smhd,
//!                            dinf/dref, stbl: stsd(avc1+avcC | mp4a+esds) + empty stts stsc stsz
//!                            stco), then mvex (one trex per track)
//! moof mdat                  per fragment: mfhd, traf video (tfhd default-base-is-moof, tfdt,
//! moof mdat ...              trun v1: duration, size, flags, composition offset per sample),
//!                            traf audio (tfhd with 1024-sample default, tfdt, trun: sizes);
//!                            mdat holds the fragment's video samples, then its audio samples
//! ```
//!
//! Track 1 is the video (90 kHz timescale), track 2 the AAC audio when there is one (timescale =
//! its sample rate, 1024 samples per frame). The avcC is the AVCDecoderConfigurationRecord the
//! ingest stage built from the cached SPS/PPS, byte for byte; the esds carries the track's
//! AudioSpecificConfig. A video sample is the FLV tag body minus its 5-byte header: both are
//! length-prefixed NAL units (ISO/IEC 14496-15 sample format), so no byte is rewritten.
//!
//! A fragment holds one GOP or one second of video, whichever is shorter (the caller asks
//! [`Muxer::wants_new_fragment`] before each frame). The moof comes before its mdat and nothing
//! already written is ever rewritten (no sizes patched in the file, no index at the end), so a
//! file cut short by a power loss plays up to its last complete fragment.
//!
//! Why not an mp4 crate: the ones on crates.io (mp4, mp4-rust, mp4san, re_mp4) build a box tree
//! of owned values per fragment and allocate per sample; this writer is the few boxes campush
//! needs, written straight into buffers allocated once ([`Muxer::new`]). Growth happens in one
//! logged place (a fragment larger than the media buffer, [`Muxer::add_video`]); sample tables
//! never grow: a full table ends the fragment early.

use crate::audio::{AudioFormat, SAMPLES_PER_FRAME};

/// Timescale of the video track: the MPEG 90 kHz clock.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Timescale of the movie header (only durations of 0 are written in it).
const MOVIE_TIMESCALE: u32 = 1000;
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;
/// Most video samples in one fragment: a second at 240 fps.
pub const MAX_VIDEO_SAMPLES: usize = 240;
/// Most audio samples in one fragment: more than a second of 48 kHz AAC (47 frames).
pub const MAX_AUDIO_SAMPLES: usize = 96;
/// A fragment ends after this much video, keyframe or not.
pub const MAX_FRAGMENT_US: u64 = 1_000_000;
/// Room for a fragment's video bytes before the one growth: 2 MiB, a second at 16 Mbit/s.
const MEDIA_CAPACITY: usize = 2 * 1024 * 1024;
/// Room for the init segment or a moof: both are small.
const HEAD_CAPACITY: usize = 16 * 1024;

/// sample_flags (14496-12 8.8.3.1): a sync sample depends on no other.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// sample_flags of a non-sync sample: depends on others, sample_is_non_sync_sample.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// What the init segment says about the video.
#[derive(Debug, Clone, Copy)]
pub struct VideoTrack<'a> {
    /// The AVCDecoderConfigurationRecord, exactly as built from the cached SPS/PPS.
    pub avcc: &'a [u8],
    pub width: u32,
    pub height: u32,
}

/// One video sample as the muxer takes it.
#[derive(Debug, Clone, Copy)]
pub struct VideoSample<'a> {
    /// Decode time since the start of the segment, µs.
    pub time_us: u64,
    /// Presentation minus decode time, µs (0 without B-frames).
    pub composition_us: i64,
    pub keyframe: bool,
    /// Length-prefixed NAL units.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Decode time in 90 kHz ticks since the start of the segment.
    dts: u64,
    size: u32,
    cts: i32,
    keyframe: bool,
}

/// A finished fragment: write `head`, then `video`, then `audio`, in that order.
#[derive(Debug)]
pub struct Fragment<'a> {
    /// The moof and the mdat header.
    pub head: &'a [u8],
    pub video: &'a [u8],
    pub audio: &'a [u8],
    /// Video samples in it.
    pub frames: usize,
    /// Decode time of its first video sample since the start of the segment, µs.
    pub start_us: u64,
}

impl Fragment<'_> {
    pub fn len(&self) -> usize {
        self.head.len() + self.video.len() + self.audio.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }
}

/// The writer of one segment at a time; see the module documentation.
#[derive(Debug)]
pub struct Muxer {
    head: Vec<u8>,
    video: Vec<u8>,
    audio: Vec<u8>,
    samples: Vec<Sample>,
    audio_sizes: Vec<u32>,
    /// The segment has an audio track.
    has_audio: bool,
    /// Audio frames in earlier fragments of this segment (the next one's decode time / 1024).
    audio_before: u64,
    /// Duration of the last video sample written, in ticks: the default for a last sample
    /// whose successor is unknown.
    last_duration: u64,
    sequence: u32,
    /// The buffers hold a fragment that was handed out: cleared on the next add.
    handed_out: bool,
}

impl Default for Muxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Muxer {
    /// Allocates every buffer, once.
    pub fn new() -> Self {
        Muxer {
            head: Vec::with_capacity(HEAD_CAPACITY),
            video: Vec::with_capacity(MEDIA_CAPACITY),
            audio: Vec::with_capacity(MAX_AUDIO_SAMPLES * crate::flv::MAX_AAC_TAG_LEN),
            samples: Vec::with_capacity(MAX_VIDEO_SAMPLES),
            audio_sizes: Vec::with_capacity(MAX_AUDIO_SAMPLES),
            has_audio: false,
            audio_before: 0,
            last_duration: u64::from(VIDEO_TIMESCALE / 30),
            sequence: 0,
            handed_out: false,
        }
    }

    /// Starts a segment: forgets any buffered samples and returns its ftyp + moov.
    pub fn init_segment(&mut self, video: &VideoTrack, audio: Option<AudioFormat>) -> &[u8] {
        self.clear_fragment();
        self.has_audio = audio.is_some();
        self.audio_before = 0;
        self.sequence = 0;
        self.last_duration = u64::from(VIDEO_TIMESCALE / 30);
        let out = &mut self.head;
        out.clear();
        write_ftyp(out);
        let moov = begin(out, b"moov");
        write_mvhd(out, if audio.is_some() { 3 } else { 2 });
        write_video_trak(out, video);
        if let Some(format) = audio {
            write_audio_trak(out, format);
        }
        let mvex = begin(out, b"mvex");
        write_trex(out, VIDEO_TRACK);
        if audio.is_some() {
            write_trex(out, AUDIO_TRACK);
        }
        end(out, mvex);
        end(out, moov);
        &self.head
    }

    /// Whether a video sample at `time_us` (since the segment start) must start a new fragment:
    /// it is a keyframe, or the buffered fragment holds a second of video, or a sample table is
    /// full.
    pub fn wants_new_fragment(&self, time_us: u64, keyframe: bool) -> bool {
        let Some(first) = self.samples.first().filter(|_| !self.handed_out) else {
            return false;
        };
        keyframe
            || ticks(time_us).saturating_sub(first.dts) >= ticks(MAX_FRAGMENT_US)
            || self.samples.len() >= MAX_VIDEO_SAMPLES
            || self.audio_sizes.len() >= MAX_AUDIO_SAMPLES
    }

    /// Video samples buffered for the next fragment.
    pub fn buffered_frames(&self) -> usize {
        if self.handed_out {
            0
        } else {
            self.samples.len()
        }
    }

    /// Adds a video sample to the fragment being built. The first sample of a fragment must be
    /// a keyframe only for the first fragment of a segment (the caller starts segments there).
    pub fn add_video(&mut self, sample: &VideoSample) {
        self.reset_if_handed_out();
        let mut dts = ticks(sample.time_us);
        if let Some(last) = self.samples.last() {
            // Decode times never go backwards within a track.
            dts = dts.max(last.dts);
        }
        if self.video.len() + sample.data.len() > self.video.capacity() {
            let want = (self.video.len() + sample.data.len()).next_power_of_two();
            log::info!(
                "recording buffer grew from {} to {want} bytes",
                self.video.capacity()
            );
            self.video.reserve_exact(want - self.video.len());
        }
        self.video.extend_from_slice(sample.data);
        let cts = (sample.composition_us.clamp(-(1 << 40), 1 << 40) * 9 / 100)
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        if self.samples.len() < self.samples.capacity() {
            self.samples.push(Sample {
                dts,
                size: sample.data.len() as u32,
                cts,
                keyframe: sample.keyframe,
            });
        } else {
            // Unreachable when the caller asks `wants_new_fragment` first; never grow the table.
            self.video.truncate(self.video.len() - sample.data.len());
        }
    }

    /// Adds one AAC frame (a raw_data_block) to the fragment being built. Audio frames follow
    /// each other without gaps from the segment start: frame `n` starts at `n * 1024` samples.
    pub fn add_audio(&mut self, data: &[u8]) {
        if !self.has_audio {
            return;
        }
        self.reset_if_handed_out();
        if self.audio_sizes.len() < self.audio_sizes.capacity()
            && self.audio.len() + data.len() <= self.audio.capacity()
        {
            self.audio.extend_from_slice(data);
            self.audio_sizes.push(data.len() as u32);
        }
    }

    /// Ends the fragment being built; its last video sample lasts until `end_us` (the next
    /// sample's decode time, or the end of the segment). `None` when it holds no video.
    pub fn fragment(&mut self, end_us: Option<u64>) -> Option<Fragment<'_>> {
        if self.handed_out || self.samples.is_empty() {
            return None;
        }
        self.handed_out = true;
        self.sequence = self.sequence.wrapping_add(1);
        let last = self.samples.last().map_or(0, |s| s.dts);
        let end_dts = match end_us.map(ticks) {
            Some(end) if end > last => end,
            _ => last + self.last_duration,
        };
        let out = &mut self.head;
        out.clear();
        let moof = begin(out, b"moof");
        let mfhd = begin_full(out, b"mfhd", 0, 0);
        put32(out, self.sequence);
        end(out, mfhd);

        // Video traf.
        let traf = begin(out, b"traf");
        let tfhd = begin_full(out, b"tfhd", 0, 0x02_0000); // default-base-is-moof
        put32(out, VIDEO_TRACK);
        end(out, tfhd);
        let first = self.samples.first().map_or(0, |s| s.dts);
        write_tfdt(out, first);
        // data-offset, sample duration, size, flags, composition time offset (signed: v1).
        let trun = begin_full(out, b"trun", 1, 0x0000_0f01);
        put32(out, self.samples.len() as u32);
        let video_offset_at = out.len();
        put32(out, 0);
        let mut next_dts = self.samples.iter().skip(1).map(|s| s.dts);
        for s in &self.samples {
            let duration = next_dts.next().unwrap_or(end_dts).saturating_sub(s.dts);
            self.last_duration = duration.max(1);
            put32(out, duration.min(u64::from(u32::MAX)) as u32);
            put32(out, s.size);
            put32(
                out,
                if s.keyframe {
                    FLAGS_SYNC
                } else {
                    FLAGS_NON_SYNC
                },
            );
            put32(out, s.cts as u32);
        }
        end(out, trun);
        end(out, traf);

        // Audio traf.
        let mut audio_offset_at = None;
        if self.has_audio && !self.audio_sizes.is_empty() {
            let traf = begin(out, b"traf");
            // default-base-is-moof, default-sample-duration, default-sample-flags.
            let tfhd = begin_full(out, b"tfhd", 0, 0x02_0028);
            put32(out, AUDIO_TRACK);
            put32(out, SAMPLES_PER_FRAME as u32);
            put32(out, FLAGS_SYNC);
            end(out, tfhd);
            write_tfdt(out, self.audio_before * SAMPLES_PER_FRAME);
            let trun = begin_full(out, b"trun", 0, 0x0000_0201); // data-offset, sample size
            put32(out, self.audio_sizes.len() as u32);
            audio_offset_at = Some(out.len());
            put32(out, 0);
            for &size in &self.audio_sizes {
                put32(out, size);
            }
            end(out, trun);
            end(out, traf);
            self.audio_before += self.audio_sizes.len() as u64;
        }
        end(out, moof);

        // Sample data offsets count from the first byte of the moof (default-base-is-moof).
        let moof_len = out.len() - moof;
        let video_offset = moof_len + 8;
        patch32(out, video_offset_at, video_offset as u32);
        if let Some(at) = audio_offset_at {
            patch32(out, at, (video_offset + self.video.len()) as u32);
        }
        put32(out, (8 + self.video.len() + self.audio.len()) as u32);
        out.extend_from_slice(b"mdat");

        let audio: &[u8] = if self.has_audio { &self.audio } else { &[] };
        Some(Fragment {
            head: &self.head,
            video: &self.video,
            audio,
            frames: self.samples.len(),
            start_us: first * 100 / 9,
        })
    }

    fn reset_if_handed_out(&mut self) {
        if self.handed_out {
            self.clear_fragment();
        }
    }

    fn clear_fragment(&mut self) {
        self.handed_out = false;
        self.samples.clear();
        self.audio_sizes.clear();
        self.video.clear();
        self.audio.clear();
    }
}

/// µs to 90 kHz ticks, rounded down.
fn ticks(us: u64) -> u64 {
    us / 100 * 9 + us % 100 * 9 / 100
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

fn patch32(out: &mut [u8], at: usize, v: u32) {
    if let Some(room) = out.get_mut(at..at + 4) {
        room.copy_from_slice(&v.to_be_bytes());
    }
}

/// Opens a box: a size placeholder and the type. Returns where it starts, for [`end`].
fn begin(out: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let start = out.len();
    put32(out, 0);
    out.extend_from_slice(kind);
    start
}

/// Opens a full box (version and flags follow the type).
fn begin_full(out: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = begin(out, kind);
    put32(out, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Closes the box opened at `start`: writes its size.
fn end(out: &mut [u8], start: usize) {
    let size = (out.len() - start) as u32;
    patch32(out, start, size);
}

fn write_ftyp(out: &mut Vec<u8>) {
    let ftyp = begin(out, b"ftyp");
    out.extend_from_slice(b"isom");
    put32(out, 0x200);
    for brand in [b"isom", b"iso6", b"avc1", b"mp41"] {
        out.extend_from_slice(brand);
    }
    end(out, ftyp);
}

/// The identity transformation matrix of mvhd and tkhd (16.16 and 2.30 fixed point).
fn write_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000u32] {
        put32(out, v);
    }
}

fn write_mvhd(out: &mut Vec<u8>, next_track_id: u32) {
    let mvhd = begin_full(out, b"mvhd", 0, 0);
    put32(out, 0); // creation_time
    put32(out, 0); // modification_time
    put32(out, MOVIE_TIMESCALE);
    put32(out, 0); // duration: unknown, it is in the fragments
    put32(out, 0x0001_0000); // rate 1.0
    put16(out, 0x0100); // volume 1.0
    zeros(out, 10);
    write_matrix(out);
    zeros(out, 24); // pre_defined
    put32(out, next_track_id);
    end(out, mvhd);
}

fn write_tkhd(out: &mut Vec<u8>, track: u32, audio: bool, width: u32, height: u32) {
    let tkhd = begin_full(out, b"tkhd", 0, 0x3); // enabled, in movie
    put32(out, 0);
    put32(out, 0);
    put32(out, track);
    put32(out, 0); // reserved
    put32(out, 0); // duration
    zeros(out, 8);
    put16(out, 0); // layer
    put16(out, 0); // alternate_group
    put16(out, if audio { 0x0100 } else { 0 }); // volume
    put16(out, 0);
    write_matrix(out);
    put32(out, width << 16);
    put32(out, height << 16);
    end(out, tkhd);
}

fn write_mdhd(out: &mut Vec<u8>, timescale: u32) {
    let mdhd = begin_full(out, b"mdhd", 0, 0);
    put32(out, 0);
    put32(out, 0);
    put32(out, timescale);
    put32(out, 0);
    put16(out, 0x55c4); // language "und", packed ISO-639-2/T
    put16(out, 0);
    end(out, mdhd);
}

fn write_hdlr(out: &mut Vec<u8>, handler: &[u8; 4], name: &str) {
    let hdlr = begin_full(out, b"hdlr", 0, 0);
    put32(out, 0);
    out.extend_from_slice(handler);
    zeros(out, 12);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    end(out, hdlr);
}

fn write_dinf(out: &mut Vec<u8>) {
    let dinf = begin(out, b"dinf");
    let dref = begin_full(out, b"dref", 0, 0);
    put32(out, 1);
    let url = begin_full(out, b"url ", 0, 1); // the media is in this file
    end(out, url);
    end(out, dref);
    end(out, dinf);
}

/// stbl with the sample entry and the empty tables a fragmented file has.
fn write_stbl(out: &mut Vec<u8>, entry: impl FnOnce(&mut Vec<u8>)) {
    let stbl = begin(out, b"stbl");
    let stsd = begin_full(out, b"stsd", 0, 0);
    put32(out, 1);
    entry(out);
    end(out, stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let b = begin_full(out, kind, 0, 0);
        put32(out, 0);
        end(out, b);
    }
    let stsz = begin_full(out, b"stsz", 0, 0);
    put32(out, 0); // sample_size: varies
    put32(out, 0); // sample_count
    end(out, stsz);
    end(out, stbl);
}

fn write_video_trak(out: &mut Vec<u8>, video: &VideoTrack) {
    let trak = begin(out, b"trak");
    write_tkhd(out, VIDEO_TRACK, false, video.width, video.height);
    let mdia = begin(out, b"mdia");
    write_mdhd(out, VIDEO_TIMESCALE);
    write_hdlr(out, b"vide", "VideoHandler");
    let minf = begin(out, b"minf");
    let vmhd = begin_full(out, b"vmhd", 0, 1);
    zeros(out, 8); // graphicsmode, opcolor
    end(out, vmhd);
    write_dinf(out);
    write_stbl(out, |out| {
        let avc1 = begin(out, b"avc1");
        zeros(out, 6);
        put16(out, 1); // data_reference_index
        zeros(out, 16); // pre_defined, reserved
        put16(out, video.width.min(0xffff) as u16);
        put16(out, video.height.min(0xffff) as u16);
        put32(out, 0x0048_0000); // 72 dpi
        put32(out, 0x0048_0000);
        put32(out, 0);
        put16(out, 1); // frame_count
        zeros(out, 32); // compressorname
        put16(out, 0x0018); // depth
        put16(out, 0xffff); // pre_defined = -1
        let avcc = begin(out, b"avcC");
        out.extend_from_slice(video.avcc);
        end(out, avcc);
        end(out, avc1);
    });
    end(out, minf);
    end(out, mdia);
    end(out, trak);
}

fn write_audio_trak(out: &mut Vec<u8>, format: AudioFormat) {
    let trak = begin(out, b"trak");
    write_tkhd(out, AUDIO_TRACK, true, 0, 0);
    let mdia = begin(out, b"mdia");
    write_mdhd(out, format.rate);
    write_hdlr(out, b"soun", "SoundHandler");
    let minf = begin(out, b"minf");
    let smhd = begin_full(out, b"smhd", 0, 0);
    put32(out, 0); // balance, reserved
    end(out, smhd);
    write_dinf(out);
    write_stbl(out, |out| {
        let mp4a = begin(out, b"mp4a");
        zeros(out, 6);
        put16(out, 1); // data_reference_index
        zeros(out, 8);
        put16(out, u16::from(format.channels));
        put16(out, 16); // samplesize
        put32(out, 0); // pre_defined, reserved
        put32(out, format.rate << 16);
        write_esds(out, format);
        end(out, mp4a);
    });
    end(out, minf);
    end(out, mdia);
    end(out, trak);
}

/// The ES_Descriptor of an AAC track (ISO/IEC 14496-1 7.2.6.5, 14496-14 5.6): every descriptor
/// here is shorter than 128 bytes, so each length is one byte.
fn write_esds(out: &mut Vec<u8>, format: AudioFormat) {
    let asc = format.audio_specific_config();
    let esds = begin_full(out, b"esds", 0, 0);
    let decoder_specific = 2 + asc.len();
    let decoder_config = 2 + 13 + decoder_specific;
    let sl_config = 3;
    out.extend_from_slice(&[0x03, (3 + decoder_config + sl_config) as u8]);
    put16(out, AUDIO_TRACK as u16); // ES_ID
    out.push(0); // no dependency, URL or OCR stream
    out.extend_from_slice(&[0x04, (13 + decoder_specific) as u8]);
    out.push(0x40); // objectTypeIndication: MPEG-4 Audio
    out.push((0x05 << 2) | 1); // streamType audio, upStream 0, reserved 1
    out.extend_from_slice(&[0, 0x18, 0]); // bufferSizeDB: 6144 bytes
    put32(out, 0); // maxBitrate: not announced
    put32(out, 0); // avgBitrate: not announced
    out.extend_from_slice(&[0x05, asc.len() as u8]);
    out.extend_from_slice(&asc);
    out.extend_from_slice(&[0x06, 1, 0x02]); // SLConfigDescriptor: predefined MP4
    end(out, esds);
}

fn write_trex(out: &mut Vec<u8>, track: u32) {
    let trex = begin_full(out, b"trex", 0, 0);
    put32(out, track);
    put32(out, 1); // default_sample_description_index
    put32(out, 0);
    put32(out, 0);
    put32(out, 0);
    end(out, trex);
}

fn write_tfdt(out: &mut Vec<u8>, decode_time: u64) {
    let tfdt = begin_full(out, b"tfdt", 1, 0);
    put64(out, decode_time);
    end(out, tfdt);
}

#[cfg(test)]
mod tests;
