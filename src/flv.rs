//! FLV tag bodies, as carried in RTMP messages (video = type 9, audio = type 8, data = type 18).
//!
//! Owns the byte layout of: the `@setDataFrame`/`onMetaData` script data, the AVC sequence header
//! (AVCPacketType 0, carrying the AVCDecoderConfigurationRecord) and AVC NALU tags (AVCPacketType
//! 1, length-prefixed NAL units). Spec: Adobe FLV File Format v10.1, Annex E.4.3.1 (VIDEODATA,
//! AVCVIDEOPACKET) and E.4.4 (SCRIPTDATA); ISO/IEC 14496-15 for the record and sample format.
//! Audio: AAC sequence headers (AACPacketType 0, carrying the AudioSpecificConfig) and raw AAC
//! frames (AACPacketType 1), E.4.2.1 (AUDIODATA, AACAUDIODATA).
//!
//! RTMP carries the tag *body* only: no 11-byte FLV tag header and no PreviousTagSize; the
//! timestamp travels in the RTMP message header. So a body is independent of the connection and
//! is written once per frame, then shared by every destination.
//!
//! This module is the one writer of FLV bytes: [`VideoTag`] builds each frame's AVC NALU body on
//! the source thread (header, then the access unit's NAL units length-prefixed by `h264::avcc`),
//! [`AudioTag`] each AAC body in the publisher, and the free functions the sequence headers and
//! the script data.
//!
//! Invariants: every writer appends to a caller-provided `Vec` (or the buffer its type owns) and
//! allocates nothing when it has capacity. Composition time (PTS − DTS) is 0 for streams without
//! B-frames (cameras and the Pi encoder); for streams with B-frames it comes from the picture
//! order (`h264::order`).

use crate::amf0;
use crate::h264;

/// FLV codec id for AVC (H.264).
pub const CODEC_AVC: u8 = 7;
/// VIDEODATA FrameType 1: key frame.
const FRAME_KEY: u8 = 1;
/// VIDEODATA FrameType 2: inter frame.
const FRAME_INTER: u8 = 2;

/// FLV SoundFormat for AAC.
pub const CODEC_AAC: u8 = 10;
/// The AUDIODATA header byte for AAC: SoundFormat 10, SoundRate 3 (44 kHz), SoundSize 1
/// (16-bit), SoundType 1 (stereo). The spec requires these values for AAC whatever the real
/// rate and channel count, which the AudioSpecificConfig carries.
pub const AAC_HEADER: u8 = (CODEC_AAC << 4) | (3 << 2) | (1 << 1) | 1;

/// AACPacketType values (E.4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AacPacketType {
    SequenceHeader = 0,
    Raw = 1,
}

/// Appends an AAC sequence header tag body wrapping `audio_specific_config`.
pub fn write_aac_sequence_header(out: &mut Vec<u8>, audio_specific_config: &[u8]) {
    out.extend_from_slice(&[AAC_HEADER, AacPacketType::SequenceHeader as u8]);
    out.extend_from_slice(audio_specific_config);
}

/// Appends a raw AAC tag body wrapping one `raw_data_block`.
pub fn write_aac_frame(out: &mut Vec<u8>, raw_data_block: &[u8]) {
    out.extend_from_slice(&[AAC_HEADER, AacPacketType::Raw as u8]);
    out.extend_from_slice(raw_data_block);
}

/// Largest AAC tag body: AAC allows 6144 bits per channel per frame, so 1536 bytes for stereo,
/// plus the 2-byte tag header; rounded up.
pub const MAX_AAC_TAG_LEN: usize = 2048;

/// One AAC tag body at a time, in a buffer allocated once ([`MAX_AAC_TAG_LEN`]).
#[derive(Debug)]
pub struct AudioTag {
    body: Vec<u8>,
}

impl Default for AudioTag {
    fn default() -> Self {
        AudioTag {
            body: Vec::with_capacity(MAX_AAC_TAG_LEN),
        }
    }
}

