//! `campush probe`: what V4L2 devices this board has, what they can do, and which `source`
//! setting would work with them. The first command a user runs on a new board.
//!
//! Owns: gathering ([`probe_all`], read-only ioctls: QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES,
//! ENUM_FRAMEINTERVALS, QUERYCTRL, QUERYMENU, G_FMT; nothing is streamed or changed), the
//! report's wording ([`render`]), and the V4L2 half of what the `auto` source picks
//! ([`choose`]: a device that emits H.264, else a raw camera through an H.264 encoder), kept
//! apart from the ioctls so that wording and choice are tested without devices.
//!
//! Invariants: enumerations are bounded (see `device`); a device that cannot be opened (busy,
//! permissions) is listed with the reason rather than skipped; the verdict line starts with
//! `use:` and, when campush can use the device, carries a `source` value to paste.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::capture::open_device;
use super::device::{
    BufType, Caps, ControlInfo, Device, FormatDesc, FourCc, FrameInterval, FrameSize,
};
use super::m2m::{video_nodes, PI_ENCODER_CARD};
use super::sys::{V4L2_CTRL_CLASS_CODEC, V4L2_CTRL_TYPE_BOOLEAN, V4L2_CTRL_TYPE_BUTTON};

/// Sizes listed per format before the rest is summarised.
const MAX_SIZES: usize = 8;

/// One frame size and the rates the driver offers at it.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeReport {
    pub size: FrameSize,
    pub rates: Vec<FrameInterval>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FormatReport {
    pub desc: FormatDesc,
    pub sizes: Vec<SizeReport>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueReport {
    pub ty: BufType,
    pub formats: Vec<FormatReport>,
}

/// Everything probed about one `/dev/videoN`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    pub path: PathBuf,
    pub caps: Option<Caps>,
    /// Why the node could not be probed.
    pub error: Option<String>,
    pub queues: Vec<QueueReport>,
    /// Codec-class controls (bitrate, GOP, profile, force_key_frame, ...).
    pub controls: Vec<ControlInfo>,
}

impl NodeReport {
    fn formats(&self, output: bool) -> impl Iterator<Item = &FormatReport> {
        self.queues
            .iter()
            .filter(move |q| q.ty.is_output() == output)
            .flat_map(|q| q.formats.iter())
    }

    fn offers(&self, output: bool, fourcc: FourCc) -> bool {
        self.formats(output).any(|f| f.desc.fourcc == fourcc)
    }

    fn is_m2m(&self) -> bool {
        self.caps.as_ref().is_some_and(Caps::is_m2m)
    }

    /// An M2M node that turns raw frames into H.264.
    pub fn is_h264_encoder(&self) -> bool {
        self.is_m2m() && self.offers(false, FourCc::H264)
    }

    fn is_camera(&self) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|c| !c.is_m2m() && c.capture_type().is_some())
    }

    /// A node of libcamera's own pipeline (a CSI receiver giving raw Bayer, the ISP): only
    /// libcamera can make pictures of it, so `auto` leaves it alone.
    fn is_libcamera_pipeline(&self) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|c| LIBCAMERA_DRIVERS.contains(&c.driver.as_str()))
    }

    fn card(&self) -> &str {
        self.caps.as_ref().map_or("", |c| c.card.as_str())
    }
}

/// Drivers of the Raspberry Pi camera pipeline that libcamera drives: the CSI receivers
/// (`unicam` on Pi 0-4, `rp1-cfe` on Pi 5) and the ISPs (`bcm2835-isp`, `pispbe`).
pub const LIBCAMERA_DRIVERS: &[&str] = &["unicam", "rp1-cfe", "bcm2835-isp", "pispbe"];

/// What `auto` can stream from V4L2, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V4l2Choice {
    /// A capture device that emits H.264 itself (UVC H.264 camera, legacy Pi camera).
    H264 { device: PathBuf },
    /// A raw capture device through an H.264 memory-to-memory encoder.
    Raw { camera: PathBuf, encoder: PathBuf },
}

impl std::fmt::Display for V4l2Choice {
    /// As a source spec.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V4l2Choice::H264 { device } => write!(f, "v4l2:{}", device.display()),
            V4l2Choice::Raw { camera, encoder } => {
                write!(f, "v4l2-m2m:{},{}", camera.display(), encoder.display())
            }
        }
    }
}

