//! One channel's spectrum as coded: quantisation per scalefactor band, the codebook of each
//! band, and what its spectral data costs and looks like in bits.
//!
//! Owns: [`Channel`] (the MDCT coefficients, their `|x|^(3/4)`, the quantised values, and per
//! band the scalefactor and codebook; all fixed-size arrays) and the spectral bit syntax
//! (ISO/IEC 14496-3 §4.6.3: tuple index, sign bits, codebook 11's escape).
//!
//! Quantisation (§4.6.1.3's inverse): `q = ⌊(|x|·2^(-(sf - 100)/4))^(3/4) + 0.4054⌋`, at most
//! [`MAX_QUANT`], with the sign of `x`; the decoder gives `sign(q)·|q|^(4/3)·2^((sf - 100)/4)`.
//!
//! Codebook choice: a band's largest magnitude allows the books whose largest value covers it;
//! of those the cheapest of the smallest two pairs is taken (the larger books cost more on
//! small values), [`ZERO_HCB`] when the band quantises to zero.
//!
//! Invariants: [`cost`] (the bits [`Channel::quantise_band`] reports) counts exactly what
//! [`Channel::write_band`] writes; no allocation.

use super::bands::BANDS;
use super::bits::BitWriter;
use super::tables::{Book, BOOKS, ESCAPE, MAX_QUANT, ZERO_HCB};

/// Coefficients of a long window.
pub const COEFS: usize = 1024;

/// One channel's spectrum and its coding (see the module doc).
pub struct Channel {
    /// MDCT coefficients (after the M/S transform, in an M/S band).
    pub x: [f32; COEFS],
    /// `|x|^(3/4)`.
    pub x34: [f32; COEFS],
    /// Quantised values, signed.
    pub q: [i16; COEFS],
    /// Scalefactor per band (meaningful where `book != ZERO_HCB`).
    pub sf: [u8; BANDS],
    /// Codebook per band.
    pub book: [u8; BANDS],
    /// Spectral bits per band with its book.
    pub bits: [u32; BANDS],
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            x: [0.0; COEFS],
            x34: [0.0; COEFS],
            q: [0; COEFS],
            sf: [0; BANDS],
            book: [0; BANDS],
            bits: [0; BANDS],
        }
    }
}

/// `2^(-3/16·(sf - 100))`: the step the 3/4-power values are divided by.
pub fn inverse_step(sf: u8) -> f32 {
    (-0.1875 * (f32::from(sf) - 100.0)).exp2()
}

impl Channel {
    /// Fills `x34` from `x`.
    pub fn prepare(&mut self) {
        for (y, &v) in self.x34.iter_mut().zip(&self.x) {
            *y = v.abs().powf(0.75);
        }
    }

    /// Quantises band `b` (`lo..hi`) at scalefactor `sf` and picks its codebook; returns its
    /// spectral bits, or `None` if a value had to be clipped to [`MAX_QUANT`] (the scalefactor
    /// is too small for the band).
    pub fn quantise_band(&mut self, b: usize, lo: usize, hi: usize, sf: u8) -> Option<u32> {
        let inv = inverse_step(sf);
        let mut max = 0u32;
        for i in lo..hi {
            let m = (self.x34[i] * inv + 0.4054) as u32;
            max = max.max(m);
            let m = m.min(MAX_QUANT) as i16;
            self.q[i] = if self.x[i] < 0.0 { -m } else { m };
        }
        self.sf[b] = sf;
        let (book, bits) = if max == 0 {
            (ZERO_HCB, 0)
        } else {
            // Books come in pairs with the same tuple layout (1-2, 3-4, .., 9-10): one pass
            // over the band prices both. The lowest pair that covers `max` and the next one.
            let first = first_book(max);
            let q = &self.q[lo..hi];
            let mut best = (11, u32::MAX);
            let mut n = first;
            while n <= 11 && n <= first + 2 {
                let (x, y) = pair_cost(n, q);
                for (m, c) in [(n, x), (n + 1, y)] {
                    if m <= 11 && c < best.1 {
                        best = (m, c);
                    }
                }
                n += 2;
            }
            best
        };
        self.book[b] = book;
        self.bits[b] = bits;
        (max <= MAX_QUANT).then_some(bits)
    }

    /// Writes band `lo..hi`'s spectral data with its book (nothing for [`ZERO_HCB`]).
    pub fn write_band(&self, b: usize, lo: usize, hi: usize, w: &mut BitWriter<'_>) {
        if self.book[b] == ZERO_HCB {
            return;
        }
        let book = &BOOKS[self.book[b] as usize - 1];
        for t in self.q[lo..hi].chunks_exact(book.dim) {
            write_tuple(book, t, w);
        }
    }
}

/// The lowest book that can code a largest magnitude `max` (>= 1).
fn first_book(max: u32) -> u8 {
    match max {
        1 => 1,
        2 => 3,
        3..=4 => 5,
        5..=7 => 7,
        8..=12 => 9,
        _ => 11,
    }
}

