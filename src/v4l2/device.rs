//! Safe, typed wrappers around the V4L2 ioctls campush issues on one open device node.
//!
//! Owns: the device's file descriptor ([`Device`]) and the conversions between the raw `sys`
//! structs and the plain Rust values the rest of campush uses ([`Caps`], [`FormatDesc`],
//! [`Format`], [`FrameSize`], [`FrameInterval`], [`ControlInfo`]).
//!
//! Invariants:
//! - Every `unsafe` block here is an `ioctl` whose argument is the exact `sys` struct its request
//!   number was computed from, zero-initialised and owned by the caller for the whole call.
//! - Devices are opened non-blocking (`O_NONBLOCK`): `DQBUF` never blocks; waiting is `poll`
//!   with a deadline, so every wait in the V4L2 layer is bounded.
//! - Enumerations stop at `EINVAL` (the documented end) and after a fixed maximum, so a buggy
//!   driver that never says "end" cannot loop us forever.
//! - Start-up calls may allocate; nothing here that the per-frame path calls (`qbuf`, `dqbuf`,
//!   `poll`, `set_control`) does.
//!
//! Spec: "Querying Capabilities", "Data Formats", "Streaming I/O (Memory Mapping)" and
//! "ioctl VIDIOC_ENUM_FMT / ENUM_FRAMESIZES / ENUM_FRAMEINTERVALS / QUERYCTRL".

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sys::{self, *};

/// Largest index any enumeration here will ask for.
const MAX_ENUM: u32 = 512;
/// Attempts of one ioctl interrupted by a signal before the EINTR is reported.
const MAX_EINTR: u32 = 16;

/// A four-character code naming a pixel format (`V4L2_PIX_FMT_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FourCc(pub u32);

impl FourCc {
    pub const H264: FourCc = FourCc(V4L2_PIX_FMT_H264);
    pub const FWHT: FourCc = FourCc(V4L2_PIX_FMT_FWHT);

    /// Parses `"NV12"`, `"YU12"`, ... Shorter codes are padded with spaces, as the kernel does.
    pub fn parse(s: &str) -> Option<FourCc> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > 4 || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut code = [b' '; 4];
        code[..b.len()].copy_from_slice(b);
        Some(FourCc(sys::fourcc(&code)))
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = (self.0 & 0x7fff_ffff).to_le_bytes();
        for b in bytes {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            write!(f, "{c}")?;
        }
        // Bit 31 marks the big-endian variant of a format.
        if self.0 & 0x8000_0000 != 0 {
            f.write_str("-BE")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// A buffer queue type (`enum v4l2_buf_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BufType(pub u32);

impl BufType {
    pub const CAPTURE: BufType = BufType(V4L2_BUF_TYPE_VIDEO_CAPTURE);
    pub const OUTPUT: BufType = BufType(V4L2_BUF_TYPE_VIDEO_OUTPUT);
    pub const CAPTURE_MPLANE: BufType = BufType(V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE);
    pub const OUTPUT_MPLANE: BufType = BufType(V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE);

    pub fn is_multiplanar(self) -> bool {
        matches!(self, BufType::CAPTURE_MPLANE | BufType::OUTPUT_MPLANE)
    }

    pub fn is_output(self) -> bool {
        matches!(self, BufType::OUTPUT | BufType::OUTPUT_MPLANE)
    }

    pub fn name(self) -> &'static str {
        match self {
            BufType::CAPTURE => "capture",
            BufType::OUTPUT => "output",
            BufType::CAPTURE_MPLANE => "capture (multi-planar)",
            BufType::OUTPUT_MPLANE => "output (multi-planar)",
            _ => "other",
        }
    }
}

/// `c_str` field of a V4L2 struct as text.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// What `VIDIOC_QUERYCAP` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    pub bus_info: String,
    pub version: u32,
    /// Capabilities of the whole physical device.
    pub capabilities: u32,
    /// Capabilities of this node (when the driver reports them, else `capabilities`).
    pub device_caps: u32,
}

