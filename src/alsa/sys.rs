//! The ALSA user-space ABI that campush uses, written out by hand: `#[repr(C)]` structs,
//! constants and ioctl request numbers from `sound/asound.h` (kernel 6.1 uapi; later kernels
//! keep it compatible: they only give reserved bytes a meaning).
//!
//! Owns: memory layout only. No ioctl is issued here; `pcm` and `control` wrap these in safe
//! calls.
//!
//! Invariants:
//! - Every struct's size and the offset of every field campush reads or writes is asserted at
//!   compile time from one table ([`LAYOUTS`], made by the `layouts!` macro), for both pointer
//!   widths. A mismatch fails the build for that target, never a run on a board.
//!   `tests/alsa_abi.rs` checks the other side: it compiles the table as C `_Static_assert`s
//!   against the kernel's own header for x86_64, aarch64 and 32-bit ARM (musl), and runs
//!   `cargo check` for the board targets so that the Rust assertions run for them too.
//! - Request numbers are computed as the kernel's `_IOR`/`_IOWR` macros do, from the Rust
//!   struct sizes (the generic `_IOC` encoding of x86, arm, aarch64 and riscv).
//! - Time on 32-bit ARM: `snd_pcm_status` holds timespecs. campush uses the 64-bit-time layout
//!   (`__kernel_timespec`, 128 bytes, `SNDRV_PCM_IOCTL_STATUS` = 0x80804120), the one a C
//!   program gets from musl >= 1.2 (64-bit `time_t`), as campush's musl targets are. The kernel
//!   accepts it from 5.6 on (`SNDRV_PCM_IOCTL_STATUS64` in `pcm_native.c`); every Raspberry Pi
//!   OS kernel since Bullseye (5.10) is newer. On 64-bit targets the one layout is 152 bytes
//!   and identical field for field, so one Rust struct serves all. No other struct used here
//!   holds a time.
//! - `long`/`unsigned long` fields (`snd_pcm_uframes_t`, `snd_pcm_sframes_t`) are
//!   `c_long`/`c_ulong`: 8 bytes on 64-bit, 4 on 32-bit.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/sound/designs/> and
//! `include/uapi/sound/asound.h`.

#![allow(non_camel_case_types)]

use std::mem::size_of;

use libc::{c_long, c_ulong, c_void};

use crate::ioctl::{self, ioc};

// ---------------------------------------------------------------------------------------------
// ioctl numbers (`crate::ioctl`: asm-generic's `_IOC`)

pub const SNDRV_PCM_IOCTL_PVERSION: u32 = ioc(ioctl::READ, b'A', 0x00, size_of::<i32>());
pub const SNDRV_PCM_IOCTL_INFO: u32 = ioc(ioctl::READ, b'A', 0x01, size_of::<snd_pcm_info>());
pub const SNDRV_PCM_IOCTL_TTSTAMP: u32 = ioc(ioctl::WRITE, b'A', 0x03, size_of::<i32>());
pub const SNDRV_PCM_IOCTL_HW_REFINE: u32 = ioc(
    ioctl::READ | ioctl::WRITE,
    b'A',
    0x10,
    size_of::<snd_pcm_hw_params>(),
);
pub const SNDRV_PCM_IOCTL_HW_PARAMS: u32 = ioc(
    ioctl::READ | ioctl::WRITE,
    b'A',
    0x11,
    size_of::<snd_pcm_hw_params>(),
);
pub const SNDRV_PCM_IOCTL_SW_PARAMS: u32 = ioc(
    ioctl::READ | ioctl::WRITE,
    b'A',
    0x13,
    size_of::<snd_pcm_sw_params>(),
);
pub const SNDRV_PCM_IOCTL_STATUS: u32 = ioc(ioctl::READ, b'A', 0x20, size_of::<snd_pcm_status>());
pub const SNDRV_PCM_IOCTL_PREPARE: u32 = ioc(ioctl::NONE, b'A', 0x40, 0);
pub const SNDRV_PCM_IOCTL_START: u32 = ioc(ioctl::NONE, b'A', 0x42, 0);
pub const SNDRV_PCM_IOCTL_DROP: u32 = ioc(ioctl::NONE, b'A', 0x43, 0);
pub const SNDRV_PCM_IOCTL_WRITEI_FRAMES: u32 =
    ioc(ioctl::WRITE, b'A', 0x50, size_of::<snd_xferi>());
