//! One PCM stream on a `/dev/snd/pcmC*D*{c,p}` node, set up and driven with the kernel's
//! ioctls (no alsa-lib): open, hardware parameter refinement, software parameters, prepare,
//! start, and interleaved reads (capture) or writes (playback, for tests).
//!
//! Owns: [`Pcm`] and the choice of hardware parameters ([`Pcm::open`]), what a device offers
//! ([`offer`], for `campush probe`), the capture time of every read ([`Captured`]), and where
//! the hardware pointer is and when ([`Position`]: a player's time of every frame it wrote).
//!
//! Set-up, in this order:
//! 1. open `O_RDWR | O_NONBLOCK` (a busy device fails at once instead of blocking);
//!    `PVERSION` (protocol 2.x); `TTSTAMP` = CLOCK_MONOTONIC;
//! 2. `HW_REFINE` from "anything" with RW interleaved access: the formats, channels and rates
//!    the device has. Format: S16_LE if offered, else S32_LE (I2S MEMS microphones), else an
//!    error naming what it has. Channels: the wish if offered, else the nearest the device has
//!    (a stereo-only device feeding a mono wish gives stereo, a 4-microphone array gives 4,
//!    up to [`MAX_CHANNELS`]; the caller mixes down). Rate:
//!    the wish if offered, else the other of 48 kHz / 44.1 kHz, else the first of
//!    [`FALLBACK_RATES`] it takes (a webcam's microphone at 16 kHz: the caller resamples).
//!    Period: nearest the wish
//!    (20 ms), buffer: at least 4 periods, nearest half a second (a busy board's late
//!    reader loses nothing; a read takes what is there, so latency does not grow);
//! 3. `HW_PARAMS`, then read back what the driver set;
//! 4. `SW_PARAMS`: timestamps on (`tstamp_mode` ENABLE, type MONOTONIC), wake-up at one
//!    period (`avail_min`), start threshold 1, stop at a full buffer (an overrun stops the
//!    stream instead of overwriting it silently);
//! 5. `PREPARE`, and for capture `START` (the capture clock starts now).
//!
//! Capture time of a read (the derivation): `STATUS` updates the hardware pointer and, with
//! `tstamp_mode` ENABLE, returns in `tstamp` the CLOCK_MONOTONIC time of that update and in
//! `avail` the frames captured and not yet read (`hw_ptr - appl_ptr`). At `tstamp` the newest
//! frame has just been captured, so the oldest unread one, which is the first the next
//! `READI_FRAMES` returns, was captured `avail / rate` seconds earlier:
//! `time = tstamp - avail * 1e6 / rate` µs. `READI_FRAMES` then copies up to `avail` frames
//! (never more than the caller's buffer holds) starting at that frame. The granularity is the
//! driver's pointer granularity (a USB frame, 1 ms; a DMA period or a timer tick elsewhere);
//! the caller smooths over many reads.
//!
//! Errors: `EPIPE` (or state XRUN) is an overrun: frames were lost; the stream is prepared and
//! started again and the read returns [`AlsaError::Xrun`] (counted in [`Pcm::xruns`]).
//! `ENODEV`, `EBADFD`, `ENXIO`, `ENOENT`, `ESHUTDOWN` or state DISCONNECTED: the device is gone
//! ([`AlsaError::Gone`]); the caller drops the [`Pcm`] and opens the name again later.
//!
//! Invariants: [`Pcm::read`] and [`Pcm::write`] allocate nothing (the status and transfer
//! structs live on the stack, the samples go straight into the caller's buffer); every wait is
//! bounded by the caller's timeout.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::device::Direction;
use super::sys::*;
use super::AlsaError;

/// A sample format campush takes from a microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    S16Le,
    S32Le,
}

impl Format {
    /// `SNDRV_PCM_FORMAT_*`.
    pub fn alsa(self) -> u32 {
        match self {
            Format::S16Le => SNDRV_PCM_FORMAT_S16_LE,
            Format::S32Le => SNDRV_PCM_FORMAT_S32_LE,
        }
    }

