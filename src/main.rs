//! campush's entry point: parse the command line, check the configuration, and wire the data
//! path. Nothing here touches a byte of video.
//!
//! ```text
//!  source ──► ingest (h264 + flv, source thread) ──► queue ─► publisher ─► rtmp ─► transport
//!                                                    queue ─► publisher ─► ...   (one per URL)
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use campush::cli::{self, Command, RunArgs};
use campush::config::{Config, ConfigError, RawConfig};
use campush::ingest::{Ingest, IngestError, SharedHeaders};
use campush::pool::Pool;
use campush::publisher::{PublishError, Publisher, PublisherSettings};
use campush::queue::{FrameQueue, Outputs, Policy};
use campush::source::v4l2::{self, V4l2Source};
use campush::source::{file::FileSource, stdin::StdinSource, Source, SourceError, SourceSpec};
use campush::status::{Counters, ErrorKind, StatusBoard};
use campush::{exit, logging, observers, status};

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
        Command::Help => {
            print!("{}", cli::HELP);
            exit::OK
        }
        Command::Version => {
            println!("campush {}", env!("CARGO_PKG_VERSION"));
            exit::OK
        }
        Command::CheckConfig(file) => check_config(file),
        Command::Probe => {
            print!(
                "{}",
                campush::v4l2::probe::render(&campush::v4l2::probe::probe_all())
            );
            exit::OK
        }
        Command::Run(args) => run(args),
    })
}

fn check_config(file: Option<std::path::PathBuf>) -> u8 {
    let raw = match file {
        Some(path) => RawConfig::load(&path),
        None => RawConfig::find(&campush::config::system_root()),
    };
    match raw.and_then(|raw| raw.check()) {
        Ok(config) => {
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
    let mut config = match raw.check() {
        Ok(c) => c,
        Err(e) => return observers::config_error(&e, &raw.led_or_default()),
    };
    if args.tls_ca.is_some() && config.outputs.iter().all(|o| o.tls.ca_file.is_none()) {
        log::warn!("--tls-ca: no rtmps:// destination uses it");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("cannot start the runtime: {e}");
            return exit::SOFTWARE;
        }
    };
    let status = StatusBoard::new();
    // Signals are watched for the whole life of the process, across pipeline restarts.
    let mut signals = match runtime.block_on(async { Signals::new() }) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return exit::SOFTWARE;
        }
    };
    // The observers of the status (log summary + status file, LED, systemd) live as long as the
    // process, across pipeline restarts.
    let _reporter = runtime.spawn(status::run_reporter(status.clone(), config.report.clone()));
    let observers = observers::start(&runtime, &config.led, &status);
    let code = loop {
        match run_pipeline(&runtime, &args, config, &status, &mut signals) {
            Next::Exit(code) => break code,
            Next::Restart(new) => {
                log::info!("reloaded: the source changed, restarting it");
                config = *new;
            }
        }
    };
    observers.finish(&runtime);
    code
}

/// What the supervisor does after a pipeline ends.
enum Next {
    Exit(u8),
    /// A reload changed the source: start over with this configuration.
    Restart(Box<Config>),
}

