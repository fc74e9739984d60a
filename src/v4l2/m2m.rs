//! Raw camera → stateful memory-to-memory encoder → coded frames: the `v4l2-m2m` source's
//! device side, and the one function that sets every encoder control.
//!
//! Owns: the camera's capture queue, the encoder's OUTPUT queue (raw frames in) and CAPTURE
//! queue (coded frames out), the DMABUF fds exported from the camera's buffers (zero-copy
//! mode), and the copy plan (copy mode).
//!
//! Set-up follows the stateful encoder interface ("Memory-to-Memory Stateful Video Encoder
//! Interface", dev-encoder.rst): coded format on CAPTURE first, then the raw format on OUTPUT,
//! the frame rate on OUTPUT (`S_PARM`), all controls ([`apply_encoder_controls`]), `REQBUFS` on
//! both queues (pools sized by the driver's `sizeimage`, never guessed), `STREAMON` on both.
//! The raw format is the first one, in the encoder's order of preference, that the camera also
//! offers as a single buffer (or the configured `pixel_format`).
//!
//! Frames cross from camera to encoder in one of two ways:
//! - DMABUF: the camera's MMAP buffers are exported (`EXPBUF`) and queued on the encoder's
//!   OUTPUT queue as `V4L2_MEMORY_DMABUF`; a camera buffer goes back to the camera when the
//!   encoder returns it. Used when both drivers allow it and the layouts (format, size,
//!   stride) agree.
//! - Copy: otherwise each raw frame is copied once into an encoder MMAP buffer, row by row
//!   when the strides or plane offsets differ (e.g. the Pi encoder pads plane heights to 16).
//!   When the encoder has no free OUTPUT buffer the raw frame is dropped, never waited on.
//!
//! The camera's monotonic buffer timestamp is set on the OUTPUT buffer, and the encoder copies
//! it to the coded buffer (`V4L2_BUF_FLAG_TIMESTAMP_COPY`), so coded frames carry capture time.
//! `force_key_frame` is a button control on the encoder's own fd.
//!
//! Hardware quirks: `repeat_sequence_header` stays off unless configured
//! (raspberrypi/linux#4520: the Pi encoder stalls with it after ~20,000 frames); campush
//! caches SPS/PPS itself. The Pi encoder is found by its card name `bcm2835-codec-encode`
//! (normally `/dev/video11`) when no encoder path is configured.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::capture::{
    bitrate_control, has_force_key_frame, interval_of, label, negotiate, open_device,
    set_bitrate_control, wait_readable, FrameFn,
};
use super::device::{BufType, Device, Format, FourCc};
use super::queue::{Dequeued, Queue};
use super::sys::*;
use super::{BitrateMode, V4l2Error, V4l2Settings};
use crate::clock::monotonic_us;

/// Card name of the Raspberry Pi's H.264 encoder.
pub const PI_ENCODER_CARD: &str = "bcm2835-codec-encode";
/// Buffers on the camera's queue (also the encoder OUTPUT count in DMABUF mode).
pub const CAMERA_BUFFERS: u32 = 6;
/// Buffers on the encoder's OUTPUT queue in copy mode.
pub const ENCODER_OUTPUT_BUFFERS: u32 = 3;
/// Buffers on the encoder's CAPTURE queue.
pub const ENCODER_CAPTURE_BUFFERS: u32 = 4;

/// The `/dev/videoN` nodes of this system, in numeric order.
pub fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u32 = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// Finds an encoder producing `coded`: the Pi's by card name first, else any M2M node whose
/// CAPTURE queue offers `coded`.
pub fn find_encoder(coded: FourCc) -> Result<PathBuf, V4l2Error> {
    let mut fallback = None;
    for path in video_nodes() {
        let Ok((dev, caps)) = open_device(&path) else {
            continue;
        };
        if !caps.is_m2m() {
            continue;
        }
        let Some(cap) = caps.capture_type() else {
            continue;
        };
        let offers = dev
            .formats(cap)
            .map(|f| f.iter().any(|f| f.fourcc == coded))
            .unwrap_or(false);
        if !offers {
            continue;
        }
        if caps.card == PI_ENCODER_CARD {
            return Ok(path);
        }
        fallback.get_or_insert(path);
    }
    fallback.ok_or_else(|| {
        V4l2Error::Unavailable(format!(
            "no V4L2 memory-to-memory encoder producing {coded} was found (a Raspberry Pi 5 has \
             none; on other Pis load bcm2835-codec); `campush probe` lists the devices"
        ))
    })
}

