//! Board health from fake sysfs and proc trees (the files as the kernel writes them), the
//! parsers byte by byte, and the start and clear of each condition.

use std::path::Path;

use super::sampler::{Sampler, System};
use super::*;

/// The header of `/proc/net/wireless` (net/wireless/wext-proc.c, WIRELESS_EXT 22).
const WIRELESS_HEADER: &str = "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n";

/// One interface's line, printed as `wireless_seq_printf_stats` prints it:
/// `"%6s: %04x  %3d%c  %3d%c  %3d%c  %6d %6d %6d %6d %6d   %6d\n"`.
fn wireless_line(name: &str, quality: (i32, bool), level: (i32, bool), noise: i32) -> String {
    let mark = |updated: bool| if updated { '.' } else { ' ' };
    format!(
        "{name:>6}: {:04x}  {:>3}{}  {:>3}{}  {:>3}{}  {:>6} {:>6} {:>6} {:>6} {:>6}   {:>6}\n",
        0,
        quality.0,
        mark(quality.1),
        level.0,
        mark(level.1),
        noise,
        ' ',
        0,
        0,
        0,
        0,
        260,
        0
    )
}

/// A cfg80211 station associated at `dbm`: quality = dbm + 110 clamped to 0..=70, level printed
/// as level - 256 with the dBm flag (`cfg80211_wireless_stats`), noise invalid (0 - 256).
fn associated(name: &str, dbm: i32) -> String {
    wireless_line(name, ((dbm + 110).clamp(0, 70), true), (dbm, true), -256)
}

/// A fake board below a temporary root.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }

    fn write(&self, rel: &str, text: &str) -> &Tree {
        let path = self.0.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn firmware(&self, flags: &str) -> &Tree {
        self.write("sys/devices/platform/soc/soc:firmware/get_throttled", flags)
    }

    fn zone(&self, n: u32, kind: &str, millicelsius: i32) -> &Tree {
        self.write(
            &format!("sys/class/thermal/thermal_zone{n}/type"),
            &format!("{kind}\n"),
        )
        .write(
            &format!("sys/class/thermal/thermal_zone{n}/temp"),
            &format!("{millicelsius}\n"),
        )
    }

    fn wireless(&self, lines: &str) -> &Tree {
        self.write("proc/net/wireless", &format!("{WIRELESS_HEADER}{lines}"))
    }

    fn root(&self) -> &Path {
        self.0.path()
    }
}

/// What the system answers: fixed values.
struct Answers {
    clock_synced: Option<bool>,
    power_save: Option<bool>,
}

impl System for Answers {
    fn clock_synced(&mut self) -> Option<bool> {
        self.clock_synced
    }
    fn wifi_power_save(&mut self, interface: &str) -> Option<bool> {
        assert_eq!(
            interface, "wlan0",
            "power saving is asked of the listed interface"
        );
        self.power_save
    }
}

fn sample(tree: &Tree, clock_synced: Option<bool>, power_save: Option<bool>) -> Health {
    Sampler::new(
        tree.root(),
        Box::new(Answers {
            clock_synced,
            power_save,
        }),
    )
    .sample()
}

fn healthy_pi() -> Tree {
    let t = Tree::new();
    t.firmware("0\n")
        .zone(0, "cpu-thermal", 48_312)
        .wireless(&associated("wlan0", -58));
    t
}

#[test]
fn a_healthy_pi_reads_as_healthy_with_its_temperature_and_signal() {
    let h = sample(&healthy_pi(), Some(true), Some(false));
    assert_eq!(h.under_voltage(), Some(false));
    assert_eq!(h.throttled(), Some(false));
    assert_eq!(h.freq_capped(), Some(false));
    assert_eq!(h.soft_temp_limit(), Some(false));
    assert_eq!(h.temp_millicelsius, Some(48_312));
    assert_eq!(h.wifi_signal_dbm(), Some(-58));
    assert_eq!(h.wifi_link_quality(), Some(52));
    assert_eq!(h.wifi_power_save, Some(false));
    assert_eq!(h.clock_synced, Some(true));
    assert_eq!(h.summary().as_deref(), Some("48.3 °C, Wi-Fi -58 dBm"));
    let mut conditions = Conditions::default();
    assert_eq!(conditions.update(&h).count(), 0, "nothing to warn about");
}

