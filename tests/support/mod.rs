//! Fixtures for tests that push to a real RTMP server (nginx with the RTMP module).
//!
//! - [`require_all`] / [`require`]: skip a test when nginx-rtmp, ffmpeg (with libx264) or
//!   ffprobe is missing, loudly; with `CAMPUSH_REQUIRE_TOOLS=1` (CI) fail instead.
//! - [`Nginx`]: a private nginx-rtmp on a free loopback port, running as the invoking user
//!   out of its own temp dir, recording every publish to `KEY-UNIXSECONDS.flv`; killed on drop.
//!   [`Nginx::start_tls`] adds nginx's `stream` module terminating TLS in front of it, with a
//!   throwaway CA and certificates made by `openssl` in the temp dir ([`TlsFront`]).
//! - [`clip_1080p_high_headers_at_start`], [`clip_720p_slices_aud`]: H.264 elementary streams
//!   made once with ffmpeg + libx264 and cached under the target dir.
//! - [`probe_recording`]: what the server recorded, as ffprobe and ffmpeg see it, and
//!   [`Recording::assert_matches`] to compare it with the clip that was pushed.
//! - [`run_campush`], [`run_campush_stdin`], [`run_bounded`]: run a process with a bounded wait.
//!
//! Use from an integration test with `mod support;`.
#![allow(dead_code)] // each test binary uses its own subset

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub const CAMPUSH: &str = env!("CARGO_BIN_EXE_campush");

// ---------------------------------------------------------------------------------------------
// Tools

#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// `nginx` plus its dynamic RTMP module (`ngx_rtmp_module.so`).
    NginxRtmp,
    /// `ffmpeg` with the libx264 encoder.
    Ffmpeg,
    Ffprobe,
    /// nginx's dynamic `stream` module (TLS termination) and the `openssl` command.
    NginxTls,
}

const INSTALL_HINT: &str =
    "install them with: apt-get install nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg openssl";

/// True when `tool` is usable. Otherwise prints a loud SKIP line and returns false, or panics
/// when `CAMPUSH_REQUIRE_TOOLS=1`.
pub fn require(tool: Tool) -> bool {
    let problem = match tool {
        Tool::NginxRtmp => match (nginx_bin(), rtmp_module()) {
            (None, _) => Some("nginx is not installed (or does not run)".to_string()),
            (_, None) => Some("the nginx RTMP module (ngx_rtmp_module.so) is not installed".into()),
            _ => None,
        },
        Tool::Ffmpeg => match command_output("ffmpeg", &["-hide_banner", "-encoders"]) {
            None => Some("ffmpeg is not installed".to_string()),
            Some(out) if !out.contains("libx264") => Some("ffmpeg lacks libx264".to_string()),
            Some(_) => None,
        },
        Tool::Ffprobe => match command_output("ffprobe", &["-version"]) {
            None => Some("ffprobe is not installed".to_string()),
            Some(_) => None,
        },
        Tool::NginxTls => match (stream_module(), command_output("openssl", &["version"])) {
            (None, _) => {
                Some("the nginx stream module (ngx_stream_module.so) is not installed".into())
            }
            (_, None) => Some("openssl is not installed".to_string()),
            _ => None,
        },
    };
    let Some(problem) = problem else { return true };
    if std::env::var("CAMPUSH_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("CAMPUSH_REQUIRE_TOOLS=1 but {problem}; {INSTALL_HINT}");
    }
    // Straight to stderr: the test harness would capture (and hide) eprintln! output.
    let skip = format!("\n*** SKIP: {problem}; test not run. To run it, {INSTALL_HINT} ***\n");
    let _ = io::stderr().write_all(skip.as_bytes());
    false
}

/// [`require`] for nginx-rtmp, ffmpeg and ffprobe.
pub fn require_all() -> bool {
    [Tool::NginxRtmp, Tool::Ffmpeg, Tool::Ffprobe]
        .into_iter()
        .all(require)
}

/// stdout of a command that exited 0, None if it could not run or failed.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nginx binary; non-root users on Debian do not have /usr/sbin in PATH.
fn nginx_bin() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        [
            "nginx",
            "/usr/sbin/nginx",
            "/usr/local/sbin/nginx",
            "/usr/local/nginx/sbin/nginx",
        ]
        .into_iter()
        .find(|bin| {
            let ran = Command::new(bin).arg("-v").stdin(Stdio::null()).output();
            ran.is_ok_and(|out| out.status.success())
        })
        .map(PathBuf::from)
    })
    .as_deref()
}

