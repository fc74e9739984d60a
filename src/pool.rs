//! The frame pool: every byte of video that flows through campush lives in one of these slots.
//!
//! Owns: a fixed set of slots allocated once at start-up, each a byte buffer with a capacity
//! hint (the encoder's `sizeimage`, or a default), plus the free list. A slot is taken
//! exclusively as a [`FrameMut`] (the source fills it after [`FRONT_ROOM`] free bytes, the
//! ingest stage rewrites it into an FLV tag body, in place when it can), then frozen into a shared, immutable [`Frame`] that any number of destination
//! queues hold at once; cloning a `Frame` bumps a refcount, never copies bytes. When the last
//! handle drops, the slot returns to the free list.
//!
//! Invariants:
//! - No allocation after start-up in the steady state: `acquire` pops from a free list whose
//!   capacity equals the slot count; `Frame::clone` is two atomic increments.
//! - A slot's buffer only grows, in exactly one place ([`FrameMut::reserve`]), which logs it. The
//!   number of such events is bounded by the largest access unit the source can produce.
//! - The free list is LIFO, so a stream that keeps up touches only a handful of slots: resident
//!   memory follows the real queue depth, not the pool size.
//! - Exhaustion never blocks: `acquire` returns `None` and the caller drops the frame.
//!
//! Safe Rust only: each slot's buffer sits behind its own `Mutex`, which is uncontended by
//! construction (the writer holds the only handle; readers lock briefly to copy out).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes a source leaves free in front of what it puts in a slot ([`FrameMut::fill_from`]), so
/// the ingest stage can write the FLV tag header (5 bytes) in front of the units it rewrites in
/// place, instead of copying the frame into a second buffer.
pub const FRONT_ROOM: usize = 5;

/// The most frames a destination holds once they have left its queue: a publisher sends what
/// is queued in batches of up to this many frames (in one `writev`), and lets go of them before
/// it waits for anything.
pub const TAKEN_AT_ONCE: usize = 8;

/// Slots for a pipeline whose destination queues hold at most `max_frames` frames each.
///
/// Every queue receives every frame and only ever drops from its front, so what a queue holds
/// is always a run of the most recent frames: however many destinations there are, and however
/// stuck one of them is, together they hold at most `max_frames` distinct frames. Add the
/// frames each destination has taken from its queue ([`TAKEN_AT_ONCE`]: a batch being written;
/// a frozen one keeps the last), one slot per destination for a frame that was just popped
/// while the next is being pushed, the slot the source is filling, the ingest's spare, and two
/// for good measure. So a frozen destination with a full queue never starves the others of
/// slots (tests/multi_output.rs proves it).
pub fn slots_for(max_frames: usize, destinations: usize) -> usize {
    max_frames + (TAKEN_AT_ONCE + 1) * destinations + 4
}

/// What the data path knows about a frame without touching its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Capture time on the monotonic clock, in microseconds.
    pub timestamp_us: u64,
    /// The frame is an IDR picture: decoding can start here.
    pub keyframe: bool,
    /// Generation of the SPS/PPS that this frame was coded with (see `ingest`).
    pub params_gen: u32,
    /// Length of the payload in bytes.
    pub len: u32,
}

struct Slot {
    refs: AtomicUsize,
    bytes: Mutex<Vec<u8>>,
}

struct Shared {
    slots: Box<[Slot]>,
    free: Mutex<Vec<u32>>,
    grown: AtomicU64,
}

