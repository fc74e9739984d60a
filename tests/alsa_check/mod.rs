//! Checks of the sound scenario a guest ran (`tests/guest/init.sh`, `alsa_scenario`), from the
//! files it left: what campush's ALSA capture read from snd-aloop while the testbed played a
//! 1 kHz tone with a click at the start of every second of samples.
//!
//! - the tone is there: 1 kHz within 0.5 %, from its zero crossings;
//! - the clicks are one second of samples apart, and one second apart by the capture
//!   timestamps too, within 20 ms (the times say when samples were captured);
//! - the timestamps are on CLOCK_MONOTONIC: increasing, consistent with the frame counts
//!   (every read's time follows from the previous read's within 20 ms), and just before the
//!   capture tool's own CLOCK_MONOTONIC reading at its end;
//! - S16 mono and S32 stereo both; no overrun; no allocation by the reads after the first;
//! - the loopback's clock set 1000 ppm slow ("PCM Rate Shift 100000" = 100100) shows in the
//!   timestamps as 1000 ppm within 150 over a 6 s capture, and the nominal 3 s runs show none
//!   within 200 ppm ([`drift_ppm`]: the loopback's pointer moves in 4 ms timer ticks, late
//!   under TCG, so over seconds that is the resolution; 100 ppm would need a minute);
//! - the card unbound under a running capture reads as gone, and once the driver is back the
//!   same name opens again and delivers.

use std::path::Path;

const RATE: f64 = 48_000.0;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| format!("<{name}: {e}>"))
}

