//! The per-frame H.264 path allocates nothing: splitting a stream into access
//! units, observing access units whose SPS/PPS are already cached, and
//! rewriting them as length-prefixed NAL units into a buffer with capacity.
//!
//! A separate test binary, because counting allocations needs its own
//! global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use campush::h264::{annexb_to_avcc, AccessUnitSplitter, ParamSets, Split};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The committed fixture: 90 frames of 320x240 Main profile, GOP 30.
fn fixture_clip() -> Vec<u8> {
    std::fs::read("tests/fixtures/clip-320x240-30fps.h264").expect("fixture clip")
}

/// Splits `clip` fed in chunks of `chunk` bytes, observing and converting
/// every access unit; returns how many access units there were.
fn run(clip: &[u8], chunk: usize, params: &mut ParamSets, avcc: &mut Vec<u8>) -> usize {
    let mut splitter = AccessUnitSplitter::new();
    let (mut start, mut end, mut units) = (0, 0, 0);
    loop {
        let eof = end == clip.len();
        match splitter.next(&clip[start..end], eof) {
            Split::AccessUnit(n) => {
                let unit = &clip[start..start + n];
                let info = params.observe(unit).expect("a valid access unit");
                assert!(!info.params_changed);
                avcc.clear();
                annexb_to_avcc(unit, avcc);
                start += n;
                units += 1;
            }
            Split::Skip(n) => start += n,
            Split::NeedMore if eof => return units,
            Split::NeedMore => end = (end + chunk).min(clip.len()),
        }
    }
}

#[test]
fn the_per_frame_path_does_not_allocate() {
    let clip = fixture_clip();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    std::hint::black_box(Vec::<u8>::with_capacity(1));
    assert!(
        ALLOCATIONS.load(Ordering::Relaxed) > before,
        "the counter counts"
    );
    let mut params = ParamSets::new();
    params.observe(&clip).expect("parameter sets");
    assert!(params.is_ready());
    let mut avcc = Vec::with_capacity(clip.len() * 2);
    for chunk in [1, 7, 4096, clip.len()] {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let units = run(&clip, chunk, &mut params, &mut avcc);
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        assert_eq!(units, 90);
        assert_eq!(
            allocations, 0,
            "{allocations} allocations with chunks of {chunk} bytes"
        );
    }
}