impl Shared {
    fn release(&self, idx: u32) {
        let mut free = lock(&self.free);
        // Cannot allocate: the free list was created with capacity for every slot.
        debug_assert!(free.len() < free.capacity());
        free.push(idx);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a slot lock cannot leave the bytes in an unsafe state; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The pool. Cheap to clone (it is a handle).
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// Allocates `slots` buffers of `capacity` bytes each. Untouched capacity costs address
    /// space, not resident memory.
    pub fn new(slots: usize, capacity: usize) -> Self {
        assert!(
            slots > 0 && slots <= u32::MAX as usize,
            "pool size out of range"
        );
        let slots: Box<[Slot]> = (0..slots)
            .map(|_| Slot {
                refs: AtomicUsize::new(0),
                bytes: Mutex::new(Vec::with_capacity(capacity)),
            })
            .collect();
        // Exactly one entry per slot, so pushing a released slot never reallocates. Reversed so
        // that slot 0 is handed out first.
        let free_list: Vec<u32> = (0..slots.len() as u32).rev().collect();
        Pool {
            shared: Arc::new(Shared {
                slots,
                free: Mutex::new(free_list),
                grown: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a free slot for writing, or `None` when every slot is in use.
    pub fn acquire(&self) -> Option<FrameMut> {
        let idx = lock(&self.shared.free).pop()?;
        let slot = &self.shared.slots[idx as usize];
        slot.refs.store(1, Ordering::Release);
        lock(&slot.bytes).clear();
        Some(FrameMut {
            shared: Arc::clone(&self.shared),
            idx,
            frozen: false,
        })
    }

    /// Number of slots.
    pub fn size(&self) -> usize {
        self.shared.slots.len()
    }

    /// Number of slots currently free.
    pub fn available(&self) -> usize {
        lock(&self.shared.free).len()
    }

    /// How many times a slot buffer had to grow since start-up.
    pub fn growth_events(&self) -> u64 {
        self.shared.grown.load(Ordering::Relaxed)
    }
}

/// Exclusive access to one slot while it is being filled.
pub struct FrameMut {
    shared: Arc<Shared>,
    idx: u32,
    frozen: bool,
}

impl FrameMut {
    /// The slot's buffer. Writers should call [`FrameMut::reserve`] before extending it.
    pub fn bytes(&mut self) -> MutexGuard<'_, Vec<u8>> {
        lock(&self.shared.slots[self.idx as usize].bytes)
    }

    /// Makes room for `additional` more bytes. This is the one place where a slot grows.
    pub fn reserve(&mut self, additional: usize) {
        let grown = {
            let mut bytes = self.bytes();
            let needed = bytes.len() + additional;
            if needed <= bytes.capacity() {
                return;
            }
            let before = bytes.capacity();
            // Round up generously so a stream whose frames creep upwards grows rarely.
            let target = needed.next_power_of_two().max(64 * 1024);
            let len = bytes.len();
            bytes.reserve_exact(target - len);
            (before, bytes.capacity())
        };
        self.shared.grown.fetch_add(1, Ordering::Relaxed);
        log::info!(
            "frame buffer {} grew from {} to {} bytes",
            self.idx,
            grown.0,
            grown.1
        );
    }

    /// Replaces the slot's contents with [`FRONT_ROOM`] zero bytes, then `data`.
    pub fn fill_from(&mut self, data: &[u8]) {
        self.bytes().clear();
        self.reserve(FRONT_ROOM + data.len());
        let mut bytes = self.bytes();
        bytes.resize(FRONT_ROOM, 0);
        bytes.extend_from_slice(data);
    }

    /// Freezes the slot into a shareable frame.
    pub fn freeze(mut self, mut meta: FrameMeta) -> Frame {
        meta.len = self.bytes().len() as u32;
        self.frozen = true;
        // The slot's refcount (1) now belongs to the Frame.
        Frame {
            shared: Arc::clone(&self.shared),
            idx: self.idx,
            meta,
        }
    }
}

impl Drop for FrameMut {
    fn drop(&mut self) {
        if self.frozen {
            return;
        }
        // Never frozen: give the slot back.
        self.shared.slots[self.idx as usize]
            .refs
            .store(0, Ordering::Release);
        self.shared.release(self.idx);
    }
}

/// A shared, immutable frame. Clone it to hand it to several destinations.
pub struct Frame {
    shared: Arc<Shared>,
    idx: u32,
    meta: FrameMeta,
}

impl Frame {
    pub fn meta(&self) -> &FrameMeta {
        &self.meta
    }

    /// Locks the frame's bytes for reading. Hold the guard briefly: copy out, then drop it.
    pub fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        lock(&self.shared.slots[self.idx as usize].bytes)
    }
}

impl Clone for Frame {
    fn clone(&self) -> Self {
        self.shared.slots[self.idx as usize]
            .refs
            .fetch_add(1, Ordering::Relaxed);
        Frame {
            shared: Arc::clone(&self.shared),
            idx: self.idx,
            meta: self.meta,
        }
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        let slot = &self.shared.slots[self.idx as usize];
        if slot.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.release(self.idx);
        }
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("slot", &self.idx)
            .field("meta", &self.meta)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_frame_is_shared_without_copying_and_freed_by_its_last_holder() {
        let pool = Pool::new(2, 16);
        let mut f = pool.acquire().unwrap();
        f.fill_from(b"abc");
        let frame = f.freeze(FrameMeta::default());
        assert_eq!(
            frame.meta().len as usize,
            FRONT_ROOM + 3,
            "the room in front, then abc"
        );
        let copy = frame.clone();
        assert_eq!(pool.available(), 1);
        drop(frame);
        assert_eq!(pool.available(), 1, "still held by the clone");
        assert_eq!(&copy.bytes()[FRONT_ROOM..], b"abc");
        drop(copy);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn an_unfrozen_slot_goes_back_when_dropped() {
        let pool = Pool::new(1, 16);
        let f = pool.acquire().unwrap();
        assert!(
            pool.acquire().is_none(),
            "exhaustion is reported, never waited on"
        );
        drop(f);
        assert!(pool.acquire().is_some());
    }

    #[test]
    fn a_reused_slot_starts_empty() {
        let pool = Pool::new(1, 16);
        let mut f = pool.acquire().unwrap();
        f.fill_from(b"old");
        drop(f);
        let mut f = pool.acquire().unwrap();
        assert!(f.bytes().is_empty());
    }

    #[test]
    fn growth_is_counted_and_capacity_is_kept() {
        let pool = Pool::new(1, 8);
        let mut f = pool.acquire().unwrap();
        f.fill_from(&[7u8; 100]);
        assert_eq!(pool.growth_events(), 1);
        drop(f);
        let mut f = pool.acquire().unwrap();
        f.fill_from(&[7u8; 100]);
        assert_eq!(pool.growth_events(), 1, "the grown buffer is reused");
    }

    #[test]
    fn the_most_recently_freed_slot_is_reused_first() {
        let pool = Pool::new(4, 8);
        let a = pool.acquire().unwrap().freeze(FrameMeta::default());
        let first = a.idx;
        drop(a);
        let b = pool.acquire().unwrap().freeze(FrameMeta::default());
        assert_eq!(b.idx, first);
    }
}
