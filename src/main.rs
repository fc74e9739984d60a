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
use campush::config::{Config, RawConfig};
use campush::ingest::{Ingest, IngestError, SharedHeaders};
use campush::pool::Pool;
use campush::publisher::{PublishError, Publisher};
use campush::queue::{FrameQueue, Policy};
use campush::source::{file::FileSource, stdin::StdinSource, Source, SourceError, SourceSpec};
use campush::status::{Counters, ErrorKind, StatusBoard};
use campush::{exit, logging, observers};

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
            eprintln!("campush: probe: V4L2 support is not in this build yet");
            exit::SOFTWARE
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
        Err(e) => return observers::config_error(&e, &campush::config::led_for_error(&e)),
    };
    let config = match raw.check() {
        Ok(c) => c,
        Err(e) => return observers::config_error(&e, &raw.led_for_errors()),
    };
    if let Some(audio) = args.audio.as_deref().filter(|a| *a != "none") {
        log::warn!("--audio {audio}: audio is not in this build yet; streaming video only");
    }
    if args.tls_ca.is_some() {
        log::warn!("--tls-ca: RTMPS is not in this build yet");
    }
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
    let source = match open_source(&config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return source_exit_code(&e);
        }
    };
    let pool = Pool::new(
        config.queue.max_frames + 2 * config.outputs.len() + 4,
        source.frame_capacity_hint(),
    );
    // An unpaced file or pipe is a batch job: wait for the network rather than drop frames.
    let policy = match config.source {
        SourceSpec::File(_) | SourceSpec::Stdin if !config.pace => Policy::Block,
        _ => Policy::DropGops,
    };
    let queues: Vec<Arc<FrameQueue>> = config
        .outputs
        .iter()
        .map(|_| Arc::new(FrameQueue::new(config.queue, policy)))
        .collect();
    let headers = SharedHeaders::default();
    let status = StatusBoard::new();
    let stop = Arc::new(AtomicBool::new(false));

    // Source thread: source -> h264 -> flv -> every queue.
    let ingest = Ingest::new(
        source,
        pool,
        queues.clone(),
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

    // Network side: one publisher per destination on a single-threaded runtime.
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
    // Status observers (LED, systemd notify) follow `status` for the whole run; see observers.rs.
    let observers = observers::start(&runtime, &config.led, &status);
    let publish_result =
        runtime.block_on(publish_all(&config, queues, headers, status.clone(), &stop));
    observers.finish(&runtime);

    // The source may be blocked in a read (stdin) or a pacing sleep: wait briefly, then leave.
    stop.store(true, Ordering::Relaxed);
    let ingest_result = wait_for(ingest_thread, Duration::from_secs(1));
    let c = &status.counters;
    log::info!(
        "frames in {}, sent {}, dropped {}, {} bytes sent, {} connection(s)",
        Counters::get(&c.frames_in),
        Counters::get(&c.frames_sent),
        Counters::get(&c.frames_dropped),
        Counters::get(&c.bytes_sent),
        Counters::get(&c.connects),
    );
    match (ingest_result, publish_result) {
        (Some(Err(e)), _) => {
            log::error!("{e}");
            match e {
                IngestError::Source(e) => source_exit_code(&e),
                IngestError::NoParameterSets(_) => exit::DATA,
            }
        }
        (_, Err(e)) => {
            log::error!("{e}");
            publish_exit_code(&e)
        }
        _ => exit::OK,
    }
}

/// Runs every destination's publisher until all are done; stops them all on SIGTERM/SIGINT.
async fn publish_all(
    config: &Config,
    queues: Vec<Arc<FrameQueue>>,
    headers: SharedHeaders,
    status: StatusBoard,
    stop_flag: &Arc<AtomicBool>,
) -> Result<(), PublishError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(watch_signals(stop_tx, Arc::clone(stop_flag)));
    let alloc_stats = std::env::var_os("CAMPUSH_ALLOC_STATS")
        .map(|_| tokio::spawn(campush_alloc_sampler(status.clone())));

    let mut tasks = tokio::task::JoinSet::new();
    for (output, queue) in config.outputs.iter().zip(queues) {
        let mut publisher = Publisher::new(
            output.url.clone(),
            config.publisher.clone(),
            Arc::clone(&queue),
            headers.clone(),
            status.clone(),
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
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => log::error!("publisher task failed: {e}"),
        }
    }
    signals.abort();
    if let Some(sampler) = alloc_stats {
        sampler.abort();
        let _ = sampler.await;
    }
    first_error.map_or(Ok(()), Err)
}

/// First SIGTERM/SIGINT: stop cleanly (unpublish, close). A second one: exit at once.
async fn watch_signals(stop_tx: tokio::sync::watch::Sender<bool>, stop_flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::warn!("cannot install signal handlers");
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if n > 0 {
            log::warn!("second signal: exiting now");
            std::process::exit(exit::OK.into());
        }
        log::info!("stopping: unpublishing and closing");
        stop_flag.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
    }
}

/// With `CAMPUSH_ALLOC_STATS` set: samples the allocation counter against frames sent and prints
/// the steady-state figure at exit (after 30 frames of warm-up, until the last frame sent).
async fn campush_alloc_sampler(status: StatusBoard) {
    struct Sample {
        frames: u64,
        allocs: u64,
    }
    struct Stats {
        start: Option<Sample>,
        end: Option<Sample>,
    }
    impl Drop for Stats {
        fn drop(&mut self) {
            let total = campush::alloc::allocations();
            match (&self.start, &self.end) {
                (Some(s), Some(e)) if e.frames > s.frames => {
                    let frames = e.frames - s.frames;
                    let allocs = e.allocs - s.allocs;
                    eprintln!(
                        "alloc-stats: frames={frames} allocs_total={total} allocs_steady={allocs} per_frame={:.4}",
                        allocs as f64 / frames as f64
                    );
                }
                _ => eprintln!(
                    "alloc-stats: frames=0 allocs_total={total} allocs_steady=0 per_frame=0"
                ),
            }
        }
    }
    let mut stats = Stats {
        start: None,
        end: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let frames = Counters::get(&status.counters.frames_sent);
        let allocs = campush::alloc::allocations();
        if stats.start.is_none() && frames >= 30 {
            stats.start = Some(Sample { frames, allocs });
        } else if stats.start.is_some() && stats.end.as_ref().is_none_or(|e| frames > e.frames) {
            stats.end = Some(Sample { frames, allocs });
        }
    }
}

fn open_source(config: &Config) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &config.source {
        SourceSpec::File(path) => Box::new(FileSource::open(
            path,
            config.fps,
            config.pace,
            config.looping,
        )?),
        SourceSpec::Stdin => Box::new(StdinSource::new(config.fps, config.pace)),
        other => return Err(SourceError::Unsupported(other.to_string())),
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
        SourceError::Unsupported(_) => exit::CONFIG,
    }
}

fn publish_exit_code(e: &PublishError) -> u8 {
    match e.kind() {
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::Config => exit::CONFIG,
        ErrorKind::Network | ErrorKind::Source => exit::UNAVAILABLE,
    }
}