impl Caps {
    fn has(&self, bit: u32) -> bool {
        self.device_caps & bit != 0
    }

    pub fn streaming(&self) -> bool {
        self.has(V4L2_CAP_STREAMING)
    }

    pub fn is_m2m(&self) -> bool {
        self.has(V4L2_CAP_VIDEO_M2M)
            || self.has(V4L2_CAP_VIDEO_M2M_MPLANE)
            || (self.has(V4L2_CAP_VIDEO_CAPTURE) && self.has(V4L2_CAP_VIDEO_OUTPUT))
            || (self.has(V4L2_CAP_VIDEO_CAPTURE_MPLANE) && self.has(V4L2_CAP_VIDEO_OUTPUT_MPLANE))
    }

    /// The capture queue type of this node, multi-planar preferred, if it has one.
    pub fn capture_type(&self) -> Option<BufType> {
        if self.has(V4L2_CAP_VIDEO_CAPTURE_MPLANE) || self.has(V4L2_CAP_VIDEO_M2M_MPLANE) {
            Some(BufType::CAPTURE_MPLANE)
        } else if self.has(V4L2_CAP_VIDEO_CAPTURE) || self.has(V4L2_CAP_VIDEO_M2M) {
            Some(BufType::CAPTURE)
        } else {
            None
        }
    }

    /// The output queue type of this node, multi-planar preferred, if it has one.
    pub fn output_type(&self) -> Option<BufType> {
        if self.has(V4L2_CAP_VIDEO_OUTPUT_MPLANE) || self.has(V4L2_CAP_VIDEO_M2M_MPLANE) {
            Some(BufType::OUTPUT_MPLANE)
        } else if self.has(V4L2_CAP_VIDEO_OUTPUT) || self.has(V4L2_CAP_VIDEO_M2M) {
            Some(BufType::OUTPUT)
        } else {
            None
        }
    }

    /// Human summary of the node's capabilities: `capture, multi-planar, streaming`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if self.is_m2m() {
            parts.push("M2M");
        } else {
            if self.capture_type().is_some() {
                parts.push("capture");
            }
            if self.output_type().is_some() {
                parts.push("output");
            }
        }
        if self.has(V4L2_CAP_META_CAPTURE) && parts.is_empty() {
            parts.push("metadata");
        }
        let mplane = self.has(V4L2_CAP_VIDEO_CAPTURE_MPLANE)
            || self.has(V4L2_CAP_VIDEO_OUTPUT_MPLANE)
            || self.has(V4L2_CAP_VIDEO_M2M_MPLANE);
        let splane = self.has(V4L2_CAP_VIDEO_CAPTURE)
            || self.has(V4L2_CAP_VIDEO_OUTPUT)
            || self.has(V4L2_CAP_VIDEO_M2M);
        if mplane {
            parts.push("multi-planar");
        }
        if splane {
            parts.push("single-planar");
        }
        if self.streaming() {
            parts.push("streaming");
        }
        if self.has(V4L2_CAP_READWRITE) {
            parts.push("read/write");
        }
        if parts.is_empty() {
            parts.push("no video queues");
        }
        parts.join(", ")
    }
}

/// One entry of `VIDIOC_ENUM_FMT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatDesc {
    pub fourcc: FourCc,
    pub description: String,
    pub compressed: bool,
}

/// One entry of `VIDIOC_ENUM_FRAMESIZES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    Discrete {
        width: u32,
        height: u32,
    },
    /// Continuous ranges are reported as stepwise with steps of 1.
    Stepwise(v4l2_frmsize_stepwise),
}

impl FrameSize {
    pub fn contains(&self, width: u32, height: u32) -> bool {
        match *self {
            FrameSize::Discrete {
                width: w,
                height: h,
            } => (w, h) == (width, height),
            FrameSize::Stepwise(s) => {
                let fits = |v: u32, min: u32, max: u32, step: u32| {
                    (min..=max).contains(&v) && (v - min) % step.max(1) == 0
                };
                fits(width, s.min_width, s.max_width, s.step_width)
                    && fits(height, s.min_height, s.max_height, s.step_height)
            }
        }
    }
}