/// One life of the source: open it, run the ingest thread, and supervise the destinations
/// (reloading them on SIGHUP) until the input ends, a stop is requested, or the source changes.
fn run_pipeline(
    runtime: &tokio::runtime::Runtime,
    args: &RunArgs,
    config: Config,
    status: &StatusBoard,
    signals: &mut Signals,
) -> Next {
    log::info!(
        "campush {} streaming {} to {} destination(s)",
        env!("CARGO_PKG_VERSION"),
        config.source,
        config.outputs.len()
    );
    for line in config.describe().lines() {
        log::debug!("config: {line}");
    }

    // Source, and the buffers it fills: allocated here, once.
    let source = match open_source(&config, status) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return Next::Exit(source_exit_code(&e));
        }
    };
    // Sized so that no destination, however stuck, can starve another of slots.
    let pool = Pool::new(
        campush::pool::slots_for(config.queue.max_frames, config.pool_destinations()),
        source.frame_capacity_hint(),
    );
    // The first destinations' queues exist before the source starts, so no frame goes nowhere.
    let first_queues = make_queues(&config);
    let outputs = Outputs::new(first_queues.clone());
    let headers = SharedHeaders::default();
    let stop = Arc::new(AtomicBool::new(false));

    // Source thread: source -> h264 -> flv -> every destination's queue.
    let ingest = Ingest::new(
        source,
        pool,
        outputs.clone(),
        headers.clone(),
        config.ingest.clone(),
        status.clone(),
    );
    let ingest_thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || ingest.run(&stop))
            .expect("spawn the ingest thread")
    };

    // Network side: one publisher per destination, on this thread's runtime.
    let supervised = runtime.block_on(supervise(
        args,
        config,
        first_queues,
        &outputs,
        &headers,
        status,
        signals,
    ));

    // The source may be blocked in a read (stdin) or a pacing sleep: wait briefly, then leave.
    stop.store(true, Ordering::Relaxed);
    outputs.close_all();
    let ingest_result = wait_for(ingest_thread, Duration::from_secs(1));
    let c = &status.counters;
    log::info!(
        "frames in {}, sent {}, dropped {}, {} bytes sent, {} reconnect(s)",
        Counters::get(&c.frames_in),
        Counters::get(&c.frames_sent),
        Counters::get(&c.frames_dropped),
        Counters::get(&c.bytes_sent),
        Counters::get(&c.reconnects),
    );
    match (ingest_result, supervised) {
        (_, Supervised::Restart(config)) => Next::Restart(config),
        (Some(Err(e)), _) => {
            log::error!("{e}");
            Next::Exit(match e {
                IngestError::Source(e) => source_exit_code(&e),
                IngestError::NoParameterSets(_) => exit::DATA,
            })
        }
        (_, Supervised::Failed(e)) => {
            log::error!("{e}");
            Next::Exit(publish_exit_code(&e))
        }
        (_, Supervised::Done) => Next::Exit(exit::OK),
    }
}

enum Supervised {
    /// Every destination finished (end of input) or stopped on a signal.
    Done,
    /// A destination gave up.
    Failed(PublishError),
    Restart(Box<Config>),
}

/// Runs one generation of publishers after another: a SIGHUP with a valid configuration that
/// keeps the same source stops the current destinations cleanly and starts the new ones while
/// the source keeps running. SIGTERM/SIGINT stop everything cleanly; a second one exits at once.
async fn supervise(
    args: &RunArgs,
    mut config: Config,
    first_queues: Vec<Arc<FrameQueue>>,
    outputs: &Outputs,
    headers: &SharedHeaders,
    status: &StatusBoard,
    signals: &mut Signals,
) -> Supervised {
    let alloc_stats = std::env::var_os("CAMPUSH_ALLOC_STATS")
        .map(|_| tokio::spawn(campush_alloc_stats(status.clone())));
    let mut stopping = false;
    let mut first_queues = Some(first_queues);
    let result = 'generations: loop {
        let queues = match first_queues.take() {
            Some(queues) => queues,
            None => {
                let queues = make_queues(&config);
                outputs.replace(queues.clone());
                queues
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let destinations = status.set_destinations(config.outputs.len());
        let mut tasks = tokio::task::JoinSet::new();
        for ((output, queue), dest) in config.outputs.iter().zip(queues).zip(destinations) {
            let settings = PublisherSettings {
                tls: output.tls.clone(),
                audio: config.audio,
                ..config.publisher.clone()
            };
            let mut publisher = Publisher::new(
                output.url.clone(),
                settings,
                Arc::clone(&queue),
                headers.clone(),
                dest,
                stop_rx.clone(),
            );
            tasks.spawn(async move {
                let result = publisher.run().await;
                // A destination that gave up must never hold the source back.
                queue.close();
                result
            });
        }

        let mut first_error = None;
        let mut reload_to: Option<Config> = None;
        let (mut stop_requested, mut reload_requested) = (false, false);
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(_))) => {}
                    Some(Ok(Err(e))) => { first_error.get_or_insert(e); }
                    Some(Err(e)) => log::error!("publisher task failed: {e}"),
                },
                _ = signals.term.recv() => stop_requested = true,
                _ = signals.int.recv() => stop_requested = true,
                _ = signals.hup.recv(), if !stopping && reload_to.is_none() => reload_requested = true,
            }
            if std::mem::take(&mut stop_requested) {
                if stopping {
                    log::warn!("second signal: exiting now");
                    std::process::exit(exit::OK.into());
                }
                stopping = true;
                log::info!("stopping: unpublishing and closing");
                let _ = stop_tx.send(true);
            }
            if std::mem::take(&mut reload_requested) {
                match load_config(args) {
                    Ok(new) => {
                        log::info!("reloading the configuration: restarting the destinations");
                        reload_to = Some(new);
                        let _ = stop_tx.send(true);
                    }
                    Err(e) => {
                        log::error!("reload refused, keeping the running configuration: {e}")
                    }
                }
            }
        }
        match reload_to {
            Some(new) if !stopping && new.same_source(&config) => {
                config = new;
                continue 'generations;
            }
            Some(new) if !stopping => break Supervised::Restart(Box::new(new)),
            _ => {}
        }
        break match first_error {
            Some(e) => Supervised::Failed(e),
            None => Supervised::Done,
        };
    };
    if let Some(stats) = alloc_stats {
        stats.abort();
        let _ = stats.await;
    }
    result
}

