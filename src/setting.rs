//! A setting that does not check: which key, and what is wrong with its value.
//!
//! Owns: [`Invalid`], the one error every stage's `check` returns for its section of the
//! configuration file (`PublisherSettings::check` for `[network]`, `Limits::check` for
//! `[queue]`, ...). A stage names its keys as they are written inside its section (`"width"`,
//! not `"source.width"`): the stage does not know where its section sits in the file, nor which
//! `[[output]]` it is. `config` qualifies the key (`output[2].url`), finds it in the file and
//! shows the line, with any secret on it removed.
//!
//! This is the lowest layer: it imports nothing from the crate, so every stage can use it
//! without importing `config`, which sits above the stages.

/// A key whose value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    /// The key as written in its section.
    pub key: &'static str,
    /// What is wrong and what is expected. Never the value of a secret (a stream key, a URL
    /// with one): `config` removes those again, but a stage does not hand them out.
    pub message: String,
}

impl Invalid {
    pub fn new(key: &'static str, message: impl Into<String>) -> Invalid {
        Invalid {
            key,
            message: message.into(),
        }
    }
}

/// The `width` and `height` keys of a picture size, as every source with a camera takes them:
/// 16 to 8192 pixels each, both or neither.
pub fn picture_size(
    width: Option<u32>,
    height: Option<u32>,
) -> Result<(Option<u32>, Option<u32>), Invalid> {
    for (value, key) in [(width, "width"), (height, "height")] {
        if let Some(d) = value.filter(|d| !(16..=8192).contains(d)) {
            return Err(Invalid::new(
                key,
                format!("{d} is out of range: expected 16 to 8192 pixels"),
            ));
        }
    }
    if width.is_some() != height.is_some() {
        return Err(Invalid::new(
            if width.is_some() { "width" } else { "height" },
            "width and height go together: set both or neither",
        ));
    }
    Ok((width, height))
}