pub const SNDRV_PCM_IOCTL_READI_FRAMES: u32 = ioc(ioctl::READ, b'A', 0x51, size_of::<snd_xferi>());

pub const SNDRV_CTL_IOCTL_CARD_INFO: u32 =
    ioc(ioctl::READ, b'U', 0x01, size_of::<snd_ctl_card_info>());
pub const SNDRV_CTL_IOCTL_ELEM_READ: u32 = ioc(
    ioctl::READ | ioctl::WRITE,
    b'U',
    0x12,
    size_of::<snd_ctl_elem_value>(),
);
pub const SNDRV_CTL_IOCTL_ELEM_WRITE: u32 = ioc(
    ioctl::READ | ioctl::WRITE,
    b'U',
    0x13,
    size_of::<snd_ctl_elem_value>(),
);

// ---------------------------------------------------------------------------------------------
// Constants

/// `SNDRV_PCM_VERSION`: the protocol version campush speaks (2.0.15, kernel 6.1).
pub const SNDRV_PCM_VERSION: u32 = (2 << 16) | 15;
/// `SNDRV_PROTOCOL_MAJOR`.
pub const fn protocol_major(version: u32) -> u32 {
    (version >> 16) & 0xffff
}

pub const SNDRV_PCM_STREAM_PLAYBACK: i32 = 0;
pub const SNDRV_PCM_STREAM_CAPTURE: i32 = 1;

pub const SNDRV_PCM_ACCESS_RW_INTERLEAVED: u32 = 3;
pub const SNDRV_PCM_FORMAT_S16_LE: u32 = 2;
pub const SNDRV_PCM_FORMAT_S32_LE: u32 = 10;
pub const SNDRV_PCM_SUBFORMAT_STD: u32 = 0;

pub const SNDRV_PCM_HW_PARAM_ACCESS: usize = 0;
pub const SNDRV_PCM_HW_PARAM_FORMAT: usize = 1;
pub const SNDRV_PCM_HW_PARAM_SUBFORMAT: usize = 2;
pub const SNDRV_PCM_HW_PARAM_FIRST_MASK: usize = SNDRV_PCM_HW_PARAM_ACCESS;
pub const SNDRV_PCM_HW_PARAM_LAST_MASK: usize = SNDRV_PCM_HW_PARAM_SUBFORMAT;
pub const SNDRV_PCM_HW_PARAM_SAMPLE_BITS: usize = 8;
pub const SNDRV_PCM_HW_PARAM_FRAME_BITS: usize = 9;
pub const SNDRV_PCM_HW_PARAM_CHANNELS: usize = 10;
pub const SNDRV_PCM_HW_PARAM_RATE: usize = 11;
pub const SNDRV_PCM_HW_PARAM_PERIOD_TIME: usize = 12;
pub const SNDRV_PCM_HW_PARAM_PERIOD_SIZE: usize = 13;
pub const SNDRV_PCM_HW_PARAM_PERIOD_BYTES: usize = 14;
pub const SNDRV_PCM_HW_PARAM_PERIODS: usize = 15;
pub const SNDRV_PCM_HW_PARAM_BUFFER_TIME: usize = 16;
pub const SNDRV_PCM_HW_PARAM_BUFFER_SIZE: usize = 17;
pub const SNDRV_PCM_HW_PARAM_BUFFER_BYTES: usize = 18;
pub const SNDRV_PCM_HW_PARAM_TICK_TIME: usize = 19;
pub const SNDRV_PCM_HW_PARAM_FIRST_INTERVAL: usize = SNDRV_PCM_HW_PARAM_SAMPLE_BITS;
pub const SNDRV_PCM_HW_PARAM_LAST_INTERVAL: usize = SNDRV_PCM_HW_PARAM_TICK_TIME;

pub const SNDRV_PCM_TSTAMP_ENABLE: i32 = 1;
pub const SNDRV_PCM_TSTAMP_TYPE_MONOTONIC: u32 = 1;

pub const SNDRV_PCM_STATE_OPEN: i32 = 0;
pub const SNDRV_PCM_STATE_SETUP: i32 = 1;
pub const SNDRV_PCM_STATE_PREPARED: i32 = 2;
pub const SNDRV_PCM_STATE_RUNNING: i32 = 3;
pub const SNDRV_PCM_STATE_XRUN: i32 = 4;
pub const SNDRV_PCM_STATE_SUSPENDED: i32 = 7;
pub const SNDRV_PCM_STATE_DISCONNECTED: i32 = 8;

