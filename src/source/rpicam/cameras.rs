//! `rpicam-vid --list-cameras`: which libcamera cameras the board has (for `campush probe` and
//! the `auto` source).
//!
//! Owns: [`parse_camera_list`] (the app's output -> [`CameraInfo`]s) and [`list_cameras`] (runs
//! the app, bounded in time).
//!
//! The format is the one `core/options.cpp` (`OptsInternal::Parse`, the `list_cameras` branch)
//! prints at rpicam-apps commit `9270b6013c4575dff2e0625c0f4b8ae750218b0f`, unchanged in its
//! structure since libcamera-apps 2021-11 (7030474):
//!
//! ```text
//! Available cameras
//! -----------------
//! 0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)
//!     Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
//!                              2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
//!            'SRGGB8' : 640x480 [206.65 fps - (1000, 752)/1280x960 crop]
//! ```
//!
//! or `No cameras available!` (exit status 0). Details the parser tolerates: the bracket holds
//! any of the pixel array size, the bit depth and the colour filter arrangement, and when it
//! would be empty the program prints `model ] (id)` (it overwrites the `[` with `]`); a camera
//! without formats is skipped but keeps its number, so indices may have gaps; the frame rate is
//! `nan` when the sensor reports no frame duration limits; older builds print no bit depth or
//! filter (`[3280x2464]`).

use std::path::Path;
use std::time::Duration;

use super::child::run_collect;
use super::settings::CameraApp;

/// One camera as `--list-cameras` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    /// The number to pass as `--camera` (`rpicam:N`).
    pub index: u32,
    /// Sensor model (`imx708`, `imx219`, `ov5647`, ...).
    pub model: String,
    /// libcamera's id: the device-tree path of the sensor.
    pub id: String,
    pub pixel_array: Option<(u32, u32)>,
    pub bit_depth: Option<u32>,
    /// Colour filter arrangement (`RGGB`, `MONO`, ...).
    pub cfa: Option<String>,
    pub modes: Vec<SensorMode>,
}

/// One sensor mode: a raw format at a size, with its highest frame rate.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorMode {
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub max_fps: Option<f64>,
}

impl std::fmt::Display for CameraInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "camera {}: {}", self.index, self.model)?;
        if let Some((w, h)) = self.pixel_array {
            write!(f, " {w}x{h}")?;
        }
        if let Some(best) = self
            .modes
            .iter()
            .filter(|m| m.width >= 1280)
            .max_by(|a, b| {
                a.max_fps
                    .unwrap_or(0.0)
                    .total_cmp(&b.max_fps.unwrap_or(0.0))
            })
        {
            write!(
                f,
                ", up to {:.0} fps at {}x{}",
                best.max_fps.unwrap_or(0.0),
                best.width,
                best.height
            )?;
        }
        write!(f, " ({})", self.id)
    }
}

impl CameraInfo {
    /// A camera sensor (CSI): its modes are raw sensor formats (Bayer `SRGGB10_CSI2P`,
    /// `SBGGR8`, mono `R10_CSI2P`, the Pi 5's compressed `PISP_COMP1_...`). libcamera also lists
    /// USB cameras (with `MJPEG`/`YUYV` modes and a `usb` id, e.g. mavlink-camera-manager#66):
    /// those are better served by V4L2 directly, so `auto` does not take them through the app.
    pub fn is_sensor(&self) -> bool {
        let raw = |f: &str| {
            let bayer = f.strip_prefix('S').is_some_and(|rest| {
                ["RGGB", "GRBG", "GBRG", "BGGR"]
                    .iter()
                    .any(|cfa| rest.starts_with(cfa))
            });
            let mono = f
                .strip_prefix('R')
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
            bayer || mono || f.contains("CSI2P") || f.starts_with("PISP")
        };
        !self.id.contains("usb")
            && (self.modes.is_empty() || self.modes.iter().any(|m| raw(&m.format)))
    }
}

fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// `0 : model [props] (id)`.
fn parse_camera_line(line: &str) -> Option<CameraInfo> {
    let (index, rest) = line.split_once(" : ")?;
    let index: u32 = index.trim().parse().ok()?;
    let rest = rest.trim_end();
    let open = rest.rfind(" (")?;
    let id = rest[open + 2..].strip_suffix(')')?.to_string();
    let head = &rest[..open];
    let (model, props) = if let Some(model) = head.strip_suffix(" ]") {
        (model, "")
    } else if let (Some(start), true) = (head.rfind(" ["), head.ends_with(']')) {
        (&head[..start], &head[start + 2..head.len() - 1])
    } else {
        (head, "")
    };
    let mut cam = CameraInfo {
        index,
        model: model.trim().to_string(),
        id,
        pixel_array: None,
        bit_depth: None,
        cfa: None,
        modes: Vec::new(),
    };
    for word in props.split_whitespace() {
        if let Some(size) = parse_size(word) {
            cam.pixel_array = Some(size);
        } else if let Some(bits) = word.strip_suffix("-bit").and_then(|b| b.parse().ok()) {
            cam.bit_depth = Some(bits);
        } else {
            cam.cfa = Some(word.to_string());
        }
    }
    Some(cam)
}

/// `WxH [F fps - crop]`.
fn parse_mode(format: &str, s: &str) -> Option<SensorMode> {
    let s = s.trim();
    let (size, rest) = s.split_once(' ').unwrap_or((s, ""));
    let (width, height) = parse_size(size)?;
    let max_fps = rest
        .trim_start()
        .strip_prefix('[')
        .and_then(|r| r.split_once(" fps"))
        .and_then(|(f, _)| f.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite());
    Some(SensorMode {
        format: format.to_string(),
        width,
        height,
        max_fps,
    })
}

/// Parses the output of `--list-cameras`. Lines it does not understand are ignored.
pub fn parse_camera_list(text: &str) -> Vec<CameraInfo> {
    let mut cameras: Vec<CameraInfo> = Vec::new();
    let mut format = String::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(cam) = parse_camera_line(line) {
                cameras.push(cam);
                format.clear();
            }
            continue;
        }
        let Some(cam) = cameras.last_mut() else {
            continue;
        };
        let mut body = line.trim_start();
        if let Some(rest) = body.strip_prefix("Modes:") {
            body = rest.trim_start();
        }
        if let Some(quoted) = body.strip_prefix('\'') {
            let Some((name, rest)) = quoted.split_once('\'') else {
                continue;
            };
            format = name.to_string();
            body = rest
                .trim_start()
                .strip_prefix(':')
                .unwrap_or(rest)
                .trim_start();
        }
        if format.is_empty() {
            continue;
        }
        if let Some(mode) = parse_mode(&format, body) {
            cam.modes.push(mode);
        }
    }
    cameras
}

/// Why the cameras could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot run {app}: {source}")]
    Run {
        app: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{app} --list-cameras failed ({status}): {stderr}")]
    Failed {
        app: String,
        status: String,
        stderr: String,
    },
}

/// Runs `<app> --list-cameras` (at most `timeout`) and parses what it prints. No camera is an
/// empty list, not an error.
pub fn list_cameras(app: &CameraApp, timeout: Duration) -> Result<Vec<CameraInfo>, ListError> {
    list_cameras_at(&app.path, timeout)
}

