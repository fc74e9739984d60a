//! The status as a Prometheus text file, for node_exporter's textfile collector
//! (`--collector.textfile.directory`): a fleet's cameras in the dashboards it already has, and
//! no listening socket on the board.
//!
//! Owns: the metric names and the text exposition format (version 0.0.4): a `# HELP` and a
//! `# TYPE` line per family, then its samples; label values escaped (`\`, `"`, line feed),
//! help text escaped (`\`, line feed). Names start with `campush_`; counters end in `_total`.
//!
//! Families:
//! - `campush_status{status}` (1 for the current one, 0 for the others: a state set),
//!   `campush_uptime_seconds`, `campush_bitrate_bits_per_second`,
//!   `campush_encoder_bitrate_bits_per_second` (while the adaptive bitrate adjusts the encoder);
//! - counters of the whole process: `campush_{frames_in,frames_sent,frames_dropped,bytes_sent,
//!   connects,reconnects,source_restarts}_total`;
//! - per destination, with the one label `destination` (the redacted URL, as in the status file
//!   and the log): `campush_destination_streaming` and `campush_destination_{connects,
//!   reconnects,frames_sent,bytes_sent}_total`; while it streams, its end-to-end backlog
//!   `campush_destination_backlog_seconds` (what is queued and on the way to the server: the
//!   lag a viewer has) and `campush_destination_backlog_estimate{estimate}` (a state set:
//!   `acks`, the server's RTMP acknowledgements, or `socket`, the socket's send queue); a
//!   destination that does not stream has neither series;
//! - board health, only where the board has the source (an absent source is an absent series,
//!   Prometheus's way of saying null): `campush_board_{under_voltage,throttled,freq_capped,
//!   soft_temp_limit,wifi_power_save,clock_synced}` (0 or 1), `campush_board_temperature_celsius`,
//!   `campush_board_wifi_signal_dbm`, `campush_board_wifi_link_quality`;
//! - a microphone, only where `[audio]` names one, with the one label `source`
//!   (`alsa:hw:1,0`): `campush_audio_capturing` (0 while it is opened again and silence is
//!   sent), `campush_audio_drift_ppm`, `campush_audio_offset_seconds`, and
//!   `campush_audio_{overruns,reopens,frames_lost}_total`.
//!
//! The file is replaced atomically (`write_atomically`), so the collector never reads half of
//! it; the collector adds its own `node_textfile_mtime_seconds`, which tells a stale file.

use std::fmt::{Display, Write as _};

use super::{BacklogEstimate, Snapshot, Status};

/// The backlog of each destination that streams: its length and the estimate that measures it.
fn backlogs(t: &mut Text, s: &Snapshot) {
    let streaming = || s.destinations.iter().filter_map(|d| Some((d, d.backlog?)));
    if streaming().next().is_none() {
        return;
    }
    let name = "campush_destination_backlog_seconds";
    t.family(
        name,
        "gauge",
        "End-to-end backlog behind the destination: media time queued and on the way to the server.",
    );
    for (d, b) in streaming() {
        let seconds = b.ms as f64 / 1000.0;
        t.sample(name, &[("destination", &d.label)], seconds);
    }
    let name = "campush_destination_backlog_estimate";
    t.family(
        name,
        "gauge",
        "How the backlog is measured: 1 for acks (the server's RTMP acknowledgements) or socket (the socket's send queue).",
    );
    for (d, b) in streaming() {
        for estimate in [BacklogEstimate::Acks, BacklogEstimate::Socket] {
            let labels = [
                ("destination", d.label.as_str()),
                ("estimate", estimate.name()),
            ];
            t.sample(name, &labels, u8::from(b.estimate == estimate));
        }
    }
}

