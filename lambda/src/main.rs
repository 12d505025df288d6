//! `bootstrap`: the AWS Lambda function that an IoT Core topic rule invokes with each
//! reading. It applies the same alert policy as the desktop app, keeps alarm state in
//! DynamoDB, emails through SNS and publishes alerts on MQTT. See `lambda/README.md`.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use temperature_alert::function::{
    AwsNotifier, DynamoStore, FunctionConfig, Handler, load_sdk_config, report_init_error,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Plain text by default; JSON lines when Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON.
    lambda_runtime::tracing::init_default_subscriber();

    let config = match FunctionConfig::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration; the function cannot start");
            let diagnostic = Diagnostic {
                error_type: "Permanent.InvalidConfiguration".to_owned(),
                error_message: error.to_string(),
            };
            report_init_error(&diagnostic).await;
            return Err(error.into());
        }
    };
    tracing::info!(
        threshold = config.policy.threshold,
        hysteresis = config.policy.hysteresis,
        debounce = config.policy.debounce,
        cooldown_seconds = config.policy.cooldown_seconds,
        mode = config.policy.mode.as_str(),
        table = config.table.as_deref().unwrap_or(""),
        alerts_topic = %config.alerts_topic,
        "alert function configured"
    );

    let sdk = load_sdk_config().await;
    let store = DynamoStore::from_config(&sdk, &config);
    let notifier = AwsNotifier::from_config(&sdk, &config);
    let handler = Handler::new(config, store, notifier);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler.handle_lambda(event).await
    }))
    .await
}
