//! Settings the platforms reject: what YouTube, Twitch and Facebook publish about the streams
//! they take, H.264's own limits (ITU-T H.264 Table A-1), and the Raspberry Pi encoder's, as
//! pure rules over what a stream is or will be.
//!
//! Owns: recognising a platform from an ingest host ([`Platform::of_host`]), the rules
//! ([`check`]: a [`Plan`] and the destinations in, [`Finding`]s out), Table A-1
//! ([`Level`]), and the watch over a running stream's keyframe spacing ([`KeyframeWatch`]).
//! No IO and no logging: `config` turns findings into check-config's warnings and errors,
//! `ingest` logs what the running stream shows.
//!
//! A finding is a warning unless the value cannot work ([`Severity::Error`]: the encoder or
//! the server would refuse it), and each one says whose rule it is and the value that works.
//!
//! | Rule | Who says so | Severity |
//! |---|---|---|
//! | keyframe interval over 4 s | YouTube ("do not exceed 4 seconds"), Facebook (same words) | warning, any destination |
//! | keyframe interval over 2 s | Twitch's broadcast requirements ("2 seconds") | warning, Twitch |
//! | level below what width × height × fps needs | Table A-1: MaxFS, MaxMBPS, frame width/height ≤ √(8·MaxFS) macroblocks | error where campush sets the level (the encoder refuses to start), warning for a stream it only carries |
//! | bitrate over the level's MaxBR | Table A-1 (× 1.25 for High profile) | warning |
//! | wider than 1920 or more than 8,192 macroblocks a frame | the Pi's encoder (bcm2835-codec) | error on a board with that encoder |
//! | more than 245,760 macroblocks a second (1080p30) | the Pi's encoder: it falls behind | warning |
//! | more than 60 fps | YouTube, Twitch, Facebook (60 at most) | warning |
//! | not 25, 30, 50 or 60 fps | Twitch's broadcast requirements | warning, Twitch |
//! | over 6,000 kbit/s | Twitch's broadcasting guidelines | warning, Twitch |
//! | over 9,000 kbit/s or larger than 1920x1080 | Facebook's Live API guide (1080p: 9,000 kbit/s at most) | warning, Facebook |
//! | no audio track | YouTube and Facebook ("must include both audio and video") | warning |
//! | `rtmp://` | Facebook takes RTMPS only | error, Facebook |
//!
//! B-frames: none of the three platforms' published requirements objects to them (campush
//! sends them with their composition times, `h264::order`), and the encoders campush drives
//! make none, so there is no B-frame rule; a platform that refuses them (Amazon IVS's
//! real-time stages) is not recognisable from its ingest host.
//!
//! Platforms are recognised by the ingest hosts they publish: `*.youtube.com`
//! (`a.rtmp.youtube.com`, `a.rtmps.youtube.com`), `*.twitch.tv`, `*.contribute.live-video.net`
//! and `*.global-contribute.live-video.net` (Twitch's ingest), `*.facebook.com`
//! (`live-api-s.facebook.com`). Any other host gets the rules that hold for every destination.

use std::fmt;

/// A platform with published ingest requirements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    YouTube,
    Twitch,
    Facebook,
}

impl Platform {
    /// The platform whose ingest `host` is, if it is one of them (case-insensitive; a trailing
    /// dot is ignored).
    pub fn of_host(host: &str) -> Option<Platform> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let under = |domain: &str| {
            host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        if under("youtube.com") {
            Some(Platform::YouTube)
        } else if [
            "twitch.tv",
            "contribute.live-video.net",
            "global-contribute.live-video.net",
        ]
        .iter()
        .any(|d| under(d))
        {
            Some(Platform::Twitch)
        } else if under("facebook.com") {
            Some(Platform::Facebook)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::YouTube => "YouTube",
            Platform::Twitch => "Twitch",
            Platform::Facebook => "Facebook",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Platform::YouTube => 1,
            Platform::Twitch => 2,
            Platform::Facebook => 4,
        }
    }
}

/// The platforms among a run's destinations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Platforms(u8);

impl Platforms {
    /// The platforms of these ingest hosts.
    pub fn of_hosts<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Platforms {
        let mut set = Platforms::default();
        for p in hosts.into_iter().filter_map(Platform::of_host) {
            set.0 |= p.bit();
        }
        set
    }

