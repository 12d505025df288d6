//! Table-driven tests of the alert policy.

use time::Duration;
use time::macros::datetime;

use super::*;

const START: OffsetDateTime = datetime!(2026-12-04 10:00:00 UTC);

/// Feeds one reading per second and returns the decisions other than `Unchanged`, with
/// the index of the reading that caused each.
fn run(config: PolicyConfig, temperatures: &[f64]) -> Vec<(usize, Decision)> {
    let policy = Policy::new(config);
    let mut state = AlarmState::default();
    let mut decisions = Vec::new();
    for (index, &temperature) in temperatures.iter().enumerate() {
        let at = START + Duration::seconds(index as i64);
        let (decision, next) = policy.decide(&state, temperature, at);
        state = next;
        if decision != Decision::Unchanged {
            decisions.push((index, decision));
        }
    }
    decisions
}

/// A deterministic ±`amplitude` wobble around `center`, like sensor noise.
fn flapping(center: f64, amplitude: f64, count: usize) -> Vec<f64> {
    (0..count)
        .map(|i| {
            let phase = (i * 7919 % 101) as f64 / 100.0;
            center + amplitude * (2.0 * phase - 1.0)
        })
        .collect()
}

#[test]
fn policy_table() {
    use Decision::{Cleared, Raised, Reminder};
    let once = PolicyConfig::default();
    let every = PolicyConfig {
        mode: AlertMode::Every,
        ..once
    };
    let debounce3 = PolicyConfig {
        debounce: 3,
        ..once
    };
    let cooldown5 = PolicyConfig {
        cooldown_seconds: 5,
        ..once
    };
    let cases: Vec<(&str, PolicyConfig, Vec<f64>, Vec<(usize, Decision)>)> = vec![
        ("below threshold", once, vec![30.0, 34.9, 35.0], vec![]),
        (
            "exactly threshold is not hot",
            once,
            vec![35.0, 35.0],
            vec![],
        ),
        (
            "tutorial events",
            once,
            vec![30.0, 40.0, 40.0],
            vec![(1, Raised)],
        ),
        (
            "tutorial events every",
            every,
            vec![30.0, 40.0, 40.0],
            vec![(1, Raised), (2, Raised)],
        ),
        (
            "clear needs clear level",
            once,
            vec![36.0, 34.5, 34.01, 34.0],
            vec![(0, Raised), (3, Cleared)],
        ),
        (
            "every never clears",
            every,
            vec![36.0, 20.0],
            vec![(0, Raised)],
        ),
        (
            "second excursion",
            once,
            vec![36.0, 30.0, 36.0],
            vec![(0, Raised), (1, Cleared), (2, Raised)],
        ),
        (
            "debounce waits",
            debounce3,
            vec![36.0, 36.0, 30.0, 36.0, 36.0, 36.0],
            vec![(5, Raised)],
        ),
        (
            "debounce resets below",
            debounce3,
            vec![36.0, 36.0, 35.0, 36.0],
            vec![],
        ),
        (
            "reminders per cooldown",
            cooldown5,
            vec![36.0; 12],
            vec![(0, Raised), (5, Reminder), (10, Reminder)],
        ),
        (
            "no reminder after clear",
            cooldown5,
            vec![36.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0],
            vec![(0, Raised), (1, Cleared)],
        ),
    ];
    for (name, config, temperatures, expected) in cases {
        assert_eq!(run(config, &temperatures), expected, "case: {name}");
    }
}

#[test]
fn flapping_noise_raises_once() {
    let readings = flapping(35.0, 0.5, 60);
    assert_eq!(readings.len(), 60);
    assert!(
        readings.iter().any(|&t| t > 35.0),
        "noise must cross the threshold"
    );
    assert!(
        readings.iter().any(|&t| t <= 35.0),
        "noise must fall back below it"
    );
    let decisions = run(PolicyConfig::default(), &readings);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0].1, Decision::Raised);
}

#[test]
fn flapping_noise_every_mode_sends_per_hot_reading() {
    let readings = flapping(35.0, 0.5, 60);
    let hot = readings.iter().filter(|&&t| t > 35.0).count();
    let config = PolicyConfig {
        mode: AlertMode::Every,
        ..PolicyConfig::default()
    };
    let decisions = run(config, &readings);
    assert_eq!(decisions.len(), hot);
    assert!(decisions.iter().all(|(_, d)| *d == Decision::Raised));
}

#[test]
fn long_excursion_reminds_per_cooldown() {
    // Ten minutes hot at one reading a second, with a two-minute cooldown.
    let config = PolicyConfig {
        cooldown_seconds: 120,
        ..PolicyConfig::default()
    };
    let mut readings = vec![38.0; 600];
    readings.push(20.0);
    let decisions = run(config, &readings);
    let expected = vec![
        (0, Decision::Raised),
        (120, Decision::Reminder),
        (240, Decision::Reminder),
        (360, Decision::Reminder),
        (480, Decision::Reminder),
        (600, Decision::Cleared),
    ];
    assert_eq!(decisions, expected);
}

#[test]
fn long_excursion_without_cooldown_raises_once() {
    let config = PolicyConfig {
        cooldown_seconds: 0,
        ..PolicyConfig::default()
    };
    let decisions = run(config, &vec![38.0; 900]);
    assert_eq!(decisions, vec![(0, Decision::Raised)]);
}

