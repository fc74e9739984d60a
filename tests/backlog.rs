//! Issue 10: behind a link slower than the stream, `queue.max_seconds` bounds the lag a viewer
//! sees, not only campush's queue. A throttling proxy on loopback forwards campush's bytes to
//! nginx-rtmp at half the stream's bitrate; the lag is the wall time at the end minus the media
//! time nginx recorded by then (ffprobe), and the recording must decode.
//!
//! - Deep buffer (a bloated router or Wi-Fi driver): the proxy takes everything campush sends
//!   into a buffer of up to 16 MiB at once (so TCP acknowledges it at once) and forwards it at the
//!   link rate. Only the server's RTMP acknowledgements can see that backlog.
//! - Shallow buffer, acknowledgements ignored (`CAMPUSH_IGNORE_RTMP_ACKS`): the proxy reads no
//!   faster than the link rate through a 32 KiB socket buffer, so the backlog stays in campush's
//!   socket, where the kernel's send queue (the fallback) sees it.
//!
//! Lag figures are printed for the record.

mod support;

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{probe_recording, require_all, Campush, Nginx, NginxOpts};

const RUN: Duration = Duration::from_secs(40);
const MAX_SECONDS: f64 = 2.0;

/// How the proxy buffers what it cannot forward yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buffer {
    /// Reads everything at once into up to this many bytes of its own.
    Deep(usize),
    /// Reads no faster than it forwards, through a socket buffer of this size.
    Shallow(i32),
}

/// A TCP proxy to `target` forwarding client → server at `bytes_per_sec` with `buffer`
/// (server → client unthrottled). Setting `cut` drops whatever it still holds and closes both
/// sides: what the server has by then is what it will ever get from this connection.
fn throttling_proxy(
    target: u16,
    bytes_per_sec: usize,
    buffer: Buffer,
    cut: Arc<AtomicBool>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    if let Buffer::Shallow(bytes) = buffer {
        set_rcvbuf(&listener, bytes); // inherited by the accepted socket, window scale included
    }
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + RUN * 3;
        while !cut.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            client.set_nonblocking(false).unwrap();
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            relay(client, server, bytes_per_sec, buffer, Arc::clone(&cut));
        }
    });
    port
}

fn relay(client: TcpStream, server: TcpStream, rate: usize, buffer: Buffer, cut: Arc<AtomicBool>) {
    // Server → client: as fast as it comes.
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let cut_back = Arc::clone(&cut);
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        from_server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while !cut_back.load(Ordering::Relaxed) {
            match from_server.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if to_client.write_all(&buf[..n]).is_err() => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    });
    // Client → proxy buffer (deep) ...
    let held = Arc::new(Mutex::new(VecDeque::<u8>::new()));
    let client_done = Arc::new(AtomicBool::new(false));
    if let Buffer::Deep(cap) = buffer {
        let (held, done, cut) = (
            Arc::clone(&held),
            Arc::clone(&client_done),
            Arc::clone(&cut),
        );
        let mut from_client = client.try_clone().unwrap();
        thread::spawn(move || {
            from_client
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while !cut.load(Ordering::Relaxed) {
                if held.lock().unwrap().len() >= cap {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                match from_client.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => held.lock().unwrap().extend(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                }
            }
            done.store(true, Ordering::Relaxed);
        });
    }
    // ... and out to the server at the link rate, a slice every 20 ms.
    thread::spawn(move || {
        let tick = Duration::from_millis(20);
        let per_tick = (rate / 50).max(1);
        let mut slice = vec![0u8; per_tick];
        let (mut client, mut server) = (client, server);
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut next = Instant::now();
        while !cut.load(Ordering::Relaxed) {
            let n = match buffer {
                Buffer::Deep(_) => {
                    let mut held = held.lock().unwrap();
                    let n = held.len().min(per_tick);
                    for (dst, src) in slice.iter_mut().zip(held.drain(..n)) {
                        *dst = src;
                    }
                    if n == 0 && client_done.load(Ordering::Relaxed) {
                        break;
                    }
                    n
                }
                Buffer::Shallow(_) => match client.read(&mut slice) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(_) => break,
                },
            };
            if n > 0 && server.write_all(&slice[..n]).is_err() {
                break;
            }
            next += tick;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let _ = server.shutdown(std::net::Shutdown::Both);
        let _ = client.shutdown(std::net::Shutdown::Both);
    });
}

