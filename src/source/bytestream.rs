//! Turns any `Read` of an H.264 Annex B byte stream into access units, with one read buffer
//! allocated at start-up.
//!
//! Owns: the read buffer and the access-unit splitter (`h264::split`). Used by the camera app's
//! pipe (`rpicam`) and the V4L2 test bed; the file and stdin sources read straight into the pool
//! slots instead (`into_slot`), which spares the copy of each unit out of this buffer.
//!
//! Invariants: the unconsumed bytes are `buf[start..end]`, and `buf[start]` is the first byte of
//! the access unit being assembled, which is what the splitter expects. The buffer is compacted
//! when it fills up and grows (logged, up to [`MAX_ACCESS_UNIT`]) only when one access unit does
//! not fit; a longer run without an access-unit boundary is an error, not an allocation spiral.

use std::io::Read;

use super::SourceError;
use crate::h264::{AccessUnitSplitter, Split};

/// No H.264 access unit is this large (level 6.2 allows ~ 10 MB frames at the extreme).
pub const MAX_ACCESS_UNIT: usize = 16 * 1024 * 1024;

pub struct ByteStream<R> {
    reader: R,
    what: String,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    splitter: AccessUnitSplitter,
    skipped: u64,
    units: u64,
}

impl<R: Read> ByteStream<R> {
    /// `what` names the input in errors ("file clip.h264", "stdin").
    pub fn new(reader: R, what: String, capacity: usize) -> Self {
        ByteStream {
            reader,
            what,
            buf: vec![0; capacity.max(4096)],
            start: 0,
            end: 0,
            eof: false,
            splitter: AccessUnitSplitter::new(),
            skipped: 0,
            units: 0,
        }
    }

    /// Starts over with a new reader (a looping file), keeping the buffer.
    pub fn reset(&mut self, reader: R) {
        self.reader = reader;
        self.clear();
    }

    /// Starts over with the same reader (which now reads a new stream: a restarted producer),
    /// dropping whatever was buffered of the old one.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.eof = false;
        self.splitter = AccessUnitSplitter::new();
    }

    /// The reader, for a caller that manages what it reads from.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// The reader, for a caller that manages what it reads from.
    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next access unit, borrowed from the read buffer; `None` at end of input.
    pub fn next_unit(&mut self) -> Result<Option<&[u8]>, SourceError> {
        loop {
            match self
                .splitter
                .next(&self.buf[self.start..self.end], self.eof)
            {
                Split::AccessUnit(n) => {
                    let unit = self.start..self.start + n;
                    self.start += n;
                    self.units += 1;
                    return Ok(Some(&self.buf[unit]));
                }
                Split::Skip(n) => {
                    self.start += n;
                    self.skipped += n as u64;
                }
                Split::NeedMore if self.eof => {
                    if self.units == 0 && self.skipped > 0 {
                        return Err(SourceError::NotAnnexB {
                            what: self.what.clone(),
                        });
                    }
                    return Ok(None);
                }
                Split::NeedMore => self.fill()?,
            }
        }
    }

    /// Bytes that belonged to no access unit.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Access units returned since creation (across resets).
    pub fn units(&self) -> u64 {
        self.units
    }

    fn fill(&mut self) -> Result<(), SourceError> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < MAX_ACCESS_UNIT {
                let grown = (self.buf.len() * 2).min(MAX_ACCESS_UNIT);
                log::info!(
                    "{}: read buffer grew from {} to {} bytes for a large access unit",
                    self.what,
                    self.buf.len(),
                    grown
                );
                self.buf.resize(grown, 0);
            } else {
                return Err(SourceError::AccessUnitTooLarge {
                    what: self.what.clone(),
                    limit: MAX_ACCESS_UNIT,
                });
            }
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SourceError::Read {
                        what: self.what.clone(),
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its data a few bytes at a time, like a pipe.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn picture(idr: bool, first_mb_zero: bool) -> Vec<u8> {
        let header = if idr { 0x65 } else { 0x41 };
        let first = if first_mb_zero { 0x88 } else { 0x40 };
        vec![0, 0, 0, 1, header, first, 0x84, 0x21]
    }

    fn sps_pps() -> Vec<u8> {
        let mut v = vec![
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x80,
        ];
        v.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        v
    }

    fn collect(stream: &[u8], step: usize, capacity: usize) -> Vec<Vec<u8>> {
        let mut bs = ByteStream::new(Trickle(stream, step), "test".into(), capacity);
        let mut units = Vec::new();
        while let Some(u) = bs.next_unit().unwrap() {
            units.push(u.to_vec());
        }
        units
    }

    #[test]
    fn yields_the_same_units_whatever_the_read_size() {
        let mut stream = sps_pps();
        stream.extend(picture(true, true));
        for _ in 0..5 {
            stream.extend(picture(false, true));
        }
        let whole = collect(&stream, usize::MAX, 1 << 16);
        assert_eq!(whole.len(), 6);
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(collect(&stream, step, 4096), whole, "read size {step}");
        }
    }

    #[test]
    fn grows_the_buffer_for_a_unit_larger_than_it() {
        let mut stream = sps_pps();
        let mut big = picture(true, true);
        big.extend(std::iter::repeat_n(0x5a, 20_000));
        stream.extend(&big);
        stream.extend(picture(false, true));
        let units = collect(&stream, 1000, 4096);
        assert_eq!(units.len(), 2);
        assert!(units[0].len() > 20_000);
    }

    #[test]
    fn input_without_start_codes_is_not_annex_b() {
        let junk = vec![0x47u8; 10_000];
        let mut bs = ByteStream::new(&junk[..], "junk".into(), 4096);
        assert!(matches!(bs.next_unit(), Err(SourceError::NotAnnexB { .. })));
    }

    #[test]
    fn empty_input_is_a_clean_end() {
        let mut bs = ByteStream::new(&[][..], "empty".into(), 4096);
        assert!(bs.next_unit().unwrap().is_none());
    }
}
