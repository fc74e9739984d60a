//! The signal shell: the process's signals turned into [`Control`] requests.
//!
//! SIGTERM and SIGINT ask for a stop, SIGHUP for a reload. A second stop signal exits at once
//! (exit 0), without waiting for the destinations to unpublish: whoever sends it has already
//! waited once. The handlers are installed for the whole life of the process, across pipeline
//! restarts, so no signal is lost between two pipelines (it waits in its stream).

use tokio::runtime::Runtime;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;

use super::Control;
use crate::exit;

/// Installs the handlers and starts forwarding signals to `control` on `runtime`.
pub(super) fn forward_signals(
    runtime: &Runtime,
    control: Control,
) -> std::io::Result<JoinHandle<()>> {
    let _context = runtime.enter();
    let signals = Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
        hup: signal(SignalKind::hangup())?,
    };
    Ok(runtime.spawn(signals.forward(control)))
}

/// The process's signal streams.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    async fn forward(mut self, control: Control) {
        let mut stop_signals = 0u32;
        loop {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.int.recv() => {}
                _ = self.hup.recv() => {
                    control.reload();
                    continue;
                }
            }
            stop_signals += 1;
            if stop_signals > 1 {
                log::warn!("second signal: exiting now");
                std::process::exit(exit::OK.into());
            }
            control.stop();
        }
    }
}
