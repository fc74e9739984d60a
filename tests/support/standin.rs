//! The stand-in rpicam-vid (tests/fixtures/rpicam-vid/rpicam-vid) as a camera for campush:
//! [`StandIn`] is a directory holding an `rpicam-vid` that runs the stand-in with chosen
//! `RPICAM_STANDIN_*` variables, to put first on `PATH` ([`StandIn::path_var`]); its starts are
//! logged ([`StandIn::runs`]). Also [`python3_present`] (the stand-in is Python) and
//! [`group_members`], the live processes of a process group.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::tools::skip_or_fail;

pub const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/rpicam-vid/rpicam-vid"
);
/// The clip the stand-in streams: 320x240, 30 fps, an IDR every 30 frames.
pub const STANDIN_CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);

/// True when python3 runs; else [`skip_or_fail`].
pub fn python3_present() -> bool {
    let ok = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok || skip_or_fail("python3 is missing (it runs the stand-in rpicam-vid)")
}

/// A directory with an `rpicam-vid` that runs the stand-in.
pub struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    /// The stand-in with `env` (`RPICAM_STANDIN_*`) on top of the clip and the run log.
    pub fn new(env: &[(&str, &str)]) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.jsonl");
        let mut script = String::from("#!/bin/sh\n");
        script += &format!("export RPICAM_STANDIN_CLIP='{STANDIN_CLIP}'\n");
        script += &format!("export RPICAM_STANDIN_LOG='{}'\n", log.display());
        for (k, v) in env {
            script += &format!("export {k}='{v}'\n");
        }
        // exec: the stand-in keeps this pid, and so leads the process group campush made.
        script += &format!("exec '{STANDIN}' \"$@\"\n");
        let path = dir.path().join("rpicam-vid");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        StandIn { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `PATH` with the stand-in's directory first.
    pub fn path_var(&self) -> OsString {
        std::env::join_paths(std::iter::once(self.dir.path().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap()
    }

    /// One line per start (not `--list-cameras`): `{"pid": .., "pgid": .., "ppid": ..,
    /// "argv": [..]}`.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("runs.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// The number after `"key": ` in a run line.
pub fn json_number(line: &str, key: &str) -> u32 {
    let at = line.find(&format!("\"{key}\": ")).expect(key) + key.len() + 4;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        // state ppid pgrp ...
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            members.push(pid);
        }
    }
    members
}
