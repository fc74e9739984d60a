//! Reads an H.264 Annex B byte stream straight into the pool slots its access units travel in:
//! no staging buffer, no user-space copy of the payload. Used by the file and stdin sources.
//!
//! Owns: the access-unit splitter (`h264::split`) run over the slot being filled, the carry
//! (what was read past the end of the last access unit: the beginning of the next), and the size
//! of each read.
//!
//! Per access unit ([`SlotStream::next_unit`]):
//! 1. the slot and the carry swap buffers (no copy): the slot now holds [`FRONT_ROOM`] bytes and
//!    the beginning of its unit, the carry an empty buffer of a slot's capacity;
//! 2. reads append to the slot's free capacity (the kernel's copy is the only one) until the
//!    splitter, which runs over the slot, finds where the unit ends;
//! 3. the bytes after that end (the tail of the last read) are copied into the carry, and the
//!    slot is cut at the end of its unit. That small copy is all the user space copies.
//!
//! The size of a read follows the stream: the running mean of the unit size, between
//! [`MIN_READ`] and [`MAX_READ`], so that a unit takes about one read and the tail copied is
//! about half a unit. The tail is still in the cache and costs far less than a system call and
//! the page cache's per-read work (reads of half a unit, a quarter copied, cost about 2 ms more
//! per 1800 frames of 1080p at 5 Mbit/s; reads of two units, no less). A pipe returns what it
//! holds anyway.
//!
//! Invariants: the carry always starts with [`FRONT_ROOM`] bytes; what the splitter sees is the
//! slot after its room, which only grows at the back until a prefix it reported is dropped (its
//! contract). The slot grows only through [`FrameMut::reserve`] (logged), for a unit larger than
//! its capacity, up to [`MAX_ACCESS_UNIT`]. No allocation per unit.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use super::bytestream::MAX_ACCESS_UNIT;
use super::SourceError;
use crate::h264::{AccessUnitSplitter, Split};
use crate::pool::{FrameMut, FRONT_ROOM};

/// The smallest read (a unit of a few hundred bytes still takes one call for several units).
pub const MIN_READ: usize = 4 * 1024;
/// The largest read.
pub const MAX_READ: usize = 256 * 1024;

/// Something to read the byte stream from, into the free capacity of a buffer.
pub trait Input {
    /// Appends at most `max` bytes (`max` > 0, and no more than `buf`'s spare capacity) to
    /// `buf`; `Ok(0)` at the end of the input.
    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize>;
}

/// A file descriptor (a file, a pipe, stdin), read with `read(2)` straight into the buffer's
/// spare capacity: nothing is zeroed first, nothing is buffered on the way.
pub struct Fd<T>(pub T);

impl<T: AsFd> Input for Fd<T> {
    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        let n = spare.len().min(max);
        // SAFETY: `spare` is `n` or more bytes of memory that `buf` owns and nothing else
        // borrows; read(2) writes at most `n` bytes into it and reads none of it.
        let got = unsafe {
            libc::read(
                self.0.as_fd().as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::c_void>(),
                n,
            )
        };
        let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
        let len = buf.len() + got.min(n);
        // SAFETY: the kernel initialised the first `got` (<= `n`) bytes of the spare capacity.
        unsafe { buf.set_len(len) };
        Ok(got)
    }
}

/// Any `Read` (tests, readers without a descriptor): the room is zeroed, read into, and cut to
/// what came.
pub struct Reader<R>(pub R);

impl<R: Read> Input for Reader<R> {
    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let len = buf.len();
        let n = (buf.capacity() - len).min(max);
        buf.resize(len + n, 0);
        let got = self.0.read(buf.get_mut(len..).unwrap_or_default());
        buf.truncate(len + *got.as_ref().unwrap_or(&0));
        got
    }
}

pub struct SlotStream<I> {
    input: I,
    what: String,
    /// [`FRONT_ROOM`] bytes, then what was read past the last unit.
    carry: Vec<u8>,
    eof: bool,
    splitter: AccessUnitSplitter,
    /// Running mean of the unit size, bytes (decides the read size).
    mean_unit: usize,
    skipped: u64,
    units: u64,
}

