//! The V4L2 user-space ABI that campush uses, written out by hand: `#[repr(C)]` structs,
//! constants and ioctl request numbers from `linux/videodev2.h` and `linux/v4l2-controls.h`
//! (kernel 6.1 uapi, which every later kernel keeps compatible).
//!
//! Owns: memory layout only. No ioctl is issued here; `device` wraps these in safe calls.
//!
//! Invariants:
//! - Every struct's size and the offset of every field the kernel reads at a non-obvious place is
//!   asserted at compile time, for both pointer widths. A mismatch fails the build for that
//!   target, never a run on a board. The expected numbers were taken from the C headers compiled
//!   for x86_64, aarch64 and arm (gnueabihf and musleabihf), see the unit tests.
//! - Request numbers are computed exactly as the kernel's `_IOWR` macros do, from the Rust struct
//!   sizes, so a layout change would also change the number (and the assertions catch that too).
//!   The generic `_IOC` encoding is used: x86, x86_64, arm, aarch64 and riscv all share it.
//! - `struct timeval` inside `v4l2_buffer` is two C `long`s. On 32-bit ARM that is the
//!   32-bit-`time_t` layout (68-byte `v4l2_buffer`, `VIDIOC_QBUF` = 0xc044560f), which every
//!   32-bit kernel accepts (`CONFIG_COMPAT_32BIT_TIME`, the `*_TIME32` ioctl variants), whatever
//!   `time_t` the C library was built with. Buffer timestamps are on `CLOCK_MONOTONIC`, so the
//!   2038 limit of a 32-bit seconds field is irrelevant here. (C programs built against a C
//!   library with 64-bit `time_t`, such as musl >= 1.2, use the kernel's other accepted layout:
//!   80 bytes, `VIDIOC_QBUF` = 0xc050560f.)
//!
//! Spec: V4L2 uAPI, "Function Reference" (ioctls) and "Image Formats"
//! (<https://docs.kernel.org/userspace-api/media/v4l/user-func.html>).

#![allow(non_camel_case_types)]

use std::mem::{offset_of, size_of};

use libc::{c_long, c_ulong};

use crate::ioctl::{self, ioc};

// ---------------------------------------------------------------------------------------------
// ioctl numbers (`crate::ioctl`: asm-generic's `_IOC`)

/// `_IOR('V', nr, T)`.
pub const fn ior<T>(nr: u8) -> u32 {
    ioc(ioctl::READ, b'V', nr, size_of::<T>())
}
/// `_IOW('V', nr, T)`.
pub const fn iow<T>(nr: u8) -> u32 {
    ioc(ioctl::WRITE, b'V', nr, size_of::<T>())
}
/// `_IOWR('V', nr, T)`.
pub const fn iowr<T>(nr: u8) -> u32 {
    ioc(ioctl::READ | ioctl::WRITE, b'V', nr, size_of::<T>())
}