    pub fn contains(self, p: Platform) -> bool {
        self.0 & p.bit() != 0
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Works, but a platform warns, degrades or may end the stream.
    Warning,
    /// Cannot work: the encoder or the server refuses it.
    Error,
}

/// One rule a stream breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    /// The setting to change, as written in `[source]` (`gop`, `level`, `fps`, ...), or `url`
    /// for a destination's.
    pub key: &'static str,
    /// The destination it is about (its index in the list), for `url`.
    pub destination: Option<usize>,
    /// What is wrong, whose rule it is and the value that works.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// An H.264 level, with its limits from Table A-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// As written: "3.1", "1b".
    pub name: &'static str,
    /// `level_idc` (1b: 9, as the SPS of Baseline/Main/Extended streams may also say 11 with
    /// constraint_set3; the SPS reading keeps it simple and treats 11 as 1.1).
    pub idc: u8,
    /// Max macroblocks per second.
    pub max_mbps: u32,
    /// Max macroblocks per frame.
    pub max_fs: u32,
    /// Max video bit rate, kbit/s, for Baseline, Main and Extended (`cpbBrVclFactor` 1000;
    /// High: × 1.25).
    pub max_br_kbps: u32,
}

/// Table A-1 (Level limits), every level up to 5.2.
pub const LEVELS: &[Level] = &[
    level("1.0", 10, 1_485, 99, 64),
    level("1b", 9, 1_485, 99, 128),
    level("1.1", 11, 3_000, 396, 192),
    level("1.2", 12, 6_000, 396, 384),
    level("1.3", 13, 11_880, 396, 768),
    level("2.0", 20, 11_880, 396, 2_000),
    level("2.1", 21, 19_800, 792, 4_000),
    level("2.2", 22, 20_250, 1_620, 4_000),
    level("3.0", 30, 40_500, 1_620, 10_000),
    level("3.1", 31, 108_000, 3_600, 14_000),
    level("3.2", 32, 216_000, 5_120, 20_000),
    level("4.0", 40, 245_760, 8_192, 20_000),
    level("4.1", 41, 245_760, 8_192, 50_000),
    level("4.2", 42, 522_240, 8_704, 50_000),
    level("5.0", 50, 589_824, 22_080, 135_000),
    level("5.1", 51, 983_040, 36_864, 240_000),
    level("5.2", 52, 2_073_600, 36_864, 240_000),
];

const fn level(name: &'static str, idc: u8, max_mbps: u32, max_fs: u32, max_br_kbps: u32) -> Level {
    Level {
        name,
        idc,
        max_mbps,
        max_fs,
        max_br_kbps,
    }
}

impl Level {
    /// The level written as "4", "4.0", "3.1" or "1b".
    pub fn named(name: &str) -> Option<Level> {
        let name = if name.contains('.') || name.eq_ignore_ascii_case("1b") {
            name.to_string()
        } else {
            format!("{name}.0")
        };
        LEVELS
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(&name))
            .copied()
    }

    /// The level a stream's SPS declares (`level_idc`).
    pub fn of_idc(idc: u8) -> Option<Level> {
        LEVELS.iter().find(|l| l.idc == idc).copied()
    }

    /// Whether a `width` × `height` picture at `fps` fits: frame size, macroblock rate, and
    /// the frame's width and height each at most √(8·MaxFS) macroblocks (A.3.1 h, i).
    pub fn fits(&self, picture: Picture) -> bool {
        let side = (8.0 * f64::from(self.max_fs)).sqrt();
        picture.macroblocks() <= self.max_fs
            && picture.macroblocks_per_second() <= f64::from(self.max_mbps)
            && f64::from(picture.width_mbs()) <= side
            && f64::from(picture.height_mbs()) <= side
    }

    /// The highest bit rate the level allows, kbit/s, for this profile.
    pub fn max_kbps(&self, high_profile: bool) -> u32 {
        if high_profile {
            self.max_br_kbps / 4 * 5
        } else {
            self.max_br_kbps
        }
    }

    /// The lowest level a picture fits (`None`: above 5.2).
    pub fn lowest_for(picture: Picture) -> Option<Level> {
        LEVELS
            .iter()
            .filter(|l| l.name != "1b")
            .find(|l| l.fits(picture))
            .copied()
    }
}

