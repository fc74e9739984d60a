use super::*;
use crate::audio::{AudioFormat, SILENT_STEREO};

/// A box as found in a byte string: its type, and the range of its payload (after the header).
#[derive(Debug, Clone)]
struct Found {
    kind: String,
    payload: std::ops::Range<usize>,
}

/// The boxes laid one after the other in `bytes[range]`.
fn boxes_in(bytes: &[u8], range: std::ops::Range<usize>) -> Vec<Found> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && at + size <= range.end,
            "box at {at} of size {size} overflows"
        );
        out.push(Found {
            kind: String::from_utf8(bytes[at + 4..at + 8].to_vec()).unwrap(),
            payload: at + 8..at + size,
        });
        at += size;
    }
    out
}

/// Bytes before the children of a container box: full box header, entry count, sample entry.
fn children_offset(kind: &str) -> Option<usize> {
    match kind {
        "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf" => Some(0),
        "stsd" | "dref" => Some(8),
        "avc1" => Some(78),
        "mp4a" => Some(28),
        _ => None,
    }
}

/// The box tree as an indented outline, one type per line.
fn outline(bytes: &[u8]) -> String {
    fn walk(bytes: &[u8], range: std::ops::Range<usize>, depth: usize, out: &mut String) {
        for b in boxes_in(bytes, range) {
            out.push_str(&format!("{}{}\n", "  ".repeat(depth), b.kind));
            if let Some(skip) = children_offset(&b.kind) {
                walk(bytes, b.payload.start + skip..b.payload.end, depth + 1, out);
            }
        }
    }
    let mut out = String::new();
    walk(bytes, 0..bytes.len(), 0, &mut out);
    out
}

/// The first box of type `path[last]` under the boxes `path[..last]`.
fn find(bytes: &[u8], path: &[&str]) -> std::ops::Range<usize> {
    let mut range = 0..bytes.len();
    for (i, kind) in path.iter().enumerate() {
        let found = boxes_in(bytes, range.clone())
            .into_iter()
            .find(|b| b.kind == *kind)
            .unwrap_or_else(|| panic!("no {kind} in {:?}", &path[..i]));
        range = found.payload;
        if i + 1 < path.len() {
            range.start += children_offset(kind).unwrap();
        }
    }
    range
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
}

const AVCC: [u8; 15] = [
    1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x4d, 0x40, 0x1e, 1, 0, 2,
];

fn video() -> VideoTrack<'static> {
    VideoTrack {
        avcc: &AVCC,
        width: 320,
        height: 240,
    }
}

#[test]
fn the_init_segment_is_ftyp_then_a_moov_with_one_track_per_stream() {
    let mut m = Muxer::new();
    let init = m
        .init_segment(&video(), Some(AudioFormat::default()))
        .to_vec();
    let expected = "\
ftyp
moov
  mvhd
  trak
    tkhd
    mdia
      mdhd
      hdlr
      minf
        vmhd
        dinf
          dref
            url 
        stbl
          stsd
            avc1
              avcC
          stts
          stsc
          stco
          stsz
  trak
    tkhd
    mdia
      mdhd
      hdlr
      minf
        smhd
        dinf
          dref
            url 
        stbl
          stsd
            mp4a
              esds
          stts
          stsc
          stco
          stsz
  mvex
    trex
    trex
";
    assert_eq!(outline(&init), expected);
}

#[test]
fn without_audio_the_moov_has_the_video_track_only() {
    let mut m = Muxer::new();
    let init = m.init_segment(&video(), None).to_vec();
    let o = outline(&init);
    assert_eq!(o.matches("trak").count(), 1, "{o}");
    assert_eq!(o.matches("trex").count(), 1, "{o}");
    let mvhd = find(&init, &["moov", "mvhd"]);
    assert_eq!(u32_at(&init, mvhd.end - 4), 2, "next_track_id");
}

#[test]
fn the_avcc_box_carries_the_decoder_configuration_byte_for_byte() {
    let mut m = Muxer::new();
    let init = m.init_segment(&video(), None).to_vec();
    let avcc = find(
        &init,
        &[
            "moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1", "avcC",
        ],
    );
    assert_eq!(&init[avcc], &AVCC);
    let avc1 = find(
        &init,
        &["moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1"],
    );
    // width and height sit 24 bytes into the visual sample entry.
    assert_eq!(&init[avc1.start + 24..avc1.start + 28], &[1, 64, 0, 240]);
    let tkhd = find(&init, &["moov", "trak", "tkhd"]);
    assert_eq!(u32_at(&init, tkhd.end - 8), 320 << 16);
    assert_eq!(u32_at(&init, tkhd.end - 4), 240 << 16);
    let mdhd = find(&init, &["moov", "trak", "mdia", "mdhd"]);
    assert_eq!(u32_at(&init, mdhd.start + 12), 90_000, "video timescale");
}

