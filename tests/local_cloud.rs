//! End-to-end tests of the embedded local cloud: readings from any MQTT client go through
//! the real broker and rules engine, and alerts come back on the alerts topic.

mod common;

use common::{TestClient, start_pipeline, wait_for, wait_until_judging};
use sensor_emulator::local_cloud::engine::{RuleTrace, TraceOutcome};
use sensor_emulator::local_cloud::rules::Rule;
use sensor_emulator::pipeline::{Command, PipelineEvent, TelemetryState};
use sensor_emulator::sensor::{
    ALERTS_TOPIC, CONTROL_TOPIC, Clock, ManualClock, SensorSettings, TELEMETRY_TOPIC,
};
use temperature_alert::{
    Alert, AlertKind, AlertMode, Decision, Notification, PolicyConfig, UNKNOWN_DEVICE,
};
use time::Duration;
use time::macros::datetime;

fn manual_clock() -> (ManualClock, Clock) {
    let manual = ManualClock::new(datetime!(2026-12-04 10:00 UTC));
    (manual.clone(), Clock::Manual(manual))
}

fn trace_for(device: &str) -> impl FnMut(&PipelineEvent) -> Option<RuleTrace> + '_ {
    move |event| match event {
        PipelineEvent::Trace(trace) if trace.device_id.as_deref() == Some(device) => {
            Some(trace.clone())
        }
        _ => None,
    }
}

