//! The bit writer: MSB-first bits into a caller-owned byte buffer, as AAC's bitstream is
//! written (ISO/IEC 14496-3 §1.4: most significant bit first).
//!
//! Owns: [`BitWriter`]. It never allocates and never writes past its buffer: a write that does
//! not fit sets the overflow flag ([`BitWriter::overflowed`]) and is dropped, so the frame
//! writer checks once at the end instead of at every call.
//!
//! Invariants: `bits() <= 8 * buffer length` whatever is written; bits past the last whole byte
//! are zero until written.

/// Writes bits, most significant first, into `buf` (see the module doc).
pub struct BitWriter<'a> {
    buf: &'a mut [u8],
    /// Bits written.
    pos: usize,
    overflow: bool,
}

impl<'a> BitWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> BitWriter<'a> {
        BitWriter {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    /// Writes the low `n` bits of `value` (`n` <= 32).
    pub fn write(&mut self, value: u32, n: u32) {
        debug_assert!(n <= 32);
        if n == 0 {
            return;
        }
        if self.overflow || self.pos + n as usize > self.buf.len() * 8 {
            self.overflow = true;
            return;
        }
        let value = if n == 32 {
            value
        } else {
            value & ((1u32 << n) - 1)
        };
        let mut left = n;
        while left > 0 {
            let byte = self.pos / 8;
            let used = (self.pos % 8) as u32;
            let room = 8 - used;
            let take = room.min(left);
            let chunk = (value >> (left - take)) & ((1u32 << take) - 1);
            if used == 0 {
                self.buf[byte] = 0;
            }
            self.buf[byte] |= (chunk << (room - take)) as u8;
            self.pos += take as usize;
            left -= take;
        }
    }

    /// Writes zero bits up to the next byte boundary.
    pub fn align(&mut self) {
        let pad = (8 - self.pos % 8) % 8;
        self.write(0, pad as u32);
    }

    /// Bits written so far.
    pub fn bits(&self) -> usize {
        self.pos
    }

    /// Whole bytes written (after [`BitWriter::align`], all of them).
    pub fn bytes(&self) -> usize {
        self.pos.div_ceil(8)
    }

    /// Whether a write did not fit (and was dropped).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_go_most_significant_first_across_bytes() {
        let mut buf = [0xffu8; 4];
        let mut w = BitWriter::new(&mut buf);
        w.write(0b101, 3);
        w.write(0x1234, 16);
        w.write(1, 1);
        w.align();
        assert_eq!(w.bits(), 24);
        assert_eq!(w.bytes(), 3);
        assert!(!w.overflowed());
        // 101 0001 0010 0011 0100 1 0000
        assert_eq!(&buf[..3], &[0b1010_0010, 0b0100_0110, 0b1001_0000]);
    }

    #[test]
    fn thirty_two_bits_at_an_odd_position() {
        let mut buf = [0u8; 5];
        let mut w = BitWriter::new(&mut buf);
        w.write(0, 4);
        w.write(0xdead_beef, 32);
        w.align();
        assert_eq!(buf, [0x0d, 0xea, 0xdb, 0xee, 0xf0]);
    }

    #[test]
    fn a_write_past_the_buffer_is_dropped_and_flagged() {
        let mut buf = [0u8; 2];
        let mut w = BitWriter::new(&mut buf);
        w.write(0xff, 8);
        w.write(0x1ff, 9);
        assert!(w.overflowed());
        assert_eq!(w.bits(), 8);
        w.write(1, 1);
        assert_eq!(w.bits(), 8, "nothing is written after an overflow");
        assert_eq!(buf, [0xff, 0]);
    }
}