/// The V4L2 device `auto` would use, with why; else, per node, why not. Order: the first
/// capture device (in node order) that offers H.264; else the first raw capture device that
/// shares a raw format with an H.264 encoder (`encoder` first when given, then the Pi's by card
/// name, then any other). Nodes of libcamera's pipeline are never chosen.
pub fn choose(
    nodes: &[NodeReport],
    encoder: Option<&Path>,
) -> Result<(V4l2Choice, String), Vec<String>> {
    let usable = |n: &&NodeReport| n.is_camera() && !n.is_libcamera_pipeline();
    if let Some(n) = nodes
        .iter()
        .filter(usable)
        .find(|n| n.offers(false, FourCc::H264))
    {
        return Ok((
            V4l2Choice::H264 {
                device: n.path.clone(),
            },
            format!("{} (\"{}\") emits H.264", n.path.display(), n.card()),
        ));
    }
    let mut encoders: Vec<&NodeReport> = nodes.iter().filter(|n| n.is_h264_encoder()).collect();
    encoders.sort_by_key(|n| {
        (
            Some(n.path.as_path()) != encoder,
            n.card() != PI_ENCODER_CARD,
        )
    });
    for enc in &encoders {
        for cam in nodes.iter().filter(usable) {
            let shared = enc
                .formats(true)
                .filter(|f| !f.desc.compressed)
                .find(|f| cam.offers(false, f.desc.fourcc));
            if let Some(raw) = shared {
                return Ok((
                    V4l2Choice::Raw {
                        camera: cam.path.clone(),
                        encoder: enc.path.clone(),
                    },
                    format!(
                        "{} (\"{}\") gives raw {} frames, which the {} encoder at {} takes",
                        cam.path.display(),
                        cam.card(),
                        raw.desc.fourcc,
                        enc.card(),
                        enc.path.display()
                    ),
                ));
            }
        }
    }
    if nodes.is_empty() {
        return Err(vec!["no V4L2 devices (/dev/video*)".into()]);
    }
    let has_encoder = !encoders.is_empty();
    Err(nodes
        .iter()
        .map(|n| {
            let why = if n.caps.is_none() {
                n.error.clone().unwrap_or_else(|| "not readable".into())
            } else if n.is_h264_encoder() {
                "an H.264 encoder, with no raw camera it can take frames from".into()
            } else if n.is_m2m() {
                "a memory-to-memory device without H.264 output".into()
            } else if !n.is_camera() {
                "not a capture device (yet)".into()
            } else if n.is_libcamera_pipeline() {
                "part of libcamera's camera pipeline (raw sensor data: needs rpicam-vid)".into()
            } else if has_encoder {
                "raw frames in no format the H.264 encoder takes".into()
            } else {
                "raw frames only, and no H.264 encoder to put them through".into()
            };
            format!("{}: {why}", n.path.display())
        })
        .collect())
}

/// Probes every `/dev/videoN`.
pub fn probe_all() -> Vec<NodeReport> {
    video_nodes().iter().map(|p| probe_node(p)).collect()
}

