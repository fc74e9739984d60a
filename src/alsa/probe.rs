//! `campush probe`, the ALSA half: every capture PCM of every card, what it offers, and the
//! `[audio] source` line that would use it.
//!
//! Owns: gathering ([`probe_all`]: `/proc/asound/cards` and `/proc/asound/pcm` below the
//! system root, then a hardware refinement of each capture node; nothing is started) and the
//! wording ([`render`]), apart so that the wording is tested without devices.
//!
//! Invariants: a device that cannot be opened (busy, permissions) is listed with the reason,
//! not skipped; the line campush would use starts with `use:`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::device::{cards, pcm_node, pcms, Card, Direction, PcmEntry};
use super::pcm::{offer, Offer};

/// One capture PCM and what it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureReport {
    pub card: Card,
    pub pcm: PcmEntry,
    pub node: PathBuf,
    /// What it offers, or why it could not be asked.
    pub offer: Result<Offer, String>,
}

/// The cards below `root` and each capture PCM they have.
pub fn probe_all(root: &Path) -> (Vec<Card>, Vec<CaptureReport>) {
    let cards = cards(root);
    let reports = pcms(root)
        .into_iter()
        .filter(|p| p.capture)
        .filter_map(|pcm| {
            let card = cards.iter().find(|c| c.index == pcm.card)?.clone();
            let node = pcm_node(root, pcm.card, pcm.device, Direction::Capture);
            let offer = offer(&node).map_err(|e| e.to_string());
            Some(CaptureReport {
                card,
                pcm,
                node,
                offer,
            })
        })
        .collect();
    (cards, reports)
}

