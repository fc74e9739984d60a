//! The sampler: the thin IO shell that reads the health sources into a [`Health`].
//!
//! Owns: finding the sources once, below a root (the firmware node, the thermal zone, the Wi-Fi
//! statistics file), the one read buffer, and the two questions that are not files ([`System`]:
//! the clock's synchronisation, Wi-Fi power saving), asked of the real system by [`Live`] and of
//! a stand-in in tests.
//!
//! Cost of a sample: an open, a read and a close for each file found (three at most), one
//! `adjtimex`, one `ioctl` on a socket kept open; no allocation (paths are built when the
//! sampler is, the buffer is its own).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{parse_millicelsius, parse_throttled, parse_wireless, Health};

/// The questions a sample asks that are not files below the root.
pub trait System: Send {
    /// Whether the system clock is synchronised; `None` when the system will not say.
    fn clock_synced(&mut self) -> Option<bool>;
    /// Whether Wi-Fi power saving is on for `interface`; `None` when unknown.
    fn wifi_power_save(&mut self, interface: &str) -> Option<bool>;
}

/// The real system: `adjtimex` and `SIOCGIWPOWER`.
#[derive(Default)]
pub struct Live {
    /// A datagram socket for the wireless ioctl, opened at the first question.
    socket: Option<OwnedFd>,
    /// `adjtimex` was refused (a seccomp filter): not asked again.
    clock_refused: bool,
}

/// `maxerror` (µs) from which the clock counts as unsynchronised: `NTP_PHASE_LIMIT`, where the
/// kernel sets `STA_UNSYNC` itself, and systemd's threshold.
const MAX_ERROR_SYNCED_US: i64 = 16_000_000;

/// `struct iwreq` carrying an `iw_param` (linux/wireless.h): 32 bytes on 32- and 64-bit ABIs.
#[repr(C)]
struct IwParamRequest {
    name: [u8; 16],
    value: i32,
    fixed: u8,
    disabled: u8,
    flags: u16,
    /// The rest of `union iwreq_data` (16 bytes: a `struct sockaddr`).
    _rest: [u8; 8],
}

impl System for Live {
    fn clock_synced(&mut self) -> Option<bool> {
        if self.clock_refused {
            return None;
        }
        // SAFETY: an all-zero timex (modes = 0: read only) is valid input; adjtimex writes into
        // the struct we own.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: see above.
        if unsafe { libc::adjtimex(&mut tx) } < 0 {
            let e = std::io::Error::last_os_error();
            log::debug!("board health: adjtimex: {e}; clock synchronisation unknown");
            self.clock_refused = e.raw_os_error() == Some(libc::EPERM);
            return None;
        }
        // `c_long`: 32 bits on 32-bit ARM (Pi Zero to 3 under the 32-bit OS).
        #[allow(clippy::useless_conversion)]
        let maxerror = i64::from(tx.maxerror);
        Some(maxerror < MAX_ERROR_SYNCED_US)
    }

    fn wifi_power_save(&mut self, interface: &str) -> Option<bool> {
        if self.socket.is_none() {
            // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return None;
            }
            // SAFETY: a fresh descriptor nobody else owns.
            self.socket = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let fd = self.socket.as_ref()?.as_raw_fd();
        let mut request = IwParamRequest {
            name: [0; 16],
            value: 0,
            fixed: 0,
            disabled: 0,
            flags: 0,
            _rest: [0; 8],
        };
        let name = interface.as_bytes();
        if name.is_empty() || name.len() > 15 {
            return None;
        }
        request.name[..name.len()].copy_from_slice(name);
        // SAFETY: SIOCGIWPOWER reads and writes a `struct iwreq`, which `IwParamRequest` lays out
        // in full; a GET needs no capability.
        let rc = unsafe { libc::ioctl(fd, libc::SIOCGIWPOWER as libc::Ioctl, &mut request) };
        (rc == 0).then_some(request.disabled == 0)
    }
}

