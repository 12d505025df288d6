//! The invocation handler: event checks, the decision against the stored alarm state, and
//! the delivery of the alert that decision calls for.
//!
//! In `once-per-excursion` mode each decision runs in a loop over the device's record:
//!
//! 1. Read the record. If a previous attempt of this invocation already recorded its
//!    decision (same request id, or the same reading), finish that decision and return it.
//! 2. If another invocation's alert is still pending and its lease is live, wait for it.
//!    Once the lease has ended, that invocation has stopped, so take the delivery over.
//! 3. Decide, and write the new state, with the alert as pending when there is one,
//!    conditional on the version read. A lost write means another invocation changed the
//!    state: go back to 1 and decide again on the new state.
//! 4. Email, publish on MQTT, then clear the pending alert.
//!
//! So two invocations never both send the same raise, and an alert whose delivery was
//! interrupted goes out later: delivery is at least once. It can go out twice only when an
//! invocation is still sending after its own deadline, or when clearing the pending alert
//! fails after the email went out.

use std::io;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::config::FunctionConfig;
use super::error::FunctionError;
use super::notifier::Notifier;
use super::outcome::Outcome;
use super::store::{PendingAlert, SaveOutcome, StateStore, StoredAlarm};
use crate::{
    AlarmState, Alert, AlertKind, AlertMode, AlertSource, Decision, EventError, MAX_EVENT_BYTES,
    Notification, Policy, ReadingEvent, parse_event,
};

/// Source of the current time; tests replace the wall clock.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Time added to an invocation's deadline before others may take over its pending alert,
/// for clock differences between Lambda hosts.
const LEASE_MARGIN: Duration = Duration::seconds(1);
/// Deadline assumed when the runtime gives none: Lambda's default timeout of 3 s.
const DEFAULT_TIMEOUT: Duration = Duration::seconds(3);
/// Time kept before the deadline to return an error, not time out, while waiting.
const DEADLINE_RESERVE: Duration = Duration::milliseconds(500);
/// First and longest pause between reads while another invocation holds the lease.
const FIRST_WAIT: StdDuration = StdDuration::from_millis(25);
const MAX_WAIT: StdDuration = StdDuration::from_millis(800);
/// Lost conditional writes after which the invocation gives up and lets Lambda retry.
const MAX_CONFLICTS: u32 = 16;
/// Longest `session` or `timestamp` text copied into alerts, in characters, so an alert
/// stays far below the 128 KB MQTT payload limit, SNS's 256 KB message limit and
/// DynamoDB's 400 KB item limit.
const MAX_TEXT_CHARS: usize = 128;

/// The parts of a Lambda invocation the handler uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Lambda keeps the request id when it retries an asynchronous invocation (AWS Knowledge
    /// Center, "lambda-function-duplicate-invocations").
    pub request_id: String,
    /// When Lambda stops the invocation.
    pub deadline: OffsetDateTime,
}

impl Invocation {
    /// Takes the request id and deadline from the runtime's context. A missing deadline
    /// (0) counts as Lambda's default timeout from `now`.
    #[must_use]
    pub fn from_context(context: &lambda_runtime::Context, now: OffsetDateTime) -> Self {
        let deadline_ns = i128::from(context.deadline) * 1_000_000;
        let deadline = OffsetDateTime::from_unix_timestamp_nanos(deadline_ns)
            .ok()
            .filter(|deadline| *deadline > now)
            .unwrap_or(now + DEFAULT_TIMEOUT);
        Self {
            request_id: context.request_id.clone(),
            deadline,
        }
    }

    fn lease_until_ms(&self) -> i64 {
        unix_ms(self.deadline + LEASE_MARGIN)
    }
}

/// The alert function with its settings, state store and notifier.
pub struct Handler<S, N> {
    config: FunctionConfig,
    policy: Policy,
    /// `None` only in `every` mode, which keeps no state.
    store: Option<S>,
    notifier: N,
    clock: Clock,
}

