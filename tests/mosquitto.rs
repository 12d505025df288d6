//! Interoperability with Mosquitto's command-line clients: `mosquitto_pub` sends the
//! tutorial's payload to the embedded broker and `mosquitto_sub` receives the alert.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::start_pipeline;
use sensor_emulator::sensor::{ALERTS_TOPIC, Clock, ManualClock, SensorSettings, TELEMETRY_TOPIC};
use temperature_alert::{Alert, AlertKind};
use time::macros::datetime;

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
#[ignore = "needs mosquitto-clients; run by .ci/run"]
fn mosquitto_clients_publish_and_receive_alert() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let clock = Clock::Manual(ManualClock::new(datetime!(2026-12-04 10:00 UTC)));
    let mut test = start_pipeline(SensorSettings::default(), clock);
    runtime.block_on(common::wait_until_judging(&mut test.events));
    let port = test
        .pipeline
        .broker_addr()
        .expect("local broker")
        .port()
        .to_string();

    // `-d` prints the protocol exchange, so the test can tell when the subscription is active.
    // stdbuf makes mosquitto_sub flush each line, which stdio holds back on a pipe.
    let mut subscriber = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", &port])
        .args(["-t", ALERTS_TOPIC, "-C", "1", "-W", "30", "-d"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (Debian package mosquitto-clients)");
    let stdout = BufReader::new(subscriber.stdout.take().unwrap());
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("mosquitto_sub subscribed");
        if line.contains("received SUBACK") {
            break;
        }
    }

    let payload = r#"{"deviceId":"mosquitto-station","timestamp":"2026-12-04T10:00:00.000Z","temperature":"36.20","humidity":"55","pressure":"1012.3"}"#;
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-q",
            "1",
            "-t",
            TELEMETRY_TOPIC,
            "-m",
            payload,
        ])
        .status()
        .expect("mosquitto_pub is installed");
    assert!(status.success());

    let alert: Alert = loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("alert received by mosquitto_sub");
        if let Ok(alert) = serde_json::from_str(&line) {
            break alert;
        }
    };
    assert_eq!(alert.kind, AlertKind::Raised);
    assert_eq!(alert.device_id, "mosquitto-station");
    assert!((alert.temperature - 36.2).abs() < 1e-9);
    assert!(subscriber.wait().unwrap().success());
}