/// Renders `s` in the text exposition format.
pub(super) fn render(s: &Snapshot) -> String {
    let mut t = Text(String::with_capacity(4096));
    t.family(
        "campush_status",
        "gauge",
        "What campush is doing: 1 for the current status, 0 for the others.",
    );
    for status in Status::ALL {
        t.sample(
            "campush_status",
            &[("status", status.name())],
            u8::from(status == s.status),
        );
    }
    t.family(
        "campush_uptime_seconds",
        "gauge",
        "Seconds since campush started.",
    );
    t.sample("campush_uptime_seconds", &[], s.uptime.as_secs());
    t.family(
        "campush_bitrate_bits_per_second",
        "gauge",
        "Bits per second sent, all destinations together, over the last few seconds.",
    );
    t.sample(
        "campush_bitrate_bits_per_second",
        &[],
        (s.bitrate_kbps * 1000.0).round(),
    );
    if let Some(kbps) = s.encoder_kbps {
        t.family(
            "campush_encoder_bitrate_bits_per_second",
            "gauge",
            "The video bitrate the encoder is set to by the adaptive bitrate.",
        );
        t.sample("campush_encoder_bitrate_bits_per_second", &[], kbps * 1000);
    }
    for (name, help, value) in [
        (
            "campush_frames_in_total",
            "Frames read from the source.",
            s.frames_in,
        ),
        (
            "campush_frames_sent_total",
            "Frames sent, all destinations together.",
            s.frames_sent,
        ),
        (
            "campush_frames_dropped_total",
            "Frames dropped (whole GOPs, when a destination is slower than the stream).",
            s.frames_dropped,
        ),
        (
            "campush_bytes_sent_total",
            "Bytes sent, all destinations together.",
            s.bytes_sent,
        ),
        (
            "campush_connects_total",
            "Connection attempts, all destinations together.",
            s.connects,
        ),
        (
            "campush_reconnects_total",
            "Reconnection attempts after a failure, all destinations together.",
            s.reconnects,
        ),
        (
            "campush_source_restarts_total",
            "Times the source's producer (the camera app) was started again after a failure.",
            s.source_restarts,
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &[], value);
    }
    if !s.destinations.is_empty() {
        t.family(
            "campush_destination_streaming",
            "gauge",
            "1 while the destination streams, else 0.",
        );
        for d in &s.destinations {
            t.sample(
                "campush_destination_streaming",
                &[("destination", &d.label)],
                u8::from(d.status == Status::Streaming),
            );
        }
        type Field = fn(&super::DestinationSnapshot) -> u64;
        let per_destination: [(&str, &str, Field); 4] = [
            (
                "campush_destination_connects_total",
                "Connection attempts to the destination.",
                |d| d.connects,
            ),
            (
                "campush_destination_reconnects_total",
                "Reconnection attempts to the destination after a failure.",
                |d| d.reconnects,
            ),
            (
                "campush_destination_frames_sent_total",
                "Frames sent to the destination.",
                |d| d.frames_sent,
            ),
            (
                "campush_destination_bytes_sent_total",
                "Bytes sent to the destination.",
                |d| d.bytes_sent,
            ),
        ];
        for (name, help, field) in per_destination {
            t.family(name, "counter", help);
            for d in &s.destinations {
                t.sample(name, &[("destination", &d.label)], field(d));
            }
        }
        backlogs(&mut t, s);
    }
    let h = &s.health;
    for (name, help, value) in [
        (
            "campush_board_under_voltage",
            "1 while the Raspberry Pi firmware reports under-voltage (get_throttled bit 0).",
            h.under_voltage(),
        ),
        (
            "campush_board_throttled",
            "1 while the Raspberry Pi firmware throttles the CPU (get_throttled bit 2).",
            h.throttled(),
        ),
        (
            "campush_board_freq_capped",
            "1 while the Raspberry Pi firmware caps the ARM frequency (get_throttled bit 1).",
            h.freq_capped(),
        ),
        (
            "campush_board_soft_temp_limit",
            "1 while the Raspberry Pi soft temperature limit is active (get_throttled bit 3).",
            h.soft_temp_limit(),
        ),
        (
            "campush_board_wifi_power_save",
            "1 while Wi-Fi power saving is on.",
            h.wifi_power_save,
        ),
        (
            "campush_board_clock_synced",
            "1 while the system clock is synchronised (adjtimex maxerror below 16 s).",
            h.clock_synced,
        ),
    ] {
        if let Some(on) = value {
            t.family(name, "gauge", help);
            t.sample(name, &[], u8::from(on));
        }
    }
    if let Some(c) = h.temp_c() {
        let name = "campush_board_temperature_celsius";
        t.family(name, "gauge", "SoC temperature in degrees Celsius.");
        t.sample(name, &[], c);
    }
    if let Some(dbm) = h.wifi_signal_dbm() {
        let name = "campush_board_wifi_signal_dbm";
        t.family(name, "gauge", "Wi-Fi signal level in dBm.");
        t.sample(name, &[], dbm);
    }
    if let Some(q) = h.wifi_link_quality() {
        let name = "campush_board_wifi_link_quality";
        t.family(
            name,
            "gauge",
            "Wi-Fi link quality as the driver rates it (0 to 70 for cfg80211 drivers).",
        );
        t.sample(name, &[], q);
    }
    if let Some(a) = &s.audio {
        microphone(&mut t, a);
    }
    t.0
}