#[test]
fn the_esds_carries_the_audio_specific_config_and_the_track_its_rate() {
    let mut m = Muxer::new();
    let format = AudioFormat::new(44_100, 1).unwrap();
    let init = m.init_segment(&video(), Some(format)).to_vec();
    let moov = find(&init, &["moov"]);
    let traks: Vec<_> = boxes_in(&init, moov)
        .into_iter()
        .filter(|b| b.kind == "trak")
        .collect();
    let audio = &init[traks[1].payload.clone()];
    let esds = find(audio, &["mdia", "minf", "stbl", "stsd", "mp4a", "esds"]);
    assert_eq!(
        &audio[esds],
        &[
            0, 0, 0, 0, // version, flags
            0x03, 25, 0, 2, 0, // ES_Descriptor: length, ES_ID 2, flags
            0x04, 17, 0x40, 0x15, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, // DecoderConfig
            0x05, 2, 0x12, 0x08, // DecoderSpecificInfo: the AudioSpecificConfig
            0x06, 1, 0x02, // SLConfig
        ]
    );
    let mdhd = find(audio, &["mdia", "mdhd"]);
    assert_eq!(u32_at(audio, mdhd.start + 12), 44_100);
    let mp4a = find(audio, &["mdia", "minf", "stbl", "stsd", "mp4a"]);
    assert_eq!(u32_at(audio, mp4a.start + 16) >> 16, 1, "channel count");
    assert_eq!(u32_at(audio, mp4a.start + 24), 44_100 << 16);
}

/// The moof of a fragment (its head without the mdat header).
fn moof_of(f: &Fragment) -> Vec<u8> {
    assert_eq!(&f.head[f.head.len() - 4..], b"mdat");
    f.head[..f.head.len() - 8].to_vec()
}

/// A sample whose bytes say which one it is.
fn sample(i: u64, keyframe: bool, data: &[u8]) -> VideoSample<'_> {
    VideoSample {
        time_us: i * 40_000,
        composition_us: 0,
        keyframe,
        data,
    }
}

#[test]
fn a_fragment_is_a_moof_whose_runs_point_into_the_mdat_that_follows() {
    let mut m = Muxer::new();
    m.init_segment(&video(), Some(AudioFormat::default()));
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
    for (i, p) in payloads.iter().enumerate() {
        m.add_audio(&SILENT_STEREO);
        m.add_video(&sample(i as u64, i == 0, p));
    }
    let f = m.fragment(Some(200_000)).unwrap();
    assert_eq!(f.frames, 5);
    let mut bytes = f.head.to_vec();
    bytes.extend_from_slice(f.video);
    bytes.extend_from_slice(f.audio);
    assert_eq!(
        outline(&bytes),
        "moof\n  mfhd\n  traf\n    tfhd\n    tfdt\n    trun\n  traf\n    tfhd\n    tfdt\n    trun\nmdat\n"
    );
    let mdat = find(&bytes, &["mdat"]);
    assert_eq!(mdat.len(), 60 + 5 * SILENT_STEREO.len());

    let trun = find(&bytes, &["moof", "traf", "trun"]);
    assert_eq!(u32_at(&bytes, trun.start), 0x0100_0f01, "version 1, flags");
    assert_eq!(u32_at(&bytes, trun.start + 4), 5, "sample count");
    let offset = u32_at(&bytes, trun.start + 8) as usize;
    assert_eq!(offset, mdat.start, "data offset from the moof's first byte");
    let mut at = offset;
    for (i, entry) in bytes[trun.start + 12..trun.end].chunks(16).enumerate() {
        let field = |n: usize| u32::from_be_bytes(entry[4 * n..4 * n + 4].try_into().unwrap());
        assert_eq!(field(0), 3600, "40 ms at 90 kHz");
        let size = field(1) as usize;
        assert_eq!(&bytes[at..at + size], &payloads[i][..]);
        at += size;
        let flags = if i == 0 { 0x0200_0000 } else { 0x0101_0000 };
        assert_eq!(field(2), flags);
        assert_eq!(field(3), 0, "composition offset");
    }
    // The audio run starts where the video ends.
    let moof = find(&bytes, &["moof"]);
    let traf = boxes_in(&bytes, moof)
        .into_iter()
        .filter(|b| b.kind == "traf")
        .nth(1)
        .unwrap();
    let audio_trun = find(&bytes[traf.payload.clone()], &["trun"]);
    let audio_trun = traf.payload.start + audio_trun.start..traf.payload.start + audio_trun.end;
    assert_eq!(u32_at(&bytes, audio_trun.start + 4), 5);
    let audio_offset = u32_at(&bytes, audio_trun.start + 8) as usize;
    assert_eq!(audio_offset, at);
    assert_eq!(&bytes[audio_offset..audio_offset + 6], &SILENT_STEREO);
}

