//! Helpers of the TLS end-to-end tests: a test PKI made at run time, a Mosquitto broker
//! with a TLS listener that requires client certificates, a TCP proxy that can stall, and
//! a subscriber that survives broker restarts.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use sensor_emulator::settings::{CustomBrokerSettings, TopicSettings};
use sensor_emulator::tls::TlsFiles;
use sensor_emulator::tls::remote::RemoteProfile;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, watch};

/// Maximum wait for a broker to start or a message to arrive.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Runs `openssl` with `args` and fails the test with its output when it fails.
pub fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA that signs server and client certificates, with every file in one folder.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    pub ca_file: PathBuf,
}

/// A certificate and key written to disk.
pub struct Identity {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca_file = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, issuer.pem()).expect("write CA");
        Self {
            dir,
            issuer,
            ca_file,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn params(common_name: &str, names: &[&str]) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params
    }

    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// A server certificate for `localhost` and 127.0.0.1 with an EC P-256 key.
    pub fn server(&self, name: &str) -> Identity {
        let key = KeyPair::generate().expect("server key");
        let params = Self::params("localhost", &["localhost", "127.0.0.1"]);
        let certificate = params
            .signed_by(&key, self.issuer())
            .expect("server certificate");
        self.write(name, &certificate.pem(), &key.serialize_pem())
    }

    /// A client certificate with an EC P-256 key in PKCS#8 form.
    pub fn client_ec(&self, name: &str) -> Identity {
        self.client_ec_valid(name, None)
    }

    /// A client certificate valid from `not_before` to `not_after` when given.
    pub fn client_ec_valid(
        &self,
        name: &str,
        validity: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Identity {
        let key = KeyPair::generate().expect("client key");
        let mut params = Self::params(name, &[]);
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before;
            params.not_after = not_after;
        }
        let certificate = params
            .signed_by(&key, self.issuer())
            .expect("client certificate");
        self.write(name, &certificate.pem(), &key.serialize_pem())
    }

    /// A client certificate with a 2048-bit RSA key in PKCS#1 form (`BEGIN RSA PRIVATE
    /// KEY`), as AWS IoT Core issues them. The key comes from `openssl`.
    pub fn client_rsa(&self, name: &str) -> Identity {
        let pkcs8 = self.path(&format!("{name}.pkcs8.key"));
        let pkcs1 = self.path(&format!("{name}.private.key"));
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path_str(&pkcs8),
        ]);
        openssl(&[
            "pkey",
            "-in",
            path_str(&pkcs8),
            "-traditional",
            "-out",
            path_str(&pkcs1),
        ]);
        let key = KeyPair::from_pem(&std::fs::read_to_string(&pkcs8).expect("read key"))
            .expect("rcgen loads the RSA key");
        let certificate = Self::params(name, &[])
            .signed_by(&key, self.issuer())
            .expect("client certificate");
        let certificate_file = self.path(&format!("{name}.cert.pem"));
        std::fs::write(&certificate_file, certificate.pem()).expect("write certificate");
        Identity {
            certificate: certificate_file,
            key: pkcs1,
        }
    }

    fn write(&self, name: &str, certificate: &str, key: &str) -> Identity {
        let identity = Identity {
            certificate: self.path(&format!("{name}.cert.pem")),
            key: self.path(&format!("{name}.private.key")),
        };
        std::fs::write(&identity.certificate, certificate).expect("write certificate");
        std::fs::write(&identity.key, key).expect("write key");
        identity
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// A Mosquitto broker with a TLS listener on 127.0.0.1 that requires client certificates,
/// and optionally a plain listener. It is killed when dropped.
pub struct Mosquitto {
    pub tls_port: u16,
    pub plain_port: Option<u16>,
    config: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts the broker with `server` as its certificate and `ca` as the CA of client
    /// certificates. Sessions of clients without a clean session are saved on stop.
    pub fn start(ca: &Path, server: &Identity, plain_listener: bool) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let tls_port = free_port();
        let plain_port = plain_listener.then(free_port);
        let mut config = format!(
            "user root\npersistence true\npersistence_location {}/\nallow_anonymous true\n\
             log_dest file {}/mosquitto.log\n\
             listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            dir.path().display(),
            dir.path().display(),
            ca.display(),
            server.certificate.display(),
            server.key.display()
        );
        if let Some(port) = plain_port {
            let _ = writeln!(config, "listener {port} 127.0.0.1");
        }
        let config_file = dir.path().join("mosquitto.conf");
        std::fs::write(&config_file, config).expect("write mosquitto.conf");
        let mut broker = Self {
            tls_port,
            plain_port,
            config: config_file,
            child: None,
            _dir: dir,
        };
        broker.run();
        broker
    }

    /// Starts the process and waits until the TLS port accepts connections.
    pub fn run(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (Debian package mosquitto)");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.tls_port)).is_err() {
            assert!(started.elapsed() < TIMEOUT, "mosquitto did not start");
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("mosquitto exited at start with {status}; see its log");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process with SIGTERM, so that it saves its sessions, and waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(status.success());
        let started = Instant::now();
        while child.try_wait().expect("wait for mosquitto").is_none() {
            assert!(started.elapsed() < TIMEOUT, "mosquitto did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Custom broker settings for the Mosquitto TLS listener with a client certificate.
pub fn custom_settings(
    port: u16,
    ca: &Path,
    client: &Identity,
    client_id: &str,
) -> CustomBrokerSettings {
    CustomBrokerSettings {
        host: "localhost".to_owned(),
        port,
        client_id: client_id.to_owned(),
        device_id: String::new(),
        tls: true,
        ca_file: ca.to_owned(),
        certificate_file: client.certificate.clone(),
        private_key_file: client.key.clone(),
        username: String::new(),
        password: String::new(),
        topics: TopicSettings::default(),
    }
}

/// The custom broker profile of [`custom_settings`].
pub fn custom_profile(port: u16, ca: &Path, client: &Identity, client_id: &str) -> RemoteProfile {
    RemoteProfile::custom(&custom_settings(port, ca, client, client_id))
}

/// A subscriber over mutual TLS with a persistent session, so that the broker keeps its
/// subscription and queued messages while it is disconnected; it reconnects by itself.
pub struct Subscriber {
    pub received: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    pub connections: watch::Receiver<u64>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    pub async fn connect(
        port: u16,
        ca: &Path,
        client: &Identity,
        client_id: &str,
        filters: &[&str],
    ) -> Self {
        let files = TlsFiles {
            ca_file: Some(ca.to_owned()),
            client: Some((client.certificate.clone(), client.key.clone())),
            alpn: None,
        };
        let config = files
            .client_config(OffsetDateTime::now_utc())
            .expect("subscriber TLS configuration");
        let mut options = MqttOptions::new(client_id, "localhost", port);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_clean_session(false)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let (received_tx, received) = mpsc::unbounded_channel();
        let (connections_tx, connections) = watch::channel(0_u64);
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        let task = tokio::spawn(async move {
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for filter in &filters {
                            let _ = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        connections_tx.send_modify(|count| *count += 1);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let _ = received_tx.send((publish.topic.clone(), publish.payload.to_vec()));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut subscriber = Self {
            received,
            connections,
            _task: task,
        };
        subscriber.wait_connected(1).await;
        subscriber
    }

    /// Waits until the subscriber has subscribed `count` times in all.
    pub async fn wait_connected(&mut self, count: u64) {
        tokio::time::timeout(TIMEOUT, self.connections.wait_for(|n| *n >= count))
            .await
            .expect("subscriber subscribed in time")
            .expect("subscriber task alive");
    }
}

/// A TCP proxy on 127.0.0.1 that can stop forwarding without closing anything, like a
/// network that silently drops packets.
pub struct StallingProxy {
    pub port: u16,
    stalled: Arc<watch::Sender<bool>>,
    _task: tokio::task::JoinHandle<()>,
}

impl StallingProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (stalled, _) = watch::channel(false);
        let stalled = Arc::new(stalled);
        let accept_stalled = Arc::clone(&stalled);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(
                    client_read,
                    server_write,
                    accept_stalled.subscribe(),
                ));
                tokio::spawn(forward(
                    server_read,
                    client_write,
                    accept_stalled.subscribe(),
                ));
            }
        });
        Self {
            port,
            stalled,
            _task: task,
        }
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }
}

/// Copies bytes one way, holding them while the proxy is stalled.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        if stalled.wait_for(|stalled| !*stalled).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
