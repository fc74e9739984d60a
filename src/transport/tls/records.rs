//! The TLS connection once the handshake is done, sans IO: application data is sealed into an
//! output buffer and records from the server are opened in place in an input buffer, both
//! allocated once per connection, so that streaming allocates nothing.
//!
//! rustls keeps the key schedule (its `KernelConnection`): it derives the next keys when either
//! side sends a TLS 1.3 KeyUpdate and stores the session tickets the server sends after the
//! handshake, so that the next connection resumes. What is left here is the record layer itself
//! (RFC 8446 §5, RFC 5246 §6.2.3.3 and RFC 7905 for TLS 1.2), with ring's AEADs:
//! - sequence numbers, one per record and direction, start where the handshake left them and
//!   restart at 0 with each new TLS 1.3 key; a nonce is never used twice with one key;
//! - a key seals at most its suite's confidentiality limit of records (2^24 for AES-GCM: days of
//!   streaming at a record or two per frame): a TLS 1.3 connection then sends a KeyUpdate and
//!   changes keys, a TLS 1.2 one ends with [`TlsError::KeysUsedUp`] and the publisher reconnects;
//! - after the handshake the server may send TLS 1.3 NewSessionTicket and KeyUpdate messages
//!   (answered with our own KeyUpdate when it asks for one, before our next record), a TLS 1.2
//!   HelloRequest (ignored: we never renegotiate), alerts and close_notify. Like rustls, we put
//!   up with a few warnings and at most 32 KeyUpdates in a row;
//! - anything else, or a record that fails authentication, ends the connection with an error and
//!   a best-effort alert to the server, after which nothing more is sent, close_notify included
//!   (RFC 8446 §6.2; the same after a fatal alert from the server). Nothing the server sends can
//!   make this code panic.
//!
//! As strict as rustls on what the server sends: a record's length is checked before it is
//! opened (2^14 + 256 bytes of ciphertext for TLS 1.3, 2^14 + 2048 for TLS 1.2), a TLS 1.3
//! inner plaintext (content, type byte and padding) longer than 2^14 + 1 bytes is refused
//! (RFC 8446 §5.4) and so is any TLS 1.2 plaintext over 2^14, all with record_overflow; no
//! record of another type may come between the records of a handshake message split across
//! several (§5.1), and a KeyUpdate must end its record (§5.1: no message spans a key change).

use ring::aead;
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ExtractedSecrets, ProtocolVersion,
    SupportedCipherSuite,
};

/// Largest plaintext of a record (RFC 8446 §5.1, RFC 5246 §6.2.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;
const HEADER: usize = 5;
/// Largest record the server may send: TLS 1.2 allows 2048 bytes of expansion, TLS 1.3 256.
pub const MAX_RECORD: usize = HEADER + MAX_PLAINTEXT + 2048;
const TAG: usize = 16;
/// TLS 1.2 AES-GCM sends the last 8 bytes of each nonce in the record.
const EXPLICIT_NONCE: usize = 8;
/// Most that sealing adds to a plaintext: header, explicit nonce (TLS 1.2 AES-GCM) or content
/// type byte (TLS 1.3), and tag.
const MAX_OVERHEAD: usize = HEADER + EXPLICIT_NONCE + TAG;
/// Room kept free for the records we add on our own (a KeyUpdate, an alert, close_notify).
const CONTROL_ROOM: usize = 2 * (MAX_OVERHEAD + 8);
/// Full records the output buffer holds: 64 KiB of application data, as much as rustls's own
/// buffered connection kept by default. A larger buffer would not mean fewer writes on a real
/// link: with `TCP_NOTSENT_LOWAT` the kernel takes little more than what is in flight anyway.
const OUT_RECORDS: usize = 4;
pub const OUT_CAPACITY: usize = OUT_RECORDS * (MAX_PLAINTEXT + MAX_OVERHEAD) + CONTROL_ROOM;
/// Sequence numbers rustls itself stops at, well before they could wrap.
const SEQ_SOFT_LIMIT: u64 = 0xffff_ffff_ffff_0000;
/// Largest post-handshake message accepted (a NewSessionTicket carries a ticket of at most
/// 64 KiB and a few extensions).
const MAX_HANDSHAKE_MESSAGE: usize = 0x1_0000 + 1024;
/// KeyUpdates the server may send without application data in between (as rustls and
/// BoringSSL allow).
const MAX_KEY_UPDATES_IN_A_ROW: u8 = 32;
/// Warning alerts and HelloRequests ignored in one connection before they become an error (as
/// many warnings as rustls puts up with).
const MAX_IGNORED: u8 = 4;

