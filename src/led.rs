//! The status LED: one light that tells a person without a screen what campush is doing.
//!
//! Owns: the mapping from [`Status`] to a blink [`Pattern`], the pattern timing, and the LED
//! backends. The LED is an *observer* of the [`crate::status::SharedStatus`]: [`run_led`] is the
//! only code that ever writes to it, driven by nothing but the status value; no stage touches
//! GPIO or sysfs (DESIGN.md §4).
//!
//! | pattern                          | meaning                                              |
//! |----------------------------------|------------------------------------------------------|
//! | off                              | stopped (or not running)                             |
//! | slow blink (0.5 s on, 0.5 s off) | starting / connecting / reconnecting after an outage |
//! | solid                            | streaming                                            |
//! | fast blink (0.1 s on, 0.1 s off) | no camera: waiting for the source, or it failed      |
//! | double blink, pause (1.5 s)      | refused by the server, or configuration error        |
//!
//! Backends:
//! - [`SysfsLed`]: an LED class device, `/sys/class/leds/ACT` (older kernels: `led0`) for the
//!   Pi's onboard activity LED. Opening it saves the current trigger (`mmc0`, `actpwr`, ...) and
//!   writes `none`; dropping it writes the saved trigger back, so the LED returns to its usual job
//!   when campush exits cleanly.
//! - [`GpioLed`]: an LED on a GPIO line through the Linux GPIO character device (uAPI v2), by
//!   chip + offset or by line name (`GPIO17`), optionally active-low.
//! - `none`: no LED.
//!
//! Why the GPIO character device (the `gpiocdev` crate) and not `rppal`: rppal drives the Pi's
//! GPIO registers through `/dev/gpiomem`, knows only Raspberry Pi SoCs, and is in maintenance
//! mode; the character device is the kernel's supported interface on every board (Pi 5's RP1
//! included, and the `generic-arm64` boards), needs no root when `/dev/gpiochip*` belongs to the
//! `gpio` group, releases the line when the process dies, and lets us find a line by its name,
//! which survives chip renumbering (GPIO17 moved from gpiochip0 to gpiochip4 and back across Pi 5
//! kernels). gpiocdev is pure Rust (libc ioctls only, no libgpiod), so the static build stays
//! static.
//!
//! Settings: `[led]` ([`RawLed`] → [`LedConfig::check`]); a board profile's `[led]` stands in
//! for a file without one (`config`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::setting::Invalid;
use crate::status::{ErrorKind, Status};

/// Which LED to drive (checked configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedConfig {
    /// No LED.
    None,
    /// An LED class device under `/sys/class/leds`. `name: None` means the Pi's onboard activity
    /// LED: `ACT`, else `led0`; when neither exists campush runs without an LED, quietly.
    Sysfs {
        name: Option<String>,
        /// Brightness 0 lights the LED (the Pi 5's ACT LED on some kernels).
        active_low: bool,
    },
    /// A GPIO line through the GPIO character device.
    Gpio {
        /// `gpiochip0`, `/dev/gpiochip0`, `0`, or a chip label (`pinctrl-rp1`). `None`: offsets
        /// are on `gpiochip0`; names are searched on every chip.
        chip: Option<String>,
        line: GpioLine,
        /// The LED is lit when the line is low.
        active_low: bool,
    },
}

impl Default for LedConfig {
    fn default() -> Self {
        LedConfig::Sysfs {
            name: None,
            active_low: false,
        }
    }
}

impl fmt::Display for LedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let low = |a: bool| if a { ", active low" } else { "" };
        match self {
            LedConfig::None => f.write_str("none"),
            LedConfig::Sysfs { name, active_low } => write!(
                f,
                "sysfs {}{}",
                name.as_deref().unwrap_or("ACT (else led0)"),
                low(*active_low)
            ),
            LedConfig::Gpio {
                chip,
                line,
                active_low,
            } => {
                write!(f, "gpio {line}")?;
                if let Some(chip) = chip {
                    write!(f, " on {chip}")?;
                }
                f.write_str(low(*active_low))
            }
        }
    }
}

/// A GPIO line: by offset on a chip, or by name (`GPIO17`) on any chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpioLine {
    Offset(u32),
    Name(String),
}

impl fmt::Display for GpioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpioLine::Offset(o) => write!(f, "line {o}"),
            GpioLine::Name(n) => write!(f, "{n}"),
        }
    }
}