impl fmt::Display for FrameSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSize::Discrete { width, height } => write!(f, "{width}x{height}"),
            FrameSize::Stepwise(s) => {
                write!(
                    f,
                    "{}x{} to {}x{}",
                    s.min_width, s.min_height, s.max_width, s.max_height
                )?;
                if s.step_width > 1 || s.step_height > 1 {
                    write!(f, " (steps {}x{})", s.step_width, s.step_height)?;
                }
                Ok(())
            }
        }
    }
}

/// One entry of `VIDIOC_ENUM_FRAMEINTERVALS`, as frame rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FrameInterval {
    Discrete(v4l2_fract),
    Stepwise { min: v4l2_fract, max: v4l2_fract },
}

/// Frames per second of a time-per-frame fraction.
pub fn fps_of(interval: v4l2_fract) -> f64 {
    if interval.numerator == 0 {
        return 0.0;
    }
    interval.denominator as f64 / interval.numerator as f64
}

/// Formats a frame rate without a useless fraction: `30`, `29.97`, `7.5`.
pub fn fps_text(fps: f64) -> String {
    let s = format!("{fps:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl FrameInterval {
    pub fn contains_fps(&self, fps: f64) -> bool {
        let near = |a: f64, b: f64| (a - b).abs() <= 0.01 * b.max(1.0);
        match *self {
            FrameInterval::Discrete(i) => near(fps_of(i), fps),
            // min interval = max fps.
            FrameInterval::Stepwise { min, max } => {
                let (lo, hi) = (fps_of(max), fps_of(min));
                fps >= lo - 0.01 && fps <= hi + 0.01
            }
        }
    }
}

impl fmt::Display for FrameInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameInterval::Discrete(i) => write!(f, "{}", fps_text(fps_of(i))),
            FrameInterval::Stepwise { min, max } => {
                write!(f, "{}-{}", fps_text(fps_of(max)), fps_text(fps_of(min)))
            }
        }
    }
}

/// Layout of one plane of a format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlaneFormat {
    pub bytesperline: u32,
    pub sizeimage: u32,
}

/// A negotiated image format, single- or multi-planar alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub width: u32,
    pub height: u32,
    pub fourcc: FourCc,
    pub field: u32,
    pub colorspace: u32,
    /// One entry for single-planar formats; `num_planes` entries for multi-planar ones.
    pub planes: Vec<PlaneFormat>,
}

impl Format {
    /// A format request: the driver fills in strides and sizes.
    pub fn request(fourcc: FourCc, width: u32, height: u32) -> Format {
        Format {
            width,
            height,
            fourcc,
            field: V4L2_FIELD_NONE,
            colorspace: 0,
            planes: vec![PlaneFormat::default()],
        }
    }

    /// Total bytes of one image over all planes.
    pub fn sizeimage(&self) -> usize {
        self.planes.iter().map(|p| p.sizeimage as usize).sum()
    }

    fn to_raw(&self, ty: BufType) -> v4l2_format {
        // SAFETY: v4l2_format is plain old data.
        let mut raw: v4l2_format = unsafe { sys::zeroed() };
        raw.type_ = ty.0;
        if ty.is_multiplanar() {
            // SAFETY: writing a Copy struct into a union field.
            let mp = unsafe { &mut raw.fmt.pix_mp };
            mp.width = self.width;
            mp.height = self.height;
            mp.pixelformat = self.fourcc.0;
            mp.field = self.field;
            mp.colorspace = self.colorspace;
            mp.num_planes = self.planes.len().clamp(1, VIDEO_MAX_PLANES) as u8;
            for (dst, src) in mp.plane_fmt.iter_mut().zip(&self.planes) {
                dst.bytesperline = src.bytesperline;
                dst.sizeimage = src.sizeimage;
            }
        } else {
            // SAFETY: as above.
            let p = unsafe { &mut raw.fmt.pix };
            p.width = self.width;
            p.height = self.height;
            p.pixelformat = self.fourcc.0;
            p.field = self.field;
            p.colorspace = self.colorspace;
            if let Some(plane) = self.planes.first() {
                p.bytesperline = plane.bytesperline;
                p.sizeimage = plane.sizeimage;
            }
        }
        raw
    }