    /// Bytes of one sample of one channel.
    pub fn bytes(self) -> usize {
        match self {
            Format::S16Le => 2,
            Format::S32Le => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::S16Le => "S16_LE",
            Format::S32Le => "S32_LE",
        }
    }
}

/// What the caller would like; [`Pcm::open`] takes the nearest the device offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wish {
    /// 48000 or 44100 (the other is tried next).
    pub rate: u32,
    pub channels: u32,
    /// Formats acceptable, in order of preference.
    pub formats: &'static [Format],
    /// Period length, µs (20 ms).
    pub period_us: u32,
}

impl Wish {
    /// A microphone: S16_LE preferred, S32_LE taken; 20 ms periods.
    pub fn microphone(rate: u32, channels: u32) -> Wish {
        Wish {
            rate,
            channels,
            formats: &[Format::S16Le, Format::S32Le],
            period_us: 20_000,
        }
    }
}

/// What the device was set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub format: Format,
    pub rate: u32,
    pub channels: u32,
    pub period_frames: u32,
    pub buffer_frames: u32,
}

impl Setup {
    pub fn frame_bytes(&self) -> usize {
        self.format.bytes() * self.channels as usize
    }
}

/// One read: `frames` whole frames at the start of the caller's buffer, the first of them
/// captured at `time_us` (CLOCK_MONOTONIC, see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    pub frames: usize,
    pub time_us: u64,
}

/// Where a stream's hardware pointer was, and when ([`Pcm::position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Frames the device has played (or captured) since the stream started; a playback
    /// stream's frame `n` is the `n`th frame written.
    pub frames: u64,
    /// CLOCK_MONOTONIC time of that pointer update, µs.
    pub time_us: u64,
}

/// An open, configured and started PCM stream.
#[derive(Debug)]
pub struct Pcm {
    file: File,
    path: PathBuf,
    dir: Direction,
    setup: Setup,
    xruns: u64,
}

// ---------------------------------------------------------------------------------------------
// Hardware parameters

/// `snd_pcm_hw_params` with the helpers alsa-lib's `snd_pcm_hw_params_*` would provide.
#[derive(Clone, Copy)]
struct HwParams(snd_pcm_hw_params);

impl HwParams {
    /// Everything allowed (`_snd_pcm_hw_params_any`).
    fn any() -> HwParams {
        // SAFETY: plain data, all-zero is valid.
        let mut p: snd_pcm_hw_params = unsafe { zeroed() };
        for m in p.masks.iter_mut() {
            m.bits = [u32::MAX; 8];
        }
        for i in p.intervals.iter_mut() {
            *i = snd_interval {
                min: 0,
                max: u32::MAX,
                flags: 0,
            };
        }
        p.rmask = u32::MAX;
        p.info = u32::MAX;
        HwParams(p)
    }

    fn mask_has(&self, param: usize, value: u32) -> bool {
        let m = &self.0.masks[param - SNDRV_PCM_HW_PARAM_FIRST_MASK];
        value < 256 && m.bits[(value / 32) as usize] & (1 << (value % 32)) != 0
    }

    fn set_mask(&mut self, param: usize, value: u32) {
        let m = &mut self.0.masks[param - SNDRV_PCM_HW_PARAM_FIRST_MASK];
        m.bits = [0; 8];
        m.bits[(value / 32) as usize] = 1 << (value % 32);
        self.0.rmask |= 1 << param;
    }

    fn interval(&self, param: usize) -> snd_interval {
        self.0.intervals[param - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL]
    }

    fn set_range(&mut self, param: usize, min: u32, max: u32) {
        self.0.intervals[param - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL] = snd_interval {
            min,
            max,
            flags: INTERVAL_INTEGER,
        };
        self.0.rmask |= 1 << param;
    }

    /// The single value of an interval the kernel has fixed (min, or min+1 when min is open).
    fn value(&self, param: usize) -> u32 {
        let i = self.interval(param);
        if i.flags & INTERVAL_OPENMIN != 0 {
            i.min + 1
        } else {
            i.min
        }
    }

