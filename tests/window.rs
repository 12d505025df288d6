//! Drives the real window with `egui_kittest`: no GPU or display is needed.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use eframe::egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use sensor_emulator::app::{AppInit, SensorApp};
use sensor_emulator::paths::AppPaths;
use sensor_emulator::sensor::{Clock, TELEMETRY_TOPIC};
use sensor_emulator::settings::{Settings, SettingsStore};
use temperature_alert::AlertKind;

const TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Opens the app on a free broker port with its files in `dir`, publishing every 100 ms.
fn harness(runtime: &tokio::runtime::Runtime, dir: &Path) -> Harness<'static, SensorApp> {
    let mut settings = Settings::default();
    settings.sensor.interval_ms = 100;
    harness_with(runtime, dir, settings)
}

fn harness_with(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    settings: Settings,
) -> Harness<'static, SensorApp> {
    let paths = AppPaths::resolve(Some(dir)).expect("data folder paths");
    let init = AppInit {
        settings,
        store: SettingsStore::new(paths.settings_file.clone()),
        notices: Vec::new(),
        paths,
        runtime: runtime.handle().clone(),
        clock: Clock::system(),
        broker_port: Some(0),
    };
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| SensorApp::new(&cc.egui_ctx, init))
}

/// Steps the app until `done` holds, failing after [`TIMEOUT`].
fn step_until(
    harness: &mut Harness<'_, SensorApp>,
    what: &str,
    done: impl Fn(&Harness<'_, SensorApp>) -> bool,
) {
    let started = Instant::now();
    while !done(harness) {
        assert!(
            started.elapsed() < TIMEOUT,
            "{what} not seen within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
}

#[test]
fn spike_button_shows_alert_row() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(&runtime, dir.path());
    harness.step();
    assert!(harness.query_by_label("raised").is_none());

    harness.get_by_label("Spike").click();
    step_until(&mut harness, "alert row", |h| {
        h.query_by_label("raised").is_some()
    });
    let newest = harness.state().alerts().next().expect("alert listed");
    assert_eq!(newest.kind, AlertKind::Raised);
    assert!(newest.temperature > 35.0);
    assert!(harness.state().readings_sent() > 0);
}

#[test]
fn keys_pause_and_spike() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(&runtime, dir.path());
    step_until(&mut harness, "first reading", |h| {
        h.state().readings_sent() > 0
    });

    harness.key_press(egui::Key::Space);
    step_until(&mut harness, "Resume button", |h| {
        h.query_by_label("Resume").is_some()
    });
    assert!(harness.query_by_label("Paused (Space resumes)").is_some());
    let paused_at = harness.state().readings_sent();
    harness.key_press(egui::Key::Space);
    step_until(&mut harness, "Pause button", |h| {
        h.query_by_label("Pause").is_some()
    });
    step_until(&mut harness, "readings after resume", |h| {
        h.state().readings_sent() > paused_at
    });

    harness.key_press(egui::Key::S);
    step_until(&mut harness, "alert row", |h| {
        h.query_by_label("raised").is_some()
    });
}

#[test]
fn profile_switches_without_restart() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    // A second embedded broker stands in for a custom MQTT broker.
    let other =
        sensor_emulator::local_cloud::broker::start("127.0.0.1".parse().unwrap(), 0).unwrap();
    let (readings_tx, readings_rx) = std::sync::mpsc::channel();
    let mut options =
        rumqttc::MqttOptions::new("custom-broker-watcher", "127.0.0.1", other.addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (watcher, mut connection) = rumqttc::Client::new(options, 16);
    watcher
        .subscribe(TELEMETRY_TOPIC, rumqttc::QoS::AtLeastOnce)
        .unwrap();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    if readings_tx.send(publish.payload.to_vec()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });

    let mut settings = Settings::default();
    settings.sensor.interval_ms = 100;
    settings.custom.host = "127.0.0.1".to_owned();
    settings.custom.port = other.addr.port();
    let mut harness = harness_with(&runtime, dir.path(), settings);
    step_until(&mut harness, "local broker", |h| {
        h.query_by_label_contains("Broker mqtt://").is_some()
    });

    harness
        .get_by_role_and_label(Role::ComboBox, "Profile")
        .click();
    harness.run_steps(2);
    harness.get_by_label("Custom MQTT broker").click();
    let address = format!("127.0.0.1:{}", other.addr.port());
    step_until(&mut harness, "custom profile address", |h| {
        h.query_all_by_label_contains(&address).next().is_some()
    });
    // Readings now reach the other broker.
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < TIMEOUT,
            "no reading on the custom broker"
        );
        harness.step();
        if let Ok(payload) = readings_rx.recv_timeout(Duration::from_millis(50)) {
            let reading: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert!(reading["seq"].as_u64().is_some(), "{reading}");
            break;
        }
    }

    harness
        .get_by_role_and_label(Role::ComboBox, "Profile")
        .click();
    harness.run_steps(2);
    harness.get_by_label("Local").click();
    step_until(&mut harness, "local broker again", |h| {
        h.query_by_label_contains("Broker mqtt://").is_some()
    });
    assert!(
        harness
            .query_all_by_label_contains(&address)
            .next()
            .is_none()
    );
}

#[test]
fn idle_frames_change_no_settings() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(&runtime, dir.path());
    // Widgets that rewrite their value on every frame would mark the settings changed
    // and send the sensor an update each frame.
    harness.run_steps(5);
    assert!(!harness.state().has_unsaved_settings());
}
