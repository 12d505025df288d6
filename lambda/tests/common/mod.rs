//! Helpers shared by the integration tests: a moto server, loopback HTTP stand-ins for the
//! Lambda Runtime API and the AWS IoT data plane, and SDK clients pointed at them.
//!
//! All traffic stays on 127.0.0.1. The SDK gets explicit test credentials and region, so it
//! never looks for credentials on the network (no EC2 instance metadata service).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

pub mod http;
pub mod moto;
pub mod runtime_api;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use temperature_alert::function::sdk_config_loader;

pub const REGION: &str = "us-east-1";

/// SDK configuration for moto: fixed test credentials, region and endpoint.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    let credentials =
        aws_sdk_sns::config::Credentials::new("testing", "testing", None, None, "tests");
    sdk_config_loader()
        .region(Region::new(REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Creates an SNS topic and returns its ARN.
pub async fn create_topic(sdk: &SdkConfig, name: &str) -> String {
    let output = aws_sdk_sns::Client::new(sdk)
        .create_topic()
        .name(name)
        .send()
        .await
        .expect("CreateTopic on moto failed");
    output.topic_arn.expect("CreateTopic returned no TopicArn")
}

/// Creates an on-demand DynamoDB table keyed by `deviceId`, as the SAM template does.
pub async fn create_table(sdk: &SdkConfig, name: &str) {
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("deviceId")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("deviceId")
                .key_type(KeyType::Hash)
                .build()
                .expect("key schema"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("CreateTable on moto failed");
}
