//! The shared ring of encoded audio frames: one writer (the microphone's capture thread), a
//! reader per destination, each with its own cursor.
//!
//! Owns: [`Ring`] (the slots, allocated once) and [`Reader`] (one destination's cursor and the
//! copy of the frame it lends out, an [`AudioSource`]).
//!
//! Frames carry a sequence number; slot `seq % capacity` holds frame `seq`. A reader that falls
//! more than the capacity behind (a stalled destination) loses the oldest frames: its cursor
//! jumps to the oldest frame still held, and the frames it skipped are counted
//! ([`Ring::lost`]). A reader starting a connection at `start_us` is put on the first frame
//! stamped at or after it (frames stamped before it are skipped even if they arrive later: the
//! encoder's delay means audio reaches the ring a little after the video of the same moment).
//!
//! Invariants: no allocation after [`Ring::new`] / [`Ring::reader`]: frames are copied into
//! preallocated slots and out of them into the reader's own buffer, under a mutex held for one
//! copy. Stamps in the ring strictly increase (the writer's duty; [`Ring::push`] refuses a frame
//! that is not later than the last).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{AudioFormat, AudioFrame, AudioSource};

/// Frames the ring holds: 256 × 21.3 ms = 5.5 s at 48 kHz.
pub const RING_FRAMES: usize = 256;
/// The largest AAC-LC frame: 6144 bits per channel (ISO/IEC 14496-3 §4.5.3.2), two channels.
pub const MAX_FRAME_BYTES: usize = 1536;

struct Slot {
    seq: u64,
    timestamp_us: u64,
    len: usize,
    data: [u8; MAX_FRAME_BYTES],
}

struct Slots {
    slots: Box<[Slot]>,
    /// Sequence number of the next frame pushed.
    next: u64,
    last_us: Option<u64>,
}

/// Encoded frames shared by every destination (see the module doc).
pub struct Ring {
    format: AudioFormat,
    slots: Mutex<Slots>,
    lost: AtomicU64,
}

impl Ring {
    pub fn new(format: AudioFormat) -> Arc<Ring> {
        let slots = (0..RING_FRAMES)
            .map(|_| Slot {
                seq: u64::MAX,
                timestamp_us: 0,
                len: 0,
                data: [0; MAX_FRAME_BYTES],
            })
            .collect();
        Arc::new(Ring {
            format,
            slots: Mutex::new(Slots {
                slots,
                next: 0,
                last_us: None,
            }),
            lost: AtomicU64::new(0),
        })
    }

    pub fn format(&self) -> AudioFormat {
        self.format
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A reader or writer that panicked left whole slots behind: keep going.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a frame; `false` (and nothing added) if it is too large or not later than the last.
    pub fn push(&self, timestamp_us: u64, data: &[u8]) -> bool {
        if data.len() > MAX_FRAME_BYTES {
            return false;
        }
        let mut s = self.lock();
        if s.last_us.is_some_and(|last| timestamp_us <= last) {
            return false;
        }
        let seq = s.next;
        let slot = &mut s.slots[(seq % RING_FRAMES as u64) as usize];
        slot.seq = seq;
        slot.timestamp_us = timestamp_us;
        slot.len = data.len();
        slot.data[..data.len()].copy_from_slice(data);
        s.next += 1;
        s.last_us = Some(timestamp_us);
        true
    }

    /// Frames pushed so far.
    pub fn pushed(&self) -> u64 {
        self.lock().next
    }

    /// Frames readers lost by falling behind, over every reader.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// A cursor for one destination, at the newest frame.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let next = self.pushed();
        Reader {
            ring: Arc::clone(self),
            next,
            start_us: 0,
            len: 0,
            buf: Box::new([0; MAX_FRAME_BYTES]),
        }
    }
}

/// One destination's view of the ring (an [`AudioSource`]).
pub struct Reader {
    ring: Arc<Ring>,
    /// Sequence number of the next frame to give.
    next: u64,
    start_us: u64,
    len: usize,
    buf: Box<[u8; MAX_FRAME_BYTES]>,
}

