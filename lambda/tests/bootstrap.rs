//! The real `bootstrap` binary, driven through a Runtime API stand-in on loopback, with
//! moto for SNS and DynamoDB and a recording stand-in for the IoT data plane.
//!
//! The binary gets a cleared environment with test credentials, so it reaches nothing but
//! 127.0.0.1.

#![cfg(feature = "function")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use common::http::IotStandIn;
use common::moto::moto;
use common::runtime_api::{Report, RuntimeApi};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A running `bootstrap` process, killed when dropped, with its log lines.
struct Function {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Function {
    fn spawn(runtime_api: &RuntimeApi, vars: &[(&str, &str)]) -> Self {
        let base = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "temperature-alert"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_REGION", common::REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ];
        let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .envs(base)
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting bootstrap");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().expect("log lines").push(line);
            }
        });
        Self { child, logs }
    }

    /// Log lines parsed as JSON; a line that is not JSON fails the test.
    fn json_logs(&self) -> Vec<Value> {
        let lines = self.logs.lock().expect("log lines").clone();
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|_| panic!("log line is not JSON: {line}"))
            })
            .collect()
    }

    fn logs_with_message(&self, message: &str) -> Vec<Value> {
        self.json_logs()
            .into_iter()
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }

    /// Waits until at least `count` lines with `message` were read from the pipe, which
    /// may lag behind the Runtime API calls, and returns them all.
    async fn wait_for_logs(&self, message: &str, count: usize) -> Vec<Value> {
        let started = tokio::time::Instant::now();
        loop {
            let lines = self.logs_with_message(message);
            if lines.len() >= count || started.elapsed() > TIMEOUT {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends an event and returns the function's response, failing on an error report.
async fn invoke(runtime_api: &RuntimeApi, request_id: &str, event: impl Into<Vec<u8>>) -> Value {
    runtime_api.invoke(request_id, event.into());
    match runtime_api.report(request_id, TIMEOUT).await {
        Report::Response(value) => value,
        Report::Error { error_type, body } => {
            panic!("invocation {request_id} failed with {error_type}: {body}")
        }
    }
}

fn function_vars<'a>(topic_arn: &'a str, table: &'a str, iot: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ALERT_TOPIC_ARN", topic_arn),
        ("ALARM_TABLE", table),
        ("IOT_DATA_ENDPOINT", iot),
        ("AWS_ENDPOINT_URL", &moto().endpoint),
    ]
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn bootstrap_tutorial_events() {
    let sdk = common::sdk_config(&moto().endpoint).await;
    let topic_arn = common::create_topic(&sdk, "bootstrap-tutorial").await;
    common::create_table(&sdk, "bootstrap-tutorial-state").await;
    let iot = IotStandIn::start().await;
    let runtime_api = RuntimeApi::start().await;
    let vars = function_vars(&topic_arn, "bootstrap-tutorial-state", &iot.endpoint);
    let function = Function::spawn(&runtime_api, &vars);

    let cool = invoke(&runtime_api, "r1", r#"{"temperature": 30}"#).await;
    assert_eq!(cool["status"], "unchanged");
    assert!(moto().sns_messages(&topic_arn).is_empty());

    let hot = invoke(&runtime_api, "r2", r#"{"temperature": 40}"#).await;
    assert_eq!(hot["status"], "raised", "{hot}");
    assert_eq!(hot["deviceId"], "unknown");
    assert_eq!(hot["stateAfter"]["raised"], true);
    let messages = moto().sns_messages(&topic_arn);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject.as_deref(), Some("Temperature Alert"));
    assert_eq!(hot["alert"]["notification"]["id"], messages[0].id.as_str());

    let again = invoke(&runtime_api, "r3", r#"{"temperature": 40}"#).await;
    assert_eq!(again["status"], "unchanged");
    assert_eq!(moto().sns_messages(&topic_arn).len(), 1);

    let tutorial_string = invoke(
        &runtime_api,
        "r4",
        r#"{"temperature": "32.75", "clientId": "thing-7"}"#,
    )
    .await;
    assert_eq!(tutorial_string["status"], "unchanged");
    assert_eq!(tutorial_string["deviceId"], "thing-7");

    let unit = invoke(&runtime_api, "r5", r#"{"temperature": "36.2°C"}"#).await;
    assert_eq!(unit["status"], "ignored");
    assert_eq!(
        unit["reason"],
        "temperature \"36.2°C\" is not a decimal number such as \"36.20\""
    );

    let big = format!(
        r#"{{"temperature": 40, "pad": "{}"}}"#,
        "x".repeat(200 * 1024)
    );
    let too_large = invoke(&runtime_api, "r6", big).await;
    assert_eq!(too_large["status"], "ignored");
    assert!(
        too_large["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("131072-byte limit")
    );

    assert_eq!(
        moto().sns_messages(&topic_arn).len(),
        1,
        "ignored events send nothing"
    );
    let published = iot.requests();
    assert_eq!(published.len(), 1);
    let alert: Value = serde_json::from_slice(&published[0].body).expect("alert JSON");
    assert_eq!(alert["source"], "aws");
    assert_eq!(alert["kind"], "raised");

    let decisions = function.wait_for_logs("alert decision", 4).await;
    assert_eq!(decisions.len(), 4, "one line per decision");
    let raise = &decisions[1]["fields"];
    assert_eq!(raise["device_id"], "unknown");
    assert_eq!(raise["temperature"], 40.0);
    assert_eq!(raise["threshold"], 35.0);
    assert_eq!(raise["decision"], "raised");
    let before: Value = serde_json::from_str(raise["state_before"].as_str().unwrap_or_default())
        .expect("state_before is JSON");
    let after: Value = serde_json::from_str(raise["state_after"].as_str().unwrap_or_default())
        .expect("state_after is JSON");
    assert_eq!(before["raised"], false);
    assert_eq!(after["raised"], true);
    assert_eq!(function.wait_for_logs("event ignored", 2).await.len(), 2);
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn bootstrap_reports_permanent_send_error() {
    let sdk = common::sdk_config(&moto().endpoint).await;
    common::create_table(&sdk, "bootstrap-missing-topic-state").await;
    let iot = IotStandIn::start().await;
    let runtime_api = RuntimeApi::start().await;
    let missing = "arn:aws:sns:us-east-1:123456789012:never-created";
    let vars = function_vars(missing, "bootstrap-missing-topic-state", &iot.endpoint);
    let _function = Function::spawn(&runtime_api, &vars);

    runtime_api.invoke("r1", r#"{"temperature": 41, "deviceId": "d1"}"#);
    let Report::Error { body, .. } = runtime_api.report("r1", TIMEOUT).await else {
        panic!("publishing to a missing topic must fail the invocation");
    };
    // lambda_runtime sends the header `Lambda-Runtime-Function-Error-Type: unhandled` and
    // puts the diagnostic's type in the body, which is what Lambda reports.
    assert_eq!(body["errorType"], "Permanent.EmailSend");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message
            .starts_with("sending the raised email for device \"d1\" failed: sns:Publish failed"),
        "{message}"
    );

    // The function keeps serving after a failed invocation.
    let next = invoke(
        &runtime_api,
        "r2",
        r#"{"temperature": 20, "deviceId": "d2"}"#,
    )
    .await;
    assert_eq!(next["status"], "unchanged");
}

#[tokio::test]
async fn bootstrap_rejects_invalid_setting() {
    let runtime_api = RuntimeApi::start().await;
    let vars = [
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:alerts",
        ),
        ("ALARM_TABLE", "alarm-state"),
        ("IOT_DATA_ENDPOINT", "http://127.0.0.1:9"),
        ("TEMPERATURE_THRESHOLD", "hot"),
    ];
    let mut function = Function::spawn(&runtime_api, &vars);

    let report = runtime_api
        .init_error(TIMEOUT)
        .await
        .expect("an init error report");
    let Report::Error { error_type, body } = report else {
        panic!("expected an error report, got {report:?}");
    };
    assert_eq!(error_type, "Permanent.InvalidConfiguration");
    assert_eq!(
        body["errorMessage"],
        "TEMPERATURE_THRESHOLD=\"hot\" is invalid: expected a number"
    );
    let status = tokio::time::timeout(TIMEOUT, function.child.wait())
        .await
        .expect("bootstrap exits")
        .expect("exit status");
    assert!(
        !status.success(),
        "a bad setting stops the function: {status}"
    );
    assert_eq!(runtime_api.polls(), 0, "it never polled for events");
    let errors = function
        .wait_for_logs("invalid configuration; the function cannot start", 1)
        .await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["level"], "ERROR");
}

#[tokio::test]
async fn bootstrap_requires_topic_arn() {
    let runtime_api = RuntimeApi::start().await;
    let vars = [
        ("ALARM_TABLE", "alarm-state"),
        ("IOT_DATA_ENDPOINT", "http://127.0.0.1:9"),
    ];
    let _function = Function::spawn(&runtime_api, &vars);
    let Some(Report::Error { body, .. }) = runtime_api.init_error(TIMEOUT).await else {
        panic!("expected an init error report");
    };
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("ALERT_TOPIC_ARN is not set"),
        "{message}"
    );
}

#[tokio::test]
#[ignore = "needs moto_server; run by .ci/run"]
async fn bootstrap_deeply_nested_event() {
    let sdk = common::sdk_config(&moto().endpoint).await;
    let topic_arn = common::create_topic(&sdk, "bootstrap-nested").await;
    common::create_table(&sdk, "bootstrap-nested-state").await;
    let iot = IotStandIn::start().await;
    let runtime_api = RuntimeApi::start().await;
    let vars = function_vars(&topic_arn, "bootstrap-nested-state", &iot.endpoint);
    let _function = Function::spawn(&runtime_api, &vars);

    // Nested within serde_json's recursion limit of 128: the handler gets it and ignores it.
    let nested = format!(
        r#"{{"temperature": {}40{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let ignored = invoke(&runtime_api, "r1", nested).await;
    assert_eq!(ignored["status"], "ignored");
    assert_eq!(
        ignored["reason"],
        json!("temperature is an array, expected a number or a numeric string such as \"36.20\"")
    );

    // Deeper than that, lambda_runtime cannot parse the event into a `Value`, so it reports
    // an error before the handler runs; the process survives it.
    let deeper = format!(
        r#"{{"temperature": {}40{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    runtime_api.invoke("r2", deeper);
    let Report::Error { body, .. } = runtime_api.report("r2", TIMEOUT).await else {
        panic!("an event nested deeper than 128 levels cannot be parsed");
    };
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("recursion limit"),
        "{body}"
    );
    let next = invoke(&runtime_api, "r3", r#"{"temperature": 20}"#).await;
    assert_eq!(next["status"], "unchanged");
    assert!(moto().sns_messages(&topic_arn).is_empty());
}
