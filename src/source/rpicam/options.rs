//! rpicam-vid's command-line options as its parser sees them, and which of them campush owns.
//!
//! Owns: [`OPTIONS`], the option table of rpicam-vid, copied from rpicam-apps at commit
//! `9270b6013c4575dff2e0625c0f4b8ae750218b0f` (`core/options.cpp`, `Options::Options`; and
//! `core/video_options.hpp`, `VideoOptions::VideoOptions`); [`tokens`], which walks an argument
//! list the way boost::program_options (the parser rpicam-apps uses, default command-line style)
//! does; and [`check_passthrough`], which refuses `rpicam_args` that repeat an option campush
//! sets itself or that would break H.264-on-stdout.
//!
//! How boost reads a command line (what the walk reproduces):
//! - `--name value` and `--name=value` for options that take a value; `-x value` and `-xvalue`
//!   for their one-letter forms;
//! - options declared with an `implicit_value` (all the flags: `--inline`, `--hflip`, ...) never
//!   take the next word: only `--name=value` (or `-xvalue`) gives them one;
//! - a long name may be abbreviated to any unambiguous prefix (`allow_guessing`): `--time 0` is
//!   `--timeout 0`; an exact name wins over a longer one it is a prefix of;
//! - a value may start with a dash (`--ev -1`) unless it is itself a known option.
//!
//! Invariant: the table lists every option of the cited commit with its short letter and whether
//! it takes a value; a unit test pins its size and a few entries.

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// `value<T>()`: the next word, or `=value` / a sticky short value.
    Value,
    /// `value<T>()->implicit_value(..)`: a flag; a value only through `=` or a sticky short value.
    Flag,
}

/// One rpicam-vid option: long name, one-letter form, arity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub short: Option<char>,
    pub arity: Arity,
}

const fn v(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        short: None,
        arity: Arity::Value,
    }
}

const fn vs(name: &'static str, short: char) -> OptionSpec {
    OptionSpec {
        name,
        short: Some(short),
        arity: Arity::Value,
    }
}

const fn f(name: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        short: None,
        arity: Arity::Flag,
    }
}

const fn fs(name: &'static str, short: char) -> OptionSpec {
    OptionSpec {
        name,
        short: Some(short),
        arity: Arity::Flag,
    }
}

/// Every option of rpicam-vid at the cited commit, in declaration order.
pub const OPTIONS: &[OptionSpec] = &[
    // core/options.cpp
    fs("help", 'h'),
    f("version"),
    f("list-cameras"),
    v("camera"),
    fs("verbose", 'v'),
    fs("config", 'c'),
    v("info-text"),
    v("width"),
    v("height"),
    vs("timeout", 't'),
    vs("output", 'o'),
    v("post-process-file"),
    v("post-process-libs"),
    fs("nopreview", 'n'),
    vs("preview", 'p'),
    fs("fullscreen", 'f'),
    f("qt-preview"),
    v("preview-libs"),
    v("preview-backend"),
    f("hflip"),
    f("vflip"),
    v("rotation"),
    v("roi"),
    v("shutter"),
    v("analoggain"),
    v("gain"),
    v("metering"),
    v("exposure"),
    v("ev"),
    v("awb"),
    v("awbgains"),
    v("ccm"),
    f("flush"),
    v("wrap"),
    v("brightness"),
    v("contrast"),
    v("saturation"),
    v("sharpness"),
    v("framerate"),
    v("denoise"),
    v("viewfinder-width"),
    v("viewfinder-height"),
    v("tuning-file"),
    v("lores-width"),
    v("lores-height"),
    f("lores-par"),
    v("mode"),
    v("viewfinder-mode"),
    v("buffer-count"),
    v("viewfinder-buffer-count"),
    f("no-raw"),
    v("autofocus-mode"),
    v("autofocus-range"),
    v("autofocus-speed"),
    v("autofocus-window"),
    v("lens-position"),
    f("hdr"),
    v("metadata"),
    v("metadata-format"),
    v("flicker-period"),
    // core/video_options.hpp
    vs("bitrate", 'b'),
    v("profile"),
    v("level"),
    vs("intra", 'g'),
    f("inline"),
    v("codec"),
    v("encoder-libs"),
    v("save-pts"),
    vs("quality", 'q'),
    fs("listen", 'l'),
    fs("keypress", 'k'),
    fs("signal", 's'),
    vs("initial", 'i'),
    f("split"),
    v("segment"),
    f("circular"),
    v("frames"),
    v("libav-video-codec"),
    v("libav-video-codec-opts"),
    v("libav-format"),
    f("libav-audio"),
    v("audio-codec"),
    v("audio-source"),
    v("audio-device"),
    v("audio-channels"),
    v("audio-bitrate"),
    v("audio-samplerate"),
    v("av-sync"),
    f("low-latency"),
    v("sync"),
];