fn tutorial_payload(device: &str, temperature: &str) -> String {
    format!(
        r#"{{"deviceId":"{device}","timestamp":"2026-12-04T10:00:00.000Z","temperature":{temperature},"humidity":"55","pressure":"1012.3"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_string_payload_raises_alert() {
    let (_manual, clock) = manual_clock();
    let mut test = start_pipeline(SensorSettings::default(), clock);
    wait_until_judging(&mut test.events).await;
    let port = test.pipeline.broker_addr().expect("local broker").port();
    let client = TestClient::connect(port, "tutorial-emulator", &[ALERTS_TOPIC]).await;

    client
        .publish(
            TELEMETRY_TOPIC,
            &tutorial_payload("tutorial-a", "\"36.20\""),
        )
        .await;
    let trace = wait_for(
        &mut test.events,
        "trace of tutorial-a",
        trace_for("tutorial-a"),
    )
    .await;
    let TraceOutcome::Decided {
        decision,
        temperature,
        alert,
    } = trace.outcome
    else {
        panic!("not decided: {:?}", trace.outcome);
    };
    assert_eq!(decision, Decision::Raised);
    assert!((temperature - 36.2).abs() < 1e-9);
    let alert = alert.expect("alert sent");
    assert_eq!(alert.device_id, "tutorial-a");

    // The same alert arrives on the alerts topic, for the app and for other clients.
    let from_app = wait_for(&mut test.events, "alert event", |event| match event {
        PipelineEvent::Alert(alert) if alert.device_id == "tutorial-a" => Some(alert.clone()),
        _ => None,
    })
    .await;
    assert_eq!(from_app, alert);
    let mut received = client.received;
    let (topic, payload) = tokio::time::timeout(common::EVENT_TIMEOUT, received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(topic, ALERTS_TOPIC);
    let from_client: Alert = serde_json::from_slice(&payload).unwrap();
    assert_eq!(from_client.kind, AlertKind::Raised);
    assert!((from_client.temperature - 36.2).abs() < 1e-9);
    let Notification::Sent { id } = &from_client.notification else {
        panic!("email not sent")
    };
    assert!(test.dir.path().join("outbox").join(id).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_temperatures_give_reasons() {
    let (_manual, clock) = manual_clock();
    let mut test = start_pipeline(SensorSettings::default(), clock);
    wait_until_judging(&mut test.events).await;
    let client = TestClient::connect(
        test.pipeline.broker_addr().expect("local broker").port(),
        "bad-inputs",
        &[],
    )
    .await;

    let cases = [
        (
            "with-unit",
            tutorial_payload("with-unit", "\"36.2°C\""),
            "\"36.2°C\" is not a decimal number",
        ),
        (
            "no-temperature",
            r#"{"deviceId":"no-temperature","humidity":"55"}"#.to_owned(),
            "no \"temperature\" field",
        ),
        (
            "boolean",
            tutorial_payload("boolean", "true"),
            "temperature is a boolean",
        ),
    ];
    for (device, payload, expected_reason) in cases {
        client.publish(TELEMETRY_TOPIC, &payload).await;
        let trace = wait_for(&mut test.events, device, trace_for(device)).await;
        let TraceOutcome::Rejected { reason } = &trace.outcome else {
            panic!("{device}: expected a rejection, got {:?}", trace.outcome);
        };
        assert!(reason.contains(expected_reason), "{device}: {reason}");
    }

    client.publish(TELEMETRY_TOPIC, "{not json").await;
    let trace = wait_for(
        &mut test.events,
        "invalid JSON trace",
        |event| match event {
            PipelineEvent::Trace(trace)
                if matches!(trace.outcome, TraceOutcome::InvalidPayload { .. }) =>
            {
                Some(trace.clone())
            }
            _ => None,
        },
    )
    .await;
    assert!(trace.outcome.reason().is_some_and(|r| !r.is_empty()));

    // None of them raised an alert: the journal is still empty.
    let journal = test.dir.path().join("outbox").join("alerts.jsonl");
    assert!(
        !journal.exists(),
        "unexpected alerts: {:?}",
        std::fs::read_to_string(&journal)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_rule_alerts_for_unknown_device() {
    let (_manual, clock) = manual_clock();
    let mut test = start_pipeline(SensorSettings::default(), clock);
    wait_until_judging(&mut test.events).await;
    let rule = Rule::parse("SELECT temperature FROM 'Emulators/Weather/SensorReadings'").unwrap();
    assert!(test.pipeline.send(Command::SetRule(Box::new(rule))));
    let client = TestClient::connect(
        test.pipeline.broker_addr().expect("local broker").port(),
        "tutorial-rule",
        &[],
    )
    .await;

    client
        .publish(TELEMETRY_TOPIC, &tutorial_payload("station-9", "40"))
        .await;
    let alert = wait_for(&mut test.events, "alert for unknown", |event| match event {
        PipelineEvent::Alert(alert) => Some(alert.clone()),
        _ => None,
    })
    .await;
    assert_eq!(alert.device_id, UNKNOWN_DEVICE);
    assert_eq!(alert.kind, AlertKind::Raised);
    assert_eq!(alert.reading_seq, None);
}

fn telemetry(event: &PipelineEvent) -> Option<TelemetryState> {
    match event {
        PipelineEvent::Telemetry(state) => Some(*state),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_topic_pauses_and_resumes() {
    let (manual, clock) = manual_clock();
    let start = manual.now();
    let mut test = start_pipeline(SensorSettings::default(), clock);
    let sent = |event: &PipelineEvent| match event {
        PipelineEvent::ReadingSent(reading) => Some((reading.seq, reading.timestamp)),
        _ => None,
    };
    let skipped = |event: &PipelineEvent| match event {
        PipelineEvent::ReadingSkipped { at } => Some(*at),
        PipelineEvent::ReadingSent(reading) => panic!("reading {} sent while paused", reading.seq),
        _ => None,
    };

    assert_eq!(
        wait_for(&mut test.events, "first reading", sent).await,
        (1, start)
    );
    manual.advance(Duration::seconds(1));
    assert_eq!(
        wait_for(&mut test.events, "second reading", sent).await,
        (2, start + Duration::seconds(1))
    );

    let client = TestClient::connect(
        test.pipeline.broker_addr().expect("local broker").port(),
        "controller",
        &[],
    )
    .await;
    client
        .publish(CONTROL_TOPIC, r#"{"isTelemetryActive": false}"#)
        .await;
    let state = wait_for(&mut test.events, "pause", |event| match event {
        PipelineEvent::Telemetry(state) => Some(*state),
        _ => None,
    })
    .await;
    assert_eq!(state, TelemetryState::PausedByControl);

    for second in 2..=3 {
        manual.advance(Duration::seconds(1));
        let at = wait_for(&mut test.events, "skipped reading", skipped).await;
        assert_eq!(at, start + Duration::seconds(second));
    }

    client
        .publish(CONTROL_TOPIC, r#"{"isTelemetryActive": true}"#)
        .await;
    let state = wait_for(&mut test.events, "resume", |event| match event {
        PipelineEvent::Telemetry(state) => Some(*state),
        _ => None,
    })
    .await;
    assert_eq!(state, TelemetryState::Active);
    manual.advance(Duration::seconds(1));
    assert_eq!(
        wait_for(&mut test.events, "reading after resume", sent).await,
        (3, start + Duration::seconds(4))
    );

    // The window and the control topic share one pause: each resumes what the other paused.
    assert!(test.pipeline.send(Command::SetPaused(true)));
    let state = wait_for(&mut test.events, "window pause", telemetry).await;
    assert_eq!(state, TelemetryState::PausedByUser);
    client
        .publish(CONTROL_TOPIC, r#"{"isTelemetryActive": true}"#)
        .await;
    let state = wait_for(&mut test.events, "control resume", telemetry).await;
    assert_eq!(state, TelemetryState::Active);
    client
        .publish(CONTROL_TOPIC, r#"{"isTelemetryActive": false}"#)
        .await;
    let state = wait_for(&mut test.events, "control pause", telemetry).await;
    assert_eq!(state, TelemetryState::PausedByControl);
    assert!(test.pipeline.send(Command::SetPaused(false)));
    let state = wait_for(&mut test.events, "window resume", telemetry).await;
    assert_eq!(state, TelemetryState::Active);

    client
        .publish(CONTROL_TOPIC, r#"{"telemetry": "off"}"#)
        .await;
    let payload = wait_for(
        &mut test.events,
        "unexpected control",
        |event| match event {
            PipelineEvent::UnexpectedControl { payload } => Some(payload.clone()),
            _ => None,
        },
    )
    .await;
    assert_eq!(payload, r#"{"telemetry": "off"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_reading_is_judged_once() {
    let (_manual, clock) = manual_clock();
    let mut test = start_pipeline(SensorSettings::default(), clock);
    wait_until_judging(&mut test.events).await;
    let every = PolicyConfig {
        mode: AlertMode::Every,
        ..PolicyConfig::default()
    };
    assert!(test.pipeline.send(Command::SetPolicy(every)));
    let port = test.pipeline.broker_addr().expect("local broker").port();
    let client = TestClient::connect(port, "replaying-emulator", &[]).await;
    let payload = r#"{"deviceId":"replayer","session":"s-1","seq":7,"timestamp":"2026-12-04T10:00:00.000Z","temperature":41.5,"humidity":55,"pressure":1012.3}"#;

    client.publish(TELEMETRY_TOPIC, payload).await;
    let first = wait_for(&mut test.events, "first delivery", trace_for("replayer")).await;
    assert!(
        matches!(
            first.outcome,
            TraceOutcome::Decided {
                decision: Decision::Raised,
                ..
            }
        ),
        "{:?}",
        first.outcome
    );

    client.publish(TELEMETRY_TOPIC, payload).await;
    let second = wait_for(&mut test.events, "second delivery", trace_for("replayer")).await;
    let TraceOutcome::Duplicate { reason } = &second.outcome else {
        panic!("repeat was judged again: {:?}", second.outcome);
    };
    assert_eq!(reason, "reading 7 of session s-1 was already judged");
    let journal =
        std::fs::read_to_string(test.dir.path().join("outbox").join("alerts.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 1, "{journal}");
}
