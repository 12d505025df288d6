//! The handler in process against moto's SNS, DynamoDB and IoT data plane on 127.0.0.1.
//!
//! moto accepts IoT data plane `Publish` calls but does not show the published payloads in
//! server mode (`/moto-api/data.json` lists only thing shadows for `iotdata`), so the tests
//! that check the alert JSON point `IOT_DATA_ENDPOINT` at a recording stand-in instead.

#![cfg(feature = "function")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use temperature_alert::function::{
    AwsNotifier, DEFAULT_ALERTS_TOPIC, DynamoStore, FunctionConfig, Handler, Invocation, Outcome,
    SaveOutcome, StateStore, Status, StoreError, StoredAlarm,
};
use temperature_alert::{AlertMode, PolicyConfig};
use time::{Duration, OffsetDateTime};
use tokio::sync::Barrier;

use common::http::IotStandIn;
use common::moto::moto;

struct Setup {
    sdk: SdkConfig,
    config: FunctionConfig,
}

impl Setup {
    /// Creates a topic and a table named after the test, so tests sharing the moto server
    /// do not see each other's data.
    async fn new(name: &str, mode: AlertMode, iot_endpoint: Option<&str>) -> Self {
        let moto = moto();
        let sdk = common::sdk_config(&moto.endpoint).await;
        let topic_arn = common::create_topic(&sdk, name).await;
        let table = format!("{name}-alarm-state");
        common::create_table(&sdk, &table).await;
        let config = FunctionConfig {
            policy: PolicyConfig {
                mode,
                ..PolicyConfig::default()
            },
            topic_arn,
            table: Some(table),
            alerts_topic: DEFAULT_ALERTS_TOPIC.to_owned(),
            iot_data_endpoint: iot_endpoint.unwrap_or(&moto.endpoint).to_owned(),
        };
        Self { sdk, config }
    }

    /// A handler with fresh clients, as a cold start would build.
    fn handler(&self) -> Handler<DynamoStore, AwsNotifier> {
        Handler::new(
            self.config.clone(),
            DynamoStore::from_config(&self.sdk, &self.config),
            AwsNotifier::from_config(&self.sdk, &self.config),
        )
    }

    fn sns_messages(&self) -> Vec<common::moto::SnsMessage> {
        moto().sns_messages(&self.config.topic_arn)
    }