/// A picture size and rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

impl Picture {
    fn width_mbs(&self) -> u32 {
        self.width.div_ceil(16)
    }

    fn height_mbs(&self) -> u32 {
        self.height.div_ceil(16)
    }

    pub fn macroblocks(&self) -> u32 {
        self.width_mbs() * self.height_mbs()
    }

    pub fn macroblocks_per_second(&self) -> f64 {
        f64::from(self.macroblocks()) * self.fps
    }
}

/// The Pi's H.264 encoder (bcm2835-codec, Pi Zero to 4): 1920 pixels wide at most, 8,192
/// macroblocks a frame, and about 1080p30 of throughput (level 4.0's macroblock rate).
pub const PI_ENCODER_MAX_WIDTH: u32 = 1920;
pub const PI_ENCODER_MAX_MACROBLOCKS: u32 = 8192;
pub const PI_ENCODER_MAX_MBPS: f64 = 245_760.0;

/// The platforms' frame-rate ceiling and Twitch's list.
const MAX_FPS: f64 = 60.0;
const TWITCH_RATES: &[f64] = &[25.0, 30.0, 50.0, 60.0];
const TWITCH_MAX_KBPS: u32 = 6_000;
const FACEBOOK_MAX_KBPS: u32 = 9_000;
/// Keyframe intervals, seconds.
const MAX_KEYFRAME_S: f64 = 4.0;
const TWITCH_KEYFRAME_S: f64 = 2.0;

/// Who makes the stream, which decides whether a too-low level is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoder {
    /// An encoder campush configures (v4l2-m2m, rpicam-vid): the level is its setting.
    #[default]
    Configured,
    /// The Pi's own (bcm2835-codec), configured by campush.
    PiHardware,
    /// A stream campush only carries (file, pipe, a camera that emits H.264).
    Carried,
}

/// What a stream is or will be, as far as known. Unknown values skip their rules.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Plan {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// Frames from one keyframe to the next.
    pub gop: Option<u32>,
    pub bitrate_kbps: Option<u32>,
    pub level: Option<Level>,
    pub high_profile: bool,
    /// A sound track (the silent one counts).
    pub audio: bool,
    pub encoder: Encoder,
}

impl Plan {
    fn picture(&self) -> Option<Picture> {
        match (self.width, self.height, self.fps) {
            (Some(width), Some(height), Some(fps)) if fps > 0.0 => {
                Some(Picture { width, height, fps })
            }
            _ => None,
        }
    }
}

/// One destination, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub platform: Option<Platform>,
    pub tls: bool,
}

/// Every rule `plan` breaks for these destinations, errors first.
pub fn check(plan: &Plan, destinations: &[Destination]) -> Vec<Finding> {
    let platforms = Platforms(
        destinations
            .iter()
            .filter_map(|d| d.platform)
            .fold(0, |set, p| set | p.bit()),
    );
    let mut findings = Vec::new();
    for (i, d) in destinations.iter().enumerate() {
        if d.platform == Some(Platform::Facebook) && !d.tls {
            findings.push(Finding {
                severity: Severity::Error,
                key: "url",
                destination: Some(i),
                message:
                    "Facebook takes RTMPS only: use rtmps://live-api-s.facebook.com:443/rtmp/ \
                          with the same key"
                        .into(),
            });
        }
    }
    if let (Some(gop), Some(fps)) = (plan.gop, plan.fps.filter(|f| *f > 0.0)) {
        findings.extend(keyframe_rule(f64::from(gop) / fps, fps, platforms, "gop"));
    }
    if let Some(picture) = plan.picture() {
        level_rules(plan, picture, &mut findings);
        if plan.encoder == Encoder::PiHardware {
            pi_encoder_rules(picture, &mut findings);
        }
    }
    if let Some(fps) = plan.fps {
        findings.extend(frame_rate_rule(fps, platforms));
    }
    if let Some(kbps) = plan.bitrate_kbps {
        bitrate_rules(kbps, platforms, &mut findings);
    }
    if let (Some(w), Some(h)) = (plan.width, plan.height) {
        if platforms.contains(Platform::Facebook) && u64::from(w) * u64::from(h) > 1920 * 1080 {
            findings.push(warning(
                "width",
                format!(
                    "{w}x{h}: Facebook takes at most 1920x1080 (its Live API guide); \
                     width = 1920, height = 1080"
                ),
            ));
        }
    }
    if !plan.audio {
        let silent: Vec<&str> = [Platform::YouTube, Platform::Facebook]
            .into_iter()
            .filter(|p| platforms.contains(*p))
            .map(Platform::name)
            .collect();
        if !silent.is_empty() {
            findings.push(Finding {
                severity: Severity::Warning,
                key: "audio",
                destination: None,
                message: format!(
                    "no audio track: {} refuse{} or degrade{} a stream without sound; leave \
                     [audio] out (or source = \"silent\") for the silent track",
                    silent.join(" and "),
                    if silent.len() == 1 { "s" } else { "" },
                    if silent.len() == 1 { "s" } else { "" },
                ),
            });
        }
    }
    findings.sort_by_key(|f| f.severity != Severity::Error);
    findings
}

