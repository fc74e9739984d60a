//! The audio track: what YouTube, Facebook and Twitch require next to the video, as AAC-LC.
//!
//! Owns: the audio formats campush sends ([`AudioFormat`]: 44.1 or 48 kHz, mono or stereo), the
//! AudioSpecificConfig that describes them (ISO/IEC 14496-3 §1.6.2.1), the [`AudioSource`]
//! interface the publisher pulls frames from, and its one implementation today, [`SilentAac`].
//!
//! Shape (so that a microphone can be added without reshaping it): an audio source produces
//! AAC access units stamped on the same monotonic capture clock as the video frames. Each
//! publisher owns one source handle; on every connection it says where the connection's media
//! starts ([`AudioSource::start`], the capture time of the first keyframe), and before writing a
//! video frame captured at `t` it takes every audio frame stamped `<= t`
//! ([`AudioSource::next_until`]), so audio and video leave interleaved by timestamp and the
//! server's muxer never has to hold one track back waiting for the other. A future ALSA → AAC
//! source would fill a ring of encoded frames from its own thread and answer `next_until` from
//! it; the publisher would not change.
//!
//! [`SilentAac`] needs no encoder: a silent AAC-LC frame is a fixed byte string. Each frame is one
//! `raw_data_block` with one channel element whose `max_sfb` is 0 (no scale factor bands, hence
//! no spectral data: every coefficient is zero) followed by `ID_END`. The bytes are exactly what
//! ffmpeg's AAC encoder emits for digital silence (global gain 140, KBD window), so every
//! decoder that reads ffmpeg's output reads these; the unit tests rebuild them from the
//! bitstream syntax. One frame is 1024 samples; frame `n` of a connection is stamped
//! `start + n * 1024 / rate` seconds, computed exactly from `n` each time, so there is no drift.
//!
//! Invariants: no allocation per frame (frames are static, or owned by the source and lent out);
//! timestamps are strictly increasing within a connection and never precede its start.
//!
//! Settings: `[audio]` ([`RawAudio`] → [`AudioSpec::check`]).

pub mod alsa_input;
pub mod pcm;

use std::fmt;

use serde::Deserialize;

use crate::setting::Invalid;

/// Samples per AAC-LC frame (per channel).
pub const SAMPLES_PER_FRAME: u64 = 1024;

/// An AAC-LC stream format campush can announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// 44100 or 48000 Hz.
    pub rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u8,
}

impl Default for AudioFormat {
    /// 48 kHz stereo, what YouTube and Facebook recommend.
    fn default() -> Self {
        AudioFormat {
            rate: 48_000,
            channels: 2,
        }
    }
}

impl AudioFormat {
    /// Checks the rate and channel count.
    pub fn new(rate: u32, channels: u8) -> Result<AudioFormat, String> {
        if !matches!(rate, 44_100 | 48_000) {
            return Err(format!("audio rate {rate}: expected 44100 or 48000"));
        }
        if !matches!(channels, 1 | 2) {
            return Err(format!("audio channels {channels}: expected 1 or 2"));
        }
        Ok(AudioFormat { rate, channels })
    }

    /// `samplingFrequencyIndex` (ISO/IEC 14496-3 Table 1.18).
    pub fn sampling_index(self) -> u8 {
        match self.rate {
            96_000 => 0,
            88_200 => 1,
            64_000 => 2,
            48_000 => 3,
            44_100 => 4,
            32_000 => 5,
            24_000 => 6,
            22_050 => 7,
            16_000 => 8,
            12_000 => 9,
            11_025 => 10,
            8_000 => 11,
            _ => 15,
        }
    }

    /// The 2-byte AudioSpecificConfig: audioObjectType 2 (AAC LC, 5 bits),
    /// samplingFrequencyIndex (4 bits), channelConfiguration (4 bits), then GASpecificConfig:
    /// frameLengthFlag 0 (1024 samples), dependsOnCoreCoder 0, extensionFlag 0.
    pub fn audio_specific_config(self) -> [u8; 2] {
        const AAC_LC: u16 = 2;
        let bits = (AAC_LC << 11)
            | (u16::from(self.sampling_index()) << 7)
            | (u16::from(self.channels) << 3);
        bits.to_be_bytes()
    }

    /// Capture time of frame `n` after `start_us`, in microseconds, exact to the microsecond.
    pub fn frame_time_us(self, start_us: u64, n: u64) -> u64 {
        let offset =
            u128::from(n) * u128::from(SAMPLES_PER_FRAME) * 1_000_000 / u128::from(self.rate);
        start_us.saturating_add(offset as u64)
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layout = if self.channels == 1 { "mono" } else { "stereo" };
        write!(f, "AAC-LC {} Hz {layout}", self.rate)
    }
}

