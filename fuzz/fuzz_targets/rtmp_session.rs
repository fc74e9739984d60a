//! The whole publishing client, `ClientSession`, after `start()`, fed an arbitrary server byte
//! stream (S0, S1, S2, then the chunk stream: protocol control, user control, AMF0/AMF3
//! commands), in pieces of arbitrary sizes as TCP reads would deliver them.
//!
//! Input: one control byte seeding the piece sizes (`c + 1` is the largest piece; 0 hands the
//! stream over one byte at a time), then the server's bytes. The seeds are real servers'
//! replies, which take the session all the way to `Published`; once there, it writes
//! metadata, audio and video, as the publisher does; at the end it finishes.
//!
//! Checked, beyond "no panic" and the memory limit: an error closes the session for good; no
//! error ever shows the stream key (servers echo it; descriptions must be redacted); the
//! session only ever moves forward through its states.
#![no_main]

use campush::rtmp::{ClientSession, SessionConfig, SessionState};
use libfuzzer_sys::fuzz_target;

const KEY_NAME: &str = "SeCrEt_fuzz_42";
const KEY: &str = "SeCrEt_fuzz_42?auth=Pa55";

fn rank(s: SessionState) -> u8 {
    match s {
        SessionState::Handshaking => 0,
        SessionState::Connecting => 1,
        SessionState::CreatingStream => 2,
        SessionState::Publishing => 3,
        SessionState::Published => 4,
        SessionState::Closed => 5,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let mut session = ClientSession::new(SessionConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1:1935/live".into(),
        stream_key: KEY.into(),
        flash_ver: "FMLE/3.0 (compatible; campush)".into(),
        chunk_size: 4096,
        seed: 7,
        max_message_size: 1 << 20,
        window_ack_size: 32 * 1024,
    });
    let mut out = Vec::new();
    session.start(&mut out);
    assert_eq!(out.len(), 1 + 1536, "C0 + C1");

    let mut state = 0x853c_49e6_748f_ea9b ^ u64::from(control);
    let max = u64::from(control) + 1;
    let mut at = 0;
    let mut media_written = false;
    while at < stream.len() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (1 + (state % max) as usize).min(stream.len() - at);
        let before = rank(session.state());
        out.clear();
        let result = session.receive(&stream[at..at + n], &mut out);
        at += n;
        if let Err(e) = result {
            let text = e.to_string();
            assert!(!text.contains(KEY_NAME), "the stream key leaks: {text}");
            assert_eq!(session.state(), SessionState::Closed);
            assert!(
                session.receive(&[3], &mut out).is_err(),
                "a failed session takes input"
            );
            return;
        }
        assert!(
            rank(session.state()) >= before,
            "{:?} after {before}",
            session.state()
        );
        assert!(session.bytes_received() == at as u64);
        if session.is_published() {
            assert!(session.stream_id().is_some());
            if !media_written {
                media_written = true;
                session.write_metadata(&mut out, &[2, 0, 10, b'o', b'n', b'M', b'e', b't', b'a']);
                session.write_video(&mut out, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]);
                session.write_audio(&mut out, 0, &[0xaf, 0, 0x12, 0x10]);
                session.write_video(&mut out, 0x0100_0000, &[0x27, 1, 0, 0, 0]);
            }
        }
    }
    let had_stream = matches!(
        session.state(),
        SessionState::Publishing | SessionState::Published
    );
    out.clear();
    session.finish(&mut out);
    assert_eq!(session.state(), SessionState::Closed);
    assert_eq!(
        had_stream,
        !out.is_empty(),
        "FCUnpublish and deleteStream iff a stream exists"
    );
});