fn warning(key: &'static str, message: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        key,
        destination: None,
        message,
    }
}

/// A keyframe every `interval_s` seconds at `fps`: over 4 s for anyone, over 2 s for Twitch.
/// `key` names the setting to change (`gop`), or is empty for a measured stream.
pub fn keyframe_rule(
    interval_s: f64,
    fps: f64,
    platforms: Platforms,
    key: &'static str,
) -> Option<Finding> {
    let limit = keyframe_limit(interval_s, fps, platforms)?;
    let two_s = (2.0 * fps).round().max(1.0);
    let fix = if key.is_empty() {
        format!("set the encoder's keyframe interval to 2 s ({two_s} frames)")
    } else {
        format!("{key} = {two_s} gives 2 s")
    };
    let message = if limit == MAX_KEYFRAME_S {
        format!(
            "a keyframe every {interval_s:.1} s: YouTube and Facebook take at most 4 s (YouTube \
             warns, Facebook may end the stream), and every viewer waits that long to start; \
             {fix}"
        )
    } else {
        format!("a keyframe every {interval_s:.1} s: Twitch requires one every 2 s; {fix}")
    };
    Some(warning(key, message))
}

/// The keyframe interval (seconds) that `interval_s` breaks, if any: with half a frame of
/// slack (60 frames at 29.97 fps is a 2 s GOP). Decides without allocating.
fn keyframe_limit(interval_s: f64, fps: f64, platforms: Platforms) -> Option<f64> {
    let slack = 0.5 / fps.max(1.0);
    if interval_s > MAX_KEYFRAME_S + slack {
        Some(MAX_KEYFRAME_S)
    } else if platforms.contains(Platform::Twitch) && interval_s > TWITCH_KEYFRAME_S + slack {
        Some(TWITCH_KEYFRAME_S)
    } else {
        None
    }
}

fn level_rules(plan: &Plan, picture: Picture, findings: &mut Vec<Finding>) {
    let Some(level) = plan.level else { return };
    let Picture { width, height, fps } = picture;
    if !level.fits(picture) {
        let works = match Level::lowest_for(picture) {
            Some(l) => format!("level {} or higher works", l.name),
            None => "no level up to 5.2 does: lower the size or the frame rate".into(),
        };
        let carried = plan.encoder == Encoder::Carried;
        findings.push(Finding {
            severity: if carried {
                Severity::Warning
            } else {
                Severity::Error
            },
            key: "level",
            destination: None,
            message: format!(
                "level {} is too low for {width}x{height} at {fps} fps: H.264 Table A-1 allows \
                 {} macroblocks a frame and {} a second at level {}, this needs {} and {:.0}{}; \
                 {works}",
                level.name,
                level.max_fs,
                level.max_mbps,
                level.name,
                picture.macroblocks(),
                picture.macroblocks_per_second(),
                if carried {
                    ""
                } else {
                    " (the encoder refuses to start)"
                },
            ),
        });
    }
    if let Some(kbps) = plan.bitrate_kbps {
        let max = level.max_kbps(plan.high_profile);
        if kbps > max {
            let works = LEVELS
                .iter()
                .find(|l| l.idc > level.idc && l.max_kbps(plan.high_profile) >= kbps)
                .map(|l| format!("level {} allows it", l.name))
                .unwrap_or_else(|| "no level up to 5.2 allows it".into());
            findings.push(warning(
                "bitrate_kbps",
                format!(
                    "{kbps} kbit/s is over level {}'s {max} kbit/s (H.264 Table A-1{}); {works}, \
                     or bitrate_kbps = {max}",
                    level.name,
                    if plan.high_profile {
                        ", High profile"
                    } else {
                        ""
                    },
                ),
            ));
        }
    }
}

