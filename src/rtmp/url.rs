//! RTMP ingest URLs: `rtmp[s]://host[:port]/app[/more]/key[?query]`.
//!
//! This module owns splitting a URL into what the wire protocol needs: the host and port to
//! dial, the application name sent in `connect` (`app`), the `tcUrl` sent with it, and the
//! stream key sent in `releaseStream`, `FCPublish` and `publish` (Adobe RTMP 1.0 §7.2.1.1,
//! §7.2.2.6).
//!
//! Invariants:
//! * The stream key is a secret (it is the publishing credential on YouTube, Twitch and
//!   Facebook). It is never part of `tc_url`, of [`RtmpUrl::redacted`], of `Display`/`Debug`
//!   output, or of any [`UrlError`] message.
//! * `host` is non-empty and holds IPv6 literals without brackets; `port` is non-zero
//!   (defaults: 1935 for `rtmp`, 443 for `rtmps`); `app` and `stream_key` are non-empty and
//!   `app` never starts or ends with `/`.
//! * `user:pass@` userinfo is **rejected**, not stripped: RTMP has no standard place for it, so
//!   silently dropping it would connect without the credentials the user meant to send, and
//!   keeping it would leak them into `tcUrl`.
//! * `tc_url` is `scheme://host[:port]/app`, with the port only when the input spelt one out
//!   (as OBS and librtmp send it).
//! * What is printed of the app is its first segment only (up to `/`, `?` or `#`):
//!   `rtmp://host:port/live/<redacted>`. With a key given separately the whole path of the URL
//!   is the app, and a URL pasted with its key (or a `?token=`) still in it would otherwise be
//!   printed whole; the first segment is what a person needs to tell destinations apart, and
//!   what the configuration's error excerpts keep too (`config/redact.rs`).
//! * Except when that whole path is one segment and not a known app name ([`KNOWN_APPS`]):
//!   `url = "rtmp://host/KEY"` next to a `key_file` is a key pasted in the app's place as often
//!   as it is an app of its own, so only its first [`SHOWN_PREFIX`] characters are printed
//!   (`rtmp://host:1935/sk…/<redacted>`). With the key in the URL (`rtmp://host/app/KEY`) the
//!   app is what comes before the key, and is printed.
//! * Text a server sends back is searched for [`secret_pieces`] before it is kept: the key, its
//!   name, its query and each of its parameters and values, the same of the app's query, and
//!   the app itself when it may be a key.
//! * With a key given separately, a URL that ends with that same key is refused
//!   ([`UrlError::KeyTwice`]): the key would become part of the app, which the server refuses.

use std::fmt;

/// `rtmp` (plain TCP) or `rtmps` (TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Rtmp,
    Rtmps,
}

impl Scheme {
    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        }
    }

    /// 1935 for `rtmp`, 443 for `rtmps`.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => 1935,
            Scheme::Rtmps => 443,
        }
    }
}

/// A parsed ingest URL. `Display` and `Debug` print [`RtmpUrl::redacted`].
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub scheme: Scheme,
    /// Host name or IP literal; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// Application name sent in `connect`; may contain `/`.
    pub app: String,
    /// Stream key (publishing name), including any `?query`. Secret.
    pub stream_key: String,
    /// `scheme://host[:port]/app`; never contains the key.
    pub tc_url: String,
    /// The URL's whole path is the app (the key was given apart, [`RtmpUrl::with_key`]).
    path_is_app: bool,
}

/// App names of ingest services and servers, printed whole even when they are a URL's whole
/// path (compared ignoring case): `live` (nginx-rtmp, SRS, Restream), `live2` (YouTube), `app`
/// (Twitch, Mux), `rtmp` (Facebook), and other words servers use for their publishing app.
pub const KNOWN_APPS: [&str; 16] = [
    "live",
    "live2",
    "app",
    "rtmp",
    "rtmps",
    "stream",
    "streams",
    "publish",
    "ingest",
    "input",
    "broadcast",
    "show",
    "hls",
    "dash",
    "origin",
    "push",
];

/// Characters printed of a one-segment app that may be a key, before `…`.
pub const SHOWN_PREFIX: usize = 2;

