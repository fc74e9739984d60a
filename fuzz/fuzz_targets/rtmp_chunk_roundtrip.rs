//! `ChunkWriter` → `ChunkReader` round trip under arbitrary chunk-size changes: whatever
//! messages the writer frames (any chunk stream, timestamp, type, message stream, length,
//! header compression) and however the bytes are cut into reads, the reader gives back exactly
//! those messages, in order.
//!
//! Input (through `arbitrary::Unstructured`): a seed for the read sizes, then a list of
//! operations: write a message, or change the chunk size the way a peer does (a Set Chunk Size
//! message on chunk stream 2, written in the old size, after which the writer switches).
#![no_main]

use campush::rtmp::{msg_type, ChunkReader, ChunkWriter};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Chunk stream ids: the ones campush uses, and the edges of the 1-, 2- and 3-byte basic
/// header forms. 16 of them, the reader's limit.
const CSIDS: [u32; 16] = [
    2, 3, 4, 5, 6, 7, 62, 63, 64, 65, 318, 319, 320, 321, 65598, 65599,
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: Vec<u8>,
}

fn message(u: &mut Unstructured<'_>, clock: &mut [u32; 16]) -> Result<Msg> {
    let slot = u.choose_index(CSIDS.len())?;
    // Mostly small forward steps (fmt 1/2 with a delta), sometimes anything (fmt 0, jumps
    // back, extended timestamps).
    let timestamp = match u.int_in_range(0..=3u8)? {
        0 => u.arbitrary()?,
        1 => 0xFF_FFFF + u.int_in_range(0..=2u32)? - 1,
        _ => clock[slot].wrapping_add(u.int_in_range(0..=100u32)?),
    };
    clock[slot] = timestamp;
    let type_id = match u.arbitrary::<u8>()? {
        // Not protocol control: the reader applies those itself below.
        1 | 2 => msg_type::VIDEO,
        t => t,
    };
    let stream_id = u.int_in_range(0..=2u32)?;
    let len = u.int_in_range(0..=1500usize)?;
    let payload = u.bytes(len.min(u.len()))?.to_vec();
    Ok(Msg {
        csid: CSIDS[slot],
        timestamp,
        type_id,
        stream_id,
        payload,
    })
}

fn chunk_size(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0..=2u8)? {
        0 => u.int_in_range(1..=16u32)?,
        1 => u.int_in_range(17..=70_000u32)?,
        _ => u.int_in_range(1..=0x7FFF_FFFFu32)?,
    })
}

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let max_read = u.int_in_range(1..=512usize)?;
    let mut read_seed: u64 = u.arbitrary::<u64>()? | 1;

    let mut writer = ChunkWriter::new();
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    let mut clock = [0u32; 16];
    while !u.is_empty() && sent.len() < 200 {
        // Running out of input ends the list; what was written so far is still checked.
        let Ok(change) = u.ratio(1, 8) else { break };
        let m = if change {
            let Ok(size) = chunk_size(&mut u) else { break };
            let body = size.to_be_bytes();
            clock[0] = 0;
            Msg {
                csid: 2,
                timestamp: 0,
                type_id: msg_type::SET_CHUNK_SIZE,
                stream_id: 0,
                payload: body.to_vec(),
            }
        } else {
            let Ok(m) = message(&mut u, &mut clock) else {
                break;
            };
            m
        };
        writer.write_message(
            &mut wire,
            m.csid,
            m.timestamp,
            m.type_id,
            m.stream_id,
            &m.payload,
        );
        if change {
            // Our Set Chunk Size goes out in the old size; the new one applies after it.
            writer.set_chunk_size(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
        }
        sent.push(m);
    }

    let mut reader = ChunkReader::new(1 << 20);
    let mut got = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        read_seed ^= read_seed << 13;
        read_seed ^= read_seed >> 7;
        read_seed ^= read_seed << 17;
        let n = (1 + (read_seed % max_read as u64) as usize).min(wire.len() - at);
        let mut input = &wire[at..at + n];
        at += n;
        loop {
            let (used, m) = reader
                .read(input)
                .expect("the writer's own stream reads back");
            input = &input[used..];
            let Some(m) = m else { break };
            let m = Msg {
                csid: m.csid,
                timestamp: m.timestamp,
                type_id: m.type_id,
                stream_id: m.stream_id,
                payload: m.payload.to_vec(),
            };
            if m.type_id == msg_type::SET_CHUNK_SIZE {
                let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
                reader.set_chunk_size(size).expect("a size the writer sent");
            }
            got.push(m);
        }
    }
    assert_eq!(reader.bytes_received(), wire.len() as u64);
    assert_eq!(got.len(), sent.len(), "message count");
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(g, s, "message {i}");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