/// The report's text.
pub fn render(cards: &[Card], reports: &[CaptureReport]) -> String {
    let mut out = String::from("ALSA capture devices (microphones):\n");
    if cards.is_empty() {
        out.push_str("  none: no sound card (/proc/asound/cards lists none)\n");
        return out;
    }
    for card in cards {
        let _ = writeln!(
            out,
            "  card {} id {:?}: {} ({}; driver {})",
            card.index, card.id, card.name, card.long_name, card.driver
        );
        let mine: Vec<&CaptureReport> = reports
            .iter()
            .filter(|r| r.card.index == card.index)
            .collect();
        if mine.is_empty() {
            out.push_str("    no capture device\n");
        }
        for r in mine {
            let name = format!("hw:{},{}", card.id, r.pcm.device);
            let _ = writeln!(out, "    {name} ({}) {:?}", r.node.display(), r.pcm.name);
            match &r.offer {
                Err(e) => {
                    let _ = writeln!(out, "      cannot be probed: {e}");
                }
                Ok(o) => {
                    let common: Vec<String> =
                        o.common_rates.iter().map(|r| r.to_string()).collect();
                    let _ = writeln!(
                        out,
                        "      formats {}; channels {}..{}; rates {}..{} Hz ({})",
                        o.formats.join(", "),
                        o.channels.0,
                        o.channels.1,
                        o.rates.0,
                        o.rates.1,
                        if common.is_empty() {
                            "none of the usual ones".to_owned()
                        } else {
                            format!("{} exactly", common.join(", "))
                        }
                    );
                    match (o.usable_format(), o.common_rates.is_empty()) {
                        (Some(f), false) => {
                            let native =
                                o.common_rates.iter().any(|r| [48_000, 44_100].contains(r));
                            let _ = writeln!(
                                out,
                                "      use: [audio] source = \"alsa:{name}\"  (takes {}{})",
                                f.name(),
                                if native {
                                    String::new()
                                } else {
                                    format!(
                                        "; {} Hz, resampled to the [audio] rate",
                                        o.common_rates[0]
                                    )
                                }
                            );
                        }
                        (None, _) => {
                            let _ = writeln!(
                                out,
                                "      not usable: campush takes S16_LE or S32_LE samples"
                            );
                        }
                        (_, true) => {
                            let _ = writeln!(
                                out,
                                "      not usable: campush takes 48000, 44100 or one of {:?} Hz",
                                super::pcm::FALLBACK_RATES
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb_mic() -> (Vec<Card>, Vec<CaptureReport>) {
        let card = Card {
            index: 1,
            id: "Device".into(),
            driver: "USB-Audio".into(),
            name: "USB PnP Sound Device".into(),
            long_name: "C-Media USB PnP Sound Device at usb-0000:01:00.0-1.3".into(),
        };
        let report = CaptureReport {
            card: card.clone(),
            pcm: PcmEntry {
                card: 1,
                device: 0,
                name: "USB Audio".into(),
                playback: false,
                capture: true,
            },
            node: PathBuf::from("/dev/snd/pcmC1D0c"),
            offer: Ok(Offer {
                formats: vec!["S16_LE"],
                channels: (1, 1),
                rates: (44_100, 48_000),
                common_rates: vec![48_000, 44_100],
            }),
        };
        (vec![card], vec![report])
    }

    #[test]
    fn a_usb_microphone_is_listed_with_the_line_to_write() {
        let (cards, reports) = usb_mic();
        let text = render(&cards, &reports);
        for needle in [
            "card 1 id \"Device\": USB PnP Sound Device",
            "hw:Device,0 (/dev/snd/pcmC1D0c) \"USB Audio\"",
            "formats S16_LE; channels 1..1; rates 44100..48000 Hz (48000, 44100 exactly)",
            "use: [audio] source = \"alsa:hw:Device,0\"  (takes S16_LE)",
        ] {
            assert!(text.contains(needle), "lacks {needle:?}:\n{text}");
        }
    }

    #[test]
    fn a_webcam_microphone_at_16_khz_is_usable_and_said_to_be_resampled() {
        let (cards, mut reports) = usb_mic();
        let offer = reports[0].offer.as_mut().unwrap();
        offer.rates = (16_000, 16_000);
        offer.common_rates = vec![16_000];
        let text = render(&cards, &reports);
        assert!(
            text.contains("rates 16000..16000 Hz (16000 exactly)")
                && text.contains(
                    "use: [audio] source = \"alsa:hw:Device,0\"  (takes S16_LE; 16000 Hz, \
                     resampled to the [audio] rate)"
                ),
            "{text}"
        );
        offer_none(&cards, &mut reports);
    }

    /// A device with no usable rate is said not to be usable, with the rates campush takes.
    fn offer_none(cards: &[Card], reports: &mut [CaptureReport]) {
        reports[0].offer.as_mut().unwrap().common_rates.clear();
        let text = render(cards, reports);
        assert!(
            text.contains("not usable: campush takes 48000, 44100 or one of [96000, 32000"),
            "{text}"
        );
        assert!(!text.contains("use:"), "{text}");
    }

    #[test]
    fn a_device_with_only_24_bit_packed_samples_is_not_usable_and_says_why() {
        let (cards, mut reports) = usb_mic();
        reports[0].offer.as_mut().unwrap().formats = vec!["S24_3LE"];
        let text = render(&cards, &reports);
        assert!(
            text.contains("not usable: campush takes S16_LE or S32_LE"),
            "{text}"
        );
        assert!(!text.contains("use:"), "{text}");
    }

    #[test]
    fn a_busy_device_is_listed_with_the_reason() {
        let (cards, mut reports) = usb_mic();
        reports[0].offer = Err("/dev/snd/pcmC1D0c: cannot open: Device or resource busy".into());
        let text = render(&cards, &reports);
        assert!(
            text.contains(
                "cannot be probed: /dev/snd/pcmC1D0c: cannot open: Device or resource busy"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_card_at_all_is_said_plainly() {
        assert!(render(&[], &[]).contains("none: no sound card"));
    }

    #[test]
    fn probing_a_fake_root_lists_its_capture_devices_even_when_their_node_is_missing() {
        let root = std::env::temp_dir().join(format!("campush-alsa-probe-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc/asound")).unwrap();
        std::fs::write(
            root.join("proc/asound/cards"),
            " 0 [Loopback       ]: Loopback - Loopback\n                      Loopback 1\n",
        )
        .unwrap();
        std::fs::write(
            root.join("proc/asound/pcm"),
            "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n\
             00-01: Loopback PCM : Loopback PCM : playback 8 : capture 8\n",
        )
        .unwrap();
        let (cards, reports) = probe_all(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(cards.len(), 1);
        assert_eq!(reports.len(), 2);
        let text = render(&cards, &reports);
        assert!(text.contains("hw:Loopback,1"), "{text}");
        assert!(text.contains("cannot be probed"), "{text}");
    }
}