impl AudioTag {
    pub fn new() -> Self {
        Self::default()
    }

    /// The AAC sequence header tag body carrying `audio_specific_config`.
    pub fn sequence_header(&mut self, audio_specific_config: &[u8]) -> &[u8] {
        self.body.clear();
        write_aac_sequence_header(&mut self.body, audio_specific_config);
        &self.body
    }

    /// The raw AAC tag body carrying one `raw_data_block`.
    pub fn frame(&mut self, raw_data_block: &[u8]) -> &[u8] {
        self.body.clear();
        write_aac_frame(&mut self.body, raw_data_block);
        &self.body
    }
}

/// AVCPacketType values (E.4.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AvcPacketType {
    SequenceHeader = 0,
    Nalu = 1,
    EndOfSequence = 2,
}

/// Appends the 5-byte VIDEODATA + AVCVIDEOPACKET header with a composition time of 0.
pub fn write_video_header(out: &mut Vec<u8>, keyframe: bool, packet: AvcPacketType) {
    out.extend_from_slice(&video_header(keyframe, packet, 0));
}

/// Length of [`video_header`].
pub const VIDEO_HEADER_LEN: usize = 5;

/// The 5-byte VIDEODATA + AVCVIDEOPACKET header; `composition_ms` is PTS − DTS in milliseconds
/// (SI24, clamped to its range).
pub fn video_header(
    keyframe: bool,
    packet: AvcPacketType,
    composition_ms: i32,
) -> [u8; VIDEO_HEADER_LEN] {
    let frame_type = if keyframe { FRAME_KEY } else { FRAME_INTER };
    let cts = composition_ms
        .clamp(-(1 << 23), (1 << 23) - 1)
        .to_be_bytes();
    [
        (frame_type << 4) | CODEC_AVC,
        packet as u8,
        cts[1],
        cts[2],
        cts[3],
    ]
}

/// Appends an AVC sequence header tag body wrapping `decoder_config`
/// (an AVCDecoderConfigurationRecord).
pub fn write_sequence_header(out: &mut Vec<u8>, decoder_config: &[u8]) {
    write_video_header(out, true, AvcPacketType::SequenceHeader);
    out.extend_from_slice(decoder_config);
}

/// Upper bound of the tag body size for an Annex B access unit of `annexb_len` bytes: the header,
/// plus one extra byte per 3-byte start code (a 4-byte length replaces it).
pub fn access_unit_bound(annexb_len: usize) -> usize {
    5 + annexb_len + annexb_len / 3 + 4
}

/// The AVC NALU tag body of one access unit, in a buffer it owns and reuses.
///
/// [`begin`](Self::begin) leaves room for the 5-byte header, [`push_nal_unit`](Self::push_nal_unit)
/// appends each NAL unit length-prefixed (ISO/IEC 14496-15 sample format, `h264::avcc`: AUD and
/// filler data dropped), [`finish`](Self::finish) writes the header once the frame type and
/// composition time are known. [`swap`](Self::swap) then exchanges the body with the frame's
/// pool slot buffer, which becomes the next body's buffer: no copy, and no allocation once the
/// buffers have grown to the stream's largest frame. Growth happens in `begin` only, and is logged.
#[derive(Debug)]
pub struct VideoTag {
    body: Vec<u8>,
}

impl VideoTag {
    /// A body with room for an access unit of `annexb_len` Annex B bytes.
    pub fn with_capacity(annexb_len: usize) -> Self {
        VideoTag {
            body: Vec::with_capacity(access_unit_bound(annexb_len)),
        }
    }

    /// Starts the body of an access unit of `annexb_len` Annex B bytes, growing the buffer first
    /// if it could not hold it.
    pub fn begin(&mut self, annexb_len: usize) {
        let bound = access_unit_bound(annexb_len);
        self.body.clear();
        if self.body.capacity() < bound {
            log::info!(
                "conversion buffer grew from {} to {} bytes",
                self.body.capacity(),
                bound
            );
            self.body.reserve_exact(bound);
        }
        self.body.resize(VIDEO_HEADER_LEN, 0);
    }

