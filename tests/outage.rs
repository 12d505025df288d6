//! No reading is lost when the broker goes away: stopped five times for 10 s while the
//! sensor publishes at 10 Hz, and a network that silently stops forwarding for longer than
//! twice the keep-alive. A subscriber with a persistent session checks that every `seq`
//! arrives at least once, in order.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests fail the test on any error"
)]

mod tls_support;

use std::collections::BTreeSet;
use std::time::Duration;

use sensor_emulator::mqtt::LinkState;
use sensor_emulator::pipeline::{
    EventSink, Pipeline, PipelineConfig, PipelineEvent, RemoteTarget, Target, TelemetryState,
};
use sensor_emulator::sensor::{CONTROL_TOPIC, Clock, SensorSettings, TELEMETRY_TOPIC};
use sensor_emulator::settings::{BrokerSettings, DEFAULT_RULE_SQL};
use sensor_emulator::tls::remote::RemoteProfile;
use temperature_alert::PolicyConfig;
use time::OffsetDateTime;
use tls_support::{Mosquitto, StallingProxy, Subscriber, TIMEOUT, TestPki, custom_profile};
use tokio::sync::mpsc;

const OUTAGE: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(5);

fn start(
    profile: RemoteProfile,
    dir: &std::path::Path,
) -> (Pipeline, mpsc::Receiver<PipelineEvent>) {
    let mut target = RemoteTarget::prepare(profile, 10_000, OffsetDateTime::now_utc()).unwrap();
    target.keep_alive = KEEP_ALIVE;
    let config = PipelineConfig {
        sensor: SensorSettings {
            interval_ms: 100,
            ..SensorSettings::default()
        },
        policy: PolicyConfig::default(),
        rule_sql: DEFAULT_RULE_SQL.to_owned(),
        broker: BrokerSettings::default(),
        outbox_dir: dir.join("outbox"),
        email_to: "you@example.com".to_owned(),
        seed: Some(1),
        run_for: None,
    };
    let (sink, events) = EventSink::new(|| {});
    let pipeline = Pipeline::start_with(
        config,
        Target::Remote(Box::new(target)),
        Clock::system(),
        sink,
    )
    .unwrap();
    (pipeline, events)
}

/// Follows the pipeline's events: the last `seq` sent and telemetry state changes.
struct Events {
    receiver: mpsc::Receiver<PipelineEvent>,
    last_seq: u64,
}

