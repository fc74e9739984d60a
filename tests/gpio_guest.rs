//! The `gpio` LED backend against a real kernel GPIO chip: a Debian 6.1 kernel booted under qemu
//! with gpio-sim (built out of tree by tests/gpio_guest/run.sh), a line named `GPIO17`, and the
//! static campush driving it through the GPIO character device. The scenarios and checks are in
//! tests/gpio_guest/init.sh: by name and by chip + offset, active-low, the double blink on a
//! configuration error, the slow blink while connecting, the line released and dark after stop.
//!
//! Needs qemu-system-x86_64 and the packages `run.sh --fetch` caches (in `$CAMPUSH_GUEST_CACHE`,
//! default ~/.cache/campush-guest, shared with the V4L2 guest test; .ci/run fetches them). It
//! skips, loudly, when they are missing, unless `CAMPUSH_REQUIRE_TOOLS=1` (CI), where it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{kill_with_parent, require_tools, skip_or_fail, wait_child};

/// A static campush for the guest (glibc with crt-static), in its own target directory.
fn build_static_campush() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gpio-guest-build");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--bin",
            "campush",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the static campush failed");
    target_dir.join("x86_64-unknown-linux-gnu/debug/campush")
}

#[test]
fn the_gpio_led_backend_drives_a_real_kernel_gpio_chip() {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        skip_or_fail("the guest is x86_64 Linux");
        return;
    }
    if !require_tools(&["qemu-system-x86_64"], "Debian: qemu-system-x86") {
        return;
    }
    let campush = build_static_campush();
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gpio_guest/run.sh");
    // Its progress goes straight to the test's stderr.
    let mut guest = Command::new("bash");
    guest.arg(&script).arg(&campush).arg(out.path());
    guest.stdin(Stdio::null());
    kill_with_parent(&mut guest);
    let mut child = guest.spawn().unwrap();
    let Some(status) = wait_child(&mut child, Duration::from_secs(600)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the gpio guest did not finish within 10 minutes");
    };
    if status.code() == Some(77) {
        skip_or_fail("the guest's packages are not fetched: bash tests/gpio_guest/run.sh --fetch");
        return;
    }
    let console = std::fs::read_to_string(out.path().join("console.log")).unwrap_or_default();
    assert!(
        status.success(),
        "gpio guest failed ({status}); console:\n{console}"
    );
    let checks = console.lines().filter(|l| l.starts_with("CHECK ")).count();
    assert!(checks >= 11, "only {checks} checks ran:\n{console}");
}
