//! The microphone's owner: at most one capture thread for the whole process, kept across
//! pipelines and reloads while `[audio]` names the same microphone, replaced when it changes.
//!
//! Owns: [`MicOwner`]. Every generation of destinations asks it for the [`AudioTrack`] its
//! configuration describes ([`MicOwner::track`]): a silent track or none needs no thread; a
//! microphone starts one (once) and every destination reads its shared ring. If the thread
//! cannot be started the track falls back to silence (logged), so the video goes on.

use crate::audio::mic::{self, Mic, MicSettings, Opener};
use crate::audio::{AudioSpec, AudioTrack, MicSpec};
use crate::status::SharedStatus;

/// Makes the opener of a configured microphone.
pub type OpenerFor = fn(&MicSpec) -> Opener;

/// The running microphone, if any (see the module doc).
pub struct MicOwner {
    running: Option<(MicSpec, Mic)>,
    opener_for: OpenerFor,
}

impl Default for MicOwner {
    fn default() -> Self {
        MicOwner::new(|spec| mic::alsa_opener(spec, crate::config::system_root()))
    }
}

impl MicOwner {
    /// An owner that opens microphones with `opener_for`.
    pub fn new(opener_for: OpenerFor) -> MicOwner {
        MicOwner {
            running: None,
            opener_for,
        }
    }

    /// The track for `spec`: starts, keeps or stops the microphone to match it.
    pub fn track(&mut self, spec: &AudioSpec, status: &SharedStatus) -> AudioTrack {
        let Some(want) = spec.mic() else {
            if self.running.take().is_some() {
                status.set_audio(None);
            }
            return AudioTrack::without_mic(spec);
        };
        if let Some((running, mic)) = &self.running {
            if running == want {
                return AudioTrack::Mic(mic.feed());
            }
        }
        // Stop the old thread before the new one opens the device.
        self.running = None;
        let stats = status.set_audio(Some(want.label()));
        match Mic::start(MicSettings::from(want), (self.opener_for)(want), stats) {
            Ok(mic) => {
                let feed = mic.feed();
                self.running = Some((want.clone(), mic));
                AudioTrack::Mic(feed)
            }
            Err(e) => {
                log::error!("audio: cannot start the capture thread: {e}; sending silence");
                status.set_audio(None);
                AudioTrack::without_mic(spec)
            }
        }
    }
}