fn pi_encoder_rules(picture: Picture, findings: &mut Vec<Finding>) {
    let Picture { width, height, fps } = picture;
    if width > PI_ENCODER_MAX_WIDTH || picture.macroblocks() > PI_ENCODER_MAX_MACROBLOCKS {
        findings.push(Finding {
            severity: Severity::Error,
            key: "width",
            destination: None,
            message: format!(
                "{width}x{height}: the Pi's H.264 encoder takes at most {PI_ENCODER_MAX_WIDTH} \
                 pixels wide and {PI_ENCODER_MAX_MACROBLOCKS} macroblocks a frame (1920x1080 \
                 is {}); width = 1920, height = 1080 or smaller",
                Picture {
                    width: 1920,
                    height: 1080,
                    fps
                }
                .macroblocks()
            ),
        });
    } else if picture.macroblocks_per_second() > PI_ENCODER_MAX_MBPS {
        let fps_max = (PI_ENCODER_MAX_MBPS / f64::from(picture.macroblocks())).floor();
        findings.push(warning(
            "fps",
            format!(
                "{width}x{height} at {fps} fps is {:.0} macroblocks a second: the Pi's H.264 \
                 encoder manages about {PI_ENCODER_MAX_MBPS} (1080p30) and would fall behind; \
                 fps = {fps_max} or a smaller picture",
                picture.macroblocks_per_second()
            ),
        ));
    }
}

/// More than 60 fps for any of the platforms; Twitch's list of rates.
pub fn frame_rate_rule(fps: f64, platforms: Platforms) -> Option<Finding> {
    let any = [Platform::YouTube, Platform::Twitch, Platform::Facebook]
        .into_iter()
        .any(|p| platforms.contains(p));
    if any && fps > MAX_FPS + 0.01 {
        return Some(warning(
            "fps",
            format!("{fps} fps: YouTube, Twitch and Facebook take at most 60; fps = 60 or 30"),
        ));
    }
    // 29.97 and 59.94 count as 30 and 60.
    let listed = TWITCH_RATES.iter().any(|r| (fps - r).abs() <= r * 0.0011);
    if platforms.contains(Platform::Twitch) && !listed {
        let nearest = TWITCH_RATES
            .iter()
            .copied()
            .min_by(|a, b| (fps - a).abs().total_cmp(&(fps - b).abs()))
            .unwrap_or(30.0);
        return Some(warning(
            "fps",
            format!(
                "{fps} fps: Twitch's broadcast requirements list 25, 30, 50 or 60 fps; \
                 fps = {nearest}"
            ),
        ));
    }
    None
}

fn bitrate_rules(kbps: u32, platforms: Platforms, findings: &mut Vec<Finding>) {
    for (platform, max, source) in [
        (
            Platform::Twitch,
            TWITCH_MAX_KBPS,
            "Twitch's broadcasting guidelines",
        ),
        (
            Platform::Facebook,
            FACEBOOK_MAX_KBPS,
            "Facebook's Live API guide, for 1080p",
        ),
    ] {
        if platforms.contains(platform) && kbps > max {
            findings.push(warning(
                "bitrate_kbps",
                format!(
                    "{kbps} kbit/s: {} takes at most {max} kbit/s ({source}); bitrate_kbps = {max}",
                    platform.name()
                ),
            ));
        }
    }
}

/// Watches the keyframe spacing of a running stream and says once when it breaks a
/// platform's rule (a camera or file whose GOP campush does not set). Two long intervals in a
/// row are needed: a single one is what a camera restart or a dropped keyframe looks like. No
/// allocation until it has something to say.
#[derive(Debug, Clone)]
pub struct KeyframeWatch {
    platforms: Platforms,
    last_key_us: Option<u64>,
    /// The interval before the last one broke a rule.
    long_before: bool,
    said: bool,
}

