//! A stand-in for the Lambda Runtime API (version 2018-06-01) on loopback, enough to drive
//! the real `bootstrap` binary: it hands out queued events on `invocation/next` and records
//! what the function posts to `response`, `error` and `init/error`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use hyper::body::Bytes;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use super::http::{Recorded, Reply, Responder, reply, serve};

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function reported for one invocation or for its start.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Response(Value),
    Error { error_type: String, body: Value },
}

struct Queued {
    request_id: String,
    payload: Bytes,
}

#[derive(Default)]
struct Shared {
    reports: Mutex<HashMap<String, Report>>,
    init_error: Mutex<Option<Report>>,
    polls: Mutex<usize>,
    changed: Notify,
}

/// The running stand-in.
pub struct RuntimeApi {
    /// `127.0.0.1:<port>`, the form of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    sender: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let responder: Responder = Arc::new(move |recorded| {
            let receiver = receiver.clone();
            let state = state.clone();
            Box::pin(async move { route(recorded, &receiver, &state).await })
        });
        let address = serve(responder).await;
        Self {
            address: address.to_string(),
            sender,
            shared,
        }
    }

    /// Queues an event for the next poll.
    pub fn invoke(&self, request_id: &str, payload: impl Into<Bytes>) {
        let queued = Queued {
            request_id: request_id.to_owned(),
            payload: payload.into(),
        };
        self.sender.send(queued).expect("the stand-in is running");
    }

    /// Waits for the function's report on an invocation.
    pub async fn report(&self, request_id: &str, timeout: Duration) -> Report {
        self.wait_for(timeout, || {
            self.shared
                .reports
                .lock()
                .expect("reports")
                .get(request_id)
                .cloned()
        })
        .await
        .unwrap_or_else(|| {
            panic!("no response or error for invocation {request_id} within {timeout:?}")
        })
    }

    /// Waits for an init error report.
    pub async fn init_error(&self, timeout: Duration) -> Option<Report> {
        self.wait_for(timeout, || {
            self.shared.init_error.lock().expect("init error").clone()
        })
        .await
    }

    /// How many times the function asked for the next event.
    pub fn polls(&self) -> usize {
        *self.shared.polls.lock().expect("polls")
    }

    async fn wait_for<T>(&self, timeout: Duration, probe: impl Fn() -> Option<T>) -> Option<T> {
        let wait = async {
            loop {
                // Registered before the probe, so a report that lands in between still wakes
                // this loop.
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if let Some(found) = probe() {
                    return found;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }
}

async fn route(
    recorded: Recorded,
    receiver: &tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    state: &Shared,
) -> Reply {
    let Some(path) = recorded.target.strip_prefix(PREFIX) else {
        return reply(StatusCode::NOT_FOUND, "unknown path");
    };
    match (recorded.method.as_str(), path) {
        ("GET", "/invocation/next") => {
            *state.polls.lock().expect("polls") += 1;
            state.changed.notify_waiters();
            let Some(queued) = receiver.lock().await.recv().await else {
                return reply(StatusCode::GONE, "stand-in stopped");
            };
            next_event(&queued)
        }
        ("POST", "/init/error") => {
            *state.init_error.lock().expect("init error") = Some(error_report(&recorded));
            state.changed.notify_waiters();
            reply(StatusCode::ACCEPTED, "{}")
        }
        ("POST", path) => {
            let Some(rest) = path.strip_prefix("/invocation/") else {
                return reply(StatusCode::NOT_FOUND, "unknown path");
            };
            let report = match rest.split_once('/') {
                Some((id, "response")) => Some((id, response_report(&recorded))),
                Some((id, "error")) => Some((id, error_report(&recorded))),
                _ => None,
            };
            let Some((id, report)) = report else {
                return reply(StatusCode::NOT_FOUND, "unknown path");
            };
            state
                .reports
                .lock()
                .expect("reports")
                .insert(id.to_owned(), report);
            state.changed.notify_waiters();
            reply(StatusCode::ACCEPTED, "{}")
        }
        _ => reply(StatusCode::NOT_FOUND, "unknown path"),
    }
}

fn next_event(queued: &Queued) -> Reply {
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis();
    let mut response = reply(StatusCode::OK, queued.payload.clone());
    let headers = response.headers_mut();
    let pairs = [
        ("Lambda-Runtime-Aws-Request-Id", queued.request_id.clone()),
        ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
        (
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:123456789012:function:temperature-alert".to_owned(),
        ),
        (
            "Lambda-Runtime-Trace-Id",
            "Root=1-00000000-000000000000000000000000".to_owned(),
        ),
        ("Content-Type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        headers.insert(name, value.parse().expect("valid header value"));
    }
    response
}

fn response_report(recorded: &Recorded) -> Report {
    Report::Response(serde_json::from_slice(&recorded.body).unwrap_or(Value::Null))
}

fn error_report(recorded: &Recorded) -> Report {
    let error_type = recorded
        .headers
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Report::Error {
        error_type,
        body: serde_json::from_slice(&recorded.body).unwrap_or(Value::Null),
    }
}
