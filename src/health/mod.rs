//! Board health: what the board says about the causes of most dying streams on a Raspberry Pi —
//! the power supply, heat, Wi-Fi and the clock — sampled every few seconds at negligible cost.
//!
//! Owns: [`Health`] (one sample; `None` wherever a source is absent: never an error), the parsers
//! of the files it is read from (sans-IO: bytes in, values out), [`Conditions`] (which problems
//! are going on, so the log says when one starts and when it clears, not at every sample), the
//! sampler ([`sampler`]: the thin IO shell) and the thread that runs it ([`monitor`]).
//!
//! Sources, every path below the system root (`/`, or `CAMPUSH_ROOT` in tests, which use fake
//! trees); formats as the kernel writes them:
//!
//! | what | where | format (kernel source) |
//! |---|---|---|
//! | firmware flags | `/sys/devices/platform/soc/soc:firmware/get_throttled`, else `get_throttled` of the device bound to `/sys/bus/platform/drivers/raspberrypi-firmware/` | `"%x\n"`: bare hex, no `0x` (`get_throttled_show`, drivers/firmware/raspberrypi.c) |
//! | SoC temperature | `/sys/class/thermal/thermal_zone*/temp`, the zone whose `type` is `cpu-thermal` (Pi), else the lowest-numbered | `"%d\n"`, millidegrees Celsius, may be negative (`temp_show`, drivers/thermal/thermal_sysfs.c) |
//! | Wi-Fi signal | `/proc/net/wireless`, else `/proc/self/net/wireless` | two header lines, then per interface `"%6s: %04x  %3d%c  %3d%c  %3d%c  ..."`: status, link quality, level, noise, each followed by `.` when updated (`wireless_seq_printf_stats`, net/wireless/wext-proc.c) |
//! | Wi-Fi power saving | `SIOCGIWPOWER` on the interface (what `iwconfig` shows) | `iw_param.disabled = !wdev->ps`, the same flag `iw dev wlan0 get power_save` reads over nl80211 (`cfg80211_wext_giwpower`, net/wireless/wext-compat.c) |
//! | clock synchronised | `adjtimex` with `modes = 0` (not a file: injected in tests) | `maxerror` below 16 s, as `timedatectl` decides ("System clock synchronized", systemd's `ntp_synced`) |
//!
//! Firmware flags (as `vcgencmd get_throttled` reports them): bit 0 under-voltage, 1 ARM
//! frequency capped, 2 throttled, 3 soft temperature limit, all "now"; bits 16 to 19 the same,
//! "has occurred". The sysfs file shows the last value the kernel asked the firmware for: the
//! raspberrypi-hwmon driver asks every 2 s, and asks the firmware to clear the sticky bits each
//! time (drivers/hwmon/raspberrypi-hwmon.c), so "has occurred" means since its previous poll
//! rather than since boot. `health` reports the "now" bits and the raw value. Reading the file
//! makes the kernel log one "deprecated, use hwmon sysfs instead" warning (`WARN_ONCE`) per boot;
//! hwmon only has the under-voltage bit (`in0_lcrit_alarm`), so there is no better source for
//! the others.
//!
//! Wi-Fi: for cfg80211 drivers (every current one, brcmfmac on the Pi) a level with the dBm flag
//! is printed as `level - 256`, a negative number, and link quality is `signal + 110` clamped to
//! 0..=70 (`cfg80211_wireless_stats`); an interface that is not associated is listed with zeros
//! and no `.` markers. So a negative level is a signal in dBm; anything else is "no signal".
//!
//! Clock: `STA_UNSYNC` alone is not trusted, as systemd does not trust it: chrony sets it on
//! purpose (to keep the kernel from writing the RTC) while synchronised. `maxerror` grows by
//! 500 µs per second without a time source; at 16 s the kernel sets `STA_UNSYNC` itself. At boot
//! without network time it is 16 s: a Pi has no real-time clock, and TLS certificates look expired
//! or not yet valid until the clock is set. Under systemd's `ProtectClock=yes` even this read is
//! refused (EPERM, systemd#26413): the unit allows `adjtimex` explicitly instead (it has no
//! `CAP_SYS_TIME`, so it cannot set the clock).
//!
//! Invariants: a sample allocates nothing (fixed buffers, paths resolved when the sampler is
//! built); a missing or unreadable source gives `None`, which status.json shows as `null`.

pub mod monitor;
pub mod sampler;

use std::fmt::Write as _;

/// Raspberry Pi firmware flags (`get_throttled`), as `vcgencmd get_throttled` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareFlags(pub u32);

impl FirmwareFlags {
    pub const UNDER_VOLTAGE: u32 = 1 << 0;
    pub const FREQ_CAPPED: u32 = 1 << 1;
    pub const THROTTLED: u32 = 1 << 2;
    pub const SOFT_TEMP_LIMIT: u32 = 1 << 3;