impl Events {
    async fn wait_for(&mut self, what: &str, mut done: impl FnMut(&PipelineEvent) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
        loop {
            let event = tokio::time::timeout_at(deadline, self.receiver.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            if let PipelineEvent::ReadingSent(reading) = &event {
                self.last_seq = reading.seq;
            }
            if done(&event) {
                return;
            }
        }
    }

    async fn wait_connected(&mut self) {
        self.wait_for("reconnection", |event| {
            matches!(event, PipelineEvent::Link(LinkState::Connected))
        })
        .await;
    }
}

/// Sends pause and resume on the control topic and waits for the pipeline to obey.
async fn control_round_trip(
    controller: &Subscriber,
    client: &rumqttc::AsyncClient,
    events: &mut Events,
) {
    let _ = controller;
    for (active, expected) in [
        (false, TelemetryState::PausedByControl),
        (true, TelemetryState::Active),
    ] {
        client
            .publish(
                CONTROL_TOPIC,
                rumqttc::QoS::AtLeastOnce,
                false,
                format!("{{\"isTelemetryActive\": {active}}}"),
            )
            .await
            .unwrap();
        events
            .wait_for(
                "telemetry state from the control topic",
                |event| matches!(event, PipelineEvent::Telemetry(state) if *state == expected),
            )
            .await;
    }
}

/// Reads what the subscriber received until `last_seq` has arrived; checks that the
/// first arrivals of each `seq` are in order and that none is missing.
async fn assert_all_arrived(
    subscriber: &mut Subscriber,
    seen: &mut BTreeSet<u64>,
    order: &mut Vec<u64>,
    last_seq: u64,
) {
    while !(1..=last_seq).all(|seq| seen.contains(&seq)) {
        let (topic, payload) = tokio::time::timeout(TIMEOUT, subscriber.received.recv())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<u64> = (1..=last_seq).filter(|seq| !seen.contains(seq)).collect();
                panic!("readings missing after {TIMEOUT:?}: {missing:?}")
            })
            .unwrap();
        if topic != TELEMETRY_TOPIC {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let seq = value["seq"].as_u64().unwrap();
        if seen.insert(seq) {
            order.push(seq);
        }
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(*order, sorted, "first arrivals out of order");
}

/// A plain client on the broker's TLS port for control messages.
fn control_client(
    port: u16,
    pki: &TestPki,
    client: &tls_support::Identity,
) -> rumqttc::AsyncClient {
    let config = sensor_emulator::tls::TlsFiles {
        ca_file: Some(pki.ca_file.clone()),
        client: Some((client.certificate.clone(), client.key.clone())),
        alpn: None,
    }
    .client_config(OffsetDateTime::now_utc())
    .unwrap();
    let mut options = rumqttc::MqttOptions::new("outage-controller", "localhost", port);
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(config),
    ));
    let (client, mut event_loop) = rumqttc::AsyncClient::new(options, 16);
    tokio::spawn(async move {
        loop {
            if event_loop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn broker_restarts_lose_no_reading() {
    let pki = TestPki::new("outage");
    let server = pki.server("server");
    let mut broker = Mosquitto::start(&pki.ca_file, &server, false);
    let device = pki.client_ec("device");
    let watcher = pki.client_ec("watcher");
    let mut subscriber = Subscriber::connect(
        broker.tls_port,
        &pki.ca_file,
        &watcher,
        "outage-watcher",
        &[TELEMETRY_TOPIC],
    )
    .await;
    let controller = control_client(broker.tls_port, &pki, &watcher);
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, receiver) = start(
        custom_profile(broker.tls_port, &pki.ca_file, &device, "outage-device"),
        dir.path(),
    );
    let mut events = Events {
        receiver,
        last_seq: 0,
    };
    events.wait_connected().await;

    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for round in 1..=5_u64 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        broker.stop();
        tokio::time::sleep(OUTAGE).await;
        assert!(
            pipeline.device_status().queued > 50,
            "round {round}: {:?}",
            pipeline.device_status()
        );
        broker.run();
        events.wait_connected().await;
        subscriber.wait_connected(round + 1).await;
        control_round_trip(&subscriber, &controller, &mut events).await;
        assert_all_arrived(&mut subscriber, &mut seen, &mut order, events.last_seq).await;
    }
    let status = pipeline.device_status();
    assert_eq!(status.dropped, 0, "{status:?}");
    assert!(status.connections >= 6, "{status:?}");
    assert!(events.last_seq > 450, "{}", events.last_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto; run by .ci/run"]
async fn silent_stall_is_noticed_and_loses_no_reading() {
    let pki = TestPki::new("stall");
    let server = pki.server("server");
    let broker = Mosquitto::start(&pki.ca_file, &server, false);
    let device = pki.client_ec("device");
    let watcher = pki.client_ec("watcher");
    let mut subscriber = Subscriber::connect(
        broker.tls_port,
        &pki.ca_file,
        &watcher,
        "stall-watcher",
        &[TELEMETRY_TOPIC],
    )
    .await;
    let proxy = StallingProxy::start(([127, 0, 0, 1], broker.tls_port).into()).await;
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, receiver) = start(
        custom_profile(proxy.port, &pki.ca_file, &device, "stall-device"),
        dir.path(),
    );
    let mut events = Events {
        receiver,
        last_seq: 0,
    };
    events.wait_connected().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.set_stalled(true);
    let stalled_at = tokio::time::Instant::now();
    let mut noticed = String::new();
    events
        .wait_for("the client noticing the stall", |event| match event {
            PipelineEvent::Link(LinkState::Disconnected { error, .. }) => {
                noticed.clone_from(error);
                true
            }
            _ => false,
        })
        .await;
    assert!(noticed.contains("keep-alive"), "{noticed}");
    // The stall lasts longer than twice the keep-alive, whenever the client noticed it.
    tokio::time::sleep_until(stalled_at + 2 * KEEP_ALIVE + Duration::from_secs(1)).await;
    proxy.set_stalled(false);
    events.wait_connected().await;

    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_all_arrived(&mut subscriber, &mut seen, &mut order, events.last_seq).await;
    let status = pipeline.device_status();
    assert!(status.connections >= 2, "{status:?}");
    assert_eq!(status.dropped, 0, "{status:?}");
}
