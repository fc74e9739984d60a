//! A counting global allocator: the system allocator plus a few relaxed atomic operations per
//! allocation, so campush can report (and the tests and benchmark can prove) how many heap
//! allocations the steady state performs (zero per frame) and how many bytes a peer can make
//! it hold (the live and peak byte counts).
//!
//! Two allocation counts: every allocation of the process ([`allocations`]), and those made on
//! threads that asked to be watched ([`watch_this_thread`], [`watched_allocations`]), so that a
//! test can count its own threads and not, say, an in-process server's or the test harness's.
//! Reallocations count as allocations; freeing counts nothing.
//!
//! The byte counts are requested sizes (`Layout::size`), not what the system allocator
//! rounds them up to; a reallocation counts as the change in size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static WATCHED: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates, never fails.
    static THIS_THREAD_WATCHED: Cell<bool> = const { Cell::new(false) };
}

/// Install with `#[global_allocator] static A: Counting = Counting;`.
pub struct Counting;

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    if THIS_THREAD_WATCHED.try_with(Cell::get).unwrap_or(false) {
        WATCHED.fetch_add(1, Ordering::Relaxed);
    }
}

fn grew(n: usize) {
    let live = LIVE_BYTES.fetch_add(n, Ordering::Relaxed).wrapping_add(n);
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

fn shrank(n: usize) {
    LIVE_BYTES.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` unchanged; counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            match new_size.checked_sub(layout.size()) {
                Some(more) => grew(more),
                None => shrank(layout.size() - new_size),
            }
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
}

/// Allocations (including reallocations) since the process started.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// From now until it ends, this thread's allocations also count in [`watched_allocations`].
pub fn watch_this_thread() {
    THIS_THREAD_WATCHED.with(|watched| watched.set(true));
}

/// Allocations (including reallocations) made on watched threads since the process started.
pub fn watched_allocations() -> u64 {
    WATCHED.load(Ordering::Relaxed)
}

/// Bytes allocated and not yet freed, by every thread.
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The most [`live_bytes`] has been since the process started or [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK_BYTES.load(Ordering::Relaxed)
}

/// Starts a new peak measurement from what is live now.
pub fn reset_peak() {
    PEAK_BYTES.store(LIVE_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}