/// The process's signal streams: SIGTERM/SIGINT ask for a stop, SIGHUP for a reload.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// One queue per destination. An unpaced file or pipe is a batch job: its queues make the source
/// wait for the network rather than drop frames.
fn make_queues(config: &Config) -> Vec<Arc<FrameQueue>> {
    let policy = match config.source {
        SourceSpec::File(_) | SourceSpec::Stdin if !config.pace => Policy::Block,
        _ => Policy::DropGops,
    };
    config
        .outputs
        .iter()
        .map(|_| Arc::new(FrameQueue::new(config.queue, policy)))
        .collect()
}

fn load_config(args: &RunArgs) -> Result<Config, ConfigError> {
    args.to_raw_config().and_then(|raw| raw.check())
}

/// With `CAMPUSH_ALLOC_STATS` set, prints at exit how many heap allocations the steady state
/// made per frame: the publishers record the allocation counter at their 30th frame (warm-up)
/// and after every frame since, so the figure covers exactly the frames in between.
async fn campush_alloc_stats(status: StatusBoard) {
    struct Report(StatusBoard);
    impl Drop for Report {
        fn drop(&mut self) {
            let c = &self.0.counters;
            let total = campush::alloc::allocations();
            let (f0, a0) = (
                Counters::get(&c.warmup_frames),
                Counters::get(&c.warmup_allocs),
            );
            let (f1, a1) = (
                Counters::get(&c.last_frame),
                Counters::get(&c.last_frame_allocs),
            );
            let (frames, allocs) = (f1.saturating_sub(f0), a1.saturating_sub(a0));
            eprintln!(
                "alloc-stats: frames={frames} allocs_total={total} allocs_steady={allocs} per_frame={:.4}",
                if frames > 0 { allocs as f64 / frames as f64 } else { 0.0 }
            );
        }
    }
    let _report = Report(status);
    std::future::pending::<()>().await;
}

fn open_source(config: &Config, status: &StatusBoard) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &config.source {
        SourceSpec::File(path) => Box::new(FileSource::open(
            path,
            config.fps,
            config.pace,
            config.looping,
        )?),
        SourceSpec::Stdin => Box::new(StdinSource::new(config.fps, config.pace)),
        SourceSpec::V4l2(path) => Box::new(V4l2Source::new(
            v4l2::capture_target(path),
            config.v4l2.clone(),
            status.clone(),
        )?),
        SourceSpec::V4l2M2m { capture, encoder } => Box::new(V4l2Source::new(
            v4l2::m2m_target(capture, encoder.as_deref()),
            config.v4l2.clone(),
            status.clone(),
        )?),
    })
}

fn wait_for<T>(thread: std::thread::JoinHandle<T>, limit: Duration) -> Option<T> {
    let deadline = std::time::Instant::now() + limit;
    while !thread.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        thread.join().ok()
    } else {
        None
    }
}

fn source_exit_code(e: &SourceError) -> u8 {
    match e {
        SourceError::Open { .. } => exit::NO_INPUT,
        SourceError::Read { .. } => exit::IO,
        SourceError::AccessUnitTooLarge { .. } | SourceError::NotAnnexB { .. } => exit::DATA,
        SourceError::Unsupported(_) | SourceError::Device(_) => exit::CONFIG,
    }
}

fn publish_exit_code(e: &PublishError) -> u8 {
    if let PublishError::Transport(t) = e {
        if t.is_certificate() {
            return exit::CERTIFICATE;
        }
    }
    match e.kind() {
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::Config => exit::CONFIG,
        ErrorKind::Network | ErrorKind::Source => exit::UNAVAILABLE,
    }
}
