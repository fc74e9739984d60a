//! The ioctl structs' layouts are asserted at compile time for the pointer width being built:
//! V4L2's in `src/v4l2/sys.rs`, ALSA's in `src/alsa/sys.rs` (from the table that
//! tests/alsa_abi.rs also holds against the kernel's C header). This test makes those
//! assertions run for the board targets too: `cargo check` of the library for aarch64, armv7
//! and armv6 (musl), which fails if any size or offset differs from the kernel's. Uses
//! `-Zbuild-std` (std from the `rust-src` component), so no target needs to be installed and
//! nothing is linked.
//!
//! Without `rust-src` it prints SKIP and passes, unless `CAMPUSH_REQUIRE_TOOLS=1`.

use std::path::Path;
use std::process::Command;

const TARGETS: &[&str] = &[
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
    "arm-unknown-linux-musleabihf",
];

fn rust_src_present() -> bool {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let ok = sysroot
        .map(|s| {
            Path::new(&s)
                .join("lib/rustlib/src/rust/library/std")
                .exists()
        })
        .unwrap_or(false);
    ok || campush::testing::skip_or_fail(
        "the rust-src component is missing (rustup component add rust-src)",
    )
}

#[test]
fn v4l2_and_alsa_struct_layouts_hold_on_every_board_target() {
    if !rust_src_present() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in TARGETS {
        let out = Command::new(env!("CARGO"))
            .current_dir(root)
            .args([
                "check",
                "--lib",
                // The layouts do not depend on TLS, and ring's build script would want a C cross
                // compiler for the target (the cross build supplies one; this check needs none).
                "--no-default-features",
                "--target",
                target,
                "-Zbuild-std=std,panic_abort",
            ])
            .env("CARGO_TARGET_DIR", root.join("target/abi-check"))
            // -Zbuild-std on a stable toolchain.
            .env("RUSTC_BOOTSTRAP", "1")
            .output()
            .expect("run cargo check");
        assert!(
            out.status.success(),
            "cargo check for {target} failed (a V4L2 or ALSA layout assertion?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
