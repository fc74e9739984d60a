//! The nginx-rtmp fixture: a private nginx with the RTMP module on a free loopback port,
//! running as the invoking user out of its own temp dir, recording every publish to
//! `KEY-UNIXSECONDS.flv`; killed on drop (printing its error log if the test is failing).
//! [`Nginx::start_tls`] adds nginx's `stream` module terminating TLS in front of it, with a
//! throwaway CA and certificates made by `openssl` in the temp dir ([`TlsFront`]).
//!
//! Also [`free_port`], and [`ffmpeg_publish_forever`]: another publisher, to hold a key.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::runs::{kill_with_parent, poll_until, run_bounded, signal, wait_child, Background};
use super::tools::{nginx_bin, rtmp_module, stream_module};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().unwrap().port()
}

#[derive(Clone, Debug)]
pub struct NginxOpts {
    /// `record all` (one FLV per publish) when true, `record off` when false.
    pub record: bool,
}

impl Default for NginxOpts {
    fn default() -> Self {
        NginxOpts { record: true }
    }
}

/// TLS in front of nginx-rtmp: nginx's `stream` module terminates TLS on two loopback ports and
/// forwards the plain bytes to the RTMP port.
#[derive(Clone, Debug)]
pub struct TlsFront {
    /// Serves a certificate for `localhost` and `127.0.0.1`, signed by the throwaway CA.
    pub port: u16,
    /// Serves a certificate for `other.example` only, signed by the same CA.
    pub wrong_host_port: u16,
    /// Serves a certificate for `localhost` signed by the same CA that expired in January 2020.
    pub expired_port: u16,
    /// The throwaway CA's certificate (PEM), for `--tls-ca`.
    pub ca: PathBuf,
}

/// nginx-rtmp serving `rtmp://127.0.0.1:PORT/live/KEY`, recording into its temp dir.
pub struct Nginx {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    record: bool,
    tls: Option<TlsFront>,
}

impl Nginx {
    /// Starts nginx on a free loopback port (retrying with another port if that one was taken)
    /// and returns once the port accepts connections. Panics if it cannot.
    pub fn start(opts: NginxOpts) -> Nginx {
        Nginx::start_inner(opts, false)
    }

    /// [`Nginx::start`] plus a TLS front ([`TlsFront`]): a throwaway CA and two server
    /// certificates made with `openssl` in the server's temp dir. Needs [`Tool::NginxTls`].
    pub fn start_tls(opts: NginxOpts) -> Nginx {
        Nginx::start_inner(opts, true)
    }

