//! The embedded MQTT broker (rumqttd), listening on loopback unless the user says otherwise.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{error, info, warn};

/// Largest payload the broker accepts: AWS IoT Core's 128 KB, so that a message that
/// works locally also works in AWS.
const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// How long to wait for the broker thread to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Failures to start the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot listen on {bind}: {source}; set another \"bind\" address in the \"broker\" section of settings.json"
    )]
    Bind {
        bind: IpAddr,
        source: std::io::Error,
    },
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the embedded broker did not accept connections on {addr} within {} s", START_TIMEOUT.as_secs())]
    NotListening { addr: SocketAddr },
}

/// A running broker. rumqttd has no shutdown call, so it runs until the process exits.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    /// Address clients connect to.
    pub addr: SocketAddr,
    /// Whether the requested port was taken and another one was chosen.
    pub fell_back: bool,
}

/// Starts rumqttd on `bind`:`port` on its own thread, or on a free port when `port` is 0
/// or taken, and waits until it accepts connections.
pub fn start(bind: IpAddr, port: u16) -> Result<BrokerHandle, BrokerError> {
    let (addr, fell_back) = choose_address(bind, port)?;
    if fell_back {
        warn!(
            requested = port,
            chosen = addr.port(),
            "broker port is taken; using a free port"
        );
    }
    let config = broker_config(addr);
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(error) = broker.start() {
                error!(%error, %addr, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    wait_until_listening(addr)?;
    info!(%addr, "embedded broker listening");
    Ok(BrokerHandle { addr, fell_back })
}

/// Checks the port ourselves, because rumqttd only logs a port conflict, and does not
/// report the port it bound when asked for port 0.
fn choose_address(bind: IpAddr, port: u16) -> Result<(SocketAddr, bool), BrokerError> {
    if port != 0 {
        match TcpListener::bind((bind, port)) {
            Ok(listener) => {
                let addr = listener
                    .local_addr()
                    .map_err(|source| BrokerError::Bind { bind, source })?;
                return Ok((addr, false));
            }
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(source) => return Err(BrokerError::Bind { bind, source }),
        }
    }
    // NOTE: another process could take the port between this probe and rumqttd's bind;
    // the window is a few milliseconds.
    let listener =
        TcpListener::bind((bind, 0)).map_err(|source| BrokerError::Bind { bind, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| BrokerError::Bind { bind, source })?;
    Ok((addr, port != 0))
}

fn broker_config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PAYLOAD_BYTES,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "local".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 256,
            max_outgoing_packet_count: 200,
            // Small segments: rumqttd keeps this log in memory, and its sample
            // configuration's 100 MB segments grew a process past 800 MB under load.
            max_segment_size: 1024 * 1024,
            max_segment_count: 4,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("local".to_owned(), server)])),
        ..Config::default()
    }
}

fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    let started = Instant::now();
    let probe = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    while started.elapsed() < START_TIMEOUT {
        if mqtt_handshake(probe).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening { addr })
}

/// Connects as an MQTT 3.1.1 client and disconnects. A bare TCP probe would make rumqttd
/// log an error, and would not tell our broker from another program on the port.
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    const CLIENT_ID: &[u8] = b"sensor-emulator-probe";
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut connect = vec![0x10, (12 + CLIENT_ID.len()) as u8];
    // Protocol name "MQTT", level 4, clean session, keep-alive 10 s.
    connect.extend_from_slice(&[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x0a]);
    connect.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    connect.extend_from_slice(CLIENT_ID);
    stream.write_all(&connect)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack)?;
    if connack != [0x20, 0x02, 0x00, 0x00] {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {connack:02x?}"
        )));
    }
    stream.write_all(&[0xe0, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_port_falls_back() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let (addr, fell_back) = choose_address("127.0.0.1".parse().unwrap(), port).unwrap();
        assert!(fell_back);
        assert_ne!(addr.port(), port);
        assert!(addr.ip().is_loopback());
    }

    #[test]
    fn started_broker_answers_mqtt() {
        let broker = start("127.0.0.1".parse().unwrap(), 0).unwrap();
        assert!(broker.addr.ip().is_loopback());
        mqtt_handshake(broker.addr).unwrap();
    }

    #[test]
    fn handshake_rejects_a_non_mqtt_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 8];
            let _ = socket.read(&mut request);
            socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                .unwrap();
        });
        assert!(mqtt_handshake(addr).is_err());
        server.join().unwrap();
    }

    #[test]
    fn port_zero_picks_free_port() {
        let (addr, fell_back) = choose_address("127.0.0.1".parse().unwrap(), 0).unwrap();
        assert!(!fell_back);
        assert_ne!(addr.port(), 0);
    }
}