fn list_cameras_at(path: &Path, timeout: Duration) -> Result<Vec<CameraInfo>, ListError> {
    let app = path.display().to_string();
    let out = run_collect(path, &["--list-cameras".to_string()], timeout).map_err(|source| {
        ListError::Run {
            app: app.clone(),
            source,
        }
    })?;
    if !out.status.success() {
        let last = out
            .stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        return Err(ListError::Failed {
            app,
            status: out.status.to_string(),
            stderr: last,
        });
    }
    Ok(parse_camera_list(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Camera Module 3 on a Pi 4 (Bookworm), as `rpicam-vid --list-cameras` prints it.
    const IMX708: &str = "Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/soc/i2c0mux/i2c@1/imx708@1a)
    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]
                             2304x1296 [56.03 fps - (0, 0)/4608x2592 crop]
                             4608x2592 [14.35 fps - (0, 0)/4608x2592 crop]

";

    /// Two cameras on a Pi 5, and an older build's Camera Module 2 with a second format.
    const TWO_ON_PI5: &str = "Available cameras
-----------------
0 : imx477 [4056x3040 12-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx477@1a)
    Modes: 'SRGGB10_CSI2P' : 1332x990 [120.05 fps - (696, 528)/2664x1980 crop]
           'SRGGB12_CSI2P' : 2028x1080 [50.03 fps - (0, 440)/4056x2160 crop]
                             2028x1520 [40.01 fps - (0, 0)/4056x3040 crop]
                             4056x3040 [10.00 fps - (0, 0)/4056x3040 crop]

1 : imx219 [3280x2464] (/base/axi/pcie@120000/rp1/i2c@80000/imx219@10)
    Modes: 'SRGGB8' : 640x480 [nan fps - (1000, 752)/1280x960 crop]
                      1920x1080 [47.57 fps - (680, 692)/1920x1080 crop]

";

    #[test]
    fn one_camera_module_3_with_its_modes() {
        let cams = parse_camera_list(IMX708);
        assert_eq!(cams.len(), 1);
        let c = &cams[0];
        assert_eq!(
            (c.index, c.model.as_str(), c.id.as_str()),
            (0, "imx708", "/base/soc/i2c0mux/i2c@1/imx708@1a")
        );
        assert_eq!(
            (c.pixel_array, c.bit_depth, c.cfa.as_deref()),
            (Some((4608, 2592)), Some(10), Some("RGGB"))
        );
        let modes: Vec<(&str, u32, u32, Option<f64>)> = c
            .modes
            .iter()
            .map(|m| (m.format.as_str(), m.width, m.height, m.max_fps))
            .collect();
        assert_eq!(
            modes,
            [
                ("SRGGB10_CSI2P", 1536, 864, Some(120.13)),
                ("SRGGB10_CSI2P", 2304, 1296, Some(56.03)),
                ("SRGGB10_CSI2P", 4608, 2592, Some(14.35)),
            ]
        );
        assert_eq!(
            c.to_string(),
            "camera 0: imx708 4608x2592, up to 120 fps at 1536x864 (/base/soc/i2c0mux/i2c@1/imx708@1a)"
        );
    }

    #[test]
    fn several_cameras_formats_and_an_unknown_frame_rate() {
        let cams = parse_camera_list(TWO_ON_PI5);
        assert_eq!(cams.len(), 2);
        assert_eq!(cams[0].model, "imx477");
        assert_eq!(cams[0].modes.len(), 4);
        assert_eq!(cams[0].modes[1].format, "SRGGB12_CSI2P");
        assert_eq!(cams[0].modes[3].height, 3040);
        let c = &cams[1];
        assert_eq!(
            (c.index, c.pixel_array, c.bit_depth),
            (1, Some((3280, 2464)), None)
        );
        assert_eq!(c.modes[0].max_fps, None, "nan fps");
        assert_eq!(c.modes[1].max_fps, Some(47.57));
    }

    #[test]
    fn no_camera_and_odd_lines() {
        assert!(parse_camera_list("No cameras available!\n").is_empty());
        assert!(parse_camera_list("").is_empty());
        let odd = "Available cameras\n-----------------\n\
                   2 : 'HD Webcam' ] (/base/scb/pcie@7d500000/usb@0,0-1.2:1.0-046d:082c)\n";
        let cams = parse_camera_list(odd);
        assert_eq!(cams.len(), 1, "{cams:?}");
        assert_eq!(cams[0].index, 2, "numbers may have gaps");
        assert_eq!(cams[0].model, "'HD Webcam'");
        assert_eq!(cams[0].pixel_array, None);
        assert!(cams[0].id.ends_with("046d:082c"));
    }

    #[test]
    fn sensors_are_told_from_the_usb_cameras_libcamera_also_lists() {
        let cams = parse_camera_list(TWO_ON_PI5);
        assert!(cams.iter().all(CameraInfo::is_sensor));
        let usb = "Available cameras\n-----------------\n\
                   1 : H264 USB Camera: USB Camera [1920x1080] (/base/soc/usb@7e980000/usb1@1-1.2:1.0-32e4:9422)\n\
                   \x20   Modes: 'MJPEG' : 1920x1080 [30.00 fps - (0, 0)/0x0 crop]\n\
                   \x20          'YUYV' : 640x480 [30.00 fps - (0, 0)/0x0 crop]\n";
        let cams = parse_camera_list(usb);
        assert_eq!(cams.len(), 1, "{cams:?}");
        assert!(!cams[0].is_sensor(), "{:?}", cams[0]);
    }

    #[test]
    fn listing_runs_the_app_and_reports_its_failure() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("rpicam-vid");
        let script =
            format!("#!/bin/sh\n[ \"$1\" = --list-cameras ] || exit 9\ncat <<'EOF'\n{IMX708}EOF\n");
        std::fs::write(&app, script).unwrap();
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cams = list_cameras_at(&app, Duration::from_secs(10)).unwrap();
        assert_eq!(cams.len(), 1);
        std::fs::write(
            &app,
            "#!/bin/sh\necho 'ERROR: *** camera manager failed to start, code 19 ***' >&2\nexit 255\n",
        )
        .unwrap();
        let err = list_cameras_at(&app, Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("camera manager failed"), "{err}");
    }
}