pub const VIDIOC_QUERYCAP: u32 = ior::<v4l2_capability>(0);
pub const VIDIOC_ENUM_FMT: u32 = iowr::<v4l2_fmtdesc>(2);
pub const VIDIOC_G_FMT: u32 = iowr::<v4l2_format>(4);
pub const VIDIOC_S_FMT: u32 = iowr::<v4l2_format>(5);
pub const VIDIOC_REQBUFS: u32 = iowr::<v4l2_requestbuffers>(8);
pub const VIDIOC_QUERYBUF: u32 = iowr::<v4l2_buffer>(9);
pub const VIDIOC_QBUF: u32 = iowr::<v4l2_buffer>(15);
pub const VIDIOC_EXPBUF: u32 = iowr::<v4l2_exportbuffer>(16);
pub const VIDIOC_DQBUF: u32 = iowr::<v4l2_buffer>(17);
pub const VIDIOC_STREAMON: u32 = iow::<libc::c_int>(18);
pub const VIDIOC_STREAMOFF: u32 = iow::<libc::c_int>(19);
pub const VIDIOC_G_PARM: u32 = iowr::<v4l2_streamparm>(21);
pub const VIDIOC_S_PARM: u32 = iowr::<v4l2_streamparm>(22);
pub const VIDIOC_G_CTRL: u32 = iowr::<v4l2_control>(27);
pub const VIDIOC_S_CTRL: u32 = iowr::<v4l2_control>(28);
pub const VIDIOC_QUERYCTRL: u32 = iowr::<v4l2_queryctrl>(36);
pub const VIDIOC_QUERYMENU: u32 = iowr::<v4l2_querymenu>(37);
pub const VIDIOC_TRY_FMT: u32 = iowr::<v4l2_format>(64);
pub const VIDIOC_ENUM_FRAMESIZES: u32 = iowr::<v4l2_frmsizeenum>(74);
pub const VIDIOC_ENUM_FRAMEINTERVALS: u32 = iowr::<v4l2_frmivalenum>(75);
pub const VIDIOC_ENCODER_CMD: u32 = iowr::<v4l2_encoder_cmd>(77);

// ---------------------------------------------------------------------------------------------
// Constants

/// `enum v4l2_buf_type`.
pub const V4L2_BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const V4L2_BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
pub const V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE: u32 = 9;
pub const V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE: u32 = 10;

/// `enum v4l2_memory`.
pub const V4L2_MEMORY_MMAP: u32 = 1;
pub const V4L2_MEMORY_DMABUF: u32 = 4;

/// `enum v4l2_field`.
pub const V4L2_FIELD_ANY: u32 = 0;
pub const V4L2_FIELD_NONE: u32 = 1;

/// Capabilities (`v4l2_capability.capabilities` / `device_caps`).
pub const V4L2_CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const V4L2_CAP_VIDEO_OUTPUT: u32 = 0x0000_0002;
pub const V4L2_CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const V4L2_CAP_VIDEO_OUTPUT_MPLANE: u32 = 0x0000_2000;
pub const V4L2_CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
pub const V4L2_CAP_VIDEO_M2M: u32 = 0x0000_8000;
pub const V4L2_CAP_META_CAPTURE: u32 = 0x0080_0000;
pub const V4L2_CAP_READWRITE: u32 = 0x0100_0000;
pub const V4L2_CAP_STREAMING: u32 = 0x0400_0000;
pub const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;

/// `v4l2_fmtdesc.flags`.
pub const V4L2_FMT_FLAG_COMPRESSED: u32 = 0x0001;

/// `v4l2_buffer.flags`.
pub const V4L2_BUF_FLAG_MAPPED: u32 = 0x0000_0001;
pub const V4L2_BUF_FLAG_QUEUED: u32 = 0x0000_0002;
pub const V4L2_BUF_FLAG_DONE: u32 = 0x0000_0004;
pub const V4L2_BUF_FLAG_KEYFRAME: u32 = 0x0000_0008;
pub const V4L2_BUF_FLAG_PFRAME: u32 = 0x0000_0010;
pub const V4L2_BUF_FLAG_BFRAME: u32 = 0x0000_0020;
pub const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const V4L2_BUF_FLAG_TIMESTAMP_MASK: u32 = 0x0000_e000;
pub const V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN: u32 = 0x0000_0000;
pub const V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
pub const V4L2_BUF_FLAG_TIMESTAMP_COPY: u32 = 0x0000_4000;
pub const V4L2_BUF_FLAG_LAST: u32 = 0x0010_0000;

/// `v4l2_frmsizeenum.type` / `v4l2_frmivalenum.type`.
pub const V4L2_FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMSIZE_TYPE_STEPWISE: u32 = 3;

/// `v4l2_captureparm.capability`.
pub const V4L2_CAP_TIMEPERFRAME: u32 = 0x1000;

