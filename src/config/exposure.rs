//! Keys at rest: whether a file that holds a stream key can be read by every user of the
//! machine, and the warning that says which file and what to do.
//!
//! Owns: the test (read permission for others on the file, and search permission for others
//! on every directory above it: a 0644 file in a 0750 `/etc/campush` is closed) and the words.
//! The files are the configuration file when it holds a key (in `key` or in a `url`) and every
//! key file (`key_file`, `--key-file`); `Config::key_warnings` lists them. Symbolic links are
//! followed: what counts is the file read.
//!
//! Invariants: a warning names the file and its mode, never its content; the files of one
//! configuration give at most one line each, and all the files on FAT one line together.
//!
//! FAT (the SD card's boot partition, vfat or exFAT): modes there are a mount option, every
//! file shows as readable by all, and chmod does nothing. Telling a person to chmod would not
//! help, and a warning per file at every start would be noise; so the files on FAT get one line
//! that says where a key is safe instead (`/etc/campush`, root:campush, 0640, which the .deb and
//! deploy/remote-install.sh create).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What holds the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The configuration file (`key = "..."`, or the key at the end of a `url`).
    ConfigFile,
    /// A file of its own (`key_file`, `--key-file`).
    KeyFile,
}

/// How every user can read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exposure {
    /// On FAT: by mount option, whatever chmod says.
    Fat,
    /// By its mode (the permission bits).
    Mode(u32),
}

/// The warnings for `files` (each once, in order), one line each; empty when none of them can
/// be read by every user.
pub fn warnings(files: &[(PathBuf, Holder)]) -> Vec<String> {
    let mut exposed: Vec<(&Path, Holder, Exposure)> = Vec::new();
    for (path, holder) in files {
        if exposed.iter().any(|(p, _, _)| p == path) {
            continue;
        }
        if let Some(e) = exposure(path) {
            exposed.push((path, *holder, e));
        }
    }
    lines(&exposed)
}

/// How every user can read `path`, if they can.
fn exposure(path: &Path) -> Option<Exposure> {
    let real = std::fs::canonicalize(path).ok()?;
    let mode = std::fs::metadata(&real).ok()?.permissions().mode();
    if mode & 0o004 == 0 {
        return None;
    }
    let closed_above = real
        .ancestors()
        .skip(1)
        .any(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 == 0));
    if closed_above {
        return None;
    }
    Some(if on_fat(&real) {
        Exposure::Fat
    } else {
        Exposure::Mode(mode & 0o7777)
    })
}

/// Whether `path` is on a FAT file system (vfat, msdos or exFAT).
fn on_fat(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const MSDOS_SUPER_MAGIC: u64 = 0x4d44;
    const EXFAT_SUPER_MAGIC: u64 = 0x2011_bab0;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs(2) with a NUL-terminated path and a zeroed struct it fills in.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut st) } != 0 {
        return false;
    }
    // f_type is signed or unsigned, 32 or 64 bits, depending on the target.
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as u64;
    kind == MSDOS_SUPER_MAGIC || kind == EXFAT_SUPER_MAGIC
}

