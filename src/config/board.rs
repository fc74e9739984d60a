//! Board profiles: what a given board can do, and sane defaults for it.
//!
//! Owns: the profiles in `boards/*.toml`, embedded in the binary (`include_str!`) so the static
//! binary carries them and `board = "rpi-4"` works on a card with nothing else on it. A profile
//! names the board's Rust target triple, its H.264 encoder device (none on a Pi 5), its status
//! LED, and defaults for the source: spec, resolution, frame rate, bitrate and GOP (2 s). In the
//! configuration, every key the user sets wins over the profile's default.
//!
//! What a profile's source defaults do: every one (spec, width, height, fps, bitrate, gop) fills
//! the `[source]` key the file leaves out, where the key applies to the source
//! ([`Board::source_defaults`], applied by `source::settings`, which owns those rules): the
//! camera app and the encoder are asked for them; a V4L2 camera gets the nearest size and rate
//! it offers (a board's 1080p30 must not turn a 720p webcam into an error); a file or pipe keeps
//! its own timing. Every Raspberry Pi profile's spec is `auto`: whatever camera the board has.

use serde::Deserialize;

use super::suggest::nearest;
use std::path::PathBuf;

use crate::led::RawLed;
use crate::source::settings::SourceDefaults;
#[cfg(test)]
use crate::source::SourceSpec;

/// Every profile, by name, as shipped in `boards/`.
pub const PROFILES: &[(&str, &str)] = &[
    ("rpi-zero-w", include_str!("../../boards/rpi-zero-w.toml")),
    ("rpi-zero-2w", include_str!("../../boards/rpi-zero-2w.toml")),
    ("rpi-3", include_str!("../../boards/rpi-3.toml")),
    ("rpi-4", include_str!("../../boards/rpi-4.toml")),
    ("rpi-5", include_str!("../../boards/rpi-5.toml")),
    (
        "generic-arm64",
        include_str!("../../boards/generic-arm64.toml"),
    ),
];

/// A board profile as written in `boards/NAME.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub board: BoardInfo,
    pub source: BoardSource,
    #[serde(default)]
    pub led: RawLed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    pub name: String,
    pub description: String,
    /// The Rust target triple of the build that runs on it.
    pub target: String,
    /// The V4L2 memory-to-memory H.264 encoder, `""` for none.
    pub encoder: String,
}

/// Source defaults. `gop` is in frames (the encoder's `h264_i_frame_period`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardSource {
    pub spec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: u32,
    pub gop: u32,
}

impl Board {
    /// The profile called `name`; the error names the known boards and the nearest one.
    pub fn named(name: &str) -> Result<Board, String> {
        match PROFILES.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Board::parse(text),
            None => {
                let names: Vec<&str> = names().collect();
                let hint = nearest(name, names.iter().copied())
                    .map(|n| format!("did you mean {n:?}? "))
                    .unwrap_or_default();
                Err(format!(
                    "unknown board {name:?}: {hint}expected one of {}",
                    names.join(", ")
                ))
            }
        }
    }

    fn parse(text: &str) -> Result<Board, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The encoder device, if the board has one.
    pub fn encoder(&self) -> Option<&str> {
        Some(self.board.encoder.as_str()).filter(|e| !e.is_empty())
    }

    /// The profile's source defaults, for `source::settings` to put under the file's keys.
    pub fn source_defaults(&self) -> SourceDefaults {
        let s = &self.source;
        SourceDefaults {
            spec: Some(s.spec.clone()),
            width: Some(s.width),
            height: Some(s.height),
            fps: Some(s.fps),
            bitrate_kbps: Some(s.bitrate_kbps),
            gop: Some(s.gop),
            encoder: self.encoder().map(PathBuf::from),
        }
    }

    /// The user's `[led]` if the file has any LED key, else this profile's (replaced whole: a
    /// GPIO line of the user's never mixes with a sysfs name of the board's).
    pub fn led_under<'a>(&'a self, user: &'a RawLed) -> &'a RawLed {
        if *user == RawLed::default() {
            &self.led
        } else {
            user
        }
    }
}