    /// Appends one NAL unit of the access unit (no start code), length-prefixed.
    pub fn push_nal_unit(&mut self, nal: &[u8]) {
        h264::avcc::push_unit(nal, &mut self.body);
    }

    /// Appends units already length-prefixed (those an in-place rewrite placed before it
    /// stopped).
    pub fn push_converted(&mut self, units: &[u8]) {
        self.body.extend_from_slice(units);
    }

    /// Writes the header: key or inter frame, and PTS − DTS in milliseconds.
    pub fn finish(&mut self, keyframe: bool, composition_ms: i32) {
        let header = video_header(keyframe, AvcPacketType::Nalu, composition_ms);
        if let Some(room) = self.body.get_mut(..VIDEO_HEADER_LEN) {
            room.copy_from_slice(&header);
        }
    }

    /// The body as written so far.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Exchanges the finished body with `buffer`, which this tag reuses for the next one.
    pub fn swap(&mut self, buffer: &mut Vec<u8>) {
        std::mem::swap(&mut self.body, buffer);
    }
}

/// Appends an AVC end-of-sequence tag body (sent before a clean unpublish).
pub fn write_end_of_sequence(out: &mut Vec<u8>) {
    write_video_header(out, true, AvcPacketType::EndOfSequence);
}

/// What `onMetaData` announces. Fields that are unknown are left out rather than sent as zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: u32,
    pub height: u32,
    pub framerate: Option<f64>,
    /// Video bit rate in kbit/s, when configured.
    pub video_kbps: Option<f64>,
    /// The `encoder` string, e.g. "campush/0.1.0".
    pub encoder: &'static str,
    /// The audio track, if there is one.
    pub audio: Option<AudioMetadata>,
}

/// The audio fields of `onMetaData`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioMetadata {
    pub rate: u32,
    pub channels: u8,
    /// kbit/s.
    pub kbps: f64,
}

