//! The platform rules (`crate::platform`) applied to a checked configuration: what the stream
//! will be, as far as the file says, and where each finding points in it.
//!
//! A source campush encodes (`rpicam`, `auto`, `v4l2-m2m`) is known before it starts: its
//! size, rate, keyframe period (the `gop` asked for, else the 2 s campush asks for), bit rate
//! and level. A stream campush only carries (a file, a pipe, a camera that emits H.264) is
//! known by what the file says (size, rate); its keyframe spacing and level are checked on the
//! running stream by `ingest`. The Pi's encoder is the board's (`board = "rpi-4"` and the
//! other boards with `encoder`): its limits apply only there.

use crate::audio::AudioSpec;
use crate::platform::{self, Destination, Encoder, Finding, Level, Plan, Platform, Severity};
use crate::source::SourceSpec;
use crate::v4l2::{H264_LEVELS, H264_PROFILES};

use super::{Config, ConfigError};

/// Every finding for this configuration, errors first.
pub(super) fn findings(config: &Config) -> Vec<Finding> {
    let destinations: Vec<Destination> = config
        .outputs
        .iter()
        .map(|o| Destination {
            platform: Platform::of_host(&o.url.host),
            tls: o.url.scheme == crate::rtmp::Scheme::Rtmps,
        })
        .collect();
    platform::check(&plan(config), &destinations)
}

/// The first finding that cannot work, as the configuration error it is.
pub(super) fn first_error(findings: &[Finding]) -> Option<ConfigError> {
    findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .map(|f| ConfigError::value(qualified_key(f), f.message.clone()))
}

/// The warnings, one line each, naming the key they are about.
pub(super) fn warnings(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| format!("{}: {}", qualified_key(f), f.message))
        .collect()
}

fn qualified_key(f: &Finding) -> String {
    match (f.key, f.destination) {
        ("url", Some(i)) => format!("output[{}].url", i + 1),
        ("audio", _) => "audio.source".into(),
        (key, _) => format!("source.{key}"),
    }
}

/// What the configuration says the stream will be.
fn plan(config: &Config) -> Plan {
    let board_encoder = config.board.as_ref().is_some_and(|b| b.encoder().is_some());
    let configured = if board_encoder {
        Encoder::PiHardware
    } else {
        Encoder::Configured
    };
    let audio = config.audio != AudioSpec::None;
    match &config.source {
        SourceSpec::Rpicam(_) | SourceSpec::Auto => {
            let r = &config.rpicam;
            Plan {
                width: r.width,
                height: r.height,
                fps: Some(r.effective_fps()),
                gop: Some(r.effective_gop()),
                bitrate_kbps: r.bitrate_bps.map(|b| b / 1000),
                level: r.level.and_then(Level::named),
                high_profile: r.profile == Some("high"),
                audio,
                encoder: configured,
            }
        }
        SourceSpec::V4l2M2m { .. } => {
            let v = &config.v4l2;
            let fps = v.fps.or(config.fps);
            let menu = |table: &'static [(&'static str, i32)], index: Option<i32>| {
                index.and_then(|i| table.iter().find(|(_, n)| *n == i).map(|(name, _)| *name))
            };
            Plan {
                width: v.width,
                height: v.height,
                fps,
                // Unset, the encoder is asked for two seconds' worth (v4l2::m2m).
                gop: v.gop.or(fps.map(|f| (2.0 * f).round().max(1.0) as u32)),
                bitrate_kbps: v.bitrate_bps.map(|b| b / 1000),
                level: menu(H264_LEVELS, v.level).and_then(Level::named),
                high_profile: menu(H264_PROFILES, v.profile) == Some("high"),
                audio,
                encoder: configured,
            }
        }
        SourceSpec::V4l2(_) | SourceSpec::File(_) | SourceSpec::Stdin => Plan {
            width: config.v4l2.width.filter(|_| is_camera(&config.source)),
            height: config.v4l2.height.filter(|_| is_camera(&config.source)),
            fps: config.fps,
            gop: None,
            bitrate_kbps: None,
            level: None,
            high_profile: false,
            audio,
            encoder: Encoder::Carried,
        },
    }
}

fn is_camera(spec: &SourceSpec) -> bool {
    matches!(spec, SourceSpec::V4l2(_))
}
