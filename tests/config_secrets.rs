//! No stream key or credential in a configuration error, whatever the mistake on the line that
//! holds it: not in the message, not in the excerpt of the file under it. Checked on every route
//! a configuration error takes to a person: the library's error text, `campush check-config FILE`,
//! `campush run --config FILE` at start-up, and a reload on SIGHUP. Then the same for a key
//! given with `--key-file`, for a valid file whose url still holds a key next to a separate
//! one, and for the warnings about a file holding a key that every user can read: they name
//! the file, never the key.
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
            "the key in the url and in key too",
            out(&format!(
                "url = \"rtmp://ingest.example/live/{KEY}\"\nkey = \"{KEY}\""
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

// ---- a key beside the url, a key file on the command line ---------------------------------------

#[test]
fn a_url_that_still_holds_a_key_next_to_a_separate_key_is_never_printed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_case(
        dir.path(),
        &format!(
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://ingest.example/live/{KEY}\"\n\
             key = \"other-key-1\"\n[[output]]\nurl = \"rtmp://ingest.example/app?token={PASSWORD}\"\n\
             key = \"other-key-2\"\n"
        ),
    );
    let out = campush(dir.path(), &["check-config", path.to_str().unwrap()]);
    let printed = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("output = rtmp://ingest.example:1935/live/<redacted>"),
        "{printed}"
    );
    assert_no_secret(
        "a key in the url and in key",
        &[KEY, PASSWORD],
        "check-config",
        &printed,
    );
}

#[test]
fn a_key_pasted_as_the_whole_path_of_the_url_is_printed_by_its_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_case(
        dir.path(),
        &format!(
            "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://ingest.example/{KEY}\"\n\
             key = \"other-key-1\"\n[[output]]\nurl = \"rtmp://ingest.example/live2\"\n\
             key = \"other-key-2\"\n"
        ),
    );
    let out = campush(dir.path(), &["check-config", path.to_str().unwrap()]);
    let printed = all_output(&out);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    assert!(
        printed.contains("output = rtmp://ingest.example:1935/sk…/<redacted>"),
        "{printed}"
    );
    assert!(
        printed.contains("output = rtmp://ingest.example:1935/live2/<redacted>"),
        "{printed}"
    );
    assert_no_secret(
        "a key pasted as the app",
        &[KEY, &KEY[..5], "other-key"],
        "check-config",
        &printed,
    );
}

#[test]
fn a_key_file_given_on_the_command_line_is_not_printed_either() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("stream.key");
    let key_file = key_file.to_str().unwrap();
    let named_as_key = dir.path().join(KEY);
    for (case, key, url, file) in [
        (
            "a space in the key",
            format!("{KEY} 2\n"),
            "rtmp://ingest.example/live2".to_owned(),
            key_file,
        ),
        (
            "a port over 65535",
            format!("{KEY}\n"),
            "rtmp://ingest.example:99999/live2".to_owned(),
            key_file,
        ),
        (
            "the key in the url too",
            format!("{KEY}\n"),
            format!("rtmp://ingest.example/live2/{KEY}"),
            key_file,
        ),
        (
            "the key as the key file's name",
            String::new(),
            "rtmp://ingest.example/live2".to_owned(),
            named_as_key.to_str().unwrap(),
        ),
    ] {
        if !key.is_empty() {
            std::fs::write(key_file, key).unwrap();
        }
        let out = campush(
            dir.path(),
            &[
                "run",
                "--source",
                "stdin",
                "--url",
                &url,
                "--key-file",
                file,
            ],
        );
        let printed = all_output(&out);
        assert_eq!(out.status.code(), Some(78), "{case}: {printed}");
        assert!(
            printed.contains("output[1]."),
            "{case}: not about the output: {printed}"
        );
        assert_no_secret(case, &[KEY], "run --key-file", &printed);
    }
}

// ---- keys at rest that every user can read ------------------------------------------------------

/// The words every such warning has.
const READABLE: &str = "every user of this machine can read";

/// A temporary directory every user may enter (tempfile makes them 0700, which would hide what
/// is in them from others and so, rightly, silence the warning).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    chmod(path, mode);
}

