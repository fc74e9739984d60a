//! Display order, for composition times: how long after its decode time each picture is shown.
//!
//! FLV carries a decode timestamp per frame and a composition time offset (CTS = PTS − DTS).
//! Cameras and hardware encoders send pictures in display order (no B-frames): the offset is 0.
//! A stream with B-frames (x264 or a software encoder on stdin, some UVC cameras) sends a
//! picture after the pictures that reference it, and stamping it with offset 0 makes a player
//! show frames out of order and a muxer complain of non-monotonic timestamps.
//!
//! Owns: the picture order count (POC) state of ITU-T H.264 8.2.1 and the reorder depth. For each
//! access unit it takes the first slice's header fields ([`SliceFacts`], read by `params`) and
//! returns the composition offset in frame durations:
//!
//! `offset = display index − decode index + reorder depth`, both indices counted from the last IDR
//!
//! where the display index is the POC relative to the IDR divided by the POC step (2 per frame,
//! as encoders write it for frame pictures; 1 when an odd POC shows the encoder counts by one),
//! and the reorder depth is the SPS's `max_num_reorder_frames` (VUI bitstream restriction) or,
//! when the SPS does not say, the largest lag seen so far. The first picture of a B-frame stream
//! is thus shown one reorder depth after it is decoded, as every muxer does. When the SPS gives
//! no depth, the offset stays 0 until a picture actually arrives after one it is shown before:
//! an encoder without B-frames whose POC skips values (dropped frames, a step of 4) must not
//! drift its pictures' display times away from their decode times (and from the audio).
//!
//! POC type 0 is computed (8.2.1.1, with the MSB wrap of the LSB); type 2 means display order is
//! decode order (offset 0). Type 1, rare and used without B-frames in practice, and field
//! pictures (interlaced coding) get offset 0. Memory management operation 5 (a POC reset without
//! an IDR) is not parsed; a resulting offset outside `[0, depth + MAX_OFFSET_FRAMES]` is clamped
//! and counted, so a stream this model does not fit gets wrong-but-bounded offsets, never a
//! runaway clock. Allocation-free.

/// Largest composition offset accepted beyond the reorder depth, in frames.
pub const MAX_OFFSET_FRAMES: i64 = 16;

/// The slice header fields that decide the POC (7.3.3), from the first slice of a picture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SliceFacts {
    pub idr: bool,
    /// `nal_ref_idc != 0`: the picture is a reference picture.
    pub reference: bool,
    pub field_pic: bool,
    pub pic_order_cnt_lsb: u32,
    pub delta_pic_order_cnt_bottom: i32,
}

/// The POC facts of the SPS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PocInfo {
    /// `pic_order_cnt_type`: 0, 1 or 2.
    pub poc_type: u8,
    pub log2_max_frame_num: u8,
    /// For type 0.
    pub log2_max_poc_lsb: u8,
    /// For type 1.
    pub delta_pic_order_always_zero: bool,
    pub frame_mbs_only: bool,
    pub separate_colour_plane: bool,
    /// From the VUI bitstream restriction, when present.
    pub max_num_reorder_frames: Option<u32>,
}

/// The display order tracker; see the module documentation.
#[derive(Debug, Default)]
pub struct Reorder {
    prev_msb: i64,
    prev_lsb: i64,
    idr_poc: i64,
    /// Pictures since the last IDR, in decode order (the IDR is 0).
    index: i64,
    seen_idr: bool,
    /// The POC counts by one per frame.
    step_one: bool,
    /// Reorder depth inferred from the stream when the SPS does not give it.
    inferred_depth: i64,
    /// Largest POC since the last IDR, and whether a picture ever came after one it is shown
    /// before (a B-frame): without that evidence, and without a depth in the SPS, display order is
    /// decode order whatever steps the POC takes.
    max_poc: i64,
    reordered: bool,
    clamped: u64,
}

