//! The SPS/PPS cache and the AVCDecoderConfigurationRecord built from it.
//!
//! Owns the latest sequence parameter set (ITU-T H.264 7.3.2.1), up to
//! [`MAX_PPS_COUNT`] picture parameter sets (7.3.2.2) keyed by
//! `pic_parameter_set_id`, the facts parsed from the SPS ([`SpsInfo`]) and
//! the record that announces them to an FLV/MP4 reader (ISO/IEC 14496-15
//! 5.2.4.1.1, `AVCDecoderConfigurationRecord`).
//!
//! Invariants:
//! * parameter sets are stored as NAL units (header byte, emulation
//!   prevention bytes kept, no start code, no trailing zeros), in fixed-size
//!   buffers: [`MAX_SPS_LEN`] and [`MAX_PPS_LEN`] bytes;
//! * a cached SPS always comes with the [`SpsInfo`] parsed from it, so
//!   `sps().is_some() == info().is_some()`;
//! * `generation` changes exactly when the cached bytes change;
//! * observing parameter sets equal to the cached ones compares bytes and
//!   allocates nothing; only a changed SPS is parsed (which allocates);
//! * a parameter set that cannot be parsed or stored leaves the cache as it
//!   was.

use h264_reader::nal::sps::{FrameMbsFlags, PicOrderCntType, SeqParameterSet, SpsError};
use h264_reader::rbsp::{BitRead, BitReader, BitReaderError, ByteReader, Integer, Primitive};

use super::nal::{nal_type, nal_type::is_vcl, nal_units};
use super::order::{PocInfo, SliceFacts};
use super::H264Error;

/// Largest SPS NAL unit kept, in bytes.
pub const MAX_SPS_LEN: usize = 512;
/// Largest PPS NAL unit kept, in bytes.
pub const MAX_PPS_LEN: usize = 512;
/// How many PPS (distinct `pic_parameter_set_id`s) are kept.
pub const MAX_PPS_COUNT: usize = 4;

/// Facts about the video taken from the SPS.
#[derive(Debug, Clone, PartialEq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// The constraint_set flags byte (also called profile compatibility).
    pub constraint_flags: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    /// Width in pixels after cropping.
    pub width: u32,
    /// Height in pixels after cropping.
    pub height: u32,
    /// `time_scale / (2 * num_units_in_tick)` from the VUI timing info; `None`
    /// when absent or zero.
    pub fps: Option<f64>,
    /// What reading slice headers and picture order counts needs.
    pub poc: PocInfo,
}

/// What one access unit contained, as seen by [`ParamSets::observe`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuInfo {
    /// Contains an IDR slice.
    pub keyframe: bool,
    /// Contains any VCL NAL unit.
    pub has_picture: bool,
    /// Changed the cached SPS or a cached PPS.
    pub params_changed: bool,
    /// The first slice's header fields that decide display order (see `order`); `None` without
    /// a picture, before SPS/PPS, or when the header cannot be read.
    pub slice: Option<SliceFacts>,
}

/// One cached PPS.
#[derive(Debug, Clone)]
struct Pps {
    id: u8,
    /// `bottom_field_pic_order_in_frame_present_flag`: slice headers carry a bottom field POC.
    bottom_field_poc: bool,
    nal: heapless::Vec<u8, MAX_PPS_LEN>,
}

/// The parameter set cache; see the module documentation.
#[derive(Debug, Default)]
pub struct ParamSets {
    /// Empty when no SPS has been seen.
    sps: heapless::Vec<u8, MAX_SPS_LEN>,
    info: Option<SpsInfo>,
    /// In order of first arrival (the first one is forgotten when a fifth id
    /// arrives); a PPS with a known id replaces its entry.
    pps: heapless::Vec<Pps, MAX_PPS_COUNT>,
    generation: u32,
}