pub const SNDRV_CTL_ELEM_IFACE_MIXER: i32 = 2;
pub const SNDRV_CTL_ELEM_IFACE_PCM: i32 = 3;
pub const SNDRV_CTL_ELEM_ID_NAME_MAXLEN: usize = 44;

/// Bits of `snd_interval`'s flags word (C bitfields, allocated from bit 0 on every target here).
pub const INTERVAL_OPENMIN: u32 = 1 << 0;
pub const INTERVAL_OPENMAX: u32 = 1 << 1;
pub const INTERVAL_INTEGER: u32 = 1 << 2;
pub const INTERVAL_EMPTY: u32 = 1 << 3;

// ---------------------------------------------------------------------------------------------
// Structs

/// `struct snd_pcm_info` (SNDRV_PCM_IOCTL_INFO).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_pcm_info {
    pub device: u32,
    pub subdevice: u32,
    pub stream: i32,
    pub card: i32,
    pub id: [u8; 64],
    pub name: [u8; 80],
    pub subname: [u8; 32],
    pub dev_class: i32,
    pub dev_subclass: i32,
    pub subdevices_count: u32,
    pub subdevices_avail: u32,
    pub sync: [u8; 16],
    pub reserved: [u8; 64],
}

/// `struct snd_interval`: `[min, max]`, each end open or closed, integer or not, or empty.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct snd_interval {
    pub min: u32,
    pub max: u32,
    /// `openmin:1, openmax:1, integer:1, empty:1` ([`INTERVAL_OPENMIN`], ...).
    pub flags: u32,
}

/// `struct snd_mask`: a bit per value (formats, access types).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct snd_mask {
    pub bits: [u32; 8],
}

/// `struct snd_pcm_hw_params` (HW_REFINE, HW_PARAMS).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_pcm_hw_params {
    pub flags: u32,
    pub masks: [snd_mask; SNDRV_PCM_HW_PARAM_LAST_MASK - SNDRV_PCM_HW_PARAM_FIRST_MASK + 1],
    pub mres: [snd_mask; 5],
    pub intervals:
        [snd_interval; SNDRV_PCM_HW_PARAM_LAST_INTERVAL - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL + 1],
    pub ires: [snd_interval; 9],
    pub rmask: u32,
    pub cmask: u32,
    pub info: u32,
    pub msbits: u32,
    pub rate_num: u32,
    pub rate_den: u32,
    pub fifo_size: c_ulong,
    pub reserved: [u8; 64],
}

/// `struct snd_pcm_sw_params` (SW_PARAMS).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_pcm_sw_params {
    pub tstamp_mode: i32,
    pub period_step: u32,
    pub sleep_min: u32,
    pub avail_min: c_ulong,
    pub xfer_align: c_ulong,
    pub start_threshold: c_ulong,
    pub stop_threshold: c_ulong,
    pub silence_threshold: c_ulong,
    pub silence_size: c_ulong,
    pub boundary: c_ulong,
    pub proto: u32,
    pub tstamp_type: u32,
    pub reserved: [u8; 56],
}

/// A timespec with 64-bit fields: `struct timespec` on 64-bit targets, `__kernel_timespec`
/// (the time64 layout) on 32-bit ones (see the module doc).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct snd_timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

impl snd_timespec {
    /// Microseconds (0 for a time before the epoch of its clock, which never happens).
    pub fn as_us(self) -> u64 {
        let us = self.tv_sec.saturating_mul(1_000_000) + self.tv_nsec / 1_000;
        u64::try_from(us).unwrap_or(0)
    }
}

/// `struct snd_pcm_status` (STATUS), the 64-bit-time layout (see the module doc).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_pcm_status {
    pub state: i32,
    pub pad1: [u8; 4],
    pub trigger_tstamp: snd_timespec,
    /// With `SNDRV_PCM_TSTAMP_ENABLE`: when the hardware pointer was last updated (the update
    /// this very call made).
    pub tstamp: snd_timespec,
    pub appl_ptr: c_ulong,
    pub hw_ptr: c_ulong,
    pub delay: c_long,
    pub avail: c_ulong,
    pub avail_max: c_ulong,
    pub overrange: c_ulong,
    pub suspended_state: i32,
    pub audio_tstamp_data: u32,
    pub audio_tstamp: snd_timespec,
    pub driver_tstamp: snd_timespec,
    pub audio_tstamp_accuracy: u32,
    pub reserved: [u8; 20],
}