/// Index of a tuple in `book` and its sign and escape bits.
fn index(book: &Book, t: &[i16]) -> (usize, u32) {
    let m = book.modulus();
    let mut idx = 0u32;
    let mut extra = 0u32;
    for &v in t {
        let a = u32::from(v.unsigned_abs());
        let digit = if book.signed {
            (i32::from(v) + book.lav as i32) as u32
        } else {
            if a != 0 {
                extra += 1;
            }
            if book.number == 11 && a >= ESCAPE {
                extra += escape_bits(a);
                ESCAPE
            } else {
                a
            }
        };
        idx = idx * m + digit;
    }
    (idx as usize, extra)
}

/// Bits of codebook 11's escape for a magnitude >= 16: N ones, a zero, N + 4 bits.
fn escape_bits(a: u32) -> u32 {
    let n = 31 - a.leading_zeros() - 4;
    2 * n + 5
}

/// Spectral bits of `q` in book `n` and in book `n + 1` (the same layout; for `n` 11, only
/// book 11, the second figure is `u32::MAX`).
fn pair_cost(n: u8, q: &[i16]) -> (u32, u32) {
    let a = &BOOKS[n as usize - 1];
    let Some(b) = BOOKS.get(n as usize).filter(|_| n != 11) else {
        return (cost(a, q), u32::MAX);
    };
    let (mut x, mut y) = (0, 0);
    for t in q.chunks_exact(a.dim) {
        let (i, extra) = index(a, t);
        x += u32::from(a.codes[i].1) + extra;
        y += u32::from(b.codes[i].1) + extra;
    }
    (x, y)
}

/// Spectral bits of `q` (a band) in `book`.
pub fn cost(book: &Book, q: &[i16]) -> u32 {
    q.chunks_exact(book.dim)
        .map(|t| {
            let (i, extra) = index(book, t);
            u32::from(book.codes[i].1) + extra
        })
        .sum()
}

fn write_tuple(book: &Book, t: &[i16], w: &mut BitWriter<'_>) {
    let (i, _) = index(book, t);
    let (code, len) = book.codes[i];
    w.write(code, u32::from(len));
    if book.signed {
        return;
    }
    for &v in t {
        if v != 0 {
            w.write(u32::from(v < 0), 1);
        }
    }
    if book.number == 11 {
        for &v in t {
            let a = u32::from(v.unsigned_abs());
            if a >= ESCAPE {
                let n = 31 - a.leading_zeros() - 4;
                // N ones, a zero, then the N + 4 low bits.
                w.write((1 << n) - 1, n);
                w.write(0, 1);
                w.write(a - (1 << (n + 4)), n + 4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_bits_are_the_bits_written_in_every_book() {
        let q: Vec<i16> = (0..64)
            .map(|i: i32| ((i * 37 % 23) - 11) as i16 * if i % 5 == 0 { 0 } else { 1 })
            .collect();
        for book in &BOOKS {
            let clipped: Vec<i16> = q
                .iter()
                .map(|&v| {
                    let lav = if book.number == 11 {
                        8191
                    } else {
                        book.lav as i16
                    };
                    v.clamp(-lav, lav)
                })
                .collect();
            let mut buf = [0u8; 1024];
            let mut w = BitWriter::new(&mut buf);
            for t in clipped.chunks_exact(book.dim) {
                write_tuple(book, t, &mut w);
            }
            assert_eq!(
                w.bits() as u32,
                cost(book, &clipped),
                "book {}",
                book.number
            );
        }
    }

    #[test]
    fn a_pair_of_books_is_priced_as_each_alone() {
        let q: Vec<i16> = (0..32).map(|i: i16| (i * 7 % 5) - 2).collect();
        for n in [3u8, 5, 7, 9] {
            let (x, y) = pair_cost(n, &q);
            assert_eq!(x, cost(&BOOKS[n as usize - 1], &q));
            assert_eq!(y, cost(&BOOKS[n as usize], &q));
        }
        let ones: Vec<i16> = q.iter().map(|v| v.signum()).collect();
        assert_eq!(pair_cost(1, &ones).1, cost(&BOOKS[1], &ones));
        assert_eq!(pair_cost(11, &q), (cost(&BOOKS[10], &q), u32::MAX));
    }

    #[test]
    fn escapes_cover_sixteen_to_8191() {
        assert_eq!(escape_bits(16), 5);
        assert_eq!(escape_bits(31), 5);
        assert_eq!(escape_bits(32), 7);
        assert_eq!(escape_bits(8191), 2 * 8 + 5);
    }

    #[test]
    fn a_band_takes_the_cheapest_book_that_covers_it() {
        let mut c = Channel::default();
        for i in 0..8 {
            c.x[i] = if i == 3 { 1000.0 } else { 0.0 };
        }
        c.prepare();
        assert!(c.quantise_band(0, 0, 8, 100).is_some());
        assert!(c.q[3] > 100);
        assert_eq!(c.book[0], 11);
        for v in &mut c.x[..8] {
            *v = 0.0;
        }
        c.prepare();
        assert_eq!(c.quantise_band(0, 0, 8, 100), Some(0));
        assert_eq!(c.book[0], ZERO_HCB);
    }
}