    fn from_raw(raw: &v4l2_format) -> Format {
        if BufType(raw.type_).is_multiplanar() {
            // SAFETY: the kernel filled the union member that matches the queue type.
            let mp = unsafe { &raw.fmt.pix_mp };
            let n = (mp.num_planes as usize).clamp(1, VIDEO_MAX_PLANES);
            Format {
                width: mp.width,
                height: mp.height,
                fourcc: FourCc(mp.pixelformat),
                field: mp.field,
                colorspace: mp.colorspace,
                planes: mp.plane_fmt[..n]
                    .iter()
                    .map(|p| PlaneFormat {
                        bytesperline: p.bytesperline,
                        sizeimage: p.sizeimage,
                    })
                    .collect(),
            }
        } else {
            // SAFETY: as above.
            let p = unsafe { &raw.fmt.pix };
            Format {
                width: p.width,
                height: p.height,
                fourcc: FourCc(p.pixelformat),
                field: p.field,
                colorspace: p.colorspace,
                planes: vec![PlaneFormat {
                    bytesperline: p.bytesperline,
                    sizeimage: p.sizeimage,
                }],
            }
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.fourcc, self.width, self.height)?;
        for (i, p) in self.planes.iter().enumerate() {
            let sep = if i == 0 { " (" } else { ", " };
            write!(f, "{sep}stride {} size {}", p.bytesperline, p.sizeimage)?;
        }
        if !self.planes.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// What `VIDIOC_QUERYCTRL` says about one control (plus its menu, for menu controls).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlInfo {
    pub id: u32,
    pub kind: u32,
    pub name: String,
    pub minimum: i32,
    pub maximum: i32,
    pub step: i32,
    pub default: i32,
    pub flags: u32,
    /// `(value, name)` of each menu item the driver accepts.
    pub menu: Vec<(i32, String)>,
}

impl ControlInfo {
    pub fn usable(&self) -> bool {
        self.flags & (V4L2_CTRL_FLAG_DISABLED | V4L2_CTRL_FLAG_READ_ONLY) == 0
    }