/// `struct snd_xferi` (READI_FRAMES, WRITEI_FRAMES).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_xferi {
    pub result: c_long,
    pub buf: *mut c_void,
    pub frames: c_ulong,
}

/// `struct snd_ctl_card_info` (SNDRV_CTL_IOCTL_CARD_INFO).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_ctl_card_info {
    pub card: i32,
    pub pad: i32,
    pub id: [u8; 16],
    pub driver: [u8; 16],
    pub name: [u8; 32],
    pub longname: [u8; 80],
    pub reserved_: [u8; 16],
    pub mixername: [u8; 80],
    pub components: [u8; 128],
}

/// `struct snd_ctl_elem_id`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_ctl_elem_id {
    pub numid: u32,
    pub iface: i32,
    pub device: u32,
    pub subdevice: u32,
    pub name: [u8; SNDRV_CTL_ELEM_ID_NAME_MAXLEN],
    pub index: u32,
}

/// `struct snd_ctl_elem_value` (ELEM_READ, ELEM_WRITE), integer controls only: the value
/// union is read as `long value[128]` (its other members, the same 512 or 1024 bytes, are not
/// used). The union holds `long long`, so it starts 8-aligned on every target: `pad`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct snd_ctl_elem_value {
    pub id: snd_ctl_elem_id,
    /// `indirect:1` (obsolete; 0).
    pub indirect: u32,
    pub pad: u32,
    pub value: [c_long; 128],
    pub reserved: [u8; 128],
}

/// A zeroed ioctl argument.
///
/// # Safety
/// `T` must be one of the plain-data structs above (all-zero bytes are a valid value; null
/// for `snd_xferi`'s pointer).
pub unsafe fn zeroed<T: Copy>() -> T {
    // SAFETY: the caller promises all-zero bytes are a valid T.
    unsafe { std::mem::zeroed() }
}

// ---------------------------------------------------------------------------------------------
// Layouts

/// One struct's expected layout: its C name, size and field offsets, each as
/// (64-bit, 32-bit ARM) numbers from the kernel header (see `tests/alsa_abi.rs`).
#[derive(Debug)]
pub struct Layout {
    pub name: &'static str,
    pub size: (usize, usize),
    pub fields: &'static [(&'static str, usize, usize)],
}

/// Asserts each layout at compile time for the pointer width being built, and lists them.
macro_rules! layouts {
    ($( $t:ident : $s64:literal / $s32:literal { $( $f:ident : $o64:literal / $o32:literal ),* $(,)? } )*) => {
        #[cfg(target_pointer_width = "64")]
        const _: () = { $(
            assert!(size_of::<$t>() == $s64, concat!("size of ", stringify!($t)));
            $(assert!(std::mem::offset_of!($t, $f) == $o64, concat!(stringify!($t), ".", stringify!($f)));)*
        )* };
        #[cfg(target_pointer_width = "32")]
        const _: () = { $(
            assert!(size_of::<$t>() == $s32, concat!("size of ", stringify!($t)));
            $(assert!(std::mem::offset_of!($t, $f) == $o32, concat!(stringify!($t), ".", stringify!($f)));)*
        )* };
        /// Every struct above with its expected size and field offsets.
        pub const LAYOUTS: &[Layout] = &[ $( Layout {
            name: stringify!($t),
            size: ($s64, $s32),
            fields: &[ $( (stringify!($f), $o64, $o32) ),* ],
        } ),* ];
    };
}

