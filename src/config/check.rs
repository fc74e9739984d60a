//! Assembly: a [`RawConfig`] becomes a checked [`Config`].
//!
//! Owns: which section goes to which stage's check, the board profile under the user's keys, the
//! rules that span sections (a file pushed once gives up after one failed attempt; at least one
//! `[[output]]`; settings the destinations' platforms cannot take, `platforms.rs`), and the LED to show an error on when the file does not check. It checks no
//! value itself: each stage checks its own section and returns its typed settings
//! ([`SourceSettings::check`], [`Output::check`], [`PublisherSettings::check`],
//! [`Limits::check`], [`ReportSettings::check`], [`LedConfig::check`], [`AudioSpec::check`]);
//! their errors name a key in the section, which is qualified here and placed in the file by
//! `error.rs`.

use serde::Deserialize;

use super::board::Board;
use super::error::{without_file, ConfigError, FileText};
use super::platforms;
use super::raw::RawConfig;
use super::Config;
use crate::audio::AudioSpec;
use crate::bitrate::Tuning;
use crate::flv::AudioMetadata;
use crate::ingest::{AdaptiveBitrate, IngestSettings};
use crate::led::{LedConfig, RawLed};
use crate::platform::Platforms;
use crate::publisher::{Output, PublisherSettings};
use crate::queue::Limits;
use crate::record::RecordSettings;
use crate::source::settings::SourceSettings;
use crate::source::SourceSpec;
use crate::status::ReportSettings;

impl RawConfig {
    /// Validates everything and applies defaults (the board's, then campush's). An error found in
    /// a file says where in the file.
    pub fn check(&self) -> Result<Config, ConfigError> {
        self.assemble().map_err(|e| match &self.origin {
            Some(origin) => FileText::new(&origin.path, &origin.text)
                .with_values(self.secret_values())
                .locate(e),
            None => without_file(e, self.secret_values()),
        })
    }

