//! `ChunkReader::read` on an arbitrary server chunk stream (what follows the handshake).
//!
//! Input: two control bytes, then the stream.
//! * byte 0 seeds the sizes of the pieces the stream is handed over in (`c + 1` is the largest
//!   piece; 0 hands it over one byte at a time), as TCP reads would;
//! * byte 1 picks the reader's message bound (256 B to 1 MiB) and, in its high bits, a chunk
//!   size set before the first byte (from 1 up).
//!
//! Set Chunk Size and Abort messages in the stream are applied as the session applies them, so
//! the chunk size changes to arbitrary values, at arbitrary places, also in the middle of other
//! chunk streams' messages. An invalid size ends the run, as it ends a session.
//!
//! Checked, beyond "no panic" and the memory limit: `read` never claims more than it was given,
//! always makes progress, returns messages no longer than the bound, and its byte count is
//! exactly what it consumed.
#![no_main]

use campush::rtmp::{msg_type, ChunkReader};
use libfuzzer_sys::fuzz_target;

#[path = "pieces.rs"]
mod pieces;
use pieces::Pieces;

/// This target's seed for [`Pieces`].
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

fuzz_target!(|data: &[u8]| {
    let [pieces, limits, stream @ ..] = data else {
        return;
    };
    let max_message = 256usize << (limits & 0x0f).min(12);
    let mut reader = ChunkReader::new(max_message);
    if limits >> 4 != 0 {
        reader
            .set_chunk_size(1 << ((limits >> 4) - 1).min(14))
            .expect("a valid chunk size");
    }
    let mut pieces = Pieces::new(SEED, *pieces);
    let mut consumed_total = 0u64;
    let mut at = 0;
    while at < stream.len() {
        let n = pieces.next().min(stream.len() - at);
        let mut input = &stream[at..at + n];
        at += n;
        // Every call consumes bytes or completes a message; a message needs at least one
        // byte of header, so there are at most two calls per byte, plus one.
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls <= 2 * n + 1, "read makes no progress");
            let (used, message) = match reader.read(input) {
                Ok(r) => r,
                Err(_) => return, // fatal: the connection would be dropped
            };
            assert!(
                used <= input.len(),
                "consumed {used} of {} bytes",
                input.len()
            );
            consumed_total += used as u64;
            input = &input[used..];
            let Some(m) = message else {
                assert!(
                    input.is_empty(),
                    "no message, yet {} bytes left",
                    input.len()
                );
                break;
            };
            assert!(m.payload.len() <= max_message);
            assert!((2..=65599).contains(&m.csid), "csid {}", m.csid);
            let (type_id, value) = (m.type_id, be_u32(m.payload));
            match (type_id, value) {
                (msg_type::SET_CHUNK_SIZE, Some(size)) => {
                    if reader.set_chunk_size(size).is_err() {
                        return;
                    }
                }
                (msg_type::ABORT, Some(csid)) => reader.abort(csid),
                _ => {}
            }
        }
        assert_eq!(reader.bytes_received(), consumed_total);
    }
});
