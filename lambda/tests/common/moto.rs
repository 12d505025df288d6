//! One moto server per test binary, on 127.0.0.1 and a free port, stopped when the test
//! binary exits.
//!
//! `moto_server` must be on PATH (`pip install "moto[server]"`). A missing server fails the
//! test with instructions, and is never skipped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http;

const START_TIMEOUT: Duration = Duration::from_mins(1);

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    pub address: String,
    /// Kept open for the life of the test binary: the wrapper shell stops moto when its
    /// standard input closes, which happens when this process exits, however it exits.
    _lifeline: Mutex<ChildStdin>,
    _wrapper: Mutex<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// Returns the shared moto server, starting it on first use.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(start)
}

fn start() -> Moto {
    let server = find_on_path("moto_server").unwrap_or_else(|| {
        panic!(
            "moto_server was not found on PATH. These tests need moto's server mode: run \
             `python3 -m venv /var/tmp/se-venv && /var/tmp/se-venv/bin/pip install -r \
             scripts/requirements-ci.txt` and put /var/tmp/se-venv/bin on PATH (.ci/run does both)"
        )
    });
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-server-{port}.log"));
    let log = std::fs::File::create(&log_path).expect("creating the moto log file");
    // Background jobs of a non-interactive shell read /dev/null, so the watcher reads the
    // test binary's pipe through descriptor 3.
    let script = r#"exec 3<&0
"$0" -H 127.0.0.1 -p "$1" </dev/null &
server=$!
(cat <&3 >/dev/null; kill "$server" 2>/dev/null) &
exec 3<&-
wait "$server""#;
    let mut wrapper = Command::new("sh")
        .args(["-c", script])
        .arg(&server)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("cloning the moto log handle"))
        .stderr(log)
        .spawn()
        .expect("starting moto_server through sh");
    let lifeline = wrapper.stdin.take().expect("piped stdin");
    wait_until_ready(&address, &mut wrapper, &log_path);
    Moto {
        endpoint: format!("http://{address}"),
        address,
        _lifeline: Mutex::new(lifeline),
        _wrapper: Mutex::new(wrapper),
    }
}

fn wait_until_ready(address: &str, wrapper: &mut Child, log_path: &Path) {
    let started = Instant::now();
    loop {
        if TcpStream::connect(address).is_ok()
            && let Ok((200, _)) = http::get(address, "/moto-api/data.json")
        {
            return;
        }
        if let Ok(Some(status)) = wrapper.try_wait() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("moto_server exited with {status} before it was ready; its output:\n{log}");
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "moto_server did not answer on {address} within {START_TIMEOUT:?}; see {}",
            log_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Returns a port that was free a moment ago. moto cannot report the port it bound, so the
/// test picks one and hands it over.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

impl Moto {
    /// Fetches every model moto keeps from its `/moto-api/data.json` endpoint.
    pub fn data(&self) -> Value {
        let (status, body) = http::get(&self.address, "/moto-api/data.json")
            .expect("GET /moto-api/data.json from moto");
        assert_eq!(status, 200, "moto data endpoint answered {status}: {body}");
        serde_json::from_str(&body).expect("moto data is JSON")
    }

    /// Lists the messages published to one SNS topic, oldest first.
    pub fn sns_messages(&self, topic_arn: &str) -> Vec<SnsMessage> {
        let data = self.data();
        let topics = data["sns"]["Topic"].as_array().cloned().unwrap_or_default();
        let Some(topic) = topics.iter().find(|topic| topic["arn"] == topic_arn) else {
            return Vec::new();
        };
        let sent = topic["sent_notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        sent.iter()
            .map(|entry| SnsMessage {
                id: entry[0].as_str().unwrap_or_default().to_owned(),
                message: entry[1].as_str().unwrap_or_default().to_owned(),
                subject: entry[2].as_str().map(str::to_owned),
            })
            .collect()
    }
}

/// One message moto recorded as published to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub id: String,
    pub message: String,
    pub subject: Option<String>,
}