impl ParamSets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans the NAL units of one access unit (or of a buffer holding only
    /// SPS/PPS): caches each SPS/PPS whose bytes differ from the cached ones,
    /// bumping the generation. A broken or oversized parameter set stops the
    /// scan with an error; units before it have been taken into account, and
    /// the broken one leaves the cache as it was.
    pub fn observe(&mut self, au: &[u8]) -> Result<AuInfo, H264Error> {
        let mut info = AuInfo::default();
        for nal in nal_units(au) {
            self.observe_unit(nal, &mut info)?;
        }
        Ok(info)
    }

    /// [`ParamSets::observe`] one NAL unit at a time, for a caller that walks the access unit
    /// itself (the ingest stage converts it in the same pass): `info` starts as
    /// `AuInfo::default()` and collects the units of one access unit.
    pub fn observe_unit(&mut self, nal: &[u8], info: &mut AuInfo) -> Result<(), H264Error> {
        let t = nal_type(nal);
        let changed = match t {
            super::nal_type::SPS => self.store_sps(nal)?,
            super::nal_type::PPS => self.store_pps(nal)?,
            _ => false,
        };
        info.params_changed |= changed;
        if is_vcl(t) && !info.has_picture {
            info.slice = self.slice_facts(nal);
        }
        info.has_picture |= is_vcl(t);
        info.keyframe |= t == super::nal_type::IDR;
        Ok(())
    }

    /// An SPS and at least one PPS are cached.
    pub fn is_ready(&self) -> bool {
        !self.sps.is_empty() && !self.pps.is_empty()
    }

    /// Changes (wrapping) whenever the cached SPS or PPS bytes change.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Facts from the cached SPS.
    pub fn info(&self) -> Option<&SpsInfo> {
        self.info.as_ref()
    }

    /// The cached SPS NAL unit.
    pub fn sps(&self) -> Option<&[u8]> {
        Some(self.sps.as_slice()).filter(|s| !s.is_empty())
    }

    /// The cached PPS NAL unit with the given `pic_parameter_set_id`.
    pub fn pps(&self, id: u8) -> Option<&[u8]> {
        self.pps
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.nal.as_slice())
    }

    /// Appends the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1.1)
    /// for the cached parameter sets to `out`: version 1, profile,
    /// compatibility, level, 4-byte NAL lengths, the SPS, the PPS in
    /// ascending id order (as the record requires) and, for the High
    /// profiles 100/110/122/144, the chroma format and bit depths with no SPS
    /// extensions. `Err(NoParameterSets)` until an SPS and a PPS are cached.
    pub fn write_decoder_config(&self, out: &mut Vec<u8>) -> Result<(), H264Error> {
        let (Some(sps), Some(info)) = (self.sps(), self.info.as_ref()) else {
            return Err(H264Error::NoParameterSets);
        };
        if self.pps.is_empty() {
            return Err(H264Error::NoParameterSets);
        }
        out.extend_from_slice(&[
            1, // configurationVersion
            info.profile_idc,
            info.constraint_flags,
            info.level_idc,
            0xfc | 3, // reserved bits, lengthSizeMinusOne = 3
            0xe0 | 1, // reserved bits, numOfSequenceParameterSets = 1
        ]);
        push_with_u16_length(out, sps);
        let mut by_id: heapless::Vec<&Pps, MAX_PPS_COUNT> = heapless::Vec::new();
        for pps in &self.pps {
            // Same capacity as `self.pps`: cannot fail.
            let _ = by_id.push(pps);
        }
        by_id.sort_unstable_by_key(|p| p.id);
        // At most MAX_PPS_COUNT entries, so the count fits a byte.
        out.push(by_id.len() as u8);
        for pps in by_id {
            push_with_u16_length(out, &pps.nal);
        }
        if matches!(info.profile_idc, 100 | 110 | 122 | 144) {
            out.extend_from_slice(&[
                0xfc | info.chroma_format_idc,
                0xf8 | info.bit_depth_luma.saturating_sub(8),
                0xf8 | info.bit_depth_chroma.saturating_sub(8),
                0, // numOfSequenceParameterSetExt
            ]);
        }
        Ok(())
    }

    /// Reads the header of a slice (7.3.3) up to the picture order count fields. Slices of
    /// types other than 1 and 5 (SVC/MVC extensions) and unknown PPS ids give `None`.
    fn slice_facts(&self, nal: &[u8]) -> Option<SliceFacts> {
        let t = nal_type(nal);
        if t != super::nal_type::NON_IDR && t != super::nal_type::IDR {
            return None;
        }
        let poc = &self.info.as_ref()?.poc;
        let mut r = BitReader::new(ByteReader::skipping_h264_header(nal));
        let _first_mb: u32 = r.read_ue("first_mb_in_slice").ok()?;
        let _slice_type: u32 = r.read_ue("slice_type").ok()?;
        let pps_id = u8::try_from(r.read_ue("pic_parameter_set_id").ok()?).ok()?;
        let pps = self.pps.iter().find(|p| p.id == pps_id)?;
        if poc.separate_colour_plane {
            r.skip(2, "colour_plane_id").ok()?;
        }
        r.skip(u32::from(poc.log2_max_frame_num), "frame_num")
            .ok()?;
        let field_pic = !poc.frame_mbs_only && r.read_bit("field_pic_flag").ok()?;
        if field_pic {
            r.skip(1, "bottom_field_flag").ok()?;
        }
        let idr = t == super::nal_type::IDR;
        if idr {
            let _idr_pic_id: u32 = r.read_ue("idr_pic_id").ok()?;
        }
        let mut facts = SliceFacts {
            idr,
            reference: nal.first().is_some_and(|h| h & 0x60 != 0),
            field_pic,
            ..SliceFacts::default()
        };
        if poc.poc_type == 0 {
            facts.pic_order_cnt_lsb = r
                .read_var(u32::from(poc.log2_max_poc_lsb), "pic_order_cnt_lsb")
                .ok()?;
            if pps.bottom_field_poc && !field_pic {
                facts.delta_pic_order_cnt_bottom = r.read_se("delta_pic_order_cnt_bottom").ok()?;
            }
        }
        Some(facts)
    }

    /// Caches `nal` as the SPS if it differs from the cached one; returns
    /// whether it did.
    fn store_sps(&mut self, nal: &[u8]) -> Result<bool, H264Error> {
        if self.sps.as_slice() == nal {
            return Ok(false);
        }
        let too_large = H264Error::ParameterSetTooLarge {
            kind: "SPS",
            len: nal.len(),
            limit: MAX_SPS_LEN,
        };
        let bytes = heapless::Vec::from_slice(nal).map_err(|()| too_large)?;
        let info = parse_sps(nal)?;
        self.sps = bytes;
        self.info = Some(info);
        self.generation = self.generation.wrapping_add(1);
        Ok(true)
    }

    /// Caches `nal` as the PPS for its id if it differs from the cached one;
    /// returns whether it did. When all slots hold other ids, the PPS that
    /// arrived first is forgotten.
    fn store_pps(&mut self, nal: &[u8]) -> Result<bool, H264Error> {
        let (id, bottom_field_poc) = pps_header(nal)?;
        let slot = self.pps.iter().position(|p| p.id == id);
        if let Some(existing) = slot.and_then(|i| self.pps.get(i)) {
            if existing.nal.as_slice() == nal {
                return Ok(false);
            }
        }
        let too_large = H264Error::ParameterSetTooLarge {
            kind: "PPS",
            len: nal.len(),
            limit: MAX_PPS_LEN,
        };
        let pps = Pps {
            id,
            bottom_field_poc,
            nal: heapless::Vec::from_slice(nal).map_err(|()| too_large)?,
        };
        match slot.and_then(|i| self.pps.get_mut(i)) {
            Some(existing) => *existing = pps,
            None => {
                if self.pps.is_full() {
                    self.pps.remove(0);
                }
                // Cannot fail: a slot was just freed if there was none.
                let _ = self.pps.push(pps);
            }
        }
        self.generation = self.generation.wrapping_add(1);
        Ok(true)
    }
}

