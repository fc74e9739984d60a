//! The audio track: what YouTube, Facebook and Twitch require next to the video, as AAC-LC, and
//! the sound of a microphone when one is configured.
//!
//! Owns: the audio formats campush sends ([`AudioFormat`]: 44.1 or 48 kHz, mono or stereo), the
//! AudioSpecificConfig that describes them (ISO/IEC 14496-3 §1.6.2.1), the `[audio]` settings
//! ([`RawAudio`] → [`AudioSpec::check`]), the [`AudioSource`] interface the publisher and the
//! recorder pull frames from, and the running track they are handed ([`AudioTrack`]).
//!
//! Shape: an audio source produces AAC access units stamped on the same monotonic capture clock
//! as the video frames. Each publisher owns one source handle; on every connection it says
//! where the connection's media starts ([`AudioSource::start`], the capture time of the first
//! keyframe), and before writing a video frame captured at `t` it takes every audio frame
//! stamped `<= t` ([`AudioSource::next_until`]), so audio and video leave interleaved by
//! timestamp and the server's muxer never has to hold one track back waiting for the other.
//!
//! The modules, in the order sound flows through them:
//!
//! | module | owns |
//! |---|---|
//! | [`pcm`] | [`pcm::PcmInput`]: what a capture device (ALSA, or a generator) delivers |
//! | [`convert`] | S16/S32, mono/stereo in → the encoder's f32 frames out (down/up-mix) |
//! | [`resample`] | a device at another rate than the encoder's, converted to the encoder's |
//! | [`drift`] | the device's clock held against CLOCK_MONOTONIC; single-sample corrections |
//! | [`encoder`] | AAC-LC encoding, one 1024-sample frame at a time, one block behind; the comparison |
//! | [`aac`] | campush's AAC-LC encoder: MDCT, quantisation, rate control, bitstream, codebooks |
//! | [`ring`] | the shared ring of encoded frames every destination reads with its own cursor |
//! | [`mic`] | the capture thread that runs the above, reopens a lost device, fills silence |
//! | [`silent`] | [`SilentAac`]: the silent track (fixed frames, no encoder) |
//!
//! Invariants: no allocation per frame (frames are static, or owned by the source and lent out);
//! timestamps are strictly increasing within a connection and never precede its start.

pub mod aac;
pub mod alsa_input;
pub mod convert;
pub mod drift;
pub mod encoder;
pub mod mic;
pub mod pcm;
pub mod resample;
pub mod ring;
pub mod silent;

use std::fmt;

use serde::Deserialize;

use crate::setting::Invalid;

pub use silent::{silent_frame, SilentAac, SILENT_MONO, SILENT_STEREO};

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

/// A microphone: its ALSA device, the format it is encoded to, and the AAC bit rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicSpec {
    /// The ALSA device as written after `alsa:` (`hw:1,0`, `hw:Device,0`).
    pub device: String,
    pub format: AudioFormat,
    pub bitrate_kbps: u32,
}

impl MicSpec {
    /// How the status file and the logs name it: `alsa:hw:1,0`.
    pub fn label(&self) -> String {
        format!("alsa:{}", self.device)
    }
}

/// What the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSpec {
    /// No audio track.
    #[default]
    None,
    /// A silent AAC-LC track.
    Silent(AudioFormat),
    /// A microphone through ALSA, encoded to AAC-LC.
    Mic(MicSpec),
}

/// Default AAC bit rate, kbit/s: 96 for stereo, 64 for mono.
pub fn default_kbps(channels: u8) -> u32 {
    if channels == 1 {
        64
    } else {
        96
    }
}

/// Bit rates `[audio] bitrate_kbps` accepts for `channels`: 32 kbit/s at least (below it AAC-LC
/// speech turns metallic), 160 per channel at most (above it nothing is audibly gained).
pub fn kbps_bounds(channels: u8) -> (u32, u32) {
    (32, 160 * u32::from(channels.max(1)))
}

/// Checks the device name after `alsa:` with the ALSA capture code's own parser (`hw:CARD,DEV`,
/// CARD a number or an id; see [`crate::alsa::device::DeviceName`]).
pub fn check_alsa_device(device: &str) -> Result<(), String> {
    if device.is_empty() {
        return Err(
            "\"alsa:\" needs a device name, e.g. \"alsa:hw:1,0\" (campush probe lists them)".into(),
        );
    }
    if device.len() > 64 || device.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{device:?} is not an ALSA device name (e.g. hw:1,0 or hw:Device,0)"
        ));
    }
    crate::alsa::device::DeviceName::parse(device)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl AudioSpec {
    pub fn format(&self) -> Option<AudioFormat> {
        match self {
            AudioSpec::None => None,
            AudioSpec::Silent(f) => Some(*f),
            AudioSpec::Mic(m) => Some(m.format),
        }
    }

    /// Bit rate to announce in `onMetaData`, kbit/s.
    pub fn kbps(&self) -> Option<f64> {
        match self {
            AudioSpec::None => None,
            AudioSpec::Silent(f) => Some(SilentAac::new(*f).kbps()),
            AudioSpec::Mic(m) => Some(f64::from(m.bitrate_kbps)),
        }
    }

    /// The microphone, if this is one.
    pub fn mic(&self) -> Option<&MicSpec> {
        match self {
            AudioSpec::Mic(m) => Some(m),
            _ => None,
        }
    }
}