    /// `[min, max]` with open ends closed.
    fn range(&self, param: usize) -> (u32, u32) {
        let i = self.interval(param);
        let min = i.min + u32::from(i.flags & INTERVAL_OPENMIN != 0);
        let max = i.max - u32::from(i.flags & INTERVAL_OPENMAX != 0 && i.max > 0);
        (min, max)
    }
}

/// Issues `request` with a pointer to `arg`.
///
/// # Safety
/// `request` must be the ioctl number computed from `T` (see `sys`), and any pointer inside
/// `arg` (a transfer's buffer) must point at memory valid for what the request reads or
/// writes through it.
unsafe fn ioctl<T>(file: &File, request: u32, arg: &mut T) -> io::Result<i32> {
    // SAFETY: guaranteed by the caller: the kernel reads and writes exactly one T.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The requests that take no argument.
#[derive(Clone, Copy)]
enum Command {
    Prepare,
    Start,
    Drop,
}

/// Issues a request that takes no argument (the kernel ignores the null pointer).
fn command(file: &File, command: Command) -> io::Result<()> {
    let request = match command {
        Command::Prepare => SNDRV_PCM_IOCTL_PREPARE,
        Command::Start => SNDRV_PCM_IOCTL_START,
        Command::Drop => SNDRV_PCM_IOCTL_DROP,
    };
    // SAFETY: these requests carry no argument: the kernel does not dereference the pointer.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, std::ptr::null_mut::<u8>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn refine(file: &File, p: &mut HwParams) -> io::Result<()> {
    // SAFETY: HW_REFINE's number is computed from snd_pcm_hw_params, the struct passed.
    unsafe { ioctl(file, SNDRV_PCM_IOCTL_HW_REFINE, &mut p.0) }.map(|_| ())
}

/// The errnos that mean the device went away (unplugged, driver unbound).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODEV | libc::EBADFD | libc::ENXIO | libc::ENOENT | libc::ESHUTDOWN)
    )
}

/// Sets `param` to the value nearest `target` the device accepts, given what `p` already
/// fixes: `target` itself, else the nearest end of what the device offers.
fn set_near(file: &File, p: &mut HwParams, param: usize, target: u32) -> io::Result<u32> {
    let mut exact = *p;
    exact.set_range(param, target, target);
    if refine(file, &mut exact).is_ok() {
        *p = exact;
        return Ok(target);
    }
    let mut open = *p;
    refine(file, &mut open)?;
    let (min, max) = open.range(param);
    for candidate in [target.clamp(min, max), min, max] {
        let mut q = *p;
        q.set_range(param, candidate, candidate);
        if refine(file, &mut q).is_ok() {
            *p = q;
            return Ok(candidate);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EINVAL))
}

/// The formats the kernel knows by name, for messages and `campush probe`.
/// The most channels a device may have (a microphone array HAT has 4 to 8; the caller mixes
/// them down to what is sent).
pub const MAX_CHANNELS: u32 = 16;

/// Rates tried, in this order, when a device takes neither 48 nor 44.1 kHz: the nearest above
/// first (less to lose), then downwards.
pub const FALLBACK_RATES: [u32; 7] = [96_000, 32_000, 24_000, 22_050, 16_000, 11_025, 8_000];

const FORMAT_NAMES: &[(u32, &str)] = &[
    (0, "S8"),
    (1, "U8"),
    (2, "S16_LE"),
    (3, "S16_BE"),
    (4, "U16_LE"),
    (6, "S24_LE"),
    (10, "S32_LE"),
    (11, "S32_BE"),
    (14, "FLOAT_LE"),
    (32, "S24_3LE"),
    (34, "S20_3LE"),
];

/// What a device offers, from a refinement of "anything" with interleaved access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Every format it offers, by name.
    pub formats: Vec<&'static str>,
    /// Channel counts, `[min, max]`.
    pub channels: (u32, u32),
    /// Rates, `[min, max]`.
    pub rates: (u32, u32),
    /// Which of 48 kHz and 44.1 kHz it takes exactly.
    pub common_rates: Vec<u32>,
}