/// The option a long name (without `--`) stands for: an exact name, else the one option it is
/// an unambiguous prefix of. `None` for an unknown or ambiguous name.
pub fn lookup_long(name: &str) -> Option<&'static OptionSpec> {
    if name.is_empty() {
        return None;
    }
    if let Some(o) = OPTIONS.iter().find(|o| o.name == name) {
        return Some(o);
    }
    let mut matches = OPTIONS.iter().filter(|o| o.name.starts_with(name));
    match (matches.next(), matches.next()) {
        (Some(o), None) => Some(o),
        _ => None,
    }
}

pub fn lookup_short(letter: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.short == Some(letter))
}

/// One word (or word pair) of an argument list, as the parser groups them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    /// A known option, with its value if it has one (`None` for a flag given without one).
    Known {
        spec: &'static OptionSpec,
        /// How the user spelled it (`--time`, `-t`), for messages.
        written: &'a str,
        value: Option<&'a str>,
    },
    /// An option rpicam-vid at the cited commit does not know (a newer release may). Its arity
    /// is unknown: a following word that does not start with `-` is taken as its value.
    Unknown {
        written: &'a str,
        value: Option<&'a str>,
    },
    /// A word that is not an option (rpicam-vid accepts none: "too many positional options").
    Positional(&'a str),
}

/// Groups `args` into options and their values, as boost would.
pub fn tokens<'a>(args: &'a [String]) -> Vec<Token<'a>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        i += 1;
        let (spec, written, attached) = if let Some(long) = word.strip_prefix("--") {
            if long.is_empty() {
                out.push(Token::Positional(word));
                continue;
            }
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match lookup_long(name) {
                Some(spec) => (spec, &word[..2 + name.len()], value),
                None => {
                    let value = match (value, args.get(i)) {
                        (Some(v), _) => Some(v),
                        (None, Some(next)) if !next.starts_with('-') => {
                            i += 1;
                            Some(next.as_str())
                        }
                        _ => None,
                    };
                    out.push(Token::Unknown {
                        written: word,
                        value,
                    });
                    continue;
                }
            }
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let letter = chars.next().unwrap_or_default();
            let rest = chars.as_str();
            match lookup_short(letter) {
                Some(spec) => (
                    spec,
                    &word[..1 + letter.len_utf8()],
                    (!rest.is_empty()).then_some(rest),
                ),
                None => {
                    out.push(Token::Unknown {
                        written: word,
                        value: None,
                    });
                    continue;
                }
            }
        } else {
            out.push(Token::Positional(word));
            continue;
        };
        let value = match (attached, spec.arity) {
            (Some(v), _) => Some(v),
            (None, Arity::Flag) => None,
            (None, Arity::Value) => match args.get(i) {
                Some(next) => {
                    i += 1;
                    Some(next.as_str())
                }
                None => None,
            },
        };
        out.push(Token::Known {
            spec,
            written,
            value,
        });
    }
    out
}

/// Why campush refuses an option in `rpicam_args`.
fn ownership(name: &str) -> Option<&'static str> {
    Some(match name {
        "timeout" => "campush runs the camera app without a time limit (--timeout 0)",
        "nopreview" => "campush always disables the preview window",
        "codec" => "campush always asks for H.264",
        "inline" => "campush always asks for SPS/PPS with every keyframe",
        "flush" => "campush always asks for a flush after every frame",
        "output" => "campush reads the video from the app's standard output",
        "libav-format" => "campush sets the stdout format for the libav encoder itself",
        "camera" => "choose the camera with spec = \"rpicam:N\"",
        "width" => "use source.width",
        "height" => "use source.height",
        "framerate" => "use source.fps",
        "bitrate" => "use source.bitrate_kbps",
        "intra" => "use source.gop",
        "profile" => "use source.profile",
        "level" => "use source.level",
        "hflip" => "use source.hflip",
        "vflip" => "use source.vflip",
        "rotation" => "use source.rotation",
        "autofocus-mode" => "use source.autofocus_mode",
        "lens-position" => "use source.lens_position",
        "denoise" => "use source.denoise",
        "exposure" => "use source.exposure",
        "awb" => "use source.awb",
        "help" | "version" | "list-cameras" => "it makes the app print and exit",
        "frames" => "it makes the app stop after that many frames",
        "segment" | "split" | "circular" => {
            "it splits or buffers the output, which must be one stream on stdout"
        }
        "keypress" | "signal" | "initial" | "listen" => {
            "it pauses the recording or waits for input, which would stall the stream"
        }
        "metadata" | "metadata-format" => "metadata written to stdout would corrupt the video",
        "libav-audio" => "campush adds its own audio track; raw H.264 cannot carry one",
        "config" => {
            "a config file could override what campush sets; put the options in rpicam_args"
        }
        _ => return None,
    })
}