/// Probes one node.
pub fn probe_node(path: &Path) -> NodeReport {
    let mut report = NodeReport {
        path: path.to_owned(),
        caps: None,
        error: None,
        queues: Vec::new(),
        controls: Vec::new(),
    };
    let (dev, caps) = match open_device(path) {
        Ok(x) => x,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    for ty in [caps.capture_type(), caps.output_type()]
        .into_iter()
        .flatten()
    {
        let formats = dev.formats(ty).unwrap_or_default();
        let current = dev.get_format(ty).ok();
        report.queues.push(QueueReport {
            ty,
            formats: formats
                .into_iter()
                .map(|desc| {
                    let sizes =
                        sizes_of(&dev, &desc, current.as_ref().map(|f| (f.width, f.height)));
                    FormatReport { desc, sizes }
                })
                .collect(),
        });
    }
    report.controls = dev
        .controls()
        .into_iter()
        .filter(|c| c.id & 0xffff_0000 == V4L2_CTRL_CLASS_CODEC)
        .collect();
    report.caps = Some(caps);
    report
}

fn sizes_of(dev: &Device, desc: &FormatDesc, current: Option<(u32, u32)>) -> Vec<SizeReport> {
    dev.frame_sizes(desc.fourcc)
        .into_iter()
        .take(MAX_SIZES + 1)
        .map(|size| {
            let (w, h) = match size {
                FrameSize::Discrete { width, height } => (width, height),
                FrameSize::Stepwise(s) => current
                    .filter(|&(w, h)| size.contains(w, h))
                    .unwrap_or((s.max_width, s.max_height)),
            };
            SizeReport {
                size,
                rates: dev.frame_intervals(desc.fourcc, w, h),
            }
        })
        .collect()
}

/// `Video Bitrate` → `video_bitrate`, as `v4l2-ctl` names controls.
pub fn control_key(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

fn control_text(c: &ControlInfo) -> String {
    let key = control_key(&c.name);
    match c.kind {
        V4L2_CTRL_TYPE_BUTTON => format!("{key} (button)"),
        V4L2_CTRL_TYPE_BOOLEAN => format!("{key} (bool, default {})", c.default),
        _ if c.is_menu() => {
            let items: Vec<&str> = c.menu.iter().map(|(_, n)| n.as_str()).collect();
            let default = c
                .menu
                .iter()
                .find(|(v, _)| *v == c.default)
                .map_or(c.default.to_string(), |(_, n)| n.clone());
            format!("{key} (menu: {}; default {default})", items.join(", "))
        }
        _ => format!(
            "{key} ({}..{}, default {})",
            c.minimum, c.maximum, c.default
        ),
    }
}

fn rates_text(rates: &[FrameInterval]) -> String {
    if rates.is_empty() {
        return String::new();
    }
    let r: Vec<String> = rates.iter().map(FrameInterval::to_string).collect();
    format!(" @ {} fps", r.join("/"))
}

/// The `use:` verdict of one node, given every node on the system.
pub fn verdict(node: &NodeReport, all: &[NodeReport]) -> String {
    let path = node.path.display();
    let Some(caps) = &node.caps else {
        return "use: cannot tell (not readable)".into();
    };
    if node.is_m2m() {
        return if node.is_h264_encoder() {
            format!(
                "use: H.264 encoder: give it as ENCODER in \"v4l2-m2m:CAMERA,{path}\"{}",
                if caps.card == PI_ENCODER_CARD {
                    " (found by its card name when omitted)"
                } else {
                    ""
                }
            )
        } else {
            let coded: Vec<String> = node
                .formats(false)
                .map(|f| f.desc.fourcc.to_string())
                .collect();
            format!(
                "use: memory-to-memory device without H.264 output ({}): not an H.264 encoder",
                if coded.is_empty() {
                    "no formats".to_string()
                } else {
                    coded.join(", ")
                }
            )
        };
    }
    if !node.is_camera() {
        return if caps.output_type().is_some() {
            "use: output only (a v4l2loopback device shows capture only once its writer runs)"
                .into()
        } else {
            "use: not a video capture device".into()
        };
    }
    if node.offers(false, FourCc::H264) {
        return format!("use: source = \"v4l2:{path}\" (the device emits H.264)");
    }
    for enc in all.iter().filter(|n| n.is_h264_encoder()) {
        let shared = enc
            .formats(true)
            .filter(|f| !f.desc.compressed)
            .find(|f| node.offers(false, f.desc.fourcc));
        if let Some(raw) = shared {
            return format!(
                "use: source = \"v4l2-m2m:{path},{}\" (raw {} into the {} encoder)",
                enc.path.display(),
                raw.desc.fourcc,
                enc.caps.as_ref().map_or("", |c| c.card.as_str())
            );
        }
    }
    if all.iter().any(|n| n.is_h264_encoder()) {
        "use: no raw format the H.264 encoder accepts, and no H.264 of its own: not usable".into()
    } else {
        "use: raw frames only, and this system has no V4L2 H.264 encoder: not usable directly \
         (a Pi 5 has none: a Camera Module works through rpicam-vid, source = \"rpicam\")"
            .into()
    }
}

/// The whole report, as `campush probe` prints it.
pub fn render(nodes: &[NodeReport]) -> String {
    let mut out = String::new();
    if nodes.is_empty() {
        out.push_str(
            "no V4L2 devices (/dev/video*) found: is the camera connected and its driver loaded?\n",
        );
        return out;
    }
    for node in nodes {
        let _ = write!(out, "{}", node.path.display());
        match (&node.caps, &node.error) {
            (Some(c), _) => {
                let _ = writeln!(
                    out,
                    ": \"{}\" (driver {}, {})",
                    c.card, c.driver, c.bus_info
                );
                let _ = writeln!(out, "  capabilities: {}", c.summary());
            }
            (None, e) => {
                let _ = writeln!(out, ": {}", e.as_deref().unwrap_or("unknown error"));
            }
        }
        for q in &node.queues {
            let _ = writeln!(out, "  {} formats:", q.ty.name());
            if q.formats.is_empty() {
                let _ = writeln!(out, "    (none)");
            }
            for f in &q.formats {
                let _ = write!(
                    out,
                    "    {} ({}{})",
                    f.desc.fourcc,
                    f.desc.description,
                    if f.desc.compressed {
                        ", compressed"
                    } else {
                        ""
                    }
                );
                if !f.sizes.is_empty() {
                    let shown: Vec<String> = f
                        .sizes
                        .iter()
                        .take(MAX_SIZES)
                        .map(|s| format!("{}{}", s.size, rates_text(&s.rates)))
                        .collect();
                    let _ = write!(out, ": {}", shown.join(", "));
                    if f.sizes.len() > MAX_SIZES {
                        out.push_str(", ...");
                    }
                }
                out.push('\n');
            }
        }
        if node.caps.is_some() {
            if node.controls.is_empty() {
                let _ = writeln!(out, "  codec controls: none");
            } else {
                let _ = writeln!(out, "  codec controls:");
                for c in &node.controls {
                    let _ = writeln!(out, "    {}", control_text(c));
                }
            }
        }
        let _ = writeln!(out, "  {}", verdict(node, nodes));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sys::*;
    use super::*;

    fn caps(card: &str, device_caps: u32) -> Caps {
        Caps {
            driver: card.split('-').next().unwrap().into(),
            card: card.into(),
            bus_info: format!("platform:{card}"),
            version: 0x060100,
            capabilities: device_caps | V4L2_CAP_DEVICE_CAPS,
            device_caps: device_caps | V4L2_CAP_STREAMING,
        }
    }

    fn fmt(
        code: &[u8; 4],
        description: &str,
        compressed: bool,
        sizes: Vec<SizeReport>,
    ) -> FormatReport {
        FormatReport {
            desc: FormatDesc {
                fourcc: FourCc(fourcc(code)),
                description: description.into(),
                compressed,
            },
            sizes,
        }
    }

    fn node(
        path: &str,
        caps: Caps,
        queues: Vec<QueueReport>,
        controls: Vec<ControlInfo>,
    ) -> NodeReport {
        NodeReport {
            path: path.into(),
            caps: Some(caps),
            error: None,
            queues,
            controls,
        }
    }

    fn board() -> Vec<NodeReport> {
        let fract = |d| v4l2_fract {
            numerator: 1,
            denominator: d,
        };
        let yu12 = || fmt(b"YU12", "Planar YUV 4:2:0", false, vec![]);
        vec![
            node(
                "/dev/video0",
                caps("mmal", V4L2_CAP_VIDEO_CAPTURE),
                vec![QueueReport {
                    ty: BufType::CAPTURE,
                    formats: vec![
                        fmt(
                            b"YUYV",
                            "YUYV 4:2:2",
                            false,
                            vec![SizeReport {
                                size: FrameSize::Discrete {
                                    width: 1280,
                                    height: 720,
                                },
                                rates: vec![
                                    FrameInterval::Discrete(fract(30)),
                                    FrameInterval::Discrete(fract(15)),
                                ],
                            }],
                        ),
                        yu12(),
                    ],
                }],
                vec![],
            ),
            node(
                "/dev/video1",
                caps("uvc-h264", V4L2_CAP_VIDEO_CAPTURE),
                vec![QueueReport {
                    ty: BufType::CAPTURE,
                    formats: vec![fmt(b"H264", "H.264", true, vec![])],
                }],
                vec![],
            ),
            node(
                "/dev/video11",
                caps(PI_ENCODER_CARD, V4L2_CAP_VIDEO_M2M_MPLANE),
                vec![
                    QueueReport {
                        ty: BufType::CAPTURE_MPLANE,
                        formats: vec![fmt(b"H264", "H.264", true, vec![])],
                    },
                    QueueReport {
                        ty: BufType::OUTPUT_MPLANE,
                        formats: vec![yu12()],
                    },
                ],
                vec![
                    ControlInfo {
                        id: V4L2_CID_MPEG_VIDEO_H264_PROFILE,
                        kind: V4L2_CTRL_TYPE_MENU,
                        name: "H264 Profile".into(),
                        minimum: 0,
                        maximum: 4,
                        step: 1,
                        default: 4,
                        flags: 0,
                        menu: vec![
                            (0, "Baseline".into()),
                            (2, "Main".into()),
                            (4, "High".into()),
                        ],
                    },
                    ControlInfo {
                        id: V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME,
                        kind: V4L2_CTRL_TYPE_BUTTON,
                        name: "Force Key Frame".into(),
                        minimum: 0,
                        maximum: 0,
                        step: 0,
                        default: 0,
                        flags: 0,
                        menu: vec![],
                    },
                ],
            ),
            node(
                "/dev/video3",
                caps("vicodec", V4L2_CAP_VIDEO_M2M),
                vec![QueueReport {
                    ty: BufType::CAPTURE,
                    formats: vec![fmt(b"FWHT", "FWHT", true, vec![])],
                }],
                vec![],
            ),
            NodeReport {
                path: "/dev/video9".into(),
                caps: None,
                error: Some("/dev/video9: cannot open: Permission denied".into()),
                queues: vec![],
                controls: vec![],
            },
        ]
    }

    #[test]
    fn each_device_gets_a_verdict_with_a_source_to_paste() {
        let nodes = board();
        let v: Vec<String> = nodes.iter().map(|n| verdict(n, &nodes)).collect();
        assert_eq!(
            v[0],
            "use: source = \"v4l2-m2m:/dev/video0,/dev/video11\" (raw YU12 into the bcm2835-codec-encode encoder)"
        );
        assert_eq!(
            v[1],
            "use: source = \"v4l2:/dev/video1\" (the device emits H.264)"
        );
        assert!(
            v[2].starts_with("use: H.264 encoder") && v[2].contains("card name"),
            "{}",
            v[2]
        );
        assert!(v[3].contains("without H.264 output (FWHT)"), "{}", v[3]);
        assert!(v[4].contains("not readable"), "{}", v[4]);
    }

    #[test]
    fn the_report_lists_formats_sizes_rates_and_controls() {
        let text = render(&board());
        for needle in [
            "/dev/video0: \"mmal\" (driver mmal, platform:mmal)",
            "  capabilities: capture, single-planar, streaming",
            "    YUYV (YUYV 4:2:2): 1280x720 @ 30/15 fps",
            "    H264 (H.264, compressed)",
            "  capabilities: M2M, multi-planar, streaming",
            "    h264_profile (menu: Baseline, Main, High; default High)",
            "    force_key_frame (button)",
            "  codec controls: none",
            "/dev/video9: /dev/video9: cannot open: Permission denied",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(render(&[]).starts_with("no V4L2 devices"));
    }

    #[test]
    fn auto_prefers_a_device_that_emits_h264_then_a_raw_camera_through_the_encoder() {
        let nodes = board();
        let (choice, why) = choose(&nodes, None).unwrap();
        assert_eq!(
            choice,
            V4l2Choice::H264 {
                device: "/dev/video1".into()
            }
        );
        assert_eq!(choice.to_string(), "v4l2:/dev/video1");
        assert!(why.contains("emits H.264"), "{why}");

        let without_h264: Vec<NodeReport> = nodes
            .iter()
            .filter(|n| n.path != Path::new("/dev/video1"))
            .cloned()
            .collect();
        let (choice, why) = choose(&without_h264, Some(Path::new("/dev/video11"))).unwrap();
        assert_eq!(choice.to_string(), "v4l2-m2m:/dev/video0,/dev/video11");
        assert!(why.contains("raw YU12 frames"), "{why}");
    }

    #[test]
    fn auto_leaves_libcamera_pipeline_nodes_alone_and_says_why_nothing_fits() {
        let mut nodes = board();
        nodes.retain(|n| n.path != Path::new("/dev/video1"));
        nodes[0].caps.as_mut().unwrap().driver = "unicam".into();
        let why_not = choose(&nodes, None).unwrap_err();
        let text = why_not.join("\n");
        for needle in [
            "/dev/video0: part of libcamera's camera pipeline",
            "/dev/video11: an H.264 encoder, with no raw camera",
            "/dev/video3: a memory-to-memory device without H.264 output",
            "/dev/video9: /dev/video9: cannot open: Permission denied",
        ] {
            assert!(text.contains(needle), "{needle:?} in\n{text}");
        }
        assert_eq!(
            choose(&[], None).unwrap_err(),
            ["no V4L2 devices (/dev/video*)"]
        );
    }

    #[test]
    fn control_keys_follow_v4l2_ctl() {
        assert_eq!(control_key("Video Bitrate"), "video_bitrate");
        assert_eq!(control_key("H264 I-Frame Period"), "h264_i_frame_period");
        assert_eq!(
            control_key("Repeat Sequence Header"),
            "repeat_sequence_header"
        );
    }
}