impl Offer {
    /// The format campush would take (S16_LE first).
    pub fn usable_format(&self) -> Option<Format> {
        [Format::S16Le, Format::S32Le]
            .into_iter()
            .find(|f| self.formats.contains(&f.name()))
    }
}

fn open_node(path: &Path) -> Result<File, AlsaError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if is_gone(&source) {
                AlsaError::Gone {
                    path: path.to_owned(),
                    source,
                }
            } else {
                AlsaError::Open {
                    path: path.to_owned(),
                    source,
                }
            }
        })
}

fn interleaved(file: &File, path: &Path) -> Result<HwParams, AlsaError> {
    let mut p = HwParams::any();
    p.set_mask(SNDRV_PCM_HW_PARAM_ACCESS, SNDRV_PCM_ACCESS_RW_INTERLEAVED);
    p.set_mask(SNDRV_PCM_HW_PARAM_SUBFORMAT, SNDRV_PCM_SUBFORMAT_STD);
    refine(file, &mut p).map_err(|source| {
        if is_gone(&source) {
            AlsaError::Gone {
                path: path.to_owned(),
                source,
            }
        } else {
            AlsaError::Unsupported {
                path: path.to_owned(),
                what: format!("no interleaved read/write access ({source})"),
            }
        }
    })?;
    Ok(p)
}

/// What the device at `path` offers (opens it briefly; nothing is started).
pub fn offer(path: &Path) -> Result<Offer, AlsaError> {
    let file = open_node(path)?;
    let p = interleaved(&file, path)?;
    let formats = FORMAT_NAMES
        .iter()
        .filter(|(v, _)| p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, *v))
        .map(|(_, n)| *n)
        .collect();
    let common_rates = [48_000, 44_100]
        .into_iter()
        .chain(FALLBACK_RATES)
        .filter(|&r| {
            let mut q = p;
            q.set_range(SNDRV_PCM_HW_PARAM_RATE, r, r);
            refine(&file, &mut q).is_ok()
        })
        .collect();
    Ok(Offer {
        formats,
        channels: p.range(SNDRV_PCM_HW_PARAM_CHANNELS),
        rates: p.range(SNDRV_PCM_HW_PARAM_RATE),
        common_rates,
    })
}

/// When the oldest of `avail` unread frames was captured, given that the newest was captured
/// at `newest_us` (the status timestamp) at `rate` frames per second (see the module doc).
pub fn first_frame_time_us(newest_us: u64, avail: usize, rate: u32) -> u64 {
    let age_us = avail as u128 * 1_000_000 / u128::from(rate.max(1));
    newest_us.saturating_sub(age_us as u64)
}

impl Pcm {
    /// Opens the node at `path` in direction `dir` and sets it up as near `wish` as it goes
    /// (see the module doc); a capture stream is started.
    pub fn open(path: &Path, dir: Direction, wish: &Wish) -> Result<Pcm, AlsaError> {
        let file = open_node(path)?;
        let fail = |op: &'static str| {
            let path = path.to_owned();
            move |source: io::Error| {
                if is_gone(&source) {
                    AlsaError::Gone { path, source }
                } else {
                    AlsaError::Ioctl { path, op, source }
                }
            }
        };
        let unsupported = |what: String| AlsaError::Unsupported {
            path: path.to_owned(),
            what,
        };

