//! ALSA device names as users write them (`hw:CARD,DEV`), the cards of the system, and the
//! device nodes a name stands for.
//!
//! Owns: [`DeviceName`] (parsing, with an error that says what to write instead),
//! [`parse_cards`] (`/proc/asound/cards`, sans-IO), [`parse_pcms`] (`/proc/asound/pcm`), and
//! [`resolve`]: a name to its card and `/dev/snd/pcmC{card}D{dev}c` node, looked up below the
//! system root the caller passes (`/`, or `CAMPUSH_ROOT` in tests).
//!
//! Invariants: a card given by its id is looked up at every [`resolve`], never cached: card
//! numbers change when a USB microphone is plugged into another port or boots in another
//! order, ids do not. Only `hw:` names exist here: `plughw:`, `default` and the other
//! alsa-lib plug-ins are configuration of libasound, which campush does not use (it converts
//! formats itself), so they are refused with the `hw:` form to write.

use std::fmt;
use std::path::{Path, PathBuf};

use super::AlsaError;

/// Which card: its number, or its id (`/proc/asound/cards`, `/sys/class/sound/cardN/id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardRef {
    Index(u32),
    Id(String),
}

/// `hw:CARD,DEV`: a PCM device of a card, without alsa-lib's plug-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName {
    pub card: CardRef,
    pub device: u32,
}

/// Why a device name is not one campush opens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    #[error(
        "{0:?}: plughw (alsa-lib's conversion plug-in) is not supported, campush converts \
         formats itself: write hw:{1} (campush probe lists the devices)"
    )]
    Plug(String, String),
    #[error(
        "{0:?} is an alsa-lib name, and campush does not use alsa-lib: write hw:CARD,DEV, \
         e.g. hw:Device,0 or hw:1,0 (campush probe lists the devices)"
    )]
    NotHw(String),
    #[error(
        "{0:?}: expected hw:CARD or hw:CARD,DEV, CARD a card number or id (e.g. hw:Device,0 \
         or hw:1,0), DEV a number (campush probe lists the devices)"
    )]
    Malformed(String),
}

impl DeviceName {
    /// Parses `hw:CARD`, `hw:CARD,DEV` (DEV defaults to 0), or `hw:CARD=ID,DEV=N`.
    pub fn parse(text: &str) -> Result<DeviceName, DeviceNameError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("plughw:") {
            return Err(DeviceNameError::Plug(text.to_owned(), rest.to_owned()));
        }
        let Some(rest) = text.strip_prefix("hw:") else {
            return Err(DeviceNameError::NotHw(text.to_owned()));
        };
        let malformed = || DeviceNameError::Malformed(text.to_owned());
        let mut parts = rest.split(',');
        let card = parts.next().unwrap_or("");
        let card = card.strip_prefix("CARD=").unwrap_or(card).trim();
        let device = match parts.next() {
            None => 0,
            Some(d) => {
                let d = d.strip_prefix("DEV=").unwrap_or(d).trim();
                d.parse().map_err(|_| malformed())?
            }
        };
        if parts.next().is_some() || card.is_empty() {
            return Err(malformed());
        }
        let card = if card.bytes().all(|b| b.is_ascii_digit()) {
            CardRef::Index(card.parse().map_err(|_| malformed())?)
        } else if card
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            CardRef::Id(card.to_owned())
        } else {
            return Err(malformed());
        };
        Ok(DeviceName { card, device })
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.card {
            CardRef::Index(i) => write!(f, "hw:{i},{}", self.device),
            CardRef::Id(id) => write!(f, "hw:{id},{}", self.device),
        }
    }
}

/// One line pair of `/proc/asound/cards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub index: u32,
    /// What `hw:ID` names (e.g. `Device` for many USB microphones, `Loopback`).
    pub id: String,
    pub driver: String,
    pub name: String,
    /// The second line (e.g. `USB Audio Device at usb-0000:01:00.0-1.3, full speed`).
    pub long_name: String,
}