fn rtmp_module() -> Option<&'static Path> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE
        .get_or_init(|| nginx_module("ngx_rtmp_module.so"))
        .as_deref()
}

fn stream_module() -> Option<&'static Path> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE
        .get_or_init(|| nginx_module("ngx_stream_module.so"))
        .as_deref()
}

fn nginx_module(name: &str) -> Option<PathBuf> {
    [
        "/usr/lib/nginx/modules",
        "/usr/lib64/nginx/modules",
        "/usr/local/nginx/modules",
    ]
    .into_iter()
    .map(|dir| Path::new(dir).join(name))
    .find(|so| so.is_file())
}

// ---------------------------------------------------------------------------------------------
// nginx-rtmp

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
    pub fn recording_of(&self, key: &str) -> PathBuf {
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

    /// The server process (for SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("nginx is running").id()
    }

    /// Shuts the server down the way an operator would (SIGTERM: connections closed, recordings
    /// finished) and waits for it to exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(10));
            }
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
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
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
                    assert!(
                        std::time::Instant::now() < deadline,
                        "nginx did not restart: {why}"
                    );
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

/// If the test process dies, so does the child (no stray servers after a killed test run).
fn kill_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A process that runs until dropped, e.g. a publisher holding a stream key.
pub struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

// ---------------------------------------------------------------------------------------------
// Clips

/// An H.264 Annex B elementary stream and what was put into it.
#[derive(Clone, Debug)]
pub struct Clip {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Pictures in the stream, counted by ffprobe.
    pub frames: u64,
}

impl Clip {
    /// `file:PATH`, for `--source`.
    pub fn source(&self) -> String {
        format!("file:{}", self.path.display())
    }

    pub fn nal_counts(&self) -> NalCounts {
        NalCounts::of(&fs::read(&self.path).unwrap())
    }
}

/// 1080p30 High profile, no B-frames, GOP 60, with SPS/PPS only at the very start (later
/// copies stripped), as a Raspberry Pi hardware encoder produces.
pub fn clip_1080p_high_headers_at_start(secs: u32) -> Clip {
    let args = "-profile:v high -bf 0 -g 60 -x264-params scenecut=0";
    cached_clip(
        &format!("1080p30-high-hdrs-at-start-{secs}s"),
        1920,
        1080,
        secs,
        args,
        true,
    )
}

/// 720p30, four slices per picture and an access unit delimiter before each one, GOP 60.
pub fn clip_720p_slices_aud(secs: u32) -> Clip {
    let args = "-bf 0 -g 60 -x264-params scenecut=0:slices=4:aud=1";
    cached_clip(
        &format!("720p30-slices4-aud-{secs}s"),
        1280,
        720,
        secs,
        args,
        false,
    )
}

/// 640x360 at 30 fps, High profile with three B-frames and a B-pyramid (x264's defaults), GOP
/// 60: pictures arrive in decode order, not display order.
pub fn clip_360p_b_frames(secs: u32) -> Clip {
    let args = "-preset veryfast -profile:v high -bf 3 -b_strategy 0 -g 60 -x264-params scenecut=0:b-pyramid=normal";
    cached_clip(
        &format!("360p30-bframes-{secs}s"),
        640,
        360,
        secs,
        args,
        false,
    )
}

/// 640x360 at 30 fps, GOP 60, no B-frames: a light clip for long pushes.
pub fn clip_360p(secs: u32) -> Clip {
    let args = "-preset veryfast -bf 0 -g 60 -x264-params scenecut=0";
    cached_clip(&format!("360p30-{secs}s"), 640, 360, secs, args, false)
}

