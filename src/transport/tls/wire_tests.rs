//! The sans-IO TLS client against rustls's own server, in memory: every version and cipher suite
//! both ways, session tickets and resumption, key updates from either side, close_notify, and
//! what a broken or hostile server can send (hand-made records sealed with the server's keys).

use std::io::Read as _;
use std::io::Write as _;
use std::sync::Arc;

use rustls::{CipherSuite, ClientConfig, ServerConfig, ServerConnection, SupportedProtocolVersion};
use rustls_pki_types::{PrivateKeyDer, ServerName};

use super::handshake::{Handshake, HandshakeError, Want};
use super::records::{seal_any_length, seal_record, Format, Keys, Read, TlsError, Traffic};
use super::TlsOptions;

struct Certificate {
    der: rustls_pki_types::CertificateDer<'static>,
    key: Vec<u8>,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

/// One certificate for the tests that need no second one (key generation is not free).
fn shared_certificate() -> &'static Certificate {
    static CERT: std::sync::OnceLock<Certificate> = std::sync::OnceLock::new();
    CERT.get_or_init(certificate)
}

fn certificate() -> Certificate {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, cert.cert.pem()).unwrap();
    Certificate {
        der: cert.cert.der().clone(),
        key: cert.key_pair.serialize_der(),
        _dir: dir,
        ca_file,
    }
}

/// Our production client configuration, trusting `cert`.
fn client_config(cert: &Certificate) -> Arc<ClientConfig> {
    super::client_config(&TlsOptions {
        ca_file: Some(cert.ca_file.clone()),
        insecure: false,
    })
    .unwrap()
}

fn server_config(
    cert: &Certificate,
    version: &'static SupportedProtocolVersion,
    suite: CipherSuite,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Arc<ServerConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    assert_eq!(provider.cipher_suites.len(), 1, "{suite:?}");
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der.clone()],
            PrivateKeyDer::try_from(cert.key.clone()).unwrap(),
        )
        .unwrap();
    tweak(&mut config);
    Arc::new(config)
}

/// rustls's server, and what it received.
struct Server {
    conn: ServerConnection,
    got: Vec<u8>,
    closed: bool,
    /// How the server ended the handshake, if it failed.
    failed: Option<rustls::Error>,
}

impl Server {
    fn new(config: &Arc<ServerConfig>) -> Server {
        Server {
            conn: ServerConnection::new(config.clone()).unwrap(),
            got: Vec::new(),
            closed: false,
            failed: None,
        }
    }

    /// Takes bytes from the client.
    fn take(&mut self, mut bytes: &[u8]) -> Result<(), rustls::Error> {
        while !bytes.is_empty() {
            self.conn.read_tls(&mut bytes).unwrap();
            let state = self.conn.process_new_packets()?;
            self.closed |= state.peer_has_closed();
            let mut buf = [0; 8192];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => self.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        Ok(())
    }

    /// Everything the server has to send.
    fn output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Sends `data` (its buffer takes 64 KiB at a time).
    fn write(&mut self, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.conn.writer().write(data).unwrap();
            data = &data[n..];
            out.extend(self.output());
        }
        out
    }
}

/// Runs a handshake with `server`, its bytes delivered `chunk` at a time.
fn handshake(
    config: &Arc<ClientConfig>,
    server: &mut Server,
    chunk: usize,
) -> Result<(Traffic, bool), HandshakeError> {
    let mut hs = Handshake::new(config.clone(), ServerName::try_from("localhost").unwrap())?;
    let mut pending = Vec::new();
    for _ in 0..100_000 {
        match hs.advance() {
            Ok(Want::Write) => {
                let out = hs.outgoing().to_vec();
                hs.sent(out.len());
                server.take(&out)?;
                pending.extend(server.output());
            }
            Ok(Want::Read) => {
                assert!(!pending.is_empty(), "both sides wait");
                let space = hs.input_space()?;
                let n = chunk.min(space.len()).min(pending.len());
                space[..n].copy_from_slice(&pending[..n]);
                pending.drain(..n);
                hs.received(n);
            }
            Ok(Want::Done) => {
                let resumed = hs.resumed();
                let mut traffic = hs.into_traffic()?;
                // Bytes the server sent that the handshake did not need (its session tickets).
                let (early, closed) = feed(&mut traffic, &pending, chunk).unwrap();
                assert!(early.is_empty() && !closed);
                return Ok((traffic, resumed));
            }
            Err(e) => {
                // The alert rustls meant for the server goes out too.
                let alert = hs.outgoing().to_vec();
                server.failed = server.take(&alert).err();
                return Err(e);
            }
        }
    }
    panic!("the handshake did not end");
}

