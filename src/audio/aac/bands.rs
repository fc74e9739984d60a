//! Scalefactor bands of long windows at 44.1 and 48 kHz, the only rates campush encodes
//! ([`crate::audio::AudioFormat::new`]).
//!
//! Owns: [`LONG_44_48`], the offsets of ISO/IEC 14496-3 Table 4.129 (`swb_offset_long_window`
//! for sampling frequency indices 3 and 4: both rates share it), and [`offsets`].
//!
//! Invariants: offsets strictly increase from 0 to 1024; every band's width is a multiple of 4
//! (so 4-tuple codebooks tile it); 49 bands (`max_sfb` fits its 6 bits).

/// Band `b` covers coefficients `LONG_44_48[b]..LONG_44_48[b + 1]`.
pub const LONG_44_48: [u16; 50] = [
    0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 48, 56, 64, 72, 80, 88, 96, 108, 120, 132, 144, 160,
    176, 196, 216, 240, 264, 292, 320, 352, 384, 416, 448, 480, 512, 544, 576, 608, 640, 672, 704,
    736, 768, 800, 832, 864, 896, 928, 1024,
];

/// Number of scalefactor bands of a long window at 44.1 and 48 kHz.
pub const BANDS: usize = LONG_44_48.len() - 1;

/// The band offsets for `rate` (44100 or 48000; other rates are refused by `AudioFormat`).
pub fn offsets(rate: u32) -> &'static [u16; 50] {
    debug_assert!(matches!(rate, 44_100 | 48_000), "{rate} Hz");
    &LONG_44_48
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_tile_the_frame_in_multiples_of_four() {
        assert_eq!(LONG_44_48[0], 0);
        assert_eq!(LONG_44_48[BANDS], 1024);
        assert_eq!(BANDS, 49);
        for w in LONG_44_48.windows(2) {
            assert!(w[1] > w[0] && (w[1] - w[0]) % 4 == 0, "{w:?}");
        }
    }
}