/// Appends a 16-bit big-endian length and the bytes. Cached parameter sets
/// are far below 64 KiB (see the `MAX_*_LEN` limits), so nothing is cut.
fn push_with_u16_length(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or(bytes));
}

/// The `pic_parameter_set_id` (0 to 255) and `bottom_field_pic_order_in_frame_present_flag` of
/// a PPS NAL unit (7.3.2.2).
fn pps_header(nal: &[u8]) -> Result<(u8, bool), H264Error> {
    let bad = |e: BitReaderError| H264Error::BadPps(format!("{e:?}"));
    let mut r = BitReader::new(ByteReader::skipping_h264_header(nal));
    let id = r.read_ue("pic_parameter_set_id").map_err(bad)?;
    let id = u8::try_from(id)
        .map_err(|_| H264Error::BadPps(format!("pic_parameter_set_id {id} > 255")))?;
    let _sps_id = r.read_ue("seq_parameter_set_id").map_err(bad)?;
    let _cabac = r.read_bit("entropy_coding_mode_flag").map_err(bad)?;
    let bottom_field_poc = r
        .read_bit("bottom_field_pic_order_in_frame_present_flag")
        .map_err(bad)?;
    Ok((id, bottom_field_poc))
}

/// The byte of an SPS NAL unit (header included) that holds `level_idc`.
const LEVEL_IDC_BYTE: usize = 3;

