//! `auto`: whatever camera the board has. The default of every Raspberry Pi board profile.
//!
//! Owns: the order in which cameras are looked for ([`resolve`], [`decide`]), when the look is
//! made again, and the switch from one source to another. The sources themselves are the
//! others' ([`RpicamSource`], [`V4l2Source`]); this one only picks and supervises the pick.
//!
//! Order (the first that fits wins):
//! 1. a camera sensor that libcamera's camera app lists (`rpicam-vid`, else `libcamera-vid`, on
//!    `PATH`; `--list-cameras`, bounded in time): a Camera Module on Bookworm or any Pi 5, run as
//!    `rpicam:N`. USB cameras that libcamera also lists are left to steps 2 and 3 (V4L2 gives
//!    their H.264 without a second encode);
//! 2. a V4L2 capture device that emits H.264 itself (UVC H.264 camera, the legacy camera
//!    stack's `bcm2835-v4l2`), as `v4l2:DEVICE`;
//! 3. a raw V4L2 capture device through an H.264 memory-to-memory encoder (the board's first,
//!    then the Pi's by card name, then any), as `v4l2-m2m:CAMERA,ENCODER`;
//! 4. nothing: the status says "waiting for source", the last error names everything that was
//!    looked at and why it does not fit, and the look is made again after a backoff
//!    ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]). A camera plugged in later is found.
//!
//! V4L2 nodes of libcamera's own pipeline (unicam, rp1-cfe, the ISPs) are never picked in 2 or
//! 3: they give raw sensor data only libcamera can turn into pictures (see `v4l2::probe`).
//!
//! When: once when the source is made (the choice and why are logged at start, and a V4L2
//! device's configuration errors surface then), and again each time the chosen source loses its
//! camera: the inner source is made with `hand_back_on_loss`, so after its own backoff it
//! returns [`SourceError::Lost`] instead of retrying by itself. If the look finds the same camera,
//! the same inner source carries on (a camera app restart is counted as one, its clock and
//! backoff kept); if it finds another, that one replaces it (logged). Configuration errors of the
//! chosen source (a size the device does not offer, options the app refuses) end the run as
//! they would for that source named directly.
//!
//! Stop: the source and the one it picked hold their pipeline's [`Stop`]. Once it is requested
//! no look is made again, the backoffs end, and the source ends (`Ok(None)`); a look already
//! under way finishes first (`--list-cameras` is bounded by [`LIST_TIMEOUT`]).
//!
//! Threads: the camera app is started by its source on the thread that reads it (the ingest
//! thread; see `rpicam::child`). `--list-cameras` is a one-shot child waited for where it runs.
//!
//! Per frame: one call into the inner source and one comparison for timestamps that never go
//! back across a switch. No allocation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rpicam::{list_cameras, CameraApp, CameraInfo, RpicamSettings, RpicamSource};
use super::v4l2::{capture_target, m2m_target, V4l2Source};
use super::{Capture, Source, SourceError};
use crate::pool::FrameMut;
use crate::status::{SharedStatus, Status};
use crate::stop::Stop;
use crate::v4l2::probe::{choose, probe_all, NodeReport, V4l2Choice};
use crate::v4l2::V4l2Settings;

/// How long `--list-cameras` may take (libcamera starts its pipelines; about a second on a Pi).
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before looking again when nothing was found.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest wait between looks.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What `auto` needs: the settings of every source it may become, and the board's encoder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoSettings {
    pub rpicam: RpicamSettings,
    pub v4l2: V4l2Settings,
    /// The encoder to try first for a raw camera (the board's).
    pub encoder: Option<PathBuf>,
}

/// The camera `auto` picked.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// Camera `camera.index` through the camera app.
    Camera {
        app: CameraApp,
        camera: CameraInfo,
    },
    V4l2(V4l2Choice),
}

impl Choice {
    /// As a source spec (`rpicam:0`, `v4l2:/dev/video2`, ...).
    pub fn spec(&self) -> String {
        match self {
            Choice::Camera { camera, .. } => format!("rpicam:{}", camera.index),
            Choice::V4l2(c) => c.to_string(),
        }
    }

    /// Whether `self` and `other` are the same camera, run the same way.
    fn same(&self, other: &Choice) -> bool {
        match (self, other) {
            (Choice::Camera { app: a, camera: c }, Choice::Camera { app: b, camera: d }) => {
                a == b && c.index == d.index
            }
            (Choice::V4l2(a), Choice::V4l2(b)) => a == b,
            _ => false,
        }
    }
}

