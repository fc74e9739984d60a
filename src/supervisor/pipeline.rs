//! One life of the source (a pipeline) and, inside it, the generations of destinations.
//!
//! Owns: the pool, the queues and the ingest thread of one source, and the publishers (and the
//! recorder, with `[record]`) of each generation. The recorder's queue comes after the
//! publishers' in the list the ingest thread pushes to; its thread ends with its generation. A pipeline opens the source and sizes the pool once, starts the ingest thread, then
//! runs one generation of publishers after another ([`supervise`]) until the input ends, a stop is
//! requested, a destination gives up, or a reload changes the source. On the way out it raises
//! the source's [`Stop`] and waits, bounded ([`stop_limit`]), for the ingest thread to end: every
//! retry and backoff of a source looks at that request, and a camera source stops and reaps its
//! app before its thread ends, so a reload never runs two camera apps at once and a source left
//! behind does not go on retrying (or noting itself alive for the watchdog). Then it logs the
//! counters.

use std::sync::Arc;
use std::time::Duration;

use super::{ingest_exit_code, publish_exit_code, source_exit_code, Control, MicOwner, Reload};
use crate::audio::AudioTrack;
use crate::config::Config;
use crate::exit;
use crate::ingest::Ingest;
use crate::pool::{self, Pool};
use crate::publisher::{PublishError, Publisher, PublisherSettings};
use crate::queue::{FrameQueue, Outputs, Policy, SharedHeaders};
use crate::record::Recorder;
use crate::source::auto::{AutoSettings, AutoSource};
use crate::source::file::FileSource;
use crate::source::rpicam::child::KILL_GRACE;
use crate::source::rpicam::{CameraApp, RpicamSource};
use crate::source::stdin::StdinSource;
use crate::source::v4l2::{self, V4l2Source};
use crate::source::{Source, SourceError, SourceSpec};
use crate::status::{Counters, SharedStatus};
use crate::stop::Stop;

/// What the supervisor does after a pipeline ends.
pub(super) enum Next {
    Exit(u8),
    /// A reload changed the source: start over with this configuration.
    Restart(Box<Config>),
}

/// One life of the source: open it, run the ingest thread, and supervise the destinations
/// (reloading them on request) until the input ends, a stop is requested, or the source changes.
pub(super) fn run_pipeline(
    runtime: &tokio::runtime::Runtime,
    config: Config,
    status: &SharedStatus,
    control: &Control,
    reload: &mut Reload,
    mic: &mut MicOwner,
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

    // Source, and the buffers it fills: allocated here, once. Its loops end on `stop`.
    let stop = Stop::new();
    let source = match open_source(&config, status, &stop) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return Next::Exit(source_exit_code(&e));
        }
    };
    // Sized so that no destination, however stuck, can starve another of slots, for queues
    // that hold as many frames as their policy lets them.
    let queue_frames = config.queue.for_policy(queue_policy(&config)).max_frames;
    let pool = Pool::new(
        pool::slots_for(queue_frames, config.pool_destinations()),
        source.frame_capacity_hint(),
    );
    // The first destinations' queues exist before the source starts, so no frame goes nowhere.
    let first_queues = make_queues(&config);
    let outputs = Outputs::new(first_queues.clone());
    let headers = SharedHeaders::default();

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
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || ingest.run(&stop))
            .expect("spawn the ingest thread")
    };

    // Network side: one publisher per destination, on this thread's runtime.
    let config_source = config.source.clone();
    let supervised = runtime.block_on(supervise(
        config,
        first_queues,
        &outputs,
        &headers,
        status,
        control,
        reload,
        mic,
    ));

    // The source ends its waits on `stop`, and stops and reaps its camera app (if any) on the
    // way out: wait for that (bounded), so that the next source never starts while the old
    // one still holds the camera. Only a read that cannot be interrupted (stdin) is left behind.
    let limit = stop_limit(&config_source);
    stop.request();
    outputs.close_all();
    let ingest_result = wait_for(ingest_thread, limit);
    if ingest_result.is_none() {
        log::warn!(
            "the source did not stop within {:.0} s; leaving it behind",
            limit.as_secs_f64()
        );
    }
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
            Next::Exit(ingest_exit_code(&e))
        }
        (_, Supervised::Failed(e)) => {
            log::error!("{e}");
            Next::Exit(publish_exit_code(&e))
        }
        (_, Supervised::Done) => Next::Exit(exit::OK),
    }
}

enum Supervised {
    /// Every destination finished (end of input) or stopped on request.
    Done,
    /// A destination gave up.
    Failed(PublishError),
    Restart(Box<Config>),
}

