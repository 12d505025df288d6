//! Drives the real window with `egui_kittest`: no GPU or display is needed.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use sensor_emulator::app::{AppInit, SensorApp};
use sensor_emulator::paths::AppPaths;
use sensor_emulator::sensor::Clock;
use sensor_emulator::settings::{Settings, SettingsStore};
use temperature_alert::AlertKind;

const TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn spike_button_shows_alert_row() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths::resolve(Some(dir.path())).unwrap();
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
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_eframe(|cc| SensorApp::new(&cc.egui_ctx, init));
    harness.step();
    assert!(harness.query_by_label("raised").is_none());

    harness.get_by_label("Spike").click();
    let started = Instant::now();
    while harness.query_by_label("raised").is_none() {
        assert!(
            started.elapsed() < TIMEOUT,
            "no alert row within {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
    let newest = harness.state().alerts().next().expect("alert listed");
    assert_eq!(newest.kind, AlertKind::Raised);
    assert!(newest.temperature > 35.0);
    assert!(harness.state().readings_sent() > 0);
}