/// Refuses an `rpicam_args` list that sets an option campush owns or one that breaks the
/// stream. Unknown options pass (a newer rpicam-vid may know them; it reports its own errors),
/// but stray words do not: rpicam-vid takes no positional arguments.
pub fn check_passthrough(args: &[String]) -> Result<(), String> {
    for token in tokens(args) {
        match token {
            Token::Known { spec, written, .. } => {
                if let Some(why) = ownership(spec.name) {
                    let shown = if written == format!("--{}", spec.name) {
                        written.to_string()
                    } else {
                        format!("{written} (--{})", spec.name)
                    };
                    return Err(format!("{shown} is not allowed here: {why}"));
                }
            }
            Token::Unknown { .. } => {}
            Token::Positional(word) => {
                return Err(format!(
                    "{word:?} is not an option (rpicam-vid takes no other \
                     arguments; an option's value goes right after it, e.g. [\"--shutter\", \"10000\"])"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_table_is_the_cited_commits_ninety_options() {
        assert_eq!(OPTIONS.len(), 90);
        let names: std::collections::HashSet<&str> = OPTIONS.iter().map(|o| o.name).collect();
        assert_eq!(names.len(), OPTIONS.len(), "no name twice");
        let shorts: Vec<char> = OPTIONS.iter().filter_map(|o| o.short).collect();
        let unique: std::collections::HashSet<&char> = shorts.iter().collect();
        assert_eq!(unique.len(), shorts.len(), "no letter twice");
        assert_eq!(lookup_short('t').unwrap().name, "timeout");
        assert_eq!(lookup_short('g').unwrap().name, "intra");
        assert_eq!(lookup_long("inline").unwrap().arity, Arity::Flag);
        assert_eq!(lookup_long("lens-position").unwrap().arity, Arity::Value);
    }

    #[test]
    fn long_names_resolve_exactly_or_by_an_unambiguous_prefix() {
        assert_eq!(lookup_long("time").unwrap().name, "timeout");
        assert_eq!(lookup_long("mode").unwrap().name, "mode", "exact wins");
        assert_eq!(lookup_long("shut").unwrap().name, "shutter");
        assert!(lookup_long("s").is_none(), "ambiguous");
        assert!(lookup_long("autofocus").is_none(), "ambiguous");
        assert!(lookup_long("frobnicate").is_none());
    }

    #[test]
    fn words_group_like_boost_groups_them() {
        let a = args(&[
            "--shutter",
            "10000",
            "--ev",
            "-1",
            "--hdr",
            "--hflip=0",
            "-q90",
            "-v",
            "--new",
            "x",
            "y",
        ]);
        let t = tokens(&a);
        let shown: Vec<String> = t
            .iter()
            .map(|t| match t {
                Token::Known { spec, value, .. } => format!("{}={:?}", spec.name, value),
                Token::Unknown { written, value } => format!("unknown {written}={value:?}"),
                Token::Positional(w) => format!("positional {w}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "shutter=Some(\"10000\")",
                "ev=Some(\"-1\")",
                "hdr=None",
                "hflip=Some(\"0\")",
                "quality=Some(\"90\")",
                "verbose=None",
                "unknown --new=Some(\"x\")",
                "positional y",
            ]
        );
    }

    #[test]
    fn owned_options_are_refused_in_every_spelling() {
        for words in [
            &["-t", "0"][..],
            &["-t0"],
            &["--timeout", "0"],
            &["--timeout=0"],
            &["--time", "0"],
            &["--width", "640"],
            &["--width=640"],
            &["-o", "-"],
            &["-b", "1000000"],
            &["-g", "30"],
            &["--inline"],
            &["--awb", "cloudy"],
            &["--framerate=25"],
            &["--list-cameras"],
            &["--metadata", "-"],
            &["--frames", "100"],
            &["-c", "x.txt"],
        ] {
            let err = check_passthrough(&args(words)).unwrap_err();
            assert!(err.contains("not allowed"), "{words:?}: {err}");
        }
        let err = check_passthrough(&args(&["--awb", "cloudy"])).unwrap_err();
        assert!(err.contains("source.awb"), "{err}");
        let err = check_passthrough(&args(&["-t", "0"])).unwrap_err();
        assert!(err.contains("-t (--timeout)"), "{err}");
    }

    #[test]
    fn other_options_pass_even_with_dashed_values_or_unknown_to_this_table() {
        for words in [
            &["--shutter", "10000", "--gain", "2.0"][..],
            &["--ev", "-1"],
            &["--hdr"],
            &["--hdr=sensor"],
            &[
                "--tuning-file",
                "/usr/share/libcamera/ipa/rpi/vc4/imx708.json",
            ],
            &[
                "--low-latency",
                "--libav-video-codec-opts",
                "preset=ultrafast",
            ],
            &["--some-future-option", "1"],
            &["--roi", "0.25,0.25,0.5,0.5"],
        ] {
            assert_eq!(check_passthrough(&args(words)), Ok(()), "{words:?}");
        }
    }

    #[test]
    fn a_value_cannot_hide_an_owned_option_and_stray_words_are_refused() {
        // The value of --shutter is consumed; the following --width is still seen.
        assert!(check_passthrough(&args(&["--shutter", "100", "--width", "5"])).is_err());
        let err = check_passthrough(&args(&["--hflip", "1"])).unwrap_err();
        assert!(err.contains("not allowed"), "--hflip is owned: {err}");
        assert_eq!(
            check_passthrough(&args(&["--brightness"])),
            Ok(()),
            "a missing value is the app's to report"
        );
        let err = check_passthrough(&args(&["--lores-par", "1"])).unwrap_err();
        assert!(err.contains("\"1\" is not an option"), "{err}");
    }
}