impl<S: StateStore, N: Notifier> Handler<S, N> {
    /// Creates the handler. `store` may be `None` only when the mode is `every`. Without a
    /// store, every reading in `once-per-excursion` mode fails with a permanent error.
    #[must_use]
    pub fn new(config: FunctionConfig, store: Option<S>, notifier: N) -> Self {
        Self {
            policy: Policy::new(config.policy),
            config,
            store,
            notifier,
            clock: Arc::new(OffsetDateTime::now_utc),
        }
    }

    /// Replaces the wall clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    #[must_use]
    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }

    #[must_use]
    pub fn store(&self) -> Option<&S> {
        self.store.as_ref()
    }

    #[must_use]
    pub fn notifier(&self) -> &N {
        &self.notifier
    }

    /// Handles one Lambda event.
    pub async fn handle_lambda(
        &self,
        event: lambda_runtime::LambdaEvent<Value>,
    ) -> Result<Outcome, FunctionError> {
        let invocation = Invocation::from_context(&event.context, (self.clock)());
        self.handle(&event.payload, &invocation).await
    }

    /// Judges one topic-rule result. Events that are not readings return status
    /// `ignored` with the reason, and store and send nothing.
    pub async fn handle(
        &self,
        event: &Value,
        invocation: &Invocation,
    ) -> Result<Outcome, FunctionError> {
        let received_at = (self.clock)();
        let reading = match read_event(event) {
            Ok(reading) => reading,
            Err(error) => {
                let reason = error.to_string();
                tracing::warn!(reason = %reason, "event ignored");
                return Ok(Outcome::ignored(reason));
            }
        };
        match self.config.policy.mode {
            AlertMode::Every => self.handle_every(&reading, invocation, received_at).await,
            AlertMode::OncePerExcursion => {
                let Some(store) = &self.store else {
                    return Err(FunctionError::NoStateStore);
                };
                self.handle_once(store, &reading, invocation, received_at)
                    .await
            }
        }
    }

    /// `every` mode: one email per reading above the threshold, no state.
    async fn handle_every(
        &self,
        reading: &ReadingEvent,
        invocation: &Invocation,
        received_at: OffsetDateTime,
    ) -> Result<Outcome, FunctionError> {
        let at = reading.event_time.unwrap_or(received_at);
        let (decision, _) = self
            .policy
            .decide(&AlarmState::default(), reading.temperature, at);
        self.log_decision(reading, decision, None, None);
        let mut outcome = self.outcome(decision, reading);
        if let Some(kind) = decision.alert_kind() {
            let alert = self.alert(kind, reading, received_at);
            let mut pending = PendingAlert::new(alert, invocation);
            match self.send(&mut pending).await {
                Ok(()) => {}
                // Without state a retry would email again, so a lost MQTT alert is logged
                // and the invocation still succeeds.
                Err(error @ FunctionError::AlertPublish { .. }) => tracing::error!(
                    device_id = %reading.device_id,
                    %error,
                    "the alert was emailed but not published on MQTT"
                ),
                Err(error) => return Err(error),
            }
            outcome.alert = Some(pending.alert);
        }
        Ok(outcome)
    }

    async fn handle_once(
        &self,
        store: &S,
        reading: &ReadingEvent,
        invocation: &Invocation,
        received_at: OffsetDateTime,
    ) -> Result<Outcome, FunctionError> {
        let device_id = reading.device_id.as_str();
        let key = reading_key(reading);
        let mut conflicts = 0;
        let mut wait = FIRST_WAIT;
        let mut finished_earlier = Vec::new();
        loop {
            let stored =
                store
                    .load(device_id)
                    .await
                    .map_err(|source| FunctionError::StateRead {
                        device_id: device_id.to_owned(),
                        source,
                    })?;
            let already_decided = is_retry(&stored, invocation, key.as_deref());
            if let Some(pending) = &stored.pending {
                if self.lease_is_live(pending, invocation) {
                    self.wait_for_lease(&mut wait, pending, device_id, invocation)
                        .await?;
                    continue;
                }
                let Some(alert) = self
                    .take_over(store, device_id, &stored, invocation)
                    .await?
                else {
                    conflicts = count_conflict(conflicts, device_id)?;
                    continue;
                };
                if already_decided {
                    // The pending alert was this invocation's own decision: it is done now.
                    let mut outcome = self.recorded_outcome(&stored, reading);
                    outcome.alert = Some(alert);
                    return Ok(outcome);
                }
                finished_earlier.push(alert.kind);
                continue;
            }
            if already_decided {
                return Ok(self.recorded_outcome(&stored, reading));
            }

            let at = reading.event_time.unwrap_or(received_at);
            let (decision, next) = self.policy.decide(&stored.state, reading.temperature, at);
            let alert = decision
                .alert_kind()
                .map(|kind| self.alert(kind, reading, received_at));
            let mut outcome = self.outcome(decision, reading);
            outcome.state_before = Some(stored.state);
            outcome.state_after = Some(next);
            outcome.state_conflicts = conflicts;
            outcome.finished_earlier_alerts = std::mem::take(&mut finished_earlier);
            if alert.is_none() && next == stored.state {
                self.log_decision(reading, decision, Some(&stored.state), Some(&next));
                return Ok(outcome);
            }

            let mut record = StoredAlarm {
                version: stored.version,
                state: next,
                pending: alert.map(|alert| PendingAlert::new(alert, invocation)),
                last_request_id: Some(invocation.request_id.clone()),
                last_reading: key.clone(),
                last_decision: Some(decision),
            };
            match self.save(store, device_id, stored.version, &record).await? {
                SaveOutcome::Saved { version } => record.version = version,
                SaveOutcome::Conflict => {
                    conflicts = count_conflict(conflicts, device_id)?;
                    finished_earlier = outcome.finished_earlier_alerts;
                    continue;
                }
            }
            self.log_decision(reading, decision, Some(&stored.state), Some(&next));
            outcome.alert = self.deliver(store, device_id, record).await?;
            return Ok(outcome);
        }
    }

    fn lease_is_live(&self, pending: &PendingAlert, invocation: &Invocation) -> bool {
        pending.owner != invocation.request_id && pending.lease_until_ms > unix_ms((self.clock)())
    }

    /// Sleeps before the next read while another invocation delivers an alert for the
    /// device, and fails when this invocation's deadline comes too close.
    async fn wait_for_lease(
        &self,
        wait: &mut StdDuration,
        pending: &PendingAlert,
        device_id: &str,
        invocation: &Invocation,
    ) -> Result<(), FunctionError> {
        let latest_wake = (self.clock)() + *wait + DEADLINE_RESERVE;
        if latest_wake > invocation.deadline {
            return Err(FunctionError::StateBusy {
                device_id: device_id.to_owned(),
                owner: pending.owner.clone(),
                kind: pending.alert.kind.as_str(),
            });
        }
        tracing::debug!(
            device_id,
            owner = %pending.owner,
            wait_ms = wait.as_millis(),
            "waiting for another invocation to deliver its alert"
        );
        tokio::time::sleep(*wait).await;
        *wait = (*wait * 2).min(MAX_WAIT);
        Ok(())
    }

    /// Claims a pending alert whose owner stopped, and delivers it. Returns `None` when
    /// another invocation claimed or changed the record first.
    async fn take_over(
        &self,
        store: &S,
        device_id: &str,
        stored: &StoredAlarm,
        invocation: &Invocation,
    ) -> Result<Option<Alert>, FunctionError> {
        let mut record = stored.clone();
        let Some(pending) = record.pending.as_mut() else {
            return Ok(None);
        };
        pending.owner.clone_from(&invocation.request_id);
        pending.lease_until_ms = invocation.lease_until_ms();
        let (kind, decided_by) = (pending.alert.kind, pending.decided_by.clone());
        let (attempts, last_error) = (pending.attempts, pending.last_error.clone());
        match self.save(store, device_id, stored.version, &record).await? {
            SaveOutcome::Saved { version } => record.version = version,
            SaveOutcome::Conflict => return Ok(None),
        }
        tracing::info!(
            device_id,
            kind = kind.as_str(),
            decided_by = %decided_by,
            attempts,
            last_error = last_error.as_deref().unwrap_or(""),
            "finishing the delivery of an alert recorded earlier"
        );
        self.deliver(store, device_id, record).await
    }

    /// Sends the pending alert of `record`, which this invocation owns at
    /// `record.version`, then removes it from the record. On failure the lease is
    /// released so that the retry, or the next reading, can finish the delivery at once.
    async fn deliver(
        &self,
        store: &S,
        device_id: &str,
        mut record: StoredAlarm,
    ) -> Result<Option<Alert>, FunctionError> {
        let Some(mut pending) = record.pending.take() else {
            return Ok(None);
        };
        let version = record.version;
        if let Err(error) = self.send(&mut pending).await {
            pending.lease_until_ms = 0;
            pending.last_error = Some(error.to_string());
            record.pending = Some(pending);
            match store.save(device_id, version, &record).await {
                Ok(SaveOutcome::Saved { .. }) => {}
                Ok(SaveOutcome::Conflict) => tracing::warn!(
                    device_id,
                    "could not release the lease on the undelivered alert: the record changed"
                ),
                Err(save_error) => tracing::warn!(
                    device_id,
                    error = %save_error,
                    "could not release the lease on the undelivered alert; it is taken over \
                     when the lease ends"
                ),
            }
            return Err(error);
        }
        match self.save(store, device_id, version, &record).await? {
            SaveOutcome::Saved { .. } => {}
            SaveOutcome::Conflict => tracing::warn!(
                device_id,
                kind = pending.alert.kind.as_str(),
                "another invocation took the alert over after this one's lease ended, so it \
                 may go out twice"
            ),
        }
        Ok(Some(pending.alert))
    }

    /// Emails the alert unless that was done before, then publishes it on MQTT with the
    /// email's message id. When the email fails, the alert is still published with the
    /// error, so the desktop app shows it.
    async fn send(&self, pending: &mut PendingAlert) -> Result<(), FunctionError> {
        pending.attempts += 1;
        let device_id = pending.alert.device_id.clone();
        let kind = pending.alert.kind.as_str();
        let message_id = match pending.email_message_id.clone() {
            Some(id) => id,
            None => match self.notifier.send_email(&pending.alert).await {
                Ok(id) => id,
                Err(source) => {
                    let mut failed = pending.alert.clone();
                    failed.notification = Notification::Failed {
                        error: source.to_string(),
                    };
                    if let Err(publish_error) = self.notifier.publish_alert(&failed).await {
                        tracing::warn!(device_id, error = %publish_error, "publishing the failed alert failed too");
                    }
                    return Err(FunctionError::EmailSend {
                        device_id,
                        kind,
                        source,
                    });
                }
            },
        };
        pending.email_message_id = Some(message_id.clone());
        pending.alert.notification = Notification::Sent { id: message_id };
        self.notifier
            .publish_alert(&pending.alert)
            .await
            .map_err(|source| FunctionError::AlertPublish {
                device_id,
                kind,
                source,
            })?;
        tracing::info!(
            device_id = %pending.alert.device_id,
            kind,
            message_id = pending.email_message_id.as_deref().unwrap_or(""),
            "alert emailed and published"
        );
        Ok(())
    }

    async fn save(
        &self,
        store: &S,
        device_id: &str,
        expected_version: u64,
        record: &StoredAlarm,
    ) -> Result<SaveOutcome, FunctionError> {
        store
            .save(device_id, expected_version, record)
            .await
            .map_err(|source| FunctionError::StateWrite {
                device_id: device_id.to_owned(),
                source,
            })
    }

    fn alert(&self, kind: AlertKind, reading: &ReadingEvent, received_at: OffsetDateTime) -> Alert {
        let policy = &self.config.policy;
        Alert::new(
            kind,
            reading,
            policy.threshold,
            policy.clear_level(),
            received_at,
            AlertSource::Aws,
        )
    }

    fn outcome(&self, decision: Decision, reading: &ReadingEvent) -> Outcome {
        let policy = &self.config.policy;
        Outcome::decided(decision, reading, policy.threshold, policy.mode)
    }

    /// Builds the result for a decision recorded by an earlier attempt of this invocation.
    fn recorded_outcome(&self, stored: &StoredAlarm, reading: &ReadingEvent) -> Outcome {
        let decision = stored.last_decision.unwrap_or(Decision::Unchanged);
        tracing::info!(
            device_id = %reading.device_id,
            decision = decision.as_str(),
            "decision already recorded by an earlier attempt; not deciding again"
        );
        let mut outcome = self.outcome(decision, reading);
        outcome.state_after = Some(stored.state);
        outcome.already_decided = true;
        outcome
    }

    fn log_decision(
        &self,
        reading: &ReadingEvent,
        decision: Decision,
        before: Option<&AlarmState>,
        after: Option<&AlarmState>,
    ) {
        tracing::info!(
            device_id = %reading.device_id,
            temperature = reading.temperature,
            threshold = self.config.policy.threshold,
            mode = self.config.policy.mode.as_str(),
            decision = decision.as_str(),
            state_before = %state_json(before),
            state_after = %state_json(after),
            reading_seq = reading.seq,
            "alert decision"
        );
    }
}

