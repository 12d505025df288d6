//! The per-device alarm state as the function stores it, and the store interface.
//!
//! Every write is conditional on the version that was read, so of two invocations that
//! read the same version only one can write. A decision that needs an email is written
//! together with a [`PendingAlert`] before anything is sent. The pending alert is removed
//! once the email and the MQTT alert went out. An invocation that dies in between thus
//! leaves a record that a later invocation finishes.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::error::{Retry, ServiceError};
use crate::{AlarmState, Alert, Decision};

/// A device's record as read from the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredAlarm {
    /// Incremented by every write; 0 when the device has no record yet.
    pub version: u64,
    pub state: AlarmState,
    /// A decided alert whose email or MQTT message has not gone out yet.
    pub pending: Option<PendingAlert>,
    /// Request id of the invocation that wrote the last decision.
    pub last_request_id: Option<String>,
    /// Identity of the reading behind the last decision (see [`reading_key`]).
    ///
    /// [`reading_key`]: super::handler::reading_key
    pub last_reading: Option<String>,
    pub last_decision: Option<Decision>,
}

/// An alert that was decided and recorded but not yet fully delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAlert {
    pub alert: Alert,
    /// Request id of the invocation that made the decision.
    pub decided_by: String,
    /// Request id of the invocation now delivering it.
    pub owner: String,
    /// Until when, in Unix milliseconds, the owner may still be running. After that any
    /// invocation may take the delivery over.
    pub lease_until_ms: i64,
    /// The SNS message id, once the email went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message_id: Option<String>,
    /// How many invocations have started delivering it.
    #[serde(default)]
    pub attempts: u32,
    /// The error that stopped the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written; the record now has this version.
    Saved { version: u64 },
    /// Another invocation wrote first: the stored version is no longer the expected one.
    Conflict,
}

/// A failed read or write of the alarm state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("the stored record is invalid: {detail}")]
    InvalidRecord { detail: String },
}

impl StoreError {
    /// Returns whether a retry may help. An invalid record stays invalid until someone
    /// fixes or deletes the item.
    #[must_use]
    pub fn retry(&self) -> Retry {
        match self {
            Self::Service(error) => error.retry,
            Self::InvalidRecord { .. } => Retry::Permanent,
        }
    }
}

/// Per-device alarm records with versioned, conditional writes.
pub trait StateStore: Send + Sync {
    /// Reads a device's record with a strongly consistent read. A device without a record
    /// gets the default record with version 0.
    fn load(&self, device_id: &str)
    -> impl Future<Output = Result<StoredAlarm, StoreError>> + Send;

    /// Writes `record` (its `version` field is ignored) as version `expected_version + 1`,
    /// but only if the stored version is still `expected_version`.
    fn save(
        &self,
        device_id: &str,
        expected_version: u64,
        record: &StoredAlarm,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;
}
