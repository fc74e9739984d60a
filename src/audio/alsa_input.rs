//! A microphone through ALSA as the audio pipeline's [`PcmInput`].
//!
//! Owns: [`open`] (a `hw:CARD,DEV` name to a started capture stream, or a [`PcmError`] that
//! says whether to try again later) and the adaptation of `alsa::Pcm` to [`PcmInput`].
//!
//! How the pipeline uses it: `open` when the stream starts and again, with backoff, after a
//! read returned [`PcmError::Gone`] (a USB microphone pulled out and plugged back in, maybe as
//! another card number: the name is resolved afresh each time). An open that fails with
//! `Gone` means "not there now"; one that fails with `Io` means the device is there and
//! refuses (a format, rate or channel count campush does not take): backoff still applies,
//! and the message says what the device offers.
//!
//! Invariants: reads allocate nothing; `time_us` is the CLOCK_MONOTONIC capture time of the
//! first frame of the read (`alsa::pcm` derives it from the driver's timestamp); overruns are
//! counted ([`AlsaInput::overruns`]) and each one is returned once as [`PcmError::Overrun`].

use std::io;
use std::path::Path;
use std::time::Duration;

use super::pcm::{PcmError, PcmInput, PcmParams, PcmRead, SampleFormat};
use crate::alsa::{self, AlsaError, DeviceName, Direction, Format, Pcm, Wish};

/// A started ALSA capture stream.
#[derive(Debug)]
pub struct AlsaInput {
    pcm: Pcm,
    params: PcmParams,
}

impl AlsaInput {
    /// Overruns since the open.
    pub fn overruns(&self) -> u64 {
        self.pcm.xruns()
    }

    /// The device node in use (e.g. `/dev/snd/pcmC1D0c`).
    pub fn node(&self) -> &Path {
        self.pcm.path()
    }
}

fn pcm_error(e: AlsaError) -> PcmError {
    match e {
        AlsaError::Xrun => PcmError::Overrun,
        AlsaError::Timeout(d) => PcmError::Timeout(d),
        AlsaError::Gone { source, .. } => PcmError::Gone(source),
        e @ AlsaError::NoCard { .. } => {
            PcmError::Gone(io::Error::new(io::ErrorKind::NotFound, e.to_string()))
        }
        e => PcmError::Io(io::Error::other(e.to_string())),
    }
}

/// Opens the capture device `name` (below the system `root`: `/`, or `CAMPUSH_ROOT`) as near
/// `want_rate` (48000 or 44100) and `want_channels` (1 or 2) as it goes, and starts it. The
/// device's own channel count is kept when it has no other (a stereo-only microphone gives 2
/// channels to a mono wish: the pipeline down-mixes); [`PcmInput::params`] says what it is.
pub fn open(
    root: &Path,
    name: &DeviceName,
    want_rate: u32,
    want_channels: u8,
) -> Result<AlsaInput, PcmError> {
    let node = alsa::device::resolve(root, name, Direction::Capture).map_err(pcm_error)?;
    let pcm = Pcm::open(
        &node,
        Direction::Capture,
        &Wish::microphone(want_rate, u32::from(want_channels)),
    )
    .map_err(pcm_error)?;
    let setup = pcm.setup();
    let params = PcmParams {
        format: match setup.format {
            Format::S16Le => SampleFormat::S16Le,
            Format::S32Le => SampleFormat::S32Le,
        },
        rate: setup.rate,
        channels: setup.channels as u8,
        period_frames: setup.period_frames,
    };
    Ok(AlsaInput { pcm, params })
}

/// [`open`], boxed as the pipeline holds it.
pub fn open_boxed(
    root: &Path,
    name: &DeviceName,
    want_rate: u32,
    want_channels: u8,
) -> Result<Box<dyn PcmInput>, PcmError> {
    Ok(Box::new(open(root, name, want_rate, want_channels)?))
}

impl PcmInput for AlsaInput {
    fn params(&self) -> PcmParams {
        self.params
    }

    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> Result<PcmRead, PcmError> {
        let c = self.pcm.read(buf, timeout).map_err(pcm_error)?;
        Ok(PcmRead {
            frames: c.frames,
            time_us: c.time_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_card_id_is_gone_so_the_pipeline_tries_again_later() {
        let root = std::env::temp_dir().join(format!("campush-alsa-input-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc/asound")).unwrap();
        std::fs::write(root.join("proc/asound/cards"), "--- no soundcards ---\n").unwrap();
        let name = DeviceName::parse("hw:Device,0").unwrap();
        let e = open(&root, &name, 48_000, 1).unwrap_err();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(matches!(e, PcmError::Gone(_)), "{e}");
        assert!(e.to_string().contains("hw:Device,0"), "{e}");
    }

    #[test]
    fn a_card_number_without_its_node_is_gone() {
        let root = std::env::temp_dir();
        let name = DeviceName::parse("hw:31,0").unwrap();
        let e = open(&root, &name, 48_000, 2).unwrap_err();
        assert!(matches!(e, PcmError::Gone(_)), "{e}");
    }

    #[test]
    fn overruns_and_timeouts_keep_their_meaning_for_the_pipeline() {
        assert!(matches!(pcm_error(AlsaError::Xrun), PcmError::Overrun));
        assert!(matches!(
            pcm_error(AlsaError::Timeout(Duration::from_secs(1))),
            PcmError::Timeout(_)
        ));
        let refused = pcm_error(AlsaError::Unsupported {
            path: "/dev/snd/pcmC0D0c".into(),
            what: "offers the sample formats S24_3LE and campush takes S16_LE or S32_LE".into(),
        });
        assert!(matches!(refused, PcmError::Io(_)));
        assert!(refused.to_string().contains("S24_3LE"), "{refused}");
    }
}
