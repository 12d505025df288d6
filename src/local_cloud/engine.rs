//! The local rules engine: evaluates the topic rule on every message the broker delivers
//! for its `FROM` filter, judges matches with the alert library, and sends each alert to
//! the outbox and the alerts topic. Every evaluation leaves a [`RuleTrace`].

use std::collections::{BTreeSet, HashMap};

use rumqttc::QoS;
use serde::Serialize;
use temperature_alert::{Alert, Decision, Monitor, PolicyConfig, parse_event};
use tokio::sync::mpsc;
use tracing::{debug, error, info};

use super::outbox::Outbox;
use super::rules::{EvalContext, Evaluation, Rule};
use crate::mqtt::{Link, Message};
use crate::sensor::{ALERTS_TOPIC, Clock};

/// The outcome of evaluating the rule on one message, for tests and the trace view.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleTrace {
    pub topic: String,
    /// `deviceId` and `seq` of the message when it has them, whatever the rule selects.
    pub device_id: Option<String>,
    pub seq: Option<u64>,
    pub outcome: TraceOutcome,
}

/// Result of evaluating the rule on a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum TraceOutcome {
    /// The rule matched and the alert policy decided.
    Decided {
        decision: Decision,
        temperature: f64,
        alert: Option<Alert>,
    },
    /// The rule did not fire: the topic did not match, or `WHERE` was false.
    NotMatched { reason: String },
    /// `WHERE` was Undefined, so the rule did not fire, as in AWS IoT.
    Undefined { reason: String },
    /// The payload is not a JSON object.
    InvalidPayload { reason: String },
    /// The rule matched but its result is no reading the policy can judge.
    Rejected { reason: String },
    /// The same reading arrived again, after a reconnection, and was not judged twice.
    Duplicate { reason: String },
}

impl TraceOutcome {
    /// The reason the message raised nothing, if it did not reach the policy.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Decided { .. } => None,
            Self::NotMatched { reason }
            | Self::Undefined { reason }
            | Self::InvalidPayload { reason }
            | Self::Rejected { reason }
            | Self::Duplicate { reason } => Some(reason),
        }
    }
}

/// Changes sent to a running engine.
#[derive(Debug)]
pub enum EngineCommand {
    SetRule(Box<Rule>),
    SetPolicy(PolicyConfig),
}

/// Receiver of the engine's traces and errors.
pub trait EngineObserver: Send + 'static {
    fn trace(&self, trace: RuleTrace);
    fn error(&self, message: String);
}

/// The state of the rules engine task.
pub struct Engine<O> {
    pub rule: Rule,
    pub monitor: Monitor,
    pub outbox: Outbox,
    pub link: Link,
    pub clock: Clock,
    pub observer: O,
    pub seen: SeenReadings,
}

impl<O: EngineObserver> Engine<O> {
    /// Runs until both channels close.
    pub async fn run(
        mut self,
        mut messages: mpsc::Receiver<Message>,
        mut commands: mpsc::Receiver<EngineCommand>,
    ) {
        loop {
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.apply(command),
                    None => return,
                },
                message = messages.recv() => match message {
                    Some(message) => self.handle(&message),
                    None => return,
                },
            }
        }
    }

    fn apply(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::SetRule(rule) => {
                let old = self.rule.topic_filter().to_owned();
                if let Err(error) = self.link.replace_subscription(&old, rule.topic_filter()) {
                    self.observer.error(format!("rule not applied: {error}"));
                    return;
                }
                info!(sql = rule.sql(), "topic rule replaced");
                self.rule = *rule;
            }
            EngineCommand::SetPolicy(config) => self.monitor.set_config(config),
        }
    }

    fn handle(&mut self, message: &Message) {
        // Alerts are the engine's own output; evaluating them under a broad filter such as
        // `#` would judge alerts as readings.
        if message.topic == ALERTS_TOPIC {
            return;
        }
        let trace = self.evaluate(message);
        debug!(topic = %trace.topic, seq = trace.seq, outcome = ?trace.outcome, "rule evaluated");
        self.observer.trace(trace);
    }

    fn evaluate(&mut self, message: &Message) -> RuleTrace {
        let now = self.clock.now();
        let Identity {
            device_id,
            session,
            seq,
        } = identify(&message.payload);
        if let (Some(device), Some(session), Some(seq)) = (&device_id, &session, seq)
            && self.seen.is_repeat(device, session, seq)
        {
            let reason = format!("reading {seq} of session {session} was already judged");
            return RuleTrace {
                topic: message.topic.clone(),
                device_id,
                seq: Some(seq),
                outcome: TraceOutcome::Duplicate { reason },
            };
        }
        let context = EvalContext {
            timestamp_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
        };
        let outcome = match self
            .rule
            .evaluate(&message.topic, &message.payload, &context)
        {
            Evaluation::Matched(result) => {
                self.judge(&serde_json::Value::Object(result), session.as_deref(), now)
            }
            Evaluation::TopicMismatch => TraceOutcome::NotMatched {
                reason: format!(
                    "topic {} does not match {}",
                    message.topic,
                    self.rule.topic_filter()
                ),
            },
            Evaluation::NotMatched { reason } => TraceOutcome::NotMatched { reason },
            Evaluation::Undefined { reason } => TraceOutcome::Undefined { reason },
            Evaluation::InvalidPayload { reason } => TraceOutcome::InvalidPayload { reason },
        };
        RuleTrace {
            topic: message.topic.clone(),
            device_id,
            seq,
            outcome,
        }
    }

    /// Judges a rule result. `session` comes from the whole reading, so alerts name the
    /// emulator run even when the rule does not select `session`.
    fn judge(
        &mut self,
        result: &serde_json::Value,
        session: Option<&str>,
        now: time::OffsetDateTime,
    ) -> TraceOutcome {
        let mut event = match parse_event(result) {
            Ok(event) => event,
            Err(error) => {
                return TraceOutcome::Rejected {
                    reason: error.to_string(),
                };
            }
        };
        if event.session.is_none() && event.seq.is_some() {
            event.session = session.map(str::to_owned);
        }
        let (decision, alert) = self.monitor.observe(&event, now);
        let alert = alert.map(|mut alert| {
            self.send(&mut alert);
            alert
        });
        TraceOutcome::Decided {
            decision,
            temperature: event.temperature,
            alert,
        }
    }

    fn send(&self, alert: &mut Alert) {
        if let Err(error) = self.outbox.deliver(alert) {
            error!(%error, device_id = %alert.device_id, "alert not recorded in the journal");
            self.observer.error(format!("alert not recorded: {error}"));
        }
        info!(kind = alert.kind.as_str(), device_id = %alert.device_id, temperature = alert.temperature, "alert");
        match serde_json::to_vec(alert) {
            Ok(payload) => {
                if let Err(error) = self.link.publish(ALERTS_TOPIC, payload, QoS::AtLeastOnce) {
                    self.observer
                        .error(format!("alert not published on {ALERTS_TOPIC}: {error}"));
                }
            }
            Err(error) => self.observer.error(format!("alert not encoded: {error}")),
        }
    }
}