/// `v4l2_queryctrl.type` (`enum v4l2_ctrl_type`).
pub const V4L2_CTRL_TYPE_INTEGER: u32 = 1;
pub const V4L2_CTRL_TYPE_BOOLEAN: u32 = 2;
pub const V4L2_CTRL_TYPE_MENU: u32 = 3;
pub const V4L2_CTRL_TYPE_BUTTON: u32 = 4;
pub const V4L2_CTRL_TYPE_INTEGER64: u32 = 5;
pub const V4L2_CTRL_TYPE_CTRL_CLASS: u32 = 6;
pub const V4L2_CTRL_TYPE_INTEGER_MENU: u32 = 9;

/// `v4l2_queryctrl.flags`.
pub const V4L2_CTRL_FLAG_DISABLED: u32 = 0x0001;
pub const V4L2_CTRL_FLAG_READ_ONLY: u32 = 0x0004;
pub const V4L2_CTRL_FLAG_INACTIVE: u32 = 0x0010;
pub const V4L2_CTRL_FLAG_WRITE_ONLY: u32 = 0x0040;
/// OR-ed into `v4l2_queryctrl.id` to enumerate: the next control after that id.
pub const V4L2_CTRL_FLAG_NEXT_CTRL: u32 = 0x8000_0000;

/// Control classes and the codec (historically "MPEG") controls campush sets.
pub const V4L2_CTRL_CLASS_CODEC: u32 = 0x0099_0000;
pub const V4L2_CID_CODEC_BASE: u32 = V4L2_CTRL_CLASS_CODEC | 0x900;
pub const V4L2_CID_MPEG_VIDEO_BITRATE_MODE: u32 = V4L2_CID_CODEC_BASE + 206;
pub const V4L2_CID_MPEG_VIDEO_GOP_SIZE: u32 = V4L2_CID_CODEC_BASE + 203;
pub const V4L2_CID_MPEG_VIDEO_BITRATE: u32 = V4L2_CID_CODEC_BASE + 207;
pub const V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER: u32 = V4L2_CID_CODEC_BASE + 226;
pub const V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME: u32 = V4L2_CID_CODEC_BASE + 229;
pub const V4L2_CID_MPEG_VIDEO_H264_MIN_QP: u32 = V4L2_CID_CODEC_BASE + 353;
pub const V4L2_CID_MPEG_VIDEO_H264_MAX_QP: u32 = V4L2_CID_CODEC_BASE + 354;
pub const V4L2_CID_MPEG_VIDEO_H264_I_PERIOD: u32 = V4L2_CID_CODEC_BASE + 358;
pub const V4L2_CID_MPEG_VIDEO_H264_LEVEL: u32 = V4L2_CID_CODEC_BASE + 359;
pub const V4L2_CID_MPEG_VIDEO_H264_PROFILE: u32 = V4L2_CID_CODEC_BASE + 363;

/// `enum v4l2_mpeg_video_bitrate_mode`.
pub const V4L2_MPEG_VIDEO_BITRATE_MODE_VBR: i32 = 0;
pub const V4L2_MPEG_VIDEO_BITRATE_MODE_CBR: i32 = 1;

/// `v4l2_encoder_cmd.cmd`.
pub const V4L2_ENC_CMD_STOP: u32 = 1;

/// `v4l2_fourcc(a, b, c, d)`.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}
pub const V4L2_PIX_FMT_H264: u32 = fourcc(b"H264");
pub const V4L2_PIX_FMT_FWHT: u32 = fourcc(b"FWHT");
pub const V4L2_PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
pub const V4L2_PIX_FMT_YUYV: u32 = fourcc(b"YUYV");
pub const V4L2_PIX_FMT_YVYU: u32 = fourcc(b"YVYU");
pub const V4L2_PIX_FMT_UYVY: u32 = fourcc(b"UYVY");
pub const V4L2_PIX_FMT_VYUY: u32 = fourcc(b"VYUY");
pub const V4L2_PIX_FMT_YUV420: u32 = fourcc(b"YU12");
pub const V4L2_PIX_FMT_YVU420: u32 = fourcc(b"YV12");
pub const V4L2_PIX_FMT_NV12: u32 = fourcc(b"NV12");
pub const V4L2_PIX_FMT_NV21: u32 = fourcc(b"NV21");
pub const V4L2_PIX_FMT_GREY: u32 = fourcc(b"GREY");
pub const V4L2_PIX_FMT_RGB24: u32 = fourcc(b"RGB3");
pub const V4L2_PIX_FMT_BGR24: u32 = fourcc(b"BGR3");