fn set_rcvbuf(sock: &impl AsRawFd, bytes: i32) {
    // SAFETY: setsockopt on a socket we own, pointing at a live c_int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &bytes as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// What one throttled push showed.
struct Throttled {
    lag: f64,
    frames: usize,
    log: String,
}

/// Pushes the paced 720p clip (looped) through the proxy for [`RUN`], cuts the link, and
/// measures the lag from what nginx recorded.
fn push_through(buffer: Buffer, key: &str, env: &[(&str, &std::ffi::OsStr)]) -> Throttled {
    let clip = support::clip_720p_slices_aud(4);
    let clip_bytes = fs::metadata(&clip.path).unwrap().len() as f64;
    let bytes_per_sec = clip_bytes / (clip.frames as f64 / 30.0);
    let nginx = Nginx::start(NginxOpts { record: true });
    let cut = Arc::new(AtomicBool::new(false));
    let proxy = throttling_proxy(
        nginx.port(),
        (bytes_per_sec / 2.0) as usize,
        buffer,
        Arc::clone(&cut),
    );
    let url = format!("rtmp://127.0.0.1:{proxy}/live/{key}");
    let started = Instant::now();
    let mut campush = Campush::start_with_env(
        |dir| {
            format!(
                "[source]\nspec = \"{}\"\nloop = true\n\n[[output]]\nurl = \"{url}\"\n\n\
                 [queue]\nmax_seconds = {MAX_SECONDS}\n\n[network]\nwrite_timeout_s = 60\n\n\
                 [status]\nfile = \"{}\"\nsummary_interval_s = 0\n",
                clip.source(),
                dir.join("status.json").display()
            )
        },
        env,
    );
    thread::sleep(RUN);
    // The end: what nginx has now is all a viewer could have seen.
    cut.store(true, Ordering::Relaxed);
    let run_for = started.elapsed().as_secs_f64();
    let (code, _) = campush.terminate();
    let log = campush.log();
    assert_eq!(code, Some(0), "{log}");
    let rec = probe_recording(&nginx.recording_of(key));
    assert!(rec.decode_errors.is_empty(), "{}", rec.decode_errors);
    assert!(rec.first_frame_key, "the recording starts at a keyframe");
    support::strictly_increasing(&rec.dts).unwrap();
    let last_media = *rec.dts.last().expect("frames recorded") as f64 / 1000.0;
    eprintln!(
        "{buffer:?} at {:.0} kbit/s (stream {:.0} kbit/s): {} frames recorded, lag {:.2} s",
        bytes_per_sec * 4.0 / 1000.0,
        bytes_per_sec * 8.0 / 1000.0,
        rec.dts.len(),
        run_for - last_media
    );
    Throttled {
        lag: run_for - last_media,
        frames: rec.dts.len(),
        log,
    }
}

#[test]
fn behind_a_deep_buffered_link_at_half_the_bitrate_the_lag_stays_within_the_queue_bound() {
    if !require_all() {
        return;
    }
    let run = push_through(Buffer::Deep(16 << 20), "deep", &[]);
    assert!(
        run.log
            .contains("backlog measured by the server's RTMP acknowledgements"),
        "{}",
        run.log
    );
    assert!(run.frames > 100, "only {} frames arrived", run.frames);
    assert!(
        run.lag <= MAX_SECONDS + 1.0,
        "lag {:.2} s exceeds queue.max_seconds + 1 s",
        run.lag
    );
}

#[test]
fn without_acknowledgements_the_socket_send_queue_bounds_the_lag_it_can_see() {
    if !require_all() {
        return;
    }
    let off = std::ffi::OsStr::new("1");
    let run = push_through(
        Buffer::Shallow(32 * 1024),
        "shallow",
        &[("CAMPUSH_IGNORE_RTMP_ACKS", off)],
    );
    assert!(
        run.log
            .contains("backlog measured by the socket's send queue"),
        "{}",
        run.log
    );
    assert!(
        !run.log.contains("RTMP acknowledgements (what"),
        "{}",
        run.log
    );
    assert!(run.frames > 100, "only {} frames arrived", run.frames);
    assert!(
        run.lag <= MAX_SECONDS + 1.0,
        "lag {:.2} s exceeds queue.max_seconds + 1 s",
        run.lag
    );
}

/// For the record (run with `--ignored`): what the fallback cannot see. With acknowledgements
/// ignored, a deep buffer past the first TCP hop holds seconds that no socket statistic shows.
#[test]
#[ignore]
fn without_acknowledgements_a_deep_buffer_beyond_the_first_hop_is_not_seen() {
    if !require_all() {
        return;
    }
    let off = std::ffi::OsStr::new("1");
    let run = push_through(
        Buffer::Deep(16 << 20),
        "blind",
        &[("CAMPUSH_IGNORE_RTMP_ACKS", off)],
    );
    eprintln!(
        "lag without acknowledgements behind a deep buffer: {:.2} s",
        run.lag
    );
}
