//! Delivery of alerts: the email through an SNS topic, and the alert JSON on the alerts MQTT
//! topic through the AWS IoT data plane, where the desktop app subscribes.

use std::future::Future;

use aws_sdk_iotdataplane::primitives::Blob;

use super::error::{Retry, ServiceError};
use crate::{Alert, email_body, email_subject};

/// Sends the notifications for a decided alert.
pub trait Notifier: Send + Sync {
    /// Emails the alert and returns the message id.
    fn send_email(
        &self,
        alert: &Alert,
    ) -> impl Future<Output = Result<String, ServiceError>> + Send;

    /// Publishes the alert JSON on the alerts MQTT topic.
    fn publish_alert(&self, alert: &Alert)
    -> impl Future<Output = Result<(), ServiceError>> + Send;
}

/// [`Notifier`] through Amazon SNS and the AWS IoT data plane.
#[derive(Debug, Clone)]
pub struct AwsNotifier {
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    iot: aws_sdk_iotdataplane::Client,
    alerts_topic: String,
}

impl AwsNotifier {
    #[must_use]
    pub fn new(
        sns: aws_sdk_sns::Client,
        topic_arn: String,
        iot: aws_sdk_iotdataplane::Client,
        alerts_topic: String,
    ) -> Self {
        Self {
            sns,
            topic_arn,
            iot,
            alerts_topic,
        }
    }
}

impl Notifier for AwsNotifier {
    async fn send_email(&self, alert: &Alert) -> Result<String, ServiceError> {
        let output = self
            .sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(email_subject(alert.kind))
            .message(email_body(alert))
            .send()
            .await
            .map_err(|error| ServiceError::from_sdk("sns:Publish", &error))?;
        output.message_id.ok_or_else(|| ServiceError {
            operation: "sns:Publish",
            retry: Retry::Retryable,
            message: "the response has no MessageId".to_owned(),
        })
    }

    async fn publish_alert(&self, alert: &Alert) -> Result<(), ServiceError> {
        let payload = serde_json::to_vec(alert).map_err(|error| ServiceError {
            operation: "iot:Publish",
            retry: Retry::Permanent,
            message: format!("the alert does not serialize to JSON: {error}"),
        })?;
        self.iot
            .publish()
            .topic(&self.alerts_topic)
            .qos(1)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|error| ServiceError::from_sdk("iot:Publish", &error))?;
        Ok(())
    }
}
