//! Client side of the plain RTMP handshake (Adobe RTMP 1.0 §5.2).
//!
//! ```text
//! client                         server
//!   C0 (0x03) + C1 (1536 bytes)  ->
//!                                <-  S0 (0x03) + S1 (1536) + S2 (1536)
//!   C2 (= S1 echoed)             ->
//! ```
//!
//! C1 is `time (4 bytes) = 0`, `zero (4 bytes)`, then 1528 pseudo-random bytes from the
//! caller's seed (xorshift64*; no randomness source in here). C2 is an exact echo of S1, which
//! is what plain (non-digest) clients such as ffmpeg and librtmp send and what every ingest
//! server accepts. S2 is read and discarded: many servers do not echo C1 faithfully, and
//! insisting on it would only break interoperability.
//!
//! Invariants: no buffering — S1 bytes are copied straight to `out` as C2 as they arrive
//! (C2 may therefore leave in several pieces; TCP does not care), S2 bytes are only counted,
//! so the handshake holds no peer data at all. Input beyond S2 is not consumed: it belongs to
//! the chunk stream. A first byte other than 3 is [`HandshakeError::NotRtmp`].

/// Size of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only RTMP version there is (C0/S0).
pub const RTMP_VERSION: u8 = 3;

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("not an RTMP server: first byte 0x{0:02x}, expected 0x03")]
    NotRtmp(u8),
    #[error("handshake bytes received before C0 and C1 were sent")]
    NotStarted,
}

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    /// C0+C1 not written yet.
    Idle,
    /// C0+C1 written; waiting for S0.
    AwaitS0,
    /// Reading S1 (echoing it as C2); `got` bytes so far.
    ReadingS1 { got: usize },
    /// Reading S2; `got` bytes so far.
    ReadingS2 { got: usize },
    /// S2 complete; the chunk stream may start.
    Done,
}

/// Sans-IO client handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    state: HandshakeState,
    seed: u64,
}

/// A tiny xorshift64* generator; good enough for C1 filler, which needs no secrecy.
#[derive(Debug, Clone)]
pub(crate) struct XorShift64(u64);