impl KeyframeWatch {
    pub fn new(platforms: Platforms) -> KeyframeWatch {
        KeyframeWatch {
            platforms,
            last_key_us: None,
            long_before: false,
            said: false,
        }
    }

    /// A frame captured at `timestamp_us`; at a keyframe, the finding if the distance from the
    /// previous keyframe breaks a rule, as did the one before, once per watch. `fps`: the
    /// stream's nominal rate.
    pub fn observe(&mut self, timestamp_us: u64, keyframe: bool, fps: f64) -> Option<Finding> {
        if !keyframe || self.said {
            return None;
        }
        let previous = self.last_key_us.replace(timestamp_us)?;
        let interval_s = timestamp_us.saturating_sub(previous) as f64 / 1e6;
        let long = keyframe_limit(interval_s, fps, self.platforms).is_some();
        if !std::mem::replace(&mut self.long_before, long) || !long {
            return None;
        }
        self.said = true;
        keyframe_rule(interval_s, fps, self.platforms, "")
    }

    /// Forget the last keyframe (frames were dropped): the next interval is measured from
    /// the next keyframe.
    pub fn restart(&mut self) {
        self.last_key_us = None;
        self.long_before = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            width: Some(1280),
            height: Some(720),
            fps: Some(30.0),
            gop: Some(60),
            bitrate_kbps: Some(3000),
            level: None,
            high_profile: false,
            audio: true,
            encoder: Encoder::Configured,
        }
    }

    fn to(hosts: &[&str]) -> Vec<Destination> {
        hosts
            .iter()
            .map(|h| Destination {
                platform: Platform::of_host(h),
                tls: true,
            })
            .collect()
    }

    fn keys(findings: &[Finding]) -> Vec<(&'static str, Severity)> {
        findings.iter().map(|f| (f.key, f.severity)).collect()
    }

    #[test]
    fn platforms_are_known_by_their_ingest_hosts_and_nothing_else() {
        for (host, p) in [
            ("a.rtmp.youtube.com", Some(Platform::YouTube)),
            ("A.RTMPS.YouTube.com.", Some(Platform::YouTube)),
            ("live.twitch.tv", Some(Platform::Twitch)),
            (
                "ingest.global-contribute.live-video.net",
                Some(Platform::Twitch),
            ),
            ("live-api-s.facebook.com", Some(Platform::Facebook)),
            ("notyoutube.com", None),
            ("youtube.com.example.org", None),
            ("127.0.0.1", None),
        ] {
            assert_eq!(Platform::of_host(host), p, "{host}");
        }
    }

    #[test]
    fn a_sound_plan_for_every_platform_has_no_finding() {
        let findings = check(
            &plan(),
            &to(&[
                "a.rtmp.youtube.com",
                "live.twitch.tv",
                "live-api-s.facebook.com",
            ]),
        );
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn a_keyframe_interval_over_4_s_warns_for_any_destination_and_names_the_gop_that_works() {
        let p = Plan {
            gop: Some(150),
            fps: Some(25.0),
            ..plan()
        };
        let f = check(&p, &to(&["127.0.0.1"]));
        assert_eq!(keys(&f), [("gop", Severity::Warning)]);
        assert!(f[0].message.contains("every 6.0 s"), "{}", f[0]);
        assert!(f[0]
            .message
            .contains("YouTube and Facebook take at most 4 s"));
        assert!(f[0].message.contains("gop = 50 gives 2 s"), "{}", f[0]);
        // 4 s exactly is allowed, and 120 frames at 29.97 fps is still 4 s.
        for (gop, fps) in [(100, 25.0), (120, 29.97)] {
            let p = Plan {
                gop: Some(gop),
                fps: Some(fps),
                ..plan()
            };
            assert!(check(&p, &to(&["127.0.0.1"])).is_empty(), "{gop} at {fps}");
        }
    }

    #[test]
    fn twitch_wants_2_s_where_others_take_4() {
        let p = Plan {
            gop: Some(90),
            ..plan()
        };
        assert!(check(&p, &to(&["a.rtmp.youtube.com"])).is_empty());
        let f = check(&p, &to(&["a.rtmp.youtube.com", "live.twitch.tv"]));
        assert_eq!(keys(&f), [("gop", Severity::Warning)]);
        assert!(f[0]
            .message
            .contains("Twitch requires one every 2 s; gop = 60"));
    }

    #[test]
    fn table_a1_gives_the_lowest_level_of_common_pictures() {
        for (w, h, fps, level) in [
            (640, 480, 30.0, "3.0"),
            (1280, 720, 30.0, "3.1"),
            (1280, 720, 60.0, "3.2"),
            (1920, 1080, 30.0, "4.0"),
            (1920, 1080, 60.0, "4.2"),
            (3840, 2160, 30.0, "5.1"),
            (176, 144, 15.0, "1.0"),
        ] {
            let p = Picture {
                width: w,
                height: h,
                fps,
            };
            assert_eq!(
                Level::lowest_for(p).map(|l| l.name),
                Some(level),
                "{w}x{h}@{fps}"
            );
        }
        // Frame size, rate and shape each bind: 8192x128 has few enough macroblocks for 4.0
        // but is wider than √(8·8192) = 256 macroblocks allows.
        let wide = Picture {
            width: 4096,
            height: 64,
            fps: 1.0,
        };
        assert!(!Level::named("3.0").unwrap().fits(wide));
        assert_eq!(Level::named("4").map(|l| l.idc), Some(40));
        assert_eq!(Level::of_idc(31).map(|l| l.name), Some("3.1"));
        assert_eq!(Level::named("4.1").unwrap().max_kbps(true), 62_500);
    }

    #[test]
    fn a_level_too_low_for_the_picture_is_an_error_where_campush_sets_it() {
        let p = Plan {
            width: Some(1920),
            height: Some(1080),
            level: Level::named("3.1"),
            ..plan()
        };
        let f = check(&p, &[]);
        assert_eq!(keys(&f), [("level", Severity::Error)]);
        assert!(
            f[0].message.contains("3600 macroblocks a frame"),
            "{}",
            f[0]
        );
        assert!(f[0].message.contains("needs 8160 and 244800"), "{}", f[0]);
        assert!(
            f[0].message.contains("level 4.0 or higher works"),
            "{}",
            f[0]
        );
        let carried = Plan {
            encoder: Encoder::Carried,
            ..p
        };
        assert_eq!(keys(&check(&carried, &[])), [("level", Severity::Warning)]);
        let enough = Plan {
            level: Level::named("4.0"),
            ..p
        };
        assert!(check(&enough, &[]).is_empty());
    }

    #[test]
    fn a_bitrate_over_the_levels_maximum_warns_with_the_level_that_allows_it() {
        let p = Plan {
            width: Some(1920),
            height: Some(1080),
            level: Level::named("4.0"),
            bitrate_kbps: Some(24_000),
            ..plan()
        };
        let f = check(&p, &[]);
        assert_eq!(keys(&f), [("bitrate_kbps", Severity::Warning)]);
        assert!(f[0].message.contains("level 4.1 allows it"), "{}", f[0]);
        let high = Plan {
            high_profile: true,
            ..p
        };
        assert!(check(&high, &[]).is_empty(), "High allows 25,000 at 4.0");
    }

    #[test]
    fn the_pi_encoder_refuses_more_than_1080p_and_falls_behind_past_1080p30() {
        let pi = Plan {
            encoder: Encoder::PiHardware,
            ..plan()
        };
        let big = Plan {
            width: Some(2028),
            height: Some(1520),
            ..pi
        };
        assert_eq!(keys(&check(&big, &[])), [("width", Severity::Error)]);
        let fast = Plan {
            width: Some(1920),
            height: Some(1080),
            fps: Some(50.0),
            gop: Some(100),
            ..pi
        };
        let f = check(&fast, &[]);
        assert_eq!(keys(&f), [("fps", Severity::Warning)]);
        assert!(f[0].message.contains("fps = 30"), "{}", f[0]);
        let fine = Plan {
            width: Some(1920),
            height: Some(1080),
            ..pi
        };
        assert!(check(&fine, &[]).is_empty());
        // The same picture through another encoder is not the Pi's business.
        assert!(check(
            &Plan {
                encoder: Encoder::Configured,
                ..big
            },
            &[]
        )
        .is_empty());
    }

    #[test]
    fn frame_rates_the_platforms_object_to() {
        let at = |fps: f64, hosts: &[&str]| {
            check(
                &Plan {
                    fps: Some(fps),
                    gop: Some((2.0 * fps).round() as u32),
                    ..plan()
                },
                &to(hosts),
            )
        };
        assert_eq!(
            keys(&at(120.0, &["a.rtmp.youtube.com"])),
            [("fps", Severity::Warning)]
        );
        assert!(at(120.0, &["127.0.0.1"]).is_empty(), "a private server");
        let f = at(15.0, &["live.twitch.tv"]);
        assert_eq!(keys(&f), [("fps", Severity::Warning)]);
        assert!(f[0].message.contains("fps = 25"), "{}", f[0]);
        assert!(at(15.0, &["a.rtmp.youtube.com"]).is_empty());
        assert!(at(29.97, &["live.twitch.tv"]).is_empty());
        assert!(at(59.94, &["live.twitch.tv"]).is_empty());
    }

    #[test]
    fn bitrates_and_sizes_over_a_platforms_guide_warn_for_that_platform_only() {
        let p = Plan {
            bitrate_kbps: Some(8000),
            ..plan()
        };
        assert!(check(&p, &to(&["a.rtmp.youtube.com"])).is_empty());
        assert_eq!(
            keys(&check(&p, &to(&["live.twitch.tv"]))),
            [("bitrate_kbps", Severity::Warning)]
        );
        assert!(check(&p, &to(&["live-api-s.facebook.com"])).is_empty());
        let big = Plan {
            width: Some(2560),
            height: Some(1440),
            fps: Some(30.0),
            ..plan()
        };
        assert_eq!(
            keys(&check(&big, &to(&["live-api-s.facebook.com"]))),
            [("width", Severity::Warning)]
        );
        assert!(check(&big, &to(&["a.rtmp.youtube.com"])).is_empty());
    }

    #[test]
    fn no_sound_warns_for_youtube_and_facebook_and_rtmp_to_facebook_cannot_work() {
        let silent = Plan {
            audio: false,
            ..plan()
        };
        assert!(check(&silent, &to(&["127.0.0.1", "live.twitch.tv"])).is_empty());
        let f = check(&silent, &to(&["a.rtmp.youtube.com"]));
        assert_eq!(keys(&f), [("audio", Severity::Warning)]);
        assert!(
            f[0].message.contains("YouTube refuses or degrades"),
            "{}",
            f[0]
        );
        let plain = [Destination {
            platform: Some(Platform::Facebook),
            tls: false,
        }];
        let f = check(&plan(), &plain);
        assert_eq!(keys(&f), [("url", Severity::Error)]);
        assert_eq!(f[0].destination, Some(0));
        assert!(f[0]
            .message
            .contains("rtmps://live-api-s.facebook.com:443/rtmp/"));
    }

    #[test]
    fn the_watch_measures_keyframe_spacing_and_says_it_once() {
        let mut w = KeyframeWatch::new(Platforms::default());
        let mut said = Vec::new();
        // 30 fps, a keyframe every 150 frames (5 s), for 40 s.
        for n in 0u64..1200 {
            if let Some(f) = w.observe(n * 33_333, n % 150 == 0, 30.0) {
                said.push((n, f.message));
            }
        }
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].0, 300, "at the third keyframe: two long intervals");
        assert!(said[0].1.contains("every 5.0 s"), "{}", said[0].1);
        assert!(said[0].1.contains("(60 frames)"), "{}", said[0].1);

        let mut w = KeyframeWatch::new(Platforms::of_hosts(["live.twitch.tv"]));
        let twitch: Vec<_> = (0u64..300)
            .filter_map(|n| w.observe(n * 33_333, n % 60 == 0, 30.0))
            .collect();
        assert!(twitch.is_empty(), "2 s is Twitch's own rule: {twitch:?}");

        // One long gap (a camera restarted, a keyframe lost) is not the encoder's interval,
        // nor is one across frames dropped.
        let mut w = KeyframeWatch::new(Platforms::default());
        let keys = [0, 2, 4, 14, 16, 18, 28, 30];
        let said: Vec<_> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                if i == 6 {
                    w.restart();
                }
                w.observe(s * 1_000_000, true, 30.0)
            })
            .collect();
        assert!(said.is_empty(), "{said:?}");
    }
}
