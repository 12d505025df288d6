//! Minimal HTTP on loopback: a blocking GET for moto's data endpoint, and a hyper server
//! that records requests, used as the AWS IoT data plane stand-in and under the Runtime API
//! stand-in.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Sends `GET path` to `address` and returns the status and body. moto responds with
/// `Content-Length` and closes the connection, so reading to the end is enough.
pub fn get(address: &str, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("response has no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_owned()))
}

/// A request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, still percent-encoded.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Reply = Response<Full<Bytes>>;
pub type Responder =
    Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serves HTTP/1.1 on 127.0.0.1 and a free port until the test's runtime ends.
pub async fn serve(responder: Responder) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the stand-in");
    let address = listener.local_addr().expect("stand-in address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let responder = responder.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let responder = responder.clone();
                    async move {
                        let recorded = record(request).await;
                        Ok::<_, Infallible>(responder(recorded).await)
                    }
                });
                // A client that hangs up mid-request is not an error worth reporting here.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn record(request: Request<Incoming>) -> Recorded {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    Recorded {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    }
}

/// Builds a reply with a status and a body.
pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// A stand-in for the AWS IoT data plane that records every Publish and accepts it.
pub struct IotStandIn {
    pub endpoint: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl IotStandIn {
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let responder: Responder = Arc::new(move |recorded| {
            log.lock().expect("stand-in log").push(recorded);
            Box::pin(async { reply(StatusCode::OK, "{}") })
        });
        let address = serve(responder).await;
        Self {
            endpoint: format!("http://{address}"),
            requests,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("stand-in log").clone()
    }
}