        let mut version = 0i32;
        // SAFETY: PVERSION's number is computed from an i32, the value passed.
        unsafe { ioctl(&file, SNDRV_PCM_IOCTL_PVERSION, &mut version) }
            .map_err(fail("PVERSION"))?;
        if protocol_major(version as u32) != 2 {
            return Err(unsupported(format!(
                "PCM protocol {version:#x}, expected 2.x"
            )));
        }
        let mut info: snd_pcm_info = unsafe { zeroed() };
        // SAFETY: INFO's number is computed from snd_pcm_info, the struct passed.
        unsafe { ioctl(&file, SNDRV_PCM_IOCTL_INFO, &mut info) }.map_err(fail("INFO"))?;
        let want_stream = match dir {
            Direction::Capture => SNDRV_PCM_STREAM_CAPTURE,
            Direction::Playback => SNDRV_PCM_STREAM_PLAYBACK,
        };
        if info.stream != want_stream {
            return Err(unsupported(format!("not a {dir:?} stream")));
        }
        let mut tstamp_type = SNDRV_PCM_TSTAMP_TYPE_MONOTONIC as i32;
        // SAFETY: TTSTAMP's number is computed from an i32, the value passed.
        unsafe { ioctl(&file, SNDRV_PCM_IOCTL_TTSTAMP, &mut tstamp_type) }
            .map_err(fail("TTSTAMP"))?;