    fn start_inner(opts: NginxOpts, tls: bool) -> Nginx {
        let bin = nginx_bin().expect("nginx not found; call support::require_all() first");
        let module = rtmp_module().expect("ngx_rtmp_module.so not found");
        let dir = tempfile::Builder::new()
            .prefix("campush-nginx-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("rec")).unwrap();
        if tls {
            make_certificates(dir.path());
        }
        let (conf, log) = (dir.path().join("nginx.conf"), dir.path().join("error.log"));
        let mut failures = String::new();
        for _ in 0..5 {
            let port = free_port();
            let front = tls.then(|| TlsFront {
                port: free_port(),
                wrong_host_port: free_port(),
                expired_port: free_port(),
                ca: dir.path().join("ca.pem"),
            });
            fs::write(
                &conf,
                nginx_conf(module, dir.path(), port, opts.record, front.as_ref()),
            )
            .unwrap();
            let _ = fs::remove_file(&log);
            let mut child = spawn_nginx(bin, dir.path(), &conf, &log);
            let ports = [Some(port), front.as_ref().map(|f| f.port)];
            let listening = ports
                .into_iter()
                .flatten()
                .try_for_each(|p| wait_listening(&mut child, p, Duration::from_secs(10)));
            match listening {
                Ok(()) => {
                    return Nginx {
                        child: Some(child),
                        dir,
                        port,
                        record: opts.record,
                        tls: front,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log).unwrap_or_default();
                    failures += &format!("port {port}: {why}\n{log}\n");
                }
            }
        }
        panic!("nginx-rtmp did not start:\n{failures}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// The TLS front, when started with [`Nginx::start_tls`].
    pub fn tls(&self) -> &TlsFront {
        self.tls.as_ref().expect("started without TLS")
    }

    /// `rtmps://localhost:TLSPORT/live/KEY`: through the TLS front, by host name (SNI).
    pub fn url_tls(&self, key: &str) -> String {
        format!("rtmps://localhost:{}/live/{key}", self.tls().port)
    }

    /// Every recorded file, sorted by name.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path().join("rec"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    /// The one recording of `key`, once every connection to the server is closed (so the
    /// file is complete). Panics, with the server's log, if there is not exactly one.
    ///
    /// A publisher that nginx-rtmp refuses because the name is taken leaves a file too, with
    /// nothing but the FLV header (the record module opens it before the live module refuses
    /// the name): files are named by the second their publisher came, so when the two publishes
    /// straddle a second there are two. Such a file is not a recording.
    pub fn recording_of(&self, key: &str) -> PathBuf {
        /// The FLV header and the first PreviousTagSize, all nginx-rtmp writes on opening.
        const FLV_HEADER_ONLY: u64 = 13;
        if !self.wait_idle(Duration::from_secs(10)) {
            eprintln!("warning: nginx still has open connections; probing anyway");
        }
        let prefix = format!("{key}-");
        let mine: Vec<PathBuf> = (self.recordings().into_iter())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .filter(|p| fs::metadata(p).map_or(true, |m| m.len() > FLV_HEADER_ONLY))
            .collect();
        assert!(
            mine.len() == 1,
            "expected exactly one recording of {key:?}, found {mine:?} (all: {:?})\nerror.log:\n{}",
            self.recordings(),
            self.error_log()
        );
        mine.into_iter().next().unwrap()
    }

    pub fn error_log(&self) -> String {
        fs::read(self.dir.path().join("error.log"))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until `needle` appears in the error log (e.g. `publish: name='KEY'`).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll_until(timeout, || self.error_log().contains(needle))
    }

    /// Waits until every client that connected has been torn down. nginx-rtmp logs, per
    /// connection `*N`: "client connected", later "disconnect", then "deleteStream" as it
    /// closes the stream (and its recording).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let idle = poll_until(timeout, || {
            let log = self.error_log();
            let mut open = std::collections::BTreeMap::<&str, bool>::new(); // id -> disconnected
            for line in log.lines() {
                let Some(id) = line.split(' ').find(|word| word.starts_with('*')) else {
                    continue;
                };
                if line.contains(" client connected ") {
                    open.insert(id, false);
                } else if line.contains(" disconnect, ") {
                    open.insert(id, true);
                } else if line.contains(" deleteStream, ") && open.get(id) == Some(&true) {
                    open.remove(id);
                }
            }
            open.is_empty()
        });
        thread::sleep(Duration::from_millis(50)); // the file is closed right after the log line
        idle
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("nginx is running").id()
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is read or answered.
    pub fn freeze(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        signal(self.pid(), libc::SIGCONT);
    }

    /// How many times a publisher has published `key` (as the error log says).
    pub fn publishes(&self, key: &str) -> usize {
        self.error_log()
            .matches(&format!("publish: name='{key}'"))
            .count()
    }

    /// Shuts the server down the way an operator would (SIGTERM: connections closed, recordings
    /// finished) and waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            wait_child(&mut child, Duration::from_secs(10));
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, keeping its recordings and appending to its
    /// log. Returns once the port accepts connections.
    pub fn restart(&mut self) {
        self.terminate();
        let bin = nginx_bin().expect("nginx");
        let (conf, log) = (
            self.dir.path().join("nginx.conf"),
            self.dir.path().join("error.log"),
        );
        let module = rtmp_module().expect("ngx_rtmp_module.so");
        fs::write(
            &conf,
            nginx_conf(
                module,
                self.dir.path(),
                self.port,
                self.record,
                self.tls.as_ref(),
            ),
        )
        .unwrap();
        // The port was ours a moment ago; the kernel may need a moment to release it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = spawn_nginx(bin, self.dir.path(), &conf, &log);
            match wait_listening(&mut child, self.port, Duration::from_secs(10)) {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    assert!(Instant::now() < deadline, "nginx did not restart: {why}");
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- nginx error.log (port {}) ---\n{}",
                self.port,
                self.error_log()
            );
        }
    }
}

