//! Helpers shared by the end-to-end tests: a pipeline on a free port in a temporary data
//! folder, an MQTT test client, and waiting for events with a deadline.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sensor_emulator::pipeline::{EventSink, Pipeline, PipelineConfig, PipelineEvent};
use sensor_emulator::sensor::{Clock, SensorSettings};
use sensor_emulator::settings::{BrokerSettings, DEFAULT_RULE_SQL};
use temperature_alert::PolicyConfig;
use tokio::sync::mpsc;

/// Maximum wait for one expected event.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A pipeline in its own temporary folder, with its events.
pub struct TestPipeline {
    pub pipeline: Pipeline,
    pub events: mpsc::Receiver<PipelineEvent>,
    pub dir: tempfile::TempDir,
}

/// Starts a pipeline on a free loopback port, with the given sensor settings.
pub fn start_pipeline(sensor: SensorSettings, clock: Clock) -> TestPipeline {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = PipelineConfig {
        sensor,
        policy: PolicyConfig::default(),
        rule_sql: DEFAULT_RULE_SQL.to_owned(),
        broker: BrokerSettings {
            port: 0,
            ..BrokerSettings::default()
        },
        outbox_dir: dir.path().join("outbox"),
        email_to: "you@example.com".to_owned(),
        seed: Some(1),
        run_for: None,
    };
    let (sink, events) = EventSink::new(|| {});
    let pipeline = Pipeline::start(config, clock, sink).expect("pipeline starts");
    TestPipeline {
        pipeline,
        events,
        dir,
    }
}

/// Waits for the first event that `pick` maps to `Some`, skipping the others.
pub async fn wait_for<T>(
    events: &mut mpsc::Receiver<PipelineEvent>,
    what: &str,
    mut pick: impl FnMut(&PipelineEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|| panic!("pipeline stopped while waiting for {what}"));
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Waits until the rules engine judged the emulator's first reading, which shows that it
/// has subscribed: a message published earlier would reach no rule.
pub async fn wait_until_judging(events: &mut mpsc::Receiver<PipelineEvent>) {
    wait_for(events, "the rules engine's first trace", |event| {
        matches!(event, PipelineEvent::Trace(_)).then_some(())
    })
    .await;
}

/// An MQTT client of the embedded broker, connected and subscribed to `filters`.
pub struct TestClient {
    pub client: AsyncClient,
    pub received: mpsc::Receiver<(String, Vec<u8>)>,
}

impl TestClient {
    pub async fn connect(port: u16, client_id: &str, filters: &[&str]) -> Self {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let (received_tx, received) = mpsc::channel(256);
        let mut connected_tx = Some(connected_tx);
        tokio::spawn(async move {
            while let Ok(event) = event_loop.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(publish)) => {
                        let _ = received_tx
                            .send((publish.topic.clone(), publish.payload.to_vec()))
                            .await;
                    }
                    _ => {}
                }
            }
        });
        let filters: Vec<&str> = if filters.is_empty() {
            vec!["test/none"]
        } else {
            filters.to_vec()
        };
        for filter in filters {
            client
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .expect("subscribe queued");
        }
        tokio::time::timeout(EVENT_TIMEOUT, connected)
            .await
            .expect("test client connected in time")
            .expect("test client event loop alive");
        Self { client, received }
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .expect("publish queued");
    }
}