impl PendingAlert {
    /// Creates a pending alert decided and owned by `invocation`.
    #[must_use]
    pub fn new(alert: Alert, invocation: &Invocation) -> Self {
        Self {
            alert,
            decided_by: invocation.request_id.clone(),
            owner: invocation.request_id.clone(),
            lease_until_ms: invocation.lease_until_ms(),
            email_message_id: None,
            attempts: 0,
            last_error: None,
        }
    }
}

fn count_conflict(conflicts: u32, device_id: &str) -> Result<u32, FunctionError> {
    let conflicts = conflicts + 1;
    tracing::debug!(
        device_id,
        conflicts,
        "alarm state changed meanwhile; deciding again"
    );
    if conflicts >= MAX_CONFLICTS {
        return Err(FunctionError::StateContention {
            device_id: device_id.to_owned(),
            conflicts,
        });
    }
    Ok(conflicts)
}

/// Returns whether `stored` already contains this invocation's decision, recorded under the
/// same request id (an asynchronous retry) or for the same reading (a duplicate delivery).
fn is_retry(stored: &StoredAlarm, invocation: &Invocation, reading_key: Option<&str>) -> bool {
    let same_request = stored.last_request_id.as_deref() == Some(invocation.request_id.as_str());
    let same_reading = reading_key.is_some() && stored.last_reading.as_deref() == reading_key;
    same_request || same_reading
}