/// Reads `deviceId` and `seq` from a payload for the trace, whatever the rule selects.
fn identify(payload: &[u8]) -> Identity {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(payload) else {
        return Identity::default();
    };
    let text = |name: &str| fields.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    Identity {
        device_id: text("deviceId"),
        session: text("session"),
        seq: fields.get("seq").and_then(serde_json::Value::as_u64),
    }
}

/// Sender of a reading, as far as its payload shows.
#[derive(Debug, Default)]
struct Identity {
    device_id: Option<String>,
    session: Option<String>,
    seq: Option<u64>,
}

/// Sequence numbers judged per device and emulator session. Readings are delivered at
/// least once, so after a reconnection the same reading can arrive again; it must not be
/// judged twice (in `every` mode that would send a second email). A late reading that was
/// never judged still is, as long as it is within the last [`SEEN_WINDOW`] numbers.
#[derive(Debug, Default)]
pub struct SeenReadings {
    judged: HashMap<(String, String), BTreeSet<u64>>,
}

/// Sequence numbers remembered per device and session.
const SEEN_WINDOW: usize = 4096;

/// Device and session pairs remembered before the table starts afresh.
const MAX_SEEN_SESSIONS: usize = 10_000;

impl SeenReadings {
    /// Records the reading and returns whether it was already judged for the same device
    /// and session.
    fn is_repeat(&mut self, device_id: &str, session: &str, seq: u64) -> bool {
        let key = (device_id.to_owned(), session.to_owned());
        if self.judged.len() >= MAX_SEEN_SESSIONS && !self.judged.contains_key(&key) {
            self.judged.clear();
        }
        let judged = self.judged.entry(key).or_default();
        let full = judged.len() >= SEEN_WINDOW;
        // Older than everything remembered: it may have been judged, so it is skipped.
        if judged.contains(&seq) || (full && judged.first().is_some_and(|&oldest| seq < oldest)) {
            return true;
        }
        judged.insert(seq);
        if judged.len() > SEEN_WINDOW {
            judged.pop_first();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_readings_flags_repeats_per_session() {
        let mut seen = SeenReadings::default();
        assert!(!seen.is_repeat("a", "s1", 1));
        assert!(!seen.is_repeat("a", "s1", 2));
        assert!(seen.is_repeat("a", "s1", 2), "same seq again");
        assert!(seen.is_repeat("a", "s1", 1), "older seq, already judged");
        assert!(
            !seen.is_repeat("a", "s2", 1),
            "a restarted emulator starts a new session"
        );
        assert!(!seen.is_repeat("b", "s1", 1), "another device");
        assert!(!seen.is_repeat("a", "s1", 5));
        assert!(
            !seen.is_repeat("a", "s1", 4),
            "a late reading that was never judged"
        );
        assert!(seen.is_repeat("a", "s1", 4));
    }

    #[test]
    fn seen_readings_forgets_beyond_window() {
        let mut seen = SeenReadings::default();
        let total = SEEN_WINDOW as u64 + 10;
        for seq in 1..=total {
            assert!(!seen.is_repeat("a", "s", seq));
        }
        assert!(
            seen.is_repeat("a", "s", 5),
            "older than the window counts as judged"
        );
        assert!(seen.is_repeat("a", "s", total));
    }

    #[test]
    fn identify_reads_payload_fields() {
        let identity = identify(br#"{"deviceId":"d","session":"s","seq":4,"temperature":1}"#);
        assert_eq!(identity.device_id.as_deref(), Some("d"));
        assert_eq!(identity.session.as_deref(), Some("s"));
        assert_eq!(identity.seq, Some(4));
        let tutorial = identify(br#"{"deviceId":"d","temperature":"36.20"}"#);
        assert_eq!(tutorial.seq, None);
        assert_eq!(identify(b"not json").device_id, None);
    }
}
