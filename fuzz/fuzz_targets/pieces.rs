//! Piece sizes from a control byte, for handing a target its input the way short reads would:
//! a xorshift sequence, each size in `1..=control + 1`. Shared by the fuzz targets (included
//! with `#[path]`; not a target itself).

pub struct Pieces {
    state: u64,
    max: usize,
}

impl Pieces {
    /// `seed` keeps each target's sequence its own; `control` bounds the sizes.
    pub fn new(seed: u64, control: u8) -> Self {
        Pieces {
            state: seed ^ u64::from(control),
            max: usize::from(control) + 1,
        }
    }

    pub fn next(&mut self) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        1 + (x % self.max as u64) as usize
    }
}