    pub fn under_voltage(self) -> bool {
        self.0 & Self::UNDER_VOLTAGE != 0
    }
    pub fn freq_capped(self) -> bool {
        self.0 & Self::FREQ_CAPPED != 0
    }
    pub fn throttled(self) -> bool {
        self.0 & Self::THROTTLED != 0
    }
    pub fn soft_temp_limit(self) -> bool {
        self.0 & Self::SOFT_TEMP_LIMIT != 0
    }
    /// The "has occurred" half (bits 16 to 19), moved to the positions of the "now" bits.
    pub fn occurred(self) -> FirmwareFlags {
        FirmwareFlags((self.0 >> 16) & 0xf)
    }
}

impl std::fmt::Display for FirmwareFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A network interface name (at most 15 bytes, `IFNAMSIZ` less its NUL), held without
/// allocating so a [`Health`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    bytes: [u8; 15],
    len: u8,
}

impl Interface {
    /// `name` if it is a possible interface name (1 to 15 bytes, no `/`, `:` or white space).
    pub fn new(name: &str) -> Option<Interface> {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
        if !ok {
            return None;
        }
        let mut bytes = [0; 15];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(Interface {
            bytes,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Wi-Fi interface's line of `/proc/net/wireless`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wifi {
    pub interface: Interface,
    /// Link quality as the driver rates it (0 to 70 for cfg80211 drivers); `None` when the
    /// driver gave none (not associated).
    pub link_quality: Option<u8>,
    /// Signal level in dBm; `None` when not associated or the driver reports no dBm.
    pub signal_dbm: Option<i16>,
}

/// One sample of the board's health. `None`: the source is absent here (not a Pi, no Wi-Fi,
/// not permitted), never an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    pub firmware: Option<FirmwareFlags>,
    /// SoC temperature in millidegrees Celsius.
    pub temp_millicelsius: Option<i32>,
    pub wifi: Option<Wifi>,
    pub wifi_power_save: Option<bool>,
    pub clock_synced: Option<bool>,
}

impl Health {
    pub fn under_voltage(&self) -> Option<bool> {
        self.firmware.map(FirmwareFlags::under_voltage)
    }
    pub fn throttled(&self) -> Option<bool> {
        self.firmware.map(FirmwareFlags::throttled)
    }
    pub fn freq_capped(&self) -> Option<bool> {
        self.firmware.map(FirmwareFlags::freq_capped)
    }
    pub fn soft_temp_limit(&self) -> Option<bool> {
        self.firmware.map(FirmwareFlags::soft_temp_limit)
    }
    /// The SoC temperature in degrees Celsius.
    pub fn temp_c(&self) -> Option<f64> {
        self.temp_millicelsius.map(|m| f64::from(m) / 1000.0)
    }
    pub fn wifi_signal_dbm(&self) -> Option<i16> {
        self.wifi.and_then(|w| w.signal_dbm)
    }
    pub fn wifi_link_quality(&self) -> Option<u8> {
        self.wifi.and_then(|w| w.link_quality)
    }

    /// The short health part of the summary line: the problems going on, then the temperature
    /// and the Wi-Fi signal when known, e.g. `under-voltage, throttled, 81.2 °C, Wi-Fi -58 dBm`.
    /// `None` when nothing is known (no source on this machine).
    pub fn summary(&self) -> Option<String> {
        let mut s = String::new();
        let mut add = |part: &str| {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(part);
        };
        for condition in Condition::ALL {
            if condition.is_on(self, false) {
                add(condition.word());
            }
        }
        if let Some(t) = self.temp_c() {
            add(&format!("{t:.1} °C"));
        }
        if let Some(dbm) = self.wifi_signal_dbm() {
            add(&format!("Wi-Fi {dbm} dBm"));
        }
        (!s.is_empty()).then_some(s)
    }
}

/// Parses `get_throttled`: hex digits (the kernel writes them bare, `"%x\n"`); `0x` and
/// `vcgencmd`'s `throttled=` are accepted too.
pub fn parse_throttled(text: &[u8]) -> Option<FirmwareFlags> {
    let text = std::str::from_utf8(text).ok()?.trim();
    let text = text.strip_prefix("throttled=").unwrap_or(text);
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex, 16).ok().map(FirmwareFlags)
}

/// Parses a thermal zone's `temp`: millidegrees Celsius (`"%d\n"`). Values no SoC can have
/// (below -100 °C or above 200 °C: a sensor not ready) are `None`.
pub fn parse_millicelsius(text: &[u8]) -> Option<i32> {
    let value: i32 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    (-100_000..=200_000).contains(&value).then_some(value)
}

/// Parses `/proc/net/wireless`: the first interface with a signal, else the first listed; `None`
/// when no interface is listed (no Wi-Fi, or the header only).
pub fn parse_wireless(text: &[u8]) -> Option<Wifi> {
    let text = std::str::from_utf8(text).ok()?;
    let mut first = None;
    // The two header lines hold `|`; an interface line is `NAME: STATUS QUAL LEVEL NOISE ...`.
    for line in text.lines().filter(|l| !l.contains('|')) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(interface) = Interface::new(name.trim()) else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        let _status = fields.next();
        let (Some(quality), Some(level)) = (
            fields.next().and_then(marked),
            fields.next().and_then(marked),
        ) else {
            continue;
        };
        // A level with the dBm flag is printed as level - 256: always negative. Zero (with or
        // without a marker) is "no signal": the line of an interface that is not associated.
        let signal_dbm = (-255..0).contains(&level.0).then_some(level.0 as i16);
        let link_quality = (signal_dbm.is_some() || quality.1)
            .then(|| u8::try_from(quality.0.clamp(0, 255)).unwrap_or(0));
        let wifi = Wifi {
            interface,
            link_quality,
            signal_dbm,
        };
        if wifi.signal_dbm.is_some() {
            return Some(wifi);
        }
        first.get_or_insert(wifi);
    }
    first
}