impl Reorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The composition offset of the next picture in decode order, in frame durations (≥ 0),
    /// under the POC facts of the active SPS. `slice` is `None` when its header could not be
    /// read (offset 0).
    pub fn next(&mut self, slice: Option<&SliceFacts>, poc: &PocInfo) -> u32 {
        let Some(s) = slice else {
            self.index += 1;
            return 0;
        };
        if s.idr {
            self.prev_msb = 0;
            self.prev_lsb = 0;
            self.index = 0;
        }
        let offset = match poc.poc_type {
            0 if !s.field_pic && (s.idr || self.seen_idr) => self.offset_type0(s, poc),
            _ => 0,
        };
        self.seen_idr |= s.idr;
        self.index += 1;
        offset
    }

    /// Times an offset had to be clamped (the stream does not fit the model).
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    fn offset_type0(&mut self, s: &SliceFacts, poc: &PocInfo) -> u32 {
        // 8.2.1.1: PicOrderCntMsb from the previous reference picture's MSB and LSB.
        let max_lsb = 1i64 << poc.log2_max_poc_lsb.clamp(4, 16);
        let lsb = i64::from(s.pic_order_cnt_lsb);
        let msb = if lsb < self.prev_lsb && self.prev_lsb - lsb >= max_lsb / 2 {
            self.prev_msb + max_lsb
        } else if lsb > self.prev_lsb && lsb - self.prev_lsb > max_lsb / 2 {
            self.prev_msb - max_lsb
        } else {
            self.prev_msb
        };
        let top = msb + lsb;
        let bottom = top + i64::from(s.delta_pic_order_cnt_bottom);
        let poc_value = top.min(bottom);
        if s.reference {
            self.prev_msb = msb;
            self.prev_lsb = lsb;
        }
        if s.idr {
            self.idr_poc = poc_value;
            self.max_poc = poc_value;
        }
        self.reordered |= poc_value < self.max_poc;
        self.max_poc = self.max_poc.max(poc_value);
        let relative = poc_value - self.idr_poc;
        if relative % 2 != 0 {
            self.step_one = true;
        }
        let display = if self.step_one {
            relative
        } else {
            relative / 2
        };
        let lag = self.index - display;
        let depth = match poc.max_num_reorder_frames {
            Some(0) => return 0,
            Some(n) => i64::from(n),
            None if !self.reordered => return 0,
            None => {
                if lag > self.inferred_depth && lag <= MAX_OFFSET_FRAMES {
                    self.inferred_depth = lag;
                    log::info!("the stream has B-frames: reorder depth {lag} (from the stream)");
                }
                self.inferred_depth
            }
        };
        let offset = display - self.index + depth;
        if !(0..=depth + MAX_OFFSET_FRAMES).contains(&offset) {
            self.clamped += 1;
            if self.clamped.is_power_of_two() {
                log::warn!(
                    "picture order does not fit (offset {offset} frames; {} so far): clamped",
                    self.clamped
                );
            }
        }
        offset.clamp(0, depth + MAX_OFFSET_FRAMES) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poc(poc_type: u8, reorder: Option<u32>) -> PocInfo {
        PocInfo {
            poc_type,
            log2_max_frame_num: 4,
            log2_max_poc_lsb: 6,
            frame_mbs_only: true,
            max_num_reorder_frames: reorder,
            ..PocInfo::default()
        }
    }

    /// Offsets for pictures given as (idr, reference, POC LSB) in decode order.
    fn offsets(poc: &PocInfo, pics: &[(bool, bool, u32)]) -> Vec<u32> {
        let mut r = Reorder::new();
        pics.iter()
            .map(|&(idr, reference, lsb)| {
                let s = SliceFacts {
                    idr,
                    reference,
                    pic_order_cnt_lsb: lsb,
                    ..SliceFacts::default()
                };
                r.next(Some(&s), poc)
            })
            .collect()
    }

    /// Display times (decode index + offset) must be each index once, in display order.
    fn display_times(offsets: &[u32]) -> Vec<i64> {
        offsets
            .iter()
            .enumerate()
            .map(|(i, &o)| i as i64 + i64::from(o))
            .collect()
    }

    #[test]
    fn without_b_frames_every_offset_is_zero() {
        // IPPP with POC 0, 2, 4, ... and a reorder depth of 0 or unknown.
        let pics: Vec<_> = (0..40).map(|i| (i % 20 == 0, true, (i % 20) * 2)).collect();
        assert_eq!(offsets(&poc(0, Some(0)), &pics), vec![0; 40]);
        assert_eq!(offsets(&poc(0, None), &pics), vec![0; 40]);
        assert_eq!(offsets(&poc(2, None), &pics), vec![0; 40]);
    }

    #[test]
    fn b_frames_are_shown_in_display_order() {
        // I0 P6 B2 B4 P12 B8 B10 (POC step 2, two B-frames, depth 1), then a new IDR.
        let gop = [
            (true, true, 0),
            (false, true, 6),
            (false, false, 2),
            (false, false, 4),
            (false, true, 12),
            (false, false, 8),
            (false, false, 10),
        ];
        let pics: Vec<_> = gop.iter().chain(gop.iter()).copied().collect();
        let got = offsets(&poc(0, Some(1)), &pics);
        assert_eq!(got, [1, 3, 0, 0, 3, 0, 0, 1, 3, 0, 0, 3, 0, 0]);
        let mut shown = display_times(&got);
        shown.sort_unstable();
        assert_eq!(shown, (1..=14).collect::<Vec<_>>());
    }

    #[test]
    fn b_pyramid_with_depth_from_the_stream_settles_after_the_first_b_frame() {
        // x264 b-pyramid: I0 P8 B4(ref) b2 b6, POC step 2; no VUI depth.
        let pics = [
            (true, true, 0),
            (false, true, 8),
            (false, true, 4),
            (false, false, 2),
            (false, false, 6),
            (false, true, 16),
            (false, true, 12),
            (false, false, 10),
            (false, false, 14),
        ];
        let display: Vec<i64> = pics.iter().map(|p| i64::from(p.2) / 2).collect();
        // Depth 2 is learnt at b2 (decode 3, display 1); from then on every picture is shown
        // at its display index + 2, and no two pictures are ever shown at the same time.
        let shown = display_times(&offsets(&poc(0, None), &pics));
        for i in 3..pics.len() {
            assert_eq!(shown[i], display[i] + 2, "{shown:?}");
        }
        let mut distinct = shown.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), shown.len(), "{shown:?}");
        // With the depth in the SPS it is exact from the first picture.
        let exact = display_times(&offsets(&poc(0, Some(2)), &pics));
        let expected: Vec<i64> = display.iter().map(|d| d + 2).collect();
        assert_eq!(exact, expected);
    }

    #[test]
    fn a_poc_that_skips_values_without_b_frames_keeps_offset_zero() {
        // IPPP whose POC steps by 4, then jumps (frames dropped in the encoder), no VUI depth.
        let pics: Vec<_> = [0u32, 4, 8, 12, 24, 28, 40]
            .iter()
            .enumerate()
            .map(|(i, &lsb)| (i == 0, true, lsb))
            .collect();
        assert_eq!(offsets(&poc(0, None), &pics), vec![0; 7]);
        assert_eq!(offsets(&poc(0, Some(0)), &pics), vec![0; 7]);
    }

    #[test]
    fn the_lsb_wraps_into_the_msb() {
        // log2_max_poc_lsb = 6: the LSB wraps at 64. A long IPPP GOP stays at offset 0.
        let pics: Vec<_> = (0..100u32).map(|i| (i == 0, true, (i * 2) % 64)).collect();
        assert_eq!(offsets(&poc(0, Some(0)), &pics), vec![0; 100]);
    }

    #[test]
    fn an_encoder_counting_by_one_is_recognised() {
        // I0 P3 B1 B2 with POC step 1, depth 1.
        let pics = [
            (true, true, 0),
            (false, true, 3),
            (false, false, 1),
            (false, false, 2),
        ];
        let got = offsets(&poc(0, Some(1)), &pics);
        // P3 comes before the first odd POC shows the step; B1 and B2 are then exact.
        assert_eq!(&got[2..], [0, 0]);
    }

    #[test]
    fn nonsense_is_clamped_and_counted() {
        let mut r = Reorder::new();
        let poc = PocInfo {
            log2_max_poc_lsb: 8,
            ..poc(0, Some(1))
        };
        let idr = SliceFacts {
            idr: true,
            reference: true,
            ..SliceFacts::default()
        };
        r.next(Some(&idr), &poc);
        let far = SliceFacts {
            reference: true,
            pic_order_cnt_lsb: 100, // display 50, decode 1
            ..SliceFacts::default()
        };
        assert_eq!(r.next(Some(&far), &poc), 1 + MAX_OFFSET_FRAMES as u32);
        assert_eq!(r.clamped(), 1);
        // Pictures before any IDR, unreadable headers: offset 0.
        let mut fresh = Reorder::new();
        assert_eq!(fresh.next(Some(&far), &poc), 0);
        assert_eq!(fresh.next(None, &poc), 0);
    }
}
