//! Errors of the function and how they map to a Lambda `Diagnostic`.
//!
//! IoT Core invokes the function asynchronously, so Lambda runs a failed invocation up to two
//! more times. The `errorType` of each error tells whether such a retry may help.
//! `Retryable.<Kind>` covers throttling, timeouts, 5xx responses and a busy alarm state.
//! `Permanent.<Kind>` covers errors that the same request meets again, such as a missing
//! permission or an unknown topic.

use std::error::Error as StdError;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::Diagnostic;

use super::store::StoreError;

/// Whether running the same invocation again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A later attempt may succeed: throttling, a timeout, a server error, a busy state.
    Retryable,
    /// The same request fails the same way until the configuration or permissions change.
    Permanent,
}

impl Retry {
    /// Returns the first part of an `errorType`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "Retryable",
            Self::Permanent => "Permanent",
        }
    }
}

/// A failed AWS call, with the operation, the SDK's full error text and whether a retry may
/// help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct ServiceError {
    /// The API operation, such as `sns:Publish`.
    pub operation: &'static str,
    pub retry: Retry,
    pub message: String,
}

impl ServiceError {
    /// Describes an SDK error of `operation`, classified with the SDK's own lists of
    /// throttling and transient error codes.
    pub fn from_sdk<E>(operation: &'static str, error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + 'static,
    {
        let retry = match error {
            SdkError::ConstructionFailure(_) => Retry::Permanent,
            SdkError::DispatchFailure(failure) if failure.is_user() => Retry::Permanent,
            SdkError::ServiceError(context) => {
                retry_for_response(context.err().code(), context.raw().status().as_u16())
            }
            _ => Retry::Retryable,
        };
        Self {
            operation,
            retry,
            message: DisplayErrorContext(error).to_string(),
        }
    }
}

/// Classifies an error response from an AWS service by its error code and HTTP status.
#[must_use]
pub fn retry_for_response(code: Option<&str>, status: u16) -> Retry {
    let listed = code
        .is_some_and(|code| THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code));
    if listed || status == 429 || status >= 500 {
        Retry::Retryable
    } else {
        Retry::Permanent
    }
}

/// Failure of an invocation. Ignored events are not errors: they return a result with
/// status `ignored`.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("reading the alarm state of device {device_id:?} failed: {source}")]
    StateRead {
        device_id: String,
        source: StoreError,
    },
    #[error("writing the alarm state of device {device_id:?} failed: {source}")]
    StateWrite {
        device_id: String,
        source: StoreError,
    },
    #[error(
        "the alarm state of device {device_id:?} changed {conflicts} times while this \
         invocation decided; try again"
    )]
    StateContention { device_id: String, conflicts: u32 },
    #[error(
        "the alarm state of device {device_id:?} is still locked by invocation {owner} \
         sending a {kind} alert; try again after its lease ends"
    )]
    StateBusy {
        device_id: String,
        owner: String,
        kind: &'static str,
    },
    #[error(
        "ALERT_MODE is once-per-excursion but the function has no alarm state store; set \
         ALARM_TABLE"
    )]
    NoStateStore,
    #[error("sending the {kind} email for device {device_id:?} failed: {source}")]
    EmailSend {
        device_id: String,
        kind: &'static str,
        source: ServiceError,
    },
    #[error("publishing the {kind} alert for device {device_id:?} failed: {source}")]
    AlertPublish {
        device_id: String,
        kind: &'static str,
        source: ServiceError,
    },
}

impl FunctionError {
    /// Returns whether a retry of the invocation may succeed.
    #[must_use]
    pub fn retry(&self) -> Retry {
        match self {
            Self::StateRead { source, .. } | Self::StateWrite { source, .. } => source.retry(),
            Self::StateContention { .. } | Self::StateBusy { .. } => Retry::Retryable,
            Self::NoStateStore => Retry::Permanent,
            Self::EmailSend { source, .. } | Self::AlertPublish { source, .. } => source.retry,
        }
    }

    /// Returns the kind of failure, the second part of the `errorType`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::StateRead { .. } => "StateRead",
            Self::StateWrite { .. } => "StateWrite",
            Self::StateContention { .. } => "StateContention",
            Self::StateBusy { .. } => "StateBusy",
            Self::NoStateStore => "NoStateStore",
            Self::EmailSend { .. } => "EmailSend",
            Self::AlertPublish { .. } => "AlertPublish",
        }
    }

    /// Returns the `errorType` reported to Lambda, such as `Retryable.EmailSend`.
    #[must_use]
    pub fn error_type(&self) -> String {
        format!("{}.{}", self.retry().as_str(), self.kind())
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(error: FunctionError) -> Self {
        Self {
            error_type: error.error_type(),
            error_message: error.to_string(),
        }
    }
}