impl AudioSource for Reader {
    fn format(&self) -> AudioFormat {
        self.ring.format
    }

    fn start(&mut self, start_us: u64) {
        self.start_us = start_us;
        let s = self.ring.lock();
        let oldest = s.next.saturating_sub(RING_FRAMES as u64);
        // The first frame held that is not older than the start; else whatever comes next.
        self.next = (oldest..s.next)
            .find(|&seq| s.slots[(seq % RING_FRAMES as u64) as usize].timestamp_us >= start_us)
            .unwrap_or(s.next);
    }

    fn next_until(&mut self, until_us: u64) -> Option<AudioFrame<'_>> {
        {
            let s = self.ring.lock();
            loop {
                if self.next >= s.next {
                    return None;
                }
                let oldest = s.next.saturating_sub(RING_FRAMES as u64);
                if self.next < oldest {
                    self.ring
                        .lost
                        .fetch_add(oldest - self.next, Ordering::Relaxed);
                    self.next = oldest;
                }
                let slot = &s.slots[(self.next % RING_FRAMES as u64) as usize];
                debug_assert_eq!(slot.seq, self.next);
                if slot.timestamp_us < self.start_us {
                    self.next += 1;
                    continue;
                }
                if slot.timestamp_us > until_us {
                    return None;
                }
                self.buf[..slot.len].copy_from_slice(&slot.data[..slot.len]);
                self.len = slot.len;
                self.next += 1;
                let timestamp_us = slot.timestamp_us;
                drop(s);
                return Some(AudioFrame {
                    timestamp_us,
                    data: &self.buf[..self.len],
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Arc<Ring> {
        Ring::new(AudioFormat::default())
    }

    #[test]
    fn every_reader_gets_every_frame_up_to_the_asked_time_in_order() {
        let r = ring();
        let (mut a, mut b) = (r.reader(), r.reader());
        a.start(0);
        b.start(0);
        for i in 0..5u8 {
            assert!(r.push(1_000 + u64::from(i) * 100, &[i; 3]));
        }
        let got: Vec<u64> =
            std::iter::from_fn(|| a.next_until(1_250).map(|f| f.timestamp_us)).collect();
        assert_eq!(got, [1_000, 1_100, 1_200]);
        assert_eq!(a.next_until(u64::MAX).unwrap().data, [3, 3, 3]);
        // The other reader has its own cursor.
        assert_eq!(b.next_until(u64::MAX).unwrap().data, [0, 0, 0]);
    }

    #[test]
    fn a_connection_starts_at_the_first_frame_not_older_than_its_start_even_if_it_comes_later() {
        let r = ring();
        let mut a = r.reader();
        r.push(1_000, b"a");
        r.push(2_000, b"b");
        a.start(1_500);
        assert_eq!(a.next_until(u64::MAX).unwrap().data, b"b");
        a.start(5_000);
        assert!(a.next_until(u64::MAX).is_none());
        r.push(4_000, b"late"); // encoded after the connection started, but from before it
        r.push(6_000, b"c");
        assert_eq!(a.next_until(u64::MAX).unwrap().data, b"c");
    }

    #[test]
    fn a_slow_reader_loses_the_oldest_frames_and_they_are_counted() {
        let r = ring();
        let mut a = r.reader();
        a.start(0);
        for i in 0..RING_FRAMES as u64 + 10 {
            r.push(1 + i, &[i as u8]);
        }
        let first = a.next_until(u64::MAX).unwrap();
        assert_eq!(first.timestamp_us, 11);
        assert_eq!(r.lost(), 10);
    }

    #[test]
    fn frames_out_of_order_or_too_large_are_refused() {
        let r = ring();
        assert!(r.push(10, b"x"));
        assert!(!r.push(10, b"y"));
        assert!(!r.push(5, b"z"));
        assert!(!r.push(20, &[0; MAX_FRAME_BYTES + 1]));
        assert_eq!(r.pushed(), 1);
    }
}
