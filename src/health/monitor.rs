//! The health monitor: a thread that samples the board every few seconds, logs each condition
//! when it starts and when it clears, and hands every sample to whoever publishes it (the
//! shared status).
//!
//! Owns: the sampling thread and its stop. A thread of its own rather than a task on the
//! runtime: `/proc/net/wireless` asks the Wi-Fi driver for the station's signal (a firmware
//! round trip on brcmfmac) under the kernel's RTNL lock, and that wait must not hold up the
//! publishers. The first sample is taken by [`Monitor::start`] itself, so the health is known
//! before anything connects (a certificate refused at the first connect can say whether the
//! clock was synchronised). Both log lines of a condition are warnings, so that
//! `journalctl -p warning` shows the end of a problem as well as its start.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::sampler::Sampler;
use super::{Conditions, Health};

/// How often the board is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// The running monitor; [`Monitor::stop`] ends it.
pub struct Monitor {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Monitor {
    /// Takes a first sample now, then one every `every` on a thread of its own; each goes to
    /// `publish`. `None` (and a warning) if the thread cannot be started: streaming goes on
    /// without health.
    pub fn start(
        mut sampler: Sampler,
        every: Duration,
        mut publish: impl FnMut(Health) + Send + 'static,
    ) -> Option<Monitor> {
        log::debug!("board health sources: {}", sampler.describe());
        let mut conditions = Conditions::default();
        let mut take = move || {
            let health = sampler.sample();
            for change in conditions.update(&health) {
                log::warn!("{}", change.message(&health));
            }
            publish(health);
        };
        take();
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("health".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => take(),
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            });
        match thread {
            Ok(thread) => Some(Monitor { stop, thread }),
            Err(e) => {
                log::warn!("board health: cannot start its thread: {e}; not monitoring the board");
                None
            }
        }
    }

    /// Stops the thread and waits for it (at most one sample's time).
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