/// What the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioSpec {
    /// No audio track.
    #[default]
    None,
    /// A silent AAC-LC track.
    Silent(AudioFormat),
}

impl AudioSpec {
    pub fn format(self) -> Option<AudioFormat> {
        match self {
            AudioSpec::None => None,
            AudioSpec::Silent(f) => Some(f),
        }
    }

    /// A source for one destination, or `None` without audio.
    pub fn open(self) -> Option<Box<dyn AudioSource>> {
        match self {
            AudioSpec::None => None,
            AudioSpec::Silent(f) => Some(Box::new(SilentAac::new(f))),
        }
    }

    /// Bit rate to announce in `onMetaData`, kbit/s.
    pub fn kbps(self) -> Option<f64> {
        match self {
            AudioSpec::None => None,
            AudioSpec::Silent(f) => Some(SilentAac::new(f).kbps()),
        }
    }
}

/// `[audio]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    /// `silent` (default) or `none`.
    pub source: Option<String>,
    /// 44100 or 48000 (default).
    pub rate: Option<u32>,
    /// 1 or 2 (default).
    pub channels: Option<u8>,
}

impl AudioSpec {
    /// The track `[audio]` asks for: silent 48 kHz stereo unless told otherwise.
    pub fn check(raw: &RawAudio) -> Result<AudioSpec, Invalid> {
        let default = AudioFormat::default();
        let rate = raw.rate.unwrap_or(default.rate);
        AudioFormat::new(rate, default.channels).map_err(|m| Invalid::new("rate", m))?;
        let format = AudioFormat::new(rate, raw.channels.unwrap_or(default.channels))
            .map_err(|m| Invalid::new("channels", m))?;
        match raw.source.as_deref().map(str::trim) {
            None | Some("silent") => Ok(AudioSpec::Silent(format)),
            Some("none") => Ok(AudioSpec::None),
            Some(other) => Err(Invalid::new(
                "source",
                format!(
                    "{other:?}: expected \"silent\" (a silent AAC track, which YouTube and Facebook need) or \"none\""
                ),
            )),
        }
    }
}

impl fmt::Display for AudioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSpec::None => f.write_str("none"),
            AudioSpec::Silent(format) => write!(f, "silent, {format}"),
        }
    }
}

/// One encoded audio frame, lent by its source until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame<'a> {
    /// Capture time on the monotonic clock the video uses, in microseconds.
    pub timestamp_us: u64,
    /// One AAC `raw_data_block` (no ADTS header).
    pub data: &'a [u8],
}

/// A producer of AAC-LC frames on the video's capture clock (see the module doc).
pub trait AudioSource: Send {
    fn format(&self) -> AudioFormat;

    /// A connection's media starts at capture time `start_us`: no frame before it is wanted.
    fn start(&mut self, start_us: u64);

    /// The next frame captured at or before `until_us`, if there is one. Allocation-free.
    fn next_until(&mut self, until_us: u64) -> Option<AudioFrame<'_>>;
}

/// `raw_data_block` of a silent mono frame: SCE(tag 0) { global_gain 140, ics_info: long
/// window, KBD shape, max_sfb 0; no pulse, TNS or gain control } END.
pub const SILENT_MONO: [u8; 4] = [0x01, 0x18, 0x20, 0x07];
/// `raw_data_block` of a silent stereo frame: CPE(tag 0, common_window 1) { ics_info: long
/// window, KBD shape, max_sfb 0; ms_mask_present 0; two channel streams with global_gain 140
/// and nothing else } END.
pub const SILENT_STEREO: [u8; 6] = [0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c];

/// A silent AAC-LC track: precomputed frames, no encoder.
#[derive(Debug, Clone)]
pub struct SilentAac {
    format: AudioFormat,
    start_us: u64,
    next: u64,
}

impl SilentAac {
    pub fn new(format: AudioFormat) -> Self {
        SilentAac {
            format,
            start_us: 0,
            next: 0,
        }
    }

    /// The frame every call returns.
    pub fn frame(&self) -> &'static [u8] {
        if self.format.channels == 1 {
            &SILENT_MONO
        } else {
            &SILENT_STEREO
        }
    }

    /// Bit rate of the track, kbit/s.
    pub fn kbps(&self) -> f64 {
        (self.frame().len() * 8) as f64 * f64::from(self.format.rate)
            / SAMPLES_PER_FRAME as f64
            / 1000.0
    }
}

impl AudioSource for SilentAac {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn start(&mut self, start_us: u64) {
        self.start_us = start_us;
        self.next = 0;
    }

