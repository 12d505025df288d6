//! Unit tests of the handler with in-process fakes of the state store and the notifier.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_sns::operation::publish::PublishError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::error::retry_for_response;
use super::*;
use crate::{AlarmState, Alert, AlertKind, AlertMode, Notification, PolicyConfig};

/// Something a test injects into the next write, to play a concurrent invocation.
type SaveHook = Box<dyn FnOnce(&mut HashMap<String, StoredAlarm>) + Send>;

#[derive(Default)]
struct FakeStore {
    records: Mutex<HashMap<String, StoredAlarm>>,
    loads: AtomicUsize,
    saves: AtomicUsize,
    before_next_save: Mutex<Option<SaveHook>>,
}

impl FakeStore {
    fn record(&self, device_id: &str) -> Option<StoredAlarm> {
        self.records.lock().unwrap().get(device_id).cloned()
    }

    fn put(&self, device_id: &str, record: StoredAlarm) {
        self.records
            .lock()
            .unwrap()
            .insert(device_id.to_owned(), record);
    }
}

impl StateStore for FakeStore {
    async fn load(&self, device_id: &str) -> Result<StoredAlarm, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(self.record(device_id).unwrap_or_default())
    }

    async fn save(
        &self,
        device_id: &str,
        expected_version: u64,
        record: &StoredAlarm,
    ) -> Result<SaveOutcome, StoreError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        let mut records = self.records.lock().unwrap();
        if let Some(hook) = self.before_next_save.lock().unwrap().take() {
            hook(&mut records);
        }
        let current = records.get(device_id).map_or(0, |stored| stored.version);
        if current != expected_version {
            return Ok(SaveOutcome::Conflict);
        }
        let version = expected_version + 1;
        let mut stored = record.clone();
        stored.version = version;
        records.insert(device_id.to_owned(), stored);
        Ok(SaveOutcome::Saved { version })
    }
}

#[derive(Default)]
struct FakeNotifier {
    emails: Mutex<Vec<Alert>>,
    published: Mutex<Vec<Alert>>,
    /// Errors returned by the next email sends, in order.
    email_failures: Mutex<Vec<ServiceError>>,
    publish_failures: Mutex<Vec<ServiceError>>,
}

impl FakeNotifier {
    fn emails(&self) -> Vec<Alert> {
        self.emails.lock().unwrap().clone()
    }

    fn published(&self) -> Vec<Alert> {
        self.published.lock().unwrap().clone()
    }

    fn email_kinds(&self) -> Vec<AlertKind> {
        self.emails().iter().map(|alert| alert.kind).collect()
    }
}

impl Notifier for FakeNotifier {
    async fn send_email(&self, alert: &Alert) -> Result<String, ServiceError> {
        if let Some(error) = self.email_failures.lock().unwrap().pop() {
            return Err(error);
        }
        let mut emails = self.emails.lock().unwrap();
        emails.push(alert.clone());
        Ok(format!("msg-{}", emails.len()))
    }

    async fn publish_alert(&self, alert: &Alert) -> Result<(), ServiceError> {
        if let Some(error) = self.publish_failures.lock().unwrap().pop() {
            return Err(error);
        }
        self.published.lock().unwrap().push(alert.clone());
        Ok(())
    }
}

fn throttled(operation: &'static str) -> ServiceError {
    ServiceError {
        operation,
        retry: Retry::Retryable,
        message: "Throttling: rate exceeded".into(),
    }
}

fn config(mode: AlertMode) -> FunctionConfig {
    FunctionConfig {
        policy: PolicyConfig {
            mode,
            ..PolicyConfig::default()
        },
        topic_arn: "arn:aws:sns:us-east-1:123456789012:alerts".into(),
        table: Some("alarm-state".into()),
        alerts_topic: DEFAULT_ALERTS_TOPIC.into(),
        iot_data_endpoint: "http://127.0.0.1:1".into(),
    }
}

fn handler(mode: AlertMode) -> Handler<FakeStore, FakeNotifier> {
    Handler::new(
        config(mode),
        Some(FakeStore::default()),
        FakeNotifier::default(),
    )
}

fn invocation(request_id: &str) -> Invocation {
    Invocation {
        request_id: request_id.into(),
        deadline: OffsetDateTime::now_utc() + Duration::seconds(30),
    }
}

fn store(handler: &Handler<FakeStore, FakeNotifier>) -> &FakeStore {
    handler.store().unwrap()
}

