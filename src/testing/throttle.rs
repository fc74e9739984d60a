//! For tests and benchmarks only: a throttling TCP proxy on loopback, a link slower than the
//! stream, with a deep buffer (a bloated router: it takes everything at once and forwards it
//! at the link rate) or a shallow one (it reads no faster than it forwards). Used by
//! `tests/backlog.rs`, `tests/adaptive_bitrate.rs` and `tests/resilience.rs` (through
//! `tests/support`), and by `examples/throttle.rs`, the standalone proxy of `bench/lag.sh`.
//!
//! Client → server goes at the link rate, a slice every 20 ms; server → client as fast as it
//! comes. Threads per connection, blocking sockets, bounded waits; panics on setup failures
//! (a test helper). Nothing here runs on campush's data path.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the proxy buffers what it cannot forward yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// Reads everything at once into up to this many bytes of its own.
    Deep(usize),
    /// Reads no faster than it forwards, through a socket buffer of this size.
    Shallow(i32),
}

/// A TCP proxy to `target` forwarding client → server at `bytes_per_sec` with `buffer`
/// (server → client unthrottled). Setting `cut` drops whatever it still holds and closes both
/// sides: what the server has by then is what it will ever get from this connection.
/// The proxy stops accepting after `lifetime`.
pub fn throttling_proxy(
    target: u16,
    bytes_per_sec: usize,
    buffer: Buffer,
    cut: Arc<AtomicBool>,
    lifetime: Duration,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    if let Buffer::Shallow(bytes) = buffer {
        set_rcvbuf(&listener, bytes); // inherited by the accepted socket, window scale included
    }
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + lifetime;
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
