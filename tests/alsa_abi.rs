//! The ALSA ioctl structs' layouts against the kernel's own header, on every target campush
//! ships: the table `campush::alsa::sys::LAYOUTS` (every struct campush passes to an ALSA ioctl,
//! its size and the offset of every field it uses, for 64-bit targets and for 32-bit ARM)
//! becomes C `_Static_assert`s on `offsetof`/`sizeof` from `<sound/asound.h>`, compiled by
//! `zig cc` (the C compiler of the cross builds, which carries the kernel uapi headers and musl
//! for every target) for x86_64, aarch64 and 32-bit ARM musl (armv6 and armv7 share the ABI),
//! together with the request numbers. The Rust side: `src/alsa/sys.rs` asserts the same table
//! at compile time, and tests/board_layouts.rs runs those assertions for each board target.
//!
//! On 32-bit ARM musl has a 64-bit `time_t`, so the header's `snd_pcm_status` there is the
//! 64-bit-time layout (128 bytes, `SNDRV_PCM_IOCTL_STATUS` = 0x80804120): the one campush uses
//! (see sys.rs).
//!
//! Without zig (scripts/cross-build.sh --setup installs it) it prints SKIP and passes, unless
//! `CAMPUSH_REQUIRE_TOOLS=1`.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use campush::alsa::sys::LAYOUTS;

/// zig target, pointer width, and the target's request numbers to check.
const C_TARGETS: &[(&str, u32)] = &[
    ("x86_64-linux-musl", 64),
    ("aarch64-linux-musl", 64),
    ("arm-linux-musleabihf", 32),
];

/// (name, 64-bit, 32-bit) request numbers as sys.rs computes them.
const REQUESTS: &[(&str, u32, u32)] = &[
    ("SNDRV_PCM_IOCTL_HW_REFINE", 0xc260_4110, 0xc25c_4110),
    ("SNDRV_PCM_IOCTL_HW_PARAMS", 0xc260_4111, 0xc25c_4111),
    ("SNDRV_PCM_IOCTL_SW_PARAMS", 0xc088_4113, 0xc068_4113),
    ("SNDRV_PCM_IOCTL_STATUS", 0x8098_4120, 0x8080_4120),
    ("SNDRV_PCM_IOCTL_READI_FRAMES", 0x8018_4151, 0x800c_4151),
    ("SNDRV_PCM_IOCTL_WRITEI_FRAMES", 0x4018_4150, 0x400c_4150),
    ("SNDRV_PCM_IOCTL_INFO", 0x8120_4101, 0x8120_4101),
    ("SNDRV_PCM_IOCTL_TTSTAMP", 0x4004_4103, 0x4004_4103),
    ("SNDRV_CTL_IOCTL_CARD_INFO", 0x8178_5501, 0x8178_5501),
    ("SNDRV_CTL_IOCTL_ELEM_READ", 0xc4c8_5512, 0xc2c8_5512),
    ("SNDRV_CTL_IOCTL_ELEM_WRITE", 0xc4c8_5513, 0xc2c8_5513),
];

/// zig's C compiler: the cross tools' (set up first on a fresh machine under
/// CAMPUSH_REQUIRE_TOOLS), else one on PATH.
fn zig() -> Option<Vec<String>> {
    support::set_up_cross_tools(Path::new(env!("CARGO_MANIFEST_DIR")));
    let base = support::cross_cache();
    let venv = base.join("venv/bin/python-zig");
    if venv.exists() {
        return Some(vec![venv.display().to_string(), "cc".into()]);
    }
    let on_path = Command::new("zig").arg("version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return Some(vec!["zig".into(), "cc".into()]);
    }
    None
}

/// The C file asserting every layout and request number for one pointer width.
fn c_source(bits: u32) -> String {
    let mut c =
        String::from("#include <stddef.h>\n#include <sys/ioctl.h>\n#include <sound/asound.h>\n");
    for l in LAYOUTS {
        let size = if bits == 64 { l.size.0 } else { l.size.1 };
        let _ = writeln!(
            c,
            "_Static_assert(sizeof(struct {0}) == {size}, \"sizeof({0}) != {size}\");",
            l.name
        );
        for &(field, o64, o32) in l.fields {
            let off = if bits == 64 { o64 } else { o32 };
            let _ = writeln!(
                c,
                "_Static_assert(offsetof(struct {0}, {field}) == {off}, \
                 \"offsetof({0}, {field}) != {off}\");",
                l.name
            );
        }
    }
    for &(name, n64, n32) in REQUESTS {
        let n = if bits == 64 { n64 } else { n32 };
        let _ = writeln!(
            c,
            "_Static_assert({name} == {n:#x}u, \"{name} != {n:#x}\");"
        );
    }
    c
}

#[test]
fn alsa_struct_layouts_match_the_kernel_header_on_every_target() {
    let Some(zig) = zig() else {
        campush::testing::skip_or_fail("zig is missing (scripts/cross-build.sh --setup)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/alsa-abi");
    std::fs::create_dir_all(&dir).unwrap();
    for &(target, bits) in C_TARGETS {
        let src = dir.join(format!("layout-{target}.c"));
        std::fs::write(&src, c_source(bits)).unwrap();
        let out = Command::new(&zig[0])
            .args(&zig[1..])
            .args(["-target", target, "-c", "-o"])
            .arg(dir.join(format!("layout-{target}.o")))
            .arg(&src)
            // zig keeps its cache below HOME; give it one of its own in the target directory.
            .env("ZIG_GLOBAL_CACHE_DIR", dir.join("zig-cache"))
            .env("ZIG_LOCAL_CACHE_DIR", dir.join("zig-cache"))
            .output()
            .expect("run zig cc");
        assert!(
            out.status.success(),
            "{target}: the kernel header disagrees with campush::alsa::sys:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
