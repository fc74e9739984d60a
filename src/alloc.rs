//! A counting global allocator: the system allocator plus one relaxed atomic increment per
//! allocation, so campush can report (and the tests and benchmark can prove) how many heap
//! allocations the steady state performs: zero per frame.
//!
//! Two counts: every allocation of the process ([`allocations`]), and those made on threads
//! that asked to be watched ([`watch_this_thread`], [`watched_allocations`]), so that a test
//! can count its own threads and not, say, an in-process server's or the test harness's.
//! Reallocations count as allocations; freeing counts nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static WATCHED: AtomicU64 = AtomicU64::new(0);

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

// SAFETY: every method forwards to `System` unchanged; counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
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