/// Reads an SPS. h264-reader refuses a picture larger than the SPS's own level allows
/// (Table A-1 MaxFS); decoders play such streams (x264 writes them when told a level too low,
/// and cameras do), so the SPS is read again as if it declared level 6.2, and the level it
/// does declare is kept: `platform` names the mismatch instead of the stream being refused.
fn read_sps(nal: &[u8]) -> Result<SeqParameterSet, SpsError> {
    let read = |nal: &[u8]| {
        SeqParameterSet::from_bits(Lenient(BitReader::new(ByteReader::skipping_h264_header(
            nal,
        ))))
    };
    let first = read(nal);
    let (
        Err(SpsError::FieldValueTooLarge {
            name: "pic_size_in_map_units",
            ..
        }),
        Some(&declared),
    ) = (&first, nal.get(LEVEL_IDC_BYTE))
    else {
        return first;
    };
    // Once per changed SPS, not per frame.
    let mut lifted = nal.to_vec();
    if let Some(level) = lifted.get_mut(LEVEL_IDC_BYTE) {
        *level = 62;
    }
    let mut sps = read(&lifted)?;
    sps.level_idc = declared;
    Ok(sps)
}

/// Parses an SPS NAL unit into the facts we need.
fn parse_sps(nal: &[u8]) -> Result<SpsInfo, H264Error> {
    let bad = H264Error::BadSps;
    let sps = read_sps(nal).map_err(|e| bad(format!("{e:?}")))?;
    let (width, height) = sps.pixel_dimensions().map_err(|e| bad(format!("{e:?}")))?;
    if width == 0 || height == 0 {
        return Err(bad(format!("picture of {width}x{height} pixels")));
    }
    let chroma_format_idc = sps.chroma_info.chroma_format.to_u32();
    let chroma_format_idc = u8::try_from(chroma_format_idc)
        .ok()
        .filter(|&c| c <= 3)
        .ok_or_else(|| bad(format!("chroma_format_idc {chroma_format_idc}")))?;
    let fps = sps
        .vui_parameters
        .as_ref()
        .and_then(|vui| vui.timing_info.as_ref())
        .filter(|t| t.num_units_in_tick != 0 && t.time_scale != 0)
        .map(|t| f64::from(t.time_scale) / (2.0 * f64::from(t.num_units_in_tick)));
    let (poc_type, log2_max_poc_lsb, delta_pic_order_always_zero) = match &sps.pic_order_cnt {
        PicOrderCntType::TypeZero {
            log2_max_pic_order_cnt_lsb_minus4,
        } => (0, log2_max_pic_order_cnt_lsb_minus4 + 4, false),
        PicOrderCntType::TypeOne {
            delta_pic_order_always_zero_flag,
            ..
        } => (1, 0, *delta_pic_order_always_zero_flag),
        PicOrderCntType::TypeTwo => (2, 0, false),
    };
    let poc = PocInfo {
        poc_type,
        log2_max_frame_num: sps.log2_max_frame_num_minus4 + 4,
        log2_max_poc_lsb,
        delta_pic_order_always_zero,
        frame_mbs_only: matches!(sps.frame_mbs_flags, FrameMbsFlags::Frames),
        separate_colour_plane: sps.chroma_info.separate_colour_plane_flag,
        max_num_reorder_frames: sps
            .vui_parameters
            .as_ref()
            .and_then(|vui| vui.bitstream_restrictions.as_ref())
            .map(|b| b.max_num_reorder_frames),
    };
    Ok(SpsInfo {
        poc,
        profile_idc: sps.profile_idc.into(),
        constraint_flags: sps.constraint_flags.into(),
        level_idc: sps.level_idc,
        chroma_format_idc,
        bit_depth_luma: sps.chroma_info.bit_depth_luma_minus8 + 8,
        bit_depth_chroma: sps.chroma_info.bit_depth_chroma_minus8 + 8,
        width,
        height,
        fps,
    })
}

