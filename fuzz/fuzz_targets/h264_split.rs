//! The H.264 path from raw bytes to FLV samples: `AccessUnitSplitter` fed the input in
//! arbitrary chunks, `ParamSets::observe`, `write_decoder_config` and `annexb_to_avcc` on every
//! unit, and `ByteStream` reading the same input through a reader that returns arbitrary short
//! reads.
//!
//! Input: one control byte, then the Annex B bytes. The control byte seeds the chunk sizes
//! (`c + 1` is the largest chunk; 0 feeds one byte at a time).
//!
//! Checked, beyond "no panic": every `AccessUnit(n)` / `Skip(n)` is within the buffer and not
//! empty; units plus skipped bytes are the whole input, in order; the units do not depend on how
//! the input was chunked (whole, chunked and `ByteStream` agree); the AVCC rewrite is exactly
//! the unit's NAL units minus AUD and filler, each with its length.
#![no_main]

use std::io::{self, Read};

use campush::h264::{annexb_to_avcc, nal_type, nal_units, split_whole, ParamSets};
use campush::source::bytestream::ByteStream;
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;
use pieces::Pieces;

/// This target's seed for [`Pieces`].
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Runs the splitter the way a reader does; returns the units and the skipped byte count.
fn split(input: &[u8], chunk: impl FnMut() -> usize) -> (Vec<Vec<u8>>, usize) {
    split_whole(input, chunk).unwrap_or_else(|e| panic!("splitter: {e}"))
}

/// A reader handing out the input in the chunk sizes of `Pieces`.
struct Trickle<'a> {
    data: &'a [u8],
    chunks: Pieces,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunks.next().min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };

    let whole = split(input, || usize::MAX);
    let mut chunks = Pieces::new(SEED, control);
    let chunked = split(input, || chunks.next());
    assert_eq!(
        whole, chunked,
        "the units depend on how the input was chunked"
    );
    let (units, skipped) = whole;
    assert_eq!(
        units.iter().map(Vec::len).sum::<usize>() + skipped,
        input.len()
    );

    let mut params = ParamSets::new();
    let mut avcc = Vec::new();
    let mut record = Vec::new();
    for unit in &units {
        let _ = params.observe(unit);
        record.clear();
        if params.write_decoder_config(&mut record).is_ok() {
            assert!(
                record.len() >= 7,
                "a decoder configuration record of {} bytes",
                record.len()
            );
        }
        avcc.clear();
        let n = annexb_to_avcc(unit, &mut avcc);
        assert_eq!(n, avcc.len());
        let mut rest = &avcc[..];
        let kept = |u: &&[u8]| !matches!(nal_type(u), nal_type::AUD | nal_type::FILLER);
        for nal in nal_units(unit).filter(kept) {
            let (len, tail) = rest.split_at(4);
            assert_eq!(
                u32::from_be_bytes(len.try_into().unwrap()) as usize,
                nal.len()
            );
            let (body, tail) = tail.split_at(nal.len());
            assert_eq!(body, nal);
            rest = tail;
        }
        assert!(
            rest.is_empty(),
            "{} AVCC bytes beyond the NAL units",
            rest.len()
        );
    }

    // ByteStream: a looping source reads the input twice through one reset.
    let reader = Trickle {
        data: input,
        chunks: Pieces::new(SEED, control.rotate_left(3)),
    };
    let mut stream = ByteStream::new(reader, "fuzz input".into(), 0);
    for pass in 0..2 {
        let mut got: Vec<Vec<u8>> = Vec::new();
        let result = loop {
            match stream.next_unit() {
                Ok(Some(unit)) => got.push(unit.to_vec()),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
            assert!(got.len() <= units.len(), "ByteStream returned more units");
        };
        match result {
            Ok(()) => assert_eq!(got, units, "ByteStream disagrees with the splitter"),
            // "Not Annex B": only for input without a single access unit.
            Err(e) => assert!(units.is_empty() && got.is_empty(), "pass {pass}: {e}"),
        }
        stream.reset(Trickle {
            data: input,
            chunks: Pieces::new(SEED, control.rotate_left(5)),
        });
    }
});