/// Parses `/proc/asound/cards`:
///
/// ```text
///  0 [Loopback       ]: Loopback - Loopback
///                       Loopback 1
///  1 [Device         ]: USB-Audio - USB PnP Sound Device
///                       C-Media Electronics Inc. USB PnP Sound Device at usb-..., full speed
/// ```
pub fn parse_cards(text: &str) -> Vec<Card> {
    let mut cards: Vec<Card> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let head = (|| {
            let (index, rest) = trimmed.split_once(' ')?;
            let index: u32 = index.parse().ok()?;
            let rest = rest.trim_start().strip_prefix('[')?;
            let (id, rest) = rest.split_once(']')?;
            let rest = rest.strip_prefix(':')?.trim();
            let (driver, name) = rest.split_once(" - ").unwrap_or((rest, ""));
            Some(Card {
                index,
                id: id.trim().to_owned(),
                driver: driver.trim().to_owned(),
                name: name.trim().to_owned(),
                long_name: String::new(),
            })
        })();
        match head {
            Some(card) => cards.push(card),
            None => {
                if let Some(card) = cards.last_mut() {
                    if card.long_name.is_empty() && !trimmed.is_empty() {
                        card.long_name = trimmed.trim().to_owned();
                    }
                }
            }
        }
    }
    cards
}

/// One line of `/proc/asound/pcm`: `01-00: USB Audio : USB Audio : playback 1 : capture 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmEntry {
    pub card: u32,
    pub device: u32,
    pub name: String,
    pub playback: bool,
    pub capture: bool,
}

/// Parses `/proc/asound/pcm`.
pub fn parse_pcms(text: &str) -> Vec<PcmEntry> {
    text.lines()
        .filter_map(|line| {
            let (ids, rest) = line.split_once(": ")?;
            let (card, device) = ids.split_once('-')?;
            let mut fields = rest.split(" : ");
            let name = fields.next()?.trim().to_owned();
            let mut entry = PcmEntry {
                card: card.trim().parse().ok()?,
                device: device.trim().parse().ok()?,
                name,
                playback: false,
                capture: false,
            };
            for f in fields {
                let f = f.trim();
                entry.playback |= f.starts_with("playback");
                entry.capture |= f.starts_with("capture");
            }
            Some(entry)
        })
        .collect()
}

/// The cards below `root` (empty when there is no sound support at all).
pub fn cards(root: &Path) -> Vec<Card> {
    let text = std::fs::read_to_string(root.join("proc/asound/cards")).unwrap_or_default();
    parse_cards(&text)
}

/// The PCM devices below `root`.
pub fn pcms(root: &Path) -> Vec<PcmEntry> {
    let text = std::fs::read_to_string(root.join("proc/asound/pcm")).unwrap_or_default();
    parse_pcms(&text)
}

/// Direction of a PCM stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Capture,
    Playback,
}

/// `/dev/snd/pcmC{card}D{device}c` (or `p`) below `root`.
pub fn pcm_node(root: &Path, card: u32, device: u32, dir: Direction) -> PathBuf {
    let d = match dir {
        Direction::Capture => 'c',
        Direction::Playback => 'p',
    };
    root.join(format!("dev/snd/pcmC{card}D{device}{d}"))
}

/// `/dev/snd/controlC{card}` below `root`.
pub fn control_node(root: &Path, card: u32) -> PathBuf {
    root.join(format!("dev/snd/controlC{card}"))
}