impl XorShift64 {
    pub(crate) fn new(seed: u64) -> Self {
        // The all-zero state is a fixed point; replace it.
        XorShift64(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Appends C0 and C1 (1537 bytes) made from `seed`.
pub fn write_c0c1(out: &mut Vec<u8>, seed: u64) {
    out.reserve(1 + HANDSHAKE_SIZE);
    out.push(RTMP_VERSION);
    out.extend_from_slice(&[0; 8]); // time = 0, zero = 0
    let mut rng = XorShift64::new(seed);
    let mut remaining = HANDSHAKE_SIZE - 8;
    while remaining > 0 {
        let bytes = rng.next_u64().to_be_bytes();
        let n = remaining.min(bytes.len());
        out.extend_from_slice(bytes.get(..n).unwrap_or(&bytes));
        remaining -= n;
    }
}

impl ClientHandshake {
    pub fn new(seed: u64) -> Self {
        ClientHandshake {
            state: HandshakeState::Idle,
            seed,
        }
    }

    pub fn state(&self) -> HandshakeState {
        self.state
    }

    pub fn is_done(&self) -> bool {
        self.state == HandshakeState::Done
    }

    /// Appends C0+C1. Does nothing if already started.
    pub fn start(&mut self, out: &mut Vec<u8>) {
        if self.state == HandshakeState::Idle {
            write_c0c1(out, self.seed);
            self.state = HandshakeState::AwaitS0;
        }
    }

    /// Consumes handshake bytes from the front of `input`, appending C2 (the S1 echo) to `out`
    /// as S1 arrives. Returns how many bytes were consumed; once [`Self::is_done`], the rest of
    /// `input` belongs to the chunk stream and is not consumed.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HandshakeError> {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            match self.state {
                HandshakeState::Idle => {
                    return if rest.is_empty() {
                        Ok(consumed)
                    } else {
                        Err(HandshakeError::NotStarted)
                    };
                }
                HandshakeState::Done => return Ok(consumed),
                HandshakeState::AwaitS0 => {
                    let Some(&version) = rest.first() else {
                        return Ok(consumed);
                    };
                    if version != RTMP_VERSION {
                        return Err(HandshakeError::NotRtmp(version));
                    }
                    consumed += 1;
                    out.reserve(HANDSHAKE_SIZE);
                    self.state = HandshakeState::ReadingS1 { got: 0 };
                }
                HandshakeState::ReadingS1 { got } => {
                    let n = rest.len().min(HANDSHAKE_SIZE - got);
                    if n == 0 {
                        return Ok(consumed);
                    }
                    out.extend_from_slice(rest.get(..n).unwrap_or_default());
                    consumed += n;
                    self.state = if got + n == HANDSHAKE_SIZE {
                        HandshakeState::ReadingS2 { got: 0 }
                    } else {
                        HandshakeState::ReadingS1 { got: got + n }
                    };
                }
                HandshakeState::ReadingS2 { got } => {
                    let n = rest.len().min(HANDSHAKE_SIZE - got);
                    if n == 0 {
                        return Ok(consumed);
                    }
                    consumed += n;
                    self.state = if got + n == HANDSHAKE_SIZE {
                        HandshakeState::Done
                    } else {
                        HandshakeState::ReadingS2 { got: got + n }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_reply(s1_fill: u8) -> Vec<u8> {
        let mut v = vec![RTMP_VERSION];
        v.extend((0..HANDSHAKE_SIZE).map(|i| (i as u8) ^ s1_fill));
        v.extend(std::iter::repeat_n(0xEE, HANDSHAKE_SIZE)); // S2 that echoes nothing
        v
    }

    #[test]
    fn c0c1_layout() {
        let mut out = Vec::new();
        let mut hs = ClientHandshake::new(42);
        hs.start(&mut out);
        assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1..9], &[0; 8], "time and zero fields");
        let random = &out[9..];
        assert_eq!(random.len(), 1528);
        // Not constant, and the same seed gives the same bytes.
        assert!(random.iter().any(|&b| b != random[0]));
        let mut again = Vec::new();
        write_c0c1(&mut again, 42);
        assert_eq!(again, out);
        let mut other = Vec::new();
        write_c0c1(&mut other, 43);
        assert_ne!(other, out);
        let mut zero = Vec::new();
        write_c0c1(&mut zero, 0);
        assert!(zero[9..].iter().any(|&b| b != 0), "seed 0 still varies");
        // start twice writes once
        hs.start(&mut out);
        assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
    }

    #[test]
    fn c2_echoes_s1_and_leftover_is_not_consumed() {
        let mut hs = ClientHandshake::new(1);
        let mut out = Vec::new();
        hs.start(&mut out);
        out.clear();
        let mut input = server_reply(0x5A);
        input.extend_from_slice(&[0x02, 0xAB]); // first bytes of the chunk stream
        let consumed = hs.receive(&input, &mut out).expect("ok");
        assert_eq!(consumed, 1 + 2 * HANDSHAKE_SIZE);
        assert!(hs.is_done());
        assert_eq!(out, &input[1..1 + HANDSHAKE_SIZE], "C2 = S1");
        // Done: nothing more consumed.
        assert_eq!(hs.receive(&[1, 2, 3], &mut out).expect("ok"), 0);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_c2() {
        let mut hs = ClientHandshake::new(7);
        let mut out = Vec::new();
        hs.start(&mut out);
        out.clear();
        let input = server_reply(0x11);
        for (i, b) in input.iter().enumerate() {
            assert!(!hs.is_done(), "done early at {i}");
            assert_eq!(hs.receive(std::slice::from_ref(b), &mut out), Ok(1));
        }
        assert!(hs.is_done());
        assert_eq!(out, &input[1..1 + HANDSHAKE_SIZE]);
    }

    #[test]
    fn wrong_s0_is_not_rtmp() {
        let mut hs = ClientHandshake::new(1);
        let mut out = Vec::new();
        hs.start(&mut out);
        // An HTTP server answering.
        assert_eq!(
            hs.receive(b"HTTP/1.1 400 Bad Request\r\n", &mut out),
            Err(HandshakeError::NotRtmp(b'H'))
        );
        assert!(HandshakeError::NotRtmp(b'H')
            .to_string()
            .contains("not an RTMP server"));
    }

    #[test]
    fn input_before_start_is_an_error() {
        let mut hs = ClientHandshake::new(1);
        let mut out = Vec::new();
        assert_eq!(hs.receive(&[], &mut out), Ok(0));
        assert_eq!(hs.receive(&[3], &mut out), Err(HandshakeError::NotStarted));
    }
}