/// The microphone, labelled by its source (`alsa:hw:1,0`): its state, the drift correction's
/// measurements, and what it lost.
fn microphone(t: &mut Text, a: &super::AudioSnapshot) {
    let source = [("source", a.source.as_str())];
    let name = "campush_audio_capturing";
    t.family(
        name,
        "gauge",
        "1 while the microphone is captured; 0 while it is opened (again) and silence is sent.",
    );
    t.sample(
        name,
        &source,
        u8::from(a.state == super::MicState::Capturing),
    );
    for (name, help, value) in [
        (
            "campush_audio_drift_ppm",
            "The microphone's sample clock against the video's capture clock, parts per million.",
            a.drift_ppm,
        ),
        (
            "campush_audio_offset_seconds",
            "The sound's timestamps minus its capture times (the drift correction holds it near 0).",
            a.offset_ms / 1000.0,
        ),
    ] {
        t.family(name, "gauge", help);
        t.sample(name, &source, value);
    }
    for (name, help, value) in [
        (
            "campush_audio_overruns_total",
            "Capture overruns: samples the device overwrote before they were read.",
            a.overruns,
        ),
        (
            "campush_audio_reopens_total",
            "Times the microphone was opened again after it went away or failed.",
            a.reopens,
        ),
        (
            "campush_audio_frames_lost_total",
            "Encoded audio frames a destination lost by falling behind.",
            a.frames_lost,
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &source, value);
    }
}