/// The card a name refers to: its index, or the card of that id.
pub fn card_index(root: &Path, name: &DeviceName) -> Result<u32, AlsaError> {
    match &name.card {
        CardRef::Index(i) => Ok(*i),
        CardRef::Id(id) => {
            let cards = cards(root);
            cards
                .iter()
                .find(|c| c.id == *id)
                .map(|c| c.index)
                .ok_or_else(|| AlsaError::NoCard {
                    name: name.to_string(),
                    known: cards
                        .iter()
                        .map(|c| format!("{} ({})", c.id, c.index))
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        }
    }
}

/// The PCM node `name` stands for, in direction `dir`, below `root`.
pub fn resolve(root: &Path, name: &DeviceName, dir: Direction) -> Result<PathBuf, AlsaError> {
    let card = card_index(root, name)?;
    Ok(pcm_node(root, card, name.device, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hw_names_parse_with_a_card_number_or_id_and_an_optional_device() {
        let cases = [
            ("hw:1,0", CardRef::Index(1), 0),
            ("hw:0", CardRef::Index(0), 0),
            ("hw:Device,0", CardRef::Id("Device".into()), 0),
            ("hw:Loopback,1", CardRef::Id("Loopback".into()), 1),
            (
                "hw:CARD=sndrpigooglevoi,DEV=0",
                CardRef::Id("sndrpigooglevoi".into()),
                0,
            ),
            (" hw:2,3 ", CardRef::Index(2), 3),
        ];
        for (text, card, device) in cases {
            assert_eq!(
                DeviceName::parse(text),
                Ok(DeviceName { card, device }),
                "{text}"
            );
        }
    }

    #[test]
    fn plughw_is_refused_with_the_hw_name_to_write() {
        let e = DeviceName::parse("plughw:Device,0").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("not supported"), "{text}");
        assert!(text.contains("write hw:Device,0"), "{text}");
    }

    #[test]
    fn alsa_lib_names_and_malformed_names_say_what_to_write() {
        for bad in ["default", "sysdefault:CARD=Device", "dmix", ""] {
            let e = DeviceName::parse(bad).unwrap_err();
            assert!(matches!(e, DeviceNameError::NotHw(_)), "{bad}: {e}");
            assert!(e.to_string().contains("write hw:CARD,DEV"), "{e}");
        }
        for bad in ["hw:", "hw:1,x", "hw:1,0,0", "hw:a b,0", "hw:,0"] {
            let e = DeviceName::parse(bad).unwrap_err();
            assert!(matches!(e, DeviceNameError::Malformed(_)), "{bad}: {e}");
            assert!(e.to_string().contains("hw:Device,0"), "{e}");
        }
    }

    #[test]
    fn a_name_prints_as_it_is_written() {
        assert_eq!(
            DeviceName::parse("hw:Device").unwrap().to_string(),
            "hw:Device,0"
        );
        assert_eq!(DeviceName::parse("hw:1,2").unwrap().to_string(), "hw:1,2");
    }

    const CARDS: &str = " 0 [Loopback       ]: Loopback - Loopback
                      Loopback 1
 1 [Device         ]: USB-Audio - USB PnP Sound Device
                      C-Media Electronics Inc. USB PnP Sound Device at usb-0000:01:00.0-1.3, full speed
";

    #[test]
    fn proc_asound_cards_gives_index_id_driver_and_names() {
        let cards = parse_cards(CARDS);
        assert_eq!(cards.len(), 2);
        assert_eq!(
            cards[1],
            Card {
                index: 1,
                id: "Device".into(),
                driver: "USB-Audio".into(),
                name: "USB PnP Sound Device".into(),
                long_name: "C-Media Electronics Inc. USB PnP Sound Device at \
                            usb-0000:01:00.0-1.3, full speed"
                    .into(),
            }
        );
        assert_eq!(cards[0].id, "Loopback");
        assert_eq!(cards[0].long_name, "Loopback 1");
        assert!(parse_cards("--- no soundcards ---\n").is_empty());
    }

    #[test]
    fn proc_asound_pcm_gives_each_device_and_its_directions() {
        let pcms = parse_pcms(
            "00-00: Loopback PCM : Loopback PCM : playback 8 : capture 8\n\
             01-00: USB Audio : USB Audio : capture 1\n",
        );
        assert_eq!(
            pcms,
            vec![
                PcmEntry {
                    card: 0,
                    device: 0,
                    name: "Loopback PCM".into(),
                    playback: true,
                    capture: true
                },
                PcmEntry {
                    card: 1,
                    device: 0,
                    name: "USB Audio".into(),
                    playback: false,
                    capture: true
                },
            ]
        );
    }

    #[test]
    fn a_card_id_resolves_below_the_root_to_its_capture_node() {
        let root = std::env::temp_dir().join(format!("campush-alsa-{}", std::process::id()));
        std::fs::create_dir_all(root.join("proc/asound")).unwrap();
        std::fs::write(root.join("proc/asound/cards"), CARDS).unwrap();
        let name = DeviceName::parse("hw:Device,0").unwrap();
        assert_eq!(
            resolve(&root, &name, Direction::Capture).unwrap(),
            root.join("dev/snd/pcmC1D0c")
        );
        let missing = DeviceName::parse("hw:Mic,0").unwrap();
        let e = resolve(&root, &missing, Direction::Capture).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("hw:Mic,0"), "{text}");
        assert!(text.contains("Loopback (0), Device (1)"), "{text}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