/// The words: a line per file with a mode to change, one line for the files on FAT.
fn lines(exposed: &[(&Path, Holder, Exposure)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, holder, e) in exposed {
        let Exposure::Mode(mode) = e else { continue };
        let p = path.display();
        let mut line = format!(
            "{p} holds a stream key and every user of this machine can read it (mode {mode:04o}): \
             chmod 0640 {p} (for the service: owner root, group campush)"
        );
        if *holder == Holder::ConfigFile {
            line += ", or move the key into a key_file in /etc/campush";
        }
        out.push(line);
    }
    let fat: Vec<String> = exposed
        .iter()
        .filter(|(_, _, e)| *e == Exposure::Fat)
        .map(|(p, _, _)| p.display().to_string())
        .collect();
    if !fat.is_empty() {
        let (names, verb) = match fat.len() {
            1 => (fat[0].clone(), "holds a stream key"),
            _ => (fat.join(", "), "hold stream keys"),
        };
        out.push(format!(
            "{names} {verb} on a FAT partition (the SD card's boot partition), where every user of \
             this machine can read every file and chmod does nothing: to keep a key from them, \
             put it in /etc/campush/stream.key (owner root, group campush, mode 0640) and set \
             key_file = \"/etc/campush/stream.key\""
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A directory others may enter (tempfile makes 0700 ones), with `name` in it at `mode`.
    fn file_with_mode(dir: &Path, name: &str, mode: u32) -> PathBuf {
        chmod(dir, 0o755);
        let path = dir.join(name);
        std::fs::write(&path, "sk-at-rest-1\n").unwrap();
        chmod(&path, mode);
        path
    }

    #[test]
    fn a_file_others_may_read_is_exposed_and_one_closed_to_them_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), "stream.key", 0o644);
        assert_eq!(exposure(&path), Some(Exposure::Mode(0o644)));
        for closed in [0o640, 0o600, 0o440] {
            chmod(&path, closed);
            assert_eq!(exposure(&path), None, "{closed:o}");
        }
        assert_eq!(exposure(&dir.path().join("missing.key")), None);
    }

    #[test]
    fn a_directory_others_cannot_enter_closes_the_files_in_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("campush")).unwrap();
        let path = file_with_mode(&dir.path().join("campush"), "stream.key", 0o644);
        chmod(&dir.path().join("campush"), 0o750);
        assert_eq!(exposure(&path), None);
    }

    #[test]
    fn a_link_counts_as_the_file_it_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with_mode(dir.path(), "real.key", 0o600);
        std::os::unix::fs::symlink(&path, dir.path().join("link.key")).unwrap();
        assert_eq!(exposure(&dir.path().join("link.key")), None);
    }

    #[test]
    fn each_file_is_warned_about_once_by_name_and_mode_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let config = file_with_mode(dir.path(), "campush.toml", 0o644);
        let key = file_with_mode(dir.path(), "stream.key", 0o604);
        let files = [
            (config.clone(), Holder::ConfigFile),
            (key.clone(), Holder::KeyFile),
            (key.clone(), Holder::KeyFile),
        ];
        let w = warnings(&files);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            w[0],
            format!(
                "{0} holds a stream key and every user of this machine can read it (mode 0644): \
                 chmod 0640 {0} (for the service: owner root, group campush), or move the key \
                 into a key_file in /etc/campush",
                config.display()
            )
        );
        assert!(w[1].starts_with(&format!("{} holds a stream key", key.display())));
        assert!(
            w[1].contains("(mode 0604)") && !w[1].contains("move the key"),
            "{}",
            w[1]
        );
        assert!(w.iter().all(|l| !l.contains("sk-at-rest")), "{w:?}");
    }

    #[test]
    fn files_on_fat_share_one_line_that_says_where_a_key_is_safe() {
        let config = Path::new("/boot/firmware/campush.toml");
        let key = Path::new("/boot/firmware/twitch.key");
        let other = Path::new("/home/pi/yt.key");
        let w = lines(&[
            (config, Holder::ConfigFile, Exposure::Fat),
            (other, Holder::KeyFile, Exposure::Mode(0o644)),
            (key, Holder::KeyFile, Exposure::Fat),
        ]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("/home/pi/yt.key holds a stream key"),
            "{}",
            w[0]
        );
        assert!(
            w[1].starts_with(
                "/boot/firmware/campush.toml, /boot/firmware/twitch.key hold stream keys on a FAT \
                 partition"
            ),
            "{}",
            w[1]
        );
        for needle in ["chmod does nothing", "/etc/campush/stream.key", "mode 0640"] {
            assert!(w[1].contains(needle), "{needle}: {}", w[1]);
        }
        let one = lines(&[(config, Holder::ConfigFile, Exposure::Fat)]);
        assert!(
            one[0].starts_with("/boot/firmware/campush.toml holds a stream key on a FAT"),
            "{}",
            one[0]
        );
    }

    #[test]
    fn nothing_readable_nothing_said() {
        assert!(warnings(&[]).is_empty());
        assert!(lines(&[]).is_empty());
    }
}