/// `[audio]` of the configuration file, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudio {
    /// `silent` (default), `none`, or `alsa:DEVICE`.
    pub source: Option<String>,
    /// 44100 or 48000 (default).
    pub rate: Option<u32>,
    /// 1 or 2 (default).
    pub channels: Option<u8>,
    /// AAC bit rate of a microphone, kbit/s (default 96 stereo, 64 mono).
    pub bitrate_kbps: Option<u32>,
}

impl AudioSpec {
    /// The track `[audio]` asks for: silent 48 kHz stereo unless told otherwise.
    pub fn check(raw: &RawAudio) -> Result<AudioSpec, Invalid> {
        let default = AudioFormat::default();
        let rate = raw.rate.unwrap_or(default.rate);
        AudioFormat::new(rate, default.channels).map_err(|m| Invalid::new("rate", m))?;
        let format = AudioFormat::new(rate, raw.channels.unwrap_or(default.channels))
            .map_err(|m| Invalid::new("channels", m))?;
        let source = raw.source.as_deref().map(str::trim);
        let is_mic = source.is_some_and(|s| s.starts_with("alsa:"));
        // Checked whatever the source (the template sets it); only a microphone uses it.
        let kbps = raw.bitrate_kbps.unwrap_or(default_kbps(format.channels));
        let (lo, hi) = kbps_bounds(format.channels);
        if !(lo..=hi).contains(&kbps) {
            return Err(Invalid::new(
                "bitrate_kbps",
                format!(
                    "{kbps}: expected {lo} to {hi} kbit/s for {} channel(s)",
                    format.channels
                ),
            ));
        }
        match source {
            None | Some("silent") => Ok(AudioSpec::Silent(format)),
            Some("none") => Ok(AudioSpec::None),
            Some(s) if is_mic => {
                let device = s["alsa:".len()..].trim();
                check_alsa_device(device).map_err(|m| Invalid::new("source", m))?;
                Ok(AudioSpec::Mic(MicSpec {
                    device: device.to_owned(),
                    format,
                    bitrate_kbps: kbps,
                }))
            }
            Some(other) => Err(Invalid::new(
                "source",
                format!(
                    "{other:?}: expected \"silent\" (a silent AAC track, which YouTube and Facebook need), \"none\", or \"alsa:DEVICE\" (a microphone, e.g. \"alsa:hw:1,0\")"
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
            AudioSpec::Mic(m) => write!(
                f,
                "alsa:{}, {} at {} kbit/s",
                m.device, m.format, m.bitrate_kbps
            ),
        }
    }
}

/// The audio track as it runs: what a publisher or the recorder opens its source from.
#[derive(Clone, Default)]
pub enum AudioTrack {
    /// No audio track.
    #[default]
    None,
    /// A silent track, one [`SilentAac`] per destination.
    Silent(AudioFormat),
    /// The running microphone: each destination gets its own cursor on the shared ring.
    Mic(mic::MicFeed),
}

impl AudioTrack {
    pub fn format(&self) -> Option<AudioFormat> {
        match self {
            AudioTrack::None => None,
            AudioTrack::Silent(f) => Some(*f),
            AudioTrack::Mic(feed) => Some(feed.format()),
        }
    }

    /// A source for one destination, or `None` without audio.
    pub fn open(&self) -> Option<Box<dyn AudioSource>> {
        match self {
            AudioTrack::None => None,
            AudioTrack::Silent(f) => Some(Box::new(SilentAac::new(*f))),
            AudioTrack::Mic(feed) => Some(Box::new(feed.reader())),
        }
    }

    /// The track of a specification that needs no running microphone (a microphone's becomes
    /// a silent track of its format: the stream stays valid).
    pub fn without_mic(spec: &AudioSpec) -> AudioTrack {
        match spec.format() {
            None => AudioTrack::None,
            Some(f) => AudioTrack::Silent(f),
        }
    }
}

impl fmt::Debug for AudioTrack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioTrack::None => f.write_str("None"),
            AudioTrack::Silent(format) => write!(f, "Silent({format})"),
            AudioTrack::Mic(feed) => write!(f, "Mic({})", feed.format()),
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
