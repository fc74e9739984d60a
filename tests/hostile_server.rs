//! A hostile RTMP server cannot make a session hold much memory.
//!
//! The attacks are the ones an outside review measured at about 47 MiB per connection: 14
//! chunk streams each holding a 1 MiB message one byte short of complete, then a 1 MiB command
//! whose AMF0 is a strict array of nulls (each null becomes a 32-byte value). Every scenario
//! feeds the server's bytes, built beforehand, to a `ClientSession` (sans IO, no socket) and
//! measures the peak of the bytes allocated meanwhile with campush's counting allocator. The
//! session may end with an error (it should); what matters is what it held before it did.

use std::sync::{Mutex, MutexGuard};

use campush::alloc::{self, Counting};
use campush::amf0;
use campush::rtmp::{ChunkWriter, ClientSession, RtmpUrl, SessionConfig};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one connection may make campush hold, with room for the session's own buffers.
const BOUND: usize = 4 << 20;

/// The byte counters are global: each test holds this for its whole run (input building
/// included), so that no other test allocates while it measures.
fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Peak bytes allocated above the starting point while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = alloc::live_bytes();
    alloc::reset_peak();
    f();
    alloc::peak_bytes().saturating_sub(base)
}

/// A session past its handshake (connect sent), with room for what it sends.
fn session() -> (ClientSession, Vec<u8>) {
    let url = RtmpUrl::parse("rtmp://127.0.0.1/live/SeCrEt").expect("url");
    let mut session = ClientSession::new(SessionConfig::for_url(&url, 7));
    let mut out = Vec::with_capacity(64 * 1024);
    session.start(&mut out);
    let mut s0s1s2 = vec![3u8];
    s0s1s2.extend((0..2 * 1536).map(|i| (i % 251) as u8));
    session.receive(&s0s1s2, &mut out).expect("handshake");
    out.clear();
    (session, out)
}

/// Feeds `bytes` in 64 KiB reads, as a socket would, until the session fails.
fn feed(session: &mut ClientSession, out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    for piece in bytes.chunks(64 * 1024) {
        out.clear();
        session.receive(piece, out).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A server writer that has announced chunk size `size` (the announcement is returned).
fn server(size: u32) -> (ChunkWriter, Vec<u8>) {
    let mut w = ChunkWriter::new();
    let mut bytes = Vec::new();
    w.write_message(&mut bytes, 2, 0, 1, 0, &size.to_be_bytes());
    w.set_chunk_size(size);
    (w, bytes)
}

/// With chunk size 1025, a 1 MiB message is 1023 full chunks and a last chunk of one byte:
/// leaving out that last chunk (its 1-byte header and its byte) leaves the message one byte
/// short, with the reader between chunks.
const PARTIAL_CHUNK_SIZE: u32 = 1025;
const ONE_MIB: usize = 1 << 20;

/// `count` video messages of 1 MiB on chunk streams 4, 5, ..., each one byte short.
fn partial_messages(w: &mut ChunkWriter, bytes: &mut Vec<u8>, count: u32) {
    let payload = vec![0x17u8; ONE_MIB];
    for csid in 4..4 + count {
        w.write_message(bytes, csid, 0, 9, 1, &payload);
        bytes.truncate(bytes.len() - 2);
    }
}

/// A command of `len` bytes: `onStatus`, 0, null, then a strict array of nulls filling the rest.
fn command_of_nulls(len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(len);
    amf0::write_string(&mut body, "onStatus");
    amf0::write_number(&mut body, 0.0);
    amf0::write_null(&mut body);
    let count = len - body.len() - 5;
    amf0::write_strict_array_start(&mut body, count as u32);
    body.resize(len, 0x05);
    body
}

#[test]
fn fourteen_partial_messages_and_a_mebibyte_of_nulls_stay_under_the_bound() {
    let _alone = alone();
    let (mut w, mut bytes) = server(PARTIAL_CHUNK_SIZE);
    partial_messages(&mut w, &mut bytes, 14);
    w.write_message(&mut bytes, 3, 0, 20, 0, &command_of_nulls(ONE_MIB));
    let (mut session, mut out) = session();
    let mut result = Ok(());
    let peak = peak_during(|| result = feed(&mut session, &mut out, &bytes));
    eprintln!("both attacks: peak {peak} bytes; the session ended with {result:?}");
    assert!(peak < BOUND, "peak {peak} bytes");
}

#[test]
fn fourteen_partial_messages_alone_stay_under_the_bound() {
    let _alone = alone();
    let (mut w, mut bytes) = server(PARTIAL_CHUNK_SIZE);
    partial_messages(&mut w, &mut bytes, 14);
    let (mut session, mut out) = session();
    let mut result = Ok(());
    let peak = peak_during(|| result = feed(&mut session, &mut out, &bytes));
    eprintln!("14 partial messages: peak {peak} bytes; the session ended with {result:?}");
    assert!(peak < BOUND, "peak {peak} bytes");
    assert!(
        result.is_err(),
        "a server holding 14 MiB in flight is refused"
    );
}

#[test]
fn a_mebibyte_command_of_nulls_stays_under_the_bound() {
    let _alone = alone();
    let (mut w, mut bytes) = server(4096);
    w.write_message(&mut bytes, 3, 0, 20, 0, &command_of_nulls(ONE_MIB));
    let (mut session, mut out) = session();
    let mut result = Ok(());
    let peak = peak_during(|| result = feed(&mut session, &mut out, &bytes));
    eprintln!("1 MiB of nulls: peak {peak} bytes; the session ended with {result:?}");
    assert!(peak < BOUND, "peak {peak} bytes");
}

#[test]
fn the_largest_command_accepted_full_of_nulls_stays_small() {
    // Just under 64 KiB, the most a command may be: the AMF0 decoder's value count stops it.
    let _alone = alone();
    let (mut w, mut bytes) = server(4096);
    w.write_message(&mut bytes, 3, 0, 20, 0, &command_of_nulls(64 * 1024 - 16));
    let (mut session, mut out) = session();
    let mut result = Ok(());
    let peak = peak_during(|| result = feed(&mut session, &mut out, &bytes));
    eprintln!("64 KiB of nulls: peak {peak} bytes; the session ended with {result:?}");
    assert!(peak < 512 * 1024, "peak {peak} bytes");
}
