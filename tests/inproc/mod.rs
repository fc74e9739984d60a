//! An independent RTMP server (scuffle-rtmp) running in-process on loopback, recording what
//! each publisher sent, so plain `cargo test` exercises campush's protocol end to end without
//! any external program.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scuffle_rtmp::session::server::{ServerSessionError, SessionData, SessionHandler};
use scuffle_rtmp::ServerSession;

/// Everything one server saw, across connections.
#[derive(Debug, Default, Clone)]
pub struct Received {
    /// (app, stream name) of every publish.
    pub publishes: Vec<(String, String)>,
    /// (timestamp, FLV video tag body) in arrival order.
    pub videos: Vec<(u32, Vec<u8>)>,
    /// (timestamp, FLV audio tag body) in arrival order.
    pub audios: Vec<(u32, Vec<u8>)>,
    /// AMF0 data message bodies (metadata).
    pub data: Vec<Vec<u8>>,
    pub unpublishes: usize,
    pub sessions_ended: usize,
}

struct Recorder(Arc<Mutex<Received>>);

impl SessionHandler for Recorder {
    async fn on_data(
        &mut self,
        _stream_id: u32,
        data: SessionData,
    ) -> Result<(), ServerSessionError> {
        let mut r = self.0.lock().unwrap();
        match data {
            SessionData::Video { timestamp, data } => r.videos.push((timestamp, data.to_vec())),
            SessionData::Amf0 { data, .. } => r.data.push(data.to_vec()),
            SessionData::Audio { timestamp, data } => r.audios.push((timestamp, data.to_vec())),
        }
        Ok(())
    }

    async fn on_publish(
        &mut self,
        _stream_id: u32,
        app: &str,
        name: &str,
    ) -> Result<(), ServerSessionError> {
        self.0
            .lock()
            .unwrap()
            .publishes
            .push((app.to_owned(), name.to_owned()));
        Ok(())
    }

    async fn on_unpublish(&mut self, _stream_id: u32) -> Result<(), ServerSessionError> {
        self.0.lock().unwrap().unpublishes += 1;
        Ok(())
    }
}

pub struct ScuffleServer {
    pub port: u16,
    received: Arc<Mutex<Received>>,
}

impl ScuffleServer {
    /// Starts the server on 127.0.0.1 with a free port, on its own thread and runtime.
    pub fn start() -> ScuffleServer {
        let received = Arc::new(Mutex::new(Received::default()));
        let rec = Arc::clone(&received);
        let port = serve(move |stream| {
            let rec = Arc::clone(&rec);
            async move {
                let _ = ServerSession::new(stream, Recorder(Arc::clone(&rec)))
                    .run()
                    .await;
                rec.lock().unwrap().sessions_ended += 1;
            }
        });
        ScuffleServer { port, received }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    pub fn received(&self) -> Received {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for what the server received.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.received();
            if done(&r) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} videos, {} publishes",
                r.videos.len(),
                r.publishes.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// TLS in front of a server on `target_port`: accepts connections for `localhost` with a
/// throwaway self-signed certificate and forwards the plain bytes, on its own thread and runtime.
/// It offers only `suite` (and so only that suite's TLS version). Returns the port and the
/// certificate (PEM) to trust.
pub fn tls_front(target_port: u16, suite: rustls::CipherSuite) -> (u16, String) {
    use std::sync::Arc;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    let version = provider
        .cipher_suites
        .first()
        .expect("a ring suite")
        .version();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let port = serve(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
            else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        }
    });
    (port, pem)
}

/// Listens on a free port of 127.0.0.1 and runs `handle` for every connection as a task, on a
/// thread and runtime of its own (so the code under test keeps its own). Returns the port.
fn serve<F, Fut>(handle: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream));
            }
        });
    });
    port
}