/// A pick, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub choice: Choice,
    pub why: String,
}

/// Nothing fits: everything that was looked at, and why not.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("found no camera: {}", .looked.join("; "))]
pub struct NotFound {
    pub looked: Vec<String>,
}

/// What the camera app said when asked for its cameras.
pub type Listed = Result<Vec<CameraInfo>, String>;

/// Looks for a camera now (see the module documentation for the order).
pub fn resolve(encoder: Option<&Path>) -> Result<Resolution, NotFound> {
    let app = CameraApp::find();
    let listed = app
        .as_ref()
        .map(|a| list_cameras(a, LIST_TIMEOUT).map_err(|e| e.to_string()));
    // V4L2 is probed only when the camera app has no sensor to offer.
    let sensor = matches!(&listed, Some(Ok(c)) if c.iter().any(CameraInfo::is_sensor));
    let nodes = if sensor { Vec::new() } else { probe_all() };
    decide(app.as_ref().zip(listed), &nodes, encoder)
}

/// The pick, from the camera app and what it listed (if one is installed) and the V4L2 nodes.
pub fn decide(
    app: Option<(&CameraApp, Listed)>,
    nodes: &[NodeReport],
    encoder: Option<&Path>,
) -> Result<Resolution, NotFound> {
    let mut looked = Vec::new();
    match app {
        None => looked.push("no rpicam-vid or libcamera-vid on PATH".to_string()),
        Some((app, Err(e))) => looked.push(format!("{} --list-cameras: {e}", app.name())),
        Some((app, Ok(cameras))) => {
            if let Some(camera) = cameras.iter().find(|c| c.is_sensor()) {
                return Ok(Resolution {
                    why: format!("{} lists {camera}", app.name()),
                    choice: Choice::Camera {
                        app: app.clone(),
                        camera: camera.clone(),
                    },
                });
            }
            looked.push(if cameras.is_empty() {
                format!("{} --list-cameras: no cameras", app.name())
            } else {
                let names: Vec<&str> = cameras.iter().map(|c| c.model.as_str()).collect();
                format!(
                    "{} --list-cameras: only USB cameras ({}), left to V4L2",
                    app.name(),
                    names.join(", ")
                )
            });
        }
    }
    match choose(nodes, encoder) {
        Ok((choice, why)) => Ok(Resolution {
            choice: Choice::V4l2(choice),
            why,
        }),
        Err(reasons) => {
            looked.extend(reasons);
            Err(NotFound { looked })
        }
    }
}

// One of these exists per source, for the source's lifetime: size does not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Rpicam(RpicamSource),
    V4l2(V4l2Source),
}

impl Inner {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Inner::Rpicam(s) => s,
            Inner::V4l2(s) => s,
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Inner::Rpicam(s) => s.frame_capacity_hint(),
            Inner::V4l2(s) => s.frame_capacity_hint(),
        }
    }
}

/// The `auto` source; see the module documentation.
pub struct AutoSource {
    settings: AutoSettings,
    status: SharedStatus,
    /// The source of the current pick, and the pick.
    inner: Option<(Inner, Choice)>,
    /// The last look found nothing (or the pick lost its camera): look again before reading.
    look_again: bool,
    backoff: Duration,
    looks_failed: u32,
    /// This source reported "waiting for source" (delivery reports streaming again).
    waiting: bool,
    last_ts: u64,
    stop: Stop,
}

impl AutoSource {
    /// Looks for a camera and makes its source (logging the pick and why, or what it looked
    /// at). `Err` only for a configuration error of the picked source. Once `stop` is
    /// requested the source (and the one it picked, which holds the same request) ends.
    pub fn new(
        settings: AutoSettings,
        status: SharedStatus,
        stop: Stop,
    ) -> Result<AutoSource, SourceError> {
        let mut source = AutoSource {
            settings,
            status,
            inner: None,
            look_again: true,
            backoff: BACKOFF_MIN,
            looks_failed: 0,
            waiting: false,
            last_ts: 0,
            stop,
        };
        source.look()?;
        Ok(source)
    }

    /// The current pick, as a source spec.
    pub fn current(&self) -> Option<String> {
        self.inner.as_ref().map(|(_, c)| c.spec())
    }