    pub fn is_menu(&self) -> bool {
        matches!(self.kind, V4L2_CTRL_TYPE_MENU | V4L2_CTRL_TYPE_INTEGER_MENU)
    }
}

/// An open V4L2 device node.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

impl Device {
    /// Opens `path` read-write, non-blocking, close-on-exec.
    pub fn open(path: &Path) -> io::Result<Device> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in device path"))?;
        // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_error());
        }
        Ok(Device {
            // SAFETY: fd was just opened and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Issues `request` with `arg`. Retries EINTR a bounded number of times.
    ///
    /// # Safety
    /// `request` must be the ioctl number computed from `T` (see `sys`).
    unsafe fn ioctl<T>(&self, request: u32, arg: &mut T) -> io::Result<()> {
        for _ in 0..MAX_EINTR {
            // SAFETY: guaranteed by the caller: the kernel reads and writes exactly one T.
            let rc = unsafe {
                libc::ioctl(
                    self.fd.as_raw_fd(),
                    request as _,
                    arg as *mut T as *mut libc::c_void,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = last_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
        Err(io::Error::from_raw_os_error(libc::EINTR))
    }

    pub fn query_caps(&self) -> io::Result<Caps> {
        // SAFETY: plain old data; request matches the struct.
        let mut c: v4l2_capability = unsafe { sys::zeroed() };
        unsafe { self.ioctl(VIDIOC_QUERYCAP, &mut c)? };
        Ok(Caps {
            driver: c_str(&c.driver),
            card: c_str(&c.card),
            bus_info: c_str(&c.bus_info),
            version: c.version,
            capabilities: c.capabilities,
            device_caps: if c.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
                c.device_caps
            } else {
                c.capabilities
            },
        })
    }

    /// Every format the queue `ty` offers, in the driver's order of preference.
    pub fn formats(&self, ty: BufType) -> io::Result<Vec<FormatDesc>> {
        let mut out = Vec::new();
        for index in 0..MAX_ENUM {
            // SAFETY: plain old data.
            let mut d: v4l2_fmtdesc = unsafe { sys::zeroed() };
            d.index = index;
            d.type_ = ty.0;
            // SAFETY: request matches the struct.
            match unsafe { self.ioctl(VIDIOC_ENUM_FMT, &mut d) } {
                Ok(()) => out.push(FormatDesc {
                    fourcc: FourCc(d.pixelformat),
                    description: c_str(&d.description),
                    compressed: d.flags & V4L2_FMT_FLAG_COMPRESSED != 0,
                }),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Frame sizes for `fourcc`; empty when the driver does not enumerate them.
    pub fn frame_sizes(&self, fourcc: FourCc) -> Vec<FrameSize> {
        let mut out = Vec::new();
        for index in 0..MAX_ENUM {
            // SAFETY: plain old data.
            let mut s: v4l2_frmsizeenum = unsafe { sys::zeroed() };
            s.index = index;
            s.pixel_format = fourcc.0;
            // SAFETY: request matches the struct.
            if unsafe { self.ioctl(VIDIOC_ENUM_FRAMESIZES, &mut s) }.is_err() {
                break;
            }
            // SAFETY: the kernel filled the member named by `type_`.
            match s.type_ {
                V4L2_FRMSIZE_TYPE_DISCRETE => {
                    let d = unsafe { s.u.discrete };
                    out.push(FrameSize::Discrete {
                        width: d.width,
                        height: d.height,
                    });
                }
                V4L2_FRMSIZE_TYPE_CONTINUOUS | V4L2_FRMSIZE_TYPE_STEPWISE => {
                    let mut st = unsafe { s.u.stepwise };
                    if s.type_ == V4L2_FRMSIZE_TYPE_CONTINUOUS {
                        st.step_width = 1;
                        st.step_height = 1;
                    }
                    out.push(FrameSize::Stepwise(st));
                    break; // stepwise is always the only entry
                }
                _ => break,
            }
        }
        out
    }

    /// Frame intervals for `fourcc` at `width`x`height`; empty when not enumerated.
    pub fn frame_intervals(&self, fourcc: FourCc, width: u32, height: u32) -> Vec<FrameInterval> {
        let mut out = Vec::new();
        for index in 0..MAX_ENUM {
            // SAFETY: plain old data.
            let mut i: v4l2_frmivalenum = unsafe { sys::zeroed() };
            i.index = index;
            i.pixel_format = fourcc.0;
            i.width = width;
            i.height = height;
            // SAFETY: request matches the struct.
            if unsafe { self.ioctl(VIDIOC_ENUM_FRAMEINTERVALS, &mut i) }.is_err() {
                break;
            }
            // SAFETY: the kernel filled the member named by `type_`.
            match i.type_ {
                V4L2_FRMSIZE_TYPE_DISCRETE => {
                    out.push(FrameInterval::Discrete(unsafe { i.u.discrete }))
                }
                V4L2_FRMSIZE_TYPE_CONTINUOUS | V4L2_FRMSIZE_TYPE_STEPWISE => {
                    let s = unsafe { i.u.stepwise };
                    out.push(FrameInterval::Stepwise {
                        min: s.min,
                        max: s.max,
                    });
                    break;
                }
                _ => break,
            }
        }
        out
    }

    pub fn get_format(&self, ty: BufType) -> io::Result<Format> {
        // SAFETY: plain old data.
        let mut raw: v4l2_format = unsafe { sys::zeroed() };
        raw.type_ = ty.0;
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_G_FMT, &mut raw)? };
        Ok(Format::from_raw(&raw))
    }

    /// `VIDIOC_S_FMT`: returns what the driver actually set (it adjusts rather than refuses).
    pub fn set_format(&self, ty: BufType, format: &Format) -> io::Result<Format> {
        let mut raw = format.to_raw(ty);
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_S_FMT, &mut raw)? };
        Ok(Format::from_raw(&raw))
    }

    /// `VIDIOC_G_PARM`: `(supports time-per-frame, current time per frame)`.
    pub fn get_parm(&self, ty: BufType) -> io::Result<(bool, v4l2_fract)> {
        // SAFETY: plain old data.
        let mut p: v4l2_streamparm = unsafe { sys::zeroed() };
        p.type_ = ty.0;
        // SAFETY: request matches the struct; capture and output members share a layout.
        unsafe { self.ioctl(VIDIOC_G_PARM, &mut p)? };
        let c = unsafe { p.parm.capture };
        Ok((c.capability & V4L2_CAP_TIMEPERFRAME != 0, c.timeperframe))
    }

    /// `VIDIOC_S_PARM` with a time per frame; returns the one the driver chose.
    pub fn set_frame_interval(&self, ty: BufType, interval: v4l2_fract) -> io::Result<v4l2_fract> {
        // SAFETY: plain old data.
        let mut p: v4l2_streamparm = unsafe { sys::zeroed() };
        p.type_ = ty.0;
        // SAFETY: writing Copy data into the union; the two members share a layout.
        unsafe {
            p.parm.capture.timeperframe = interval;
            self.ioctl(VIDIOC_S_PARM, &mut p)?;
            Ok(p.parm.capture.timeperframe)
        }
    }

    /// `VIDIOC_REQBUFS`: returns how many buffers the driver allocated.
    pub fn request_buffers(&self, ty: BufType, memory: u32, count: u32) -> io::Result<u32> {
        let mut r = v4l2_requestbuffers {
            count,
            type_: ty.0,
            memory,
            ..Default::default()
        };
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_REQBUFS, &mut r)? };
        Ok(r.count)
    }

    /// `VIDIOC_QUERYBUF`. For multi-planar queues `buf.m.planes` must point at
    /// `buf.length` planes owned by the caller.
    pub fn query_buffer(&self, buf: &mut v4l2_buffer) -> io::Result<()> {
        // SAFETY: request matches the struct; the planes pointer is the caller's duty.
        unsafe { self.ioctl(VIDIOC_QUERYBUF, buf) }
    }

    /// `VIDIOC_QBUF` (same planes rule as [`Device::query_buffer`]).
    pub fn queue_buffer(&self, buf: &mut v4l2_buffer) -> io::Result<()> {
        // SAFETY: as above.
        unsafe { self.ioctl(VIDIOC_QBUF, buf) }
    }

    /// `VIDIOC_DQBUF` (same planes rule). `EAGAIN` when no buffer is ready.
    pub fn dequeue_buffer(&self, buf: &mut v4l2_buffer) -> io::Result<()> {
        // SAFETY: as above.
        unsafe { self.ioctl(VIDIOC_DQBUF, buf) }
    }

    /// `VIDIOC_EXPBUF`: a DMABUF file descriptor for one plane of one MMAP buffer.
    pub fn export_buffer(&self, ty: BufType, index: u32, plane: u32) -> io::Result<OwnedFd> {
        let mut e = v4l2_exportbuffer {
            type_: ty.0,
            index,
            plane,
            flags: (libc::O_CLOEXEC | libc::O_RDWR) as u32,
            ..Default::default()
        };
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_EXPBUF, &mut e)? };
        // SAFETY: the kernel handed us a new fd that nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(e.fd) })
    }

    pub fn stream_on(&self, ty: BufType) -> io::Result<()> {
        let mut t = ty.0 as libc::c_int;
        // SAFETY: request matches the argument type (int).
        unsafe { self.ioctl(VIDIOC_STREAMON, &mut t) }
    }

    pub fn stream_off(&self, ty: BufType) -> io::Result<()> {
        let mut t = ty.0 as libc::c_int;
        // SAFETY: as above.
        unsafe { self.ioctl(VIDIOC_STREAMOFF, &mut t) }
    }

    /// `VIDIOC_ENCODER_CMD` with a command and no data.
    pub fn encoder_command(&self, cmd: u32) -> io::Result<()> {
        let mut c = v4l2_encoder_cmd {
            cmd,
            ..Default::default()
        };
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_ENCODER_CMD, &mut c) }
    }

    /// One control by id, with its menu items.
    pub fn control(&self, id: u32) -> io::Result<ControlInfo> {
        // SAFETY: plain old data.
        let mut q: v4l2_queryctrl = unsafe { sys::zeroed() };
        q.id = id;
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_QUERYCTRL, &mut q)? };
        Ok(self.control_info(&q))
    }

    /// Every control of the node (control-class headers skipped).
    pub fn controls(&self) -> Vec<ControlInfo> {
        let mut out = Vec::new();
        let mut id = 0u32;
        for _ in 0..MAX_ENUM * 4 {
            // SAFETY: plain old data.
            let mut q: v4l2_queryctrl = unsafe { sys::zeroed() };
            q.id = id | V4L2_CTRL_FLAG_NEXT_CTRL;
            // SAFETY: request matches the struct.
            if unsafe { self.ioctl(VIDIOC_QUERYCTRL, &mut q) }.is_err() || q.id <= id {
                break;
            }
            id = q.id;
            if q.type_ != V4L2_CTRL_TYPE_CTRL_CLASS {
                out.push(self.control_info(&q));
            }
        }
        out
    }

    fn control_info(&self, q: &v4l2_queryctrl) -> ControlInfo {
        let mut menu = Vec::new();
        if matches!(q.type_, V4L2_CTRL_TYPE_MENU | V4L2_CTRL_TYPE_INTEGER_MENU)
            && q.minimum >= 0
            && q.maximum >= q.minimum
            && q.maximum - q.minimum < MAX_ENUM as i32
        {
            for index in q.minimum..=q.maximum {
                // SAFETY: plain old data.
                let mut m: v4l2_querymenu = unsafe { sys::zeroed() };
                m.id = q.id;
                m.index = index as u32;
                // SAFETY: request matches the struct. Unsupported items answer EINVAL.
                if unsafe { self.ioctl(VIDIOC_QUERYMENU, &mut m) }.is_ok() {
                    let name = if q.type_ == V4L2_CTRL_TYPE_INTEGER_MENU {
                        let mut v = [0u8; 8];
                        v.copy_from_slice(&m.name[..8]);
                        i64::from_ne_bytes(v).to_string()
                    } else {
                        c_str(&m.name)
                    };
                    menu.push((index, name));
                }
            }
        }
        ControlInfo {
            id: q.id,
            kind: q.type_,
            name: c_str(&q.name),
            minimum: q.minimum,
            maximum: q.maximum,
            step: q.step,
            default: q.default_value,
            flags: q.flags,
            menu,
        }
    }

    pub fn set_control(&self, id: u32, value: i32) -> io::Result<()> {
        let mut c = v4l2_control { id, value };
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_S_CTRL, &mut c) }
    }

    pub fn get_control(&self, id: u32) -> io::Result<i32> {
        let mut c = v4l2_control { id, value: 0 };
        // SAFETY: request matches the struct.
        unsafe { self.ioctl(VIDIOC_G_CTRL, &mut c)? };
        Ok(c.value)
    }
}

