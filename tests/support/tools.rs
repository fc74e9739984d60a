//! Which outside programs a test needs, and the one rule when one is missing: skip loudly, or
//! fail under `CAMPUSH_REQUIRE_TOOLS=1` (the rule itself is `campush::testing`, shared with
//! the unit tests in `src/`). Also where nginx and its dynamic modules are installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use campush::testing::command_output;
#[allow(unused_imports)] // re-exported for the tests that need them
pub use campush::testing::{
    require_ffmpeg_x264, require_tool, require_tools, skip_or_fail, tools_required,
};

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

/// True when `tool` is usable. Otherwise [`skip_or_fail`]: prints a loud SKIP line and returns
/// false, or panics when `CAMPUSH_REQUIRE_TOOLS=1`.
pub fn require(tool: Tool) -> bool {
    let problem = match tool {
        Tool::NginxRtmp => match (nginx_bin(), rtmp_module()) {
            (None, _) => Some("nginx is not installed (or does not run)".to_string()),
            (_, None) => Some("the nginx RTMP module (ngx_rtmp_module.so) is not installed".into()),
            _ => None,
        },
        Tool::Ffmpeg => return require_ffmpeg_x264(),
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
    match problem {
        None => true,
        Some(problem) => skip_or_fail(&format!("{problem}; {INSTALL_HINT}")),
    }
}

/// [`require`] for nginx-rtmp, ffmpeg and ffprobe.
pub fn require_all() -> bool {
    [Tool::NginxRtmp, Tool::Ffmpeg, Tool::Ffprobe]
        .into_iter()
        .all(require)
}

/// The nginx binary; non-root users on Debian do not have /usr/sbin in PATH.
pub(super) fn nginx_bin() -> Option<&'static Path> {
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

pub(super) fn rtmp_module() -> Option<&'static Path> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE
        .get_or_init(|| nginx_module("ngx_rtmp_module.so"))
        .as_deref()
}

pub(super) fn stream_module() -> Option<&'static Path> {
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

/// The cross tools' cache (as in scripts/cross-build.sh): its Python venv holds zig and
/// cargo-zigbuild.
pub fn cross_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("CAMPUSH_CROSS_CACHE") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or("/tmp".into())).join(".cache")
        });
    base.join("campush-cross")
}

/// On a fresh machine where the tools are required (CI), lets the cross script install its
/// Debian packages and make its venv (zig, cargo-zigbuild) before a test looks for them.
pub fn set_up_cross_tools(root: &Path) {
    if cross_cache().join("venv/bin/cargo-zigbuild").exists() || !tools_required() {
        return;
    }
    let status = Command::new("bash")
        .arg(root.join("scripts/cross-build.sh"))
        .args(["--setup", "--target", "aarch64-unknown-linux-musl"])
        .current_dir(root)
        .status()
        .expect("run scripts/cross-build.sh");
    assert!(status.success(), "scripts/cross-build.sh --setup failed");
}
