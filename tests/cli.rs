//! The command line as a user types it: every command answers `--help` with its own usage on
//! standard output and exit code 0, without reading a configuration or touching a device.

use std::process::Command;

fn campush(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_campush"))
        .args(args)
        // No configuration may be found or read: --help must not depend on one.
        .env("CAMPUSH_ROOT", "/nonexistent")
        .output()
        .expect("campush runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_answers_help_with_its_usage_and_exit_0() {
    for (args, usage) in [
        (&["--help"][..], "campush run [--config FILE]"),
        (&["-h"][..], "campush check-config [FILE]"),
        (&["help"][..], "campush probe"),
        (
            &["run", "--help"][..],
            "campush run --url URL --source SPEC",
        ),
        (&["run", "-h"][..], "--max-attempts N"),
        (
            &["run", "--url", "rtmp://h/app/k", "--help"][..],
            "--tls-ca FILE",
        ),
        (&["help", "run"][..], "SIGHUP reloads"),
        (&["run", "--help"][..], "--key-file FILE"),
        (&["--help"][..], "--key-file FILE"),
        (&["help", "run"][..], "every user of the machine can read"),
        (&["--help"][..], "every user of the machine can read"),
        (
            &["check-config", "--help"][..],
            "campush check-config [FILE]",
        ),
        (&["check-config", "-h"][..], "78 invalid"),
        (&["help", "check-config"][..], "campush check-config [FILE]"),
        (&["probe", "--help"][..], "campush probe"),
        (&["help", "probe"][..], "V4L2 devices"),
        (&["status", "--help"][..], "campush status [FILE]"),
        (&["status", "-h"][..], "2 stale"),
        (&["help", "status"][..], "3 no status file"),
        (&["--help"][..], "campush status [FILE]"),
    ] {
        let (code, stdout, stderr) = campush(args);
        assert_eq!(code, 0, "campush {args:?}: stderr {stderr}");
        assert!(
            stdout.contains(usage),
            "campush {args:?} printed:\n{stdout}"
        );
        assert!(
            stderr.is_empty(),
            "campush {args:?} wrote to stderr: {stderr}"
        );
    }
}

#[test]
fn version_and_unknown_commands() {
    let (code, stdout, _) = campush(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("campush "), "{stdout}");
    let (code, _, stderr) = campush(&["frobnicate"]);
    assert_eq!(code, 78, "a usage error is a configuration error");
    assert!(stderr.contains("unknown command"), "{stderr}");
    let (code, _, stderr) = campush(&["run", "--bogus"]);
    assert_eq!(code, 78);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn a_configuration_that_is_a_device_or_a_fifo_is_refused_at_once_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("campush.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path the test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (path, what) in [
        ("/dev/zero", "a character device"),
        (fifo.to_str().unwrap(), "a FIFO"),
    ] {
        let started = std::time::Instant::now();
        let (code, _, err) = campush(&["check-config", path]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(code, 78, "{path}: {err}");
        assert!(err.contains(what), "{path}: {err}");
    }
}
