//! Exit codes (sysexits.h), documented in README and `campush --help`. systemd's unit uses
//! `RestartPreventExitStatus=78`: a configuration error will not fix itself by restarting.

/// Clean stop: end of a non-looping file, SIGTERM/SIGINT.
pub const OK: u8 = 0;
/// The input is not usable H.264 (no start codes, no SPS/PPS).
pub const DATA: u8 = 65;
/// The source cannot be opened.
pub const NO_INPUT: u8 = 66;
/// The server is unreachable or the connection failed (after the allowed attempts).
pub const UNAVAILABLE: u8 = 69;
/// An internal error (a bug).
pub const SOFTWARE: u8 = 70;
/// Reading the source failed.
pub const IO: u8 = 74;
/// The server's TLS certificate was refused: unknown issuer (a private CA not given with
/// `--tls-ca`), a name that is not the host's, expired or not yet valid (a wrong clock).
/// (sysexits' EX_PROTOCOL.)
pub const CERTIFICATE: u8 = 76;
/// The server refused to let us publish (bad key, name in use, app refused).
pub const REFUSED: u8 = 77;
/// The configuration or the command line is invalid.
pub const CONFIG: u8 = 78;