/// `(frames, time_us)` per read.
fn times(dir: &Path, name: &str) -> Vec<(u64, u64)> {
    read(dir, &format!("{name}.times"))
        .lines()
        .filter_map(|l| {
            let (f, t) = l.split_once(' ')?;
            Some((f.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

/// The first channel's samples in [-1, 1].
fn samples(dir: &Path, name: &str, bytes: usize, channels: usize) -> Vec<f64> {
    let raw = std::fs::read(dir.join(format!("{name}.raw"))).unwrap_or_default();
    raw.chunks_exact(bytes * channels)
        .map(|frame| match bytes {
            2 => f64::from(i16::from_le_bytes([frame[0], frame[1]])) / f64::from(i16::MAX),
            _ => {
                f64::from(i32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]))
                    / f64::from(i32::MAX)
            }
        })
        .collect()
}

/// Frame indices where a click starts.
fn clicks(x: &[f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < x.len() {
        if x[i] > 0.6 {
            out.push(i);
            i += 1000;
        } else {
            i += 1;
        }
    }
    out
}

/// The tone's frequency from upward zero crossings (clicks are a few samples a second).
fn frequency(x: &[f64]) -> f64 {
    let ups = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    ups as f64 / (x.len() as f64 / RATE)
}

/// The capture time of frame `k`, from the read that holds it.
fn time_of(reads: &[(u64, u64)], k: usize) -> f64 {
    let mut start = 0u64;
    for &(frames, t) in reads {
        if (k as u64) < start + frames {
            return t as f64 + (k as u64 - start) as f64 * 1e6 / RATE;
        }
        start += frames;
    }
    f64::NAN
}

/// The drift of the capture clock against CLOCK_MONOTONIC, ppm (positive: the samples come
/// slower than nominal), from the lower envelope of the timestamps: each read's time less the
/// nominal time of the frames before it; the smallest of those in the first third of the
/// reads and in the last third, and the slope between the two. snd-aloop moves its pointer in
/// timer ticks (4 ms) and a starved TCG guest updates it late, so a timestamp can be late
/// against its samples but never early: a least-squares fit through that one-sided noise
/// leans on whichever end had the busier moment, the envelope does not.
fn drift_ppm(reads: &[(u64, u64)]) -> f64 {
    let mut cum = 0u64;
    let residuals: Vec<(f64, f64)> = reads
        .iter()
        .map(|&(f, t)| {
            let at = cum as f64;
            cum += f;
            (at, t as f64 - at * 1e6 / RATE)
        })
        .collect();
    let third = residuals.len() / 3;
    let lowest = |part: &[(f64, f64)]| {
        part.iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
    };
    let a = lowest(&residuals[..third]);
    let b = lowest(&residuals[residuals.len() - third..]);
    (b.1 - a.1) / ((b.0 - a.0) * 1e6 / RATE) * 1e6
}

/// Checks one capture; returns its measured drift (ppm).
fn check_capture(dir: &Path, name: &str, bytes: usize, channels: usize, log: &str) -> f64 {
    let summary = read(
        dir,
        &format!("alsa-capture-{}.log", name.trim_start_matches("alsa-")),
    );
    assert!(
        summary.contains(&format!("channels: {channels}")) && summary.contains("overruns=0 "),
        "{name}: {summary}\n{log}"
    );
    assert!(
        summary.contains("allocs_after_first_read=0 "),
        "{name}: the reads allocate: {summary}"
    );
    let reads = times(dir, name);
    assert!(reads.len() > 50, "{name}: {} reads\n{summary}", reads.len());
    let x = samples(dir, name, bytes, channels);
    let total: u64 = reads.iter().map(|r| r.0).sum();
    assert_eq!(x.len() as u64, total, "{name}: samples and reads disagree");

    let f = frequency(&x);
    assert!(
        (f - 1000.0).abs() < 5.0,
        "{name}: tone at {f:.1} Hz, not 1 kHz"
    );

    let c = clicks(&x);
    assert!(c.len() >= 2, "{name}: clicks at {c:?}");
    for w in c.windows(2) {
        assert_eq!(
            w[1] - w[0],
            RATE as usize,
            "{name}: clicks at {c:?}: samples lost"
        );
    }
    let ct: Vec<f64> = c.iter().map(|&k| time_of(&reads, k)).collect();
    for (i, w) in ct.windows(2).enumerate() {
        let gap_ms = (w[1] - w[0]) / 1e3;
        assert!(
            (gap_ms - 1000.0).abs() <= 20.0 + 1000.0 * 1.2e-3,
            "{name}: click {i} to {}: {gap_ms:.1} ms apart by the capture times",
            i + 1
        );
    }

    for (i, w) in reads.windows(2).enumerate() {
        let expected = w[0].0 as f64 * 1e6 / RATE;
        let got = w[1].1 as f64 - w[0].1 as f64;
        assert!(
            (got - expected).abs() < 20_000.0,
            "{name}: read {i}: {} frames, the next read's time {:.1} ms later",
            w[0].0,
            got / 1e3
        );
    }
    let now_us: u64 = summary
        .split("now_us=")
        .nth(1)
        .and_then(|s| s.trim().parse().ok())
        .expect("now_us in the summary");
    let last = reads.last().unwrap();
    let end = last.1 + last.0 * 1_000_000 / RATE as u64;
    assert!(
        end <= now_us + 20_000 && now_us - end < 500_000,
        "{name}: the last samples end at {end} µs, CLOCK_MONOTONIC read {now_us} µs after"
    );
    let ppm = drift_ppm(&reads);
    eprintln!(
        "{name}: {} reads, {total} frames, tone {f:.1} Hz, clicks {:?} ms apart, drift {ppm:+.0} ppm",
        reads.len(),
        ct.windows(2)
            .map(|w| ((w[1] - w[0]) / 1e3).round())
            .collect::<Vec<_>>()
    );
    ppm
}

/// Every check above, on a guest's share.
pub fn verify(share: &Path, log: &str) {
    let probe = read(share, "probe.txt");
    assert!(
        probe.contains("use: [audio] source = \"alsa:hw:Loopback,1\""),
        "probe lacks the loopback's capture side:\n{probe}"
    );
    assert!(
        probe.contains("card 0 id \"Loopback\""),
        "probe lacks the card:\n{probe}"
    );
    for play in ["S16_LE-1", "S32_LE-2", "drift"] {
        let p = read(share, &format!("alsa-play-{play}.log"));
        assert!(p.contains(" 0 underruns"), "player {play}: {p}");
    }
    let ppm = check_capture(share, "alsa-S16_LE-1", 2, 1, log);
    assert!(ppm.abs() < 200.0, "nominal S16 mono: {ppm:+.0} ppm");
    let ppm = check_capture(share, "alsa-S32_LE-2", 4, 2, log);
    assert!(ppm.abs() < 200.0, "nominal S32 stereo: {ppm:+.0} ppm");

    let shift = read(share, "alsa-rate-shift.log");
    assert!(shift.contains("device 1 substream 0 = 100100"), "{shift}");
    let ppm = check_capture(share, "alsa-drift", 2, 1, log);
    assert!(
        (ppm - 1000.0).abs() < 150.0,
        "the loopback 1000 ppm off: the capture times say {ppm:+.0} ppm"
    );

    let unplug = read(share, "alsa-capture-unplug.log");
    for needle in ["alsa-capture: gone after", "alsa-capture: reopened after"] {
        assert!(
            unplug.contains(needle),
            "unplug: lacks {needle:?}:\n{unplug}\n{log}"
        );
    }
    let after: u64 = unplug
        .split("alsa-capture: read ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        after >= RATE as u64,
        "a second of samples after the reopen, not {after}:\n{unplug}"
    );
    let rmmod = read(share, "alsa-rmmod.log");
    eprintln!("rmmod with a PCM open: {}", rmmod.trim());
}