async fn handle(
    handler: &Handler<FakeStore, FakeNotifier>,
    request_id: &str,
    event: Value,
) -> Outcome {
    handler
        .handle(&event, &invocation(request_id))
        .await
        .unwrap()
}

#[tokio::test]
async fn tutorial_events_once_per_excursion() {
    let handler = handler(AlertMode::OncePerExcursion);

    let cool = handle(&handler, "r1", json!({"temperature": 30})).await;
    assert_eq!(cool.status, Status::Unchanged);
    assert!(handler.notifier().emails().is_empty());

    let hot = handle(&handler, "r2", json!({"temperature": 40})).await;
    assert_eq!(hot.status, Status::Raised);
    assert_eq!(hot.device_id.as_deref(), Some("unknown"));
    assert_eq!(handler.notifier().email_kinds(), vec![AlertKind::Raised]);
    let published = handler.notifier().published();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].notification,
        Notification::Sent { id: "msg-1".into() }
    );
    assert_eq!(published[0].source, crate::AlertSource::Aws);

    let again = handle(&handler, "r3", json!({"temperature": 40})).await;
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(handler.notifier().emails().len(), 1);
    assert_eq!(handler.notifier().published().len(), 1);

    let record = store(&handler).record("unknown").unwrap();
    assert!(record.state.raised);
    assert_eq!(record.pending, None);
}

#[tokio::test]
async fn tutorial_events_every_mode() {
    let handler: Handler<FakeStore, FakeNotifier> =
        Handler::new(config(AlertMode::Every), None, FakeNotifier::default());

    let cool = handle(&handler, "r1", json!({"temperature": 30})).await;
    assert_eq!(cool.status, Status::Unchanged);
    assert!(handler.notifier().emails().is_empty());

    assert_eq!(
        handle(&handler, "r2", json!({"temperature": 40}))
            .await
            .status,
        Status::Raised
    );
    assert_eq!(handler.notifier().emails().len(), 1);
    assert_eq!(
        handle(&handler, "r3", json!({"temperature": "40"}))
            .await
            .status,
        Status::Raised
    );
    assert_eq!(
        handler.notifier().email_kinds(),
        vec![AlertKind::Raised, AlertKind::Raised]
    );
    assert_eq!(handler.notifier().published().len(), 2);
}

