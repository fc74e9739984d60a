//! Sending bytes from where they lie: a head buffer, then any number of slices (a frame's chunk
//! headers and the pieces of its body in its pool slot), with as few `writev` calls as the
//! socket takes right now, without waiting.
//!
//! Owns: [`write_now`], the bookkeeping of a vectored write that may stop anywhere (the socket's
//! buffer fills, or the write would block): whatever was not written ends up in the head buffer
//! (its own unwritten part, then the rest copied after it), so the caller finishes with an
//! ordinary awaited write of one buffer, under its deadline, and never holds a borrow of the
//! slices across an await. On a link that keeps up, a frame goes out in one `writev` and its
//! body is never copied in user space; the copy happens only for what a full socket leaves.

use std::io::{self, IoSlice};

/// The most slices one `writev` is given: a batch of frames of 256 KiB in 4 KiB chunks is
/// about 130 slices, a 1 MiB keyframe ~512 (two calls); the kernel's limit, IOV_MAX, is 1024.
pub const MAX_SLICES: usize = 256;

/// Writes `head` then `rest` through `writev` (which writes what the socket takes now, or
/// fails with `WouldBlock`) until everything is written or a write falls short; returns how
/// many bytes were written. Afterwards `head` holds exactly what remains to be written, in
/// order. An error other than `WouldBlock` is returned as it is: the connection is lost, and
/// what `head` holds no longer matters. No allocation unless `head` must grow to take the rest.
pub fn write_now<'a, I>(
    head: &mut Vec<u8>,
    rest: I,
    mut writev: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<usize>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    let mut written = 0;
    loop {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        let mut batch = 0;
        let mut skip = written;
        for part in std::iter::once(head.as_slice()).chain(rest.clone().map(shorter)) {
            if count == MAX_SLICES {
                break;
            }
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let part = part.get(skip..).unwrap_or_default();
            skip = 0;
            if let Some(slot) = slices.get_mut(count) {
                *slot = IoSlice::new(part);
                count += 1;
                batch += part.len();
            }
        }
        if batch == 0 {
            head.clear();
            return Ok(written);
        }
        match writev(slices.get(..count).unwrap_or_default()) {
            Ok(n) => {
                written += n;
                if n < batch {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    // The rest goes behind what is left of the head, for an ordinary write.
    if written < head.len() {
        head.drain(..written);
        for part in rest {
            head.extend_from_slice(part);
        }
    } else {
        let mut skip = written - head.len();
        head.clear();
        for part in rest {
            if skip >= part.len() {
                skip -= part.len();
            } else {
                head.extend_from_slice(part.get(skip..).unwrap_or_default());
                skip = 0;
            }
        }
    }
    Ok(written)
}

/// A slice for as long as a shorter borrow (the head's) lasts, so both chain into one sequence.
fn shorter<'s, 'a: 's>(part: &'a [u8]) -> &'s [u8] {
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes in all, `per_call` at most per call, then
    /// would block; it records what it took and how many calls.
    struct Socket {
        took: Vec<u8>,
        room: usize,
        per_call: usize,
        calls: usize,
    }

    impl Socket {
        fn writev(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            assert!(slices.len() <= MAX_SLICES);
            let mut n = 0;
            for s in slices {
                for &b in s.iter() {
                    if self.room == 0 || n == self.per_call {
                        break;
                    }
                    self.took.push(b);
                    self.room -= 1;
                    n += 1;
                }
            }
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }
    }

    #[test]
    fn whatever_the_socket_takes_the_written_bytes_then_the_head_are_the_whole_stream_in_order() {
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let parts: Vec<&[u8]> = body.chunks(700).collect(); // 72 parts: more than one batch
        let whole: Vec<u8> = [b"HEAD".as_slice()]
            .into_iter()
            .chain(parts.iter().copied())
            .flatten()
            .copied()
            .collect();
        for (room, per_call) in [
            (usize::MAX, usize::MAX),
            (0, usize::MAX),
            (2, usize::MAX),
            (4, usize::MAX),
            (5, usize::MAX),
            (30_000, usize::MAX),
            (usize::MAX, 4096),
            (whole.len() - 1, usize::MAX),
        ] {
            let mut socket = Socket {
                took: Vec::new(),
                room,
                per_call,
                calls: 0,
            };
            let mut head = b"HEAD".to_vec();
            let n = write_now(&mut head, parts.iter().copied(), |s| socket.writev(s)).unwrap();
            assert_eq!(n, socket.took.len(), "room {room}");
            let mut again = socket.took.clone();
            again.extend_from_slice(&head);
            assert_eq!(again, whole, "room {room}, per call {per_call}");
        }
    }

    #[test]
    fn a_socket_with_room_takes_the_frame_in_few_calls_and_leaves_nothing_to_copy() {
        let body = vec![7u8; 40_000];
        let parts: Vec<&[u8]> = body.chunks(4096).collect();
        let mut socket = Socket {
            took: Vec::new(),
            room: usize::MAX,
            per_call: usize::MAX,
            calls: 0,
        };
        let mut head = vec![1, 2, 3];
        let n = write_now(&mut head, parts.iter().copied(), |s| socket.writev(s)).unwrap();
        assert_eq!((n, head.len(), socket.calls), (40_003, 0, 1));
    }

    #[test]
    fn a_lost_connection_is_an_error() {
        let mut head = vec![1, 2, 3];
        let err = write_now(&mut head, [&[4u8][..]].into_iter(), |_| {
            Err(io::ErrorKind::BrokenPipe.into())
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
