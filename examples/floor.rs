//! The floor of publishing an H.264 file over RTMP, for `bench/compare.sh`: what it costs to do
//! nothing per frame but one `send()` of bytes made beforehand.
//!
//! Reads the whole Annex B file, splits it into access units, publishes to the URL (campush's
//! own sans-IO session over a blocking socket), builds every message first (`onMetaData`, the
//! AVC sequence header, then each frame as a chunked FLV video message with timestamps at the
//! clip's nominal rate), and only then measures: the CPU time (user + system, `getrusage`) of
//! one `write_all` per frame, unpaced, and of the clean end of the stream. Prints one line:
//! `floor: frames=N bytes=B cpu_ms=X`.
//!
//!     cargo run --release --example floor -- rtmp://127.0.0.1:1935/live/key clip.h264 [fps]

use std::io::{Read, Write};
use std::net::TcpStream;

use campush::flv;
use campush::h264::{nal_units, split_whole, ParamSets};
use campush::rtmp::{ClientSession, RtmpUrl, SessionConfig};

fn cpu_ms() -> f64 {
    // SAFETY: getrusage writes one struct rusage, which we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(path)) = (args.get(1), args.get(2)) else {
        return Err("usage: floor RTMP_URL CLIP.h264 [FPS]".into());
    };
    let fps: f64 = args.get(3).map_or(Ok(30.0), |f| f.parse())?;
    let url = RtmpUrl::parse(url)?;
    let clip = std::fs::read(path)?;
    let (units, _) = split_whole(&clip, || 1 << 20)?;

    // The FLV bodies of every frame, and the stream headers from the first SPS/PPS.
    let mut params = ParamSets::new();
    let mut bodies = Vec::with_capacity(units.len());
    let mut tag = flv::VideoTag::with_capacity(1 << 20);
    for unit in &units {
        let mut info = Default::default();
        tag.begin(unit.len());
        for nal in nal_units(unit) {
            params.observe_unit(nal, &mut info)?;
            tag.push_nal_unit(nal);
        }
        if info.has_picture {
            tag.finish(info.keyframe, 0);
            bodies.push(tag.body().to_vec());
        }
    }
    let mut record = Vec::new();
    params.write_decoder_config(&mut record)?;
    let mut sequence_header = Vec::new();
    flv::write_sequence_header(&mut sequence_header, &record);
    let mut metadata = Vec::new();
    let sps = params.info().cloned().ok_or("no SPS in the clip")?;
    flv::write_metadata(
        &mut metadata,
        &flv::Metadata {
            width: sps.width,
            height: sps.height,
            framerate: Some(fps),
            video_kbps: None,
            encoder: "floor",
            audio: None,
        },
    );

    // Publish.
    let mut socket = TcpStream::connect((url.host.as_str(), url.port))?;
    socket.set_nodelay(true)?;
    let mut session = ClientSession::new(SessionConfig::for_url(&url, 1));
    let mut out = Vec::new();
    session.start(&mut out);
    socket.write_all(&out)?;
    let mut inbuf = vec![0u8; 64 * 1024];
    while !session.is_published() {
        let n = socket.read(&mut inbuf)?;
        if n == 0 {
            return Err("the server closed the connection while publishing".into());
        }
        out.clear();
        session.receive(&inbuf[..n], &mut out)?;
        socket.write_all(&out)?;
    }

    // Every message, chunked, before the clock starts.
    let mut first = Vec::new();
    session.write_metadata(&mut first, &metadata);
    session.write_video(&mut first, 0, &sequence_header);
    let messages: Vec<Vec<u8>> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut m = Vec::with_capacity(body.len() + body.len() / 4096 + 64);
            session.write_video(&mut m, (i as f64 * 1000.0 / fps) as u32, body);
            m
        })
        .collect();
    let mut end = Vec::new();
    session.finish(&mut end);

    let before = cpu_ms();
    socket.write_all(&first)?;
    for m in &messages {
        socket.write_all(m)?;
    }
    socket.write_all(&end)?;
    socket.shutdown(std::net::Shutdown::Write)?;
    // Until the server has read everything and closes (answers are not needed any more).
    while socket.read(&mut inbuf)? > 0 {}
    let spent = cpu_ms() - before;
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "floor: frames={} bytes={bytes} cpu_ms={spent:.1}",
        messages.len()
    );
    Ok(())
}