/// Appends the `@setDataFrame` / `onMetaData` script data body (E.4.4.2, as FMLE and OBS send it
/// when publishing: the server stores it and replays `onMetaData` to players).
pub fn write_metadata(out: &mut Vec<u8>, meta: &Metadata) {
    amf0::write_string(out, "@setDataFrame");
    amf0::write_string(out, "onMetaData");
    let count = 5
        + meta.framerate.is_some() as u32
        + meta.video_kbps.is_some() as u32
        + 5 * meta.audio.is_some() as u32;
    amf0::write_ecma_array_start(out, count);
    amf0::write_key(out, "duration");
    amf0::write_number(out, 0.0);
    amf0::write_key(out, "width");
    amf0::write_number(out, meta.width as f64);
    amf0::write_key(out, "height");
    amf0::write_number(out, meta.height as f64);
    if let Some(kbps) = meta.video_kbps {
        amf0::write_key(out, "videodatarate");
        amf0::write_number(out, kbps);
    }
    if let Some(fps) = meta.framerate {
        amf0::write_key(out, "framerate");
        amf0::write_number(out, fps);
    }
    amf0::write_key(out, "videocodecid");
    amf0::write_number(out, CODEC_AVC as f64);
    if let Some(a) = &meta.audio {
        amf0::write_key(out, "audiodatarate");
        amf0::write_number(out, a.kbps);
        amf0::write_key(out, "audiosamplerate");
        amf0::write_number(out, f64::from(a.rate));
        amf0::write_key(out, "audiosamplesize");
        amf0::write_number(out, 16.0);
        amf0::write_key(out, "stereo");
        amf0::write_bool(out, a.channels == 2);
        amf0::write_key(out, "audiocodecid");
        amf0::write_number(out, f64::from(CODEC_AAC));
    }
    amf0::write_key(out, "encoder");
    amf0::write_string(out, meta.encoder);
    amf0::write_object_end(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_nalu_header_is_0x17_01_with_zero_composition_time() {
        let mut out = Vec::new();
        write_video_header(&mut out, true, AvcPacketType::Nalu);
        assert_eq!(out, [0x17, 0x01, 0, 0, 0]);
    }

    #[test]
    fn inter_frame_nalu_header_is_0x27_01() {
        let mut out = Vec::new();
        write_video_header(&mut out, false, AvcPacketType::Nalu);
        assert_eq!(out, [0x27, 0x01, 0, 0, 0]);
    }

    #[test]
    fn composition_time_is_a_big_endian_signed_24_bit_field() {
        let at = |ms: i32| video_header(false, AvcPacketType::Nalu, ms);
        assert_eq!(at(67), [0x27, 0x01, 0, 0, 67]);
        assert_eq!(at(0x01_02_03), [0x27, 0x01, 1, 2, 3]);
        assert_eq!(at(-1), [0x27, 0x01, 0xff, 0xff, 0xff]);
        assert_eq!(at(i32::MAX), [0x27, 0x01, 0x7f, 0xff, 0xff]);
    }

    #[test]
    fn sequence_header_wraps_the_record_after_a_key_header() {
        let mut out = Vec::new();
        write_sequence_header(&mut out, &[1, 0x64, 0, 0x28, 0xff]);
        assert_eq!(out, [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x28, 0xff]);
    }

    /// AUD, SPS-less IDR slice with a 3-byte start code, second slice with 4-byte start code.
    const IDR_ACCESS_UNIT: [u8; 18] = [
        0, 0, 0, 1, 0x09, 0xf0, // AUD
        0, 0, 1, 0x65, 0x88, 0x84, // IDR slice
        0, 0, 0, 1, 0x65, 0x11, // IDR slice 2
    ];

    fn video_tag_of(annexb: &[u8], keyframe: bool, composition_ms: i32) -> VideoTag {
        let mut tag = VideoTag::with_capacity(annexb.len());
        tag.begin(annexb.len());
        for nal in h264::nal_units(annexb) {
            tag.push_nal_unit(nal);
        }
        tag.finish(keyframe, composition_ms);
        tag
    }

    #[test]
    fn access_unit_becomes_length_prefixed_nal_units_without_aud() {
        let tag = video_tag_of(&IDR_ACCESS_UNIT, true, 0);
        assert_eq!(
            tag.body(),
            [0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x65, 0x11]
        );
        assert!(tag.body().len() <= access_unit_bound(IDR_ACCESS_UNIT.len()));
    }

    #[test]
    fn a_video_tag_header_carries_the_frame_type_and_composition_time() {
        let tag = video_tag_of(&IDR_ACCESS_UNIT[6..12], false, 67);
        assert_eq!(
            tag.body(),
            [0x27, 1, 0, 0, 67, 0, 0, 0, 3, 0x65, 0x88, 0x84]
        );
    }

    #[test]
    fn a_video_tag_swaps_its_body_out_and_reuses_the_buffer_it_gets_without_allocating() {
        let mut tag = video_tag_of(&IDR_ACCESS_UNIT, true, 0);
        let expected = tag.body().to_vec();
        let mut slot = Vec::with_capacity(access_unit_bound(IDR_ACCESS_UNIT.len()));
        let reused = slot.as_ptr();
        tag.swap(&mut slot);
        assert_eq!(slot, expected, "the slot holds the finished body");
        tag.begin(IDR_ACCESS_UNIT.len());
        for nal in h264::nal_units(&IDR_ACCESS_UNIT) {
            tag.push_nal_unit(nal);
        }
        tag.finish(true, 0);
        assert_eq!(
            tag.body().as_ptr(),
            reused,
            "the next body is written in the slot's buffer"
        );
        assert_eq!(tag.body(), &expected[..]);
    }

    #[test]
    fn an_audio_tag_reuses_one_buffer_for_every_body() {
        let mut tag = AudioTag::new();
        let first = tag.sequence_header(&[0x11, 0x90]).as_ptr();
        assert_eq!(tag.frame(&[0x21; 1536])[..3], [0xaf, 0x01, 0x21]);
        assert_eq!(tag.frame(&[0x21; 1536]).as_ptr(), first);
    }

    #[test]
    fn end_of_sequence_is_0x17_02() {
        let mut out = Vec::new();
        write_end_of_sequence(&mut out);
        assert_eq!(out, [0x17, 2, 0, 0, 0]);
    }

    #[test]
    fn metadata_is_set_data_frame_on_metadata_ecma_array() {
        let mut out = Vec::new();
        write_metadata(
            &mut out,
            &Metadata {
                width: 1280,
                height: 720,
                framerate: Some(30.0),
                video_kbps: None,
                encoder: "campush/test",
                audio: None,
            },
        );
        let mut input = &out[..];
        let a = amf0::decode(&mut input).unwrap();
        let b = amf0::decode(&mut input).unwrap();
        let c = amf0::decode(&mut input).unwrap();
        assert!(input.is_empty(), "trailing bytes after the ECMA array");
        assert_eq!(a.as_str(), Some("@setDataFrame"));
        assert_eq!(b.as_str(), Some("onMetaData"));
        assert_eq!(c.get("width").and_then(|v| v.as_number()), Some(1280.0));
        assert_eq!(c.get("height").and_then(|v| v.as_number()), Some(720.0));
        assert_eq!(c.get("framerate").and_then(|v| v.as_number()), Some(30.0));
        assert_eq!(c.get("videocodecid").and_then(|v| v.as_number()), Some(7.0));
        assert_eq!(
            c.get("encoder").and_then(|v| v.as_str()),
            Some("campush/test")
        );
        assert!(c.get("videodatarate").is_none());
        // The ECMA array announces exactly the number of properties it holds.
        assert_eq!(&out[29..34], &[0x08, 0, 0, 0, 6]);
    }

    #[test]
    fn aac_tags_start_with_0xaf_then_the_packet_type() {
        let mut out = Vec::new();
        write_aac_sequence_header(&mut out, &[0x11, 0x90]);
        assert_eq!(out, [0xaf, 0x00, 0x11, 0x90]);
        out.clear();
        write_aac_frame(&mut out, &[0x01, 0x18, 0x20, 0x07]);
        assert_eq!(out, [0xaf, 0x01, 0x01, 0x18, 0x20, 0x07]);
    }

    #[test]
    fn metadata_with_audio_announces_the_aac_track() {
        let mut out = Vec::new();
        write_metadata(
            &mut out,
            &Metadata {
                width: 640,
                height: 480,
                framerate: None,
                video_kbps: None,
                encoder: "campush/test",
                audio: Some(AudioMetadata {
                    rate: 44_100,
                    channels: 1,
                    kbps: 1.5,
                }),
            },
        );
        let mut input = &out[..];
        let _ = amf0::decode(&mut input).unwrap();
        let _ = amf0::decode(&mut input).unwrap();
        let c = amf0::decode(&mut input).unwrap();
        assert!(input.is_empty());
        let num = |k: &str| c.get(k).and_then(|v| v.as_number());
        assert_eq!(num("audiocodecid"), Some(10.0));
        assert_eq!(num("audiosamplerate"), Some(44_100.0));
        assert_eq!(num("audiosamplesize"), Some(16.0));
        assert_eq!(num("audiodatarate"), Some(1.5));
        assert_eq!(c.get("stereo"), Some(&amf0::Value::Boolean(false)));
        // 5 video/common properties + 5 audio ones.
        assert_eq!(&out[29..34], &[0x08, 0, 0, 0, 10]);
    }
}