impl<I: Input> SlotStream<I> {
    /// `what` names the input in errors ("file clip.h264", "stdin"); `capacity` is a slot's
    /// (the carry trades buffers with the slots).
    pub fn new(input: I, what: String, capacity: usize) -> Self {
        let mut carry = Vec::with_capacity(capacity.max(FRONT_ROOM + MAX_READ));
        carry.resize(FRONT_ROOM, 0);
        SlotStream {
            input,
            what,
            carry,
            eof: false,
            splitter: AccessUnitSplitter::new(),
            mean_unit: 64 * 1024,
            skipped: 0,
            units: 0,
        }
    }

    /// Starts over with a new input (a looping file), dropping what was read of the old one.
    pub fn reset(&mut self, input: I) {
        self.input = input;
        self.carry.truncate(FRONT_ROOM);
        self.eof = false;
        self.splitter = AccessUnitSplitter::new();
    }

    /// Fills `frame` with [`FRONT_ROOM`] bytes and the next access unit; `false` at the end of
    /// the input (the slot then holds nothing after its room).
    pub fn next_unit(&mut self, frame: &mut FrameMut) -> Result<bool, SourceError> {
        {
            let mut bytes = frame.bytes();
            std::mem::swap(&mut *bytes, &mut self.carry);
            self.carry.clear();
            self.carry.resize(FRONT_ROOM, 0);
        }
        loop {
            let mut bytes = frame.bytes();
            let unread = bytes.get(FRONT_ROOM..).unwrap_or_default();
            match self.splitter.next(unread, self.eof) {
                Split::AccessUnit(n) => {
                    let end = FRONT_ROOM + n;
                    self.carry
                        .extend_from_slice(bytes.get(end..).unwrap_or_default());
                    bytes.truncate(end);
                    self.units += 1;
                    self.mean_unit = self.mean_unit - self.mean_unit / 8 + n / 8;
                    return Ok(true);
                }
                Split::Skip(n) => {
                    let garbage = FRONT_ROOM..(FRONT_ROOM + n).min(bytes.len());
                    bytes.drain(garbage);
                    self.skipped += n as u64;
                }
                Split::NeedMore if self.eof => {
                    bytes.truncate(FRONT_ROOM);
                    if self.units == 0 && self.skipped > 0 {
                        return Err(SourceError::NotAnnexB {
                            what: self.what.clone(),
                        });
                    }
                    return Ok(false);
                }
                Split::NeedMore => {
                    drop(bytes);
                    self.fill(frame)?;
                }
            }
        }
    }

    /// After a unit: where its NAL units begin, counted from its first byte
    /// ([`Source::nal_starts`](super::Source::nal_starts)).
    pub fn nal_starts(&self) -> Option<&[u32]> {
        self.splitter.unit_starts()
    }

    /// Bytes that belonged to no access unit.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Access units returned since creation (across resets).
    pub fn units(&self) -> u64 {
        self.units
    }

    /// The next read's size.
    fn read_size(&self) -> usize {
        self.mean_unit.clamp(MIN_READ, MAX_READ)
    }