        let mut p = interleaved(&file, path)?;
        let Some(format) = wish
            .formats
            .iter()
            .copied()
            .find(|f| p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, f.alsa()))
        else {
            let offered: Vec<&str> = FORMAT_NAMES
                .iter()
                .filter(|(v, _)| p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, *v))
                .map(|(_, n)| *n)
                .collect();
            let wanted: Vec<&str> = wish.formats.iter().map(|f| f.name()).collect();
            return Err(unsupported(format!(
                "offers the sample formats {} and campush takes {}",
                offered.join(", "),
                wanted.join(" or ")
            )));
        };
        p.set_mask(SNDRV_PCM_HW_PARAM_FORMAT, format.alsa());
        refine(&file, &mut p).map_err(fail("HW_REFINE format"))?;

        let channels = set_near(&file, &mut p, SNDRV_PCM_HW_PARAM_CHANNELS, wish.channels)
            .map_err(|_| {
                let (min, max) = p.range(SNDRV_PCM_HW_PARAM_CHANNELS);
                unsupported(format!("offers {min}..{max} channels"))
            })?;
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(unsupported(format!(
                "offers {channels} channels at the least, campush takes 1 to {MAX_CHANNELS}"
            )));
        }

        // The rate asked for, else the other of 48 and 44.1 kHz, else the nearest the
        // device takes among the usual ones (the caller resamples).
        let other = if wish.rate == 44_100 { 48_000 } else { 44_100 };
        let rate = [wish.rate, other]
            .into_iter()
            .chain(FALLBACK_RATES)
            .find(|&r| {
                let mut q = p;
                q.set_range(SNDRV_PCM_HW_PARAM_RATE, r, r);
                refine(&file, &mut q).is_ok()
            })
            .ok_or_else(|| {
                let (min, max) = p.range(SNDRV_PCM_HW_PARAM_RATE);
                unsupported(format!(
                    "offers {min}..{max} Hz but none of 48000, 44100 or {FALLBACK_RATES:?} Hz"
                ))
            })?;
        p.set_range(SNDRV_PCM_HW_PARAM_RATE, rate, rate);
        refine(&file, &mut p).map_err(fail("HW_REFINE rate"))?;

        let period_target = (u64::from(rate) * u64::from(wish.period_us) / 1_000_000) as u32;
        set_near(
            &file,
            &mut p,
            SNDRV_PCM_HW_PARAM_PERIOD_SIZE,
            period_target.max(1),
        )
        .map_err(fail("HW_REFINE period size"))?;
        let mut four = p;
        four.set_range(SNDRV_PCM_HW_PARAM_PERIODS, 4, u32::MAX);
        if refine(&file, &mut four).is_ok() {
            p = four;
        }
        // Half a second of buffer (at least four periods): a reader that is late by less
        // loses nothing. Latency does not grow with it, a read takes what is there.
        let period = p.value(SNDRV_PCM_HW_PARAM_PERIOD_SIZE);
        set_near(
            &file,
            &mut p,
            SNDRV_PCM_HW_PARAM_BUFFER_SIZE,
            (rate / 2).max(period.saturating_mul(4)),
        )
        .map_err(fail("HW_REFINE buffer size"))?;

        // SAFETY: HW_PARAMS's number is computed from snd_pcm_hw_params, the struct passed.
        unsafe { ioctl(&file, SNDRV_PCM_IOCTL_HW_PARAMS, &mut p.0) }.map_err(fail("HW_PARAMS"))?;
        let setup = Setup {
            format,
            rate: p.value(SNDRV_PCM_HW_PARAM_RATE),
            channels: p.value(SNDRV_PCM_HW_PARAM_CHANNELS),
            period_frames: p.value(SNDRV_PCM_HW_PARAM_PERIOD_SIZE),
            buffer_frames: p.value(SNDRV_PCM_HW_PARAM_BUFFER_SIZE),
        };

        let mut sw: snd_pcm_sw_params = unsafe { zeroed() };
        sw.tstamp_mode = SNDRV_PCM_TSTAMP_ENABLE;
        sw.period_step = 1;
        sw.avail_min = setup.period_frames as _;
        sw.start_threshold = match dir {
            Direction::Capture => 1,
            // A player starts once two periods wait, so that it does not underrun at once.
            Direction::Playback => (setup.period_frames * 2).min(setup.buffer_frames) as _,
        };
        sw.stop_threshold = setup.buffer_frames as _;
        sw.proto = SNDRV_PCM_VERSION;
        sw.tstamp_type = SNDRV_PCM_TSTAMP_TYPE_MONOTONIC;
        // SAFETY: SW_PARAMS's number is computed from snd_pcm_sw_params, the struct passed.
        unsafe { ioctl(&file, SNDRV_PCM_IOCTL_SW_PARAMS, &mut sw) }.map_err(fail("SW_PARAMS"))?;

        let pcm = Pcm {
            file,
            path: path.to_owned(),
            dir,
            setup,
            xruns: 0,
        };
        pcm.prepare_and_start()?;
        Ok(pcm)
    }

    /// What the device was set to.
    pub fn setup(&self) -> Setup {
        self.setup
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Overruns (capture) or underruns (playback) recovered from since the open.
    pub fn xruns(&self) -> u64 {
        self.xruns
    }

    /// The hardware pointer now and when it moved there (one `STATUS`, as a read takes its
    /// time from): for a player, frame `n` sounds at `time_us + (n - frames) / rate`, within
    /// the driver's pointer granularity (the stamp is never early). Allocates nothing.
    pub fn position(&self) -> Result<Position, AlsaError> {
        let status = self.status()?;
        let time_us = match status.tstamp.as_us() {
            0 => crate::clock::monotonic_us(),
            t => t,
        };
        #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
        let frames = u64::from(status.hw_ptr);
        Ok(Position { frames, time_us })
    }

    fn ioctl_error(&self, op: &'static str, source: io::Error) -> AlsaError {
        if is_gone(&source) {
            AlsaError::Gone {
                path: self.path.clone(),
                source,
            }
        } else {
            AlsaError::Ioctl {
                path: self.path.clone(),
                op,
                source,
            }
        }
    }

    fn prepare_and_start(&self) -> Result<(), AlsaError> {
        command(&self.file, Command::Prepare).map_err(|e| self.ioctl_error("PREPARE", e))?;
        if self.dir == Direction::Capture {
            command(&self.file, Command::Start).map_err(|e| self.ioctl_error("START", e))?;
        }
        Ok(())
    }

    /// After an overrun or underrun: prepare (and start) again, count it, say so.
    fn recover(&mut self) -> AlsaError {
        self.xruns += 1;
        match self.prepare_and_start() {
            Ok(()) => AlsaError::Xrun,
            Err(e) => e,
        }
    }

    fn status(&self) -> Result<snd_pcm_status, AlsaError> {
        // SAFETY: plain data, all-zero is valid.
        let mut status: snd_pcm_status = unsafe { zeroed() };
        // SAFETY: STATUS's number is computed from snd_pcm_status, the struct passed.
        unsafe { ioctl(&self.file, SNDRV_PCM_IOCTL_STATUS, &mut status) }
            .map_err(|e| self.ioctl_error("STATUS", e))?;
        Ok(status)
    }

    /// Waits up to `remaining` for the device (POLLIN or POLLOUT); false on timeout.
    fn wait(&self, remaining: Duration) -> Result<bool, AlsaError> {
        let events = match self.dir {
            Direction::Capture => libc::POLLIN,
            Direction::Playback => libc::POLLOUT,
        };
        let mut fd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events,
            revents: 0,
        };
        let ms = remaining.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one pollfd we own.
        let rc = unsafe { libc::poll(&mut fd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(true);
            }
            return Err(self.ioctl_error("poll", e));
        }
        Ok(rc > 0)
    }

    /// Checks the stream's state: running (or ready) is fine; XRUN is recovered from; gone
    /// is gone. Returns the status when the stream can be read or written.
    fn checked_status(&mut self) -> Result<snd_pcm_status, AlsaError> {
        let status = self.status()?;
        match status.state {
            SNDRV_PCM_STATE_XRUN | SNDRV_PCM_STATE_SUSPENDED => Err(self.recover()),
            SNDRV_PCM_STATE_DISCONNECTED => Err(AlsaError::Gone {
                path: self.path.clone(),
                source: io::Error::from_raw_os_error(libc::ENODEV),
            }),
            SNDRV_PCM_STATE_OPEN | SNDRV_PCM_STATE_SETUP => {
                self.prepare_and_start()?;
                self.status()
            }
            _ => Ok(status),
        }
    }

    /// Capture: waits up to `timeout` for at least a period (or a buffer-full of the caller's
    /// `buf`), then copies whole frames into `buf` and says when the first was captured (see
    /// the module doc). Allocates nothing.
    pub fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Captured, AlsaError> {
        let frame_bytes = self.setup.frame_bytes();
        let room = buf.len() / frame_bytes;
        if room == 0 {
            return Err(AlsaError::SmallBuffer(buf.len()));
        }
        let enough = room.min(self.setup.period_frames as usize).max(1);
        let deadline = Instant::now() + timeout;
        // Bounded: every pass either returns or waits in poll until the deadline.
        for _ in 0..10_000 {
            let status = self.checked_status()?;
            let avail = status.avail as usize;
            if avail >= enough {
                let frames = avail.min(room);
                let mut x = snd_xferi {
                    result: 0,
                    buf: buf.as_mut_ptr().cast(),
                    frames: frames as _,
                };
                // SAFETY: READI_FRAMES's number is computed from snd_xferi, the struct passed;
                // its buffer is `buf`, which holds `room` >= `frames` whole frames.
                match unsafe { ioctl(&self.file, SNDRV_PCM_IOCTL_READI_FRAMES, &mut x) } {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Err(self.recover()),
                    Err(e) if e.raw_os_error() == Some(libc::ESTRPIPE) => {
                        return Err(self.recover())
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
                    Err(e) => return Err(self.ioctl_error("READI_FRAMES", e)),
                }
                let newest_us = match status.tstamp.as_us() {
                    0 => crate::clock::monotonic_us(),
                    t => t,
                };
                return Ok(Captured {
                    frames: (x.result.max(0) as usize).min(frames),
                    time_us: first_frame_time_us(newest_us, avail, self.setup.rate),
                });
            }
            let now = Instant::now();
            if now >= deadline || !self.wait(deadline - now)? {
                return Err(AlsaError::Timeout(timeout));
            }
        }
        Err(AlsaError::Timeout(timeout))
    }

    /// Playback: waits up to `timeout` for room, then writes as many whole frames of `buf` as
    /// fit; returns how many. An underrun returns [`AlsaError::Xrun`] after preparing again.
    pub fn write(&mut self, buf: &[u8], timeout: Duration) -> Result<usize, AlsaError> {
        let frames = buf.len() / self.setup.frame_bytes();
        if frames == 0 {
            return Err(AlsaError::SmallBuffer(buf.len()));
        }
        let deadline = Instant::now() + timeout;
        for _ in 0..10_000 {
            self.checked_status()?;
            let mut x = snd_xferi {
                result: 0,
                buf: buf.as_ptr() as *mut _,
                frames: frames as _,
            };
            // SAFETY: WRITEI_FRAMES's number is computed from snd_xferi, the struct passed; its
            // buffer is `buf`, which holds `frames` whole frames, and the kernel only reads it.
            match unsafe { ioctl(&self.file, SNDRV_PCM_IOCTL_WRITEI_FRAMES, &mut x) } {
                Ok(_) => return Ok(x.result.max(0) as usize),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Err(self.recover()),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => return Err(self.ioctl_error("WRITEI_FRAMES", e)),
            }
            let now = Instant::now();
            if now >= deadline || !self.wait(deadline - now)? {
                return Err(AlsaError::Timeout(timeout));
            }
        }
        Err(AlsaError::Timeout(timeout))
    }
}