/// Where one plane of a raw image sits in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneSpan {
    pub offset: usize,
    pub stride: usize,
    pub rows: usize,
    /// Bytes of picture per row (without padding).
    pub row_bytes: usize,
}

/// The planes of a single-buffer raw format, or `None` when campush does not know its layout.
/// Plane heights are taken from `sizeimage` when the driver pads them (the Pi encoder aligns
/// them to 16 lines), else from the image height.
pub fn plane_spans(f: &Format) -> Option<Vec<PlaneSpan>> {
    let (w, h) = (f.width as usize, f.height as usize);
    let stride = f.planes.first()?.bytesperline as usize;
    let size = f.planes.first()?.sizeimage as usize;
    if stride == 0 || f.planes.len() != 1 {
        return None;
    }
    let packed = |bpp: usize| {
        Some(vec![PlaneSpan {
            offset: 0,
            stride,
            rows: h,
            row_bytes: w * bpp,
        }])
    };
    // Luma rows as laid out: sizeimage / (stride * 1.5) for 4:2:0, if that is whole and >= h.
    let luma_rows = {
        let r = size * 2 / (stride * 3);
        if r >= h && r <= h + 64 && (r * stride * 3) / 2 <= size {
            r
        } else {
            h
        }
    };
    match f.fourcc.0 {
        V4L2_PIX_FMT_YUYV | V4L2_PIX_FMT_YVYU | V4L2_PIX_FMT_UYVY | V4L2_PIX_FMT_VYUY => packed(2),
        V4L2_PIX_FMT_GREY => packed(1),
        V4L2_PIX_FMT_RGB24 | V4L2_PIX_FMT_BGR24 => packed(3),
        V4L2_PIX_FMT_YUV420 | V4L2_PIX_FMT_YVU420 => {
            let c_stride = stride / 2;
            let c_rows = luma_rows / 2;
            let y = stride * luma_rows;
            Some(vec![
                PlaneSpan {
                    offset: 0,
                    stride,
                    rows: h,
                    row_bytes: w,
                },
                PlaneSpan {
                    offset: y,
                    stride: c_stride,
                    rows: h.div_ceil(2),
                    row_bytes: w.div_ceil(2),
                },
                PlaneSpan {
                    offset: y + c_stride * c_rows,
                    stride: c_stride,
                    rows: h.div_ceil(2),
                    row_bytes: w.div_ceil(2),
                },
            ])
        }
        V4L2_PIX_FMT_NV12 | V4L2_PIX_FMT_NV21 => Some(vec![
            PlaneSpan {
                offset: 0,
                stride,
                rows: h,
                row_bytes: w,
            },
            PlaneSpan {
                offset: stride * luma_rows,
                stride,
                rows: h.div_ceil(2),
                row_bytes: w.div_ceil(2) * 2,
            },
        ]),
        _ => None,
    }
}

/// How a raw frame gets from the camera's buffer into the encoder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyPlan {
    /// Same layout: one `copy_from_slice` of `len` bytes.
    Flat { len: usize },
    /// Different strides or plane offsets: row by row.
    Rows {
        from: Vec<PlaneSpan>,
        to: Vec<PlaneSpan>,
    },
}

impl CopyPlan {
    /// The plan for `camera` → `encoder` formats, if one exists: same fourcc, and an encoder
    /// frame at least as large (encoders align sizes up, e.g. to 16 lines; the padding is left
    /// as it is).
    pub fn new(camera: &Format, encoder: &Format) -> Option<CopyPlan> {
        let (c, e) = (camera.planes.first()?, encoder.planes.first()?);
        if camera.fourcc != encoder.fourcc
            || camera.width > encoder.width
            || camera.height > encoder.height
            || camera.planes.len() != 1
            || encoder.planes.len() != 1
        {
            return None;
        }
        if c.bytesperline == e.bytesperline
            && c.sizeimage == e.sizeimage
            && camera.height == encoder.height
        {
            return Some(CopyPlan::Flat {
                len: c.sizeimage as usize,
            });
        }
        Some(CopyPlan::Rows {
            from: plane_spans(camera)?,
            to: plane_spans(encoder)?,
        })
    }