pub fn names() -> impl Iterator<Item = &'static str> {
    PROFILES.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const TARGETS: &[&str] = &[
        "arm-unknown-linux-musleabihf",
        "armv7-unknown-linux-musleabihf",
        "aarch64-unknown-linux-musl",
    ];

    #[test]
    fn every_profile_loads_and_has_sane_defaults() {
        for name in names() {
            let b = Board::named(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            let s = &b.source;
            assert_eq!(b.board.name, name);
            assert!(TARGETS.contains(&b.board.target.as_str()), "{name}");
            assert!(
                (320..=1920).contains(&s.width) && (240..=1080).contains(&s.height),
                "{name}: {}x{}",
                s.width,
                s.height
            );
            assert!((25..=25_000).contains(&s.bitrate_kbps), "{name}");
            assert!(s.fps > 0.0 && s.fps <= 60.0, "{name}");
            assert_eq!(f64::from(s.gop) / s.fps, 2.0, "{name}: GOP must be 2 s");
            SourceSpec::parse(&s.spec).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(enc) = b.encoder() {
                assert!(enc.starts_with("/dev/video"), "{name}");
            }
        }
    }

    #[test]
    fn the_profiles_in_boards_are_exactly_the_embedded_ones() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/boards");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|f| f.strip_suffix(".toml").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<&str> = names().collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn every_raspberry_pi_profile_finds_its_camera_with_auto() {
        for name in names().filter(|n| n.starts_with("rpi-")) {
            let b = Board::named(name).unwrap();
            assert_eq!(b.source.spec, "auto", "{name}");
            assert_eq!(
                b.source_defaults().encoder.as_deref(),
                b.encoder().map(Path::new)
            );
        }
    }

    #[test]
    fn the_readme_board_table_is_the_profiles() {
        let readme = include_str!("../../README.md");
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .filter(|cells: &Vec<&str>| {
                cells.len() == 5 && names().any(|n| cells[0] == format!("`{n}`"))
            })
            .collect();
        assert_eq!(
            rows.len(),
            PROFILES.len(),
            "one README row per board: {rows:?}"
        );
        for row in rows {
            let b = Board::named(row[0].trim_matches('`')).unwrap();
            let s = &b.source;
            assert!(
                row[1].starts_with(&format!("`{}`", b.board.target)),
                "{row:?}"
            );
            let encoder = b.encoder().map_or("none".to_string(), |e| format!("`{e}`"));
            assert_eq!(row[2], encoder, "{row:?}");
            assert_eq!(row[3], format!("`{}`", s.spec), "{row:?}");
            assert_eq!(
                row[4],
                format!(
                    "{}x{}, {} fps, {} kb/s, GOP {}",
                    s.width, s.height, s.fps, s.bitrate_kbps, s.gop
                ),
                "{row:?}"
            );
        }
    }

    #[test]
    fn the_zero_w_is_armv6_and_the_pi_5_has_no_encoder() {
        let zero = Board::named("rpi-zero-w").unwrap();
        assert_eq!(zero.board.target, "arm-unknown-linux-musleabihf");
        let pi5 = Board::named("rpi-5").unwrap();
        assert_eq!(pi5.encoder(), None);
        assert!(
            !pi5.source.spec.starts_with("v4l2-m2m"),
            "no encoder to use"
        );
        assert_eq!(
            Board::named("rpi-4").unwrap().encoder(),
            Some("/dev/video11")
        );
    }

    #[test]
    fn an_unknown_board_suggests_the_nearest() {
        let e = Board::named("rpi4").unwrap_err();
        assert!(e.contains("did you mean \"rpi-4\""), "{e}");
        assert!(e.contains("generic-arm64"), "{e}");
    }
}
