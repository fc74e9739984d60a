//! A card's control device (`/dev/snd/controlC*`): its identity, and integer controls read
//! and written by name.
//!
//! Owns: [`card_info`] (SNDRV_CTL_IOCTL_CARD_INFO) and [`Control`] (ELEM_READ / ELEM_WRITE of
//! a mixer element found by name, device and subdevice, the way `amixer cset name=...` does).
//! campush itself only reads card identities; writing is for the tests, which set the
//! loopback driver's "PCM Rate Shift 100000" to simulate a microphone's crystal drift.
//!
//! Invariants: names longer than the kernel's 44 bytes are refused, never cut short.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::sys::*;

/// Issues `request` with a pointer to `arg`.
///
/// # Safety
/// `request` must be the ioctl number computed from `T` (see `sys`).
unsafe fn ioctl<T>(file: &File, request: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: guaranteed by the caller: the kernel reads and writes exactly one T.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// A card as its driver names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    pub index: i32,
    pub id: String,
    pub driver: String,
    pub name: String,
    pub long_name: String,
}

/// Reads the identity of the card whose control node is `path`.
pub fn card_info(path: &Path) -> io::Result<CardInfo> {
    let file = File::open(path)?;
    // SAFETY: plain data, all-zero is valid.
    let mut info: snd_ctl_card_info = unsafe { zeroed() };
    // SAFETY: CARD_INFO's number is computed from snd_ctl_card_info, the struct passed.
    unsafe { ioctl(&file, SNDRV_CTL_IOCTL_CARD_INFO, &mut info) }?;
    Ok(CardInfo {
        index: info.card,
        id: text(&info.id),
        driver: text(&info.driver),
        name: text(&info.name),
        long_name: text(&info.longname),
    })
}

/// Which interface a control element belongs to (`SNDRV_CTL_ELEM_IFACE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iface {
    /// Mixer controls (volumes, switches).
    Mixer,
    /// Controls of a PCM device (snd-aloop's "PCM Rate Shift 100000").
    Pcm,
}

/// One integer control.
pub struct Control {
    file: File,
    value: snd_ctl_elem_value,
}

impl Control {
    /// The control `name` of interface `iface`, PCM `device`, substream `subdevice`, on the
    /// card whose control node is `path`.
    pub fn open(
        path: &Path,
        iface: Iface,
        name: &str,
        device: u32,
        subdevice: u32,
    ) -> io::Result<Control> {
        if name.len() >= SNDRV_CTL_ELEM_ID_NAME_MAXLEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("control name {name:?} is longer than the kernel's 43 bytes"),
            ));
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // SAFETY: plain data, all-zero is valid.
        let mut value: snd_ctl_elem_value = unsafe { zeroed() };
        value.id.iface = match iface {
            Iface::Mixer => SNDRV_CTL_ELEM_IFACE_MIXER,
            Iface::Pcm => SNDRV_CTL_ELEM_IFACE_PCM,
        };
        value.id.device = device;
        value.id.subdevice = subdevice;
        value.id.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Control { file, value })
    }

    /// The control's first value.
    pub fn get(&mut self) -> io::Result<i64> {
        // SAFETY: ELEM_READ's number is computed from snd_ctl_elem_value, the struct passed.
        unsafe { ioctl(&self.file, SNDRV_CTL_IOCTL_ELEM_READ, &mut self.value) }?;
        #[allow(clippy::unnecessary_cast)] // c_long is i32 on 32-bit targets
        Ok(self.value.value[0] as i64)
    }

    /// Sets the control's first value.
    pub fn set(&mut self, v: i64) -> io::Result<()> {
        self.value.value = [0; 128];
        self.value.value[0] = v as _;
        // SAFETY: ELEM_WRITE's number is computed from snd_ctl_elem_value, the struct passed.
        unsafe { ioctl(&self.file, SNDRV_CTL_IOCTL_ELEM_WRITE, &mut self.value) }
    }
}
