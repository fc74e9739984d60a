//! For tests only (hidden from the docs): the one rule for a test that needs a program campush
//! does not ship (ffmpeg, nginx, qemu, ...), used by the unit tests in `src/` and, through
//! `tests/support`, by the integration tests.
//!
//! The rule: when what a test needs is there, it runs. When it is not, the test is skipped,
//! loudly (a `*** SKIP` line on stderr that the test harness does not capture), and passes;
//! unless `CAMPUSH_REQUIRE_TOOLS=1` is set (as CI does after installing everything), where it
//! fails instead, naming what is missing. Nothing here runs on the data path.
//!
//! [`throttle`]: the throttling TCP proxy (a slow link with a deep or shallow buffer) shared by
//! the backlog tests and the lag benchmark.

pub mod throttle;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The environment variable that turns every skip into a failure when set to `1`.
pub const REQUIRE_TOOLS: &str = "CAMPUSH_REQUIRE_TOOLS";

/// Whether a missing tool fails the test (`CAMPUSH_REQUIRE_TOOLS=1`) rather than skipping it.
pub fn tools_required() -> bool {
    std::env::var(REQUIRE_TOOLS).as_deref() == Ok("1")
}

/// The current test cannot run because of `problem` (say what is missing and how to install
/// it). Panics when [`tools_required`]; otherwise prints a loud SKIP line naming the test and
/// returns false, so that `if !skip_or_fail(..)`-style callers simply return.
pub fn skip_or_fail(problem: &str) -> bool {
    if tools_required() {
        panic!("{REQUIRE_TOOLS}=1 but {problem}");
    }
    let test = std::thread::current().name().unwrap_or("test").to_owned();
    // Straight to stderr: the test harness captures (and hides) `eprintln!` of passing tests.
    let skip = format!("\n*** SKIP {test}: {problem}; test not run ***\n");
    let _ = std::io::stderr().write_all(skip.as_bytes());
    false
}

/// True when `program` is installed; otherwise [`skip_or_fail`].
pub fn require_tool(program: &str) -> bool {
    require_tools(&[program], "")
}

/// True when every one of `programs` is installed; otherwise [`skip_or_fail`] naming all the
/// missing ones, followed by `hint` (e.g. "install qemu-system-x86 (Debian)").
pub fn require_tools(programs: &[&str], hint: &str) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let mut problem = format!("{} is not installed", missing.join(", "));
    if !hint.is_empty() {
        problem = format!("{problem}; {hint}");
    }
    skip_or_fail(&problem)
}

/// True when ffmpeg is installed with the libx264 encoder; otherwise [`skip_or_fail`].
pub fn require_ffmpeg_x264() -> bool {
    match command_output("ffmpeg", &["-hide_banner", "-encoders"]) {
        None => skip_or_fail("ffmpeg is not installed (Debian: ffmpeg)"),
        Some(out) if !out.contains("libx264") => skip_or_fail("ffmpeg lacks libx264"),
        Some(_) => true,
    }
}

/// Whether `program` is an executable file: the path itself when it has a `/`, else found in
/// one of the directories of `PATH`.
pub fn installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| executable(&d.join(program))))
}

/// stdout of `program args` when it ran and exited 0; None if it could not run or failed.
pub fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_on_the_path_is_installed_and_a_made_up_one_is_not() {
        assert!(installed("sh"));
        assert!(installed("/bin/sh"));
        assert!(!installed("campush-no-such-program"));
        assert!(!installed("/nonexistent/sh"));
    }

    #[test]
    fn command_output_is_stdout_of_a_successful_run_only() {
        assert_eq!(
            command_output("sh", &["-c", "echo hi"]).as_deref(),
            Some("hi\n")
        );
        assert_eq!(command_output("sh", &["-c", "echo hi; exit 1"]), None);
        assert_eq!(command_output("campush-no-such-program", &[]), None);
    }
}