/// Runs one generation of publishers after another: a reload with a valid configuration that
/// keeps the same source stops the current destinations cleanly and starts the new ones while
/// the source keeps running. A stop ends every destination cleanly.
// The pipeline's parts, each owned elsewhere: bundling them would only rename them.
#[allow(clippy::too_many_arguments)]
async fn supervise(
    mut config: Config,
    first_queues: Vec<Arc<FrameQueue>>,
    outputs: &Outputs,
    headers: &SharedHeaders,
    status: &SharedStatus,
    control: &Control,
    reload: &mut Reload,
    mic: &mut MicOwner,
) -> Supervised {
    let alloc_stats = std::env::var_os("CAMPUSH_ALLOC_STATS")
        .map(|_| tokio::spawn(alloc_stats_at_exit(status.clone())));
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
        let mut destinations = status.set_destinations(config.destinations());
        // One capture thread for every destination (kept while `[audio]` stays the same).
        let audio = mic.track(&config.audio, status);
        let recorder = start_recorder(&config, &queues, &mut destinations, headers, &audio);
        let mut tasks = tokio::task::JoinSet::new();
        for ((output, queue), dest) in config.outputs.iter().zip(queues).zip(destinations) {
            let settings = PublisherSettings {
                tls: output.tls.clone(),
                audio: audio.clone(),
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
                _ = control.stop_requested(), if !stopping => stop_requested = true,
                _ = control.reload_requested(), if !stopping && reload_to.is_none() => {
                    reload_requested = true
                }
            }
            if std::mem::take(&mut stop_requested) {
                stopping = true;
                log::info!("stopping: unpublishing and closing");
                let _ = stop_tx.send(true);
            }
            if std::mem::take(&mut reload_requested) {
                match reload() {
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
        if let Some((queue, thread)) = recorder {
            // It drains what is queued, closes its segment and ends.
            queue.close();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !thread.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log::warn!("the recorder did not finish within 5 s (a slow disk?)");
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

/// An unpaced file or pipe is a batch job: its queues make the source wait for the network (and
/// the disk) rather than drop frames. Everything else is live.
fn queue_policy(config: &Config) -> Policy {
    match config.source {
        SourceSpec::File(_) | SourceSpec::Stdin if !config.pace => Policy::Block,
        _ => Policy::DropGops,
    }
}

/// One queue per destination, the recorder's last.
fn make_queues(config: &Config) -> Vec<Arc<FrameQueue>> {
    let policy = queue_policy(config);
    (0..config.destinations())
        .map(|_| Arc::new(FrameQueue::new(config.queue, policy)))
        .collect()
}

/// With `[record]`: starts this generation's recorder on a thread of its own, on the last queue
/// and the last destination status (both taken out of the lists), watching the others.
fn start_recorder(
    config: &Config,
    queues: &[Arc<FrameQueue>],
    destinations: &mut Vec<crate::status::DestinationStatus>,
    headers: &SharedHeaders,
    audio: &AudioTrack,
) -> Option<(Arc<FrameQueue>, std::thread::JoinHandle<()>)> {
    let settings = config.record.clone()?;
    let queue = Arc::clone(queues.get(config.outputs.len())?);
    let status = destinations.pop()?;
    let recorder = Recorder::new(
        settings,
        Arc::clone(&queue),
        headers.clone(),
        status,
        destinations.clone(),
        audio.clone(),
        config.queue.max_frames,
    );
    let thread = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || recorder.run())
        .expect("spawn the recorder thread");
    Some((queue, thread))
}

/// Makes the configured source. Nothing here starts a camera app: a source that runs one starts
/// it on the thread that reads it (the ingest thread), which its death signal is tied to.
fn open_source(
    config: &Config,
    status: &SharedStatus,
    stop: &Stop,
) -> Result<Box<dyn Source>, SourceError> {
    // The sources that wait for their input set their own stall rule; the others never wait.
    status.set_source_stall(Duration::ZERO);
    Ok(match &config.source {
        SourceSpec::Rpicam(_) => {
            let Some(app) = CameraApp::find() else {
                return Err(SourceError::Open {
                    what: config.source.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "neither rpicam-vid nor libcamera-vid is on PATH (install rpicam-apps)",
                    ),
                });
            };
            Box::new(RpicamSource::new(
                app,
                config.rpicam.clone(),
                status.clone(),
                stop.clone(),
            ))
        }
        SourceSpec::Auto => Box::new(AutoSource::new(
            AutoSettings {
                rpicam: config.rpicam.clone(),
                v4l2: config.v4l2.clone(),
                encoder: config.encoder.clone(),
            },
            status.clone(),
            stop.clone(),
        )?),
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
            stop.clone(),
        )?),
        SourceSpec::V4l2M2m { capture, encoder } => Box::new(V4l2Source::new(
            v4l2::m2m_target(capture, encoder.as_deref()),
            config.v4l2.clone(),
            status.clone(),
            stop.clone(),
        )?),
    })
}

/// How long the ingest thread may take to end once stopped. A camera source looks at the stop
/// request every [`crate::stop::SLICE`] and then stops its app: SIGTERM, SIGKILL after
/// [`KILL_GRACE`], its last words, the reap; the device sources end within one frame wait
/// ([`v4l2::FIRST_FRAME`] at worst). A file or pipe ends within a frame, unless blocked in a
/// read of stdin, which nothing interrupts: a short wait, then it is left behind.
fn stop_limit(source: &SourceSpec) -> Duration {
    match source {
        SourceSpec::File(_) | SourceSpec::Stdin => Duration::from_secs(1),
        SourceSpec::Auto
        | SourceSpec::Rpicam(_)
        | SourceSpec::V4l2(_)
        | SourceSpec::V4l2M2m { .. } => KILL_GRACE + v4l2::FIRST_FRAME,
    }
}

/// The thread's result if it ends within `limit`; `None` if it is still running (it is left
/// behind: the process is about to exit or start a new source).
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

/// With `CAMPUSH_ALLOC_STATS` set, prints at exit how many heap allocations the steady state
/// made per frame: the publishers record the allocation counter at their 30th frame (warm-up)
/// and after every frame since, so the figure covers exactly the frames in between.
async fn alloc_stats_at_exit(status: SharedStatus) {
    struct Report(SharedStatus);
    impl Drop for Report {
        fn drop(&mut self) {
            let c = &self.0.counters;
            let total = crate::alloc::allocations();
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