layouts! {
    snd_pcm_info: 288 / 288 {
        device: 0 / 0, subdevice: 4 / 4, stream: 8 / 8, card: 12 / 12, id: 16 / 16,
        name: 80 / 80, subname: 160 / 160, subdevices_count: 200 / 200,
        subdevices_avail: 204 / 204,
    }
    snd_interval: 12 / 12 { min: 0 / 0, max: 4 / 4 }
    snd_mask: 32 / 32 { bits: 0 / 0 }
    snd_pcm_hw_params: 608 / 604 {
        flags: 0 / 0, masks: 4 / 4, intervals: 260 / 260, rmask: 512 / 512, cmask: 516 / 516,
        info: 520 / 520, msbits: 524 / 524, rate_num: 528 / 528, rate_den: 532 / 532,
        fifo_size: 536 / 536,
    }
    snd_pcm_sw_params: 136 / 104 {
        tstamp_mode: 0 / 0, period_step: 4 / 4, sleep_min: 8 / 8, avail_min: 16 / 12,
        xfer_align: 24 / 16, start_threshold: 32 / 20, stop_threshold: 40 / 24,
        silence_threshold: 48 / 28, silence_size: 56 / 32, boundary: 64 / 36, proto: 72 / 40,
        tstamp_type: 76 / 44,
    }
    snd_pcm_status: 152 / 128 {
        state: 0 / 0, trigger_tstamp: 8 / 8, tstamp: 24 / 24, appl_ptr: 40 / 40,
        hw_ptr: 48 / 44, delay: 56 / 48, avail: 64 / 52, avail_max: 72 / 56,
        overrange: 80 / 60, suspended_state: 88 / 64, audio_tstamp_data: 92 / 68,
        audio_tstamp: 96 / 72, driver_tstamp: 112 / 88, audio_tstamp_accuracy: 128 / 104,
    }
    snd_xferi: 24 / 12 { result: 0 / 0, buf: 8 / 4, frames: 16 / 8 }
    snd_ctl_card_info: 376 / 376 {
        card: 0 / 0, id: 8 / 8, driver: 24 / 24, name: 40 / 40, longname: 72 / 72,
        mixername: 168 / 168, components: 248 / 248,
    }
    snd_ctl_elem_id: 64 / 64 {
        numid: 0 / 0, iface: 4 / 4, device: 8 / 8, subdevice: 12 / 12, name: 16 / 16,
        index: 60 / 60,
    }
    snd_ctl_elem_value: 1224 / 712 { id: 0 / 0, value: 72 / 72 }
}

/// Request numbers as the kernel headers give them.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(SNDRV_PCM_IOCTL_HW_REFINE == 0xc260_4110);
    assert!(SNDRV_PCM_IOCTL_HW_PARAMS == 0xc260_4111);
    assert!(SNDRV_PCM_IOCTL_SW_PARAMS == 0xc088_4113);
    assert!(SNDRV_PCM_IOCTL_STATUS == 0x8098_4120);
    assert!(SNDRV_PCM_IOCTL_READI_FRAMES == 0x8018_4151);
    assert!(SNDRV_PCM_IOCTL_WRITEI_FRAMES == 0x4018_4150);
    assert!(SNDRV_CTL_IOCTL_ELEM_WRITE == 0xc4c8_5513);
};
#[cfg(target_pointer_width = "32")]
const _: () = {
    assert!(SNDRV_PCM_IOCTL_HW_REFINE == 0xc25c_4110);
    assert!(SNDRV_PCM_IOCTL_HW_PARAMS == 0xc25c_4111);
    assert!(SNDRV_PCM_IOCTL_SW_PARAMS == 0xc068_4113);
    // SNDRV_PCM_IOCTL_STATUS64 (the 32-bit-time one, STATUS32, is 0x806c4120).
    assert!(SNDRV_PCM_IOCTL_STATUS == 0x8080_4120);
    assert!(SNDRV_PCM_IOCTL_READI_FRAMES == 0x800c_4151);
    assert!(SNDRV_PCM_IOCTL_WRITEI_FRAMES == 0x400c_4150);
    assert!(SNDRV_CTL_IOCTL_ELEM_WRITE == 0xc2c8_5513);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_without_a_struct_match_the_kernel_headers() {
        assert_eq!(SNDRV_PCM_IOCTL_PVERSION, 0x8004_4100);
        assert_eq!(SNDRV_PCM_IOCTL_INFO, 0x8120_4101);
        assert_eq!(SNDRV_PCM_IOCTL_TTSTAMP, 0x4004_4103);
        assert_eq!(SNDRV_PCM_IOCTL_PREPARE, 0x0000_4140);
        assert_eq!(SNDRV_PCM_IOCTL_START, 0x0000_4142);
        assert_eq!(SNDRV_PCM_IOCTL_DROP, 0x0000_4143);
        assert_eq!(SNDRV_CTL_IOCTL_CARD_INFO, 0x8178_5501);
    }

    #[test]
    fn every_layout_names_its_fields_once() {
        for layout in LAYOUTS {
            let mut names: Vec<_> = layout.fields.iter().map(|f| f.0).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), layout.fields.len(), "{}", layout.name);
        }
    }

    #[test]
    fn a_timespec_becomes_microseconds() {
        let t = snd_timespec {
            tv_sec: 12,
            tv_nsec: 345_678_901,
        };
        assert_eq!(t.as_us(), 12_345_678);
    }
}
