//! The local rules engine: evaluates the topic rule on every message the broker delivers
//! for its `FROM` filter, judges matches with the alert library, and sends each alert to
//! the outbox and the alerts topic. Every evaluation leaves a [`RuleTrace`].

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

/// What happened to a message.
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
            | Self::Rejected { reason } => Some(reason),
        }
    }
}

/// Changes sent to a running engine.
#[derive(Debug)]
pub enum EngineCommand {
    SetRule(Box<Rule>),
    SetPolicy(PolicyConfig),
}

/// What the engine reports.
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
        let (device_id, seq) = identify(&message.payload);
        let context = EvalContext {
            timestamp_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
        };
        let outcome = match self
            .rule
            .evaluate(&message.topic, &message.payload, &context)
        {
            Evaluation::Matched(result) => self.judge(&serde_json::Value::Object(result), now),
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

    fn judge(&mut self, result: &serde_json::Value, now: time::OffsetDateTime) -> TraceOutcome {
        let event = match parse_event(result) {
            Ok(event) => event,
            Err(error) => {
                return TraceOutcome::Rejected {
                    reason: error.to_string(),
                };
            }
        };
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
fn identify(payload: &[u8]) -> (Option<String>, Option<u64>) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(payload) else {
        return (None, None);
    };
    let device_id = fields
        .get("deviceId")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let seq = fields.get("seq").and_then(serde_json::Value::as_u64);
    (device_id, seq)
}
