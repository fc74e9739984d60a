//! No stream key or credential in a configuration error, whatever the mistake on the line that
//! holds it: not in the message, not in the excerpt of the file under it. Checked on every route
//! a configuration error takes to a person: the library's error text, `campush check-config FILE`,
//! `campush run --config FILE` at start-up, and a reload on SIGHUP.
//!
//! Each case is a whole file with one mistake on (or next to) a `url`, `key` or `key_file` line,
//! in `[[output]]` and wherever else a URL can be written by mistake. Every case must be refused:
//! a case that checked would prove nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use campush::config::RawConfig;

const KEY: &str = "sk-live-7f3Qz9";
const PASSWORD: &str = "hunter2pw";
/// A stream key of digits only, which TOML reads as a number when left unquoted.
const DIGITS: &str = "7312905846";

const CLIP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/clip-320x240-30fps.h264"
);

/// (what is wrong, the file, the secrets it holds).
fn cases() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let out = |lines: &str| format!("[source]\nspec = \"stdin\"\n\n[[output]]\n{lines}\n");
    let base = "url = \"rtmp://ingest.example/live\"";
    let k = vec![KEY];
    vec![
        (
            "a port over 65535",
            out(&format!("url = \"rtmp://ingest.example:99999/live/{KEY}\"")),
            k.clone(),
        ),
        (
            "a port over 65535 with a query",
            out(&format!(
                "url = \"rtmp://ingest.example:70000/live/stream?token={KEY}\""
            )),
            k.clone(),
        ),
        (
            "a missing closing quote on url",
            out(&format!("url = \"rtmp://ingest.example/live/{KEY}")),
            k.clone(),
        ),
        (
            "user:password@ credentials",
            out(&format!(
                "url = \"rtmp://user:{PASSWORD}@ingest.example/live/{KEY}\""
            )),
            vec![KEY, PASSWORD],
        ),
        (
            "a space in the url",
            out(&format!("url = \"rtmp://ingest.example/live/{KEY} 2\"")),
            k.clone(),
        ),
        (
            "an unquoted url",
            out(&format!("url = rtmp://ingest.example/live/{KEY}")),
            k.clone(),
        ),
        (
            "a url in a list",
            out(&format!("url = [\"rtmp://ingest.example/live/{KEY}\"]")),
            k.clone(),
        ),
        (
            "a url of another scheme",
            out(&format!("url = \"http://ingest.example/live/{KEY}\"")),
            k.clone(),
        ),
        (
            "a url without an app",
            out(&format!("url = \"rtmp://ingest.example/{KEY}\"")),
            k.clone(),
        ),
        (
            "a url with a bad host",
            out(&format!("url = \"rtmp://ingest!example/live/{KEY}\"")),
            k.clone(),
        ),
        (
            "a url set twice",
            out(&format!(
                "url = \"rtmp://ingest.example/live/{KEY}\"\nurl = \"rtmp://ingest.example/live/{KEY}\""
            )),
            k.clone(),
        ),
        (
            "a space in the key",
            out(&format!("{base}\nkey = \"{KEY} 2\"")),
            k.clone(),
        ),
        (
            "a missing closing quote on key",
            out(&format!("{base}\nkey = \"{KEY}")),
            k.clone(),
        ),
        (
            "an unquoted key",
            out(&format!("{base}\nkey = {KEY}")),
            k.clone(),
        ),
        (
            "a key of digits, unquoted",
            out(&format!("{base}\nkey = {DIGITS}")),
            vec![DIGITS],
        ),
        (
            "a bad escape in the key",
            out(&format!("{base}\nkey = \"{KEY}\\q\"")),
            k.clone(),
        ),
        (
            "a key over several lines",
            out(&format!("{base}\nkey = \"\"\"\n{KEY}\nmore\n\"\"\"")),
            k.clone(),
        ),
        (
            "key and key_file both",
            out(&format!("{base}\nkey = \"{KEY}\"\nkey_file = \"stream.key\"")),
            k.clone(),
        ),
        (
            "the key in key_file's place",
            out(&format!("{base}\nkey_file = \"{KEY}\"")),
            k.clone(),
        ),
        (
            "a missing closing quote on key_file",
            out(&format!("{base}\nkey_file = \"{KEY}")),
            k.clone(),
        ),
        (
            "an unquoted key_file",
            out(&format!("{base}\nkey_file = {KEY}")),
            k.clone(),
        ),
        (
            "a key_file of digits, unquoted",
            out(&format!("{base}\nkey_file = {DIGITS}")),
            vec![DIGITS],
        ),
        (
            "a key and a url whose port is wrong, in an inline table",
            format!(
                "output = [{{ key = \"{KEY}\", url = \"rtmp://ingest.example:99999/live\" }}]\n\
                 [source]\nspec = \"stdin\"\n"
            ),
            k.clone(),
        ),
        (
            "an output written as a string",
            format!("output = \"rtmp://ingest.example/live/{KEY}\"\n[source]\nspec = \"stdin\"\n"),
            k.clone(),
        ),
        (
            "a misspelt url key",
            out(&format!("ulr = \"rtmp://ingest.example/live/{KEY}\"")),
            k.clone(),
        ),
        (
            "a misspelt key key",
            out(&format!("{base}\nkye = \"{KEY}\"")),
            k.clone(),
        ),
        (
            "a guessed stream_key key",
            out(&format!("{base}\nstream_key = \"{KEY}\"")),
            k.clone(),
        ),
        (
            "a url pasted without a key",
            out(&format!("rtmp://ingest.example/live/{KEY}")),
            k.clone(),
        ),
        (
            "a url in [source]",
            format!("[source]\nspec = \"stdin\"\nurl = \"rtmp://ingest.example/live/{KEY}\"\n"),
            k.clone(),
        ),
        (
            "a url at the top of the file",
            format!("url = \"rtmp://ingest.example/live/{KEY}\"\n[source]\nspec = \"stdin\"\n"),
            k.clone(),
        ),
        (
            "a url in [network]",
            format!(
                "[source]\nspec = \"stdin\"\n[[output]]\n{base}\n[network]\nurl = \"rtmp://ingest.example/live/{KEY}\"\n"
            ),
            k.clone(),
        ),
        (
            "a TLS setting on the output of a url with its key",
            out(&format!(
                "url = \"rtmp://ingest.example/live/{KEY}\"\ntls_insecure = true"
            )),
            k.clone(),
        ),
        (
            "a mistake on the line after the url",
            out(&format!(
                "url = \"rtmp://ingest.example/live/{KEY}\"\ntls_insecure = \"yes\""
            )),
            k.clone(),
        ),
    ]
}

