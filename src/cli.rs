//! The command line: `campush run | check-config | probe | status | --version | --help`.
//!
//! Owns: argument syntax and the help text. The contract (DESIGN.md §6) is what users' scripts
//! rely on: extend it, never rename it. Flags of `run` are applied on top of the configuration
//! file (when `--config` is given) as a [`RawConfig`], so they go through the same checks.
//! Hand-written rather than a parser crate: twelve flags do not justify the binary size.
//!
//! `--key-file` pairs with `--url` by position (the n-th with the n-th, as many of each): a key
//! written in `--url` is in the process list for every user to read. Paths given as flags
//! (`--key-file`, `--tls-ca`) are taken from the working directory and made absolute here, so
//! that the configuration's rule for relative paths (its own directory) does not apply to them.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{RawConfig, RawOutput};

pub const HELP: &str = "\
campush: push hardware-encoded H.264 to RTMP servers, and never give up

USAGE:
    campush run [--config FILE]
    campush run --url URL --source SPEC [--fps N] [--loop] [--no-pace] [--url URL2 ...]
                [--key-file FILE ...] [--max-attempts N] [--tls-ca FILE] [--audio silent|none|alsa:DEVICE]
                [--record DIR]
    campush check-config [FILE]
    campush probe
    campush status [FILE]
    campush --version | --help

SOURCES (SPEC):
    auto             whatever camera the board has: a libcamera camera (rpicam-vid lists it),
                     else a V4L2 device that emits H.264, else a raw camera through the encoder
    rpicam[:N]       camera N (default 0) through rpicam-vid (libcamera-vid), run by campush
    file:PATH        an H.264 Annex B file, paced at its frame rate (--no-pace: as fast as possible)
    stdin            an H.264 Annex B stream on standard input, from any other program
    v4l2:DEVICE      a V4L2 device that emits H.264
    v4l2-m2m:CAPTURE[,ENCODER]   raw frames through a V4L2 memory-to-memory encoder

URL: rtmp://host[:port]/app[/more]/streamkey[?query]   (the key never appears in logs)
    or rtmp://host[:port]/app with --key-file: a key in --url is in the process list, which
    every user of the machine can read (ps, /proc/PID/cmdline); a key file need not be.

CONFIGURATION: --config FILE, else the first of /boot/firmware/campush.toml, /boot/campush.toml,
    /etc/campush/campush.toml (not searched when --url or --source is given).
    check-config without FILE checks the one run would use.