    fn next_until(&mut self, until_us: u64) -> Option<AudioFrame<'_>> {
        let timestamp_us = self.format.frame_time_us(self.start_us, self.next);
        if timestamp_us > until_us {
            return None;
        }
        self.next += 1;
        Some(AudioFrame {
            timestamp_us,
            data: self.frame(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MSB-first bit writer, for rebuilding frames from the bitstream syntax.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn put(&mut self, value: u32, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push(value >> i & 1 == 1);
            }
            self
        }
        fn bytes(&self) -> Vec<u8> {
            self.0
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |b, (i, &bit)| b | (u8::from(bit) << (7 - i)))
                })
                .collect()
        }
    }

    /// ics_info() for a long window with KBD shape and no scale factor bands (Table 4.6).
    fn ics_info(b: &mut Bits) {
        b.put(0, 1) // ics_reserved_bit
            .put(0, 2) // window_sequence: ONLY_LONG_SEQUENCE
            .put(1, 1) // window_shape: KBD
            .put(0, 6) // max_sfb: 0, so no section, scale factor or spectral data follow
            .put(0, 1); // predictor_data_present
    }

    /// individual_channel_stream() after ics_info (Table 4.44) for max_sfb = 0.
    fn channel_stream(b: &mut Bits, global_gain: u32) {
        b.put(global_gain, 8)
            .put(0, 1) // pulse_data_present
            .put(0, 1) // tns_data_present
            .put(0, 1); // gain_control_data_present
    }

    const ID_SCE: u32 = 0;
    const ID_CPE: u32 = 1;
    const ID_END: u32 = 7;

    #[test]
    fn the_silent_mono_frame_is_an_empty_single_channel_element() {
        let mut b = Bits::default();
        b.put(ID_SCE, 3).put(0, 4); // element_instance_tag
        b.put(140, 8); // global_gain comes before ics_info in an SCE
        ics_info(&mut b);
        b.put(0, 3); // pulse, tns, gain control
        b.put(ID_END, 3);
        assert_eq!(b.bytes(), SILENT_MONO);
    }

    #[test]
    fn the_silent_stereo_frame_is_an_empty_channel_pair_with_a_common_window() {
        let mut b = Bits::default();
        b.put(ID_CPE, 3).put(0, 4).put(1, 1); // common_window
        ics_info(&mut b);
        b.put(0, 2); // ms_mask_present
        channel_stream(&mut b, 140);
        channel_stream(&mut b, 140);
        b.put(ID_END, 3);
        assert_eq!(b.bytes(), SILENT_STEREO);
    }

    #[test]
    fn audio_specific_config_byte_table() {
        for (rate, channels, asc) in [
            (48_000, 2, [0x11, 0x90]),
            (48_000, 1, [0x11, 0x88]),
            (44_100, 2, [0x12, 0x10]),
            (44_100, 1, [0x12, 0x08]),
        ] {
            let f = AudioFormat::new(rate, channels).unwrap();
            assert_eq!(f.audio_specific_config(), asc, "{f}");
        }
    }

    #[test]
    fn only_the_formats_the_platforms_take_are_accepted() {
        assert!(AudioFormat::new(32_000, 2).is_err());
        assert!(AudioFormat::new(48_000, 6).is_err());
        assert!(AudioFormat::new(48_000, 0).is_err());
    }

    #[test]
    fn frame_times_are_exact_and_never_drift() {
        let f = AudioFormat::new(44_100, 2).unwrap();
        // 44100 frames of 1024 samples are exactly 1024 s.
        assert_eq!(f.frame_time_us(7, 44_100), 7 + 1_024_000_000);
        assert_eq!(f.frame_time_us(0, 1), 23_219); // 23.2199.. ms, rounded down
        let f = AudioFormat::new(48_000, 1).unwrap();
        assert_eq!(f.frame_time_us(0, 3), 64_000);
        // Ten years of frames still do not overflow.
        assert!(f.frame_time_us(0, 15_000_000_000) > 0);
    }

    #[test]
    fn the_silent_source_gives_every_frame_up_to_the_asked_time_and_restarts_per_connection() {
        let mut s = SilentAac::new(AudioFormat::new(48_000, 2).unwrap());
        s.start(1_000_000);
        let mut got = Vec::new();
        while let Some(frame) = s.next_until(1_000_000 + 100_000) {
            assert_eq!(frame.data, SILENT_STEREO);
            got.push(frame.timestamp_us);
        }
        // 0, 21.333, 42.666, 64, 85.333 ms: five frames start within the first 100 ms.
        assert_eq!(got, [1_000_000, 1_021_333, 1_042_666, 1_064_000, 1_085_333]);
        assert!(s.next_until(1_106_665).is_none());
        assert!(s.next_until(1_106_666).is_some());
        s.start(5_000_000);
        assert_eq!(s.next_until(u64::MAX).unwrap().timestamp_us, 5_000_000);
    }

    #[test]
    fn the_silent_track_is_tiny() {
        let stereo = SilentAac::new(AudioFormat::default());
        assert!((stereo.kbps() - 2.25).abs() < 1e-9, "{}", stereo.kbps());
    }
}