/// Gives `bytes` to the client `chunk` at a time, reading as it goes; returns what it read and
/// whether the server closed.
fn feed(traffic: &mut Traffic, bytes: &[u8], chunk: usize) -> Result<(Vec<u8>, bool), TlsError> {
    let mut got = Vec::new();
    let mut rest = bytes;
    let mut buf = [0; 1000];
    loop {
        match traffic.read(&mut buf)? {
            Read::Data(n) => got.extend_from_slice(&buf[..n]),
            Read::Closed => return Ok((got, true)),
            Read::NeedMore if rest.is_empty() => return Ok((got, false)),
            Read::NeedMore => {
                let space = traffic.input_space();
                let n = chunk.min(space.len()).min(rest.len());
                assert!(n > 0, "no room for a partial record");
                space[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                traffic.received(n);
            }
        }
    }
}

/// Sends `data` through the client to `server`, handing over `piece` bytes of records at a time.
fn send(traffic: &mut Traffic, server: &mut Server, data: &[u8], piece: usize) {
    let mut at = 0;
    while at < data.len() || !traffic.outgoing().is_empty() {
        at += traffic.encrypt(&data[at..]).unwrap();
        let n = piece.min(traffic.outgoing().len());
        let out = traffic.outgoing()[..n].to_vec();
        traffic.sent(n);
        server.take(&out).unwrap();
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;

fn every_suite() -> [(&'static SupportedProtocolVersion, CipherSuite); 6] {
    [
        (TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256),
        (TLS13, CipherSuite::TLS13_AES_256_GCM_SHA384),
        (TLS13, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256),
        (TLS12, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        (TLS12, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        (
            TLS12,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

#[test]
fn every_version_and_cipher_suite_carries_data_both_ways() {
    let cert = certificate();
    let client = client_config(&cert);
    for (version, suite) in every_suite() {
        let mut server = Server::new(&server_config(&cert, version, suite, |_| {}));
        let (mut traffic, resumed) = handshake(&client, &mut server, 1 << 20).unwrap();
        assert!(!resumed);
        assert_eq!(traffic.cipher_suite(), suite);
        assert_eq!(traffic.protocol_version(), version.version);

        // A keyframe-sized message, and small ones, sent as the socket would take them.
        let big = pattern(300_000, 1);
        send(&mut traffic, &mut server, &big, usize::MAX);
        send(&mut traffic, &mut server, b"small", usize::MAX);
        send(&mut traffic, &mut server, &pattern(40_000, 2), 1000);
        // A socket that takes a little at a time: records move to the front to make room.
        send(&mut traffic, &mut server, &pattern(200_000, 3), 5000);
        let mut expected = big.clone();
        expected.extend_from_slice(b"small");
        expected.extend(pattern(40_000, 2));
        expected.extend(pattern(200_000, 3));
        assert!(
            server.got == expected,
            "{suite:?}: the server got other bytes"
        );

        // From the server, in pieces of every size down to single bytes.
        for chunk in [1 << 20, 1000, 7, 1] {
            let data = pattern(if chunk == 1 { 3000 } else { 70_000 }, chunk as u8);
            let bytes = server.write(&data);
            let (got, closed) = feed(&mut traffic, &bytes, chunk).unwrap();
            assert!(
                got == data && !closed,
                "{suite:?}: read other bytes (chunk {chunk})"
            );
        }
    }
}

#[test]
fn a_session_ticket_sent_after_the_handshake_resumes_the_next_connection() {
    let cert = certificate();
    for version in [TLS13, TLS12] {
        let suite = match version.version {
            rustls::ProtocolVersion::TLSv1_3 => CipherSuite::TLS13_AES_128_GCM_SHA256,
            _ => CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        };
        // Small records: the tickets (and the certificate) arrive split across records.
        for max_fragment in [None, Some(64)] {
            let config = server_config(&cert, version, suite, |c| {
                c.max_fragment_size = max_fragment;
            });
            let client = client_config(&cert);
            let mut first = Server::new(&config);
            let (mut traffic, resumed) = handshake(&client, &mut first, 5).unwrap();
            assert!(!resumed);
            send(&mut traffic, &mut first, b"hello", usize::MAX);
            assert_eq!(first.got, b"hello");

            let mut second = Server::new(&config);
            let (_, resumed) = handshake(&client, &mut second, 1 << 20).unwrap();
            assert!(resumed, "{version:?} {max_fragment:?}: not resumed");
        }
    }
}

#[test]
fn without_the_tickets_the_next_connection_is_a_full_handshake() {
    // The other side of the test above: TLS 1.3 resumption depends on the record layer handing
    // the tickets to rustls.
    let cert = certificate();
    let config = server_config(&cert, TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256, |_| {});
    let client = client_config(&cert);
    let mut first = Server::new(&config);
    let mut hs =
        Handshake::new(client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    loop {
        match hs.advance().unwrap() {
            Want::Write => {
                let out = hs.outgoing().to_vec();
                hs.sent(out.len());
                first.take(&out).unwrap();
            }
            Want::Read => {
                let bytes = first.output();
                let space = hs.input_space().unwrap();
                space[..bytes.len()].copy_from_slice(&bytes);
                hs.received(bytes.len());
            }
            Want::Done => break,
        }
    }
    let _traffic = hs.into_traffic().unwrap(); // the tickets never reach it
    let mut second = Server::new(&config);
    let (_, resumed) = handshake(&client, &mut second, 1 << 20).unwrap();
    assert!(!resumed);
}

#[test]
fn key_updates_from_the_server_are_followed_and_answered() {
    let cert = certificate();
    for suite in [
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ] {
        let mut server = Server::new(&server_config(&cert, TLS13, suite, |_| {}));
        let (mut traffic, _) = handshake(&client_config(&cert), &mut server, 1 << 20).unwrap();
        for round in 0..3u8 {
            // rustls asks for our update with its own.
            server.conn.refresh_traffic_keys().unwrap();
            let data = pattern(20_000, round);
            let bytes = server.write(&data);
            let (got, _) = feed(&mut traffic, &bytes, 999).unwrap();
            assert!(
                got == data,
                "round {round}: read other bytes after the key update"
            );

            // Our next records: a KeyUpdate (27 bytes) first, then data under the new key.
            let expected_len = server.got.len() + 100;
            let n = traffic.encrypt(&[round; 100]).unwrap();
            assert_eq!(n, 100);
            assert_eq!(traffic.outgoing().len(), 27 + 5 + 100 + 1 + 16);
            let out = traffic.outgoing().to_vec();
            traffic.sent(out.len());
            server.take(&out).unwrap();
            assert_eq!(server.got.len(), expected_len);
        }
    }
}

#[test]
fn a_server_that_only_changes_keys_is_cut_off() {
    let cert = shared_certificate();
    let config = server_config(cert, TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256, |_| {});
    let mut server = Server::new(&config);
    let (mut traffic, _) = handshake(&client_config(cert), &mut server, 1 << 20).unwrap();
    for _ in 0..32 {
        server.conn.refresh_traffic_keys().unwrap();
    }
    let mut bytes = server.output();
    bytes.extend(server.write(b"fine"));
    assert_eq!(feed(&mut traffic, &bytes, 1 << 20).unwrap().0, b"fine");
    for _ in 0..33 {
        server.conn.refresh_traffic_keys().unwrap();
    }
    let bytes = server.output();
    let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::BadKeyUpdate), "{err}");
}

#[test]
fn the_client_changes_keys_before_a_key_seals_too_many_records() {
    let cert = certificate();
    let mut server = Server::new(&server_config(
        &cert,
        TLS13,
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        |_| {},
    ));
    let (mut traffic, _) = handshake(&client_config(&cert), &mut server, 1 << 20).unwrap();
    traffic.set_tx_limit(3);
    let data = pattern(40 * 1000, 9);
    for piece in data.chunks(1000) {
        send(&mut traffic, &mut server, piece, usize::MAX);
    }
    assert!(server.got == data, "the server lost track of our keys");

    // TLS 1.2 has no key update: the connection ends, to be replaced.
    let suite = CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256;
    let mut server = Server::new(&server_config(&cert, TLS12, suite, |_| {}));
    let (mut traffic, _) = handshake(&client_config(&cert), &mut server, 1 << 20).unwrap();
    traffic.set_tx_limit(4);
    let mut result = Ok(0);
    for _ in 0..10 {
        result = traffic.encrypt(b"x");
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(TlsError::KeysUsedUp)), "{result:?}");
}

#[test]
fn close_notify_goes_both_ways() {
    let cert = certificate();
    for (version, suite) in every_suite() {
        let mut server = Server::new(&server_config(&cert, version, suite, |_| {}));
        let (mut traffic, _) = handshake(&client_config(&cert), &mut server, 1 << 20).unwrap();
        send(&mut traffic, &mut server, b"last words", usize::MAX);
        traffic.close().unwrap();
        traffic.close().unwrap(); // once only
        let out = traffic.outgoing().to_vec();
        traffic.sent(out.len());
        server.take(&out).unwrap();
        assert!(server.closed, "{suite:?}: the server saw no close_notify");
        assert_eq!(server.got, b"last words");
        assert!(matches!(
            traffic.encrypt(b"more"),
            Err(TlsError::WriteAfterClose)
        ));

        // TLS 1.3 allows the server to send after our close_notify; then it closes too.
        server.conn.send_close_notify();
        let bytes = server.output();
        let (got, closed) = feed(&mut traffic, &bytes, 3).unwrap();
        assert!(got.is_empty() && closed, "{suite:?}");
        assert_eq!(traffic.read(&mut [0; 10]).unwrap(), Read::Closed);
    }
}

#[test]
fn application_data_sent_with_the_handshake_is_read_first() {
    let cert = certificate();
    let config = server_config(&cert, TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256, |c| {
        c.send_half_rtt_data = true;
    });
    let mut server = Server::new(&config);
    server.conn.writer().write_all(b"half-rtt ").unwrap();
    let mut hs = Handshake::new(
        client_config(&cert),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut traffic = loop {
        match hs.advance().unwrap() {
            Want::Write => {
                let out = hs.outgoing().to_vec();
                hs.sent(out.len());
                server.take(&out).unwrap();
            }
            Want::Read => {
                let bytes = server.output();
                let space = hs.input_space().unwrap();
                space[..bytes.len()].copy_from_slice(&bytes);
                hs.received(bytes.len());
            }
            Want::Done => break hs.into_traffic().unwrap(),
        }
    };
    let mut bytes = server.output();
    bytes.extend(server.write(b"then the rest"));
    let (got, _) = feed(&mut traffic, &bytes, 10).unwrap();
    assert_eq!(got, b"half-rtt then the rest");
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_and_tells_the_server() {
    let cert = certificate();
    let stranger = certificate();
    let config = server_config(&cert, TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256, |_| {});
    let mut server = Server::new(&config);
    let err = match handshake(&client_config(&stranger), &mut server, 1 << 20) {
        Ok(_) => panic!("an untrusted certificate was accepted"),
        Err(e) => e,
    };
    // (Both self-signed certificates have the same subject: webpki finds a bad signature.)
    assert!(
        matches!(
            err,
            HandshakeError::Tls(rustls::Error::InvalidCertificate(_))
        ),
        "{err}"
    );
    // handshake() passed our alert on: the server knows why.
    assert!(
        matches!(server.failed, Some(rustls::Error::AlertReceived(_))),
        "{:?}",
        server.failed
    );
}

/// A connection whose server side is replaced by hand-made records, sealed with the server's
/// traffic keys.
struct Forger {
    keys: Keys,
    format: Format,
}

impl Forger {
    fn record(&mut self, typ: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; data.len() + 64];
        let n = seal_record(&mut self.keys, self.format, typ, data, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// A record around `data` of any length, even one no TLS implementation may send.
    fn any_length_record(&mut self, typ: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; data.len() + 64];
        let n = seal_any_length(&mut self.keys, self.format, typ, data, &mut out).unwrap();
        out.truncate(n);
        out
    }
}

fn forged(version: &'static SupportedProtocolVersion, suite: CipherSuite) -> (Traffic, Forger) {
    let cert = shared_certificate();
    let config = server_config(cert, version, suite, |c| {
        c.enable_secret_extraction = true;
    });
    let mut server = Server::new(&config);
    let (traffic, _) = handshake(&client_config(cert), &mut server, 1 << 20).unwrap();
    let supported = server.conn.negotiated_cipher_suite().unwrap();
    let secrets = server.conn.dangerous_extract_secrets().unwrap();
    let format = Format::of(supported, &secrets.tx.1);
    let keys = Keys::new(supported, secrets.tx).unwrap();
    (traffic, Forger { keys, format })
}

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const DATA: u8 = 23;

#[test]
fn hand_made_records_in_every_format_are_read() {
    for (version, suite) in every_suite() {
        let (mut traffic, mut server) = forged(version, suite);
        let mut bytes = server.record(DATA, b"one ");
        bytes.extend(server.record(DATA, b""));
        bytes.extend(server.record(DATA, b"two"));
        let (got, closed) = feed(&mut traffic, &bytes, 1).unwrap();
        assert_eq!(got, b"one two", "{suite:?}");
        assert!(!closed);
    }
}

#[test]
fn tls13_padding_is_stripped_and_an_all_padding_record_refused() {
    let (mut traffic, mut server) = forged(TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256);
    // The inner plaintext is data, content type, zeros. The forger appends a type byte of its
    // own: give it the data, the real type and all but one zero, and 0 as the "type".
    let mut inner = b"padded".to_vec();
    inner.push(DATA);
    inner.extend([0; 40]);
    let bytes = server.record(0, &inner);
    let (got, _) = feed(&mut traffic, &bytes, 1 << 20).unwrap();
    assert_eq!(got, b"padded");

    let bytes = server.record(0, &[0; 10]);
    let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Unexpected), "{err}");
}

#[test]
fn a_tls13_inner_plaintext_longer_than_2_14_plus_1_bytes_is_refused() {
    // The largest record there is: 2^14 bytes of data and the type byte.
    let (mut traffic, mut server) = forged(TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256);
    let full = vec![b'x'; 1 << 14];
    let (got, _) = feed(&mut traffic, &server.record(DATA, &full), 1 << 20).unwrap();
    assert_eq!(got, full);
    // The same with one byte of padding (the forger adds a 0 "type" after the real one): the
    // data is no longer than before, but the inner plaintext is, and the ciphertext is still
    // within the 2^14 + 256 bytes a record may take.
    let mut inner = full.clone();
    inner.push(DATA);
    let record = server.any_length_record(0, &inner);
    assert!(record.len() - 5 <= (1 << 14) + 256);
    let err = feed(&mut traffic, &record, 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Oversized), "{err}");
    assert!(!traffic.outgoing().is_empty(), "no record_overflow alert");
    // Padding alone cannot stretch it either.
    let (mut traffic, mut server) = forged(TLS13, CipherSuite::TLS13_AES_256_GCM_SHA384);
    let mut inner = b"small".to_vec();
    inner.push(DATA);
    inner.resize((1 << 14) + 1, 0);
    let err = feed(&mut traffic, &server.any_length_record(0, &inner), 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Oversized), "{err}");
}

#[test]
fn records_of_another_type_inside_a_split_handshake_message_are_refused() {
    let tls13 = CipherSuite::TLS13_AES_128_GCM_SHA256;
    let tls12 = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    // The first half of a NewSessionTicket or KeyUpdate (TLS 1.3), of a HelloRequest (TLS 1.2),
    // then application data or an alert that would otherwise be let through.
    type Case = (
        &'static SupportedProtocolVersion,
        CipherSuite,
        &'static [u8],
        u8,
        &'static [u8],
    );
    let cases: [Case; 4] = [
        (TLS13, tls13, &[4, 0], DATA, b"x"),
        (TLS13, tls13, &[24, 0], ALERT, &[1, 90]),
        (TLS12, tls12, &[0, 0], DATA, b"x"),
        (TLS12, tls12, &[0, 0], ALERT, &[1, 100]),
    ];
    for (version, suite, first_half, typ, data) in cases {
        let (mut traffic, mut server) = forged(version, suite);
        let mut bytes = server.record(HANDSHAKE, first_half);
        bytes.extend(server.record(typ, data));
        let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        assert!(
            matches!(err, TlsError::Unexpected),
            "{suite:?} {typ}: {err}"
        );
    }
}

#[test]
fn no_close_notify_follows_a_fatal_alert_sent_or_received() {
    for (version, suite) in every_suite() {
        // Sent: a tampered record gets bad_record_mac, and then nothing.
        let (mut traffic, mut server) = forged(version, suite);
        let mut bytes = server.record(DATA, b"genuine");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        let alert = traffic.outgoing().to_vec();
        assert!(!alert.is_empty(), "{suite:?}: no alert");
        traffic.close().unwrap();
        assert_eq!(traffic.outgoing(), alert, "{suite:?}: more after the alert");

        // Received: the server's fatal alert ends it on both sides.
        let (mut traffic, mut server) = forged(version, suite);
        let bytes = server.record(ALERT, &[2, 40]);
        feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        traffic.close().unwrap();
        assert!(
            traffic.outgoing().is_empty(),
            "{suite:?}: close_notify sent"
        );
    }
}

#[test]
fn a_tampered_record_is_refused_with_an_alert_and_stays_refused() {
    for (version, suite) in every_suite() {
        let (mut traffic, mut server) = forged(version, suite);
        let mut bytes = server.record(DATA, b"genuine");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        assert!(matches!(err, TlsError::Forged), "{suite:?}: {err}");
        // A fatal bad_record_mac alert is queued for the server.
        assert!(!traffic.outgoing().is_empty(), "{suite:?}: no alert");
        let err = traffic.read(&mut [0; 10]).unwrap_err();
        assert!(matches!(err, TlsError::Forged));
        assert!(traffic.encrypt(b"x").is_err());
    }
}

#[test]
fn post_handshake_messages_the_client_does_not_expect_are_refused() {
    let tls13 = CipherSuite::TLS13_AES_128_GCM_SHA256;
    type Expected = fn(&TlsError) -> bool;
    let cases: [(&[u8], Expected); 5] = [
        // KeyUpdate with an invalid request value.
        (&[24, 0, 0, 1, 2], |e| matches!(e, TlsError::BadKeyUpdate)),
        // A KeyUpdate followed by more in the same record.
        (&[24, 0, 0, 1, 0, 4, 0], |e| {
            matches!(e, TlsError::Unexpected)
        }),
        // Post-handshake CertificateRequest: we never offered post-handshake authentication.
        (&[13, 0, 0, 0], |e| matches!(e, TlsError::Unexpected)),
        // A NewSessionTicket that does not parse.
        (&[4, 0, 0, 2, 1, 2], |e| matches!(e, TlsError::Rustls(_))),
        // A message claiming more than any ticket needs.
        (&[4, 0x7f, 0, 0], |e| matches!(e, TlsError::Malformed)),
    ];
    for (message, expected) in cases {
        let (mut traffic, mut server) = forged(TLS13, tls13);
        let bytes = server.record(HANDSHAKE, message);
        let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        assert!(expected(&err), "{message:?}: {err}");
    }
    // Empty handshake records, change_cipher_spec and unknown content types.
    for (typ, data) in [(HANDSHAKE, &[][..]), (20, &[1][..]), (99, &[1][..])] {
        let (mut traffic, mut server) = forged(TLS13, tls13);
        let bytes = server.record(typ, data);
        let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
        assert!(matches!(err, TlsError::Unexpected), "{typ}: {err}");
    }
}

#[test]
fn a_tls12_hello_request_and_warnings_are_ignored_and_fatal_alerts_end_the_connection() {
    let suite = CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    let (mut traffic, mut server) = forged(TLS12, suite);
    let mut bytes = server.record(HANDSHAKE, &[0, 0, 0, 0]); // HelloRequest
    bytes.extend(server.record(ALERT, &[1, 100])); // warning: no_renegotiation
    bytes.extend(server.record(DATA, b"still here"));
    let (got, _) = feed(&mut traffic, &bytes, 1 << 20).unwrap();
    assert_eq!(got, b"still here");
    // A few more are let through, then no more.
    let mut bytes = server.record(ALERT, &[1, 100]);
    bytes.extend(server.record(HANDSHAKE, &[0, 0, 0, 0]));
    assert!(feed(&mut traffic, &bytes, 1 << 20).unwrap().0.is_empty());
    let bytes = server.record(ALERT, &[1, 100]);
    let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Unexpected), "{err}");

    let (mut traffic, mut server) = forged(TLS12, suite);
    let bytes = server.record(ALERT, &[2, 40]); // fatal handshake_failure
    let err = feed(&mut traffic, &bytes, 1 << 20).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Alert(rustls::AlertDescription::HandshakeFailure)
        ),
        "{err}"
    );

    // TLS 1.3: user_canceled is let through, any other alert ends it; malformed alerts too.
    let (mut traffic, mut server) = forged(TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut bytes = server.record(ALERT, &[1, 90]);
    bytes.extend(server.record(DATA, b"ok"));
    assert_eq!(feed(&mut traffic, &bytes, 1 << 20).unwrap().0, b"ok");
    let bytes = server.record(ALERT, &[1, 100]);
    assert!(matches!(
        feed(&mut traffic, &bytes, 1 << 20),
        Err(TlsError::Alert(_))
    ));
    let (mut traffic, mut server) = forged(TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256);
    let bytes = server.record(ALERT, &[1, 0, 0]);
    assert!(matches!(
        feed(&mut traffic, &bytes, 1 << 20),
        Err(TlsError::Malformed)
    ));
}

#[test]
fn a_key_update_split_across_records_is_followed() {
    let suite = CipherSuite::TLS13_AES_128_GCM_SHA256;
    // Split across two records is fine as long as nothing follows it in the second.
    let (mut traffic, mut server) = forged(TLS13, suite);
    let mut bytes = server.record(HANDSHAKE, &[24, 0]);
    bytes.extend(server.record(HANDSHAKE, &[0, 1, 0]));
    let (got, _) = feed(&mut traffic, &bytes, 1 << 20).unwrap();
    assert!(got.is_empty());
    // The forger's keys are now out of date: the client moved on, so the next record fails.
    let err = feed(&mut traffic, &server.record(DATA, b"x"), 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Forged), "{err}");
}

#[test]
fn garbage_from_the_server_is_refused_without_panicking() {
    // Bad headers first: wrong version byte, longer than allowed.
    let suite = CipherSuite::TLS13_AES_128_GCM_SHA256;
    let (mut traffic, _) = forged(TLS13, suite);
    let err = feed(&mut traffic, &[23, 2, 3, 0, 20], 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Malformed), "{err}");
    let (mut traffic, _) = forged(TLS13, suite);
    let err = feed(&mut traffic, &[23, 3, 3, 0x41, 0x01], 1 << 20).unwrap_err();
    assert!(matches!(err, TlsError::Oversized), "{err}");
    let (mut traffic, _) = forged(TLS12, CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let err = feed(
        &mut traffic,
        &[23, 3, 3, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        1,
    )
    .unwrap_err();
    assert!(matches!(err, TlsError::Forged), "{err}");

    // Then random bytes, with and without plausible headers, in every format.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (version, suite) in every_suite() {
        let (mut traffic, _) = forged(version, suite);
        for round in 0..40 {
            let len = (random() % 3000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| random() as u8).collect();
            if round % 2 == 0 && len >= 5 {
                bytes[0] = [21, 22, 23][(random() % 3) as usize];
                bytes[1] = 3;
                bytes[2] = 3;
                bytes[3..5].copy_from_slice(&((len - 5) as u16).to_be_bytes());
            }
            let chunk = 1 + (random() % 500) as usize;
            match feed(&mut traffic, &bytes, chunk) {
                Ok((got, _)) => assert!(got.is_empty(), "{suite:?}: garbage read as data"),
                Err(_) => {
                    let (fresh, _) = forged(version, suite);
                    traffic = fresh;
                }
            }
        }
    }
}

/// The tokio shell over a real loopback socket, against a rustls server that sends its records
/// a few bytes at a time: reads dropped half-way (the losing branch of a `select!`) lose nothing,
/// and what the client writes arrives whole, followed by close_notify.
#[tokio::test]
async fn reads_dropped_half_way_lose_nothing_and_writes_arrive_whole() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cert = shared_certificate();
    let config = server_config(cert, TLS13, CipherSuite::TLS13_AES_128_GCM_SHA256, |_| {});
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let to_send = pattern(100_000, 5);
    let expected = to_send.clone();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut conn = ServerConnection::new(config).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        // Records of many sizes, dribbled out 7 bytes at a time.
        let mut wire = Vec::new();
        for (i, piece) in to_send.chunks(777).enumerate() {
            let n = 1 + i % 700;
            conn.writer()
                .write_all(&piece[..n.min(piece.len())])
                .unwrap();
            conn.writer()
                .write_all(&piece[n.min(piece.len())..])
                .unwrap();
            while conn.wants_write() {
                conn.write_tls(&mut wire).unwrap();
            }
        }
        for (i, bytes) in wire.chunks(7).enumerate() {
            sock.write_all(bytes).unwrap();
            if i % 64 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Then read what the client sends, up to its close_notify.
        let mut got = Vec::new();
        let mut buf = [0; 16384];
        loop {
            let n = std::io::Read::read(&mut sock, &mut buf).unwrap();
            assert!(n > 0, "TCP closed before close_notify");
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                conn.read_tls(&mut rest).unwrap();
                let state = conn.process_new_packets().unwrap();
                let mut plain = vec![0; state.plaintext_bytes_to_read()];
                conn.reader().read_exact(&mut plain).unwrap();
                got.extend(plain);
                if state.peer_has_closed() {
                    return got;
                }
            }
        }
    });

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut stream = super::connect(client_config(cert), "localhost", tcp)
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 500];
    let mut dropped = 0;
    while got.len() < expected.len() {
        tokio::select! {
            biased;
            read = stream.read(&mut buf) => {
                let n = read.unwrap();
                assert!(n > 0, "EOF after {} bytes", got.len());
                got.extend_from_slice(&buf[..n]);
            }
            // Ready at its second poll: the read above is dropped if it is still pending.
            _ = tokio::task::yield_now() => dropped += 1,
        }
    }
    assert!(got == expected, "bytes were lost or reordered");
    assert!(
        dropped > 10,
        "only {dropped} reads were dropped: the test proves little"
    );

    let sent = pattern(300_000, 6);
    stream.write_all(&sent).await.unwrap();
    stream.flush().await.unwrap();
    stream.shutdown().await.unwrap();
    let received = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    assert!(received == sent, "the server got other bytes");
}