    async fn item(
        &self,
        device_id: &str,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        aws_sdk_dynamodb::Client::new(&self.sdk)
            .get_item()
            .table_name(self.config.table.as_deref().expect("table"))
            .key("deviceId", AttributeValue::S(device_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem on moto")
            .item
    }

    async fn item_count(&self) -> usize {
        let output = aws_sdk_dynamodb::Client::new(&self.sdk)
            .scan()
            .table_name(self.config.table.as_deref().expect("table"))
            .send()
            .await
            .expect("Scan on moto");
        output.items.unwrap_or_default().len()
    }
}

fn invocation(request_id: &str) -> Invocation {
    Invocation {
        request_id: request_id.to_owned(),
        deadline: OffsetDateTime::now_utc() + Duration::seconds(30),
    }
}

async fn handle<S: StateStore>(
    handler: &Handler<S, AwsNotifier>,
    request_id: &str,
    event: Value,
) -> Outcome {
    handler
        .handle(&event, &invocation(request_id))
        .await
        .unwrap_or_else(|error| panic!("invocation {request_id} failed: {error}"))
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn tutorial_events_once_per_excursion() {
    let setup = Setup::new("tutorial-once", AlertMode::OncePerExcursion, None).await;
    let handler = setup.handler();

    assert_eq!(
        handle(&handler, "r1", json!({"temperature": 30}))
            .await
            .status,
        Status::Unchanged
    );
    assert!(setup.sns_messages().is_empty(), "30 °C sends nothing");

    let raised = handle(&handler, "r2", json!({"temperature": 40})).await;
    assert_eq!(raised.status, Status::Raised);
    let messages = setup.sns_messages();
    assert_eq!(messages.len(), 1, "40 °C sends one raise: {messages:?}");
    assert_eq!(messages[0].subject.as_deref(), Some("Temperature Alert"));
    assert!(
        messages[0].message.starts_with(
            "The temperature of unknown is 40.00 °C, above the threshold of 35.00 °C."
        ),
        "{}",
        messages[0].message
    );
    assert!(messages[0].message.contains("Device:         unknown"));
    assert!(messages[0].message.contains("Decided by:     AWS Lambda"));
    let alert = raised.alert.expect("raised alert");
    assert_eq!(
        serde_json::to_value(&alert.notification).expect("json"),
        json!({"status": "sent", "id": messages[0].id})
    );

    let again = handle(&handler, "r3", json!({"temperature": 40})).await;
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(
        setup.sns_messages().len(),
        1,
        "a second 40 °C sends nothing"
    );
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn tutorial_events_every_mode() {
    let setup = Setup::new("tutorial-every", AlertMode::Every, None).await;
    let handler = setup.handler();
    assert_eq!(
        handle(&handler, "r1", json!({"temperature": 30}))
            .await
            .status,
        Status::Unchanged
    );
    assert!(setup.sns_messages().is_empty());
    assert_eq!(
        handle(&handler, "r2", json!({"temperature": 40}))
            .await
            .status,
        Status::Raised
    );
    assert_eq!(setup.sns_messages().len(), 1);
    assert_eq!(
        handle(&handler, "r3", json!({"temperature": 40}))
            .await
            .status,
        Status::Raised
    );
    let messages = setup.sns_messages();
    assert_eq!(messages.len(), 2, "every mode sends one more: {messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m.subject.as_deref() == Some("Temperature Alert"))
    );
    assert_eq!(setup.item_count().await, 0, "every mode stores no state");
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn state_survives_cold_start() {
    let setup = Setup::new("cold-start", AlertMode::OncePerExcursion, None).await;
    let reading = |temperature: f64, seq: u64| {
        json!({"temperature": temperature, "deviceId": "WeatherEmulator", "seq": seq,
               "timestamp": format!("2026-12-04T10:00:{seq:02}.000Z")})
    };

    let first = setup.handler();
    assert_eq!(
        handle(&first, "r1", reading(36.5, 1)).await.status,
        Status::Raised
    );
    drop(first);

    let item = setup
        .item("WeatherEmulator")
        .await
        .expect("item after the raise");
    assert_eq!(item.get("raised"), Some(&AttributeValue::Bool(true)));
    assert_eq!(
        item.get("version"),
        Some(&AttributeValue::N("2".into())),
        "decision, then delivery"
    );
    assert_eq!(
        item.get("lastDecision"),
        Some(&AttributeValue::S("raised".into()))
    );
    assert!(
        !item.contains_key("pending"),
        "the delivered alert is no longer pending"
    );

    // A new instance (cold start) reads the raised state and does not raise again.
    let second = setup.handler();
    let hot = handle(&second, "r2", reading(37.0, 2)).await;
    assert_eq!(hot.status, Status::Unchanged);
    assert_eq!(hot.state_before.map(|state| state.raised), Some(true));
    let cleared = handle(&second, "r3", reading(33.0, 3)).await;
    assert_eq!(cleared.status, Status::Cleared);

    let messages = setup.sns_messages();
    let subjects: Vec<_> = messages
        .iter()
        .map(|m| m.subject.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        vec!["Temperature Alert", "Temperature back to normal"]
    );
    assert!(
        messages[1]
            .message
            .contains("is back to normal: 33.00 °C, at or below 34.00 °C")
    );
    assert!(messages[1].message.contains("Reading seq:    3"));

    let item = setup
        .item("WeatherEmulator")
        .await
        .expect("item after the clear");
    assert_eq!(item.get("raised"), Some(&AttributeValue::Bool(false)));
    assert_eq!(
        item.get("lastDecision"),
        Some(&AttributeValue::S("cleared".into()))
    );
    assert_eq!(
        item.get("lastRequestId"),
        Some(&AttributeValue::S("r3".into()))
    );
}

/// A store whose first `parties` reads wait for each other, so every invocation reads the
/// same version before any of them writes.
struct SynchronizedStore {
    inner: DynamoStore,
    barrier: Arc<Barrier>,
    reads: Arc<AtomicUsize>,
    parties: usize,
}

impl StateStore for SynchronizedStore {
    async fn load(&self, device_id: &str) -> Result<StoredAlarm, StoreError> {
        let stored = self.inner.load(device_id).await?;
        if self.reads.fetch_add(1, Ordering::SeqCst) < self.parties {
            self.barrier.wait().await;
        }
        Ok(stored)
    }

    async fn save(
        &self,
        device_id: &str,
        expected_version: u64,
        record: &StoredAlarm,
    ) -> Result<SaveOutcome, StoreError> {
        self.inner.save(device_id, expected_version, record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto_server; run by .ci/run"]
async fn concurrent_invocations_one_raise() {
    const PARTIES: usize = 8;
    let setup = Setup::new("concurrent", AlertMode::OncePerExcursion, None).await;
    let barrier = Arc::new(Barrier::new(PARTIES));
    let reads = Arc::new(AtomicUsize::new(0));

    let mut tasks = Vec::new();
    for index in 0..PARTIES {
        // One handler per task, like separate Lambda instances started together.
        let store = SynchronizedStore {
            inner: DynamoStore::from_config(&setup.sdk, &setup.config).expect("store"),
            barrier: barrier.clone(),
            reads: reads.clone(),
            parties: PARTIES,
        };
        let handler = Handler::new(
            setup.config.clone(),
            Some(store),
            AwsNotifier::from_config(&setup.sdk, &setup.config),
        );
        let event = json!({"temperature": 40 + index, "deviceId": "shared", "seq": index});
        tasks.push(tokio::spawn(async move {
            handle(&handler, &format!("r{index}"), event).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }

    let raised = outcomes
        .iter()
        .filter(|o| o.status == Status::Raised)
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| o.status == Status::Unchanged)
        .count();
    assert_eq!(raised, 1, "{outcomes:#?}");
    assert_eq!(unchanged, PARTIES - 1, "{outcomes:#?}");
    let conflicts: u32 = outcomes.iter().map(|o| o.state_conflicts).sum();
    assert_eq!(
        conflicts, 7,
        "every loser lost exactly one conditional write"
    );
    let messages = setup.sns_messages();
    assert_eq!(messages.len(), 1, "exactly one raise email: {messages:?}");
    assert_eq!(messages[0].subject.as_deref(), Some("Temperature Alert"));
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn malformed_events_send_nothing() {
    let setup = Setup::new("malformed", AlertMode::OncePerExcursion, None).await;
    let handler = setup.handler();
    let events = [
        json!(null),
        json!({"humidity": 55}),
        json!({"temperature": "warm"}),
        json!({"temperature": "36.2°C"}),
        json!({"temperature": false}),
        json!({"temperature": "NaN"}),
        json!({"temperature": "Infinity"}),
        json!({"temperature": {"celsius": 40}}),
        json!([40]),
        json!({"temperature": 40, "pad": "x".repeat(200 * 1024)}),
    ];
    for (index, event) in events.iter().enumerate() {
        let outcome = handle(&handler, &format!("r{index}"), event.clone()).await;
        assert_eq!(outcome.status, Status::Ignored, "{event:.60}");
        assert!(outcome.reason.is_some_and(|reason| !reason.is_empty()));
    }
    assert!(setup.sns_messages().is_empty());
    assert_eq!(setup.item_count().await, 0);
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn alert_json_published() {
    let iot = IotStandIn::start().await;
    let setup = Setup::new(
        "alert-json",
        AlertMode::OncePerExcursion,
        Some(&iot.endpoint),
    )
    .await;
    let handler = setup.handler();
    let event = json!({"temperature": "38.25", "deviceId": "WeatherEmulator", "seq": 9,
                       "session": "s-1", "timestamp": "2026-12-04T10:00:09.000Z"});
    assert_eq!(handle(&handler, "r1", event).await.status, Status::Raised);

    let requests = iot.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let publish = &requests[0];
    assert_eq!(publish.method, "POST");
    assert_eq!(publish.target, "/topics/Emulators%2FWeather%2FAlerts?qos=1");
    let authorization = publish
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        authorization.contains("/iotdata/aws4_request"),
        "signed for iotdata: {authorization}"
    );
    let alert: Value = serde_json::from_slice(&publish.body).expect("alert JSON");
    let sns_id = setup.sns_messages()[0].id.clone();
    assert_eq!(alert["kind"], "raised");
    assert_eq!(alert["deviceId"], "WeatherEmulator");
    assert_eq!(alert["temperature"], 38.25);
    assert_eq!(alert["threshold"], 35.0);
    assert_eq!(alert["clearLevel"], 34.0);
    assert_eq!(alert["readingSeq"], 9);
    assert_eq!(alert["readingSession"], "s-1");
    assert_eq!(alert["readingTimestamp"], "2026-12-04T10:00:09.000Z");
    assert_eq!(alert["source"], "aws");
    assert_eq!(
        alert["notification"],
        json!({"status": "sent", "id": sns_id})
    );
    assert!(
        alert["alertedAt"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn failed_email_finished_by_retry() {
    let mut setup = Setup::new("failed-email", AlertMode::OncePerExcursion, None).await;
    // A topic that does not exist yet: SNS returns NotFound, which no retry fixes until
    // someone creates the topic.
    let missing = setup
        .config
        .topic_arn
        .replace("failed-email", "failed-email-later");
    setup.config.topic_arn.clone_from(&missing);
    let handler = setup.handler();

    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .expect_err("publishing to a missing topic fails");
    assert_eq!(error.error_type(), "Permanent.EmailSend");
    assert!(error.to_string().contains("sns:Publish failed"), "{error}");
    let item = setup
        .item("unknown")
        .await
        .expect("the decision was recorded");
    assert!(
        item.contains_key("pending"),
        "the undelivered alert stays pending"
    );

    let created = common::create_topic(&setup.sdk, "failed-email-later").await;
    assert_eq!(created, missing);
    let retry = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert_eq!(retry.status, Status::Raised);
    assert!(retry.already_decided);
    assert_eq!(moto().sns_messages(&missing).len(), 1);
    let item = setup.item("unknown").await.expect("item");
    assert!(!item.contains_key("pending"));
}