/// A number as `/proc/net/wireless` prints it, with whether it carries the "updated" `.`.
fn marked(field: &str) -> Option<(i32, bool)> {
    let (number, updated) = match field.strip_suffix('.') {
        Some(n) => (n, true),
        None => (field, false),
    };
    number.parse().ok().map(|n| (n, updated))
}

/// A problem the board can have, logged when it starts and when it clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    UnderVoltage,
    Throttled,
    FreqCapped,
    SoftTempLimit,
    /// The SoC at or above [`HOT_MILLICELSIUS`] (boards without firmware flags say nothing else).
    Hot,
    /// A Wi-Fi signal at or below [`WEAK_SIGNAL_DBM`].
    WeakWifi,
    WifiPowerSave,
    ClockUnsynchronised,
}

/// At 80 °C a Pi's firmware starts throttling; other SoCs are not far off.
pub const HOT_MILLICELSIUS: i32 = 80_000;
/// "Hot" clears below this (hysteresis).
pub const COOLED_MILLICELSIUS: i32 = 75_000;
/// At -75 dBm and below a few Mbit/s of live video stalls.
pub const WEAK_SIGNAL_DBM: i16 = -75;
/// "Weak" clears at this and above (hysteresis).
pub const RECOVERED_SIGNAL_DBM: i16 = -70;
/// A condition clears only after this many samples in a row without it (30 s at the sampling
/// period): a flapping supply is one start and one clear, not a line every few seconds.
pub const CLEAR_AFTER_SAMPLES: u32 = 6;

impl Condition {
    pub const ALL: [Condition; 8] = [
        Condition::UnderVoltage,
        Condition::Throttled,
        Condition::FreqCapped,
        Condition::SoftTempLimit,
        Condition::Hot,
        Condition::WeakWifi,
        Condition::WifiPowerSave,
        Condition::ClockUnsynchronised,
    ];

    /// Whether `health` shows this condition; `was_on` picks the side of a hysteresis. An absent
    /// source shows none.
    pub fn is_on(self, health: &Health, was_on: bool) -> bool {
        match self {
            Condition::UnderVoltage => health.under_voltage() == Some(true),
            Condition::Throttled => health.throttled() == Some(true),
            Condition::FreqCapped => health.freq_capped() == Some(true),
            Condition::SoftTempLimit => health.soft_temp_limit() == Some(true),
            Condition::Hot => health.temp_millicelsius.is_some_and(|t| {
                t >= if was_on {
                    COOLED_MILLICELSIUS
                } else {
                    HOT_MILLICELSIUS
                }
            }),
            Condition::WeakWifi => health.wifi_signal_dbm().is_some_and(|dbm| {
                if was_on {
                    dbm < RECOVERED_SIGNAL_DBM
                } else {
                    dbm <= WEAK_SIGNAL_DBM
                }
            }),
            Condition::WifiPowerSave => health.wifi_power_save == Some(true),
            Condition::ClockUnsynchronised => health.clock_synced == Some(false),
        }
    }