#[test]
fn an_under_voltage_pi_reads_its_now_bits_and_keeps_the_raw_flags() {
    let t = healthy_pi();
    // Under-voltage and throttled now, both also "has occurred" (vcgencmd: throttled=0x50005).
    t.firmware("50005\n");
    let h = sample(&t, Some(true), Some(false));
    assert_eq!(h.under_voltage(), Some(true));
    assert_eq!(h.throttled(), Some(true));
    assert_eq!(h.freq_capped(), Some(false));
    assert_eq!(h.firmware, Some(FirmwareFlags(0x50005)));
    assert_eq!(h.firmware.unwrap().occurred(), FirmwareFlags(0x5));
    assert_eq!(h.firmware.unwrap().to_string(), "0x50005");
    assert_eq!(
        h.summary().as_deref(),
        Some("under-voltage, throttled, 48.3 °C, Wi-Fi -58 dBm")
    );
}

#[test]
fn a_hot_zero_2_w_is_capped_throttled_at_its_soft_limit_and_hot() {
    let t = Tree::new();
    // A Zero 2 W in a closed case: everything but under-voltage, now and since the last poll.
    t.firmware("e000e\n")
        .zone(0, "cpu-thermal", 82_300)
        .wireless(&associated("wlan0", -67));
    let h = sample(&t, Some(true), Some(true));
    assert_eq!(h.under_voltage(), Some(false));
    assert_eq!(h.throttled(), Some(true));
    assert_eq!(h.freq_capped(), Some(true));
    assert_eq!(h.soft_temp_limit(), Some(true));
    assert_eq!(h.temp_c(), Some(82.3));
    let mut conditions = Conditions::default();
    let started: Vec<Change> = conditions.update(&h).collect();
    assert_eq!(
        started,
        [
            Change::Started(Condition::Throttled),
            Change::Started(Condition::FreqCapped),
            Change::Started(Condition::SoftTempLimit),
            Change::Started(Condition::Hot),
            Change::Started(Condition::WifiPowerSave),
        ]
    );
    let hot = Change::Started(Condition::Hot).message(&h);
    assert!(hot.contains("82.3 °C"), "{hot}");
    let power_save = Change::Started(Condition::WifiPowerSave).message(&h);
    assert!(
        power_save.contains("iw dev wlan0 set power_save off"),
        "{power_save}"
    );
}

#[test]
fn a_board_without_wifi_has_no_signal_and_no_power_saving() {
    // The statistics file with its header only (wireless extensions, no wireless interface).
    let t = Tree::new();
    t.firmware("0\n")
        .zone(0, "cpu-thermal", 45_000)
        .wireless("");
    let h = sample(&t, Some(true), Some(true));
    assert_eq!(h.wifi, None);
    assert_eq!(h.wifi_signal_dbm(), None);
    assert_eq!(h.wifi_power_save, None, "not asked without an interface");
    // No statistics file at all (no wireless extensions in the kernel).
    let t = Tree::new();
    t.firmware("0\n").zone(0, "cpu-thermal", 45_000);
    assert_eq!(sample(&t, Some(true), Some(true)).wifi, None);
}

#[test]
fn a_board_without_a_firmware_node_has_no_firmware_flags_and_picks_the_first_zone() {
    // An x86 machine: no Raspberry Pi firmware, ACPI and package thermal zones, wired network.
    let t = Tree::new();
    t.zone(0, "acpitz", 27_800).zone(1, "x86_pkg_temp", 51_000);
    let h = sample(&t, Some(true), None);
    assert_eq!(h.firmware, None);
    assert_eq!(h.under_voltage(), None);
    assert_eq!(h.throttled(), None);
    assert_eq!(h.temp_millicelsius, Some(27_800));
    assert_eq!(h.wifi, None);
    assert_eq!(h.summary().as_deref(), Some("27.8 °C"));
    // Nothing at all: every source absent, every value None, no summary, no error.
    let h = sample(&Tree::new(), None, None);
    assert_eq!(h, Health::default());
    assert_eq!(h.summary(), None);
}

#[test]
fn the_cpu_thermal_zone_wins_over_lower_numbered_ones() {
    let t = Tree::new();
    t.zone(0, "gpu-thermal", 40_000)
        .zone(1, "cpu-thermal", 55_500)
        .zone(10, "other", 1_000);
    assert_eq!(sample(&t, None, None).temp_millicelsius, Some(55_500));
}

#[test]
fn the_firmware_node_is_found_through_its_driver_when_it_lives_elsewhere() {
    // A device tree whose firmware node is not under soc/ (the path differs between boards).
    let t = Tree::new();
    t.write(
        "sys/bus/platform/drivers/raspberrypi-firmware/soc@107c000000:firmware/get_throttled",
        "8\n",
    );
    let h = sample(&t, None, None);
    assert_eq!(h.soft_temp_limit(), Some(true));
}

#[test]
fn wifi_statistics_are_read_where_a_pid_only_proc_shows_them() {
    // systemd's ProcSubset=pid hides /proc/net; /proc/self/net stays.
    let t = Tree::new();
    t.write(
        "proc/self/net/wireless",
        &format!("{WIRELESS_HEADER}{}", associated("wlan0", -71)),
    );
    assert_eq!(sample(&t, None, None).wifi_signal_dbm(), Some(-71));
}

