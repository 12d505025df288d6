//! The AWS Lambda function behind the IoT Core topic rule. It judges each rule result with
//! the alert policy and keeps each device's alarm state in DynamoDB. It emails through SNS
//! and publishes the alert JSON on the alerts MQTT topic through the IoT data plane.
//!
//! Compiled only with the `function` feature, so the desktop app gets no AWS SDK.
//!
//! [`Handler`] holds the decision logic and talks to AWS only through the [`StateStore`] and
//! [`Notifier`] traits; [`DynamoStore`] and [`AwsNotifier`] implement them with the SDK, and
//! tests swap in fakes. The `bootstrap` binary wires them to `lambda_runtime`.

mod aws;
mod config;
mod dynamo;
mod error;
mod handler;
mod init_error;
mod notifier;
mod outcome;
mod store;

pub use aws::{http_client, load_sdk_config, sdk_config_loader};
pub use config::{DEFAULT_ALERTS_TOPIC, FunctionConfig, FunctionConfigError};
pub use dynamo::DynamoStore;
pub use error::{FunctionError, Retry, ServiceError};
pub use handler::{Clock, Handler, Invocation};
pub use init_error::report_init_error;
pub use notifier::{AwsNotifier, Notifier};
pub use outcome::{Outcome, Status};
pub use store::{PendingAlert, SaveOutcome, StateStore, StoreError, StoredAlarm};

#[cfg(test)]
mod tests;