/// `[led]` of the configuration file (or of a board profile), as written.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLed {
    /// Default: `gpio` when `line` is set, else `sysfs`.
    pub backend: Option<LedBackend>,
    /// sysfs: the LED under /sys/class/leds (default `ACT`, else `led0`).
    pub name: Option<String>,
    /// gpio: the chip (`gpiochip0`, a path, a number or a label).
    pub chip: Option<String>,
    /// gpio: a line name (`"GPIO17"`) or an offset on `chip`.
    pub line: Option<RawLine>,
    pub active_low: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    Gpio,
    Sysfs,
    None,
}

/// A GPIO line as written: a name in quotes or an offset number.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLine(pub GpioLine);

impl<'de> Deserialize<'de> for RawLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a line name like \"GPIO17\" or a line offset number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawLine, E> {
                u32::try_from(v)
                    .map(|o| RawLine(GpioLine::Offset(o)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawLine, E> {
                u32::try_from(v)
                    .map(|o| RawLine(GpioLine::Offset(o)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawLine, E> {
                if v.trim().is_empty() {
                    return Err(E::invalid_value(serde::de::Unexpected::Str(v), &self));
                }
                Ok(RawLine(GpioLine::Name(v.trim().to_owned())))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl LedConfig {
    /// Checks `[led]`: the backend (from `line`/`chip` when not given) and the keys that apply
    /// to it.
    pub fn check(led: &RawLed) -> Result<LedConfig, Invalid> {
        let gpio_key = if led.line.is_some() {
            Some("line")
        } else if led.chip.is_some() {
            Some("chip")
        } else {
            None
        };
        let backend = led.backend.unwrap_or(if gpio_key.is_some() {
            LedBackend::Gpio
        } else {
            LedBackend::Sysfs
        });
        let active_low = led.active_low.unwrap_or(false);
        Ok(match backend {
            LedBackend::None => LedConfig::None,
            LedBackend::Sysfs => {
                if let Some(key) = gpio_key {
                    return Err(Invalid::new(
                        key,
                        "applies to backend = \"gpio\", not \"sysfs\"",
                    ));
                }
                if let Some(name) = &led.name {
                    if name.is_empty() || name.contains('/') || name.starts_with('.') {
                        return Err(Invalid::new(
                            "name",
                            format!("{name:?}: expected the name of an LED in /sys/class/leds, like \"ACT\""),
                        ));
                    }
                }
                LedConfig::Sysfs {
                    name: led.name.clone(),
                    active_low,
                }
            }
            LedBackend::Gpio => {
                if led.name.is_some() {
                    return Err(Invalid::new(
                        "name",
                        "applies to backend = \"sysfs\"; a GPIO LED is chosen by line (and chip)",
                    ));
                }
                let Some(RawLine(line)) = &led.line else {
                    return Err(Invalid::new(
                        "line",
                        "missing: backend = \"gpio\" needs line = \"GPIO17\" (a line name) or an offset number",
                    ));
                };
                LedConfig::Gpio {
                    chip: led.chip.clone(),
                    line: line.clone(),
                    active_low,
                }
            }
        })
    }
}

/// A blink pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Off,
    Solid,
    SlowBlink,
    FastBlink,
    DoubleBlink,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Pattern {
    /// The pattern that shows `status`. The only place that decides what the LED means.
    pub fn for_status(status: Status) -> Pattern {
        match status {
            Status::Stopped => Pattern::Off,
            Status::Starting | Status::Connecting | Status::Error(ErrorKind::Network) => {
                Pattern::SlowBlink
            }
            Status::Streaming => Pattern::Solid,
            Status::WaitingForSource | Status::Error(ErrorKind::Source) => Pattern::FastBlink,
            // A person has to act: a wrong key, a wrong setting, a full or missing disk.
            Status::Error(ErrorKind::Refused | ErrorKind::Config | ErrorKind::Storage) => {
                Pattern::DoubleBlink
            }
        }
    }

    /// One cycle of the pattern: (lit, how long). A single step is held until the status changes.
    pub fn steps(self) -> &'static [(bool, Duration)] {
        const OFF: &[(bool, Duration)] = &[(false, Duration::MAX)];
        const SOLID: &[(bool, Duration)] = &[(true, Duration::MAX)];
        const SLOW: &[(bool, Duration)] = &[(true, ms(500)), (false, ms(500))];
        const FAST: &[(bool, Duration)] = &[(true, ms(100)), (false, ms(100))];
        const DOUBLE: &[(bool, Duration)] = &[
            (true, ms(150)),
            (false, ms(150)),
            (true, ms(150)),
            (false, ms(1050)),
        ];
        match self {
            Pattern::Off => OFF,
            Pattern::Solid => SOLID,
            Pattern::SlowBlink => SLOW,
            Pattern::FastBlink => FAST,
            Pattern::DoubleBlink => DOUBLE,
        }
    }
}

/// Something that can be lit or not.
pub trait Led: Send {
    fn set(&mut self, lit: bool) -> io::Result<()>;
    /// For the log: which LED this is.
    fn describe(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum LedError {
    #[error("no LED {0}")]
    NotFound(String),
    #[error("{path}: {source}{hint}", hint = permission_hint(source))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("GPIO: {0}")]
    Gpio(String),
}

fn permission_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::PermissionDenied {
        " (the systemd unit makes the LED files writable for campush; elsewhere run as root)"
    } else {
        ""
    }
}

/// Opens the configured LED. `root` is `/` except in tests (the sysfs tree is looked up below it).
pub fn open(config: &LedConfig, root: &Path) -> Result<Box<dyn Led>, LedError> {
    Ok(match config {
        LedConfig::None => Box::new(NoLed),
        LedConfig::Sysfs { name, active_low } => Box::new(SysfsLed::open(
            &root.join("sys/class/leds"),
            name.as_deref(),
            *active_low,
        )?),
        LedConfig::Gpio {
            chip,
            line,
            active_low,
        } => Box::new(GpioLed::open(chip.as_deref(), line, *active_low)?),
    })
}

/// The `none` backend.
pub struct NoLed;

impl Led for NoLed {
    fn set(&mut self, _lit: bool) -> io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "none".into()
    }
}

/// An LED class device: `/sys/class/leds/NAME/{trigger,brightness,max_brightness}`.
pub struct SysfsLed {
    dir: PathBuf,
    lit: String,
    active_low: bool,
    /// The trigger that was active before campush took the LED (restored on drop).
    original_trigger: String,
    original_brightness: Option<String>,
}

impl SysfsLed {
    /// Takes the LED `name` under `leds_dir`, or with no name the first of `ACT`, `led0`.
    pub fn open(leds_dir: &Path, name: Option<&str>, active_low: bool) -> Result<Self, LedError> {
        let candidates: &[&str] = match name {
            Some(n) => &[n][..],
            None => &["ACT", "led0"],
        };
        let Some(dir) = candidates
            .iter()
            .map(|n| leds_dir.join(n))
            .find(|d| d.join("brightness").exists())
        else {
            return Err(LedError::NotFound(format!(
                "{} under {}",
                candidates.join(" or "),
                leds_dir.display()
            )));
        };
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(|source| LedError::Io { path, source })
        };
        // `trigger` lists every trigger with the active one in brackets: "none [mmc0] timer".
        let triggers = read("trigger")?;
        let original_trigger = active_trigger(&triggers).to_owned();
        let original_brightness = read("brightness").ok().map(|b| b.trim().to_owned());
        let lit = read("max_brightness")
            .ok()
            .map(|m| m.trim().to_owned())
            .filter(|m| m.parse::<u32>().is_ok_and(|v| v > 0))
            .unwrap_or_else(|| "1".into());
        let led = SysfsLed {
            dir,
            lit,
            active_low,
            original_trigger,
            original_brightness,
        };
        led.write("trigger", "none")?;
        Ok(led)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), LedError> {
        let path = self.dir.join(file);
        std::fs::write(&path, value).map_err(|source| LedError::Io { path, source })
    }
}

/// The bracketed entry of a sysfs `trigger` listing; a bare single word is taken as is.
fn active_trigger(listing: &str) -> &str {
    listing
        .split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .unwrap_or_else(|| listing.split_whitespace().next().unwrap_or("none"))
}

impl Led for SysfsLed {
    fn set(&mut self, lit: bool) -> io::Result<()> {
        let value = if lit != self.active_low {
            self.lit.as_str()
        } else {
            "0"
        };
        std::fs::write(self.dir.join("brightness"), value)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

impl Drop for SysfsLed {
    /// Gives the LED back: the original trigger, or with none the original brightness.
    fn drop(&mut self) {
        let restored = if self.original_trigger == "none" {
            match &self.original_brightness {
                Some(b) => self.write("brightness", b),
                None => Ok(()),
            }
        } else {
            self.write("trigger", &self.original_trigger)
        };
        if let Err(e) = restored {
            log::warn!("status LED: cannot restore it: {e}");
        }
    }
}

/// An LED on a GPIO line, held as an output through the GPIO character device.
pub struct GpioLed {
    request: gpiocdev::Request,
    offset: u32,
    description: String,
}

impl GpioLed {
    pub fn open(chip: Option<&str>, line: &GpioLine, active_low: bool) -> Result<Self, LedError> {
        let gpio = |e: gpiocdev::Error| LedError::Gpio(e.to_string());
        let (chip_path, offset) = match (chip, line) {
            (None, GpioLine::Name(name)) => {
                let found = gpiocdev::find_named_line(name)
                    .ok_or_else(|| LedError::NotFound(format!("GPIO line named {name:?}")))?;
                (found.chip, found.info.offset)
            }
            (Some(chip), GpioLine::Name(name)) => {
                let path = chip_path(chip)?;
                let chip = gpiocdev::Chip::from_path(&path).map_err(gpio)?;
                let info = chip.find_line_info(name).ok_or_else(|| {
                    LedError::NotFound(format!("GPIO line named {name:?} on {}", path.display()))
                })?;
                (path, info.offset)
            }
            (chip, GpioLine::Offset(offset)) => (chip_path(chip.unwrap_or("gpiochip0"))?, *offset),
        };
        let mut builder = gpiocdev::Request::builder();
        builder
            .on_chip(&chip_path)
            .with_consumer("campush")
            .with_line(offset)
            .as_output(gpiocdev::line::Value::Inactive);
        if active_low {
            builder.as_active_low();
        }
        let request = builder.request().map_err(gpio)?;
        Ok(GpioLed {
            request,
            offset,
            description: format!(
                "{} line {offset}{}",
                chip_path.display(),
                if active_low { " (active low)" } else { "" }
            ),
        })
    }
}

/// `/dev/gpiochip0`, `gpiochip0`, `0`, or a chip label such as `pinctrl-rp1`.
fn chip_path(chip: &str) -> Result<PathBuf, LedError> {
    if chip.contains('/') {
        return Ok(chip.into());
    }
    if chip.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(format!("/dev/gpiochip{chip}").into());
    }
    let by_name = Path::new("/dev").join(chip);
    if by_name.exists() {
        return Ok(by_name);
    }
    for path in gpiocdev::chip::chips().unwrap_or_default() {
        let label = gpiocdev::Chip::from_path(&path)
            .and_then(|c| c.info())
            .map(|i| i.label);
        if label.is_ok_and(|l| l == chip) {
            return Ok(path);
        }
    }
    Err(LedError::NotFound(format!("GPIO chip {chip:?}")))
}

impl Led for GpioLed {
    fn set(&mut self, lit: bool) -> io::Result<()> {
        let value = if lit {
            gpiocdev::line::Value::Active
        } else {
            gpiocdev::line::Value::Inactive
        };
        self.request
            .set_value(self.offset, value)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

impl Drop for GpioLed {
    fn drop(&mut self) {
        // Dark when we leave; closing the request then releases the line.
        let _ = self.set(false);
    }
}

/// Writes only on a change, and gives up on an LED that fails (one warning, not one per blink).
struct Driver {
    led: Box<dyn Led>,
    lit: Option<bool>,
    broken: bool,
}

impl Driver {
    fn set(&mut self, lit: bool) {
        if self.broken || self.lit == Some(lit) {
            return;
        }
        match self.led.set(lit) {
            Ok(()) => self.lit = Some(lit),
            Err(e) => {
                log::warn!(
                    "status LED {}: {e}; no LED from now on",
                    self.led.describe()
                );
                self.broken = true;
            }
        }
    }
}

/// Drives `led` from the status until the shared status is gone, then turns it off and drops it
/// (which restores a sysfs LED's trigger). Changes of status that keep the pattern (connecting →
/// network error) do not restart its rhythm.
pub async fn run_led(led: Box<dyn Led>, mut rx: watch::Receiver<Status>) {
    let mut driver = Driver {
        led,
        lit: None,
        broken: false,
    };
    let mut pattern = Pattern::for_status(*rx.borrow_and_update());
    let mut step = 0;
    driver.set(pattern.steps()[0].0);
    let mut deadline = Instant::now().checked_add(pattern.steps()[0].1);
    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = Pattern::for_status(*rx.borrow_and_update());
                if new != pattern {
                    pattern = new;
                    step = 0;
                    driver.set(pattern.steps()[0].0);
                    deadline = Instant::now().checked_add(pattern.steps()[0].1);
                }
            }
            _ = sleep_until(deadline) => {
                let steps = pattern.steps();
                step = (step + 1) % steps.len();
                driver.set(steps[step].0);
                // From the previous deadline, not from now: the rhythm does not drift.
                deadline = deadline.and_then(|d| d.checked_add(steps[step].1));
            }
        }
    }
    driver.set(false);
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::SharedStatus;
    use std::sync::{Arc, Mutex};

    /// Records every write with the (paused) time it happened at.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(Duration, bool)>>>);

    struct FakeLed {
        start: Instant,
        log: Recorder,
    }

    impl Led for FakeLed {
        fn set(&mut self, lit: bool) -> io::Result<()> {
            self.log.0.lock().unwrap().push((self.start.elapsed(), lit));
            Ok(())
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    fn spawn_fake(status: &SharedStatus) -> (Recorder, tokio::task::JoinHandle<()>) {
        let log = Recorder::default();
        let led = FakeLed {
            start: Instant::now(),
            log: log.clone(),
        };
        let task = tokio::spawn(run_led(Box::new(led), status.subscribe()));
        (log, task)
    }

    fn writes(log: &Recorder) -> Vec<(u64, bool)> {
        log.0
            .lock()
            .unwrap()
            .iter()
            .map(|(t, lit)| (t.as_millis() as u64, *lit))
            .collect()
    }

    #[test]
    fn every_status_has_the_documented_pattern() {
        use ErrorKind::*;
        for (status, pattern) in [
            (Status::Stopped, Pattern::Off),
            (Status::Starting, Pattern::SlowBlink),
            (Status::Connecting, Pattern::SlowBlink),
            (Status::Error(Network), Pattern::SlowBlink),
            (Status::Streaming, Pattern::Solid),
            (Status::WaitingForSource, Pattern::FastBlink),
            (Status::Error(Source), Pattern::FastBlink),
            (Status::Error(Refused), Pattern::DoubleBlink),
            (Status::Error(Config), Pattern::DoubleBlink),
        ] {
            assert_eq!(Pattern::for_status(status), pattern, "{status}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_blink_toggles_every_half_second_while_connecting() {
        let status = SharedStatus::new();
        status.set(Status::Connecting);
        let (log, _task) = spawn_fake(&status);
        tokio::time::sleep(ms(2100)).await;
        assert_eq!(
            writes(&log),
            [
                (0, true),
                (500, false),
                (1000, true),
                (1500, false),
                (2000, true)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn double_blink_repeats_every_one_and_a_half_seconds() {
        let status = SharedStatus::new();
        status.set(Status::Error(ErrorKind::Refused));
        let (log, _task) = spawn_fake(&status);
        tokio::time::sleep(ms(3100)).await;
        assert_eq!(
            writes(&log),
            [
                (0, true),
                (150, false),
                (300, true),
                (450, false),
                (1500, true),
                (1650, false),
                (1800, true),
                (1950, false),
                (3000, true),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fast_blink_means_no_camera() {
        let status = SharedStatus::new();
        status.set(Status::WaitingForSource);
        let (log, _task) = spawn_fake(&status);
        tokio::time::sleep(ms(450)).await;
        assert_eq!(
            writes(&log),
            [
                (0, true),
                (100, false),
                (200, true),
                (300, false),
                (400, true)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streaming_is_solid_and_written_once() {
        let status = SharedStatus::new();
        status.set(Status::Connecting);
        let (log, _task) = spawn_fake(&status);
        tokio::time::sleep(ms(700)).await; // lit at 0, dark at 500
        status.set(Status::Streaming);
        tokio::time::sleep(ms(60_000)).await;
        assert_eq!(writes(&log), [(0, true), (500, false), (700, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_status_change_with_the_same_pattern_keeps_the_rhythm() {
        let status = SharedStatus::new();
        status.set(Status::Connecting);
        let (log, _task) = spawn_fake(&status);
        tokio::time::sleep(ms(300)).await;
        status.set(Status::Error(ErrorKind::Network));
        tokio::time::sleep(ms(800)).await;
        assert_eq!(writes(&log), [(0, true), (500, false), (1000, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn stopped_turns_the_led_off_and_a_closed_board_ends_the_task() {
        let status = SharedStatus::new();
        status.set(Status::Streaming);
        let (log, task) = spawn_fake(&status);
        tokio::time::sleep(ms(100)).await;
        status.set(Status::Stopped);
        tokio::time::sleep(ms(100)).await;
        drop(status);
        tokio::time::timeout(ms(1000), task).await.unwrap().unwrap();
        assert_eq!(writes(&log), [(0, true), (100, false)]);
    }

    /// A fake `/sys/class/leds` with an LED as the Pi's firmware leaves it.
    fn sysfs_tree(name: &str, trigger: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("sys/class/leds").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("trigger"), trigger).unwrap();
        std::fs::write(dir.join("brightness"), "0\n").unwrap();
        std::fs::write(dir.join("max_brightness"), "255\n").unwrap();
        root
    }

    fn read(root: &Path, name: &str, file: &str) -> String {
        std::fs::read_to_string(root.join("sys/class/leds").join(name).join(file)).unwrap()
    }

    #[test]
    fn sysfs_takes_act_sets_trigger_none_and_restores_the_original_on_drop() {
        let root = sysfs_tree(
            "ACT",
            "none rc-feedback kbd-numlock [mmc0] timer heartbeat\n",
        );
        let mut led = open(&LedConfig::default(), root.path()).unwrap();
        assert_eq!(read(root.path(), "ACT", "trigger"), "none");
        led.set(true).unwrap();
        assert_eq!(read(root.path(), "ACT", "brightness"), "255");
        led.set(false).unwrap();
        assert_eq!(read(root.path(), "ACT", "brightness"), "0");
        drop(led);
        assert_eq!(read(root.path(), "ACT", "trigger"), "mmc0");
    }

    #[test]
    fn sysfs_falls_back_to_led0_on_older_kernels() {
        let root = sysfs_tree("led0", "none [actpwr] mmc0\n");
        let led = open(&LedConfig::default(), root.path()).unwrap();
        assert!(led.describe().ends_with("led0"), "{}", led.describe());
        drop(led);
        assert_eq!(read(root.path(), "led0", "trigger"), "actpwr");
    }

    #[test]
    fn sysfs_active_low_inverts_the_brightness() {
        let root = sysfs_tree("ACT", "[none] mmc0\n");
        let config = LedConfig::Sysfs {
            name: Some("ACT".into()),
            active_low: true,
        };
        let mut led = open(&config, root.path()).unwrap();
        led.set(true).unwrap();
        assert_eq!(read(root.path(), "ACT", "brightness"), "0");
        led.set(false).unwrap();
        assert_eq!(read(root.path(), "ACT", "brightness"), "255");
        drop(led);
        // The original trigger was "none": the original brightness comes back instead.
        assert_eq!(read(root.path(), "ACT", "brightness"), "0");
    }

    #[test]
    fn a_missing_sysfs_led_is_named() {
        let root = tempfile::tempdir().unwrap();
        let err = open(&LedConfig::default(), root.path())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ACT or led0"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn run_led_drives_a_sysfs_led_and_gives_it_back() {
        let root = sysfs_tree("ACT", "none [mmc0]\n");
        let status = SharedStatus::new();
        status.set(Status::Streaming);
        let led = open(&LedConfig::default(), root.path()).unwrap();
        let task = tokio::spawn(run_led(led, status.subscribe()));
        tokio::time::sleep(ms(10)).await;
        assert_eq!(read(root.path(), "ACT", "brightness"), "255");
        drop(status);
        tokio::time::timeout(ms(1000), task).await.unwrap().unwrap();
        assert_eq!(read(root.path(), "ACT", "brightness"), "0");
        assert_eq!(read(root.path(), "ACT", "trigger"), "mmc0");
    }

    #[test]
    fn a_missing_gpio_line_is_named() {
        // No GPIO chip carries this name (there may be no chip at all on a build machine).
        let err = open(
            &LedConfig::Gpio {
                chip: None,
                line: GpioLine::Name("CAMPUSH_NO_SUCH_LINE".into()),
                active_low: false,
            },
            Path::new("/"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("CAMPUSH_NO_SUCH_LINE"), "{err}");
    }
}