/// Maximum planes of a multi-planar buffer (`VIDEO_MAX_PLANES`).
pub const VIDEO_MAX_PLANES: usize = 8;

// ---------------------------------------------------------------------------------------------
// Structs

/// `struct v4l2_capability` (VIDIOC_QUERYCAP).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_fmtdesc` (VIDIOC_ENUM_FMT).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `struct v4l2_frmsize_discrete`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct v4l2_frmsize_discrete {
    pub width: u32,
    pub height: u32,
}

/// `struct v4l2_frmsize_stepwise`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct v4l2_frmsize_stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

/// The union inside `v4l2_frmsizeenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmsize_union {
    pub discrete: v4l2_frmsize_discrete,
    pub stepwise: v4l2_frmsize_stepwise,
}

/// `struct v4l2_frmsizeenum` (VIDIOC_ENUM_FRAMESIZES).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub u: v4l2_frmsize_union,
    pub reserved: [u32; 2],
}

/// `struct v4l2_fract`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

/// `struct v4l2_frmival_stepwise`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct v4l2_frmival_stepwise {
    pub min: v4l2_fract,
    pub max: v4l2_fract,
    pub step: v4l2_fract,
}

/// The union inside `v4l2_frmivalenum`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmival_union {
    pub discrete: v4l2_fract,
    pub stepwise: v4l2_frmival_stepwise,
}

/// `struct v4l2_frmivalenum` (VIDIOC_ENUM_FRAMEINTERVALS).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub u: v4l2_frmival_union,
    pub reserved: [u32; 2],
}

/// `struct v4l2_pix_format` (single-planar formats).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_plane_pix_format` (packed in C; naturally aligned anyway).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_plane_pix_format {
    pub sizeimage: u32,
    pub bytesperline: u32,
    pub reserved: [u16; 6],
}

/// `struct v4l2_pix_format_mplane` (packed in C; naturally aligned anyway).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_pix_format_mplane {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub colorspace: u32,
    pub plane_fmt: [v4l2_plane_pix_format; VIDEO_MAX_PLANES],
    pub num_planes: u8,
    pub flags: u8,
    pub ycbcr_enc: u8,
    pub quantization: u8,
    pub xfer_func: u8,
    pub reserved: [u8; 7],
}

/// The union inside `v4l2_format`: 200 bytes, pointer-aligned because the C union also holds
/// `struct v4l2_window`, which contains pointers.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_union {
    pub pix: v4l2_pix_format,
    pub pix_mp: v4l2_pix_format_mplane,
    pub raw_data: [u8; 200],
    _align: [c_ulong; 0],
}

/// `struct v4l2_format` (VIDIOC_G_FMT, VIDIOC_S_FMT, VIDIOC_TRY_FMT).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_union,
}

/// `struct v4l2_requestbuffers` (VIDIOC_REQBUFS).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

/// `struct timeval` as the kernel reads it in `v4l2_buffer`: two C `long`s (see the module doc).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct v4l2_timeval {
    pub tv_sec: c_long,
    pub tv_usec: c_long,
}

/// `struct v4l2_timecode`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The memory union of `v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_plane_m {
    pub mem_offset: u32,
    pub userptr: c_ulong,
    pub fd: i32,
}

/// `struct v4l2_plane`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_plane {
    pub bytesused: u32,
    pub length: u32,
    pub m: v4l2_plane_m,
    pub data_offset: u32,
    pub reserved: [u32; 11],
}