#[tokio::test]
async fn every_mode_touches_no_state() {
    let handler = Handler::new(
        config(AlertMode::Every),
        Some(FakeStore::default()),
        FakeNotifier::default(),
    );
    let outcome = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert_eq!(outcome.status, Status::Raised);
    assert_eq!(outcome.state_before, None);
    assert_eq!(store(&handler).loads.load(Ordering::SeqCst), 0);
    assert_eq!(store(&handler).saves.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_events_ignored_with_reason() {
    let big = json!({"temperature": 40, "padding": "x".repeat(200 * 1024)});
    let cases = [
        (json!(null), "event is null, expected a JSON object"),
        (
            json!({"deviceId": "d1"}),
            "event has no \"temperature\" field",
        ),
        (
            json!({"temperature": "hot"}),
            "temperature \"hot\" is not a decimal number",
        ),
        (
            json!({"temperature": "36.2°C"}),
            "temperature \"36.2°C\" is not a decimal number",
        ),
        (json!({"temperature": true}), "temperature is a boolean"),
        (
            json!({"temperature": "NaN"}),
            "temperature \"NaN\" is not a decimal number",
        ),
        (
            json!({"temperature": "Infinity"}),
            "temperature \"Infinity\" is not a decimal number",
        ),
        (
            json!({"temperature": "-Infinity"}),
            "temperature \"-Infinity\" is not a decimal number",
        ),
        (
            json!({"temperature": {"value": 40}}),
            "temperature is an object",
        ),
        (json!([{"temperature": 40}]), "event is an array"),
        (json!({"temperature": [40]}), "temperature is an array"),
        (json!("40"), "event is a string"),
        (
            json!({"temperature": 40, "deviceId": 7}),
            "\"deviceId\" is a number",
        ),
        (big, "larger than the 131072-byte limit"),
    ];
    for mode in [AlertMode::OncePerExcursion, AlertMode::Every] {
        let handler = handler(mode);
        for (event, expected) in &cases {
            let outcome = handle(&handler, "r", event.clone()).await;
            assert_eq!(outcome.status, Status::Ignored, "{mode}: {event:.80}");
            let reason = outcome.reason.unwrap();
            assert!(reason.contains(expected), "{mode}: {reason}");
        }
        assert!(handler.notifier().emails().is_empty(), "{mode}");
        assert!(handler.notifier().published().is_empty(), "{mode}");
        assert_eq!(store(&handler).loads.load(Ordering::SeqCst), 0, "{mode}");
        assert_eq!(store(&handler).saves.load(Ordering::SeqCst), 0, "{mode}");
    }
}

#[tokio::test]
async fn ignored_outcome_json() {
    let handler = handler(AlertMode::OncePerExcursion);
    let outcome = handle(&handler, "r1", json!({"temperature": true})).await;
    assert_eq!(
        serde_json::to_value(outcome).unwrap(),
        json!({
            "status": "ignored",
            "reason": "temperature is a boolean, expected a number or a numeric string such as \"36.20\""
        })
    );
}

#[tokio::test]
async fn raise_then_clear_per_device() {
    let handler = handler(AlertMode::OncePerExcursion);
    let reading = |temperature: f64, seq: u64| {
        json!({"temperature": temperature, "deviceId": "d1", "seq": seq,
               "timestamp": format!("2026-12-04T10:00:{seq:02}.000Z")})
    };
    assert_eq!(
        handle(&handler, "r1", reading(36.0, 1)).await.status,
        Status::Raised
    );
    assert_eq!(
        handle(&handler, "r2", reading(34.5, 2)).await.status,
        Status::Unchanged
    );
    let other = handle(&handler, "r3", json!({"temperature": 20, "deviceId": "d2"})).await;
    assert_eq!(other.status, Status::Unchanged);
    let cleared = handle(&handler, "r4", reading(34.0, 3)).await;
    assert_eq!(cleared.status, Status::Cleared);
    assert_eq!(cleared.state_before.map(|s| s.raised), Some(true));
    assert_eq!(cleared.state_after, Some(AlarmState::default()));
    assert_eq!(
        handler.notifier().email_kinds(),
        vec![AlertKind::Raised, AlertKind::Cleared]
    );
    let cleared_alert = cleared.alert.unwrap();
    assert_eq!(cleared_alert.reading_seq, Some(3));
    assert_eq!(cleared_alert.clear_level, 34.0);
}

#[tokio::test]
async fn reminders_follow_event_time() {
    let mut config = config(AlertMode::OncePerExcursion);
    config.policy.cooldown_seconds = 60;
    let handler = Handler::new(config, Some(FakeStore::default()), FakeNotifier::default());
    let mut statuses = Vec::new();
    for (index, second) in [0, 30, 59, 60, 90, 120].into_iter().enumerate() {
        let timestamp = format!("2026-12-04T10:{:02}:{:02}.000Z", second / 60, second % 60);
        let event =
            json!({"temperature": 37, "deviceId": "d1", "seq": index, "timestamp": timestamp});
        statuses.push(handle(&handler, &format!("r{index}"), event).await.status);
    }
    let expected = [
        Status::Raised,
        Status::Unchanged,
        Status::Unchanged,
        Status::Reminder,
        Status::Unchanged,
        Status::Reminder,
    ];
    assert_eq!(statuses, expected);
    assert_eq!(handler.notifier().emails().len(), 3);
}

#[tokio::test]
async fn raise_outcome_json() {
    let handler = handler(AlertMode::OncePerExcursion);
    let outcome = handle(
        &handler,
        "r1",
        json!({"temperature": "40", "deviceId": "d1", "seq": 4}),
    )
    .await;
    let value = serde_json::to_value(outcome).unwrap();
    assert_eq!(value["status"], "raised");
    assert_eq!(value["deviceId"], "d1");
    assert_eq!(value["temperature"], 40.0);
    assert_eq!(value["threshold"], 35.0);
    assert_eq!(value["mode"], "once-per-excursion");
    assert_eq!(value["stateBefore"]["raised"], false);
    assert_eq!(value["stateAfter"]["raised"], true);
    assert_eq!(value["alert"]["kind"], "raised");
    assert_eq!(value["alert"]["source"], "aws");
    assert_eq!(value["alert"]["readingSeq"], 4);
    assert_eq!(
        value["alert"]["notification"],
        json!({"status": "sent", "id": "msg-1"})
    );
    assert!(value.get("alreadyDecided").is_none());
    assert!(value.get("stateConflicts").is_none());
}

#[tokio::test]
async fn lost_race_decides_again() {
    let handler = handler(AlertMode::OncePerExcursion);
    // Another invocation raises the alarm and finishes between this one's read and write.
    let now_ms =
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
    let rival: SaveHook = Box::new(move |records| {
        let raised = StoredAlarm {
            version: 2,
            state: AlarmState {
                raised: true,
                hot_streak: 0,
                raised_at_ms: Some(now_ms),
                last_notified_ms: Some(now_ms),
            },
            last_request_id: Some("rival".into()),
            last_decision: Some(crate::Decision::Raised),
            ..StoredAlarm::default()
        };
        records.insert("unknown".into(), raised);
    });
    *store(&handler).before_next_save.lock().unwrap() = Some(rival);

    let outcome = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert_eq!(outcome.status, Status::Unchanged);
    assert_eq!(outcome.state_conflicts, 1);
    assert!(handler.notifier().emails().is_empty());
    assert_eq!(store(&handler).record("unknown").unwrap().version, 2);
}

#[tokio::test]
async fn retry_finishes_recorded_email() {
    let handler = handler(AlertMode::OncePerExcursion);
    handler
        .notifier()
        .email_failures
        .lock()
        .unwrap()
        .push(throttled("sns:Publish"));

    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.EmailSend");
    assert!(handler.notifier().emails().is_empty());
    // The desktop app still hears of the alert, with the error.
    let published = handler.notifier().published();
    assert_eq!(published.len(), 1);
    assert!(
        matches!(&published[0].notification, Notification::Failed { error } if error.contains("Throttling"))
    );
    let record = store(&handler).record("unknown").unwrap();
    assert!(record.state.raised);
    let pending = record.pending.unwrap();
    assert_eq!(
        pending.lease_until_ms, 0,
        "the lease is released for the retry"
    );
    assert!(pending.last_error.unwrap().contains("sns:Publish failed"));

    // Lambda's retry carries the same request id and the same event.
    let retry = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert_eq!(retry.status, Status::Raised);
    assert!(retry.already_decided);
    assert_eq!(handler.notifier().email_kinds(), vec![AlertKind::Raised]);
    assert_eq!(
        retry.alert.unwrap().notification,
        Notification::Sent { id: "msg-1".into() }
    );
    assert_eq!(store(&handler).record("unknown").unwrap().pending, None);

    // A third attempt finds the decision done and sends nothing.
    let third = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert!(third.already_decided);
    assert_eq!(handler.notifier().emails().len(), 1);
}

#[tokio::test]
async fn publish_retry_sends_email_once() {
    let handler = handler(AlertMode::OncePerExcursion);
    handler
        .notifier()
        .publish_failures
        .lock()
        .unwrap()
        .push(throttled("iot:Publish"));

    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.AlertPublish");
    assert_eq!(handler.notifier().emails().len(), 1);
    let pending = store(&handler).record("unknown").unwrap().pending.unwrap();
    assert_eq!(pending.email_message_id.as_deref(), Some("msg-1"));

    let retry = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert!(retry.already_decided);
    assert_eq!(handler.notifier().emails().len(), 1, "email went out once");
    assert_eq!(handler.notifier().published().len(), 1);
}

#[tokio::test]
async fn next_invocation_finishes_abandoned_alert() {
    let handler = handler(AlertMode::OncePerExcursion);
    // A raise recorded by an invocation that stopped before sending, with its lease over.
    handler
        .handle(&json!({"temperature": 40}), &invocation("dead"))
        .await
        .unwrap();
    let mut record = store(&handler).record("unknown").unwrap();
    let mut pending =
        PendingAlert::new(handler.notifier().emails()[0].clone(), &invocation("dead"));
    pending.alert.notification = Notification::Pending;
    pending.lease_until_ms = 1;
    record.pending = Some(pending);
    store(&handler).put("unknown", record);

    let outcome = handle(&handler, "r2", json!({"temperature": 20})).await;
    assert_eq!(outcome.finished_earlier_alerts, vec![AlertKind::Raised]);
    assert_eq!(outcome.status, Status::Cleared);
    assert_eq!(
        handler.notifier().email_kinds(),
        vec![AlertKind::Raised, AlertKind::Raised, AlertKind::Cleared]
    );
    assert_eq!(store(&handler).record("unknown").unwrap().pending, None);
}

#[tokio::test]
async fn live_lease_makes_others_wait() {
    let handler = handler(AlertMode::OncePerExcursion);
    let owner = invocation("owner");
    let alert = {
        let event = crate::parse_event(&json!({"temperature": 40})).unwrap();
        Alert::new(
            AlertKind::Raised,
            &event,
            35.0,
            34.0,
            OffsetDateTime::now_utc(),
            crate::AlertSource::Aws,
        )
    };
    let record = StoredAlarm {
        version: 1,
        pending: Some(PendingAlert::new(alert, &owner)),
        ..StoredAlarm::default()
    };
    store(&handler).put("unknown", record);

    let short = Invocation {
        request_id: "r2".into(),
        deadline: OffsetDateTime::now_utc() + Duration::milliseconds(700),
    };
    let error = handler
        .handle(&json!({"temperature": 41}), &short)
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.StateBusy");
    assert!(error.to_string().contains("locked by invocation owner"));
    assert!(
        store(&handler).loads.load(Ordering::SeqCst) > 1,
        "it read again while waiting"
    );
    assert!(handler.notifier().emails().is_empty());
}

#[tokio::test]
async fn duplicate_reading_not_decided_twice() {
    let mut config = config(AlertMode::OncePerExcursion);
    config.policy.debounce = 2;
    let handler = Handler::new(config, Some(FakeStore::default()), FakeNotifier::default());
    let reading = json!({"temperature": 40, "deviceId": "d1", "session": "s", "seq": 1});
    let first = handle(&handler, "r1", reading.clone()).await;
    assert_eq!(first.status, Status::Unchanged);
    // The same reading delivered again under another request id must not count twice
    // towards the debounce.
    let duplicate = handle(&handler, "r2", reading).await;
    assert!(duplicate.already_decided);
    assert_eq!(store(&handler).record("d1").unwrap().state.hot_streak, 1);
    let next = json!({"temperature": 40, "deviceId": "d1", "session": "s", "seq": 2});
    assert_eq!(handle(&handler, "r3", next).await.status, Status::Raised);
}

#[tokio::test]
async fn once_mode_without_store_fails_permanently() {
    let handler: Handler<FakeStore, FakeNotifier> = Handler::new(
        config(AlertMode::OncePerExcursion),
        None,
        FakeNotifier::default(),
    );
    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Permanent.NoStateStore");
    let diagnostic = Diagnostic::from(error);
    assert!(diagnostic.error_message.contains("set ALARM_TABLE"));
}

#[tokio::test]
async fn long_text_fields_clipped() {
    let handler = handler(AlertMode::OncePerExcursion);
    let event =
        json!({"temperature": 40, "session": "s".repeat(5000), "timestamp": "t".repeat(5000)});
    let alert = handle(&handler, "r1", event).await.alert.unwrap();
    assert_eq!(alert.reading_session.unwrap().chars().count(), 128);
    assert_eq!(alert.reading_timestamp.unwrap().chars().count(), 128);
}

#[test]
fn invocation_deadline_from_context() {
    let now = OffsetDateTime::now_utc();
    let mut context = lambda_runtime::Context::default();
    context.request_id = "r1".into();
    let invocation = Invocation::from_context(&context, now);
    assert_eq!(invocation.deadline, now + Duration::seconds(3));

    let deadline = now + Duration::seconds(60);
    context.deadline = u64::try_from(deadline.unix_timestamp() * 1000).unwrap();
    let invocation = Invocation::from_context(&context, now);
    assert_eq!(
        invocation.deadline.unix_timestamp(),
        deadline.unix_timestamp()
    );
    assert_eq!(invocation.request_id, "r1");
}

#[test]
fn retry_classification_of_responses() {
    let cases = [
        (Some("Throttling"), 400, Retry::Retryable),
        (Some("ThrottlingException"), 400, Retry::Retryable),
        (
            Some("ProvisionedThroughputExceededException"),
            400,
            Retry::Retryable,
        ),
        (Some("RequestTimeout"), 400, Retry::Retryable),
        (None, 429, Retry::Retryable),
        (Some("InternalError"), 500, Retry::Retryable),
        (None, 503, Retry::Retryable),
        (Some("AuthorizationError"), 403, Retry::Permanent),
        (Some("AccessDeniedException"), 400, Retry::Permanent),
        (Some("NotFound"), 404, Retry::Permanent),
        (Some("ResourceNotFoundException"), 400, Retry::Permanent),
        (Some("InvalidParameter"), 400, Retry::Permanent),
    ];
    for (code, status, expected) in cases {
        assert_eq!(
            retry_for_response(code, status),
            expected,
            "{code:?} {status}"
        );
    }
}

fn publish_error(code: &str, status: u16) -> SdkError<PublishError, HttpResponse> {
    let error = PublishError::generic(
        ErrorMetadata::builder()
            .code(code)
            .message("details")
            .build(),
    );
    let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
    SdkError::service_error(error, raw)
}

#[test]
fn sdk_errors_become_diagnostics() {
    let denied = ServiceError::from_sdk("sns:Publish", &publish_error("AuthorizationError", 403));
    assert_eq!(denied.retry, Retry::Permanent);
    assert!(denied.to_string().starts_with("sns:Publish failed: "));
    assert!(
        denied.message.contains("AuthorizationError"),
        "{}",
        denied.message
    );

    let throttled = ServiceError::from_sdk("sns:Publish", &publish_error("Throttling", 400));
    assert_eq!(throttled.retry, Retry::Retryable);

    let timeout: SdkError<PublishError, HttpResponse> = SdkError::timeout_error("took too long");
    assert_eq!(
        ServiceError::from_sdk("sns:Publish", &timeout).retry,
        Retry::Retryable
    );

    let construction: SdkError<PublishError, HttpResponse> =
        SdkError::construction_failure("missing topic");
    assert_eq!(
        ServiceError::from_sdk("sns:Publish", &construction).retry,
        Retry::Permanent
    );

    let diagnostic = Diagnostic::from(FunctionError::EmailSend {
        device_id: "d1".into(),
        kind: "raised",
        source: denied,
    });
    assert_eq!(diagnostic.error_type, "Permanent.EmailSend");
    assert!(
        diagnostic
            .error_message
            .starts_with("sending the raised email for device \"d1\" failed: sns:Publish failed")
    );
}

#[tokio::test]
async fn invalid_record_fails_permanently() {
    struct BrokenStore;
    impl StateStore for BrokenStore {
        async fn load(&self, _: &str) -> Result<StoredAlarm, StoreError> {
            Err(StoreError::InvalidRecord {
                detail: "attribute \"version\" is missing".into(),
            })
        }
        async fn save(&self, _: &str, _: u64, _: &StoredAlarm) -> Result<SaveOutcome, StoreError> {
            Ok(SaveOutcome::Conflict)
        }
    }
    let handler = Handler::new(
        config(AlertMode::OncePerExcursion),
        Some(BrokenStore),
        FakeNotifier::default(),
    );
    let error = handler
        .handle(
            &json!({"temperature": 40, "deviceId": "d1"}),
            &invocation("r1"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Permanent.StateRead");
    assert!(
        error.to_string().contains(
            "reading the alarm state of device \"d1\" failed: the stored record is invalid"
        )
    );
}

#[tokio::test]
async fn endless_conflicts_give_up() {
    struct ConflictingStore;
    impl StateStore for ConflictingStore {
        async fn load(&self, _: &str) -> Result<StoredAlarm, StoreError> {
            Ok(StoredAlarm::default())
        }
        async fn save(&self, _: &str, _: u64, _: &StoredAlarm) -> Result<SaveOutcome, StoreError> {
            Ok(SaveOutcome::Conflict)
        }
    }
    let handler = Handler::new(
        config(AlertMode::OncePerExcursion),
        Some(ConflictingStore),
        FakeNotifier::default(),
    );
    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.StateContention");
    assert!(handler.notifier().emails().is_empty());
}

#[tokio::test]
async fn every_mode_publish_failure_not_retried() {
    let handler: Handler<FakeStore, FakeNotifier> =
        Handler::new(config(AlertMode::Every), None, FakeNotifier::default());
    handler
        .notifier()
        .publish_failures
        .lock()
        .unwrap()
        .push(throttled("iot:Publish"));
    let outcome = handle(&handler, "r1", json!({"temperature": 40})).await;
    assert_eq!(outcome.status, Status::Raised);
    assert_eq!(handler.notifier().emails().len(), 1);
    assert!(handler.notifier().published().is_empty());
}

#[tokio::test]
async fn every_mode_email_failure_fails_invocation() {
    let handler: Handler<FakeStore, FakeNotifier> =
        Handler::new(config(AlertMode::Every), None, FakeNotifier::default());
    handler
        .notifier()
        .email_failures
        .lock()
        .unwrap()
        .push(throttled("sns:Publish"));
    let error = handler
        .handle(&json!({"temperature": 40}), &invocation("r1"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type(), "Retryable.EmailSend");
}
