//! The result an invocation returns, so that tests, `cargo lambda invoke` and Lambda
//! destinations can see what was decided and sent.

use serde::Serialize;

use crate::{AlarmState, Alert, AlertKind, AlertMode, Decision, ReadingEvent};

/// Result status of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Raised,
    Reminder,
    Cleared,
    Unchanged,
    /// The event is not a reading, for the reason in `reason`. Nothing was stored or sent.
    Ignored,
}

impl From<Decision> for Status {
    fn from(decision: Decision) -> Self {
        match decision {
            Decision::Raised => Self::Raised,
            Decision::Reminder => Self::Reminder,
            Decision::Cleared => Self::Cleared,
            Decision::Unchanged => Self::Unchanged,
        }
    }
}

/// The function's result, returned as JSON such as
/// `{"status":"raised","deviceId":"unknown","temperature":40.0,…}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub status: Status,
    /// Reason the event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// °C.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<AlertMode>,
    /// The device's alarm state before this reading; absent in `every` mode, which keeps
    /// no state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_before: Option<AlarmState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_after: Option<AlarmState>,
    /// The alert as published on MQTT, with the SNS message id in `notification`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// True when an earlier attempt of this invocation, or another delivery of the same
    /// reading, had already recorded the decision, so it was finished and not made again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub already_decided: bool,
    /// Alerts of other invocations that had stopped before sending them, sent by this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finished_earlier_alerts: Vec<AlertKind>,
    /// Conditional writes lost to concurrent invocations before this decision was stored.
    #[serde(skip_serializing_if = "is_zero")]
    pub state_conflicts: u32,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde passes fields by reference"
)]
fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl Outcome {
    /// Creates the result for an event that is not a reading.
    #[must_use]
    pub fn ignored(reason: String) -> Self {
        Self {
            status: Status::Ignored,
            reason: Some(reason),
            ..Self::empty()
        }
    }

    /// Creates the result for a decision about `reading`.
    #[must_use]
    pub fn decided(
        decision: Decision,
        reading: &ReadingEvent,
        threshold: f64,
        mode: AlertMode,
    ) -> Self {
        Self {
            status: decision.into(),
            device_id: Some(reading.device_id.clone()),
            temperature: Some(reading.temperature),
            threshold: Some(threshold),
            mode: Some(mode),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        Self {
            status: Status::Unchanged,
            reason: None,
            device_id: None,
            temperature: None,
            threshold: None,
            mode: None,
            state_before: None,
            state_after: None,
            alert: None,
            already_decided: false,
            finished_earlier_alerts: Vec::new(),
            state_conflicts: 0,
        }
    }
}
