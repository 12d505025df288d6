//! Reporting a failed start to the Lambda Runtime API.
//!
//! `lambda_runtime` reports errors of invocations but has no call for an error before its
//! loop starts, such as an invalid setting. Without the report Lambda gets only the process
//! exit (`Runtime.ExitError`). With it, the invoker and the logs get the message.

use http::Method;
use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::{Client, body::Body, build_request};

const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// Posts `diagnostic` to the Runtime API's init error endpoint, when
/// `AWS_LAMBDA_RUNTIME_API` names one. A failure to report is logged, not returned, because
/// the function stops either way.
pub async fn report_init_error(diagnostic: &Diagnostic) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    if let Err(error) = post_init_error(&api, diagnostic).await {
        tracing::warn!(%error, runtime_api = %api, "reporting the init error to the Runtime API failed");
    }
}

async fn post_init_error(api: &str, diagnostic: &Diagnostic) -> Result<(), lambda_runtime::Error> {
    let client = Client::builder()
        .with_endpoint(format!("http://{api}").parse()?)
        .build()?;
    let request = build_request()
        .method(Method::POST)
        .uri(INIT_ERROR_PATH)
        .header("Lambda-Runtime-Function-Error-Type", &diagnostic.error_type)
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(diagnostic)?))?;
    let response = client.call(request).await?;
    if !response.status().is_success() {
        return Err(format!("the Runtime API answered {}", response.status()).into());
    }
    Ok(())
}