/// The memory union of `v4l2_buffer`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_buffer_m {
    pub offset: u32,
    pub userptr: c_ulong,
    pub planes: *mut v4l2_plane,
    pub fd: i32,
}

/// `struct v4l2_buffer` (VIDIOC_QUERYBUF, VIDIOC_QBUF, VIDIOC_DQBUF).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: v4l2_timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: v4l2_buffer_m,
    pub length: u32,
    pub reserved2: u32,
    /// `request_fd` / `reserved` union.
    pub request_fd: i32,
}

/// `struct v4l2_exportbuffer` (VIDIOC_EXPBUF).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_exportbuffer {
    pub type_: u32,
    pub index: u32,
    pub plane: u32,
    pub flags: u32,
    pub fd: i32,
    pub reserved: [u32; 11],
}

/// `struct v4l2_captureparm` / `struct v4l2_outputparm` (same layout for what campush uses).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

/// The union inside `v4l2_streamparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_streamparm_union {
    pub capture: v4l2_captureparm,
    pub output: v4l2_captureparm,
    pub raw_data: [u8; 200],
}

/// `struct v4l2_streamparm` (VIDIOC_G_PARM, VIDIOC_S_PARM).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub parm: v4l2_streamparm_union,
}

/// `struct v4l2_control` (VIDIOC_G_CTRL, VIDIOC_S_CTRL).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_control {
    pub id: u32,
    pub value: i32,
}

/// `struct v4l2_queryctrl` (VIDIOC_QUERYCTRL).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_queryctrl {
    pub id: u32,
    pub type_: u32,
    pub name: [u8; 32],
    pub minimum: i32,
    pub maximum: i32,
    pub step: i32,
    pub default_value: i32,
    pub flags: u32,
    pub reserved: [u32; 2],
}

/// `struct v4l2_querymenu` (VIDIOC_QUERYMENU). Packed in C: the `name`/`value` union holds an
/// `__s64` but sits at offset 8 with no padding after it, so it is modelled as 32 bytes and the
/// integer-menu value read from its first 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_querymenu {
    pub id: u32,
    pub index: u32,
    pub name: [u8; 32],
    pub reserved: u32,
}

/// `struct v4l2_encoder_cmd` (VIDIOC_ENCODER_CMD).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct v4l2_encoder_cmd {
    pub cmd: u32,
    pub flags: u32,
    pub data: [u32; 8],
}

/// All-zero value of a plain-old-data V4L2 struct, the state every ioctl argument starts from.
///
/// # Safety
/// `T` must be one of the structs above: integers, arrays and unions of them, and raw
/// pointers, for all of which all-zero bits are a valid value.
pub unsafe fn zeroed<T: Copy>() -> T {
    // SAFETY: guaranteed by the caller (see above).
    unsafe { std::mem::zeroed() }
}

// ---------------------------------------------------------------------------------------------
// Compile-time layout checks. The numbers are the C compiler's for the kernel headers.

macro_rules! layout {
    ($t:ty, size64 = $s64:expr, size32 = $s32:expr $(, $field:ident @ $o64:expr, $o32:expr)* $(,)?) => {
        #[cfg(target_pointer_width = "64")]
        const _: () = {
            assert!(size_of::<$t>() == $s64, concat!("size of ", stringify!($t)));
            $(assert!(offset_of!($t, $field) == $o64, concat!(stringify!($t), ".", stringify!($field)));)*
        };
        #[cfg(target_pointer_width = "32")]
        const _: () = {
            assert!(size_of::<$t>() == $s32, concat!("size of ", stringify!($t)));
            $(assert!(offset_of!($t, $field) == $o32, concat!(stringify!($t), ".", stringify!($field)));)*
        };
    };
}

layout!(v4l2_capability, size64 = 104, size32 = 104,
    card @ 16, 16, bus_info @ 48, 48, version @ 80, 80, capabilities @ 84, 84,
    device_caps @ 88, 88);