/// The shortest query value, or app that may be a key, searched for on its own in server text
/// (shorter ones would match ordinary words; their `name=value` pair is still searched for).
pub const MIN_SEARCHED: usize = 4;

/// The app's first segment (up to `/`, `?` or `#`).
fn first_segment(app: &str) -> &str {
    app.split(['/', '?', '#']).next().unwrap_or_default()
}

/// Whether `app` is one segment (its query aside) that is not a known app name.
fn unknown_single_segment(app: &str) -> bool {
    let path = app.split(['?', '#']).next().unwrap_or_default();
    !path.contains('/') && !KNOWN_APPS.iter().any(|k| k.eq_ignore_ascii_case(path))
}

/// What of a publishing address a server's text must not show, longest first: the stream key
/// whole, its name (before `?`), its query, each `name=value` parameter of it and each value of
/// at least [`MIN_SEARCHED`] characters; the same of the app's query (`live?token=abc`); and
/// the app's first segment when it is one segment that is not a known app name (a key pasted as
/// the app; over-redacting an app of its own costs a log line a word).
pub fn secret_pieces(key: &str, app: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut add = |s: &str| {
        if !s.is_empty() && !pieces.iter().any(|p| p == s) {
            pieces.push(s.to_owned());
        }
    };
    add(key);
    add(key.split('?').next().unwrap_or_default());
    for text in [key, app] {
        let Some((_, query)) = text.split_once('?') else {
            continue;
        };
        add(query);
        for pair in query.split(['&', ';']) {
            add(pair);
            if let Some((_, value)) = pair.split_once('=') {
                if value.chars().count() >= MIN_SEARCHED {
                    add(value);
                }
            }
        }
    }
    let first = first_segment(app);
    if unknown_single_segment(app) && first.chars().count() >= MIN_SEARCHED {
        add(first);
    }
    pieces.sort_by_key(|p| std::cmp::Reverse(p.len()));
    pieces
}

/// Why a URL was refused. Messages never repeat the stream key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("RTMP URL must start with rtmp:// or rtmps://")]
    UnsupportedScheme,
    #[error("RTMP URL has no host")]
    MissingHost,
    #[error("RTMP URL host is not a valid host name or IP literal")]
    InvalidHost,
    #[error("RTMP URL port is not a number from 1 to 65535")]
    InvalidPort,
    #[error("RTMP URL contains user:password@ credentials, which RTMP cannot send; remove them")]
    UserInfo,
    #[error("RTMP URL has no application name (expected rtmp://host/app/...)")]
    MissingApp,
    #[error(
        "RTMP URL has no stream key (expected rtmp://host/app/KEY, or give the key separately)"
    )]
    MissingKey,
    #[error("stream key is empty")]
    EmptyKey,
    #[error("stream key contains whitespace or control characters")]
    InvalidKey,
    #[error("RTMP URL contains whitespace or control characters")]
    InvalidCharacter,
    #[error(
        "RTMP URL ends with the stream key that is given separately too: remove it from url \
         (with key or key_file, url is the server's address, rtmp://host/app)"
    )]
    KeyTwice,
}

/// Scheme, host, port, whether the port was explicit, and the rest after the authority
/// (starting at `/`, or empty).
struct Parts<'a> {
    scheme: Scheme,
    host: &'a str,
    port: u16,
    explicit_port: bool,
    path: &'a str,
}

fn split_scheme(url: &str) -> Result<(Scheme, &str), UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("rtmp") {
        Scheme::Rtmp
    } else if scheme.eq_ignore_ascii_case("rtmps") {
        Scheme::Rtmps
    } else {
        return Err(UrlError::UnsupportedScheme);
    };
    Ok((scheme, rest))
}

fn valid_reg_name(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

fn valid_ipv6(host: &str) -> bool {
    // Hex digits, colons, dots (embedded IPv4) and a zone id after '%'.
    let (addr, zone) = match host.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (host, None),
    };
    addr.contains(':')
        && addr
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && zone.is_none_or(|z| !z.is_empty() && valid_reg_name(z))
}

fn parse_port(s: &str) -> Result<u16, UrlError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::InvalidPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::InvalidPort),
        Ok(p) => Ok(p),
    }
}