/// The text being written.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format wants it: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text as the format wants it: `\` as `\\`, a line feed as `\n`.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::health::{FirmwareFlags, Health};
    use crate::status::{Counters, SharedStatus, Status};

    fn sample_line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn counters_and_the_status_are_metric_families_with_help_and_type() {
        let status = SharedStatus::new();
        status.set_destinations(1)[0].set(Status::Streaming);
        Counters::add(&status.counters.frames_sent, 42);
        let text = status.to_prometheus(2512.5, Duration::from_secs(7));
        assert!(text.contains(
            "# HELP campush_frames_sent_total Frames sent, all destinations together.\n\
             # TYPE campush_frames_sent_total counter\n\
             campush_frames_sent_total 42\n"
        ));
        assert_eq!(
            sample_line(&text, "campush_status{status=\"streaming\"}"),
            Some("campush_status{status=\"streaming\"} 1")
        );
        assert_eq!(
            sample_line(&text, "campush_status{status=\"connecting\"}"),
            Some("campush_status{status=\"connecting\"} 0")
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("campush_status{"))
                .count(),
            Status::ALL.len()
        );
        assert_eq!(
            sample_line(&text, "campush_bitrate_bits_per_second "),
            Some("campush_bitrate_bits_per_second 2512500")
        );
        assert_eq!(
            sample_line(&text, "campush_uptime_seconds "),
            Some("campush_uptime_seconds 7")
        );
        // Every counter family ends in _total; every name starts with campush_.
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split(' ').skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(name.starts_with("campush_"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
        }
    }

    #[test]
    fn each_destination_has_its_own_series_labelled_by_its_redacted_url() {
        let status = SharedStatus::new();
        let d = status.set_destinations(3);
        d[0].set_label("rtmp://a.example:1935/live/<redacted>".into());
        d[1].set_label("rtmp://a.example:1935/live/<redacted>".into());
        d[2].set_label("rtmp://odd\"host\\:1935/a\nb/<redacted>".into());
        d[0].set(Status::Streaming);
        d[0].count_frame_sent();
        d[0].count_bytes_sent(1000);
        d[1].count_connect();
        d[1].count_reconnect();
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert_eq!(
            sample_line(&text, "campush_destination_streaming{destination=\"rtmp://a.example:1935/live/<redacted>\"}"),
            Some("campush_destination_streaming{destination=\"rtmp://a.example:1935/live/<redacted>\"} 1")
        );
        // The second destination on the same server and app gets a label of its own.
        assert_eq!(
            sample_line(&text, "campush_destination_reconnects_total{destination=\"rtmp://a.example:1935/live/<redacted> #2\"}"),
            Some("campush_destination_reconnects_total{destination=\"rtmp://a.example:1935/live/<redacted> #2\"} 1")
        );
        assert_eq!(
            sample_line(&text, "campush_destination_bytes_sent_total{destination=\"rtmp://a.example"),
            Some("campush_destination_bytes_sent_total{destination=\"rtmp://a.example:1935/live/<redacted>\"} 1000")
        );
        // Label values are escaped: backslash, double quote, line feed.
        assert!(
            text.contains(
                "campush_destination_streaming{destination=\"rtmp://odd\\\"host\\\\:1935/a\\nb/<redacted>\"} 0\n"
            ),
            "{text}"
        );
        // The totals still count every destination.
        assert_eq!(
            sample_line(&text, "campush_connects_total "),
            Some("campush_connects_total 1")
        );
    }

    #[test]
    fn a_streaming_destination_has_its_backlog_in_seconds_and_its_estimate_as_a_state_set() {
        let status = SharedStatus::new();
        let d = crate::status::destinations_on(&status, &["a", "b"]);
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert!(!text.contains("backlog"), "nobody streams: {text}");
        d[0].set_backlog(Some((2_345_000, crate::status::BacklogEstimate::Acks)));
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert!(
            text.contains(
                "# TYPE campush_destination_backlog_seconds gauge\n\
                 campush_destination_backlog_seconds{destination=\"rtmp://a:1935/live/<redacted>\"} 2.345\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE campush_destination_backlog_estimate gauge\n\
                 campush_destination_backlog_estimate{destination=\"rtmp://a:1935/live/<redacted>\",estimate=\"acks\"} 1\n\
                 campush_destination_backlog_estimate{destination=\"rtmp://a:1935/live/<redacted>\",estimate=\"socket\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("backlog_seconds{destination=\"rtmp://b"),
            "a destination that does not stream has no backlog series: {text}"
        );
    }

    #[test]
    fn a_microphone_has_its_state_drift_offset_and_counters_labelled_by_its_source() {
        let status = SharedStatus::new();
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert!(!text.contains("campush_audio"), "no microphone: {text}");
        let mic = status.set_audio(Some("alsa:hw:1,0".into()));
        mic.set_state(crate::status::MicState::Reopening);
        mic.set_drift(-101.5, 2_500.0);
        mic.reopens.store(4, std::sync::atomic::Ordering::Relaxed);
        let text = status.to_prometheus(0.0, Duration::ZERO);
        for want in [
            "# TYPE campush_audio_capturing gauge\ncampush_audio_capturing{source=\"alsa:hw:1,0\"} 0\n",
            "# TYPE campush_audio_drift_ppm gauge\ncampush_audio_drift_ppm{source=\"alsa:hw:1,0\"} -101.5\n",
            "# TYPE campush_audio_offset_seconds gauge\ncampush_audio_offset_seconds{source=\"alsa:hw:1,0\"} 0.0025\n",
            "# TYPE campush_audio_reopens_total counter\ncampush_audio_reopens_total{source=\"alsa:hw:1,0\"} 4\n",
            "campush_audio_overruns_total{source=\"alsa:hw:1,0\"} 0\n",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }

    #[test]
    fn board_health_is_there_where_the_board_has_it_and_absent_elsewhere() {
        let status = SharedStatus::new();
        let text = status.to_prometheus(0.0, Duration::ZERO);
        assert!(!text.contains("campush_board_"), "{text}");
        status.set_health(Health {
            firmware: Some(FirmwareFlags(0x50005)),
            temp_millicelsius: Some(61_250),
            clock_synced: Some(false),
            ..Health::default()
        });
        let text = status.to_prometheus(0.0, Duration::ZERO);
        for (prefix, line) in [
            (
                "campush_board_under_voltage ",
                "campush_board_under_voltage 1",
            ),
            ("campush_board_throttled ", "campush_board_throttled 1"),
            ("campush_board_freq_capped ", "campush_board_freq_capped 0"),
            (
                "campush_board_clock_synced ",
                "campush_board_clock_synced 0",
            ),
            (
                "campush_board_temperature_celsius ",
                "campush_board_temperature_celsius 61.25",
            ),
        ] {
            assert_eq!(sample_line(&text, prefix), Some(line), "{text}");
        }
        assert!(!text.contains("campush_board_wifi"), "no Wi-Fi, no series");
    }

    #[test]
    fn help_text_and_label_values_are_escaped_as_the_format_says() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("a\nb"), "a\\nb");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }
}
