//! Shared AWS SDK configuration and the clients built from it.
//!
//! Region, credentials and endpoints come from the SDK's usual sources. In Lambda these are
//! the variables the service sets (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, …). `AWS_ENDPOINT_URL`
//! or a per-service variable such as `AWS_ENDPOINT_URL_SNS` points SNS and DynamoDB at a
//! stand-in like moto; the IoT data plane always uses `IOT_DATA_ENDPOINT`.

use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use super::config::FunctionConfig;
use super::dynamo::DynamoStore;
use super::notifier::AwsNotifier;

/// Builds the SDK's HTTP client: HTTPS through rustls with the ring provider, and plain
/// HTTP for `http://` endpoints.
#[must_use]
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Returns the SDK's default configuration loader with this crate's HTTP client, for
/// callers that set more themselves (tests give region, credentials and endpoint).
#[must_use]
pub fn sdk_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client())
}

/// Loads the SDK configuration from the environment.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_config_loader().load().await
}

impl DynamoStore {
    /// Creates the store on the configured table, if the mode keeps state.
    #[must_use]
    pub fn from_config(sdk: &SdkConfig, config: &FunctionConfig) -> Option<Self> {
        let table = config.table.clone()?;
        Some(Self::new(aws_sdk_dynamodb::Client::new(sdk), table))
    }
}

impl AwsNotifier {
    /// Creates the SNS and IoT data plane clients for the configured topics.
    #[must_use]
    pub fn from_config(sdk: &SdkConfig, config: &FunctionConfig) -> Self {
        let iot_config = aws_sdk_iotdataplane::config::Builder::from(sdk)
            .endpoint_url(&config.iot_data_endpoint)
            .build();
        Self::new(
            aws_sdk_sns::Client::new(sdk),
            config.topic_arn.clone(),
            aws_sdk_iotdataplane::Client::from_conf(iot_config),
            config.alerts_topic.clone(),
        )
    }
}
