//! campush's entry point: parse the command line, load and check the configuration, and hand
//! it to the supervisor (`campush::supervisor`), which runs the data path until it is time to
//! exit. Nothing here touches a byte of video.

use std::process::ExitCode;

use campush::cli::{self, Command, RunArgs};
use campush::config::RawConfig;
use campush::{exit, logging, observers, supervisor};

#[global_allocator]
static ALLOCATOR: campush::alloc::Counting = campush::alloc::Counting;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("campush: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    ExitCode::from(match command {
        Command::Help(topic) => {
            print!("{}", cli::help(topic));
            exit::OK
        }
        Command::Version => {
            println!("campush {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Command::CheckConfig(file) => check_config(file),
        Command::Probe => {
            let nodes = campush::v4l2::probe::probe_all();
            print!("{}", campush::v4l2::probe::render(&nodes));
            print!("{}", campush::source::auto::probe_report(&nodes));
            let (cards, mics) = campush::alsa::probe::probe_all(&campush::config::system_root());
            print!("{}", campush::alsa::probe::render(&cards, &mics));
            exit::OK
        }
        Command::Status(file) => show_status(file),
        Command::Run(args) => run(args),
    })
}

/// `campush status [FILE]`: FILE, else the status file of the configuration run would use (or
/// the default when there is none, or it does not check).
fn show_status(file: Option<std::path::PathBuf>) -> u8 {
    use campush::status::{show, ReportSettings};
    let path = match file {
        Some(path) => Some(path),
        None => {
            RawConfig::find(&campush::config::system_root())
                .ok()
                .and_then(|raw| ReportSettings::check(&raw.status).ok())
                .unwrap_or_default()
                .file
        }
    };
    let Some(path) = path else {
        eprintln!("campush: the configuration turns the status file off ([status] file = \"\")");
        return show::NO_FILE;
    };
    let shown = show::show(&path, std::time::SystemTime::now());
    if shown.code <= show::STALE {
        print!("{}", shown.text);
    } else {
        eprint!("campush: {}", shown.text);
    }
    shown.code
}

fn check_config(file: Option<std::path::PathBuf>) -> u8 {
    let raw = match file {
        Some(path) => RawConfig::load(&path),
        None => RawConfig::find(&campush::config::system_root()),
    };
    match raw.and_then(|raw| raw.check()) {
        Ok(config) => {
            for warning in config.warnings() {
                eprintln!("campush: warning: {warning}");
            }
            print!("{}", config.describe());
            exit::OK
        }
        Err(e) => {
            eprintln!("campush: {e}");
            exit::CONFIG
        }
    }
}

fn run(args: RunArgs) -> u8 {
    logging::init(args.verbose);
    // A configuration error is shown on the LED too (src/observers.rs): the file's LED if it has
    // a valid one, else the onboard LED.
    let raw = match args.to_raw_config() {
        Ok(raw) => raw,
        Err(e) => return observers::config_error(&e, &campush::config::led_from_broken_file(&e)),
    };
    let config = match raw.check() {
        Ok(c) => c,
        Err(e) => return observers::config_error(&e, &raw.led_or_default()),
    };
    if args.tls_ca.is_some() && config.outputs.iter().all(|o| o.tls.ca_file.is_none()) {
        log::warn!("--tls-ca: no rtmps:// destination uses it");
    }
    warn_of(&config);
    // A reload reads the same file (and applies the same flags) again, and warns again.
    supervisor::run(config, move || {
        let config = args.to_raw_config().and_then(|raw| raw.check())?;
        warn_of(&config);
        Ok(config)
    })
}

/// Files holding a stream key that every user can read, settings a platform objects to: named
/// once per start or reload.
fn warn_of(config: &campush::config::Config) {
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
}