/// Waits until one of `fds` is ready for its events, for at most `timeout`. Returns the number
/// of ready descriptors (0 on timeout); `revents` are written back into `fds`.
pub fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = last_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourccs_print_as_their_four_characters() {
        assert_eq!(FourCc::H264.to_string(), "H264");
        assert_eq!(FourCc(V4L2_PIX_FMT_YUV420).to_string(), "YU12");
        assert_eq!(FourCc(0x0000_3132).to_string(), "21..");
        assert_eq!(
            FourCc(sys::fourcc(b"AR15") | 0x8000_0000).to_string(),
            "AR15-BE"
        );
        assert_eq!(FourCc::parse("NV12"), Some(FourCc(V4L2_PIX_FMT_NV12)));
        assert_eq!(FourCc::parse("Y10"), Some(FourCc(sys::fourcc(b"Y10 "))));
        assert_eq!(FourCc::parse("TOOLONG"), None);
        assert_eq!(FourCc::parse(""), None);
    }

    #[test]
    fn frame_sizes_check_ranges_and_steps() {
        let step = FrameSize::Stepwise(v4l2_frmsize_stepwise {
            min_width: 32,
            max_width: 1920,
            step_width: 2,
            min_height: 32,
            max_height: 1080,
            step_height: 2,
        });
        assert!(step.contains(1280, 720));
        assert!(!step.contains(1281, 720));
        assert!(!step.contains(3840, 2160));
        assert_eq!(step.to_string(), "32x32 to 1920x1080 (steps 2x2)");
        let d = FrameSize::Discrete {
            width: 640,
            height: 480,
        };
        assert!(d.contains(640, 480) && !d.contains(640, 360));
        assert_eq!(d.to_string(), "640x480");
    }

    #[test]
    fn frame_intervals_print_as_frame_rates() {
        let f = |n, d| v4l2_fract {
            numerator: n,
            denominator: d,
        };
        assert_eq!(FrameInterval::Discrete(f(1, 30)).to_string(), "30");
        assert_eq!(FrameInterval::Discrete(f(1001, 30000)).to_string(), "29.97");
        let s = FrameInterval::Stepwise {
            min: f(1, 60),
            max: f(1, 1),
        };
        assert_eq!(s.to_string(), "1-60");
        assert!(s.contains_fps(25.0) && !s.contains_fps(90.0));
        assert!(FrameInterval::Discrete(f(1001, 30000)).contains_fps(29.97));
    }

    #[test]
    fn formats_round_trip_through_both_raw_layouts() {
        let mut f = Format::request(FourCc(V4L2_PIX_FMT_NV12), 1280, 720);
        f.planes[0] = PlaneFormat {
            bytesperline: 1280,
            sizeimage: 1280 * 720 * 3 / 2,
        };
        for ty in [BufType::CAPTURE, BufType::OUTPUT_MPLANE] {
            let raw = f.to_raw(ty);
            assert_eq!(Format::from_raw(&raw), f, "{ty:?}");
        }
        assert_eq!(f.to_string(), "NV12 1280x720 (stride 1280 size 1382400)");
    }

    #[test]
    fn caps_summaries_name_the_queue_kinds() {
        let caps = |device_caps| Caps {
            driver: "d".into(),
            card: "c".into(),
            bus_info: String::new(),
            version: 0,
            capabilities: device_caps | V4L2_CAP_DEVICE_CAPS,
            device_caps,
        };
        let enc = caps(V4L2_CAP_VIDEO_M2M_MPLANE | V4L2_CAP_STREAMING);
        assert!(enc.is_m2m());
        assert_eq!(enc.capture_type(), Some(BufType::CAPTURE_MPLANE));
        assert_eq!(enc.output_type(), Some(BufType::OUTPUT_MPLANE));
        assert_eq!(enc.summary(), "M2M, multi-planar, streaming");
        let cam = caps(V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_READWRITE);
        assert!(!cam.is_m2m());
        assert_eq!(cam.capture_type(), Some(BufType::CAPTURE));
        assert_eq!(cam.output_type(), None);
        assert_eq!(
            cam.summary(),
            "capture, single-planar, streaming, read/write"
        );
    }
}