#[test]
fn config_from_env_defaults_and_values() {
    let config = PolicyConfig::from_env(|_| None).unwrap();
    assert_eq!(config, PolicyConfig::default());

    let vars = [
        ("TEMPERATURE_THRESHOLD", "30.5"),
        ("ALERT_HYSTERESIS", "2"),
        ("ALERT_DEBOUNCE", "3"),
        ("ALERT_COOLDOWN_SECONDS", "0"),
        ("ALERT_MODE", "every"),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let config = PolicyConfig::from_env(lookup).unwrap();
    assert_eq!(config.threshold, 30.5);
    assert_eq!(config.hysteresis, 2.0);
    assert_eq!(config.debounce, 3);
    assert_eq!(config.cooldown_seconds, 0);
    assert_eq!(config.mode, AlertMode::Every);
    assert_eq!(config.clear_level(), 28.5);
}

#[test]
fn config_from_env_names_bad_variable() {
    let cases = [
        (
            "TEMPERATURE_THRESHOLD",
            "hot",
            "TEMPERATURE_THRESHOLD=\"hot\" is invalid",
        ),
        (
            "TEMPERATURE_THRESHOLD",
            "NaN",
            "TEMPERATURE_THRESHOLD=\"NaN\" is invalid",
        ),
        (
            "ALERT_HYSTERESIS",
            "-1",
            "ALERT_HYSTERESIS=\"-1\" is invalid",
        ),
        ("ALERT_DEBOUNCE", "0", "ALERT_DEBOUNCE=\"0\" is invalid"),
        ("ALERT_DEBOUNCE", "1.5", "ALERT_DEBOUNCE=\"1.5\" is invalid"),
        (
            "ALERT_COOLDOWN_SECONDS",
            "-5",
            "ALERT_COOLDOWN_SECONDS=\"-5\" is invalid",
        ),
        (
            "ALERT_MODE",
            "sometimes",
            "ALERT_MODE=\"sometimes\" is invalid",
        ),
    ];
    for (name, value, expected) in cases {
        let error = PolicyConfig::from_env(|n| (n == name).then(|| value.to_owned())).unwrap_err();
        assert!(
            error.to_string().starts_with(expected),
            "{name}={value}: {error}"
        );
    }
}

fn event(device: &str, temperature: f64, seq: u64, second: i64) -> ReadingEvent {
    let at = START + Duration::seconds(second);
    ReadingEvent {
        device_id: device.into(),
        temperature,
        seq: Some(seq),
        session: None,
        timestamp: Some(format_timestamp(at)),
        event_time: Some(at),
    }
}

#[test]
fn monitor_keeps_devices_apart() {
    let mut monitor = Monitor::new(PolicyConfig::default(), AlertSource::Local);
    let (decision, alert) = monitor.observe(&event("a", 36.0, 1, 0), START);
    assert_eq!(decision, Decision::Raised);
    let alert = alert.unwrap();
    assert_eq!(alert.device_id, "a");
    assert_eq!(alert.reading_seq, Some(1));
    assert_eq!(alert.clear_level, 34.0);
    assert_eq!(
        monitor.observe(&event("b", 30.0, 1, 0), START).0,
        Decision::Unchanged
    );
    assert_eq!(
        monitor.observe(&event("b", 36.0, 2, 1), START).0,
        Decision::Raised
    );
    assert_eq!(
        monitor.observe(&event("a", 30.0, 2, 1), START).0,
        Decision::Cleared
    );
    assert!(monitor.state("b").unwrap().raised);
    assert!(!monitor.state("a").unwrap().raised);
}

#[test]
fn monitor_uses_event_time_for_cooldown() {
    let config = PolicyConfig {
        cooldown_seconds: 60,
        ..PolicyConfig::default()
    };
    let mut monitor = Monitor::new(config, AlertSource::Local);
    // A backlog replayed within one second of arrival still spaces reminders by event time.
    let arrival = START + Duration::hours(1);
    let kinds: Vec<_> = (0..=130)
        .filter_map(|second| {
            monitor
                .observe(&event("a", 37.0, second as u64, second), arrival)
                .1
        })
        .map(|alert| (alert.kind, alert.reading_seq))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (AlertKind::Raised, Some(0)),
            (AlertKind::Reminder, Some(60)),
            (AlertKind::Reminder, Some(120)),
        ]
    );
}

#[test]
fn monitor_restore_continues_excursion() {
    let mut first = Monitor::new(PolicyConfig::default(), AlertSource::Local);
    let raised = first.observe(&event("a", 36.0, 1, 0), START).1.unwrap();

    let mut restarted = Monitor::new(PolicyConfig::default(), AlertSource::Local);
    restarted.restore(&raised);
    assert_eq!(
        restarted.observe(&event("a", 36.5, 2, 1), START).0,
        Decision::Unchanged
    );
    let cleared = restarted.observe(&event("a", 30.0, 3, 2), START).1.unwrap();
    assert_eq!(cleared.kind, AlertKind::Cleared);

    let mut again = Monitor::new(PolicyConfig::default(), AlertSource::Local);
    again.restore(&raised);
    again.restore(&cleared);
    assert_eq!(
        again.observe(&event("a", 36.0, 4, 3), START).0,
        Decision::Raised
    );
}

#[test]
fn monitor_without_timestamp_uses_arrival() {
    let config = PolicyConfig {
        cooldown_seconds: 10,
        ..PolicyConfig::default()
    };
    let mut monitor = Monitor::new(config, AlertSource::Local);
    let tutorial = parse_event(&serde_json::json!({"temperature": "40"})).unwrap();
    assert_eq!(monitor.observe(&tutorial, START).0, Decision::Raised);
    assert_eq!(
        monitor.observe(&tutorial, START + Duration::seconds(5)).0,
        Decision::Unchanged
    );
    assert_eq!(
        monitor.observe(&tutorial, START + Duration::seconds(10)).0,
        Decision::Reminder
    );
    assert!(monitor.state(UNKNOWN_DEVICE).unwrap().raised);
}