/// Generates the clip once (keyed by name and encoder arguments) into the target dir.
fn cached_clip(name: &str, w: u32, h: u32, secs: u32, x264: &str, strip: bool) -> Clip {
    static GENERATING: Mutex<()> = Mutex::new(());
    let fps = 30;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-clips");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{name}-{:016x}.h264",
        fnv1a(&format!("{x264} {strip}"))
    ));
    let _one_at_a_time = GENERATING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"]);
        cmd.arg(format!("testsrc2=size={w}x{h}:rate={fps}"));
        cmd.args(["-t", &secs.to_string(), "-c:v", "libx264"])
            .args(x264.split(' '));
        cmd.args(["-pix_fmt", "yuv420p", "-f", "h264"]).arg(&tmp);
        let run = run_bounded(cmd, None, Duration::from_secs(300));
        assert!(run.code == Some(0), "ffmpeg could not make {name}:\n{run}");
        if strip {
            let stripped = strip_repeated_parameter_sets(&fs::read(&tmp).unwrap());
            fs::write(&tmp, stripped).unwrap();
        }
        fs::rename(&tmp, &path).unwrap();
    }
    let frames = ffprobe_count_frames(&path, &["-f", "h264"]);
    Clip {
        path,
        width: w,
        height: h,
        fps,
        frames,
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn ffprobe_count_frames(path: &Path, input_opts: &[&str]) -> u64 {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-count_frames", "-select_streams", "v:0"]);
    cmd.args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"]);
    cmd.args(input_opts).arg(path);
    let run = run_bounded(cmd, None, Duration::from_secs(120));
    let count = run.stdout.trim().trim_end_matches(',');
    count
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe could not count frames of {path:?}:\n{run}"))
}

/// One NAL unit of an Annex B stream: `start` is where its start code begins, `header` the
/// index of its NAL header byte, `end` where the next start code (or the data) ends.
#[derive(Clone, Copy, Debug)]
pub struct Nal {
    pub start: usize,
    pub header: usize,
    pub end: usize,
}

/// Splits Annex B data at `00 00 01` start codes. Zero bytes before a start code belong to
/// it (a 4-byte start code or trailing_zero_8bits), never to the previous NAL unit.
pub fn annexb_nals(data: &[u8]) -> Vec<Nal> {
    let mut nals: Vec<Nal> = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] != [0, 0, 1] {
            i += 1;
            continue;
        }
        let floor = nals.last().map_or(0, |nal| nal.header + 1);
        let mut start = i;
        while start > floor && data[start - 1] == 0 {
            start -= 1;
        }
        if let Some(prev) = nals.last_mut() {
            prev.end = start;
        }
        nals.push(Nal {
            start,
            header: i + 3,
            end: data.len(),
        });
        i += 3;
    }
    nals.retain(|nal| nal.header < nal.end);
    nals
}

/// Keeps SPS (7) and PPS (8) units only before the first slice; drops every later copy.
pub fn strip_repeated_parameter_sets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut seen_slice = false;
    for nal in annexb_nals(data) {
        let nal_type = data[nal.header] & 0x1f;
        seen_slice |= (1..=5).contains(&nal_type);
        if !(seen_slice && (nal_type == 7 || nal_type == 8)) {
            out.extend_from_slice(&data[nal.start..nal.end]);
        }
    }
    out
}

/// How many NAL units of each kind a stream holds.
#[derive(Clone, Debug, Default)]
pub struct NalCounts {
    pub sps: usize,
    pub pps: usize,
    pub idr_slices: usize,
    pub non_idr_slices: usize,
    pub aud: usize,
    /// Parameter sets that come after the first slice.
    pub parameter_sets_after_first_slice: usize,
}

impl NalCounts {
    pub fn of(data: &[u8]) -> NalCounts {
        let mut counts = NalCounts::default();
        for nal in annexb_nals(data) {
            let slices_so_far = counts.idr_slices + counts.non_idr_slices;
            match data[nal.header] & 0x1f {
                1 => counts.non_idr_slices += 1,
                5 => counts.idr_slices += 1,
                7 => counts.sps += 1,
                8 => counts.pps += 1,
                9 => counts.aud += 1,
                _ => continue,
            }
            if slices_so_far > 0 && matches!(data[nal.header] & 0x1f, 7 | 8) {
                counts.parameter_sets_after_first_slice += 1;
            }
        }
        counts
    }
}

// ---------------------------------------------------------------------------------------------
// Recordings