fn split_authority(url: &str) -> Result<Parts<'_>, UrlError> {
    let url = url.trim();
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(UrlError::InvalidCharacter);
    }
    let (scheme, rest) = split_scheme(url)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(UrlError::InvalidHost)?;
        if !valid_ipv6(host) {
            return Err(UrlError::InvalidHost);
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UrlError::InvalidHost)?),
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if !host.is_empty() && !valid_reg_name(host) {
            return Err(UrlError::InvalidHost);
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let (port, explicit_port) = match port {
        Some(p) => (parse_port(p)?, true),
        None => (scheme.default_port(), false),
    };
    Ok(Parts {
        scheme,
        host,
        port,
        explicit_port,
        path,
    })
}

fn check_key(key: &str) -> Result<(), UrlError> {
    if key.is_empty() {
        return Err(UrlError::EmptyKey);
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::InvalidKey);
    }
    Ok(())
}

fn build(parts: &Parts<'_>, app: &str, key: &str, path_is_app: bool) -> RtmpUrl {
    let host_in_url = if parts.host.contains(':') {
        format!("[{}]", parts.host)
    } else {
        parts.host.to_owned()
    };
    let tc_url = if parts.explicit_port {
        format!(
            "{}://{}:{}/{}",
            parts.scheme.as_str(),
            host_in_url,
            parts.port,
            app
        )
    } else {
        format!("{}://{}/{}", parts.scheme.as_str(), host_in_url, app)
    };
    RtmpUrl {
        scheme: parts.scheme,
        host: parts.host.to_owned(),
        port: parts.port,
        app: app.to_owned(),
        stream_key: key.to_owned(),
        tc_url,
        path_is_app,
    }
}

impl RtmpUrl {
    /// Parses `rtmp[s]://host[:port]/app[/more]/key[?query]`. The last path segment, with any
    /// query, is the stream key; everything before it is the app (which may contain `/`).
    /// IPv6 literals go in brackets. `user:pass@` userinfo is rejected ([`UrlError::UserInfo`]).
    /// A `#fragment` is kept as part of the key (keys are opaque).
    pub fn parse(url: &str) -> Result<RtmpUrl, UrlError> {
        let parts = split_authority(url)?;
        let path = parts.path.strip_prefix('/').unwrap_or(parts.path);
        // The query belongs to the key and may itself contain '/'.
        let (path_only, query) = match path.find('?') {
            Some(i) => path.split_at(i),
            None => (path, ""),
        };
        let (app, key_name) = path_only.rsplit_once('/').ok_or(if path_only.is_empty() {
            UrlError::MissingApp
        } else {
            UrlError::MissingKey
        })?;
        let app = app.trim_matches('/');
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        if key_name.is_empty() {
            return Err(UrlError::MissingKey);
        }
        // The key is the last segment plus the query: the tail of `path`.
        let key = path
            .get(path_only.len() - key_name.len()..)
            .ok_or(UrlError::MissingKey)?;
        debug_assert!(key.ends_with(query));
        check_key(key)?;
        Ok(build(&parts, app, key, false))
    }

    /// Builds a URL from an ingest base whose whole path is the app (a trailing `/` is
    /// ignored; `rtmp://h/app/inst` sends the app `app/inst`) and a key given separately
    /// (configuration `key` / `key_file`, `--key-file`). Surrounding whitespace of the key (a key
    /// file's newline) is trimmed. A base whose last path segment is that key (its query aside)
    /// is refused: the key was pasted twice.
    pub fn with_key(base: &str, key: &str) -> Result<RtmpUrl, UrlError> {
        let parts = split_authority(base)?;
        let app = parts.path.trim_matches('/');
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        let key = key.trim();
        check_key(key)?;
        let without_query = |s: &str| s.split('?').next().unwrap_or(s).to_owned();
        let last_segment = without_query(app)
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .map(str::to_owned);
        if last_segment.is_some_and(|last| last == without_query(key)) {
            return Err(UrlError::KeyTwice);
        }
        Ok(build(&parts, app, key, true))
    }

