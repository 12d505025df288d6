//! Remote profiles against Mosquitto with a TLS listener that requires client certificates:
//! publishing over mutual TLS, the errors of broken setups, the connection doctor's
//! reports, the `doctor` command and the detection of a client id used twice.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests fail the test on any error"
)]

mod tls_support;

use std::time::Duration;

use sensor_emulator::mqtt::LinkState;
use sensor_emulator::pipeline::{
    EventSink, Pipeline, PipelineConfig, PipelineEvent, RemoteTarget, Target,
};
use sensor_emulator::sensor::{Clock, SensorSettings, TELEMETRY_TOPIC};
use sensor_emulator::settings::{BrokerSettings, DEFAULT_RULE_SQL, Profile, Settings};
use sensor_emulator::tls::doctor::{self, DoctorOptions, Report, Status, Step};
use sensor_emulator::tls::remote::{BrokerKind, RemoteProfile};
use temperature_alert::PolicyConfig;
use time::OffsetDateTime;
use tls_support::{Mosquitto, Subscriber, TIMEOUT, TestPki, custom_profile, custom_settings};
use tokio::sync::mpsc;

/// Errors of a bad setup must show within this time: no long retries before the first.
const FAIL_FAST: Duration = Duration::from_secs(5);

fn pipeline_config(dir: &std::path::Path, interval_ms: u64) -> PipelineConfig {
    PipelineConfig {
        sensor: SensorSettings {
            interval_ms,
            ..SensorSettings::default()
        },
        policy: PolicyConfig::default(),
        rule_sql: DEFAULT_RULE_SQL.to_owned(),
        broker: BrokerSettings::default(),
        outbox_dir: dir.join("outbox"),
        email_to: "you@example.com".to_owned(),
        seed: Some(1),
        run_for: None,
    }
}

fn start_remote(
    profile: RemoteProfile,
    dir: &std::path::Path,
) -> (Pipeline, mpsc::Receiver<PipelineEvent>) {
    let target = RemoteTarget::prepare(profile, 10_000, OffsetDateTime::now_utc()).unwrap();
    let (sink, events) = EventSink::new(|| {});
    let pipeline = Pipeline::start_with(
        pipeline_config(dir, 100),
        Target::Remote(Box::new(target)),
        Clock::system(),
        sink,
    )
    .unwrap();
    (pipeline, events)
}

/// Waits for the first `Disconnected` state and returns its error.
async fn first_link_error(events: &mut mpsc::Receiver<PipelineEvent>) -> String {
    let deadline = tokio::time::Instant::now() + FAIL_FAST;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("an error within the fail-fast time")
            .expect("pipeline running");
        match event {
            PipelineEvent::Link(
                LinkState::Disconnected { error, .. } | LinkState::Stopped { error },
            ) => {
                return error;
            }
            PipelineEvent::Link(LinkState::Connected) => panic!("connected unexpectedly"),
            _ => {}
        }
    }
}