// Content types (RFC 8446 §5.1).
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
const HELLO_REQUEST: u8 = 0;
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;
// Alert levels and descriptions (RFC 8446 §6).
const WARNING: u8 = 1;
const FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;
const USER_CANCELED: u8 = 90;

/// Why the TLS connection ended abnormally after the handshake.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    #[error("the server sent a malformed TLS record")]
    Malformed,
    #[error("the server sent a TLS record longer than the protocol allows")]
    Oversized,
    #[error(
        "a TLS record from the server failed authentication (corrupted in transit, or forged)"
    )]
    Forged,
    #[error("the server sent a TLS message that has no place after the handshake")]
    Unexpected,
    #[error("the server sent an invalid TLS KeyUpdate")]
    BadKeyUpdate,
    #[error("the server ended TLS with the alert {0:?}")]
    Alert(AlertDescription),
    #[error(
        "the TLS keys have sealed as many records as they safely can; a new connection is needed"
    )]
    KeysUsedUp,
    #[error("the negotiated TLS cipher suite {0:?} is not supported")]
    Unsupported(rustls::CipherSuite),
    #[error("TLS data written after close_notify")]
    WriteAfterClose,
    /// A record was sealed without asking for room first: a bug, refused rather than risk
    /// overwriting records not yet sent.
    #[error("the TLS output buffer is full")]
    OutputFull,
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// The alert that tells the server why we end the connection, if any.
    fn alert(&self) -> Option<AlertDescription> {
        match self {
            TlsError::Malformed => Some(AlertDescription::DecodeError),
            TlsError::Oversized => Some(AlertDescription::RecordOverflow),
            TlsError::Forged => Some(AlertDescription::BadRecordMac),
            TlsError::Unexpected => Some(AlertDescription::UnexpectedMessage),
            TlsError::BadKeyUpdate => Some(AlertDescription::IllegalParameter),
            TlsError::Rustls(_) => Some(AlertDescription::InternalError),
            TlsError::Alert(_)
            | TlsError::KeysUsedUp
            | TlsError::Unsupported(_)
            | TlsError::WriteAfterClose
            | TlsError::OutputFull => None,
        }
    }
}

/// What [`Traffic::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many bytes of application data were copied out.
    Data(usize),
    /// No complete record is buffered: receive more into [`Traffic::input_space`].
    NeedMore,
    /// The server sent close_notify: it will send nothing more.
    Closed,
}

/// How records are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// TLS 1.3: the real content type inside, nonce = IV XOR sequence number, the header as
    /// additional data.
    Tls13,
    /// TLS 1.2 with AES-GCM: the last 8 bytes of the nonce are sent in each record (RFC 5288).
    Tls12ExplicitNonce,
    /// TLS 1.2 with ChaCha20-Poly1305: nonce = IV XOR sequence number (RFC 7905).
    Tls12,
}

impl Format {
    pub(super) fn of(suite: SupportedCipherSuite, secrets: &ConnectionTrafficSecrets) -> Format {
        match (suite, secrets) {
            (SupportedCipherSuite::Tls13(_), _) => Format::Tls13,
            (_, ConnectionTrafficSecrets::Chacha20Poly1305 { .. }) => Format::Tls12,
            _ => Format::Tls12ExplicitNonce,
        }
    }

