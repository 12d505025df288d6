//! Drives the real window with `egui_kittest`: no GPU or display is needed.

use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use sensor_emulator::app::{AppInit, SensorApp};
use sensor_emulator::paths::AppPaths;
use sensor_emulator::sensor::Clock;
use sensor_emulator::settings::{Settings, SettingsStore};
use temperature_alert::AlertKind;

const TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Opens the app on a free broker port with its files in `dir`, publishing every 100 ms.
fn harness(runtime: &tokio::runtime::Runtime, dir: &Path) -> Harness<'static, SensorApp> {
    let paths = AppPaths::resolve(Some(dir)).unwrap();
    let mut settings = Settings::default();
    settings.sensor.interval_ms = 100;
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