    /// A word or two for the summary line.
    pub fn word(self) -> &'static str {
        match self {
            Condition::UnderVoltage => "under-voltage",
            Condition::Throttled => "throttled",
            Condition::FreqCapped => "frequency capped",
            Condition::SoftTempLimit => "soft temperature limit",
            Condition::Hot => "hot",
            Condition::WeakWifi => "weak Wi-Fi",
            Condition::WifiPowerSave => "Wi-Fi power saving on",
            Condition::ClockUnsynchronised => "clock not synchronised",
        }
    }

    /// The log line when the condition starts: what it is, with the values, and what to do.
    pub fn started(self, health: &Health) -> String {
        let temp = health
            .temp_c()
            .map_or(String::new(), |t| format!(" at {t:.1} °C"));
        let flags = health
            .firmware
            .map_or(String::new(), |f| format!(" (firmware flags {f})"));
        let interface = health
            .wifi
            .map_or("wlan0".to_owned(), |w| w.interface.to_string());
        match self {
            Condition::UnderVoltage => format!(
                "board: under-voltage{flags}: the power supply cannot keep up; use a supply rated \
                 for the board and a short, thick cable (under-voltage throttles the board, drops \
                 Wi-Fi and corrupts SD cards)"
            ),
            Condition::Throttled => format!(
                "board: the firmware is throttling the CPU{temp}{flags}: cool the board (case with \
                 airflow, heatsink, fan) or fix its supply"
            ),
            Condition::FreqCapped => {
                format!("board: the ARM frequency is capped{temp}{flags}: heat or a weak supply")
            }
            Condition::SoftTempLimit => format!(
                "board: soft temperature limit reached{temp}{flags}: the firmware lowers the \
                 clock; cool the board"
            ),
            Condition::Hot => format!(
                "board: the SoC is hot{temp} (from {} °C boards throttle): cool the board",
                HOT_MILLICELSIUS / 1000
            ),
            Condition::WeakWifi => format!(
                "board: weak Wi-Fi signal on {interface}: {} dBm (at {WEAK_SIGNAL_DBM} dBm and \
                 below live video stalls): move the access point closer, use an antenna or \
                 Ethernet",
                health.wifi_signal_dbm().unwrap_or(0)
            ),
            Condition::WifiPowerSave => format!(
                "board: Wi-Fi power saving is on for {interface}; it is known to stall live \
                 streams: turn it off (`iw dev {interface} set power_save off`, or \
                 wifi.powersave = 2 in NetworkManager)"
            ),
            Condition::ClockUnsynchronised => "board: the system clock is not synchronised (no \
                 network time yet, and a Pi has no real-time clock): TLS certificates may look \
                 expired or not yet valid until it is"
                .to_owned(),
        }
    }

    /// The log line when the condition has cleared.
    pub fn cleared(self, health: &Health) -> String {
        let mut s = format!("board: {} has cleared", self.word());
        match self {
            Condition::Hot | Condition::Throttled | Condition::SoftTempLimit => {
                if let Some(t) = health.temp_c() {
                    let _ = write!(s, " ({t:.1} °C)");
                }
            }
            Condition::WeakWifi => {
                if let Some(dbm) = health.wifi_signal_dbm() {
                    let _ = write!(s, " ({dbm} dBm)");
                }
            }
            _ => {}
        }
        s
    }
}

/// A condition starting or clearing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Started(Condition),
    Cleared(Condition),
}

impl Change {
    /// The log line for this change, with the values of `health`.
    pub fn message(self, health: &Health) -> String {
        match self {
            Change::Started(c) => c.started(health),
            Change::Cleared(c) => c.cleared(health),
        }
    }
}

/// Which conditions are going on, from sample to sample.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    on: [bool; Condition::ALL.len()],
    /// Samples in a row without the condition while it is still on.
    absent_for: [u32; Condition::ALL.len()],
}

impl Conditions {
    /// Takes a sample; returns the conditions that started or cleared with it (at most one
    /// change per condition; no allocation).
    pub fn update(&mut self, health: &Health) -> impl Iterator<Item = Change> {
        let mut changes = [None; Condition::ALL.len()];
        for (i, condition) in Condition::ALL.into_iter().enumerate() {
            let now = condition.is_on(health, self.on[i]);
            match (self.on[i], now) {
                (false, true) => {
                    self.on[i] = true;
                    self.absent_for[i] = 0;
                    changes[i] = Some(Change::Started(condition));
                }
                (true, true) => self.absent_for[i] = 0,
                (true, false) => {
                    self.absent_for[i] += 1;
                    if self.absent_for[i] >= CLEAR_AFTER_SAMPLES {
                        self.on[i] = false;
                        self.absent_for[i] = 0;
                        changes[i] = Some(Change::Cleared(condition));
                    }
                }
                (false, false) => {}
            }
        }
        changes.into_iter().flatten()
    }

    /// Whether `condition` is going on.
    pub fn is_on(&self, condition: Condition) -> bool {
        Condition::ALL
            .iter()
            .position(|c| *c == condition)
            .is_some_and(|i| self.on[i])
    }
}

#[cfg(test)]
mod tests;