fn seq_of(payload: &[u8]) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(payload).unwrap();
    value["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn readings_arrive_over_mutual_tls() {
    let pki = TestPki::new("mtls");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, false);
    // An AWS-style device: PKCS#1 RSA key, AWS profile rules, client id = thing name.
    let device = pki.client_rsa("WeatherEmulator");
    let watcher = pki.client_ec("watcher");
    let mut subscriber = Subscriber::connect(
        broker.tls_port,
        &pki.ca_file,
        &watcher,
        "mtls-watcher",
        &[TELEMETRY_TOPIC],
    )
    .await;

    let aws = sensor_emulator::settings::AwsSettings {
        endpoint: "localhost".to_owned(),
        certificate_file: device.certificate.clone(),
        private_key_file: device.key.clone(),
        ca_file: pki.ca_file.clone(),
        ..sensor_emulator::settings::AwsSettings::default()
    };
    let mut profile = RemoteProfile::aws(&aws);
    profile.port = broker.tls_port;
    assert_eq!(profile.kind, BrokerKind::Aws);
    let (pipeline, _events) = start_remote(profile, pki.dir.path());

    let mut seqs = Vec::new();
    while seqs.len() < 5 {
        let (topic, payload) = tokio::time::timeout(TIMEOUT, subscriber.received.recv())
            .await
            .expect("readings arrive")
            .unwrap();
        assert_eq!(topic, TELEMETRY_TOPIC);
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(value["deviceId"], "WeatherEmulator");
        seqs.push(seq_of(&payload));
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // The subscriber can see a reading before its PUBACK reaches the publisher.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut status = pipeline.device_status();
    while status.acknowledged < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = pipeline.device_status();
    }
    assert_eq!(status.state, LinkState::Connected);
    assert!(status.round_trip.is_some(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn broken_setups_fail_fast_with_their_own_message() {
    let pki = TestPki::new("broken");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, true);
    let device = pki.client_ec("device");
    let other_pki = TestPki::new("other");

    // Rejected before any connection: the files are checked when the profile starts.
    let other = pki.client_ec("other");
    let mut mismatched = custom_settings(broker.tls_port, &pki.ca_file, &device, "device");
    mismatched.private_key_file.clone_from(&other.key);
    let error = RemoteTarget::prepare(
        RemoteProfile::custom(&mismatched),
        100,
        OffsetDateTime::now_utc(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("does not belong to the device certificate"),
        "{error}"
    );

    let now = OffsetDateTime::now_utc();
    let expired = pki.client_ec_valid(
        "expired",
        Some((
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )),
    );
    let error = RemoteTarget::prepare(
        custom_profile(broker.tls_port, &pki.ca_file, &expired, "expired"),
        100,
        now,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("expired on"), "{error}");

    // Rejected while connecting.
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "server certificate from another CA",
            custom_profile(broker.tls_port, &other_pki.ca_file, &device, "case-ca"),
            "not signed by a trusted CA",
        ),
        (
            "wrong port: the plain MQTT listener",
            custom_profile(
                broker.plain_port.unwrap(),
                &pki.ca_file,
                &device,
                "case-port",
            ),
            "closed the connection during the TLS handshake",
        ),
        (
            "broker not running",
            custom_profile(tls_support::free_port(), &pki.ca_file, &device, "case-down"),
            "connection refused",
        ),
    ];
    let mut messages = Vec::new();
    for (name, profile, expected) in cases {
        let (_pipeline, mut events) = start_remote(profile, dir.path());
        let error = first_link_error(&mut events).await;
        assert!(error.contains(expected), "{name}: {error}");
        messages.push(error);
    }
    let distinct: std::collections::HashSet<_> = messages.iter().collect();
    assert_eq!(distinct.len(), messages.len(), "{messages:#?}");
}