    /// Copies one frame; returns the bytes used in `dst`. Never reads or writes out of bounds:
    /// rows that do not fit are cut (a short buffer gives a damaged picture, not a crash).
    pub fn copy(&self, src: &[u8], dst: &mut [u8]) -> usize {
        match self {
            CopyPlan::Flat { len } => {
                let n = (*len).min(src.len()).min(dst.len());
                dst[..n].copy_from_slice(&src[..n]);
                n
            }
            CopyPlan::Rows { from, to } => {
                let mut used = 0;
                for (f, t) in from.iter().zip(to) {
                    let n = f.row_bytes.min(t.row_bytes);
                    for row in 0..f.rows.min(t.rows) {
                        let s = f.offset + row * f.stride;
                        let d = t.offset + row * t.stride;
                        if s + n > src.len() || d + n > dst.len() {
                            break;
                        }
                        dst[d..d + n].copy_from_slice(&src[s..s + n]);
                        used = used.max(d + t.stride.min(dst.len() - d));
                    }
                }
                used
            }
        }
    }
}

/// Sets every encoder control campush manages, on the encoder's own fd, before `STREAMON`.
/// Controls the driver lacks are skipped (and logged); a value the driver does not accept is
/// [`V4l2Error::Unsupported`], naming what it accepts. Returns one line per control set.
pub fn apply_encoder_controls(
    enc: &Device,
    label: &str,
    settings: &V4l2Settings,
    fps: f64,
) -> Result<Vec<String>, V4l2Error> {
    let mut done = Vec::new();
    let gop = settings
        .gop
        .unwrap_or_else(|| (2.0 * fps).round().max(1.0) as u32) as i32;
    let mode = settings.bitrate_mode.map(|m| match m {
        BitrateMode::Vbr => V4L2_MPEG_VIDEO_BITRATE_MODE_VBR,
        BitrateMode::Cbr => V4L2_MPEG_VIDEO_BITRATE_MODE_CBR,
    });
    // (control, value, name, required): a control the user set explicitly is required.
    let wanted: [(u32, Option<i32>, &str, bool); 7] = [
        (
            V4L2_CID_MPEG_VIDEO_BITRATE_MODE,
            mode,
            "bitrate_mode",
            mode.is_some(),
        ),
        (
            V4L2_CID_MPEG_VIDEO_BITRATE,
            settings.bitrate_bps.map(|b| b as i32),
            "bitrate",
            settings.bitrate_bps.is_some(),
        ),
        (
            V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
            Some(gop),
            "gop (h264_i_frame_period)",
            false,
        ),
        (
            V4L2_CID_MPEG_VIDEO_GOP_SIZE,
            Some(gop),
            "gop (gop_size)",
            false,
        ),
        (
            V4L2_CID_MPEG_VIDEO_H264_PROFILE,
            settings.profile,
            "profile",
            settings.profile.is_some(),
        ),
        (
            V4L2_CID_MPEG_VIDEO_H264_LEVEL,
            settings.level,
            "level",
            settings.level.is_some(),
        ),
        (
            V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER,
            Some(settings.repeat_sequence_header as i32),
            "repeat_sequence_header",
            settings.repeat_sequence_header,
        ),
    ];
    for (id, value, name, required) in wanted {
        let Some(value) = value else { continue };
        let info = match enc.control(id) {
            Ok(info) if info.usable() => info,
            _ => {
                if required {
                    return Err(V4l2Error::Unsupported(format!(
                        "{label} has no {name} control; `campush probe` lists its controls"
                    )));
                }
                log::debug!("{label}: no {name} control, not set");
                continue;
            }
        };
        let accepted = if info.is_menu() {
            info.menu.iter().any(|(v, _)| *v == value)
        } else {
            (info.minimum..=info.maximum).contains(&value)
        };
        if !accepted {
            let offer = if info.is_menu() {
                info.menu
                    .iter()
                    .map(|(_, n)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                format!("{} to {}", info.minimum, info.maximum)
            };
            return Err(V4l2Error::Unsupported(format!(
                "{label} does not accept {name} = {value}; it accepts: {offer}"
            )));
        }
        enc.set_control(id, value)
            .map_err(|e| V4l2Error::from_io(enc.path(), &format!("set {name}"), &e))?;
        let shown = info
            .menu
            .iter()
            .find(|(v, _)| *v == value)
            .map_or(value.to_string(), |(_, n)| n.clone());
        done.push(format!("{name} = {shown}"));
    }
    Ok(done)
}

/// How raw frames reach the encoder.
enum Transfer {
    /// Camera buffer `i` is encoder OUTPUT buffer `i`; fds\[i\]\[plane\].
    Dmabuf {
        /// Owns the exported fds: they stay open as long as the encoder may import them.
        _exported: Vec<Vec<OwnedFd>>,
        raw_fds: Vec<Vec<RawFd>>,
        lengths: Vec<u32>,
    },
    Copy(CopyPlan),
}

/// What the pipeline was asked to build.
#[derive(Debug, Clone)]
pub struct M2mRequest<'a> {
    pub camera: &'a Path,
    pub encoder: &'a Path,
    /// The coded format: H.264 for campush; FWHT to drive `vicodec` in tests.
    pub coded: FourCc,
    pub settings: &'a V4l2Settings,
    /// Try DMABUF first (falls back to a copy when a driver refuses).
    pub allow_dmabuf: bool,
}