    /// Looks for a camera; keeps the current source if the pick is the same, else makes the
    /// new one. Nothing found: reports waiting and leaves `look_again` set.
    fn look(&mut self) -> Result<(), SourceError> {
        self.status.source_alive();
        let found = resolve(self.settings.encoder.as_deref());
        self.status.source_alive();
        let Resolution { choice, why } = match found {
            Ok(r) => r,
            Err(nothing) => {
                self.looks_failed += 1;
                let n = self.looks_failed;
                if n <= 3 || n.is_power_of_two() {
                    log::warn!(
                        "auto: {nothing}; looking again in {:.0} s (look {n})",
                        self.backoff.as_secs_f64()
                    );
                }
                self.status.set_last_error(&format_args!("auto: {nothing}"));
                self.report_waiting();
                self.look_again = true;
                return Ok(());
            }
        };
        self.looks_failed = 0;
        self.backoff = BACKOFF_MIN;
        self.look_again = false;
        if let Some((_, current)) = &self.inner {
            if current.same(&choice) {
                log::debug!("auto: still {} ({why})", choice.spec());
                return Ok(());
            }
            log::info!(
                "auto: now {}: {why} (was {})",
                choice.spec(),
                current.spec()
            );
        } else {
            log::info!("auto: using {}: {why}", choice.spec());
        }
        let inner = match &choice {
            Choice::Camera { app, camera } => {
                let settings = RpicamSettings {
                    camera: camera.index,
                    ..self.settings.rpicam.clone()
                };
                Inner::Rpicam(
                    RpicamSource::new(
                        app.clone(),
                        settings,
                        self.status.clone(),
                        self.stop.clone(),
                    )
                    .hand_back_on_loss(),
                )
            }
            Choice::V4l2(c) => {
                let target = match c {
                    V4l2Choice::H264 { device } => capture_target(device),
                    V4l2Choice::Raw { camera, encoder } => m2m_target(camera, Some(encoder)),
                };
                Inner::V4l2(
                    V4l2Source::new(
                        target,
                        self.settings.v4l2.clone(),
                        self.status.clone(),
                        self.stop.clone(),
                    )?
                    .hand_back_on_loss(),
                )
            }
        };
        self.inner = Some((inner, choice));
        Ok(())
    }

    fn report_waiting(&mut self) {
        if !self.waiting {
            self.waiting = true;
            self.status.set_source(Status::WaitingForSource);
        }
    }
}

