//! A request to stop, from the thread that owns a loop to the loop itself.
//!
//! Owns: [`Stop`], one flag shared by the supervisor (which raises it when a pipeline ends: a
//! stop, a reload to another source, the end of the run) and the loops of the source thread
//! (ingest, and every retry or backoff of a source). Invariants: once raised it stays raised;
//! every wait of a source loop is cut into slices of at most [`SLICE`] with a look at the flag
//! between them ([`Stop::sleep`]), so a loop that retries forever still ends within about
//! [`SLICE`] of the request (plus whatever stopping its child takes, which is bounded).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a waiting loop goes without looking at the flag.
pub const SLICE: Duration = Duration::from_millis(50);

/// A stop request, shared. Cheap to clone; usable from any thread. Starts lowered.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every loop holding this flag to end.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sleeps `d` in slices of at most [`SLICE`]; `false` (early) if a stop was requested before
    /// or during the sleep.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.requested() {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_runs_its_course_when_nobody_asks_to_stop() {
        let stop = Stop::new();
        let t = Instant::now();
        assert!(stop.sleep(Duration::from_millis(120)));
        assert!(t.elapsed() >= Duration::from_millis(120));
    }

    #[test]
    fn a_request_from_another_thread_cuts_a_long_sleep_short() {
        let stop = Stop::new();
        let asker = stop.clone();
        let t = Instant::now();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            asker.request();
        });
        assert!(!stop.sleep(Duration::from_secs(30)));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        thread.join().unwrap();
        assert!(stop.requested(), "a request stays");
        assert!(!stop.sleep(Duration::from_secs(30)));
    }
}