/// Counters of a running pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct M2mStats {
    pub raw_frames: u64,
    /// Raw frames dropped because the encoder had no free OUTPUT buffer.
    pub raw_dropped: u64,
    pub coded_frames: u64,
}

/// A running camera → encoder pipeline.
pub struct M2mPipeline {
    // Drop order matters: the encoder lets go of imported buffers before the camera frees them.
    enc_out: Queue,
    enc_cap: Queue,
    transfer: Transfer,
    cam: Queue,
    camera_format: Format,
    coded_format: Format,
    camera_label: String,
    encoder_label: String,
    camera_path: PathBuf,
    encoder_path: PathBuf,
    force_key: bool,
    /// The encoder's `video_bitrate` control, read after the controls were applied (bit/s).
    bitrate: Option<u32>,
    stats: M2mStats,
    last_raw_us: u64,
}

impl M2mPipeline {
    pub fn open(req: &M2mRequest<'_>) -> Result<M2mPipeline, V4l2Error> {
        let (cam_dev, cam_caps) = open_device(req.camera)?;
        let (enc_dev, enc_caps) = open_device(req.encoder)?;
        let camera_label = label(req.camera, &cam_caps);
        let encoder_label = label(req.encoder, &enc_caps);
        let Some(cam_ty) = cam_caps.capture_type().filter(|_| !cam_caps.is_m2m()) else {
            return Err(V4l2Error::Unavailable(format!(
                "{camera_label} is not (yet) a video capture device: {}",
                cam_caps.summary()
            )));
        };
        let (Some(enc_cap_ty), Some(enc_out_ty), true) = (
            enc_caps.capture_type(),
            enc_caps.output_type(),
            enc_caps.is_m2m(),
        ) else {
            return Err(V4l2Error::Unsupported(format!(
                "{encoder_label} is not a memory-to-memory device: {}",
                enc_caps.summary()
            )));
        };
        let s = req.settings;
        let io_enc = |what: &str, e: io::Error| V4l2Error::from_io(req.encoder, what, &e);
        let io_cam = |what: &str, e: io::Error| V4l2Error::from_io(req.camera, what, &e);

        // 1. Raw format: configured, else the encoder's favourite that the camera offers.
        let enc_raw = enc_dev
            .formats(enc_out_ty)
            .map_err(|e| io_enc("ENUM_FMT", e))?;
        let cam_raw = cam_dev.formats(cam_ty).map_err(|e| io_cam("ENUM_FMT", e))?;
        let raw = match s.pixel_format {
            Some(f) => f,
            None => enc_raw
                .iter()
                .filter(|f| !f.compressed)
                .map(|f| f.fourcc)
                .find(|f| cam_raw.iter().any(|c| c.fourcc == *f) && is_single_buffer(*f))
                .ok_or_else(|| {
                    let names = |v: &[super::device::FormatDesc]| {
                        v.iter()
                            .map(|f| f.fourcc.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    };
                    V4l2Error::Unsupported(format!(
                        "{camera_label} and {encoder_label} share no raw format: the camera \
                         offers {}, the encoder accepts {}",
                        names(&cam_raw),
                        names(&enc_raw)
                    ))
                })?,
        };
        if !enc_raw.iter().any(|f| f.fourcc == raw) {
            return Err(V4l2Error::Unsupported(format!(
                "{encoder_label} does not accept {raw}; it accepts: {}",
                enc_raw
                    .iter()
                    .map(|f| f.fourcc.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }

        // 2. Camera: format, size, rate.
        let camera_format = negotiate(&cam_dev, &camera_label, cam_ty, raw, s)?;
        let fps = s
            .fps
            .or_else(|| {
                cam_dev
                    .get_parm(cam_ty)
                    .ok()
                    .map(|(_, i)| super::device::fps_of(i))
                    .filter(|f| *f > 0.0)
            })
            .unwrap_or(30.0);

        // 3. Encoder: coded format on CAPTURE first, then raw on OUTPUT, then rate and controls.
        let coded_req = Format::request(req.coded, camera_format.width, camera_format.height);
        let coded_format = enc_dev
            .set_format(enc_cap_ty, &coded_req)
            .map_err(|e| io_enc(&format!("S_FMT {}", req.coded), e))?;
        if coded_format.fourcc != req.coded {
            let offered = enc_dev.formats(enc_cap_ty).unwrap_or_default();
            return Err(V4l2Error::Unsupported(format!(
                "{encoder_label} does not produce {}; it produces: {}",
                req.coded,
                offered
                    .iter()
                    .map(|f| f.fourcc.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut raw_req = Format::request(raw, camera_format.width, camera_format.height);
        raw_req.planes = camera_format.planes.clone();
        let enc_format = enc_dev
            .set_format(enc_out_ty, &raw_req)
            .map_err(|e| io_enc(&format!("S_FMT {raw}"), e))?;
        // Encoders may align the frame up (vicodec and the Pi encoder pad to 16 lines): a
        // larger frame is fine, the copy leaves the padding alone.
        if enc_format.fourcc != raw
            || enc_format.width < camera_format.width
            || enc_format.height < camera_format.height
        {
            return Err(V4l2Error::Unsupported(format!(
                "{encoder_label} cannot take {camera_format}: it set {enc_format}"
            )));
        }
        if let Err(e) = enc_dev.set_frame_interval(enc_out_ty, interval_of(fps)) {
            log::debug!("{encoder_label}: S_PARM on OUTPUT: {e} (frame rate hint not set)");
        }
        let applied = apply_encoder_controls(&enc_dev, &encoder_label, s, fps)?;
        // The coded buffer size can depend on the raw format and controls: read it again.
        let coded_format = enc_dev.get_format(enc_cap_ty).unwrap_or(coded_format);

        // 4. Buffers. The camera's first, so DMABUF can mirror its count.
        let mut cam = Queue::mmap(&cam_dev, cam_ty, CAMERA_BUFFERS, camera_format.planes.len())
            .map_err(|e| io_cam("REQBUFS", e))?;
        let same_layout = camera_format.planes == enc_format.planes
            && (camera_format.width, camera_format.height) == (enc_format.width, enc_format.height);
        let mut transfer = None;
        let mut enc_out = None;
        if req.allow_dmabuf && same_layout {
            match dmabuf_setup(&cam, &enc_dev, enc_out_ty, &enc_format) {
                Ok((q, t)) => {
                    enc_out = Some(q);
                    transfer = Some(t);
                }
                Err(e) => log::info!(
                    "{camera_label} -> {encoder_label}: DMABUF not available ({e}); copying frames"
                ),
            }
        }
        let (enc_out, transfer) = match (enc_out, transfer) {
            (Some(q), Some(t)) => (q, t),
            _ => {
                let plan = CopyPlan::new(&camera_format, &enc_format).ok_or_else(|| {
                    V4l2Error::Unsupported(format!(
                        "cannot copy {camera_format} from {camera_label} into {encoder_label}'s \
                         {enc_format}; set source.pixel_format to one of NV12, YU12, YUYV"
                    ))
                })?;
                let q = Queue::mmap(
                    &enc_dev,
                    enc_out_ty,
                    ENCODER_OUTPUT_BUFFERS,
                    enc_format.planes.len(),
                )
                .map_err(|e| io_enc("REQBUFS (OUTPUT)", e))?;
                (q, Transfer::Copy(plan))
            }
        };
        let mut enc_cap = Queue::mmap(
            &enc_dev,
            enc_cap_ty,
            ENCODER_CAPTURE_BUFFERS,
            coded_format.planes.len(),
        )
        .map_err(|e| io_enc("REQBUFS (CAPTURE)", e))?;

        // 5. Go.
        for i in 0..enc_cap.count() as u32 {
            enc_cap
                .queue_mmap(i, &[], 0)
                .map_err(|e| io_enc("QBUF", e))?;
        }
        for i in 0..cam.count() as u32 {
            cam.queue_mmap(i, &[], 0).map_err(|e| io_cam("QBUF", e))?;
        }
        let mut enc_out = enc_out;
        enc_out
            .stream_on()
            .map_err(|e| io_enc("STREAMON (OUTPUT)", e))?;
        enc_cap
            .stream_on()
            .map_err(|e| io_enc("STREAMON (CAPTURE)", e))?;
        cam.stream_on().map_err(|e| io_cam("STREAMON", e))?;
        let force_key = has_force_key_frame(&enc_dev);
        let bitrate = bitrate_control(&enc_dev);
        log::info!(
            "{camera_label} -> {encoder_label}: {camera_format} at {} fps -> {} ({}), {}{}",
            super::device::fps_text(fps),
            coded_format.fourcc,
            match transfer {
                Transfer::Dmabuf { .. } => "DMABUF, zero-copy",
                Transfer::Copy(CopyPlan::Flat { .. }) => "one copy",
                Transfer::Copy(CopyPlan::Rows { .. }) => "one copy, restrided",
            },
            if applied.is_empty() {
                "default controls".to_string()
            } else {
                applied.join(", ")
            },
            if force_key {
                ", keyframes on request"
            } else {
                ""
            }
        );
        Ok(M2mPipeline {
            enc_out,
            enc_cap,
            transfer,
            cam,
            camera_format,
            coded_format,
            camera_label,
            encoder_label,
            camera_path: req.camera.to_owned(),
            encoder_path: req.encoder.to_owned(),
            force_key,
            bitrate,
            stats: M2mStats::default(),
            last_raw_us: 0,
        })
    }

    pub fn camera_format(&self) -> &Format {
        &self.camera_format
    }

    pub fn coded_format(&self) -> &Format {
        &self.coded_format
    }

    pub fn zero_copy(&self) -> bool {
        matches!(self.transfer, Transfer::Dmabuf { .. })
    }

    pub fn stats(&self) -> M2mStats {
        self.stats
    }

    pub fn labels(&self) -> (&str, &str) {
        (&self.camera_label, &self.encoder_label)
    }

    /// Largest coded frame (the encoder's CAPTURE `sizeimage`).
    pub fn frame_capacity(&self) -> usize {
        self.coded_format
            .sizeimage()
            .max(self.enc_cap.plane_len(0, 0))
    }

    pub fn can_force_keyframes(&self) -> bool {
        self.force_key
    }

    /// The encoder's bitrate (bit/s, as set at open) when it has a `video_bitrate` control.
    pub fn bitrate(&self) -> Option<u32> {
        self.bitrate
    }

    /// Sets the encoder's bitrate while streaming (`V4L2_CID_MPEG_VIDEO_BITRATE` on its own
    /// fd: the Pi's bcm2835-codec takes it at any time); false without the control or when
    /// refused.
    pub fn set_bitrate(&mut self, bps: u32) -> bool {
        self.bitrate.is_some() && set_bitrate_control(self.enc_cap.device(), bps)
    }

    /// Presses the encoder's `force_key_frame` button; false when it has none.
    pub fn request_keyframe(&mut self) -> bool {
        self.force_key
            && self
                .enc_cap
                .device()
                .set_control(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)
                .is_ok()
    }

    /// Moves raw frames into the encoder until a coded frame is out (passed to `f`), for at
    /// most `timeout`.
    pub fn next_frame<R>(&mut self, timeout: Duration, f: FrameFn<'_, R>) -> Result<R, V4l2Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.take_coded(&mut *f)? {
                return Ok(r);
            }
            self.recycle_encoder_inputs()?;
            self.feed_raw_frames()?;
            if let Some(r) = self.take_coded(&mut *f)? {
                return Ok(r);
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.cam.raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.enc_cap.raw_fd(),
                    events: libc::POLLIN | libc::POLLOUT,
                    revents: 0,
                },
            ];
            let ready = wait_readable(&mut fds, deadline)
                .map_err(|e| V4l2Error::streaming(&self.camera_path, "poll", &e))?;
            if !ready && Instant::now() >= deadline {
                return Err(V4l2Error::Unavailable(format!(
                    "{} -> {}: no frame for {:.1} s",
                    self.camera_label,
                    self.encoder_label,
                    timeout.as_secs_f64()
                )));
            }
            if fds[0].revents & (libc::POLLHUP | libc::POLLNVAL) != 0 {
                // A vanished camera: the DQBUF in feed_raw_frames names the error next round;
                // this only keeps the loop from spinning until then.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn take_coded<R>(&mut self, f: FrameFn<'_, R>) -> Result<Option<R>, V4l2Error> {
        let path = &self.encoder_path;
        let Some(d) = self
            .enc_cap
            .dequeue()
            .map_err(|e| V4l2Error::streaming(path, "DQBUF (CAPTURE)", &e))?
        else {
            return Ok(None);
        };
        let result = if d.error() || d.bytesused == 0 {
            None
        } else {
            self.stats.coded_frames += 1;
            Some(f(self.enc_cap.payload(&d), &d))
        };
        if d.last() {
            return Err(V4l2Error::Unavailable(format!(
                "{}: the encoder stopped (last buffer)",
                self.encoder_label
            )));
        }
        self.enc_cap
            .queue_mmap(d.index, &[], 0)
            .map_err(|e| V4l2Error::streaming(path, "QBUF (CAPTURE)", &e))?;
        Ok(result)
    }

    /// OUTPUT buffers the encoder is done with: in DMABUF mode their camera buffer goes back.
    fn recycle_encoder_inputs(&mut self) -> Result<(), V4l2Error> {
        for _ in 0..self.enc_out.count() {
            let Some(d) = self
                .enc_out
                .dequeue()
                .map_err(|e| V4l2Error::streaming(&self.encoder_path, "DQBUF (OUTPUT)", &e))?
            else {
                break;
            };
            if let Transfer::Dmabuf { .. } = self.transfer {
                self.cam
                    .queue_mmap(d.index, &[], 0)
                    .map_err(|e| V4l2Error::streaming(&self.camera_path, "QBUF", &e))?;
            }
        }
        Ok(())
    }

    fn feed_raw_frames(&mut self) -> Result<(), V4l2Error> {
        for _ in 0..self.cam.count() {
            let Some(c) = self
                .cam
                .dequeue()
                .map_err(|e| V4l2Error::streaming(&self.camera_path, "DQBUF", &e))?
            else {
                break;
            };
            if c.error() || c.bytesused == 0 {
                self.requeue_camera(c.index)?;
                continue;
            }
            self.stats.raw_frames += 1;
            let ts = self.raw_timestamp(&c);
            match &self.transfer {
                Transfer::Dmabuf {
                    raw_fds, lengths, ..
                } => {
                    let used = [c.bytesused + c.data_offset];
                    let fds = &raw_fds[c.index as usize];
                    self.enc_out
                        .queue_dmabuf(c.index, fds, &used, lengths, ts)
                        .map_err(|e| {
                            V4l2Error::streaming(&self.encoder_path, "QBUF (OUTPUT, DMABUF)", &e)
                        })?;
                }
                Transfer::Copy(plan) => {
                    if let Some(i) = self.enc_out.free_index() {
                        // Disjoint fields: the camera's mapping is read while the encoder's
                        // is written; the camera buffer is dequeued, so its driver keeps off.
                        let used = plan.copy(self.cam.payload(&c), self.enc_out.plane_mut(i, 0));
                        self.enc_out
                            .queue_mmap(i, &[used as u32], ts)
                            .map_err(|e| {
                                V4l2Error::streaming(&self.encoder_path, "QBUF (OUTPUT)", &e)
                            })?;
                    } else {
                        self.stats.raw_dropped += 1;
                    }
                    self.cam
                        .queue_mmap(c.index, &[], 0)
                        .map_err(|e| V4l2Error::streaming(&self.camera_path, "QBUF", &e))?;
                }
            }
        }
        Ok(())
    }

    fn requeue_camera(&mut self, index: u32) -> Result<(), V4l2Error> {
        self.cam
            .queue_mmap(index, &[], 0)
            .map_err(|e| V4l2Error::streaming(&self.camera_path, "QBUF", &e))
    }

    /// The camera's monotonic timestamp, else now; strictly increasing either way.
    fn raw_timestamp(&mut self, c: &Dequeued) -> u64 {
        let now = monotonic_us();
        let ts = if c.timestamp_usable() && c.timestamp_us <= now + 1_000_000 {
            c.timestamp_us
        } else {
            now
        };
        let ts = ts.max(self.last_raw_us + 1);
        self.last_raw_us = ts;
        ts
    }
}

fn is_single_buffer(f: FourCc) -> bool {
    // Multi-buffer variants (NV12M, YU12M, ...) end in 'M' and are not offered to cameras.
    !matches!(f.0.to_le_bytes()[3], b'M')
}

fn dmabuf_setup(
    cam: &Queue,
    enc: &Arc<Device>,
    ty: BufType,
    format: &Format,
) -> io::Result<(Queue, Transfer)> {
    let fds = cam.export_all()?;
    let q = Queue::dmabuf(enc, ty, cam.count() as u32, format.planes.len())?;
    if q.count() < cam.count() {
        return Err(io::Error::other(format!(
            "the encoder took {} of {} DMABUF buffers",
            q.count(),
            cam.count()
        )));
    }
    let raw_fds = fds
        .iter()
        .map(|planes| planes.iter().map(|fd| fd.as_raw_fd()).collect())
        .collect();
    let lengths = (0..format.planes.len())
        .map(|p| cam.plane_len(0, p) as u32)
        .collect();
    Ok((
        q,
        Transfer::Dmabuf {
            _exported: fds,
            raw_fds,
            lengths,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::super::device::PlaneFormat;
    use super::*;

    fn fmt(fourcc: u32, w: u32, h: u32, stride: u32, size: u32) -> Format {
        Format {
            width: w,
            height: h,
            fourcc: FourCc(fourcc),
            field: V4L2_FIELD_NONE,
            colorspace: 0,
            planes: vec![PlaneFormat {
                bytesperline: stride,
                sizeimage: size,
            }],
        }
    }

    #[test]
    fn identical_layouts_copy_flat() {
        let a = fmt(V4L2_PIX_FMT_YUV420, 64, 32, 64, 64 * 32 * 3 / 2);
        assert_eq!(
            CopyPlan::new(&a, &a.clone()),
            Some(CopyPlan::Flat { len: 3072 })
        );
    }

    #[test]
    fn a_padded_encoder_layout_gets_its_chroma_planes_at_the_padded_offsets() {
        // The Pi encoder pads 1080 lines to 1088 for YU12: chroma starts at stride * 1088.
        let cam = fmt(V4L2_PIX_FMT_YUV420, 1920, 1080, 1920, 1920 * 1080 * 3 / 2);
        let enc = fmt(V4L2_PIX_FMT_YUV420, 1920, 1080, 1920, 1920 * 1088 * 3 / 2);
        let spans = plane_spans(&enc).unwrap();
        assert_eq!(spans[1].offset, 1920 * 1088);
        assert_eq!(spans[2].offset, 1920 * 1088 + 960 * 544);
        let Some(CopyPlan::Rows { from, .. }) = CopyPlan::new(&cam, &enc) else {
            panic!("expected a row copy")
        };
        assert_eq!(from[1].offset, 1920 * 1080);
    }

    #[test]
    fn row_copies_move_each_plane_and_never_overrun() {
        // 4x2 NV12, camera stride 4, encoder stride 8.
        let cam = fmt(V4L2_PIX_FMT_NV12, 4, 2, 4, 12);
        let enc = fmt(V4L2_PIX_FMT_NV12, 4, 2, 8, 24);
        let plan = CopyPlan::new(&cam, &enc).unwrap();
        let src: Vec<u8> = (1..=12).collect();
        let mut dst = vec![0u8; 24];
        plan.copy(&src, &mut dst);
        assert_eq!(&dst[0..4], &[1, 2, 3, 4]);
        assert_eq!(&dst[8..12], &[5, 6, 7, 8]);
        assert_eq!(&dst[16..20], &[9, 10, 11, 12], "UV plane at stride * rows");
        let mut short = vec![0u8; 10];
        plan.copy(&src, &mut short); // must not panic
    }

    #[test]
    fn a_frame_into_a_taller_encoder_frame_is_copied_row_by_row() {
        let cam = fmt(V4L2_PIX_FMT_YUV420, 640, 360, 640, 640 * 360 * 3 / 2);
        let enc = fmt(V4L2_PIX_FMT_YUV420, 640, 368, 640, 640 * 368 * 3 / 2);
        let Some(CopyPlan::Rows { from, to }) = CopyPlan::new(&cam, &enc) else {
            panic!("expected a row copy")
        };
        assert_eq!((from[0].rows, to[0].rows), (360, 368));
        assert_eq!(to[1].offset, 640 * 368);
        assert_eq!(
            CopyPlan::new(&enc, &cam),
            None,
            "never into a smaller frame"
        );
    }

    #[test]
    fn unknown_layouts_have_no_row_plan() {
        let a = fmt(sys_fourcc(b"BA81"), 64, 32, 64, 2048);
        let b = fmt(sys_fourcc(b"BA81"), 64, 32, 128, 4096);
        assert_eq!(CopyPlan::new(&a, &b), None);
    }

    fn sys_fourcc(c: &[u8; 4]) -> u32 {
        super::super::sys::fourcc(c)
    }
}