impl Source for AutoSource {
    fn next_access_unit(&mut self, frame: &mut FrameMut) -> Result<Option<Capture>, SourceError> {
        loop {
            if self.stop.requested() {
                // The picked source stops its app (and reaps it) or releases its device when it
                // is dropped, with this one, before the ingest thread ends.
                return Ok(None);
            }
            if self.look_again {
                if self.looks_failed > 0 {
                    self.status.sleep_alive(self.backoff, &self.stop);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    if self.stop.requested() {
                        continue;
                    }
                }
                self.look()?;
                continue;
            }
            let Some((inner, _)) = self.inner.as_mut() else {
                self.look_again = true;
                continue;
            };
            match inner.source().next_access_unit(frame) {
                Ok(Some(mut capture)) => {
                    if self.waiting {
                        self.waiting = false;
                        self.status.set_source(Status::Streaming);
                    }
                    // Never back in time across a switch of source.
                    capture.timestamp_us = capture.timestamp_us.max(self.last_ts);
                    self.last_ts = capture.timestamp_us;
                    return Ok(Some(capture));
                }
                Ok(None) => return Ok(None),
                Err(SourceError::Lost(reason)) => {
                    // The inner source reported its trouble and waited its backoff.
                    log::debug!("auto: lost the camera ({reason}): looking again");
                    self.waiting = true;
                    self.look_again = true;
                    self.looks_failed = 0;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn request_keyframe(&mut self) {
        if let Some((inner, _)) = self.inner.as_mut() {
            inner.source().request_keyframe();
        }
    }

    fn frame_capacity_hint(&self) -> usize {
        let app = self.settings.rpicam.frame_capacity_hint();
        self.inner
            .as_ref()
            .map_or(app, |(inner, _)| inner.capacity().max(512 * 1024))
    }

    fn skipped_bytes(&self) -> u64 {
        match self.inner.as_ref() {
            Some((Inner::Rpicam(s), _)) => s.skipped_bytes(),
            Some((Inner::V4l2(s), _)) => s.skipped_bytes(),
            None => 0,
        }
    }

    /// The raw-camera route's encoder (the camera app's has no runtime control).
    fn adjustable_bitrate(&self) -> Option<u32> {
        match self.inner.as_ref() {
            Some((Inner::V4l2(s), _)) => s.adjustable_bitrate(),
            _ => None,
        }
    }

    fn set_bitrate(&mut self, bps: u32) -> bool {
        self.inner
            .as_mut()
            .is_some_and(|(inner, _)| inner.source().set_bitrate(bps))
    }
}

/// The `campush probe` section on libcamera cameras and what `auto` would pick.
pub fn probe_report(nodes: &[NodeReport]) -> String {
    let mut out = String::from("libcamera cameras");
    let app = CameraApp::find();
    let listed = match &app {
        None => {
            out += ": no rpicam-vid or libcamera-vid on PATH\n";
            None
        }
        Some(app) => {
            out += &format!(" ({} --list-cameras):\n", app.path.display());
            let listed = list_cameras(app, LIST_TIMEOUT).map_err(|e| e.to_string());
            match &listed {
                Ok(cams) if cams.is_empty() => out += "  none\n",
                Ok(cams) => {
                    for c in cams {
                        out += &format!(
                            "  {c}\n  use: {}\n",
                            if c.is_sensor() {
                                format!("source = \"rpicam:{}\"", c.index)
                            } else {
                                "a USB camera: its V4L2 device (listed above) is the better route"
                                    .to_string()
                            }
                        );
                    }
                }
                Err(e) => out += &format!("  cannot list them: {e}\n"),
            }
            Some(listed)
        }
    };
    out += &match decide(app.as_ref().zip(listed), nodes, None) {
        Ok(r) => format!("auto would use: {} ({})\n", r.choice.spec(), r.why),
        Err(e) => format!("auto would wait: {e}\n"),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::rpicam::{parse_camera_list, AppKind};

    const SENSOR: &str = "Available cameras\n-----------------\n\
        0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)\n\
        \x20   Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]\n";
    const USB: &str = "Available cameras\n-----------------\n\
        0 : HD Webcam [1920x1080] (/base/scb/pcie@7d500000/usb@0,0-1.2:1.0-046d:082c)\n\
        \x20   Modes: 'MJPEG' : 1920x1080 [30.00 fps - (0, 0)/0x0 crop]\n";

    fn app() -> CameraApp {
        CameraApp::at("/usr/bin/rpicam-vid", AppKind::RpicamVid)
    }

    #[test]
    fn a_sensor_the_camera_app_lists_comes_first() {
        let app = app();
        let r = decide(Some((&app, Ok(parse_camera_list(SENSOR)))), &[], None).unwrap();
        assert_eq!(r.choice.spec(), "rpicam:0");
        assert!(
            r.why.starts_with("rpicam-vid lists camera 0: imx708"),
            "{}",
            r.why
        );
    }

    #[test]
    fn without_a_sensor_it_says_everything_it_looked_at() {
        let app = app();
        for (listed, needle) in [
            (Ok(vec![]), "rpicam-vid --list-cameras: no cameras"),
            (
                Ok(parse_camera_list(USB)),
                "only USB cameras (HD Webcam), left to V4L2",
            ),
            (
                Err("camera manager failed".to_string()),
                "rpicam-vid --list-cameras: camera manager failed",
            ),
        ] {
            let e = decide(Some((&app, listed)), &[], None).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with("found no camera: "), "{text}");
            assert!(text.contains(needle), "{needle}: {text}");
            assert!(text.contains("no V4L2 devices (/dev/video*)"), "{text}");
        }
        let e = decide(None, &[], None).unwrap_err();
        assert_eq!(
            e.looked,
            [
                "no rpicam-vid or libcamera-vid on PATH",
                "no V4L2 devices (/dev/video*)"
            ]
        );
    }

    #[test]
    fn the_same_camera_is_the_same_pick_whatever_the_listing_says_about_it() {
        let app = app();
        let a = decide(Some((&app, Ok(parse_camera_list(SENSOR)))), &[], None).unwrap();
        let mut b = a.clone();
        if let Choice::Camera { camera, .. } = &mut b.choice {
            camera.modes.clear();
        }
        assert!(a.choice.same(&b.choice));
        let other = Choice::V4l2(V4l2Choice::H264 {
            device: "/dev/video0".into(),
        });
        assert!(!a.choice.same(&other));
    }
}