layout!(v4l2_fmtdesc, size64 = 64, size32 = 64,
    flags @ 8, 8, description @ 12, 12, pixelformat @ 44, 44, mbus_code @ 48, 48);
layout!(v4l2_frmsizeenum, size64 = 44, size32 = 44, type_ @ 8, 8, u @ 12, 12, reserved @ 36, 36);
layout!(v4l2_frmivalenum, size64 = 52, size32 = 52, type_ @ 16, 16, u @ 20, 20, reserved @ 44, 44);
layout!(v4l2_pix_format, size64 = 48, size32 = 48,
    bytesperline @ 16, 16, sizeimage @ 20, 20, xfer_func @ 44, 44);
layout!(v4l2_plane_pix_format, size64 = 20, size32 = 20, bytesperline @ 4, 4);
layout!(v4l2_pix_format_mplane, size64 = 192, size32 = 192,
    plane_fmt @ 20, 20, num_planes @ 180, 180, reserved @ 185, 185);
layout!(v4l2_format, size64 = 208, size32 = 204, fmt @ 8, 4);
layout!(v4l2_requestbuffers, size64 = 20, size32 = 20,
    memory @ 8, 8, capabilities @ 12, 12, flags @ 16, 16);
layout!(v4l2_timecode, size64 = 16, size32 = 16, frames @ 8, 8, userbits @ 12, 12);
layout!(v4l2_plane, size64 = 64, size32 = 60, m @ 8, 8, data_offset @ 16, 12, reserved @ 20, 16);
layout!(v4l2_buffer, size64 = 88, size32 = 68,
    bytesused @ 8, 8, flags @ 12, 12, field @ 16, 16, timestamp @ 24, 20, timecode @ 40, 28,
    sequence @ 56, 44, memory @ 60, 48, m @ 64, 52, length @ 72, 56, reserved2 @ 76, 60,
    request_fd @ 80, 64);
layout!(v4l2_exportbuffer, size64 = 64, size32 = 64, fd @ 16, 16);
layout!(v4l2_captureparm, size64 = 40, size32 = 40, timeperframe @ 8, 8, readbuffers @ 20, 20);
layout!(v4l2_streamparm, size64 = 204, size32 = 204, parm @ 4, 4);
layout!(v4l2_control, size64 = 8, size32 = 8, value @ 4, 4);
layout!(v4l2_queryctrl, size64 = 68, size32 = 68,
    name @ 8, 8, minimum @ 40, 40, default_value @ 52, 52, flags @ 56, 56);
layout!(v4l2_querymenu, size64 = 44, size32 = 44, name @ 8, 8, reserved @ 40, 40);
layout!(v4l2_encoder_cmd, size64 = 40, size32 = 40, data @ 8, 8);