fn assert_no_secret(case: &str, secrets: &[&str], route: &str, text: &str) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{case}: {route} shows {secret:?}:\n{text}"
        );
    }
}

fn write_case(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("campush.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn campush(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_campush"))
        .args(args)
        .env("CAMPUSH_ROOT", root)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_configuration_error_shows_the_key_or_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for (case, text, secrets) in cases() {
        let path = write_case(dir.path(), &text);
        let err = match RawConfig::load(&path).and_then(|raw| raw.check()) {
            Err(e) => e,
            Ok(_) => panic!("{case}: the file checked, so the case proves nothing:\n{text}"),
        };
        assert_no_secret(case, &secrets, "the error", &err.to_string());
        assert_no_secret(case, &secrets, "the error's Debug", &format!("{err:?}"));
    }
}

#[test]
fn check_config_and_run_never_print_the_key_of_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    for (case, text, secrets) in cases() {
        let path = write_case(dir.path(), &text);
        let file = path.to_str().unwrap();
        for args in [vec!["check-config", file], vec!["run", "--config", file]] {
            let out = campush(dir.path(), &args);
            let route = args.join(" ");
            assert_eq!(out.status.code(), Some(78), "{case}: {route}");
            let printed = all_output(&out);
            assert!(
                printed.contains("campush.toml"),
                "{case}: {route}: {printed}"
            );
            assert_no_secret(case, &secrets, &route, &printed);
        }
    }
}

#[test]
fn a_url_given_on_the_command_line_is_not_printed_either() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rtmp://user:{PASSWORD}@ingest.example:99999/live/{KEY}");
    let out = campush(dir.path(), &["run", "--source", "stdin", "--url", &url]);
    assert_eq!(out.status.code(), Some(78));
    assert_no_secret("--url", &[KEY, PASSWORD], "run --url", &all_output(&out));
}

/// A port on loopback where nothing listens: the destination retries and never connects.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_reload_refused_on_sighup_never_logs_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("campush.toml");
    let running = format!(
        "[source]\nspec = \"file:{CLIP}\"\nloop = true\n[[output]]\nurl = \"rtmp://127.0.0.1:{}/live/running\"\n\
         [network]\nmax_attempts = 0\n",
        closed_port()
    );
    std::fs::write(&path, &running).unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_campush"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env("CAMPUSH_ROOT", dir.path())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let wait_for = |what: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_log().matches(what).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {what:?} #{count} within 10 s:\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for("streaming file:", 1);
    let pid = i32::try_from(child.id()).unwrap();
    let cases = cases();
    for (n, (_, text, _)) in cases.iter().enumerate() {
        std::fs::write(&path, text).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        wait_for("reload refused", n + 1);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("campush did not stop on SIGTERM:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = read_log();
    for (case, _, secrets) in &cases {
        assert_no_secret(case, secrets, "the reload log", &log);
    }
}