    /// Reads once into the slot's free capacity, growing the slot (the pool's one place) when
    /// it is full.
    fn fill(&mut self, frame: &mut FrameMut) -> Result<(), SourceError> {
        let want = self.read_size();
        let (len, spare) = {
            let bytes = frame.bytes();
            (bytes.len(), bytes.capacity() - bytes.len())
        };
        if spare < MIN_READ.min(want) {
            if len - FRONT_ROOM >= MAX_ACCESS_UNIT {
                return Err(SourceError::AccessUnitTooLarge {
                    what: self.what.clone(),
                    limit: MAX_ACCESS_UNIT,
                });
            }
            frame.reserve(want);
        }
        loop {
            match self.input.read_into(&mut frame.bytes(), want) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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
    use std::io::Write;

    use super::*;
    use crate::h264::nal::find_start_code;
    use crate::h264::test_support::{annexb, slice, XorShift};
    use crate::pool::Pool;
    use crate::source::bytestream::ByteStream;

    /// A reader that hands out its data in pieces of the sizes `sizes` gives, like a pipe.
    struct Pieces<'a, F>(&'a [u8], F);
    impl<F: FnMut() -> usize> Read for Pieces<'_, F> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min((self.1)().max(1)).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1f, 0xd9, 0x00, 0x50, 0x05, 0xbb, 0x01, 0x10,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    const IDR: u8 = 0x65;
    const P: u8 = 0x41;

    /// A slice of `len` payload bytes (no zero bytes in it).
    fn big_slice(header: u8, len: usize) -> Vec<u8> {
        let mut s = slice(header, 0, 0);
        s.extend((0..len).map(|i| (i % 251 + 1) as u8));
        s
    }

    /// Pictures with 4-byte start codes, some with 3-byte ones, of varied sizes.
    fn stream(pictures: usize, max_len: usize, seed: u64) -> Vec<u8> {
        let mut rng = XorShift(seed);
        let mut out = annexb(&[SPS, PPS]);
        for i in 0..pictures {
            let unit = big_slice(
                if i % 10 == 0 { IDR } else { P },
                rng.below(max_len as u64) as usize,
            );
            if rng.below(3) == 0 {
                out.extend_from_slice(&[0, 0, 1]);
                out.extend_from_slice(&unit);
            } else {
                out.extend(annexb(&[&unit]));
            }
        }
        out
    }

    /// The access units of the old path: read into a staging buffer, copied out.
    fn old_path(input: &[u8]) -> Vec<Vec<u8>> {
        let mut bs = ByteStream::new(input, "old".into(), 4096);
        let mut units = Vec::new();
        while let Some(u) = bs.next_unit().unwrap() {
            units.push(u.to_vec());
        }
        units
    }

    /// The access units read into slots of a pool of `capacity`-byte slots from `input`.
    fn new_path<I: Input>(input: I, capacity: usize) -> Result<Vec<Vec<u8>>, SourceError> {
        let pool = Pool::new(2, capacity);
        let mut stream = SlotStream::new(input, "new".into(), capacity);
        let mut units = Vec::new();
        for _ in 0..100_000 {
            let mut slot = pool.acquire().expect("a free slot");
            if !stream.next_unit(&mut slot)? {
                assert_eq!(
                    slot.bytes().len(),
                    FRONT_ROOM,
                    "nothing after the room at the end"
                );
                return Ok(units);
            }
            let bytes = slot.bytes();
            assert_eq!(&bytes[..FRONT_ROOM], &[0; FRONT_ROOM], "the room in front");
            let unit = &bytes[FRONT_ROOM..];
            let searched: Vec<u32> =
                std::iter::successors(find_start_code(unit, 0), |&p| find_start_code(unit, p))
                    .map(|p| p as u32)
                    .collect();
            assert_eq!(
                stream.nal_starts(),
                Some(&searched[..]),
                "where units begin"
            );
            units.push(unit.to_vec());
        }
        panic!("no end of input");
    }

    fn in_pieces(input: &[u8], size: usize) -> Vec<Vec<u8>> {
        new_path(Reader(Pieces(input, || size)), 64 * 1024).unwrap()
    }

    #[test]
    fn yields_the_same_units_as_the_staging_buffer_whatever_the_read_size() {
        let input = stream(60, 30_000, 7);
        let expected = old_path(&input);
        assert_eq!(expected.len(), 60);
        for size in [100, 4095, 4096, 70_000, usize::MAX] {
            assert_eq!(in_pieces(&input, size), expected, "reads of {size} bytes");
        }
        // Tiny reads on a shorter stream (each one zeroes a read's room in this reader).
        let short = stream(20, 3000, 8);
        for size in [1, 2, 3, 4, 5, 7] {
            assert_eq!(
                in_pieces(&short, size),
                old_path(&short),
                "reads of {size} bytes"
            );
        }
        let mut rng = XorShift(3);
        let random = new_path(
            Reader(Pieces(&input, || rng.below(9000) as usize)),
            64 * 1024,
        );
        assert_eq!(random.unwrap(), expected, "reads of random sizes");
    }

    #[test]
    fn finds_3_and_4_byte_start_codes_split_across_every_read_boundary() {
        // Small units, so that every offset of a start code meets a read boundary.
        let mut input = annexb(&[SPS, PPS]);
        for i in 0..40 {
            let unit = big_slice(if i == 0 { IDR } else { P }, i % 7);
            let code: &[u8] = if i % 2 == 0 {
                &[0, 0, 1]
            } else {
                &[0, 0, 0, 1]
            };
            input.extend_from_slice(code);
            input.extend_from_slice(&unit);
        }
        let expected = old_path(&input);
        assert_eq!(expected.len(), 40);
        for size in 1..=12 {
            assert_eq!(in_pieces(&input, size), expected, "reads of {size} bytes");
        }
    }

    #[test]
    fn a_unit_larger_than_a_read_and_than_the_slot_grows_the_slot() {
        let input = [
            annexb(&[SPS, PPS, &big_slice(IDR, 300_000)]),
            annexb(&[&big_slice(P, 10)]),
        ]
        .concat();
        let expected = old_path(&input);
        let pool = Pool::new(1, 16 * 1024);
        let mut stream = SlotStream::new(Reader(&input[..]), "big".into(), 16 * 1024);
        let mut slot = pool.acquire().unwrap();
        assert!(stream.next_unit(&mut slot).unwrap());
        assert_eq!(slot.bytes()[FRONT_ROOM..], expected[0][..]);
        assert!(pool.growth_events() > 0, "grown in the pool's one place");
        drop(slot);
        let mut slot = pool.acquire().unwrap();
        assert!(stream.next_unit(&mut slot).unwrap());
        assert_eq!(slot.bytes()[FRONT_ROOM..], expected[1][..]);
    }

    #[test]
    fn the_input_ending_mid_unit_yields_the_partial_unit_as_the_old_path_does() {
        let whole = stream(5, 5000, 11);
        for cut in [whole.len() - 1, whole.len() - 300, whole.len() / 2] {
            let input = &whole[..cut];
            assert_eq!(in_pieces(input, 333), old_path(input), "cut at {cut}");
        }
    }

    #[test]
    fn a_pipe_delivering_one_byte_at_a_time_yields_the_same_units() {
        let input = stream(12, 2000, 5);
        let (reader, mut writer) = io::pipe().unwrap();
        let feed = {
            let input = input.clone();
            std::thread::spawn(move || {
                for b in input {
                    writer.write_all(&[b]).unwrap();
                }
            })
        };
        let got = new_path(Fd(reader), 64 * 1024).unwrap();
        feed.join().unwrap();
        assert_eq!(got, old_path(&input));
    }

    #[test]
    fn a_file_read_through_its_descriptor_yields_the_same_units() {
        let input = stream(50, 40_000, 13);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&input).unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        assert_eq!(new_path(Fd(file), 64 * 1024).unwrap(), old_path(&input));
    }