#[test]
fn decode_times_continue_from_fragment_to_fragment() {
    let mut m = Muxer::new();
    m.init_segment(&video(), Some(AudioFormat::default()));
    let data = [0u8; 4];
    let mut tfdts = Vec::new();
    for i in 0..20u64 {
        let s = sample(i, i % 10 == 0, &data);
        if m.wants_new_fragment(s.time_us, s.keyframe) {
            let f = m.fragment(Some(s.time_us)).unwrap();
            let head = moof_of(&f);
            let video_tfdt = find(&head, &["moof", "traf", "tfdt"]);
            tfdts.push(u32_at(&head, video_tfdt.start + 8));
        }
        m.add_audio(&SILENT_STEREO);
        m.add_video(&s);
    }
    assert_eq!(tfdts, [0]);
    let f = m.fragment(None).unwrap();
    assert_eq!(f.start_us, 400_000);
    assert_eq!(f.frames, 10);
    // The second fragment's audio starts after the first one's ten frames.
    let head = moof_of(&f);
    let moof = find(&head, &["moof"]);
    let audio_traf = boxes_in(&head, moof)
        .into_iter()
        .filter(|b| b.kind == "traf")
        .nth(1)
        .unwrap();
    let tfdt = find(&head[audio_traf.payload.clone()], &["tfdt"]);
    let at = audio_traf.payload.start + tfdt.start;
    assert_eq!(u32_at(&head, at + 8), 10 * 1024);
}

#[test]
fn a_fragment_ends_at_a_keyframe_or_after_a_second_whichever_comes_first() {
    let mut m = Muxer::new();
    m.init_segment(&video(), None);
    let data = [0u8; 4];
    assert!(!m.wants_new_fragment(0, true), "nothing buffered yet");
    m.add_video(&sample(0, true, &data));
    assert!(!m.wants_new_fragment(40_000, false));
    assert!(m.wants_new_fragment(40_000, true));
    assert!(!m.wants_new_fragment(999_999, false));
    assert!(m.wants_new_fragment(1_000_000, false));
}

#[test]
fn composition_offsets_are_signed_ticks() {
    let mut m = Muxer::new();
    m.init_segment(&video(), None);
    m.add_video(&VideoSample {
        time_us: 0,
        composition_us: 66_666,
        keyframe: true,
        data: &[1],
    });
    m.add_video(&VideoSample {
        time_us: 33_333,
        composition_us: -33_333,
        keyframe: false,
        data: &[2],
    });
    let head = moof_of(&m.fragment(Some(66_666)).unwrap());
    let trun = find(&head, &["moof", "traf", "trun"]);
    assert_eq!(u32_at(&head, trun.start + 12 + 12), 5999);
    assert_eq!(u32_at(&head, trun.start + 28 + 12) as i32, -2999);
}

#[test]
fn the_muxer_reuses_its_buffers_fragment_after_fragment() {
    let mut m = Muxer::new();
    m.init_segment(&video(), Some(AudioFormat::default()));
    let data = vec![7u8; 50_000];
    let mut seen = None;
    for i in 0..200u64 {
        let s = sample(i, i % 25 == 0, &data);
        if m.wants_new_fragment(s.time_us, s.keyframe) {
            let f = m.fragment(Some(s.time_us)).unwrap();
            let ptrs = (f.head.as_ptr(), f.video.as_ptr(), f.audio.as_ptr());
            assert_eq!(*seen.get_or_insert(ptrs), ptrs, "a buffer moved");
        }
        m.add_audio(&SILENT_STEREO);
        m.add_video(&s);
    }
}