    fn is_tls13(self) -> bool {
        self == Format::Tls13
    }
}

/// One direction's key, static IV and sequence number.
pub(super) struct Keys {
    key: aead::LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
}

impl Keys {
    pub(super) fn new(
        suite: SupportedCipherSuite,
        (seq, secrets): (u64, ConnectionTrafficSecrets),
    ) -> Result<Keys, TlsError> {
        let unsupported = || TlsError::Unsupported(suite.suite());
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(unsupported()),
        };
        let key = aead::UnboundKey::new(algorithm, key.as_ref()).map_err(|_| unsupported())?;
        let iv = iv.as_ref().try_into().map_err(|_| unsupported())?;
        Ok(Keys {
            key: aead::LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    /// The per-record nonce: the IV XOR the sequence number (RFC 8446 §5.3; the same for TLS 1.2
    /// with ChaCha20-Poly1305, and for AES-GCM it gives rustls's choice of explicit nonces).
    fn nonce(&self) -> [u8; aead::NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }

    fn next(&mut self) -> Result<(), TlsError> {
        self.seq = self.seq.checked_add(1).ok_or(TlsError::KeysUsedUp)?;
        Ok(())
    }
}

/// TLS 1.2's additional data: sequence number, then the record header with the plaintext's
/// length.
fn tls12_aad(seq: u64, header: [u8; HEADER], len: usize) -> aead::Aad<[u8; 13]> {
    let mut aad = [0; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8..11].copy_from_slice(&header[..3]);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aead::Aad::from(aad)
}

/// Half-open range of a buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A TLS client connection after its handshake.
pub struct Traffic {
    kernel: KernelConnection<ClientConnectionData>,
    format: Format,
    tx: Keys,
    rx: Keys,
    /// Records one key may seal.
    tx_limit: u64,
    /// The server asked for a KeyUpdate: send one before our next record.
    owe_key_update: bool,
    key_updates_in_a_row: u8,
    ignored: u8,
    /// Received bytes: opened application data (`plain`), then bytes not yet opened (`raw`).
    input: Box<[u8]>,
    plain: Span,
    raw: Span,
    /// Application data that came with the handshake (rare), read first.
    early: Vec<u8>,
    early_read: usize,
    /// A post-handshake message split across records.
    partial: Vec<u8>,
    /// Sealed records not yet sent.
    output: Box<[u8]>,
    out: Span,
    peer_closed: bool,
    close_sent: bool,
    failed: Option<TlsError>,
}

impl Traffic {
    /// Takes over from a completed handshake: `input[..received]` are bytes received after it
    /// (starting at a record boundary), `early` application data already decrypted by rustls.
    pub fn new(
        kernel: KernelConnection<ClientConnectionData>,
        secrets: ExtractedSecrets,
        mut input: Vec<u8>,
        received: usize,
        early: Vec<u8>,
    ) -> Result<Traffic, TlsError> {
        let suite = kernel.negotiated_cipher_suite();
        if !matches!(
            kernel.protocol_version(),
            ProtocolVersion::TLSv1_3 | ProtocolVersion::TLSv1_2
        ) {
            return Err(TlsError::Unsupported(suite.suite()));
        }
        let format = Format::of(suite, &secrets.tx.1);
        let confidentiality_limit = match suite {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        let tx = Keys::new(suite, secrets.tx)?;
        let rx = Keys::new(suite, secrets.rx)?;
        if input.len() < MAX_RECORD {
            input.resize(MAX_RECORD, 0);
        }
        let received = received.min(input.len());
        Ok(Traffic {
            kernel,
            format,
            tx,
            rx,
            tx_limit: confidentiality_limit.min(SEQ_SOFT_LIMIT),
            owe_key_update: false,
            key_updates_in_a_row: 0,
            ignored: 0,
            input: input.into_boxed_slice(),
            plain: Span::default(),
            raw: Span {
                start: 0,
                end: received,
            },
            early,
            early_read: 0,
            partial: Vec::new(),
            output: vec![0; OUT_CAPACITY].into_boxed_slice(),
            out: Span::default(),
            peer_closed: false,
            close_sent: false,
            failed: None,
        })
    }

    pub fn protocol_version(&self) -> ProtocolVersion {
        self.kernel.protocol_version()
    }

    pub fn cipher_suite(&self) -> rustls::CipherSuite {
        self.kernel.negotiated_cipher_suite().suite()
    }

    // ---- receiving ----------------------------------------------------------------------------

    /// Where to put bytes received from the server; never empty while [`Read::NeedMore`] is the
    /// answer. Moves the unopened bytes to the front once everything opened has been read.
    pub fn input_space(&mut self) -> &mut [u8] {
        if self.plain.is_empty() && self.raw.start > 0 {
            self.input.copy_within(self.raw.start..self.raw.end, 0);
            self.raw = Span {
                start: 0,
                end: self.raw.len(),
            };
            self.plain = Span::default();
        }
        &mut self.input[self.raw.end..]
    }

    /// `n` bytes were received into [`Traffic::input_space`].
    pub fn received(&mut self, n: usize) {
        self.raw.end = (self.raw.end + n).min(self.input.len());
    }

    /// Copies application data into `dst`, opening buffered records as needed.
    pub fn read(&mut self, dst: &mut [u8]) -> Result<Read, TlsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if dst.is_empty() {
            return Ok(Read::Data(0));
        }
        if self.early_read < self.early.len() {
            let n = copy(&self.early[self.early_read..], dst);
            self.early_read += n;
            if self.early_read == self.early.len() {
                self.early = Vec::new();
                self.early_read = 0;
            }
            return Ok(Read::Data(n));
        }
        // Each turn opens one buffered record (at least 5 bytes) or returns.
        loop {
            if !self.plain.is_empty() {
                let n = copy(&self.input[self.plain.start..self.plain.end], dst);
                self.plain.start += n;
                return Ok(Read::Data(n));
            }
            if self.peer_closed {
                return Ok(Read::Closed);
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return Ok(Read::NeedMore),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Opens the next buffered record and acts on it. `Ok(false)`: no complete record buffered.
    fn open_next(&mut self) -> Result<bool, TlsError> {
        let raw = &self.input[self.raw.start..self.raw.end];
        let Some(header) = raw.first_chunk::<HEADER>().copied() else {
            return Ok(false);
        };
        let typ = header[0];
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[1] != 3 {
            return Err(TlsError::Malformed);
        }
        let max = match self.format {
            Format::Tls13 => MAX_PLAINTEXT + 256,
            Format::Tls12 | Format::Tls12ExplicitNonce => MAX_PLAINTEXT + 2048,
        };
        if len > max {
            return Err(TlsError::Oversized);
        }
        if raw.len() < HEADER + len {
            return Ok(false);
        }
        let body_start = self.raw.start + HEADER;
        self.raw.start = body_start + len;
        let body = &mut self.input[body_start..body_start + len];
        let (typ, plain) = match self.format {
            Format::Tls13 => {
                if typ != APPLICATION_DATA {
                    return Err(TlsError::Unexpected);
                }
                let nonce = aead::Nonce::assume_unique_for_key(self.rx.nonce());
                let inner = self
                    .rx
                    .key
                    .open_in_place(nonce, aead::Aad::from(header), body)
                    .map_err(|_| TlsError::Forged)?;
                // TLSInnerPlaintext: content, type byte, padding; 2^14 + 1 bytes at most, padding
                // included (RFC 8446 §5.4).
                if inner.len() > MAX_PLAINTEXT + 1 {
                    return Err(TlsError::Oversized);
                }
                // The content type is the last non-zero byte; zeros after it are padding.
                let Some(at) = inner.iter().rposition(|&b| b != 0) else {
                    return Err(TlsError::Unexpected);
                };
                (inner[at], body_start..body_start + at)
            }
            Format::Tls12ExplicitNonce => {
                let Some(plain_len) = len.checked_sub(EXPLICIT_NONCE + TAG) else {
                    return Err(TlsError::Forged);
                };
                let mut nonce = self.rx.iv;
                nonce[4..].copy_from_slice(&body[..EXPLICIT_NONCE]);
                let nonce = aead::Nonce::assume_unique_for_key(nonce);
                let aad = tls12_aad(self.rx.seq, header, plain_len);
                self.rx
                    .key
                    .open_in_place(nonce, aad, &mut body[EXPLICIT_NONCE..])
                    .map_err(|_| TlsError::Forged)?;
                let start = body_start + EXPLICIT_NONCE;
                (typ, start..start + plain_len)
            }
            Format::Tls12 => {
                let Some(plain_len) = len.checked_sub(TAG) else {
                    return Err(TlsError::Forged);
                };
                let nonce = aead::Nonce::assume_unique_for_key(self.rx.nonce());
                let aad = tls12_aad(self.rx.seq, header, plain_len);
                self.rx
                    .key
                    .open_in_place(nonce, aad, body)
                    .map_err(|_| TlsError::Forged)?;
                (typ, body_start..body_start + plain_len)
            }
        };
        self.rx.next()?;
        if plain.len() > MAX_PLAINTEXT {
            return Err(TlsError::Oversized);
        }
        // The rest of a handshake message split across records comes first (RFC 8446 §5.1).
        if typ != HANDSHAKE && !self.partial.is_empty() {
            return Err(TlsError::Unexpected);
        }
        match typ {
            APPLICATION_DATA => {
                self.key_updates_in_a_row = 0;
                self.plain = Span {
                    start: plain.start,
                    end: plain.end,
                };
            }
            HANDSHAKE => self.handshake_messages(plain)?,
            ALERT => self.alert(plain)?,
            // change_cipher_spec (no renegotiation here) and unknown types.
            _ => return Err(TlsError::Unexpected),
        }
        Ok(true)
    }

    /// Acts on the post-handshake messages that `input[plain]` completes.
    fn handshake_messages(&mut self, plain: std::ops::Range<usize>) -> Result<(), TlsError> {
        if plain.is_empty() {
            return Err(TlsError::Unexpected); // RFC 8446 §5.1: no empty handshake records
        }
        self.partial.extend_from_slice(&self.input[plain]);
        let mut at = 0;
        // Each turn consumes one whole message (at least its 4-byte header) or stops.
        while let Some(&[typ, a, b, c]) = self.partial.get(at..at + 4) {
            let len = u32::from_be_bytes([0, a, b, c]) as usize;
            if len > MAX_HANDSHAKE_MESSAGE {
                return Err(TlsError::Malformed);
            }
            let Some(body) = self.partial.get(at + 4..at + 4 + len) else {
                break;
            };
            at += 4 + len;
            match (self.format.is_tls13(), typ) {
                (true, NEW_SESSION_TICKET) => {
                    self.kernel.handle_new_session_ticket(body)?;
                }
                (true, KEY_UPDATE) => {
                    match body {
                        [0] => {}
                        [1] => self.owe_key_update = true,
                        _ => return Err(TlsError::BadKeyUpdate),
                    }
                    // The next record is under the new key: a message may not straddle it.
                    if at != self.partial.len() {
                        return Err(TlsError::Unexpected);
                    }
                    self.key_updates_in_a_row += 1;
                    if self.key_updates_in_a_row > MAX_KEY_UPDATES_IN_A_ROW {
                        return Err(TlsError::BadKeyUpdate);
                    }
                    let suite = self.kernel.negotiated_cipher_suite();
                    self.rx = Keys::new(suite, self.kernel.update_rx_secret()?)?;
                }
                // We never renegotiate; RFC 5246 §7.4.1.1 lets a client ignore the request.
                (false, HELLO_REQUEST) if len == 0 => self.ignore()?,
                _ => return Err(TlsError::Unexpected),
            }
        }
        self.partial.drain(..at);
        Ok(())
    }

    fn alert(&mut self, plain: std::ops::Range<usize>) -> Result<(), TlsError> {
        let &[level, description] = &self.input[plain] else {
            return Err(TlsError::Malformed);
        };
        if description == CLOSE_NOTIFY {
            self.peer_closed = true;
            return Ok(());
        }
        // user_canceled comes before a close_notify; TLS 1.2 warnings are only that.
        let ignored = description == USER_CANCELED || (!self.format.is_tls13() && level == WARNING);
        if ignored {
            log::debug!(
                "TLS alert {:?} from the server",
                AlertDescription::from(description)
            );
            return self.ignore();
        }
        Err(TlsError::Alert(AlertDescription::from(description)))
    }

    /// Counts a message let through without effect; too many is an error.
    fn ignore(&mut self) -> Result<(), TlsError> {
        self.ignored = self.ignored.saturating_add(1);
        if self.ignored > MAX_IGNORED {
            return Err(TlsError::Unexpected);
        }
        Ok(())
    }

    /// Records `e` as the end of this connection, with an alert for the server if there is room.
    fn fail(&mut self, e: TlsError) -> TlsError {
        if let Some(alert) = e.alert().filter(|_| !self.close_sent) {
            if self.has_room(2) {
                let _ = self.seal(ALERT, &[FATAL, u8::from(alert)]);
            }
        }
        self.failed = Some(e.clone());
        e
    }

    // ---- sending ------------------------------------------------------------------------------

    /// Seals as much of `data` as the output buffer has room for, in records of up to 16 KiB;
    /// returns how much that was (0: send [`Traffic::outgoing`] first).
    pub fn encrypt(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.close_sent {
            return Err(TlsError::WriteAfterClose);
        }
        let mut taken = 0;
        // Each turn seals one record or stops.
        while taken < data.len() {
            let n = (data.len() - taken).min(MAX_PLAINTEXT);
            if !self.has_room(n) {
                break;
            }
            if let Err(e) = self.seal(APPLICATION_DATA, &data[taken..taken + n]) {
                return Err(self.fail(e));
            }
            taken += n;
        }
        Ok(taken)
    }

    /// Queues close_notify (once), unless the connection ended with a fatal alert, sent or
    /// received: then nothing more is sent (RFC 8446 §6.2).
    pub fn close(&mut self) -> Result<(), TlsError> {
        if self.close_sent || self.failed.is_some() {
            return Ok(());
        }
        if !self.has_room(2) {
            return Err(TlsError::OutputFull);
        }
        self.seal(ALERT, &[WARNING, CLOSE_NOTIFY])?;
        self.close_sent = true;
        Ok(())
    }

    /// Sealed records to send, in order.
    pub fn outgoing(&self) -> &[u8] {
        &self.output[self.out.start..self.out.end]
    }

    /// `n` bytes of [`Traffic::outgoing`] were sent.
    pub fn sent(&mut self, n: usize) {
        self.out.start = (self.out.start + n).min(self.out.end);
        if self.out.is_empty() {
            self.out = Span::default();
        }
    }

    /// Whether a record of `n` plaintext bytes fits, with room left for a KeyUpdate before it.
    /// Moves unsent records to the front when that makes room.
    fn has_room(&mut self, n: usize) -> bool {
        let need = n + MAX_OVERHEAD + CONTROL_ROOM / 2;
        if self.output.len() - self.out.end < need && self.out.start > 0 {
            self.output.copy_within(self.out.start..self.out.end, 0);
            self.out = Span {
                start: 0,
                end: self.out.len(),
            };
        }
        self.output.len() - self.out.end >= need
    }

    /// Seals one record, after a KeyUpdate when one is owed or the key is used up.
    fn seal(&mut self, typ: u8, data: &[u8]) -> Result<(), TlsError> {
        let used_up = self.tx.seq.saturating_add(1) >= self.tx_limit;
        if self.owe_key_update || used_up {
            if !self.format.is_tls13() {
                return Err(TlsError::KeysUsedUp);
            }
            // Sealed with the old key (taking its last sequence number if it is used up).
            self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0])?;
            let suite = self.kernel.negotiated_cipher_suite();
            self.tx = Keys::new(suite, self.kernel.update_tx_secret()?)?;
            self.owe_key_update = false;
        }
        self.seal_record(typ, data)
    }

    fn seal_record(&mut self, typ: u8, data: &[u8]) -> Result<(), TlsError> {
        if self.tx.seq >= self.tx_limit {
            return Err(TlsError::KeysUsedUp);
        }
        let format = self.format;
        let space = &mut self.output[self.out.end..];
        self.out.end += seal_record(&mut self.tx, format, typ, data, space)?;
        Ok(())
    }

    /// Lowers the number of records a key may seal, to exercise key changes.
    #[cfg(test)]
    pub fn set_tx_limit(&mut self, limit: u64) {
        self.tx_limit = limit;
    }
}

/// Seals one record of type `typ` around `data` at the start of `out` with the next sequence
/// number of `keys`; returns the record's length.
pub(super) fn seal_record(
    keys: &mut Keys,
    format: Format,
    typ: u8,
    data: &[u8],
    out: &mut [u8],
) -> Result<usize, TlsError> {
    if data.len() > MAX_PLAINTEXT {
        return Err(TlsError::OutputFull); // callers split: a record holds at most 16 KiB
    }
    seal_any_length(keys, format, typ, data, out)
}

/// [`seal_record`] without the bound on `data`'s length: the tests' hostile server uses it to
/// make records no TLS implementation may send.
pub(super) fn seal_any_length(
    keys: &mut Keys,
    format: Format,
    typ: u8,
    data: &[u8],
    out: &mut [u8],
) -> Result<usize, TlsError> {
    let n = data.len();
    let (outer_type, body_len) = match format {
        Format::Tls13 => (APPLICATION_DATA, n + 1 + TAG),
        Format::Tls12ExplicitNonce => (typ, EXPLICIT_NONCE + n + TAG),
        Format::Tls12 => (typ, n + TAG),
    };
    let Some(record) = out.get_mut(..HEADER + body_len) else {
        return Err(TlsError::OutputFull);
    };
    let [hi, lo] = (body_len as u16).to_be_bytes();
    let header = [outer_type, 3, 3, hi, lo];
    record[..HEADER].copy_from_slice(&header);
    let nonce = keys.nonce();
    let mut at = HEADER;
    if format == Format::Tls12ExplicitNonce {
        record[at..at + EXPLICIT_NONCE].copy_from_slice(&nonce[4..]);
        at += EXPLICIT_NONCE;
    }
    record[at..at + n].copy_from_slice(data);
    let mut sealed = at..at + n;
    if format == Format::Tls13 {
        record[sealed.end] = typ; // the real content type, inside the encryption
        sealed.end += 1;
    }
    let nonce = aead::Nonce::assume_unique_for_key(nonce);
    let tag_at = sealed.end;
    let in_out = &mut record[sealed];
    let tag = match format {
        Format::Tls13 => {
            keys.key
                .seal_in_place_separate_tag(nonce, aead::Aad::from(header), in_out)
        }
        Format::Tls12 | Format::Tls12ExplicitNonce => {
            let aad = tls12_aad(keys.seq, header, n);
            keys.key.seal_in_place_separate_tag(nonce, aad, in_out)
        }
    }
    .map_err(|_| TlsError::Rustls(rustls::Error::EncryptError))?;
    record[tag_at..tag_at + TAG].copy_from_slice(tag.as_ref());
    keys.next()?;
    Ok(HEADER + body_len)
}

fn copy(from: &[u8], to: &mut [u8]) -> usize {
    let n = from.len().min(to.len());
    to[..n].copy_from_slice(&from[..n]);
    n
}