    #[test]
    fn garbage_in_front_is_skipped_and_input_without_start_codes_is_not_annex_b() {
        let input = [&[0x12, 0x34, 0, 0x56][..], &stream(3, 100, 1)].concat();
        let pool = Pool::new(1, 4096);
        let mut stream = SlotStream::new(Reader(&input[..]), "x".into(), 4096);
        let mut slot = pool.acquire().unwrap();
        assert!(stream.next_unit(&mut slot).unwrap());
        assert_eq!(stream.skipped_bytes(), 4);
        let junk = vec![0x47u8; 10_000];
        assert!(matches!(
            new_path(Reader(&junk[..]), 4096),
            Err(SourceError::NotAnnexB { .. })
        ));
        assert!(new_path(Reader(&[][..]), 4096).unwrap().is_empty());
    }

    #[test]
    fn a_reset_starts_the_input_over() {
        let input = stream(4, 1000, 2);
        let pool = Pool::new(1, 4096);
        let mut stream = SlotStream::new(Reader(&input[..]), "x".into(), 4096);
        let mut slot = pool.acquire().unwrap();
        assert!(stream.next_unit(&mut slot).unwrap());
        let first = slot.bytes().clone();
        stream.reset(Reader(&input[..]));
        drop(slot);
        let mut slot = pool.acquire().unwrap();
        assert!(stream.next_unit(&mut slot).unwrap());
        assert_eq!(*slot.bytes(), first);
    }
}