impl Drop for Pcm {
    fn drop(&mut self) {
        // Stops the stream at once (frames not yet read or played are dropped); errors are
        // moot, the descriptor closes next.
        let _ = command(&self.file, Command::Drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anything_allows_every_format_and_any_number() {
        let p = HwParams::any();
        assert!(p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S16_LE));
        assert!(p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S32_LE));
        assert_eq!(p.range(SNDRV_PCM_HW_PARAM_RATE), (0, u32::MAX));
    }

    #[test]
    fn setting_a_mask_leaves_that_one_value() {
        let mut p = HwParams::any();
        p.set_mask(SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S32_LE);
        assert!(p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S32_LE));
        assert!(!p.mask_has(SNDRV_PCM_HW_PARAM_FORMAT, SNDRV_PCM_FORMAT_S16_LE));
        assert_eq!(p.0.masks[SNDRV_PCM_HW_PARAM_FORMAT].bits[0], 1 << 10);
    }

    #[test]
    fn open_interval_ends_are_closed_when_read() {
        let mut p = HwParams::any();
        p.0.intervals[SNDRV_PCM_HW_PARAM_PERIOD_TIME - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL] =
            snd_interval {
                min: 19_999,
                max: 20_001,
                flags: INTERVAL_OPENMIN | INTERVAL_OPENMAX,
            };
        assert_eq!(p.range(SNDRV_PCM_HW_PARAM_PERIOD_TIME), (20_000, 20_000));
        assert_eq!(p.value(SNDRV_PCM_HW_PARAM_PERIOD_TIME), 20_000);
    }

    #[test]
    fn the_first_unread_frame_was_captured_avail_frames_before_the_status_time() {
        // 960 frames waiting at 48 kHz: the oldest is 20 ms older than the pointer update.
        assert_eq!(first_frame_time_us(10_000_000, 960, 48_000), 9_980_000);
        assert_eq!(first_frame_time_us(10_000_000, 441, 44_100), 9_990_000);
        assert_eq!(first_frame_time_us(10_000_000, 0, 48_000), 10_000_000);
        // Never before the clock's start.
        assert_eq!(first_frame_time_us(1_000, 48_000, 48_000), 0);
    }

    #[test]
    fn a_missing_node_is_a_device_gone_not_a_failure() {
        let e = Pcm::open(
            Path::new("/nonexistent/dev/snd/pcmC9D0c"),
            Direction::Capture,
            &Wish::microphone(48_000, 1),
        )
        .unwrap_err();
        assert!(matches!(e, AlsaError::Gone { .. }), "{e}");
    }

    #[test]
    fn a_node_that_is_not_a_pcm_device_is_refused() {
        let e = Pcm::open(
            Path::new("/dev/null"),
            Direction::Capture,
            &Wish::microphone(48_000, 1),
        )
        .unwrap_err();
        assert!(matches!(e, AlsaError::Ioctl { op: "PVERSION", .. }), "{e}");
    }
}