#[test]
fn check_config_warns_of_a_key_every_user_can_read_naming_the_file_not_the_key() {
    let dir = open_dir();
    let config = dir.path().join("campush.toml");
    let shown = config.display().to_string();
    let with_key = format!(
        "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://ingest.example/live2\"\nkey = \"{KEY}\"\n"
    );
    write_mode(&config, &with_key, 0o644);
    let check = || campush(dir.path(), &["check-config", config.to_str().unwrap()]);
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning, not an error: {stderr}"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains(READABLE))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.starts_with("campush: warning: "), "{warning}");
    assert!(warning.contains(&shown), "{warning}");
    assert!(warning.contains("chmod 0640"), "{warning}");
    assert!(warning.contains("key_file"), "{warning}");
    assert_eq!(stderr.matches(READABLE).count(), 1, "{stderr}");
    assert_no_secret("a readable file", &[KEY], "check-config", &all_output(&out));

    chmod(&config, 0o640);
    let out = check();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The key in its own file: that file is named; the configuration holds no key now.
    let key_file = dir.path().join("stream.key");
    write_mode(&key_file, &format!("{KEY}\n"), 0o644);
    write_mode(
        &config,
        "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://ingest.example/live2\"\nkey_file = \"stream.key\"\n",
        0o644,
    );
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches(READABLE).count(), 1, "{stderr}");
    assert!(stderr.contains(&key_file.display().to_string()), "{stderr}");
    assert!(!stderr.contains(&shown), "{stderr}");
    assert_no_secret(
        "a readable key file",
        &[KEY],
        "check-config",
        &all_output(&out),
    );
}

/// `campush ARGS` in the background, its log in a file of `dir`.
fn start(dir: &Path, args: &[&str]) -> (std::process::Child, PathBuf) {
    let log_path = dir.join(format!("stderr-{}.log", args.len()));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_campush"))
        .args(args)
        .env("CAMPUSH_ROOT", dir)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (child, log_path)
}

/// Waits (10 s at most) until `log` holds `what` `count` times; returns the log.
fn wait_for_log(log: &Path, what: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(what).count() >= count {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} #{count} within 10 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM, and a bounded wait for the exit; returns the whole log.
fn stop(mut child: std::process::Child, log: &Path) -> String {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("campush did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn run_warns_of_a_readable_key_once_at_start_and_once_per_reload() {
    let dir = open_dir();
    let key_file = dir.path().join("stream.key");
    write_mode(&key_file, &format!("{KEY}\n"), 0o644);
    let config = dir.path().join("campush.toml");
    write_mode(
        &config,
        &format!(
            "[source]\nspec = \"file:{CLIP}\"\nloop = true\n[[output]]\n\
             url = \"rtmp://127.0.0.1:{}/live\"\nkey_file = \"stream.key\"\n[network]\nmax_attempts = 0\n",
            closed_port()
        ),
        0o640,
    );
    let (child, log) = start(dir.path(), &["run", "--config", config.to_str().unwrap()]);
    let text = wait_for_log(&log, "streaming file:", 1);
    assert_eq!(text.matches(READABLE).count(), 1, "{text}");
    let warning = text.lines().find(|l| l.contains(READABLE)).unwrap();
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains(&key_file.display().to_string()),
        "{warning}"
    );
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let text = wait_for_log(&log, "reloading the configuration", 1);
    assert_eq!(text.matches(READABLE).count(), 2, "{text}");
    let text = stop(child, &log);
    assert_eq!(text.matches(READABLE).count(), 2, "{text}");
    assert_no_secret("a readable key file", &[KEY], "the run's log", &text);

    // The same key file given on the command line.
    let url = format!("rtmp://127.0.0.1:{}/live", closed_port());
    let source = format!("file:{CLIP}");
    let args = [
        "run",
        "--source",
        &source,
        "--loop",
        "--url",
        &url,
        "--key-file",
        key_file.to_str().unwrap(),
    ];
    let (child, log) = start(dir.path(), &args);
    let text = wait_for_log(&log, "streaming file:", 1);
    assert_eq!(text.matches(READABLE).count(), 1, "{text}");
    let text = stop(child, &log);
    assert_no_secret("--key-file", &[KEY], "the run's log", &text);
}
