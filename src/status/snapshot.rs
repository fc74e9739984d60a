//! What the status file and the Prometheus file show at one moment, and the status file's JSON.
//!
//! Owns: [`Snapshot`] (read at once from [`super::SharedStatus::snapshot`]) with one
//! [`DestinationSnapshot`] per destination, and its rendering as the one-line JSON object of
//! `status.json` ([`Snapshot::to_json`]; `prometheus.rs` renders the same snapshot for
//! Prometheus). Invariants: every key is always present (`null` where a value is absent), in a
//! fixed order; strings are escaped ([`json_string`]), so an error text can never break the
//! file.

use std::time::Duration;

use super::{AudioSnapshot, Backlog, Status};
use crate::health::Health;

/// What the status file and the Prometheus file show, at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    pub uptime: Duration,
    pub bitrate_kbps: f64,
    /// The encoder's current video bitrate under the adaptive bitrate, kbit/s (`None`: not
    /// adjusted).
    pub encoder_kbps: Option<u64>,
    pub frames_in: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub bytes_sent: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub source_restarts: u64,
    pub destinations: Vec<DestinationSnapshot>,
    pub health: Health,
    pub last_error: Option<String>,
    /// The microphone, when there is one.
    pub audio: Option<AudioSnapshot>,
}

/// One destination in a [`Snapshot`].
#[derive(Debug, Clone)]
pub struct DestinationSnapshot {
    /// Its redacted URL (`rtmp://host:port/app/<redacted>`), unique within the snapshot.
    pub label: String,
    pub status: Status,
    pub connects: u64,
    pub reconnects: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Its end-to-end backlog while it streams (`None`: not streaming).
    pub backlog: Option<Backlog>,
}

impl Snapshot {
    /// The status file: one JSON object on one line.
    pub fn to_json(&self) -> String {
        let last_error = match &self.last_error {
            Some(e) => json_string(e),
            None => "null".into(),
        };
        let mut destinations = String::from("[");
        for (i, d) in self.destinations.iter().enumerate() {
            if i > 0 {
                destinations.push(',');
            }
            let (backlog_ms, estimate) = match d.backlog {
                Some(b) => (b.ms.to_string(), format!("\"{}\"", b.estimate.name())),
                None => ("null".to_owned(), "null".to_owned()),
            };
            destinations += &format!(
                "{{\"destination\":{},\"status\":\"{}\",\"connects\":{},\"reconnects\":{},\"frames_sent\":{},\"bytes_sent\":{},\"backlog_ms\":{backlog_ms},\"backlog_estimate\":{estimate}}}",
                json_string(&d.label),
                d.status.name(),
                d.connects,
                d.reconnects,
                d.frames_sent,
                d.bytes_sent,
            );
        }
        destinations.push(']');
        format!(
            "{{\"status\":\"{}\",\"uptime_s\":{},\"frames_in\":{},\"frames_sent\":{},\"frames_dropped\":{},\"bytes_sent\":{},\"bitrate_kbps\":{:.1},\"encoder_bitrate_kbps\":{},\"connects\":{},\"reconnects\":{},\"source_restarts\":{},\"last_error\":{},\"destinations\":{},\"health\":{},\"audio\":{}}}\n",
            self.status.name(),
            self.uptime.as_secs(),
            self.frames_in,
            self.frames_sent,
            self.frames_dropped,
            self.bytes_sent,
            self.bitrate_kbps,
            self.encoder_kbps
                .map_or_else(|| "null".to_string(), |k| k.to_string()),
            self.connects,
            self.reconnects,
            self.source_restarts,
            last_error,
            destinations,
            health_json(&self.health),
            self.audio
                .as_ref()
                .map_or_else(|| "null".to_owned(), AudioSnapshot::to_json),
        )
    }
}

/// The `health` object of the status file: every key always there, `null` where the board has
/// no such source.
fn health_json(h: &Health) -> String {
    fn or_null<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or_else(|| "null".to_owned(), |v| v.to_string())
    }
    format!(
        "{{\"under_voltage\":{},\"throttled\":{},\"freq_capped\":{},\"soft_temp_limit\":{},\"firmware_flags\":{},\"temp_c\":{},\"wifi_interface\":{},\"wifi_link_quality\":{},\"wifi_signal_dbm\":{},\"wifi_power_save\":{},\"clock_synced\":{}}}",
        or_null(h.under_voltage()),
        or_null(h.throttled()),
        or_null(h.freq_capped()),
        or_null(h.soft_temp_limit()),
        or_null(h.firmware.map(|f| json_string(&f.to_string()))),
        or_null(h.temp_c().map(|t| format!("{t:.1}"))),
        or_null(h.wifi.map(|w| json_string(w.interface.as_str()))),
        or_null(h.wifi_link_quality()),
        or_null(h.wifi_signal_dbm()),
        or_null(h.wifi_power_save),
        or_null(h.clock_synced),
    )
}

pub(super) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