/// Reads the health sources found below a root.
pub struct Sampler {
    firmware: Option<PathBuf>,
    thermal: Option<(PathBuf, String)>,
    wireless: Option<PathBuf>,
    system: Box<dyn System>,
    buf: Box<[u8]>,
}

/// Enough for `/proc/net/wireless` with a dozen interfaces; sysfs files are a line.
const BUFFER: usize = 4096;

impl Sampler {
    /// Finds the sources below `root` (absent ones are left out for good) and asks `system` the
    /// rest.
    pub fn new(root: &Path, system: Box<dyn System>) -> Sampler {
        Sampler {
            firmware: find_firmware(root),
            thermal: find_thermal_zone(root),
            wireless: ["proc/net/wireless", "proc/self/net/wireless"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.is_file()),
            system,
            buf: vec![0; BUFFER].into_boxed_slice(),
        }
    }

    /// The sources found, for the log.
    pub fn describe(&self) -> String {
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("none".into(), |p| p.display().to_string())
        };
        format!(
            "firmware flags: {}; temperature: {}; Wi-Fi: {}",
            show(&self.firmware),
            self.thermal
                .as_ref()
                .map_or("none".into(), |(p, kind)| format!(
                    "{} ({kind})",
                    p.display()
                )),
            show(&self.wireless),
        )
    }

    /// One sample.
    pub fn sample(&mut self) -> Health {
        let firmware = self
            .firmware
            .as_deref()
            .and_then(|p| read_into(p, &mut self.buf))
            .and_then(parse_throttled);
        let temp_millicelsius = self
            .thermal
            .as_ref()
            .and_then(|(p, _)| read_into(p, &mut self.buf))
            .and_then(parse_millicelsius);
        let wifi = self
            .wireless
            .as_deref()
            .and_then(|p| read_into(p, &mut self.buf))
            .and_then(parse_wireless);
        let wifi_power_save = wifi.and_then(|w| self.system.wifi_power_save(w.interface.as_str()));
        Health {
            firmware,
            temp_millicelsius,
            wifi,
            wifi_power_save,
            clock_synced: self.system.clock_synced(),
        }
    }
}

/// The whole of a small file into `buf`; `None` if it cannot be read (or is larger than `buf`).
/// Opens, reads and closes: no allocation (a path this short is made C-compatible on the stack).
fn read_into<'b>(path: &Path, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut file = File::open(path).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => return Some(&buf[..len]),
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    None
}

/// `get_throttled` of the Raspberry Pi firmware node: its usual place, else wherever the
/// firmware driver's device is (the node's path differs between device trees).
fn find_firmware(root: &Path) -> Option<PathBuf> {
    let usual = root.join("sys/devices/platform/soc/soc:firmware/get_throttled");
    if usual.is_file() {
        return Some(usual);
    }
    let driver = root.join("sys/bus/platform/drivers/raspberrypi-firmware");
    let mut found: Vec<PathBuf> = std::fs::read_dir(driver)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("get_throttled")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The SoC's thermal zone: `cpu-thermal` (Raspberry Pi and most device-tree boards), else the
/// lowest-numbered zone; with its `type`.
fn find_thermal_zone(root: &Path) -> Option<(PathBuf, String)> {
    let mut zones: Vec<(u32, PathBuf, String)> = std::fs::read_dir(root.join("sys/class/thermal"))
        .ok()?
        .filter_map(|e| {
            let path = e.ok()?.path();
            let n = path
                .file_name()?
                .to_str()?
                .strip_prefix("thermal_zone")?
                .parse()
                .ok()?;
            let kind = std::fs::read_to_string(path.join("type")).ok()?;
            Some((n, path.join("temp"), kind.trim().to_owned()))
        })
        .filter(|(_, temp, _)| temp.is_file())
        .collect();
    zones.sort_by_key(|(n, _, _)| *n);
    let pick = zones
        .iter()
        .position(|(_, _, kind)| kind == "cpu-thermal")
        .unwrap_or(0);
    (!zones.is_empty()).then(|| {
        let (_, temp, kind) = zones.swap_remove(pick);
        (temp, kind)
    })
}