    /// `rtmp://host:port/app/<redacted>`, with the app up to its first `/`, `?` or `#`, or only
    /// its start when it may be a key: for logs, never the key, nor what a URL pasted with its
    /// key still holds (see the module doc).
    pub fn redacted(&self) -> String {
        let first = first_segment(&self.app);
        let app = if self.path_is_app && unknown_single_segment(&self.app) {
            let start: String = first.chars().take(SHOWN_PREFIX).collect();
            format!("{start}…")
        } else {
            first.to_owned()
        };
        if self.host.contains(':') {
            format!(
                "{}://[{}]:{}/{app}/<redacted>",
                self.scheme.as_str(),
                self.host,
                self.port,
            )
        } else {
            format!(
                "{}://{}:{}/{app}/<redacted>",
                self.scheme.as_str(),
                self.host,
                self.port,
            )
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-SECRET-1234";

    #[test]
    fn parses_common_ingest_urls() {
        let cases: &[(&str, Scheme, &str, u16, &str, &str, &str)] = &[
            (
                "rtmp://a.rtmp.youtube.com/live2/abcd-efgh",
                Scheme::Rtmp,
                "a.rtmp.youtube.com",
                1935,
                "live2",
                "abcd-efgh",
                "rtmp://a.rtmp.youtube.com/live2",
            ),
            (
                "rtmp://127.0.0.1:1936/live/cam1",
                Scheme::Rtmp,
                "127.0.0.1",
                1936,
                "live",
                "cam1",
                "rtmp://127.0.0.1:1936/live",
            ),
            (
                "rtmps://live-api-s.facebook.com:443/rtmp/FB-1-0-abc?s_bl=1&s_sw=0",
                Scheme::Rtmps,
                "live-api-s.facebook.com",
                443,
                "rtmp",
                "FB-1-0-abc?s_bl=1&s_sw=0",
                "rtmps://live-api-s.facebook.com:443/rtmp",
            ),
            (
                "rtmps://ingest.example/app",
                Scheme::Rtmps,
                "ingest.example",
                443,
                "",
                "",
                "",
            ),
            (
                "RTMP://[::1]:19350/live/sub/app/key?token=a/b",
                Scheme::Rtmp,
                "::1",
                19350,
                "live/sub/app",
                "key?token=a/b",
                "rtmp://[::1]:19350/live/sub/app",
            ),
            (
                "rtmp://[fe80::1%eth0]/live/k",
                Scheme::Rtmp,
                "fe80::1%eth0",
                1935,
                "live",
                "k",
                "rtmp://[fe80::1%eth0]/live",
            ),
        ];
        for &(url, scheme, host, port, app, key, tc_url) in cases {
            if app.is_empty() {
                assert_eq!(RtmpUrl::parse(url), Err(UrlError::MissingKey), "{url}");
                continue;
            }
            let u = RtmpUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(u.scheme, scheme, "{url}");
            assert_eq!(u.host, host, "{url}");
            assert_eq!(u.port, port, "{url}");
            assert_eq!(u.app, app, "{url}");
            assert_eq!(u.stream_key, key, "{url}");
            assert_eq!(u.tc_url, tc_url, "{url}");
        }
    }

    #[test]
    fn with_key_takes_whole_path_as_app() {
        let u = RtmpUrl::with_key("rtmp://live.twitch.tv/app", "live_123_abc\n").expect("ok");
        assert_eq!(u.app, "app");
        assert_eq!(u.stream_key, "live_123_abc");
        assert_eq!(u.tc_url, "rtmp://live.twitch.tv/app");
        let u = RtmpUrl::with_key("rtmps://live-api-s.facebook.com:443/rtmp/", KEY).expect("ok");
        assert_eq!(u.app, "rtmp");
        assert_eq!(u.port, 443);
        assert_eq!(u.tc_url, "rtmps://live-api-s.facebook.com:443/rtmp");
        let u = RtmpUrl::with_key("rtmp://h/a/b/c", KEY).expect("ok");
        assert_eq!(u.app, "a/b/c");
        assert_eq!(
            RtmpUrl::with_key("rtmp://h/", KEY),
            Err(UrlError::MissingApp)
        );
        assert_eq!(
            RtmpUrl::with_key("rtmp://h/app", " \n"),
            Err(UrlError::EmptyKey)
        );
        assert_eq!(
            RtmpUrl::with_key("rtmp://h/app", "a b"),
            Err(UrlError::InvalidKey)
        );
    }

    #[test]
    fn with_key_refuses_a_base_that_ends_with_the_same_key() {
        for (base, key) in [
            ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh", "abcd-efgh"),
            ("rtmp://h/live/abcd-efgh/", "abcd-efgh\n"),
            ("rtmps://h:443/rtmp/FB-1?s_bl=1", "FB-1?s_bl=1"),
            ("rtmps://h:443/rtmp/FB-1?s_bl=1", "FB-1"),
            ("rtmp://h/abcd-efgh", "abcd-efgh"),
        ] {
            let got = RtmpUrl::with_key(base, key);
            assert_eq!(got.map(|_| ()), Err(UrlError::KeyTwice), "{base}");
        }
        assert!(!UrlError::KeyTwice.to_string().contains("abcd"));
        // A several-segment app whose last segment is not the key is an app.
        let u = RtmpUrl::with_key("rtmp://h/app/_definst_", "abcd-efgh").expect("ok");
        assert_eq!(u.app, "app/_definst_");
    }

    #[test]
    fn errors_name_the_problem_without_the_key() {
        let cases: &[(&str, UrlError)] = &[
            ("http://h/app/sk-SECRET-1234", UrlError::UnsupportedScheme),
            ("h/app/sk-SECRET-1234", UrlError::UnsupportedScheme),
            ("rtmp:///app/sk-SECRET-1234", UrlError::MissingHost),
            ("rtmp://:1935/app/sk-SECRET-1234", UrlError::MissingHost),
            ("rtmp://h:0/app/sk-SECRET-1234", UrlError::InvalidPort),
            ("rtmp://h:65536/app/sk-SECRET-1234", UrlError::InvalidPort),
            ("rtmp://h:x/app/sk-SECRET-1234", UrlError::InvalidPort),
            ("rtmp://h:/app/sk-SECRET-1234", UrlError::InvalidPort),
            ("rtmp://u:p@h/app/sk-SECRET-1234", UrlError::UserInfo),
            ("rtmp://[::1/app/sk-SECRET-1234", UrlError::InvalidHost),
            ("rtmp://[zz::1]/app/sk-SECRET-1234", UrlError::InvalidHost),
            ("rtmp://[::1]x/app/sk-SECRET-1234", UrlError::InvalidHost),
            ("rtmp://h%x/app/sk-SECRET-1234", UrlError::InvalidHost),
            ("rtmp://h", UrlError::MissingApp),
            ("rtmp://h/", UrlError::MissingApp),
            ("rtmp://h/sk-SECRET-1234", UrlError::MissingKey),
            ("rtmp://h//sk-SECRET-1234", UrlError::MissingApp),
            ("rtmp://h/app/", UrlError::MissingKey),
            ("rtmp://h/app/?sk-SECRET-1234", UrlError::MissingKey),
            ("rtmp://h/app/sk-SECRET\t1234", UrlError::InvalidCharacter),
        ];
        for (url, want) in cases {
            let got = RtmpUrl::parse(url);
            assert_eq!(got.as_ref().map(|_| ()), Err(want), "{url}");
            let msg = want.to_string();
            assert!(!msg.contains("SECRET"), "{msg}");
        }
    }

    #[test]
    fn a_printed_url_shows_the_app_only_up_to_its_first_segment() {
        // A url that still holds a key (or a token) when the key is also given separately:
        // the whole path is the app, and nothing of it past the first segment is printed.
        for (base, shown) in [
            (
                "rtmp://h/live/sk-SECRET-1234",
                "rtmp://h:1935/live/<redacted>",
            ),
            (
                "rtmp://h/live?token=SECRET",
                "rtmp://h:1935/live/<redacted>",
            ),
            ("rtmp://h/live#SECRET", "rtmp://h:1935/live/<redacted>"),
            ("rtmp://h/app/inst", "rtmp://h:1935/app/<redacted>"),
        ] {
            let u = RtmpUrl::with_key(base, "k").expect(base);
            assert_eq!(u.redacted(), shown, "{base}");
            assert_eq!(format!("{u:?}"), format!("RtmpUrl({shown})"), "{base}");
        }
        let u = RtmpUrl::parse("rtmp://h/a/b/k").expect("ok");
        assert_eq!(u.app, "a/b", "the app sent is the whole path");
        assert_eq!(u.redacted(), "rtmp://h:1935/a/<redacted>");
    }

    #[test]
    fn redacted_display_and_debug_hide_the_key() {
        let u = RtmpUrl::parse(&format!("rtmp://example.com/live/{KEY}?x=1")).expect("ok");
        assert_eq!(u.redacted(), "rtmp://example.com:1935/live/<redacted>");
        assert_eq!(u.to_string(), u.redacted());
        let dbg = format!("{u:?}");
        assert!(
            dbg.contains("<redacted>") && !dbg.contains("SECRET"),
            "{dbg}"
        );
        assert!(!u.tc_url.contains("SECRET"));
        let v6 = RtmpUrl::parse("rtmps://[2001:db8::2]/app/k").expect("ok");
        assert_eq!(v6.redacted(), "rtmps://[2001:db8::2]:443/app/<redacted>");
        assert_eq!(v6.tc_url, "rtmps://[2001:db8::2]/app");
    }

    #[test]
    fn a_whole_path_of_one_unknown_segment_may_be_a_key_and_only_its_start_is_printed() {
        let pasted = RtmpUrl::with_key(&format!("rtmp://example.com/{KEY}"), "other").unwrap();
        assert_eq!(pasted.app, KEY, "sent as the app all the same");
        assert_eq!(pasted.redacted(), "rtmp://example.com:1935/sk…/<redacted>");
        assert!(!format!("{pasted} {pasted:?}").contains("SECRET"));
        let with_query =
            RtmpUrl::with_key(&format!("rtmp://example.com/{KEY}?t=1"), "other").unwrap();
        assert_eq!(
            with_query.redacted(),
            "rtmp://example.com:1935/sk…/<redacted>"
        );
        for known in ["live", "live2", "app", "rtmp", "LIVE"] {
            let u = RtmpUrl::with_key(&format!("rtmp://example.com/{known}"), KEY).unwrap();
            assert_eq!(
                u.redacted(),
                format!("rtmp://example.com:1935/{known}/<redacted>")
            );
        }
        let token = RtmpUrl::with_key("rtmp://example.com/live?token=abc123", KEY).unwrap();
        assert_eq!(token.redacted(), "rtmp://example.com:1935/live/<redacted>");
        // Two segments: the first is the app, the rest may hold the key (shown as before).
        let deep = RtmpUrl::with_key("rtmp://example.com/myapp/inst", KEY).unwrap();
        assert_eq!(deep.redacted(), "rtmp://example.com:1935/myapp/<redacted>");
        // The key in the URL: the app is what comes before it, whatever its name.
        let inline = RtmpUrl::parse(&format!("rtmp://example.com/myapp/{KEY}")).unwrap();
        assert_eq!(
            inline.redacted(),
            "rtmp://example.com:1935/myapp/<redacted>"
        );
    }

    #[test]
    fn the_secret_pieces_are_the_key_its_name_and_every_query_token_of_key_and_app() {
        let pieces = secret_pieces("name?secret=x&token=abcdef;v", "live?auth=zz99&k=1");
        for piece in [
            "name?secret=x&token=abcdef;v",
            "name",
            "secret=x&token=abcdef;v",
            "secret=x",
            "token=abcdef",
            "abcdef",
            "v",
            "auth=zz99&k=1",
            "auth=zz99",
            "zz99",
            "k=1",
        ] {
            assert!(pieces.iter().any(|p| p == piece), "{piece}: {pieces:?}");
        }
        for kept in ["x", "1", "live", "auth", "token"] {
            assert!(!pieces.iter().any(|p| p == kept), "{kept}: {pieces:?}");
        }
        assert!(
            pieces.windows(2).all(|w| w[0].len() >= w[1].len()),
            "longest first: {pieces:?}"
        );
        assert_eq!(secret_pieces("k", "live"), ["k"]);
        assert!(
            secret_pieces("k", KEY).iter().any(|p| p == KEY),
            "a pasted key"
        );
        assert!(!secret_pieces("k", "app/inst").iter().any(|p| p == "app"));
    }
}