    /// The values that may hold a stream key, wherever they came from (the file, or flags).
    fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().flat_map(|o| {
            [
                o.url.as_deref(),
                o.key.as_deref(),
                o.key_file.as_deref().and_then(|p| p.to_str()),
            ]
            .into_iter()
            .flatten()
        })
    }

    /// The LED to show an error on when this configuration does not check: its own (or its
    /// board's) if that checks on its own, else the onboard LED.
    pub fn led_or_default(&self) -> LedConfig {
        let board = self.board.as_deref().and_then(|b| Board::named(b).ok());
        LedConfig::check(led_of(&self.led, board.as_ref())).unwrap_or_default()
    }

    fn assemble(&self) -> Result<Config, ConfigError> {
        let board = match &self.board {
            Some(name) => Some(Board::named(name).map_err(|m| ConfigError::value("board", m))?),
            None => None,
        };
        let defaults = board
            .as_ref()
            .map(Board::source_defaults)
            .unwrap_or_default();
        let source = SourceSettings::check_under(&self.source, &defaults)
            .map_err(|e| ConfigError::setting("source", e))?;
        let (fps, video_kbps) = (source.fps, source.bitrate_kbps);
        if self.outputs.is_empty() {
            return Err(ConfigError::value(
                "output",
                "no destination: add an [[output]] with url = \"rtmp://host/app/key\" (or --url)",
            ));
        }
        // Relative paths in the file are taken from its directory; flags come absolute.
        let base_dir = self.origin.as_ref().and_then(|o| o.path.parent());
        let outputs = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Output::check(o, base_dir)
                    .map_err(|e| ConfigError::setting(&format!("output[{}]", i + 1), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let one_shot = matches!(source.spec, SourceSpec::File(_)) && !source.looping;
        let publisher = PublisherSettings::check(&self.network, one_shot)
            .map_err(|e| ConfigError::setting("network", e))?;
        let queue = Limits::check(&self.queue).map_err(|e| ConfigError::setting("queue", e))?;
        let report =
            ReportSettings::check(&self.status).map_err(|e| ConfigError::setting("status", e))?;
        let led = LedConfig::check(led_of(&self.led, board.as_ref()))
            .map_err(|e| ConfigError::setting("led", e))?;
        let audio = AudioSpec::check(&self.audio).map_err(|e| ConfigError::setting("audio", e))?;
        let record = (self.record.as_ref())
            .map(RecordSettings::check)
            .transpose()
            .map_err(|e| ConfigError::setting("record", e))?;
        let platforms = Platforms::of_hosts(outputs.iter().map(|o| o.url.host.as_str()));
        let config = Config {
            ingest: IngestSettings {
                platforms,
                watch_keyframes: !matches!(
                    source.spec,
                    SourceSpec::Rpicam(_) | SourceSpec::V4l2M2m { .. }
                ),
                fps,
                video_kbps: video_kbps.map(f64::from),
                adaptive_bitrate: source
                    .adaptive_floor_kbps
                    .map(|floor_kbps| AdaptiveBitrate {
                        floor_kbps,
                        tuning: Tuning::default(),
                    }),
                audio: audio.format().map(|f| AudioMetadata {
                    rate: f.rate,
                    channels: f.channels,
                    kbps: audio.kbps().unwrap_or(0.0),
                }),
            },
            source: source.spec,
            fps,
            looping: source.looping,
            pace: source.pace,
            outputs,
            publisher,
            queue,
            report,
            v4l2: source.v4l2,
            rpicam: source.rpicam,
            encoder: source.encoder,
            board,
            led,
            file: self.origin.as_ref().map(|o| o.path.clone()),
            file_holds_key: self.origin.as_ref().is_some_and(|o| o.holds_key),
            audio,
            record,
        };
        // Settings a platform, H.264 or the board's encoder cannot take (the rest are warnings).
        match platforms::first_error(&platforms::findings(&config)) {
            Some(e) => Err(e),
            None => Ok(config),
        }
    }
}

/// The `[led]` that applies: the file's, or its board's when the file has no LED key.
fn led_of<'a>(user: &'a RawLed, board: Option<&'a Board>) -> &'a RawLed {
    match board {
        Some(b) => b.led_under(user),
        None => user,
    }
}

/// The LED to show `error` on when the file could not even be read as a configuration: a file
/// that is valid TOML (with, say, a misspelt key) still names its LED in `[led]` or `board`,
/// read here on their own. Else the onboard LED.
pub fn led_from_broken_file(error: &ConfigError) -> LedConfig {
    #[derive(Deserialize)]
    struct LedOnly {
        board: Option<String>,
        #[serde(default)]
        led: RawLed,
    }
    let ConfigError::Parse { place, .. } = error else {
        return LedConfig::default();
    };
    let Ok(text) = std::fs::read_to_string(&place.path) else {
        return LedConfig::default();
    };
    match toml::from_str::<LedOnly>(text.strip_prefix('\u{feff}').unwrap_or(&text)) {
        Ok(only) => RawConfig {
            board: only.board,
            led: only.led,
            ..RawConfig::default()
        }
        .led_or_default(),
        Err(_) => LedConfig::default(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::*;
    use crate::audio::AudioFormat;
    use crate::config::board;
    use crate::led::GpioLine;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        RawConfig::parse(text, Path::new("test.toml"))?.check()
    }

    const MINIMAL: &str = r#"
[source]
spec = "file:clip.h264"

[[output]]
url = "rtmp://127.0.0.1/live/secretkey"
"#;

    #[test]
    fn a_minimal_file_gets_the_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.source, SourceSpec::File("clip.h264".into()));
        assert!(c.pace && !c.looping);
        assert_eq!(c.publisher.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.publisher.write_timeout, Duration::from_secs(5));
        assert_eq!(
            c.publisher.max_attempts,
            Some(1),
            "a file pushed once is a job"
        );
        assert_eq!(c.queue.max_duration_us, 2_000_000);
        assert_eq!(c.queue.max_bytes, 8 << 20);
        assert_eq!(c.outputs[0].url.stream_key, "secretkey");
        assert_eq!(
            c.audio,
            AudioSpec::Silent(AudioFormat::new(48_000, 2).unwrap())
        );
    }

    #[test]
    fn the_audio_section_chooses_the_track() {
        let base = "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[audio]\n";
        let c = parse(&format!("{base}source = \"none\"\n")).unwrap();
        assert_eq!(c.audio, AudioSpec::None);
        assert!(c.ingest.audio.is_none());
        let c = parse(&format!("{base}rate = 44100\nchannels = 1\n")).unwrap();
        assert_eq!(
            c.audio,
            AudioSpec::Silent(AudioFormat::new(44_100, 1).unwrap())
        );
        assert_eq!(c.ingest.audio.unwrap().rate, 44_100);
        for (text, needle) in [
            ("source = \"mic\"", "audio.source"),
            ("rate = 32000", "44100 or 48000"),
            ("channels = 6", "1 or 2"),
        ] {
            let msg = parse(&format!("{base}{text}\n")).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn a_v4l2_m2m_source_takes_its_device_settings() {
        let c = parse(
            "[source]\nspec=\"v4l2-m2m:/dev/video0\"\nwidth=1280\nheight=720\nfps=30\n\
             bitrate_kbps=2500\ngop=60\nprofile=\"high\"\nlevel=\"4.1\"\n\
             [[output]]\nurl=\"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!((c.v4l2.width, c.v4l2.height), (Some(1280), Some(720)));
        assert_eq!(c.v4l2.bitrate_bps, Some(2_500_000));
        assert_eq!(
            (c.v4l2.gop, c.v4l2.profile, c.v4l2.level),
            (Some(60), Some(4), Some(12))
        );
        assert!(!c.v4l2.repeat_sequence_header);
        assert!(
            c.describe().contains("device: size = 1280x720"),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn the_described_config_never_contains_the_key() {
        let c = parse(MINIMAL).unwrap();
        let text = c.describe();
        assert!(!text.contains("secretkey"), "{text}");
        assert!(!format!("{c:?}").contains("secretkey"));
        assert!(text.contains("127.0.0.1"));
    }

    #[test]
    fn a_separate_key_makes_the_whole_url_path_the_app() {
        let c = parse(
            "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://a.example/live2\"\nkey=\" abc \"\n",
        )
        .unwrap();
        assert_eq!(c.outputs[0].url.app, "live2");
        assert_eq!(c.outputs[0].url.stream_key, "abc");
    }

    #[test]
    fn a_url_that_ends_with_the_separate_key_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.key"), "sk-dup-4242\n").unwrap();
        for second in ["key = \"sk-dup-4242\"", "key_file = \"k.key\""] {
            let path = write(
                dir.path(),
                &format!(
                    "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/live2/sk-dup-4242\"\n{second}\n"
                ),
            );
            let msg = RawConfig::load(&path)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("line 4, column 5: output[1].url: RTMP URL ends with the stream key"),
                "{second}: {msg}"
            );
            assert!(!msg.contains("sk-dup"), "{second}: {msg}");
        }
    }

    #[test]
    fn with_a_separate_key_nothing_of_the_url_path_past_the_app_is_shown() {
        let c = parse(
            "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/live/sk-inurl-77\"\nkey=\"other\"\n\
             [[output]]\nurl=\"rtmp://h/app/inst?token=tok-inurl-88\"\nkey=\"k2\"\n",
        )
        .unwrap();
        assert_eq!(
            c.outputs[1].url.app, "app/inst?token=tok-inurl-88",
            "sent whole"
        );
        let shown = format!("{}{c:?}", c.describe());
        for secret in ["sk-inurl-77", "tok-inurl-88", "app/inst"] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        assert!(
            shown.contains("output = rtmp://h:1935/live/<redacted>"),
            "{shown}"
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_relative_tls_ca_is_read_beside_the_configuration_like_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        std::fs::write(dir.path().join("certs/ca.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("yt.key"), "sk-rel-1\n").unwrap();
        let path = write(
            dir.path(),
            "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmps://h/live2\"\nkey_file=\"yt.key\"\n\
             tls_ca=\"certs/ca.pem\"\n",
        );
        // The working directory (the crate's) has no certs/ca.pem.
        assert!(!Path::new("certs/ca.pem").exists());
        let c = RawConfig::load(&path).unwrap().check().unwrap();
        assert_eq!(
            c.outputs[0].tls.ca_file.as_deref(),
            Some(dir.path().join("certs/ca.pem").as_path())
        );
        assert_eq!(c.outputs[0].url.stream_key, "sk-rel-1");
        assert!(
            c.describe().contains(&format!(
                "(tls_ca = {})",
                dir.path().join("certs/ca.pem").display()
            )),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn a_bad_separate_key_is_placed_on_its_own_line() {
        let msg = parse(
            "[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://a.example/live2\"\nkey=\"a b\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("line 5, column 5: output[1].key: stream key contains whitespace"),
            "{msg}"
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_an_rtmps_url_is_a_configuration_error() {
        let msg = parse("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmps://h/a/k\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("built without"), "{msg}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_settings_apply_to_rtmps_only_and_are_checked() {
        let base = "[source]\nspec=\"stdin\"\n[[output]]\n";
        let c = parse(&format!(
            "{base}url=\"rtmps://live.example/app/k\"\ntls_insecure=true\n"
        ))
        .unwrap();
        assert!(c.outputs[0].tls.insecure);
        assert!(c.describe().contains("verification OFF"));
        for (text, needle) in [
            (
                "url=\"rtmp://h/a/k\"\ntls_insecure=true",
                "line 5, column 14: output[1].tls_insecure: tls_ca and tls_insecure only apply to rtmps://",
            ),
            (
                "url=\"rtmp://h/a/k\"\ntls_ca=\"ca.pem\"",
                "output[1].tls_ca: tls_ca and tls_insecure only apply to rtmps://",
            ),
            (
                "url=\"rtmps://h/a/k\"\ntls_ca=\"ca.pem\"\ntls_insecure=true",
                "not both",
            ),
            (
                "url=\"rtmps://h/a/k\"\ntls_ca=\"/nonexistent/ca.pem\"",
                "CA file",
            ),
            (
                "url=\"rtmps://h/a/k\"\ntls_ca=\"/dev/zero\"",
                "a character device",
            ),
        ] {
            let msg = parse(&format!("{base}{text}\n")).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (text, needle) in [
            ("[source]\nspec=\"stdin\"\nfps=0\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.fps"),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[network]\nwrite_timeout_s=-1", "write_timeout_s"),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[queue]\nmax_seconds=0", "queue.max_seconds"),
            ("[source]\nspec=\"stdin\"\nloop=true\n[[output]]\nurl=\"rtmp://h/a/k\"", "loop"),
            ("[source]\nspec=\"stdin\"\n", "no destination"),
            ("[[output]]\nurl=\"rtmp://h/a/k\"", "no source"),
            ("[source]\nspec=\"stdin\"\nfps=\"thirty\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "fps"),
            ("[source]\nspec=\"stdin\"\ngop=30\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.gop: does not apply"),
            ("[source]\nspec=\"v4l2:/dev/video0\"\nprofile=\"high\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "applies to v4l2-m2m:, rpicam and auto sources"),
            ("[source]\nspec=\"v4l2:/dev/video0\"\nawb=\"cloudy\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.awb: does not apply to source v4l2:/dev/video0"),
            ("[source]\nspec=\"rpicam\"\nrotation=90\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.rotation: 90: rpicam-vid accepts 0 or 180"),
            ("[source]\nspec=\"rpicam\"\nrpicam_args=[\"--timeout\", \"5\"]\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.rpicam_args: --timeout is not allowed here"),
            ("[source]\nspec=\"rpicam:99\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.spec"),
            ("[source]\nspec=\"v4l2-m2m:/dev/video0\"\nlevel=\"9\"\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.level"),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[status]\nsummary_interval_s=-5", "status.summary_interval_s"),
        ] {
            let msg = parse(text).unwrap_err().to_string();
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn every_refused_value_carries_its_key_and_line() {
        for (text, key, line) in [
            ("[source]\nspec=\"stdin\"\ngop=30\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.gop", 3),
            ("[source]\nspec=\"v4l2:/dev/video0\"\nwidth=8\nheight=8\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.width", 3),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[status]\nsummary_interval_s=-5", "status.summary_interval_s", 6),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[audio]\nrate=32000", "audio.rate", 6),
            ("[source]\nspec=\"stdin\"\n[[output]]\nurl=\"rtmp://h/a/k\"\n[audio]\nsource=\"mic\"", "audio.source", 6),
            ("[source]\nloop=true\n[[output]]\nurl=\"rtmp://h/a/k\"", "source.spec", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            let ConfigError::Value { place: Some(place), .. } = &err else {
                panic!("not placed in the file: {err}");
            };
            assert_eq!(place.at.map(|(l, _)| l), Some(line), "{err}");
        }
    }

    #[test]
    fn an_out_of_range_value_is_located_and_names_its_range() {
        let text = "[source]\nspec = \"stdin\"\n\n[[output]]\nurl = \"rtmp://h/a/k\"\n\n[network]\nwrite_timeout_s = -1\n";
        let msg = RawConfig::parse(text, Path::new("/boot/firmware/campush.toml"))
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("/boot/firmware/campush.toml, line 8, column 19: network.write_timeout_s: -1 is out of range: expected seconds above 0, at most 300"),
            "{msg}"
        );
    }

    #[test]
    fn errors_in_the_second_output_point_at_it() {
        let text = "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[[output]]\nurl = \"http://h/a/k\"\n";
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains("line 6, column 7: output[2].url: "), "{msg}");
    }

    #[test]
    fn an_unknown_board_suggests_the_nearest() {
        let msg = parse("board = \"rpi4\"\n").unwrap_err().to_string();
        assert!(
            msg.contains(
                "line 1, column 9: board: unknown board \"rpi4\": did you mean \"rpi-4\"?"
            ),
            "{msg}"
        );
    }

    // ---- boards --------------------------------------------------------------------------------

    #[test]
    fn a_board_fills_in_what_the_file_leaves_out() {
        let c = parse("board = \"rpi-4\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n").unwrap();
        assert_eq!(c.source, SourceSpec::Auto);
        assert_eq!(c.fps, Some(30.0));
        assert_eq!(c.ingest.video_kbps, Some(4500.0));
        assert_eq!(
            (c.rpicam.width, c.rpicam.height, c.rpicam.gop),
            (Some(1920), Some(1080), Some(60))
        );
        assert_eq!(c.rpicam.bitrate_bps, Some(4_500_000));
        assert_eq!((c.v4l2.width, c.v4l2.gop), (Some(1920), Some(60)));
        assert_eq!(c.encoder, Some("/dev/video11".into()));
        assert_eq!(c.led, LedConfig::default());
        assert!(c.describe().contains("board = rpi-4"), "{}", c.describe());
    }

    #[test]
    fn a_camera_module_takes_its_keys_from_source_and_check_config_shows_them() {
        let c = parse(
            "[source]\nspec = \"rpicam\"\nwidth = 1280\nheight = 720\nfps = 25\nbitrate_kbps = 3000\n\
             gop = 50\nprofile = \"high\"\nlevel = \"4.1\"\nhflip = true\nvflip = true\nrotation = 180\n\
             autofocus_mode = \"manual\"\nlens_position = 0.5\ndenoise = \"cdn_fast\"\n\
             exposure = \"sport\"\nawb = \"daylight\"\nstall_timeout_s = 8\n\
             rpicam_args = [\"--shutter\", \"8000\"]\n\
             [[output]]\nurl = \"rtmp://h/live/secretkey\"\n",
        )
        .unwrap();
        assert_eq!(c.source, SourceSpec::Rpicam(0));
        let shown = c.describe();
        assert!(
            shown.contains(
                "camera: camera 0, size = 1280x720, fps = 25, bitrate = 3000 kbit/s, gop = 50, \
                 profile = high, level = 4.1, autofocus_mode = manual, denoise = cdn_fast, \
                 exposure = sport, awb = daylight, lens_position = 0.5, hflip, vflip, \
                 rotation = 180, stall_timeout_s = 8, rpicam_args = [\"--shutter\", \"8000\"]"
            ),
            "{shown}"
        );
        assert!(!shown.contains("secretkey"), "{shown}");
        assert_eq!(
            c.rpicam
                .argv(crate::source::rpicam::AppKind::RpicamVid)
                .join(" "),
            "--timeout 0 --nopreview --codec h264 --inline --flush --output - --libav-format h264 \
             --width 1280 --height 720 --framerate 25 --bitrate 3000000 --intra 50 --profile high \
             --level 4.1 --hflip --vflip --rotation 180 --autofocus-mode manual \
             --lens-position 0.5 --denoise cdn_fast --exposure sport --awb daylight \
             --shutter 8000"
        );
    }

    #[test]
    fn the_adaptive_bitrate_reaches_the_ingest_stage_and_check_config_shows_it() {
        let c = parse(
            "[source]\nspec = \"v4l2-m2m:/dev/video0\"\nbitrate_kbps = 3000\n\
             [[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!(c.ingest.adaptive_bitrate.map(|a| a.floor_kbps), Some(750));
        assert!(
            c.describe().contains(
                "adaptive_bitrate = true (where the encoder takes it), bitrate_min_kbps = 750\n"
            ),
            "{}",
            c.describe()
        );
        let c = parse("[source]\nspec = \"rpicam\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n").unwrap();
        assert_eq!(c.ingest.adaptive_bitrate, None);
        assert!(c.describe().contains("adaptive_bitrate = false\n"));
        let e = parse(
            "[source]\nspec = \"v4l2-m2m:/dev/video0\"\nbitrate_min_kbps = 10\n\
             [[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("bitrate_min_kbps") && e.contains("at least 25"),
            "{e}"
        );
    }

    #[test]
    fn every_key_the_user_sets_wins_over_the_board() {
        let c = parse(
            "board = \"rpi-4\"\n[source]\nspec = \"v4l2:/dev/video2\"\nfps = 25\nbitrate_kbps = 1000\n\
             [[output]]\nurl = \"rtmp://h/a/k\"\n[led]\nline = \"GPIO17\"\n",
        )
        .unwrap();
        assert_eq!(c.source, SourceSpec::V4l2("/dev/video2".into()));
        assert_eq!(c.fps, Some(25.0));
        assert_eq!(c.ingest.video_kbps, Some(1000.0));
        assert!(matches!(c.led, LedConfig::Gpio { .. }), "{:?}", c.led);
        let c = parse(
            "board = \"rpi-4\"\n[source]\nwidth = 1280\nheight = 720\ngop = 25\n\
             [[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!(c.source, SourceSpec::Auto);
        assert_eq!((c.rpicam.width, c.rpicam.gop), (Some(1280), Some(25)));
        assert_eq!((c.v4l2.width, c.v4l2.gop), (Some(1280), Some(25)));
        assert!(!c.v4l2.size_is_preference, "the user's size is a demand");
        assert!(c.v4l2.fps_is_preference, "the board's rate is not");
    }

    #[test]
    fn camera_defaults_of_a_board_do_not_apply_to_a_file_or_pipe() {
        let c = parse(
            "board = \"rpi-4\"\n[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!(c.fps, None, "the stream's own timing");
        assert_eq!(c.ingest.video_kbps, None);
    }

    #[test]
    fn every_boards_source_defaults_reach_the_configuration_check_config_prints() {
        for name in board::names() {
            let text = format!("board = \"{name}\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n");
            let c = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name == "generic-arm64" {
                assert_eq!(c.led, LedConfig::None);
            }
            let p = Board::named(name).unwrap().source;
            let shown = c.describe();
            let size = format!("size = {}x{}", p.width, p.height);
            for line in [
                format!("source = {}", p.spec),
                format!("fps = {}\n", p.fps),
                format!("bitrate_kbps = {}\n", p.bitrate_kbps),
                // What the camera app is asked for, and a V4L2 camera.
                format!(
                    "auto, a libcamera camera: rpicam-vid (else libcamera-vid) with camera 0, \
                     {size}, fps = {}, bitrate = {} kbit/s, gop = {},",
                    p.fps, p.bitrate_kbps, p.gop
                ),
                format!(
                    "{size} or the nearest offered, fps = {} or the nearest offered",
                    p.fps
                ),
                format!("bitrate = {} kbit/s, gop = {}", p.bitrate_kbps, p.gop),
            ] {
                assert!(shown.contains(&line), "{name}: no {line:?} in\n{shown}");
            }
            // And they are what the camera app and the encoder are asked for.
            assert_eq!(
                (c.rpicam.width, c.rpicam.height, c.rpicam.fps, c.rpicam.gop),
                (Some(p.width), Some(p.height), Some(p.fps), Some(p.gop)),
                "{name}"
            );
            assert_eq!(c.rpicam.bitrate_bps, Some(p.bitrate_kbps * 1000), "{name}");
            assert_eq!(
                (c.v4l2.width, c.v4l2.height, c.v4l2.fps, c.v4l2.gop),
                (Some(p.width), Some(p.height), Some(p.fps), Some(p.gop)),
                "{name}"
            );
            assert_eq!(c.v4l2.bitrate_bps, Some(p.bitrate_kbps * 1000), "{name}");
        }
    }

    #[test]
    fn a_boards_size_is_a_preference_for_a_uvc_camera_and_its_gop_does_not_apply() {
        let c = parse(
            "board = \"rpi-5\"\n[source]\nspec = \"v4l2:/dev/video2\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n",
        )
        .unwrap();
        assert_eq!((c.v4l2.width, c.v4l2.height), (Some(1920), Some(1080)));
        assert!(c.v4l2.size_is_preference && c.v4l2.fps_is_preference);
        assert_eq!(c.v4l2.gop, None);
        assert!(
            c.describe()
                .contains("device: size = 1920x1080 or the nearest offered"),
            "{}",
            c.describe()
        );
    }

    // ---- LED -----------------------------------------------------------------------------------

    fn led(section: &str) -> Result<LedConfig, ConfigError> {
        parse(&format!("{MINIMAL}\n[led]\n{section}\n")).map(|c| c.led)
    }

    #[test]
    fn led_settings_are_checked() {
        assert_eq!(led("").unwrap(), LedConfig::default());
        assert_eq!(led("backend = \"none\"").unwrap(), LedConfig::None);
        assert_eq!(
            led("line = \"GPIO17\"\nactive_low = true").unwrap(),
            LedConfig::Gpio {
                chip: None,
                line: GpioLine::Name("GPIO17".into()),
                active_low: true
            }
        );
        assert_eq!(
            led("backend = \"gpio\"\nchip = \"gpiochip4\"\nline = 17").unwrap(),
            LedConfig::Gpio {
                chip: Some("gpiochip4".into()),
                line: GpioLine::Offset(17),
                active_low: false
            }
        );
        assert_eq!(
            led("name = \"led1\"").unwrap(),
            LedConfig::Sysfs {
                name: Some("led1".into()),
                active_low: false
            }
        );
        for (section, needle) in [
            ("backend = \"gpio\"", "led.line: missing"),
            (
                "backend = \"sysfs\"\nline = \"GPIO17\"",
                "led.line: applies to backend = \"gpio\"",
            ),
            (
                "line = \"GPIO17\"\nname = \"ACT\"",
                "led.name: applies to backend = \"sysfs\"",
            ),
            ("name = \"../../etc\"", "led.name"),
            ("line = -3", "led.line"),
        ] {
            let msg = led(section).unwrap_err().to_string();
            assert!(msg.contains(needle), "{section}: {msg}");
        }
    }

    #[test]
    fn an_invalid_file_still_names_its_led_for_the_error_pattern() {
        let raw = RawConfig::parse(
            "board = \"generic-arm64\"\n[source]\nspec = \"nonsense\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(raw.check().is_err());
        assert_eq!(raw.led_or_default(), LedConfig::None);
        let raw = RawConfig::parse("[led]\nline = \"GPIO4\"\n", Path::new("c.toml")).unwrap();
        assert!(matches!(raw.led_or_default(), LedConfig::Gpio { .. }));
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("campush.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_file_with_an_unknown_key_still_names_its_led() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[source]\nfsp = 30\n[led]\nline = \"GPIO17\"\n");
        let err = RawConfig::load(&path).unwrap_err();
        assert_eq!(
            led_from_broken_file(&err),
            LedConfig::Gpio {
                chip: None,
                line: GpioLine::Name("GPIO17".into()),
                active_low: false
            }
        );
        std::fs::write(&path, "[led\nline = 3").unwrap();
        let err = RawConfig::load(&path).unwrap_err();
        assert_eq!(
            led_from_broken_file(&err),
            LedConfig::default(),
            "not TOML at all"
        );
    }

    // ---- stream keys in their own file ----------------------------------------------------------

    #[test]
    fn key_file_is_read_relative_to_the_config_and_notepad_endings_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("youtube.key"), "\u{feff}abcd-efgh\r\n").unwrap();
        let path = write(
            dir.path(),
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://a.example/live2\"\nkey_file = \"youtube.key\"\n",
        );
        let c = RawConfig::load(&path).unwrap().check().unwrap();
        assert_eq!(c.outputs[0].url.stream_key, "abcd-efgh");
        assert!(!c.describe().contains("abcd"), "{}", c.describe());
    }

    #[test]
    fn a_missing_key_file_is_named_by_its_line_and_directory_not_its_name() {
        // The name is not shown: a key pasted into key_file by mistake would be.
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://a.example/live2\"\nkey_file = \"gone.key\"\n",
        );
        let msg = RawConfig::load(&path)
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 5, column 12: output[1].key_file: cannot read the key file (in "),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(!msg.contains("gone.key"), "{msg}");
    }
}
