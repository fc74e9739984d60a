//! The supervisor: campush's life from a checked configuration to an exit code.
//!
//! Owns: the pipelines (one life of the source each: pool, queues, ingest thread, and one
//! publisher per destination, see `pipeline`), the answers to stop and reload requests, and the
//! mapping from what ended the run to the process's exit code (sysexits, [`crate::exit`]).
//!
//! ```text
//!  config ─► open source ─► ingest thread ─► publishers, generation 1, 2, ... ─► exit code
//!                ▲                                 │ reload, same source: next generation
//!                └─────────────────────────────────┘ reload, another source: a new pipeline
//! ```
//!
//! Requests arrive through a [`Control`]. [`run`], the process shell, feeds it from the signals
//! (SIGTERM/SIGINT: stop, SIGHUP: reload; see `signals`); tests hold one and call it directly.
//! - stop: every destination unpublishes and closes (bounded), the source stops, exit 0;
//! - reload: the configuration is read again. Invalid: logged, and the run goes on unchanged.
//!   Same source ([`Config::same_source`]): the current destinations finish cleanly and the new
//!   ones start while the source keeps running. Another source: the pipeline starts over;
//! - end of input: every destination finishes sending what it has, exit 0;
//! - failure: the first error picks the exit code ([`source_exit_code`], [`ingest_exit_code`],
//!   [`publish_exit_code`]).
//!
//! The observers of the status (LED, systemd, log summary and status file) live as long as the
//! process, across pipeline restarts; [`run`] starts them around the [`Supervisor`], which itself
//! drives no LED, talks to no systemd and installs no signal handler, so a test can run it
//! in-process.

mod audio;
mod pipeline;
mod signals;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use tokio::runtime::Runtime;
use tokio::sync::Notify;

pub use self::audio::MicOwner;
use self::pipeline::{run_pipeline, Next};
use self::signals::forward_signals;
use crate::config::{Config, ConfigError};
use crate::exit;
use crate::ingest::IngestError;
use crate::observers;
use crate::publisher::PublishError;
use crate::source::SourceError;
use crate::status::{ErrorKind, SharedStatus};

/// Reads the configuration again, for a reload.
pub type Reload = Box<dyn FnMut() -> Result<Config, ConfigError> + Send>;

/// Runs campush as a process: a runtime, the signal shell, the status observers, and the
/// [`Supervisor`]. Returns the exit code. `reload` reads the configuration again on SIGHUP.
pub fn run(
    config: Config,
    reload: impl FnMut() -> Result<Config, ConfigError> + Send + 'static,
) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return exit::SOFTWARE;
        }
    };
    let (led, report) = (config.led.clone(), config.report.clone());
    let supervisor = Supervisor::new(config, reload);
    // Signals are watched for the whole life of the process, across pipeline restarts.
    if let Err(e) = forward_signals(&runtime, supervisor.control()) {
        log::error!("cannot install signal handlers: {e}");
        return exit::SOFTWARE;
    }
    let observers = observers::start(&runtime, &led, &report, supervisor.status());
    let code = supervisor.run(&runtime);
    observers.finish(&runtime);
    code
}

/// Runs pipelines, one after another, until one ends the run.
pub struct Supervisor {
    config: Config,
    reload: Reload,
    status: SharedStatus,
    control: Control,
    /// The microphone, kept across pipelines.
    mic: MicOwner,
}

impl Supervisor {
    /// A supervisor that will start with `config`; `reload` reads the configuration again when a
    /// reload is requested.
    pub fn new(
        config: Config,
        reload: impl FnMut() -> Result<Config, ConfigError> + Send + 'static,
    ) -> Supervisor {
        Supervisor {
            config,
            reload: Box::new(reload),
            status: SharedStatus::new(),
            control: Control::default(),
            mic: MicOwner::default(),
        }
    }

    /// The handle that asks this supervisor to stop or reload.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// The status the stages report into, for observers.
    pub fn status(&self) -> &SharedStatus {
        &self.status
    }

    /// Runs until the input ends, a stop is requested, or something fails for good; the
    /// publishers run on `runtime` (current thread), the source on a thread of its own. Returns
    /// the exit code.
    pub fn run(mut self, runtime: &Runtime) -> u8 {
        let mut config = self.config;
        loop {
            match run_pipeline(
                runtime,
                config,
                &self.status,
                &self.control,
                &mut self.reload,
                &mut self.mic,
            ) {
                Next::Exit(code) => return code,
                Next::Restart(new) => {
                    log::info!("reloaded: the source changed, restarting it");
                    config = *new;
                }
            }
        }
    }
}

/// Asks a [`Supervisor`] to stop or to reload. Cheap to clone; usable from any thread.
///
/// Requests that arrive while the supervisor cannot act on them wait, and repeats of a waiting
/// request count once (as signals do): a reload asked for during a reload runs after it, a stop
/// asked for between two pipelines stops the next one.
#[derive(Clone, Default)]
pub struct Control(Arc<Requests>);

#[derive(Default)]
struct Requests {
    stop: Notify,
    reload: Notify,
}

impl Control {
    /// Asks for a clean stop: every destination unpublishes and closes, then the run ends with
    /// exit code 0.
    pub fn stop(&self) {
        self.0.stop.notify_one();
    }

    /// Asks for the configuration to be read again and applied.
    pub fn reload(&self) {
        self.0.reload.notify_one();
    }

    async fn stop_requested(&self) {
        self.0.stop.notified().await
    }

    async fn reload_requested(&self) {
        self.0.reload.notified().await
    }
}

/// The exit code for a source that cannot be opened or read.
pub fn source_exit_code(e: &SourceError) -> u8 {
    match e {
        // Lost: only a source that was asked to hand back control returns it, and `auto` never
        // lets it out; should one escape, the device is missing.
        SourceError::Open { .. } | SourceError::Lost(_) => exit::NO_INPUT,
        SourceError::Read { .. } => exit::IO,
        SourceError::AccessUnitTooLarge { .. } | SourceError::NotAnnexB { .. } => exit::DATA,
        SourceError::Unsupported(_) | SourceError::Device(_) => exit::CONFIG,
    }
}

/// The exit code for an input the ingest stage cannot use.
pub fn ingest_exit_code(e: &IngestError) -> u8 {
    match e {
        IngestError::Source(e) => source_exit_code(e),
        IngestError::NoParameterSets(_) => exit::DATA,
    }
}

/// The exit code for a destination that gave up.
pub fn publish_exit_code(e: &PublishError) -> u8 {
    if let PublishError::Transport(t) = e {
        if t.is_certificate() {
            return exit::CERTIFICATE;
        }
    }
    match e.kind() {
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::Config => exit::CONFIG,
        ErrorKind::Network | ErrorKind::Source | ErrorKind::Storage => exit::UNAVAILABLE,
    }
}