// The request numbers the kernel expects, per pointer width (from the C headers).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(VIDIOC_S_FMT == 0xc0d0_5605);
    assert!(VIDIOC_QBUF == 0xc058_560f);
    assert!(VIDIOC_DQBUF == 0xc058_5611);
};
#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(VIDIOC_S_FMT == 0xc0cc_5605);
    assert!(VIDIOC_QBUF == 0xc044_560f);
    assert!(VIDIOC_DQBUF == 0xc044_5611);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, ours, the C header's value)` for this target's pointer width. The C values come
    /// from a C program including `<linux/videodev2.h>`, compiled for x86_64 and aarch64 (they
    /// agree) and for arm-linux-gnueabihf with glibc 2.28, i.e. 32-bit `time_t`. (A C library
    /// built with 64-bit `time_t` gets an 80-byte `v4l2_buffer` and `VIDIOC_QBUF` = 0xc050560f;
    /// the kernel accepts both, see the module doc.)
    fn table() -> Vec<(&'static str, u32, u32)> {
        let wide = cfg!(target_pointer_width = "64");
        let pick = |w: u32, n: u32| if wide { w } else { n };
        vec![
            ("VIDIOC_QUERYCAP", VIDIOC_QUERYCAP, 0x8068_5600),
            ("VIDIOC_ENUM_FMT", VIDIOC_ENUM_FMT, 0xc040_5602),
            ("VIDIOC_G_FMT", VIDIOC_G_FMT, pick(0xc0d0_5604, 0xc0cc_5604)),
            ("VIDIOC_S_FMT", VIDIOC_S_FMT, pick(0xc0d0_5605, 0xc0cc_5605)),
            ("VIDIOC_REQBUFS", VIDIOC_REQBUFS, 0xc014_5608),
            (
                "VIDIOC_QUERYBUF",
                VIDIOC_QUERYBUF,
                pick(0xc058_5609, 0xc044_5609),
            ),
            ("VIDIOC_QBUF", VIDIOC_QBUF, pick(0xc058_560f, 0xc044_560f)),
            ("VIDIOC_EXPBUF", VIDIOC_EXPBUF, 0xc040_5610),
            ("VIDIOC_DQBUF", VIDIOC_DQBUF, pick(0xc058_5611, 0xc044_5611)),
            ("VIDIOC_STREAMON", VIDIOC_STREAMON, 0x4004_5612),
            ("VIDIOC_STREAMOFF", VIDIOC_STREAMOFF, 0x4004_5613),
            ("VIDIOC_G_PARM", VIDIOC_G_PARM, 0xc0cc_5615),
            ("VIDIOC_S_PARM", VIDIOC_S_PARM, 0xc0cc_5616),
            ("VIDIOC_G_CTRL", VIDIOC_G_CTRL, 0xc008_561b),
            ("VIDIOC_S_CTRL", VIDIOC_S_CTRL, 0xc008_561c),
            ("VIDIOC_QUERYCTRL", VIDIOC_QUERYCTRL, 0xc044_5624),
            ("VIDIOC_QUERYMENU", VIDIOC_QUERYMENU, 0xc02c_5625),
            (
                "VIDIOC_TRY_FMT",
                VIDIOC_TRY_FMT,
                pick(0xc0d0_5640, 0xc0cc_5640),
            ),
            (
                "VIDIOC_ENUM_FRAMESIZES",
                VIDIOC_ENUM_FRAMESIZES,
                0xc02c_564a,
            ),
            (
                "VIDIOC_ENUM_FRAMEINTERVALS",
                VIDIOC_ENUM_FRAMEINTERVALS,
                0xc034_564b,
            ),
            ("VIDIOC_ENCODER_CMD", VIDIOC_ENCODER_CMD, 0xc028_564d),
        ]
    }

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        for (name, ours, kernel) in table() {
            assert_eq!(ours, kernel, "{name}: {ours:#010x} != {kernel:#010x}");
        }
    }

    #[test]
    fn control_ids_match_the_kernel_headers() {
        assert_eq!(V4L2_CID_MPEG_VIDEO_BITRATE_MODE, 0x0099_09ce);
        assert_eq!(V4L2_CID_MPEG_VIDEO_GOP_SIZE, 0x0099_09cb);
        assert_eq!(V4L2_CID_MPEG_VIDEO_BITRATE, 0x0099_09cf);
        assert_eq!(V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 0x0099_09e2);
        assert_eq!(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 0x0099_09e5);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_I_PERIOD, 0x0099_0a66);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_LEVEL, 0x0099_0a67);
        assert_eq!(V4L2_CID_MPEG_VIDEO_H264_PROFILE, 0x0099_0a6b);
    }

    #[test]
    fn fourccs_are_little_endian_character_codes() {
        assert_eq!(V4L2_PIX_FMT_H264, 0x3436_3248);
        assert_eq!(V4L2_PIX_FMT_YUYV, 0x5659_5559);
        assert_eq!(V4L2_PIX_FMT_NV12, 0x3231_564e);
    }
}