/// The video stream of a recorded FLV, as ffprobe and ffmpeg see it.
#[derive(Clone, Debug)]
pub struct Recording {
    pub path: PathBuf,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Pictures ffprobe decoded (`nb_read_frames`).
    pub frames: u64,
    /// Video packet timestamps in milliseconds (FLV time base), in file order.
    pub pts: Vec<i64>,
    pub dts: Vec<i64>,
    /// Timestamps of the decoded pictures, in the order the decoder output them (display order).
    pub frame_pts: Vec<i64>,
    /// The first video packet is flagged as a keyframe (FLV frame type 1).
    pub first_packet_key: bool,
    /// The first decoded picture is a key frame.
    pub first_frame_key: bool,
    /// stderr of `ffmpeg -v error -i REC -enc_time_base -1 -f null -`: empty when it decodes
    /// cleanly.
    pub decode_errors: String,
}

pub fn probe_recording(path: &Path) -> Recording {
    // One ffprobe pass lists the stream, then packets and decoded frames in file order.
    let entries =
        "stream=codec_name,width,height,nb_read_frames:packet=pts,dts,flags:frame=key_frame,pts";
    let mut ffprobe = Command::new("ffprobe");
    ffprobe.args(["-v", "error", "-count_frames", "-select_streams", "v:0"]);
    ffprobe
        .args(["-show_entries", entries, "-of", "compact"])
        .arg(path);
    let probe = run_bounded(ffprobe, None, Duration::from_secs(120));
    let size = fs::metadata(path).map_or(0, |m| m.len());
    assert!(
        probe.code == Some(0),
        "ffprobe failed on {path:?} ({size} bytes):\n{probe}"
    );

    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-nostdin", "-v", "error", "-i"]).arg(path);
    // Frames keep the recording's time base: timestamps closer than the frame rate are for the
    // timestamp checks to report, not the null muxer (as "non monotonically increasing dts").
    ffmpeg.args(["-enc_time_base", "-1", "-f", "null", "-"]);
    let decode = run_bounded(ffmpeg, None, Duration::from_secs(120));
    let mut decode_errors = decode.stderr.trim().to_string();
    if decode.code != Some(0) {
        decode_errors += &format!("\n(ffmpeg exit code {:?})", decode.code);
    }

    let mut rec = Recording {
        path: path.to_path_buf(),
        codec: String::new(),
        width: 0,
        height: 0,
        frames: 0,
        pts: Vec::new(),
        dts: Vec::new(),
        frame_pts: Vec::new(),
        first_packet_key: false,
        first_frame_key: false,
        decode_errors,
    };
    let mut seen_frame = false;
    for line in probe.stdout.lines() {
        let mut fields = line.split('|');
        let section = fields.next().unwrap_or_default();
        let fields: Vec<(&str, &str)> = fields.filter_map(|f| f.split_once('=')).collect();
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("", |(_, v)| *v)
        };
        // "N/A" becomes i64::MIN, which no strictly increasing check accepts.
        let num = |key: &str| get(key).parse::<i64>().unwrap_or(i64::MIN);
        match section {
            "stream" => {
                rec.codec = get("codec_name").to_string();
                (rec.width, rec.height) = (num("width") as u32, num("height") as u32);
                rec.frames = get("nb_read_frames").parse().unwrap_or(0);
            }
            "packet" => {
                if rec.dts.is_empty() {
                    rec.first_packet_key = get("flags").starts_with('K');
                }
                rec.pts.push(num("pts"));
                rec.dts.push(num("dts"));
            }
            "frame" => {
                if !seen_frame {
                    seen_frame = true;
                    rec.first_frame_key = get("key_frame") == "1";
                }
                rec.frame_pts.push(num("pts"));
            }
            _ => {}
        }
    }
    rec
}

/// Ok when every value is greater than the one before; else where it first is not.
pub fn strictly_increasing(values: &[i64]) -> Result<(), String> {
    match values.windows(2).position(|w| w[1] <= w[0]) {
        None => Ok(()),
        Some(i) => {
            let around = &values[i.saturating_sub(3)..(i + 5).min(values.len())];
            Err(format!(
                "value #{} ({}) <= #{i} ({}); around it: {around:?}",
                i + 1,
                values[i + 1],
                values[i]
            ))
        }
    }
}