/// Waits until `port` accepts connections while `child` is still running.
fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("nginx exited with {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            // Still alive after connecting: the listener is ours, not another process's.
            thread::sleep(Duration::from_millis(50));
            return match child.try_wait().unwrap() {
                None => Ok(()),
                Some(status) => Err(format!("nginx exited with {status}")),
            };
        }
        if Instant::now() > deadline {
            return Err(format!("port not accepting after {timeout:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn nginx_conf(
    module: &Path,
    dir: &Path,
    port: u16,
    record: bool,
    tls: Option<&TlsFront>,
) -> String {
    let dir = dir.display();
    let record = if record {
        format!("record all;\n            record_path {dir}/rec;\n            record_unique on;")
    } else {
        "record off;".to_string()
    };
    let (stream_module, stream) = match tls {
        None => (String::new(), String::new()),
        Some(front) => {
            let server = |listen: u16, name: &str| {
                format!(
                    "    server {{
        listen 127.0.0.1:{listen} ssl;
        ssl_certificate {dir}/{name}.pem;
        ssl_certificate_key {dir}/{name}.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        proxy_pass 127.0.0.1:{port};
    }}
"
                )
            };
            (
                format!(
                    "load_module {};\n",
                    stream_module().expect("ngx_stream_module.so").display()
                ),
                format!(
                    "stream {{\n{}{}{}}}\n",
                    server(front.port, "localhost"),
                    server(front.wrong_host_port, "other"),
                    server(front.expired_port, "expired")
                ),
            )
        }
    };
    format!(
        "load_module {module};
{stream_module}daemon off;
master_process off;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    access_log {dir}/access.log;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            {record}
        }}
    }}
}}
{stream}",
        module = module.display()
    )
}

/// A throwaway CA (`ca.pem`) and three server certificates it signs, with their keys:
/// `localhost.pem` (SAN DNS:localhost, IP:127.0.0.1), `other.pem` (SAN DNS:other.example) and
/// `expired.pem` (SAN DNS:localhost, valid only on 1 January 2020: `openssl x509` cannot
/// backdate, `openssl ca` can).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir);
        let run = run_bounded(cmd, None, Duration::from_secs(60));
        assert!(run.code == Some(0), "openssl {args:?}:\n{run}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "3", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend_from_slice(&ec);
    ca.extend_from_slice(&["-subj", "/CN=campush test CA"]);
    ca.extend_from_slice(&["-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.extend_from_slice(&["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&ca);
    for (name, san) in [
        ("localhost", "DNS:localhost,IP:127.0.0.1"),
        ("other", "DNS:other.example"),
        ("expired", "DNS:localhost,IP:127.0.0.1"),
    ] {
        let ext = format!(
            "subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        );
        fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        let subj = format!("/CN={name}");
        let mut req = vec!["req", "-keyout", &key, "-out", &csr, "-subj", &subj];
        req.extend_from_slice(&ec);
        openssl(&req);
        let (pem, ext) = (format!("{name}.pem"), format!("{name}.ext"));
        if name == "expired" {
            fs::write(dir.join("index.txt"), "").unwrap();
            fs::write(
                dir.join("ca.cnf"),
                "[ca]\ndefault_ca = backdated\n[backdated]\ndatabase = index.txt\n\
                 new_certs_dir = .\nrand_serial = yes\ndefault_md = sha256\npolicy = any\n\
                 unique_subject = no\n[any]\ncommonName = supplied\n",
            )
            .unwrap();
            openssl(&[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-in",
                &csr,
                "-out",
                &pem,
                "-extfile",
                &ext,
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
            ]);
            continue;
        }
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ]);
    }
}

/// Starts nginx in the foreground with `prefix`, `conf` and its error log at `log`; it dies
/// with the test process.
fn spawn_nginx(bin: &Path, prefix: &Path, conf: &Path, log: &Path) -> Child {
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(log);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    kill_with_parent(&mut cmd);
    cmd.spawn().expect("spawn nginx")
}

/// ffmpeg publishing `clip` in real time, looped forever, to `url`.
pub fn ffmpeg_publish_forever(clip: &Path, url: &str) -> Background {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-re", "-stream_loop", "-1"]);
    cmd.args(["-f", "h264", "-framerate", "30", "-i"]).arg(clip);
    cmd.args(["-c", "copy", "-f", "flv", url]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    kill_with_parent(&mut cmd);
    Background(cmd.spawn().expect("spawn ffmpeg"))
}