OPTIONS of run:
    --config FILE      configuration file (flags below override it)
    --url URL          a destination; repeat for several
    --key-file FILE    the stream key of a --url, read from FILE (then URL is rtmp://host/app);
                       one per --url, in the same order; relative to the working directory
    --source SPEC      what to stream
    --fps N            frame rate of a file source (default: from the SPS, else 30)
    --loop             loop a file source forever, timestamps continuous
    --no-pace          do not pace a file source in real time (benchmarks)
    --max-attempts N   give up after N consecutive failed connection attempts (0 = never)
    --tls-ca FILE      PEM file of extra trusted CA certificates for rtmps:// destinations
    --audio MODE       silent (default: a silent AAC track, which platforms require) | none
                       | alsa:DEVICE (a microphone, e.g. alsa:hw:1,0; `campush probe` lists them)
    --record DIR       also record to DIR: fragmented MP4 segments of 60 s, at most 2 GiB
                       in all, oldest deleted first ([record] in the file sets the rest)
    -v, --verbose      debug logging

EXIT CODES:
    0 clean stop   65 input is not usable H.264   66 source cannot be opened
    69 server unreachable   70 internal error   74 input/output error
    76 the server's TLS certificate was refused   77 publish refused by the server
    78 configuration error
";

/// The usage of `run`: what `campush run --help` prints.
pub const RUN_HELP: &str = "\
campush run: stream to one or more RTMP/RTMPS destinations until stopped

USAGE:
    campush run [--config FILE]
    campush run --url URL --source SPEC [--fps N] [--loop] [--no-pace] [--url URL2 ...]
                [--key-file FILE ...] [--max-attempts N] [--tls-ca FILE] [--audio silent|none|alsa:DEVICE]
                [--record DIR] [-v]

    Without --config, --url and --source, the configuration file is searched for in
    /boot/firmware/campush.toml, /boot/campush.toml, /etc/campush/campush.toml.

    A stream key written in --url is in the process list (ps, /proc/PID/cmdline), which
    every user of the machine can read: give --url rtmp://host/app and --key-file instead.

OPTIONS:
    --config FILE      configuration file (flags below override it)
    --url URL          a destination; repeat for several
    --key-file FILE    the stream key of a --url, read from FILE (then URL is rtmp://host/app);
                       one per --url, in the same order: the first --key-file holds the key of
                       the first --url, and so on; relative to the working directory
    --source SPEC      what to stream: auto | rpicam[:N] | file:PATH | stdin | v4l2:DEVICE |
                       v4l2-m2m:CAPTURE[,ENCODER] (campush --help says what each is)
    --fps N            frame rate of a file source (default: from the SPS, else 30)
    --loop             loop a file source forever, timestamps continuous
    --no-pace          do not pace a file source in real time (benchmarks)
    --max-attempts N   give up after N consecutive failed connection attempts (0 = never)
    --tls-ca FILE      PEM file of extra trusted CA certificates for rtmps:// destinations
    --audio MODE       silent (default: a silent AAC track, which platforms require) | none
                       | alsa:DEVICE (a microphone, e.g. alsa:hw:1,0; `campush probe` lists them)
    --record DIR       also record to DIR: fragmented MP4 segments of 60 s, at most 2 GiB
                       in all, oldest deleted first ([record] in the file sets the rest)
    -v, --verbose      debug logging
    -h, --help         this text

SIGNALS: SIGHUP reloads the configuration file; SIGTERM and SIGINT stop cleanly.
";

/// The usage of `check-config`.
pub const CHECK_CONFIG_HELP: &str = "\
campush check-config: check a configuration file and print the configuration run would use

USAGE:
    campush check-config [FILE]

    Without FILE, checks the file run would use: the first of /boot/firmware/campush.toml,
    /boot/campush.toml, /etc/campush/campush.toml. Stream keys are never printed.

EXIT CODES: 0 valid (the effective configuration is printed), 78 invalid (the error, with
    the file, line and key, is printed on standard error).
";

/// The usage of `status`.
pub const STATUS_HELP: &str = "\
campush status: what campush is doing, from its status file, for a person on ssh

USAGE:
    campush status [FILE]

    Prints the state, uptime, bitrate, frames sent and dropped, reconnects, each destination,
    the board's health (under-voltage, throttling, temperature, Wi-Fi, clock) and the last
    error. Without FILE, reads the status file the configuration names ([status] file, the
    configuration searched for as run does), else /run/campush/status.json. Never writes.

EXIT CODES:
    0 streaming   1 running but not streaming (or stopped)
    2 stale: the file was not rewritten for 30 s (campush is not running, or hangs)
    3 no status file (campush is not running, or [status] file = \"\")
    4 the file cannot be read or is not a campush status file
";

/// The usage of `probe`.
pub const PROBE_HELP: &str = "\
campush probe: list the cameras: V4L2 devices (formats, encoder controls) and libcamera cameras

USAGE:
    campush probe

    Says which devices can feed a v4l2: or v4l2-m2m: source, which cameras rpicam-vid
    (libcamera-vid) lists for an rpicam source, and what source = \"auto\" would use. Then the
    microphones: every ALSA capture device (card, id, formats, channels, rates) and the
    [audio] source line that would use it. Needs read access to /dev/video* and /dev/snd/*
    (and the camera, for the libcamera list).
";

/// Which usage text to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelpTopic {
    /// `campush --help`: every command.
    Overview,
    Run,
    CheckConfig,
    Probe,
    Status,
}

/// The usage text of `topic`.
pub fn help(topic: HelpTopic) -> &'static str {
    match topic {
        HelpTopic::Overview => HELP,
        HelpTopic::Run => RUN_HELP,
        HelpTopic::CheckConfig => CHECK_CONFIG_HELP,
        HelpTopic::Probe => PROBE_HELP,
        HelpTopic::Status => STATUS_HELP,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunArgs),
    CheckConfig(Option<PathBuf>),
    Probe,
    /// `campush status [FILE]`: the status file to read, if given.
    Status(Option<PathBuf>),
    Version,
    /// Print a usage text and exit 0.
    Help(HelpTopic),
}

/// An argument as a usage error may show it: a URL (which may carry a stream key, when
/// `--url` was forgotten) only up to its app.
fn shown(arg: &str) -> String {
    match arg.find("://") {
        Some(i) => {
            let after = &arg[i + 3..];
            let host_end = after.find('/').map_or(after.len(), |e| e + 1);
            let app_end = after[host_end..]
                .find(['/', '?'])
                .map_or(after.len(), |e| host_end + e);
            let host = after[..host_end].rsplit('@').next().unwrap_or("");
            format!(
                "\"{}://{host}{}/<redacted>\"",
                &arg[..i],
                &after[host_end..app_end]
            )
        }
        None => format!("{arg:?}"),
    }
}

fn is_help(arg: &str) -> bool {
    matches!(arg, "-h" | "--help")
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub urls: Vec<String>,
    /// The keys of `urls`, one per URL in the same order (checked by [`parse`]).
    pub key_files: Vec<PathBuf>,
    pub source: Option<String>,
    pub fps: Option<f64>,
    pub looping: bool,
    pub no_pace: bool,
    pub max_attempts: Option<u32>,
    pub tls_ca: Option<PathBuf>,
    pub audio: Option<String>,
    /// `--record DIR`: record to DIR with the `[record]` defaults (or the file's settings).
    pub record: Option<PathBuf>,
    pub verbose: bool,
}

/// A command line that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}\n(campush --help shows the usage)")]
pub struct UsageError(pub String);

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter().skip(1).map(|a| {
        a.into_string()
            .map_err(|a| UsageError(format!("argument {a:?} is not valid UTF-8")))
    });
    let Some(cmd) = args.next().transpose()? else {
        return Ok(Command::Help(HelpTopic::Overview));
    };
    match cmd.as_str() {
        "-h" | "--help" => Ok(Command::Help(HelpTopic::Overview)),
        // `campush help [COMMAND]`, as git and cargo take it.
        "help" => Ok(Command::Help(match args.next().transpose()?.as_deref() {
            Some("run") => HelpTopic::Run,
            Some("check-config") => HelpTopic::CheckConfig,
            Some("probe") => HelpTopic::Probe,
            Some("status") => HelpTopic::Status,
            _ => HelpTopic::Overview,
        })),
        "-V" | "--version" | "version" => Ok(Command::Version),
        "probe" => match args.next().transpose()? {
            None => Ok(Command::Probe),
            Some(h) if is_help(&h) => Ok(Command::Help(HelpTopic::Probe)),
            Some(extra) => Err(UsageError(format!(
                "probe takes no argument ({})",
                shown(&extra)
            ))),
        },
        "check-config" => {
            let mut file = None;
            for arg in args.by_ref() {
                let arg = arg?;
                if is_help(&arg) {
                    return Ok(Command::Help(HelpTopic::CheckConfig));
                }
                if file.is_some() {
                    return Err(UsageError(format!("unexpected argument {}", shown(&arg))));
                }
                file = Some(PathBuf::from(arg));
            }
            Ok(Command::CheckConfig(file))
        }
        "status" => {
            let mut file = None;
            for arg in args.by_ref() {
                let arg = arg?;
                if is_help(&arg) {
                    return Ok(Command::Help(HelpTopic::Status));
                }
                if file.is_some() || arg.starts_with('-') {
                    return Err(UsageError(format!(
                        "unexpected argument {} for status",
                        shown(&arg)
                    )));
                }
                file = Some(PathBuf::from(arg));
            }
            Ok(Command::Status(file))
        }
        "run" => {
            let mut run = RunArgs::default();
            while let Some(arg) = args.next().transpose()? {
                if is_help(&arg) {
                    return Ok(Command::Help(HelpTopic::Run));
                }
                let (flag, inline) = match arg.split_once('=') {
                    Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                    _ => (arg.clone(), None),
                };
                let mut value = |name: &str| -> Result<String, UsageError> {
                    match inline.clone() {
                        Some(v) => Ok(v),
                        None => args
                            .next()
                            .transpose()?
                            .ok_or_else(|| UsageError(format!("{name} needs a value"))),
                    }
                };
                match flag.as_str() {
                    "--config" | "-c" => run.config = Some(value("--config")?.into()),
                    "--url" => run.urls.push(value("--url")?),
                    "--key-file" => run.key_files.push(value("--key-file")?.into()),
                    "--source" => run.source = Some(value("--source")?),
                    "--fps" => {
                        let v = value("--fps")?;
                        run.fps = Some(
                            v.parse()
                                .map_err(|_| UsageError(format!("--fps {v:?} is not a number")))?,
                        )
                    }
                    "--max-attempts" => {
                        let v = value("--max-attempts")?;
                        run.max_attempts = Some(v.parse().map_err(|_| {
                            UsageError(format!("--max-attempts {v:?} is not a whole number"))
                        })?)
                    }
                    "--tls-ca" => run.tls_ca = Some(value("--tls-ca")?.into()),
                    "--audio" => run.audio = Some(value("--audio")?),
                    "--record" => run.record = Some(value("--record")?.into()),
                    "--loop" => run.looping = true,
                    "--no-pace" => run.no_pace = true,
                    "-v" | "--verbose" => run.verbose = true,
                    other => {
                        return Err(UsageError(format!(
                            "unknown option {} for run (a URL goes after --url)",
                            shown(other)
                        )))
                    }
                }
            }
            check_key_files(&run)?;
            Ok(Command::Run(run))
        }
        other => Err(UsageError(format!("unknown command {}", shown(other)))),
    }
}

/// `--key-file` pairs with `--url` by position: as many of one as of the other. Any other count
/// leaves open which key goes with which URL, so it is refused rather than guessed.
fn check_key_files(run: &RunArgs) -> Result<(), UsageError> {
    let (keys, urls) = (run.key_files.len(), run.urls.len());
    if keys == 0 || keys == urls {
        return Ok(());
    }
    if urls == 0 {
        return Err(UsageError(
            "--key-file goes with --url (the key of each --url, in the same order); in a \
             configuration file, use key_file in [[output]]"
                .into(),
        ));
    }
    Err(UsageError(format!(
        "give one --key-file per --url ({urls} --url, {keys} --key-file): the first --key-file \
         holds the key of the first --url, and so on"
    )))
}

/// `path` taken from the working directory, so that a relative flag does not become relative
/// to the configuration file it is put over.
fn from_working_dir(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

impl RunArgs {
    /// The configuration this command line asks for: the file (if any) with the flags on top.
    /// Without `--config`, `--url` or `--source`, the file is searched for (the service's way).
    pub fn to_raw_config(&self) -> Result<RawConfig, crate::config::ConfigError> {
        let mut raw = match &self.config {
            Some(path) => RawConfig::load(path)?,
            None if self.urls.is_empty() && self.source.is_none() => {
                RawConfig::find(&crate::config::system_root())?
            }
            None => RawConfig::default(),
        };
        if let Some(source) = &self.source {
            raw.source.spec = Some(source.clone());
        }
        if let Some(fps) = self.fps {
            raw.source.fps = Some(fps);
        }
        if self.looping {
            raw.source.looping = Some(true);
        }
        if self.no_pace {
            raw.source.pace = Some(false);
        }
        if let Some(m) = self.max_attempts {
            raw.network.max_attempts = Some(m);
        }
        if let Some(audio) = &self.audio {
            raw.audio.source = Some(audio.clone());
        }
        if let Some(dir) = &self.record {
            raw.record.get_or_insert_with(Default::default).dir = Some(from_working_dir(dir));
        }
        if !self.urls.is_empty() {
            raw.outputs = self
                .urls
                .iter()
                .enumerate()
                .map(|(i, u)| RawOutput {
                    url: Some(u.clone()),
                    key_file: self.key_files.get(i).map(|f| from_working_dir(f)),
                    ..RawOutput::default()
                })
                .collect();
        }
        // The extra CA applies to every rtmps:// destination that names none of its own.
        if let Some(ca) = &self.tls_ca {
            for o in &mut raw.outputs {
                let rtmps = o.url.as_deref().is_some_and(|u| {
                    u.trim()
                        .get(..8)
                        .is_some_and(|s| s.eq_ignore_ascii_case("rtmps://"))
                });
                if rtmps && o.tls_ca.is_none() && o.tls_insecure != Some(true) {
                    o.tls_ca = Some(from_working_dir(ca));
                }
            }
        }
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        std::iter::once("campush")
            .chain(s.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn parses_the_documented_run_forms() {
        let Command::Run(r) = parse(args(
            "run --url rtmp://h/a/k --source file:x.h264 --fps 25 --loop --no-pace --url rtmp://h2/a/k2",
        ))
        .unwrap() else {
            panic!("not run")
        };
        assert_eq!(r.urls, ["rtmp://h/a/k", "rtmp://h2/a/k2"]);
        assert_eq!(r.source.as_deref(), Some("file:x.h264"));
        assert_eq!(r.fps, Some(25.0));
        assert!(r.looping && r.no_pace);
        let Command::Run(r) = parse(args("run --config=/etc/c.toml")).unwrap() else {
            panic!()
        };
        assert_eq!(r.config, Some("/etc/c.toml".into()));
    }

    #[test]
    fn parses_the_other_commands() {
        assert_eq!(parse(args("")).unwrap(), Command::Help(HelpTopic::Overview));
        assert_eq!(
            parse(args("--help")).unwrap(),
            Command::Help(HelpTopic::Overview)
        );
        assert_eq!(parse(args("--version")).unwrap(), Command::Version);
        assert_eq!(parse(args("probe")).unwrap(), Command::Probe);
        assert_eq!(
            parse(args("check-config")).unwrap(),
            Command::CheckConfig(None)
        );
        assert_eq!(
            parse(args("check-config a.toml")).unwrap(),
            Command::CheckConfig(Some("a.toml".into()))
        );
        assert_eq!(parse(args("status")).unwrap(), Command::Status(None));
        assert_eq!(
            parse(args("status /run/x/status.json")).unwrap(),
            Command::Status(Some("/run/x/status.json".into()))
        );
        assert!(parse(args("status a b")).is_err());
        assert!(parse(args("status --bogus")).is_err());
    }

    #[test]
    fn every_command_answers_help_with_its_own_usage() {
        for (line, topic) in [
            ("run --help", HelpTopic::Run),
            ("run -h", HelpTopic::Run),
            ("run --url rtmp://h/a/k --help", HelpTopic::Run),
            ("check-config --help", HelpTopic::CheckConfig),
            ("check-config a.toml -h", HelpTopic::CheckConfig),
            ("probe --help", HelpTopic::Probe),
            ("help run", HelpTopic::Run),
            ("help check-config", HelpTopic::CheckConfig),
            ("help probe", HelpTopic::Probe),
            ("status --help", HelpTopic::Status),
            ("status /run/campush/status.json -h", HelpTopic::Status),
            ("help status", HelpTopic::Status),
            ("help", HelpTopic::Overview),
        ] {
            assert_eq!(parse(args(line)).unwrap(), Command::Help(topic), "{line}");
        }
        for (topic, usage) in [
            (HelpTopic::Run, "campush run [--config FILE]"),
            (HelpTopic::CheckConfig, "campush check-config [FILE]"),
            (HelpTopic::Probe, "campush probe"),
            (HelpTopic::Status, "campush status [FILE]"),
        ] {
            assert!(help(topic).contains(usage), "{topic:?}");
        }
    }

    #[test]
    fn the_help_lists_every_source_form() {
        for form in [
            "auto",
            "rpicam[:N]",
            "file:PATH",
            "stdin",
            "v4l2:DEVICE",
            "v4l2-m2m:",
        ] {
            assert!(
                HELP.contains(&format!("\n    {form}")),
                "--help lacks {form}"
            );
            assert!(RUN_HELP.contains(form), "run --help lacks {form}");
        }
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (line, needle) in [
            ("run --bogus", "--bogus"),
            ("run --url", "needs a value"),
            ("run --fps fast", "not a number"),
            ("frobnicate", "unknown command"),
            (
                "run rtmp://u:pw@h/live/SECRETKEY",
                "\"rtmp://h/live/<redacted>\"",
            ),
            (
                "check-config a.toml rtmp://h/live/SECRETKEY?x=1",
                "<redacted>",
            ),
            ("probe rtmps://h/app/SECRETKEY", "rtmps://h/app/<redacted>"),
        ] {
            let e = parse(args(line)).unwrap_err().to_string();
            assert!(e.contains(needle), "{line}: {e}");
            assert!(!e.contains("SECRETKEY") && !e.contains("pw"), "{line}: {e}");
        }
    }

    #[test]
    fn each_key_file_is_the_key_of_the_url_in_the_same_place() {
        let Command::Run(r) = parse(args(
            "run --url rtmp://a/live2 --key-file a.key --url rtmp://b/app --key-file=b.key",
        ))
        .unwrap() else {
            panic!("not run")
        };
        assert_eq!(
            r.key_files,
            [PathBuf::from("a.key"), PathBuf::from("b.key")]
        );
        let Command::Run(r) = parse(args(
            "run --key-file a.key --source stdin --url rtmp://a/live2",
        ))
        .unwrap() else {
            panic!("not run")
        };
        assert_eq!(
            r.key_files,
            [PathBuf::from("a.key")],
            "order of the flags is free"
        );
        for (line, needle) in [
            (
                "run --url rtmp://a/l --url rtmp://b/l --key-file k",
                "one --key-file per --url (2 --url, 1 --key-file)",
            ),
            (
                "run --url rtmp://a/l --key-file k --key-file k2",
                "one --key-file per --url (1 --url, 2 --key-file)",
            ),
            (
                "run --config c.toml --key-file k",
                "--key-file goes with --url",
            ),
            ("run --key-file", "needs a value"),
        ] {
            let e = parse(args(line)).unwrap_err().to_string();
            assert!(e.contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn a_key_file_gives_its_urls_key_and_keeps_it_off_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.key"), dir.path().join("b.key"));
        std::fs::write(&a, "sk-flag-a\n").unwrap();
        std::fs::write(&b, "sk-flag-b").unwrap();
        let r = RunArgs {
            urls: vec!["rtmp://a/live2".into(), "rtmp://b/app".into()],
            key_files: vec![a.clone(), b.clone()],
            source: Some("stdin".into()),
            ..RunArgs::default()
        };
        let c = r.to_raw_config().unwrap().check().unwrap();
        assert_eq!(c.outputs[0].url.stream_key, "sk-flag-a");
        assert_eq!(c.outputs[1].url.stream_key, "sk-flag-b");
        assert_eq!(c.outputs[1].url.app, "app");
        assert_eq!(c.outputs[0].key_file.as_deref(), Some(a.as_path()));
    }

    #[test]
    fn record_dir_records_with_the_defaults_or_over_the_files_record_section() {
        let Command::Run(r) =
            parse(args("run --url rtmp://h/a/k --source stdin --record rec")).unwrap()
        else {
            panic!("not a run");
        };
        let c = r.to_raw_config().unwrap().check().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.record,
            Some(crate::record::RecordSettings::in_dir(cwd.join("rec")))
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "[source]\nspec = \"stdin\"\n[[output]]\nurl = \"rtmp://h/a/k\"\n[record]\ndir = \"/srv/rec\"\nsegment_s = 5\n").unwrap();
        let r = RunArgs {
            config: Some(config),
            record: Some("/mnt/usb".into()),
            ..RunArgs::default()
        };
        let record = r.to_raw_config().unwrap().check().unwrap().record.unwrap();
        assert_eq!(record.dir, std::path::PathBuf::from("/mnt/usb"));
        assert_eq!(record.segment, std::time::Duration::from_secs(5));
    }

    #[test]
    fn relative_paths_in_flags_are_taken_from_the_working_directory_not_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, "[source]\nspec = \"stdin\"\n").unwrap();
        let r = RunArgs {
            config: Some(config),
            urls: vec!["rtmps://a/live2".into()],
            key_files: vec!["flag.key".into()],
            tls_ca: Some("flag-ca.pem".into()),
            ..RunArgs::default()
        };
        let raw = r.to_raw_config().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(raw.outputs[0].key_file, Some(cwd.join("flag.key")));
        assert_eq!(raw.outputs[0].tls_ca, Some(cwd.join("flag-ca.pem")));
    }

    #[test]
    fn flags_override_the_file() {
        let r = RunArgs {
            urls: vec!["rtmp://h/a/k".into()],
            source: Some("stdin".into()),
            no_pace: true,
            ..RunArgs::default()
        };
        let raw = r.to_raw_config().unwrap();
        assert_eq!(raw.source.spec.as_deref(), Some("stdin"));
        assert_eq!(raw.source.pace, Some(false));
        assert_eq!(raw.outputs.len(), 1);
    }

    #[test]
    fn a_camera_is_named_on_the_command_line_as_in_the_file() {
        use crate::source::SourceSpec;
        for (spec, expected) in [
            ("auto", SourceSpec::Auto),
            ("rpicam", SourceSpec::Rpicam(0)),
            ("rpicam:1", SourceSpec::Rpicam(1)),
        ] {
            let Command::Run(r) =
                parse(args(&format!("run --url rtmp://h/a/k --source {spec}"))).unwrap()
            else {
                panic!("not run")
            };
            let config = r.to_raw_config().unwrap().check().unwrap();
            assert_eq!(config.source, expected, "{spec}");
        }
    }
}