/// A bit reader that accepts an RBSP with extra bytes after the fields it
/// knows: some cameras append data after the VUI, which decoders ignore
/// (the strict reader would reject the whole SPS with `RemainingData`).
struct Lenient<R>(R);

impl<R: BitRead> BitRead for Lenient<R> {
    fn read_ue(&mut self, name: &'static str) -> Result<u32, BitReaderError> {
        self.0.read_ue(name)
    }
    fn read_se(&mut self, name: &'static str) -> Result<i32, BitReaderError> {
        self.0.read_se(name)
    }
    fn read_bit(&mut self, name: &'static str) -> Result<bool, BitReaderError> {
        self.0.read_bit(name)
    }
    fn read<const BITS: u32, I: Integer>(
        &mut self,
        name: &'static str,
    ) -> Result<I, BitReaderError> {
        self.0.read::<BITS, I>(name)
    }
    fn read_var<I: Integer>(
        &mut self,
        bit_count: u32,
        name: &'static str,
    ) -> Result<I, BitReaderError> {
        self.0.read_var(bit_count, name)
    }
    fn read_to<V: Primitive>(&mut self, name: &'static str) -> Result<V, BitReaderError> {
        self.0.read_to(name)
    }
    fn skip(&mut self, bit_count: u32, name: &'static str) -> Result<(), BitReaderError> {
        self.0.skip(bit_count, name)
    }
    fn byte_aligned(&self) -> bool {
        self.0.byte_aligned()
    }
    fn has_more_rbsp_data(&mut self, name: &'static str) -> Result<bool, BitReaderError> {
        self.0.has_more_rbsp_data(name)
    }
    fn finish_rbsp(self) -> Result<(), BitReaderError> {
        Ok(())
    }
    fn finish_sei_payload(self) -> Result<(), BitReaderError> {
        self.0.finish_sei_payload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h264::test_support::{annexb, from_hex, nal, BitWriter, XorShift};

    /// 1280x720 High profile SPS and PPS written by libx264 (one frame of
    /// testsrc2 at 30 fps).
    const HIGH_SPS: &str = "6764001facd9405005bb0110000003001000000303c0f1831960";
    const HIGH_PPS: &str = "68ebe3cb22c0";
    /// The avcC record ffmpeg's MP4 muxer writes for the High stream.
    const HIGH_RECORD: &str =
        "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f1831960\
                               01000668ebe3cb22c0fdf8f800";
    /// The same picture in Constrained Baseline profile.
    const BASE_SPS: &str = "6742c01fd9005005bb0110000003001000000303c0f1832480";
    const BASE_PPS: &str = "68cb83cb20";
    const BASE_RECORD: &str = "0142c01fffe100196742c01fd9005005bb0110000003001000000303c0f1832480\
                               01000568cb83cb20";

    fn observed(units: &[&[u8]]) -> ParamSets {
        let mut params = ParamSets::new();
        params.observe(&annexb(units)).unwrap();
        params
    }

    /// A Baseline SPS with the given size in macroblocks and no VUI.
    fn baseline_sps(width_mbs_minus1: u32, height_mbs_minus1: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.u(8, 66).u(8, 0xc0).u(8, 31); // profile, constraints, level 3.1
        w.ue(0).ue(0).ue(2); // sps id, log2_max_frame_num - 4, poc type 2
        w.ue(1).bit(false); // max_num_ref_frames, gaps
        w.ue(width_mbs_minus1).ue(height_mbs_minus1);
        w.bit(true).bit(true).bit(false).bit(false); // frame_mbs_only, 8x8, no crop, no VUI
        nal(0x67, &w.finish())
    }

    #[test]
    fn writes_the_decoder_config_of_a_real_stream_byte_for_byte() {
        let table = [
            (HIGH_SPS, HIGH_PPS, HIGH_RECORD),
            (BASE_SPS, BASE_PPS, BASE_RECORD),
        ];
        for (sps, pps, record) in table {
            let params = observed(&[&from_hex(sps), &from_hex(pps)]);
            let mut out = vec![0xaa];
            params.write_decoder_config(&mut out).unwrap();
            assert_eq!(out[0], 0xaa, "appends");
            assert_eq!(out[1..], from_hex(record), "{sps}");
        }
    }

    #[test]
    fn reads_the_facts_of_a_real_high_profile_sps() {
        let params = observed(&[&from_hex(HIGH_SPS), &from_hex(HIGH_PPS)]);
        let info = params.info().unwrap();
        assert_eq!(
            info,
            &SpsInfo {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 31,
                chroma_format_idc: 1,
                bit_depth_luma: 8,
                bit_depth_chroma: 8,
                width: 1280,
                height: 720,
                fps: Some(30.0),
                poc: info.poc,
            }
        );
        assert_eq!(
            (info.poc.poc_type, info.poc.frame_mbs_only),
            (0, true),
            "{:?}",
            info.poc
        );
        assert_eq!(params.sps(), Some(&from_hex(HIGH_SPS)[..]));
        assert_eq!(params.pps(0), Some(&from_hex(HIGH_PPS)[..]));
        assert!(params.is_ready());
    }

    #[test]
    fn reads_the_facts_of_a_real_baseline_sps() {
        let info = observed(&[&from_hex(BASE_SPS)]).info().cloned().unwrap();
        assert_eq!(
            (info.profile_idc, info.constraint_flags, info.level_idc),
            (66, 0xc0, 31)
        );
        assert_eq!((info.width, info.height, info.fps), (1280, 720, Some(30.0)));
    }

    #[test]
    fn reads_an_sps_whose_level_is_too_low_for_its_picture_and_keeps_that_level() {
        // The 720p baseline SPS declaring level 1.0 (99 macroblocks a frame, not 3,600):
        // decoders play it, so it must not stop the stream.
        let mut low = from_hex(BASE_SPS);
        low[LEVEL_IDC_BYTE] = 10;
        let info = observed(&[&low]).info().cloned().unwrap();
        assert_eq!((info.level_idc, info.width, info.height), (10, 1280, 720));
    }

    #[test]
    fn reports_no_frame_rate_without_vui() {
        let info = observed(&[&baseline_sps(79, 44)]).info().cloned().unwrap();
        assert_eq!((info.width, info.height, info.fps), (1280, 720, None));
    }

    #[test]
    fn accepts_an_sps_with_extra_bytes_after_the_vui() {
        // A camera that sends this SPS in band, with one byte too many, and
        // the same SPS without VUI out of band.
        let in_band = observed(&[&from_hex("67640033ac1514a0a03da1000004f6000063380404")]);
        let out_of_band = observed(&[&from_hex("67640033ac1514a0a03d90")]);
        let (a, b) = (in_band.info().unwrap(), out_of_band.info().unwrap());
        assert_eq!((a.width, a.height), (b.width, b.height));
        assert_eq!((a.profile_idc, a.level_idc), (100, 51));
    }

    #[test]
    fn is_not_ready_and_refuses_a_config_until_sps_and_pps_arrive() {
        let mut params = ParamSets::new();
        let mut out = Vec::new();
        assert!(!params.is_ready());
        assert!(matches!(
            params.write_decoder_config(&mut out),
            Err(H264Error::NoParameterSets)
        ));
        params.observe(&annexb(&[&from_hex(HIGH_SPS)])).unwrap();
        assert!(!params.is_ready());
        assert!(matches!(
            params.write_decoder_config(&mut out),
            Err(H264Error::NoParameterSets)
        ));
        params.observe(&annexb(&[&from_hex(HIGH_PPS)])).unwrap();
        assert!(params.is_ready());
        assert!(out.is_empty());
    }

    #[test]
    fn caches_a_buffer_of_only_sps_and_pps_like_the_legacy_pi_camera_sends() {
        let mut params = ParamSets::new();
        let info = params
            .observe(&annexb(&[&from_hex(HIGH_SPS), &from_hex(HIGH_PPS)]))
            .unwrap();
        assert_eq!(
            info,
            AuInfo {
                keyframe: false,
                has_picture: false,
                params_changed: true,
                slice: None,
            }
        );
        assert!(params.is_ready());
        assert_eq!(params.generation(), 2);
    }

    #[test]
    fn reports_keyframes_pictures_and_changes_per_access_unit() {
        let (sps, pps) = (from_hex(HIGH_SPS), from_hex(HIGH_PPS));
        let idr = [0x65, 0x88, 0x84];
        let p = [0x41, 0x9a, 0x02];
        let aud = [0x09, 0xf0];
        let mut params = ParamSets::new();
        let table: &[(&[&[u8]], AuInfo, u32)] = &[
            (
                &[&aud, &sps, &pps, &idr],
                AuInfo {
                    keyframe: true,
                    has_picture: true,
                    params_changed: true,
                    slice: None,
                },
                2,
            ),
            (
                &[&aud, &p],
                AuInfo {
                    keyframe: false,
                    has_picture: true,
                    params_changed: false,
                    slice: None,
                },
                2,
            ),
            (
                &[&sps, &pps, &idr],
                AuInfo {
                    keyframe: true,
                    has_picture: true,
                    params_changed: false,
                    slice: None,
                },
                2,
            ),
            (&[&aud], AuInfo::default(), 2),
            (
                &[&from_hex(BASE_SPS), &idr],
                AuInfo {
                    keyframe: true,
                    has_picture: true,
                    params_changed: true,
                    slice: None,
                },
                3,
            ),
        ];
        for (units, expected, generation) in table {
            let got = params.observe(&annexb(units)).unwrap();
            assert_eq!(AuInfo { slice: None, ..got }, *expected);
            assert_eq!(params.generation(), *generation);
        }
    }

    #[test]
    fn replaces_a_pps_by_id_and_forgets_the_oldest_of_five() {
        let pps = |id: u32, extra: bool| {
            let mut w = BitWriter::default();
            w.ue(id).ue(0).bit(extra);
            nal(0x68, &w.finish())
        };
        let mut params = observed(&[&from_hex(HIGH_SPS), &pps(0, false)]);
        params.observe(&annexb(&[&pps(0, true)])).unwrap();
        assert_eq!(params.pps(0), Some(&pps(0, true)[..]));
        for id in 1..=4 {
            params.observe(&annexb(&[&pps(id, false)])).unwrap();
        }
        assert_eq!(params.pps(0), None);
        for id in 1..=4 {
            assert_eq!(params.pps(id as u8), Some(&pps(id, false)[..]));
        }
        let mut out = Vec::new();
        params.write_decoder_config(&mut out).unwrap();
        let sps_len = from_hex(HIGH_SPS).len();
        assert_eq!(out[6 + 2 + sps_len], 4, "numOfPictureParameterSets");
    }

    #[test]
    fn lists_several_pps_in_ascending_id_order_in_the_record() {
        // PPS ids 3, 1, 2 as ue(v): 00100, 010, 011; then stop bit.
        let (pps3, pps1, pps2) = ([0x68, 0x24], [0x68, 0x50], [0x68, 0x70]);
        let params = observed(&[&from_hex(BASE_SPS), &pps3, &pps1, &pps2]);
        let mut out = Vec::new();
        params.write_decoder_config(&mut out).unwrap();
        let sps_record_end = 6 + 2 + from_hex(BASE_SPS).len();
        assert_eq!(
            out[..sps_record_end],
            from_hex(BASE_RECORD)[..sps_record_end]
        );
        assert_eq!(
            out[sps_record_end..],
            [3, 0, 2, 0x68, 0x50, 0, 2, 0x68, 0x70, 0, 2, 0x68, 0x24]
        );
    }

    #[test]
    fn rejects_a_broken_sps_and_keeps_the_previous_one() {
        let mut params = observed(&[&from_hex(HIGH_SPS), &from_hex(HIGH_PPS)]);
        let before = (params.generation(), params.info().cloned());
        let table: &[(&str, Vec<u8>)] = &[
            ("header only", vec![0x67]),
            ("truncated", from_hex(HIGH_SPS)[..6].to_vec()),
            ("absurd width", baseline_sps(100_000, 44)),
            ("absurd height", baseline_sps(79, u32::MAX - 1)),
            ("too large for its level", baseline_sps(1000, 1000)),
        ];
        for (what, sps) in table {
            let result = params.observe(&annexb(&[sps]));
            assert!(
                matches!(result, Err(H264Error::BadSps(_))),
                "{what}: {result:?}"
            );
            assert_eq!(
                (params.generation(), params.info().cloned()),
                before,
                "{what}"
            );
        }
    }

    #[test]
    fn rejects_parameter_sets_larger_than_their_slot() {
        let mut params = ParamSets::new();
        let mut huge = from_hex(HIGH_SPS);
        huge.resize(MAX_SPS_LEN + 1, 0x55);
        let result = params.observe(&annexb(&[&huge]));
        assert!(matches!(
            result,
            Err(H264Error::ParameterSetTooLarge {
                kind: "SPS",
                len: 513,
                limit: 512
            })
        ));
        let mut huge = from_hex(HIGH_PPS);
        huge.resize(MAX_PPS_LEN + 1, 0x55);
        let result = params.observe(&annexb(&[&huge]));
        assert!(matches!(
            result,
            Err(H264Error::ParameterSetTooLarge { kind: "PPS", .. })
        ));
        assert_eq!(params.generation(), 0);
    }

    #[test]
    fn rejects_a_pps_without_a_readable_id() {
        let mut params = ParamSets::new();
        for pps in [&[0x68][..], &[0x68, 0, 0, 3, 0][..]] {
            let result = params.observe(&annexb(&[pps]));
            assert!(
                matches!(result, Err(H264Error::BadPps(_))),
                "{pps:02x?}: {result:?}"
            );
        }
    }

    #[test]
    fn survives_every_truncation_and_bit_flip_of_a_real_sps() {
        let mut rng = XorShift(7);
        for base in [from_hex(HIGH_SPS), from_hex(BASE_SPS)] {
            for len in 0..=base.len() {
                let _ = ParamSets::new().observe(&annexb(&[&base[..len]]));
            }
            for _ in 0..3000 {
                let mut sps = base.clone();
                for _ in 0..=rng.below(3) {
                    let i = 1 + rng.below(sps.len() as u64 - 1) as usize;
                    sps[i] ^= 1 << rng.below(8);
                }
                let mut params = ParamSets::new();
                if params
                    .observe(&annexb(&[&sps, &from_hex(HIGH_PPS)]))
                    .is_ok()
                {
                    let mut out = Vec::new();
                    params.write_decoder_config(&mut out).unwrap();
                }
            }
        }
    }
}