fn assert_step(report: &Report, step: Step, status: Status, expected: &str) {
    let result = report.step(step).unwrap();
    assert_eq!(result.status, status, "{report}");
    let text = format!("{} {}", result.detail, result.fix);
    assert!(text.contains(expected), "{expected:?} missing in {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
#[allow(
    clippy::too_many_lines,
    reason = "the broken setups read best side by side"
)]
async fn doctor_reports_working_and_broken_profiles() {
    let pki = TestPki::new("doctor");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, true);
    let device = pki.client_rsa("device");
    let options = DoctorOptions {
        timeout: Duration::from_secs(5),
        ..DoctorOptions::default()
    };

    let working = custom_profile(broker.tls_port, &pki.ca_file, &device, "doctor-device");
    let report = doctor::run(&working, &options).await;
    assert!(report.passed(), "{report}");
    for result in &report.steps {
        assert_eq!(result.status, Status::Passed, "{report}");
    }
    assert_eq!(report.steps.len(), Step::ALL.len());
    assert_step(
        &report,
        Step::Files,
        Status::Passed,
        "PKCS#1 RSA private key",
    );
    assert_step(&report, Step::Publish, Status::Passed, "PUBACK");

    let other = pki.client_ec("other");
    let mut mismatched = custom_settings(broker.tls_port, &pki.ca_file, &device, "d");
    mismatched.private_key_file.clone_from(&other.key);
    let report = doctor::run(&RemoteProfile::custom(&mismatched), &options).await;
    assert_step(&report, Step::Files, Status::Passed, "certificate");
    assert_step(&report, Step::KeyMatch, Status::Failed, "does not belong");
    assert_step(
        &report,
        Step::Publish,
        Status::Skipped,
        "\"Private key matches the certificate\" failed",
    );

    let now = OffsetDateTime::now_utc();
    let expired = pki.client_ec_valid(
        "expired",
        Some((
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )),
    );
    let report = doctor::run(
        &custom_profile(broker.tls_port, &pki.ca_file, &expired, "d"),
        &options,
    )
    .await;
    assert_step(&report, Step::Validity, Status::Failed, "expired on");

    let bad_key = pki.path("swapped.key");
    std::fs::copy(&device.certificate, &bad_key).unwrap();
    let mut swapped = custom_settings(broker.tls_port, &pki.ca_file, &device, "d");
    swapped.private_key_file.clone_from(&bad_key);
    let report = doctor::run(&RemoteProfile::custom(&swapped), &options).await;
    assert_step(
        &report,
        Step::Files,
        Status::Failed,
        "contains a certificate (BEGIN CERTIFICATE), not a private key",
    );

    let other_pki = TestPki::new("other");
    let report = doctor::run(
        &custom_profile(broker.tls_port, &other_pki.ca_file, &device, "d"),
        &options,
    )
    .await;
    assert_step(&report, Step::Tcp, Status::Passed, "connected");
    assert_step(
        &report,
        Step::TlsHandshake,
        Status::Failed,
        "not signed by a trusted CA",
    );

    let report = doctor::run(
        &custom_profile(broker.plain_port.unwrap(), &pki.ca_file, &device, "d"),
        &options,
    )
    .await;
    assert_step(
        &report,
        Step::TlsHandshake,
        Status::Failed,
        "during the TLS handshake",
    );

    let report = doctor::run(
        &custom_profile(tls_support::free_port(), &pki.ca_file, &device, "d"),
        &options,
    )
    .await;
    assert_step(&report, Step::Dns, Status::Passed, "localhost resolves to");
    assert_step(&report, Step::Tcp, Status::Failed, "connection refused");

    // A custom broker without a client certificate: Mosquitto requires one.
    let mut anonymous = custom_settings(broker.tls_port, &pki.ca_file, &device, "d");
    anonymous.certificate_file = std::path::PathBuf::new();
    anonymous.private_key_file = std::path::PathBuf::new();
    let report = doctor::run(&RemoteProfile::custom(&anonymous), &options).await;
    assert_step(
        &report,
        Step::KeyMatch,
        Status::Skipped,
        "no client certificate",
    );
    let failure = report.first_failure().unwrap();
    assert!(
        matches!(failure.step, Step::TlsHandshake | Step::MqttConnect),
        "{report}"
    );
    assert!(failure.fix.contains("client certificate"), "{report}");

    // The AWS endpoint rules: an IP address fails for AWS, before any network step.
    let aws = sensor_emulator::settings::AwsSettings {
        endpoint: "127.0.0.1".to_owned(),
        certificate_file: device.certificate.clone(),
        private_key_file: device.key.clone(),
        ca_file: pki.ca_file.clone(),
        ..sensor_emulator::settings::AwsSettings::default()
    };
    let report = doctor::run(&RemoteProfile::aws(&aws), &options).await;
    assert_step(&report, Step::Endpoint, Status::Failed, "SNI");
    assert_step(&report, Step::Dns, Status::Skipped, "not run");
}

#[test]
#[ignore = "needs mosquitto; run by .ci/run"]
fn doctor_command_passes_every_step() {
    let pki = TestPki::new("command");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, false);
    let device = pki.client_rsa("device");
    let data = tempfile::tempdir().unwrap();
    let settings = Settings {
        profile: Profile::Custom,
        custom: custom_settings(broker.tls_port, &pki.ca_file, &device, "doctor-command"),
        ..Settings::default()
    };
    std::fs::write(
        data.path().join("settings.json"),
        serde_json::to_string_pretty(&settings).unwrap(),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sensor-emulator"))
        .args(["doctor", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.matches(" passed ").count(),
        Step::ALL.len(),
        "{stdout}"
    );
    assert!(
        stdout.contains("Result: 10 passed, 0 failed, 0 warnings, 0 skipped."),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn shared_client_id_stops_retrying() {
    let pki = TestPki::new("takeover");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, false);
    let device = pki.client_ec("device");
    let dir = tempfile::tempdir().unwrap();
    let profile = custom_profile(broker.tls_port, &pki.ca_file, &device, "same-id");
    let (first, _first_events) = start_remote(profile.clone(), dir.path());
    let (second, _second_events) = start_remote(profile, dir.path());
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    let stopped = loop {
        let stopped: Vec<String> = [&first, &second]
            .iter()
            .filter_map(|pipeline| match pipeline.device_status().state {
                LinkState::Stopped { error } => Some(error),
                _ => None,
            })
            .collect();
        if let Some(error) = stopped.into_iter().next() {
            break error;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no take-over detected: {:?} / {:?}",
            first.device_status(),
            second.device_status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stopped.contains("same client id \"same-id\""), "{stopped}");
}
