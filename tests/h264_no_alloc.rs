//! The per-frame H.264 path allocates nothing: splitting a stream into access
//! units, observing access units whose SPS/PPS are already cached, and
//! rewriting them as length-prefixed NAL units into a buffer with capacity.
//!
//! A separate test binary, because counting allocations needs its own
//! global allocator (campush's). The count is this test thread's: the test
//! harness's own threads may allocate at any moment (output capture, timers).

use campush::alloc::{watch_this_thread, watched_allocations as allocations, Counting};
use campush::h264::{annexb_to_avcc, AccessUnitSplitter, ParamSets, Split};

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
    watch_this_thread();
    let clip = fixture_clip();
    let before = allocations();
    std::hint::black_box(Vec::<u8>::with_capacity(1));
    assert!(allocations() > before, "the counter counts");
    let mut params = ParamSets::new();
    params.observe(&clip).expect("parameter sets");
    assert!(params.is_ready());
    let mut avcc = Vec::with_capacity(clip.len() * 2);
    for chunk in [1, 7, 4096, clip.len()] {
        let before = allocations();
        let units = run(&clip, chunk, &mut params, &mut avcc);
        let allocations = allocations() - before;
        assert_eq!(units, 90);
        assert_eq!(
            allocations, 0,
            "{allocations} allocations with chunks of {chunk} bytes"
        );
    }
}