/// The fixture clip: (timestamp, keyframe, length-prefixed sample) per picture, its avcC and
/// picture size.
struct Fixture {
    samples: Vec<(u64, bool, Vec<u8>)>,
    avcc: Vec<u8>,
    width: u32,
    height: u32,
}

fn fixture() -> Fixture {
    let annexb = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/clip-320x240-30fps.h264"
    ))
    .unwrap();
    let (units, _) = crate::h264::split_whole(&annexb, || 4096).unwrap();
    let mut params = crate::h264::ParamSets::new();
    let mut samples = Vec::new();
    for (i, au) in units.iter().enumerate() {
        let info = params.observe(au).unwrap();
        let mut avcc = Vec::new();
        crate::h264::annexb_to_avcc(au, &mut avcc);
        samples.push((i as u64 * 1_000_000 / 30, info.keyframe, avcc));
    }
    let mut config = Vec::new();
    params.write_decoder_config(&mut config).unwrap();
    let info = params.info().unwrap();
    Fixture {
        samples,
        avcc: config,
        width: info.width,
        height: info.height,
    }
}

/// Writes the fixture as one segment (with a silent stereo track) the way the recorder does.
fn write_fixture_segment(path: &std::path::Path) -> usize {
    let Fixture {
        samples,
        avcc,
        width,
        height,
    } = fixture();
    let mut m = Muxer::new();
    let track = VideoTrack {
        avcc: &avcc,
        width,
        height,
    };
    let mut file = m
        .init_segment(&track, Some(AudioFormat::default()))
        .to_vec();
    let mut audio = crate::audio::SilentAac::new(AudioFormat::default());
    use crate::audio::AudioSource;
    audio.start(0);
    let mut fragments = 0;
    for (t, key, data) in &samples {
        if m.wants_new_fragment(*t, *key) {
            let f = m.fragment(Some(*t)).unwrap();
            file.extend_from_slice(f.head);
            file.extend_from_slice(f.video);
            file.extend_from_slice(f.audio);
            fragments += 1;
        }
        while let Some(a) = audio.next_until(*t) {
            m.add_audio(a.data);
        }
        m.add_video(&VideoSample {
            time_us: *t,
            composition_us: 0,
            keyframe: *key,
            data,
        });
    }
    let f = m.fragment(Some(3_000_000)).unwrap();
    file.extend_from_slice(f.head);
    file.extend_from_slice(f.video);
    file.extend_from_slice(f.audio);
    std::fs::write(path, &file).unwrap();
    fragments + 1
}

fn ffprobe(args: &[&str], path: &std::path::Path) -> String {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ffmpeg_decodes_every_frame_of_a_segment_and_its_audio() {
    if !crate::testing::require_tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segment.mp4");
    assert_eq!(write_fixture_segment(&path), 3, "one fragment per 1 s GOP");
    let video = ffprobe(
        &[
            "-select_streams",
            "v",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,duration",
            "-of",
            "csv=p=0",
        ],
        &path,
    );
    assert_eq!(video.trim(), "h264,320,240,3.000000,90");
    let audio = ffprobe(
        &[
            "-select_streams",
            "a",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,sample_rate,channels,nb_read_frames",
            "-of",
            "csv=p=0",
        ],
        &path,
    );
    // The audio frames that start by the last picture (2.967 s): 2.967 s * 48000 / 1024 = 139.1.
    assert_eq!(audio.trim(), "aac,48000,2,140");
    let keys = ffprobe(
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=flags",
            "-of",
            "csv=p=0",
        ],
        &path,
    );
    let keys: Vec<&str> = keys.lines().collect();
    assert!(keys[0].starts_with('K'), "the first packet is a keyframe");
    assert_eq!(keys.iter().filter(|k| k.starts_with('K')).count(), 3);
    let decode = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decode.status.success());
    assert_eq!(String::from_utf8_lossy(&decode.stderr), "", "decode errors");
}

#[test]
fn a_segment_cut_short_still_plays_up_to_its_last_complete_fragment() {
    if !crate::testing::require_tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segment.mp4");
    write_fixture_segment(&path);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let frames = std::process::Command::new("ffprobe")
        .args(["-v", "quiet", "-select_streams", "v", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let frames: u32 = String::from_utf8_lossy(&frames.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((30..90).contains(&frames), "{frames} frames decoded");
}
