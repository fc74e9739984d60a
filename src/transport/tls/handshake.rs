//! The TLS handshake, sans IO: rustls's unbuffered client connection driven through its states,
//! with our own input and output buffers, then handed over to [`Traffic`].

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ClientConfig, HandshakeKind};
use rustls_pki_types::ServerName;

use super::records::{TlsError, Traffic, MAX_RECORD};

/// Largest input buffer the handshake may grow to: one handshake message (a long certificate
/// chain) must fit whole while rustls joins its records.
const MAX_INPUT: usize = 256 * 1024;
/// Largest output buffer (our flights are a ClientHello and a Finished, well under this).
const MAX_OUTPUT: usize = 64 * 1024;
/// Application data the server may send before the handshake ends (TLS 1.3 "0.5-RTT" data; an
/// RTMP server sends none).
const MAX_EARLY: usize = 64 * 1024;
/// States one [`Handshake::advance`] goes through at most before it needs I/O.
const MAX_STEPS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Traffic(#[from] TlsError),
    #[error("the server closed TLS before the handshake ended")]
    Closed,
    #[error("a TLS handshake message from the server is larger than {MAX_INPUT} bytes")]
    TooLarge,
    #[error("the server sent more than {MAX_EARLY} bytes of data during the TLS handshake")]
    TooMuchEarlyData,
    #[error("the TLS handshake did not progress")]
    Stuck,
    /// From the shell that moves the bytes.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What the handshake needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Send all of [`Handshake::outgoing`], then call [`Handshake::sent`] and advance again.
    Write,
    /// Receive into [`Handshake::input_space`], then call [`Handshake::received`] and advance.
    Read,
    /// Done: [`Handshake::into_traffic`].
    Done,
}

pub struct Handshake {
    conn: UnbufferedClientConnection,
    input: Vec<u8>,
    received: usize,
    output: Vec<u8>,
    queued: usize,
    early: Vec<u8>,
}

impl Handshake {
    /// Starts a handshake (the ClientHello is ready at the first [`Handshake::advance`]).
    /// `config` must allow secret extraction.
    pub fn new(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, rustls::Error> {
        Ok(Handshake {
            conn: UnbufferedClientConnection::new(config, name)?,
            input: vec![0; MAX_RECORD],
            received: 0,
            output: vec![0; 4096],
            queued: 0,
            early: Vec::new(),
        })
    }

    /// Runs rustls until it needs to send or receive, or the handshake is done. On a rustls
    /// error the alert for the server, if any, is left in [`Handshake::outgoing`].
    pub fn advance(&mut self) -> Result<Want, HandshakeError> {
        for _ in 0..MAX_STEPS {
            let UnbufferedStatus { mut discard, state } = self
                .conn
                .process_tls_records(&mut self.input[..self.received]);
            let next = match state {
                Err(e) => Err(HandshakeError::Tls(e)),
                Ok(ConnectionState::EncodeTlsData(mut state)) => {
                    let mut result = state.encode(&mut self.output[self.queued..]);
                    if let Err(EncodeError::InsufficientSize(short)) = &result {
                        let len = self.queued + short.required_size;
                        if len <= MAX_OUTPUT {
                            self.output.resize(len, 0);
                            result = state.encode(&mut self.output[self.queued..]);
                        }
                    }
                    match result {
                        Ok(n) => {
                            self.queued += n;
                            Ok(None)
                        }
                        Err(e) => Err(HandshakeError::Tls(rustls::Error::General(e.to_string()))),
                    }
                }
                // Marked as sent now: the caller sends it all before it advances again.
                Ok(ConnectionState::TransmitTlsData(state)) => {
                    state.done();
                    Ok((self.queued > 0).then_some(Want::Write))
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Want::Read)),
                Ok(ConnectionState::ReadTraffic(mut state)) => {
                    let mut result = Ok(None);
                    while let Some(record) = state.next_record() {
                        match record {
                            Ok(record) if self.early.len() + record.payload.len() <= MAX_EARLY => {
                                discard += record.discard;
                                self.early.extend_from_slice(record.payload);
                            }
                            Ok(_) => result = Err(HandshakeError::TooMuchEarlyData),
                            Err(e) => result = Err(HandshakeError::Tls(e)),
                        }
                        if result.is_err() {
                            break;
                        }
                    }
                    result
                }
                Ok(ConnectionState::WriteTraffic(_)) => Ok(Some(Want::Done)),
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    Err(HandshakeError::Closed)
                }
                Ok(_) => Err(HandshakeError::Stuck),
            };
            let discard = discard.min(self.received);
            self.input.copy_within(discard..self.received, 0);
            self.received -= discard;
            match next {
                Ok(None) => {}
                // rustls opens every complete record it is given; one left whole in the buffer is
                // part of a handshake message it is still joining (a session ticket split across
                // records): hand over only once that is complete.
                Ok(Some(Want::Done)) if holds_a_whole_record(&self.input[..self.received]) => {
                    return Ok(Want::Read)
                }
                Ok(Some(want)) => return Ok(want),
                Err(e) => {
                    if matches!(e, HandshakeError::Tls(_)) {
                        self.queue_alert();
                    }
                    return Err(e);
                }
            }
        }
        Err(HandshakeError::Stuck)
    }

    /// After an error of its own rustls still holds the alert it means to send: take it out.
    fn queue_alert(&mut self) {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut state)) = state {
            if let Ok(n) = state.encode(&mut self.output[self.queued..]) {
                self.queued += n;
            }
        }
    }

    /// Bytes to send to the server.
    pub fn outgoing(&self) -> &[u8] {
        &self.output[..self.queued]
    }

    /// `n` bytes of [`Handshake::outgoing`] were sent.
    pub fn sent(&mut self, n: usize) {
        let n = n.min(self.queued);
        self.output.copy_within(n..self.queued, 0);
        self.queued -= n;
    }

    /// Where to receive bytes from the server. Grows the buffer when it is full (a handshake
    /// message larger than it), up to a limit.
    pub fn input_space(&mut self) -> Result<&mut [u8], HandshakeError> {
        if self.received == self.input.len() {
            if self.input.len() >= MAX_INPUT {
                return Err(HandshakeError::TooLarge);
            }
            self.input.resize((self.input.len() * 2).min(MAX_INPUT), 0);
        }
        Ok(&mut self.input[self.received..])
    }

    /// `n` bytes were received into [`Handshake::input_space`].
    pub fn received(&mut self, n: usize) {
        self.received = (self.received + n).min(self.input.len());
    }

    /// Whether this handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The connection after a handshake that [`Handshake::advance`] reported done.
    pub fn into_traffic(self) -> Result<Traffic, HandshakeError> {
        let (secrets, kernel) = self.conn.dangerous_into_kernel_connection()?;
        Ok(Traffic::new(
            kernel,
            secrets,
            self.input,
            self.received,
            self.early,
        )?)
    }
}

fn holds_a_whole_record(buf: &[u8]) -> bool {
    match buf {
        [_, _, _, hi, lo, body @ ..] => body.len() >= usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => false,
    }
}
