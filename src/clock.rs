//! The one clock every stage reads: `CLOCK_MONOTONIC`, in microseconds.
//!
//! Owns: the time base of the data path. V4L2 drivers stamp buffers on `CLOCK_MONOTONIC`, so the
//! file and stdin sources, the camera and encoder paths and the publisher (reconnect jitter, the
//! session's random seed) all read the same clock, and their timestamps compare directly.
//!
//! Invariants: never goes backwards; never allocates; a plain system call, usable on any thread.
//! Deadlines of the async shells use `tokio::time::Instant` instead, so tests can pause them.

/// Now on `CLOCK_MONOTONIC`, in microseconds.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`): the one date conversion for log lines, segment names and certificates.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let a = monotonic_us();
        let b = monotonic_us();
        assert!(b >= a);
    }

    #[test]
    fn monotonic_clock_advances_in_microseconds() {
        let a = monotonic_us();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let elapsed = monotonic_us() - a;
        assert!((5_000..5_000_000).contains(&elapsed), "{elapsed} µs");
    }
}
