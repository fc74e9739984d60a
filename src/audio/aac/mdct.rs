//! The forward MDCT of AAC-LC long blocks: 2048 windowed samples → 1024 coefficients.
//!
//! Owns: [`Mdct`]: the sine window (`window_shape` 0), the fold to a DCT-IV, and the DCT-IV
//! through a 512-point complex FFT (radix 2) with pre- and post-twiddles; all tables and the
//! work buffer are allocated once, in [`Mdct::new`].
//!
//! Definition (ISO/IEC 14496-3 §4.6.11.3.2's inverse, with `N = 2048`, `n0 = (N/2 + 1)/2`):
//! `X[k] = 2·Σ_n w[n]·x[n]·cos(2π/N·(n + n0)(k + 1/2))`; with this scale the standard's IMDCT
//! (factor `2/N`), windowed and overlap-added, gives the input back (checked against ffmpeg's
//! decoder in `super::tests`).
//!
//! Long blocks only (`ONLY_LONG_SEQUENCE`): the cost is on transients. Quantisation noise
//! spreads over the whole 2048-sample window (43 ms at 48 kHz), so the noise of a click or a
//! plosive is heard up to about 20 ms before it (pre-echo); an encoder with short windows
//! switches to eight 256-sample transforms there. At these bit rates on speech the loss is
//! small; on castanets-like material it is audible.
//!
//! Invariants: no allocation after `new`; `forward` reads exactly 2048 samples and writes
//! exactly 1024 coefficients.

use std::f64::consts::PI;

/// Samples in a window.
pub const N: usize = 2048;
/// Coefficients out.
pub const M: usize = N / 2;
/// Complex FFT size.
const F: usize = M / 2;

/// A forward MDCT with its tables (see the module doc).
pub struct Mdct {
    window: Box<[f32]>,
    /// DCT-IV pre-twiddle `exp(-iπn/M)` and post-twiddle `exp(-iπ(4k+1)/(4M))`, as (re, im).
    pre: Box<[(f32, f32)]>,
    post: Box<[(f32, f32)]>,
    /// FFT twiddles `exp(-2πik/F)`, k < F/2.
    roots: Box<[(f32, f32)]>,
    bitrev: Box<[u16]>,
    /// The folded sequence (M) and the FFT's work (F complex).
    fold: Box<[f32]>,
    work: Box<[(f32, f32)]>,
}

impl Default for Mdct {
    fn default() -> Self {
        Mdct::new()
    }
}

impl Mdct {
    pub fn new() -> Mdct {
        let cis = |a: f64| (a.cos() as f32, a.sin() as f32);
        let bits = F.trailing_zeros();
        Mdct {
            window: (0..N)
                .map(|n| ((PI / N as f64) * (n as f64 + 0.5)).sin() as f32)
                .collect(),
            pre: (0..F).map(|n| cis(-PI * n as f64 / M as f64)).collect(),
            post: (0..F)
                .map(|k| cis(-PI * (4 * k + 1) as f64 / (4 * M) as f64))
                .collect(),
            roots: (0..F / 2)
                .map(|k| cis(-2.0 * PI * k as f64 / F as f64))
                .collect(),
            bitrev: (0..F)
                .map(|i| ((i as u32).reverse_bits() >> (32 - bits)) as u16)
                .collect(),
            fold: vec![0.0; M].into_boxed_slice(),
            work: vec![(0.0, 0.0); F].into_boxed_slice(),
        }
    }

    /// The MDCT of `input` (2048 samples, windowed here) into `out` (1024 coefficients).
    pub fn forward(&mut self, input: &[f32], out: &mut [f32]) {
        assert!(input.len() == N && out.len() == M);
        let w = &self.window;
        let z = |n: usize| input[n] * w[n];
        // Fold (a, b, c, d) → (-c_r - d, a - b_r): the DCT-IV of it is the MDCT.
        let h = M / 2;
        for n in 0..h {
            self.fold[n] = -z(3 * h - 1 - n) - z(3 * h + n);
            self.fold[h + n] = z(n) - z(M - 1 - n);
        }
        // DCT-IV: c[n] = u[2n] + i·u[M-1-2n], pre-twiddled, FFT, post-twiddled.
        for n in 0..F {
            let (re, im) = (self.fold[2 * n], self.fold[M - 1 - 2 * n]);
            let (c, s) = self.pre[n];
            self.work[self.bitrev[n] as usize] = (re * c - im * s, re * s + im * c);
        }
        self.fft();
        for k in 0..F {
            let (re, im) = self.work[k];
            let (c, s) = self.post[k];
            out[2 * k] = 2.0 * (re * c - im * s);
            out[M - 1 - 2 * k] = -2.0 * (re * s + im * c);
        }
    }

    /// In-place radix-2 decimation-in-time FFT of `work` (already in bit-reversed order).
    fn fft(&mut self) {
        let mut len = 2;
        while len <= F {
            let half = len / 2;
            let step = F / len;
            for start in (0..F).step_by(len) {
                for j in 0..half {
                    let (c, s) = self.roots[j * step];
                    let (br, bi) = self.work[start + j + half];
                    let t = (br * c - bi * s, br * s + bi * c);
                    let a = self.work[start + j];
                    self.work[start + j] = (a.0 + t.0, a.1 + t.1);
                    self.work[start + j + half] = (a.0 - t.0, a.1 - t.1);
                }
            }
            len *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_direct_formula() {
        let input: Vec<f32> = (0..N)
            .map(|n| {
                let t = n as f64;
                ((0.013 * t).sin() * 0.5
                    + (0.41 * t).cos() * 0.3
                    + ((n * 7919) % 101) as f64 / 400.0) as f32
            })
            .collect();
        let mut m = Mdct::new();
        let mut out = vec![0.0; M];
        m.forward(&input, &mut out);
        let n0 = (N as f64 / 2.0 + 1.0) / 2.0;
        let mut worst: f64 = 0.0;
        let mut peak: f64 = 0.0;
        for (k, &got) in out.iter().enumerate() {
            let direct: f64 = (0..N)
                .map(|n| {
                    let w = 2.0 * (PI / N as f64 * (n as f64 + 0.5)).sin(); // the 2 of the definition
                    w * f64::from(input[n])
                        * (2.0 * PI / N as f64 * (n as f64 + n0) * (k as f64 + 0.5)).cos()
                })
                .sum();
            worst = worst.max((direct - f64::from(got)).abs());
            peak = peak.max(direct.abs());
        }
        assert!(worst < 1e-4 * peak, "worst error {worst}, peak {peak}");
    }
}