#[test]
fn a_source_that_changes_is_read_again_at_every_sample() {
    let t = healthy_pi();
    let mut sampler = Sampler::new(
        t.root(),
        Box::new(Answers {
            clock_synced: Some(true),
            power_save: Some(false),
        }),
    );
    assert_eq!(sampler.sample().under_voltage(), Some(false));
    t.firmware("1\n").zone(0, "cpu-thermal", 60_000);
    let h = sampler.sample();
    assert_eq!(h.under_voltage(), Some(true));
    assert_eq!(h.temp_millicelsius, Some(60_000));
    assert!(
        sampler.describe().contains("cpu-thermal"),
        "{}",
        sampler.describe()
    );
}

#[test]
fn get_throttled_parses_as_the_kernel_and_vcgencmd_write_it() {
    for (text, flags) in [
        (&b"0\n"[..], Some(0)),
        (b"50005\n", Some(0x50005)),
        (b"e000e", Some(0xe000e)),
        (b"0x50000\n", Some(0x50000)),
        (b"throttled=0x80008\n", Some(0x80008)),
        (b"  4  \n", Some(4)),
        (b"", None),
        (b"\n", None),
        (b"0x", None),
        (b"zz\n", None),
        (b"123456789\n", None),
        (b"-1\n", None),
        (b"\xff\n", None),
    ] {
        assert_eq!(
            parse_throttled(text),
            flags.map(FirmwareFlags),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn thermal_temperatures_parse_in_millidegrees_within_what_a_soc_can_reach() {
    for (text, value) in [
        (&b"48312\n"[..], Some(48_312)),
        (b"-5000\n", Some(-5_000)),
        (b"0\n", Some(0)),
        (b"200000\n", Some(200_000)),
        (b"-274000\n", None),
        (b"250000\n", None),
        (b"hot\n", None),
        (b"", None),
    ] {
        assert_eq!(
            parse_millicelsius(text),
            value,
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
}

#[test]
fn wireless_statistics_give_the_associated_interface_and_nothing_for_idle_ones() {
    // Associated at -58 dBm: quality 52 of 70.
    let w = parse_wireless(format!("{WIRELESS_HEADER}{}", associated("wlan0", -58)).as_bytes())
        .unwrap();
    assert_eq!(w.interface.as_str(), "wlan0");
    assert_eq!((w.link_quality, w.signal_dbm), (Some(52), Some(-58)));
    // Not associated: listed with zeros and no markers (the kernel's nullstats).
    let idle = wireless_line("wlan0", (0, false), (0, false), 0);
    let w = parse_wireless(format!("{WIRELESS_HEADER}{idle}").as_bytes()).unwrap();
    assert_eq!((w.link_quality, w.signal_dbm), (None, None));
    // Two interfaces: the associated one, wherever it is listed.
    let idle0 = wireless_line("wlan0", (0, false), (0, false), 0);
    let text = format!("{WIRELESS_HEADER}{idle0}{}", associated("wlan1", -80));
    let w = parse_wireless(text.as_bytes()).unwrap();
    assert_eq!((w.interface.as_str(), w.signal_dbm), ("wlan1", Some(-80)));
    // A name longer than the six columns printf pads to.
    let text = format!("{WIRELESS_HEADER}{}", associated("wlx00c0ca123456", -44));
    let w = parse_wireless(text.as_bytes()).unwrap();
    assert_eq!(
        (w.interface.as_str(), w.link_quality),
        ("wlx00c0ca123456", Some(66))
    );
    // A driver without dBm (signal type "unspecified"): quality only.
    let unspec = wireless_line("wlan0", (40, true), (40, true), 0);
    let w = parse_wireless(format!("{WIRELESS_HEADER}{unspec}").as_bytes()).unwrap();
    assert_eq!((w.link_quality, w.signal_dbm), (Some(40), None));
    // Headers only, nothing, or not the format: no Wi-Fi.
    assert_eq!(parse_wireless(WIRELESS_HEADER.as_bytes()), None);
    assert_eq!(parse_wireless(b""), None);
    assert_eq!(parse_wireless(b"wlan0: garbage\n"), None);
    assert_eq!(parse_wireless(b"\xff\xfe"), None);
}

#[test]
fn a_condition_is_logged_once_when_it_starts_and_once_when_it_clears() {
    let healthy = Health {
        firmware: Some(FirmwareFlags(0)),
        clock_synced: Some(true),
        ..Health::default()
    };
    let under = Health {
        firmware: Some(FirmwareFlags(0x50005)),
        ..healthy
    };
    let mut conditions = Conditions::default();
    let changes = |c: &mut Conditions, h: &Health| c.update(h).collect::<Vec<_>>();
    assert_eq!(
        changes(&mut conditions, &under),
        [
            Change::Started(Condition::UnderVoltage),
            Change::Started(Condition::Throttled)
        ]
    );
    // Going on: no line per sample.
    for _ in 0..10 {
        assert_eq!(changes(&mut conditions, &under), []);
    }
    // A flapping supply: a few clear samples, then under-voltage again, is still one episode.
    for _ in 0..CLEAR_AFTER_SAMPLES - 1 {
        assert_eq!(changes(&mut conditions, &healthy), []);
    }
    assert_eq!(changes(&mut conditions, &under), []);
    assert!(conditions.is_on(Condition::UnderVoltage));
    // Clear for long enough: one line each.
    for _ in 0..CLEAR_AFTER_SAMPLES - 1 {
        assert_eq!(changes(&mut conditions, &healthy), []);
    }
    assert_eq!(
        changes(&mut conditions, &healthy),
        [
            Change::Cleared(Condition::UnderVoltage),
            Change::Cleared(Condition::Throttled)
        ]
    );
    assert!(!conditions.is_on(Condition::UnderVoltage));
    assert_eq!(changes(&mut conditions, &healthy), []);
    let start = Change::Started(Condition::UnderVoltage).message(&under);
    assert!(
        start.contains("under-voltage") && start.contains("0x50005") && start.contains("supply"),
        "{start}"
    );
    assert_eq!(
        Change::Cleared(Condition::UnderVoltage).message(&healthy),
        "board: under-voltage has cleared"
    );
}

#[test]
fn heat_and_a_weak_signal_clear_only_past_their_hysteresis() {
    let at = |millicelsius: i32, dbm: i16| Health {
        temp_millicelsius: Some(millicelsius),
        wifi: Some(Wifi {
            interface: Interface::new("wlan0").unwrap(),
            link_quality: Some(30),
            signal_dbm: Some(dbm),
        }),
        ..Health::default()
    };
    let mut conditions = Conditions::default();
    assert_eq!(conditions.update(&at(79_900, -74)).count(), 0);
    assert_eq!(
        conditions.update(&at(80_000, -75)).collect::<Vec<_>>(),
        [
            Change::Started(Condition::Hot),
            Change::Started(Condition::WeakWifi)
        ]
    );
    // Between the thresholds: still on, however long.
    for _ in 0..3 * CLEAR_AFTER_SAMPLES {
        assert_eq!(conditions.update(&at(76_000, -72)).count(), 0);
    }
    assert!(conditions.is_on(Condition::Hot) && conditions.is_on(Condition::WeakWifi));
    let cleared: Vec<Change> = (0..CLEAR_AFTER_SAMPLES)
        .flat_map(|_| conditions.update(&at(74_000, -65)).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        cleared,
        [
            Change::Cleared(Condition::Hot),
            Change::Cleared(Condition::WeakWifi)
        ]
    );
    let weak = Change::Started(Condition::WeakWifi).message(&at(80_000, -78));
    assert!(weak.contains("wlan0: -78 dBm"), "{weak}");
    assert_eq!(
        Change::Cleared(Condition::WeakWifi).message(&at(74_000, -65)),
        "board: weak Wi-Fi has cleared (-65 dBm)"
    );
}

#[test]
fn an_unsynchronised_clock_is_a_condition_and_an_unknown_one_is_not() {
    let mut conditions = Conditions::default();
    let unknown = Health::default();
    assert_eq!(conditions.update(&unknown).count(), 0);
    let unsynced = Health {
        clock_synced: Some(false),
        ..Health::default()
    };
    let started: Vec<Change> = conditions.update(&unsynced).collect();
    assert_eq!(started, [Change::Started(Condition::ClockUnsynchronised)]);
    assert!(started[0].message(&unsynced).contains("TLS certificates"));
    assert_eq!(
        unsynced.summary().as_deref(),
        Some("clock not synchronised")
    );
}

#[test]
fn interface_names_are_what_the_kernel_allows() {
    assert_eq!(Interface::new("wlan0").unwrap().as_str(), "wlan0");
    assert_eq!(
        Interface::new("wlx00c0ca123456").unwrap().to_string(),
        "wlx00c0ca123456"
    );
    for bad in ["", "sixteen-chars-xx", "a/b", "a:b", "a b"] {
        assert_eq!(Interface::new(bad), None, "{bad:?}");
    }
}

#[test]
fn the_live_system_answers_without_failing() {
    // On any machine: the clock question gets an answer or None (a seccomp filter), and an
    // interface that does not exist has no power-saving state.
    let mut live = sampler::Live::default();
    let _ = live.clock_synced();
    assert_eq!(live.wifi_power_save("campushnone0"), None);
}