/// Identity of a reading for de-duplication: session, sequence number and timestamp, when
/// the rule selected a sequence number. Readings of the tutorial's rule have none.
#[must_use]
pub fn reading_key(reading: &ReadingEvent) -> Option<String> {
    let seq = reading.seq?;
    let session = reading.session.as_deref().unwrap_or("");
    let timestamp = reading.timestamp.as_deref().unwrap_or("");
    Some(format!("{session}/{seq}/{timestamp}"))
}

/// Checks the size of an event, parses it, and shortens long text fields.
fn read_event(event: &Value) -> Result<ReadingEvent, EventError> {
    if let Some(size) = oversize(event) {
        return Err(EventError::TooLarge { size });
    }
    let mut reading = parse_event(event)?;
    reading.session = reading.session.map(clip);
    reading.timestamp = reading.timestamp.map(clip);
    Ok(reading)
}

/// Returns the JSON size of an event larger than [`MAX_EVENT_BYTES`].
fn oversize(event: &Value) -> Option<usize> {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // The counter never returns an error and `Value` maps have string keys, so this
    // serialization does not fail.
    serde_json::to_writer(&mut counter, event).ok()?;
    (counter.0 > MAX_EVENT_BYTES).then_some(counter.0)
}

fn clip(text: String) -> String {
    if text.chars().count() <= MAX_TEXT_CHARS {
        return text;
    }
    let mut clipped: String = text.chars().take(MAX_TEXT_CHARS - 1).collect();
    clipped.push('…');
    clipped
}

fn state_json(state: Option<&AlarmState>) -> String {
    match state {
        Some(state) => serde_json::to_string(state).unwrap_or_default(),
        None => "none".to_owned(),
    }
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
