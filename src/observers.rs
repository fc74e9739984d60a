//! The status observers around a run: the LED ([`crate::led`]), systemd notifications
//! ([`crate::notify`]) and the reporter (log summary, JSON status file and Prometheus file,
//! [`run_reporter`]), started and stopped together with the board health monitor that feeds
//! them ([`crate::health::monitor`]); and how a configuration error is shown.
//!
//! Owns: their lifetime. They observe the [`SharedStatus`] and nothing else; [`start`] spawns them
//! on the runtime, [`Observers::finish`] reports `Stopped`, lets them show it (LED off, `STOPPING=1`)
//! and stops them, which gives the LED back (a sysfs LED gets its original trigger again). The
//! health monitor samples the board below the system root (`CAMPUSH_ROOT` in tests) on a thread
//! of its own and hands each sample to the shared status; its first sample is taken before the
//! run starts.
//!
//! A configuration error ([`config_error`]) is for a person: on a terminal campush says what is
//! wrong and exits 78 at once. Under systemd there may be nobody with a screen: campush holds the
//! double-blink pattern on the LED and tells systemd (`READY=1`, `STATUS=configuration error: ...`
//! for `systemctl status`) until it is stopped, then exits 78. The unit's
//! `RestartPreventExitStatus=78` keeps systemd from restarting a file that cannot work: fix the
//! file, then `systemctl restart campush` (or reboot).

use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::config::{system_root, ConfigError};
use crate::exit;
use crate::health::monitor::{Monitor, SAMPLE_EVERY};
use crate::health::sampler::{Live, Sampler};
use crate::led::{self, LedConfig};
use crate::notify::{self, Notifier};
use crate::status::{run_reporter, ErrorKind, ReportSettings, SharedStatus, Status};

/// The running observers.
pub struct Observers {
    status: SharedStatus,
    tasks: Vec<JoinHandle<()>>,
    health: Option<Monitor>,
}

/// Opens the LED (a missing or unusable LED is logged, never fatal) and starts the observers.
pub fn start(
    runtime: &Runtime,
    led_config: &LedConfig,
    report: &ReportSettings,
    status: &SharedStatus,
) -> Observers {
    let health = {
        let status = status.clone();
        let sampler = Sampler::new(&system_root(), Box::new(Live::default()));
        Monitor::start(sampler, SAMPLE_EVERY, move |h| status.set_health(h))
    };
    let mut tasks = vec![runtime.spawn(run_reporter(status.clone(), report.clone()))];
    if let Some(led) = open_led(led_config) {
        tasks.push(runtime.spawn(led::run_led(led, status.subscribe())));
    }
    tasks.push(runtime.spawn(notify::run_notifier(status.clone())));
    Observers {
        status: status.clone(),
        tasks,
        health,
    }
}

fn open_led(config: &LedConfig) -> Option<Box<dyn led::Led>> {
    match led::open(config, &system_root()) {
        Ok(led) => {
            log::info!("status LED: {}", led.describe());
            Some(led)
        }
        // The default (the onboard ACT LED) is absent on most machines that are not a Pi.
        Err(e) if *config == LedConfig::default() => {
            log::debug!("no status LED: {e}");
            None
        }
        Err(e) => {
            log::warn!("status LED: {e}; running without it");
            None
        }
    }
}

impl Observers {
    /// Reports `Stopped`, gives the observers a moment to show it, then stops them.
    pub fn finish(self, runtime: &Runtime) {
        self.status.set(Status::Stopped);
        runtime.block_on(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            for task in &self.tasks {
                task.abort();
            }
            for task in self.tasks {
                let _ = task.await;
            }
        });
        if let Some(health) = self.health {
            health.stop();
        }
    }
}

/// Logs a configuration error and shows it (see the module doc); returns the exit code, 78.
pub fn config_error(error: &ConfigError, led_config: &LedConfig) -> u8 {
    let text = error.to_string();
    // One log line per line: under the journal each gets its priority prefix.
    for line in text.lines() {
        log::error!("{line}");
    }
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return exit::CONFIG;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return exit::CONFIG,
    };
    log::error!(
        "showing the configuration error on the status LED (double blink) until stopped; \
         fix the file, then restart campush"
    );
    let status = SharedStatus::new();
    status.set(Status::Error(ErrorKind::Config));
    let led_task =
        open_led(led_config).map(|led| runtime.spawn(led::run_led(led, status.subscribe())));
    // One line for `systemctl status` (a newline would end the STATUS= field), no excerpt.
    let reason = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ");
    runtime.block_on(hold_until_stopped(&reason));
    drop(status); // the LED task sees the shared status go, turns the LED off and gives it back
    if let Some(task) = led_task {
        runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        });
    }
    exit::CONFIG
}

/// Tells systemd we are up and why we do nothing, feeds its watchdog, and waits for a signal.
async fn hold_until_stopped(reason: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    let notifier = match Notifier::from_env() {
        Some(Ok(n)) => Some(n),
        _ => None,
    };
    let send = |message: &str| {
        if let Some(n) = &notifier {
            let _ = n.notify(message);
        }
    };
    send(&format!("READY=1\nSTATUS=configuration error: {reason}"));
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let period = notify::watchdog_from_env().map_or(Duration::from_secs(3600), |w| w / 2);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tokio::time::sleep(period) => send("WATCHDOG=1"),
        }
    }
    send("STOPPING=1");
}