impl Recording {
    /// Everything that differs between this recording and the clip that was pushed.
    pub fn problems_against(&self, clip: &Clip) -> Vec<String> {
        let mut problems = Vec::new();
        if self.codec != "h264" {
            problems.push(format!("codec is {:?}, expected \"h264\"", self.codec));
        }
        if (self.width, self.height) != (clip.width, clip.height) {
            let (w, h) = (clip.width, clip.height);
            problems.push(format!(
                "size is {}x{}, expected {w}x{h}",
                self.width, self.height
            ));
        }
        if self.frames != clip.frames {
            problems.push(format!(
                "decoded {} frames, pushed {}",
                self.frames, clip.frames
            ));
        }
        if self.dts.len() as u64 != clip.frames {
            problems.push(format!(
                "{} video packets, pushed {} frames",
                self.dts.len(),
                clip.frames
            ));
        }
        if let Err(why) = strictly_increasing(&self.dts) {
            problems.push(format!("dts not strictly increasing: {why}"));
        }
        // Pictures are shown in the order they were captured: the decoder outputs them with
        // strictly increasing timestamps (with B-frames, packets carry them out of order), each
        // shown no earlier than it is decoded.
        if let Err(why) = strictly_increasing(&self.frame_pts) {
            problems.push(format!(
                "decoded pictures' pts not strictly increasing: {why}"
            ));
        }
        if let Some(i) =
            (0..self.pts.len().min(self.dts.len())).find(|&i| self.pts[i] < self.dts[i])
        {
            problems.push(format!(
                "packet #{i} is shown before it is decoded: pts {} < dts {}",
                self.pts[i], self.dts[i]
            ));
        }
        if let (Some(first), Some(last)) = (self.frame_pts.first(), self.frame_pts.last()) {
            let expected = 1000.0 / clip.fps as f64;
            let largest = self
                .frame_pts
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or(0);
            if largest as f64 > expected * 1.5 {
                problems.push(format!(
                    "a gap of {largest} ms between shown pictures (pts {first} to {last})"
                ));
            }
        }
        if let (Some(first), Some(last)) = (self.dts.first(), self.dts.last()) {
            let expected = 1000.0 / clip.fps as f64;
            let mean = (last - first) as f64 / (self.dts.len().max(2) - 1) as f64;
            if (mean - expected).abs() > expected * 0.1 {
                problems.push(format!(
                    "mean frame interval {mean:.2} ms, expected {expected:.2} ms"
                ));
            }
        }
        if !self.first_packet_key {
            problems.push("first video packet is not flagged as a keyframe".to_string());
        }
        if !self.first_frame_key {
            problems.push("first decoded picture is not a key frame".to_string());
        }
        if !self.decode_errors.is_empty() {
            problems.push(format!("decode errors:\n{}", self.decode_errors));
        }
        problems
    }

    /// Panics listing every difference from the clip that was pushed.
    pub fn assert_matches(&self, clip: &Clip) {
        let problems = self.problems_against(clip);
        assert!(
            problems.is_empty(),
            "recording {:?} does not match clip {:?}:\n- {}",
            self.path.file_name().unwrap(),
            clip.path.file_name().unwrap(),
            problems.join("\n- ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Running processes

/// How a bounded process run ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code; None if killed by a signal (including on timeout).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ended = if self.timed_out {
            " (killed: timed out)"
        } else {
            ""
        };
        writeln!(
            f,
            "exit code {:?} after {:.2?}{ended}",
            self.code, self.elapsed
        )?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Runs campush with `args`, stdin closed, killing it after `timeout`.
pub fn run_campush(args: &[&str], timeout: Duration) -> Run {
    let mut cmd = Command::new(CAMPUSH);
    cmd.args(args);
    run_bounded(cmd, None, timeout)
}

/// Runs campush with the bytes of `input` written into its stdin through a pipe.
pub fn run_campush_stdin(args: &[&str], input: &Path, timeout: Duration) -> Run {
    let mut cmd = Command::new(CAMPUSH);
    cmd.args(args);
    run_bounded(cmd, Some(input), timeout)
}

/// Runs `cmd` to completion or until `timeout` (then kills it), capturing stdout and stderr.
/// With `stdin_from`, that file is copied into the child's stdin pipe, which is then closed.
pub fn run_bounded(mut cmd: Command, stdin_from: Option<&Path>, timeout: Duration) -> Run {
    cmd.stdin(if stdin_from.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    kill_with_parent(&mut cmd);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let writer = stdin_from.map(|path| {
        let (mut file, mut pipe) = (fs::File::open(path).unwrap(), child.stdin.take().unwrap());
        // The child may exit before reading everything; that write error is not ours to report.
        thread::spawn(move || drop(io::copy(&mut file, &mut pipe)))
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Run {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed,
        timed_out,
    }
}
