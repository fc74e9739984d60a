//! Reading a small file whole, bounded in time and memory: a stream key (`key_file`), the
//! status file (`campush status`), the configuration file, a TLS CA file (`tls_ca`).
//!
//! Owns: [`read`], [`read_to_string`]. Invariants: only a regular file is read; the file is opened with
//! `O_NONBLOCK` (a FIFO with no writer opens at once instead of blocking forever) and checked
//! with `fstat` on the open descriptor (no race between the check and the read), so a device
//! (`/dev/zero`, `/dev/stdin` on a terminal), a FIFO, a socket or a directory is refused with an
//! error naming what it is; at most `limit` bytes are ever read (one more to tell a file that is
//! too large), never the whole of whatever the path holds. Errors are `std::io::Error`s whose
//! text names no path (the caller knows which file it asked for, and whether its name may be
//! shown).

use std::fs::{FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The bytes of the regular file at `path`, which must hold at most `limit` bytes.
pub fn read(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "not a regular file but {}: expected a small file",
                describe(meta.file_type())
            ),
        ));
    }
    let expected = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(expected.min(limit) + 1);
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes: expected a small file"),
        ));
    }
    Ok(bytes)
}

/// The text of the regular file at `path`, which must hold at most `limit` bytes of UTF-8.
pub fn read_to_string(path: &Path, limit: usize) -> io::Result<String> {
    String::from_utf8(read(path, limit)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "not UTF-8 text: expected a small text file",
        )
    })
}

fn describe(t: FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_small_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc-123\n").unwrap();
        assert_eq!(read_to_string(&path, 4096).unwrap(), "abc-123\n");
        std::fs::write(&path, [b'x'; 4096]).unwrap();
        assert_eq!(
            read_to_string(&path, 4096).unwrap().len(),
            4096,
            "exactly the limit"
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_without_reading_it_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'x'; 4097]).unwrap();
        let e = read_to_string(&path, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("larger than 4096 bytes"), "{e}");
    }

    #[test]
    fn dev_zero_is_refused_at_once_as_a_device() {
        let t = Instant::now();
        let e = read_to_string(Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a character device"), "{e}");
    }

    #[test]
    fn a_fifo_without_a_writer_is_refused_at_once_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let asked = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_to_string(&asked, 4096).map_err(|e| e.to_string()));
        });
        let got = rx.recv_timeout(Duration::from_secs(2));
        let Ok(Err(e)) = got else {
            // Unblock the reader (a writer opens and closes), so the thread ends.
            let _ = std::fs::OpenOptions::new().write(true).open(&path);
            panic!("reading a FIFO did not fail within 2 s: {got:?}");
        };
        assert!(e.contains("a FIFO"), "{e}");
    }

    #[test]
    fn a_directory_and_bytes_that_are_not_text_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_to_string(dir.path(), 4096).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let path = dir.path().join("bin");
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let e = read_to_string(&path, 4096).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
