//! Translation of connection errors into what went wrong and what to do about it.
//!
//! rumqttc reports TLS problems in several wrappings: a rustls error from the handshake, an
//! I/O error around one, or, when the broker rejects the client certificate after a TLS 1.3
//! handshake, a "serialization" error around an I/O error around a TLS alert. This module
//! finds the innermost cause and explains it for AWS IoT Core or a custom broker.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use rumqttc::{ConnectReturnCode, ConnectionError, StateError};
use rustls::{AlertDescription, CertificateError};

use super::remote::BrokerKind;

/// What the explanation knows about the connection.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub kind: BrokerKind,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub tls: bool,
    pub client_certificate: bool,
    /// Names the trust anchors, e.g. "Amazon Root CA 1 and 3 (built in)".
    pub anchors: String,
    pub keep_alive: Duration,
}

/// A problem and its fix, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fix.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}. {}", self.problem, self.fix)
        }
    }
}

impl Explanation {
    fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// Whether the error happened before the broker accepted the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting: TCP, TLS, CONNECT and CONNACK.
    Connecting,
    /// After CONNACK.
    Connected,
}

/// Explains an error of rumqttc's event loop.
#[must_use]
pub fn explain_connection_error(
    error: &ConnectionError,
    context: &ConnectionContext,
    phase: Phase,
) -> Explanation {
    if let Some(tls) = find_rustls_error(error) {
        return explain_tls_error(tls, context);
    }
    match error {
        ConnectionError::ConnectionRefused(code) => explain_refusal(*code, context),
        ConnectionError::NetworkTimeout => timed_out(context),
        ConnectionError::MqttState(StateError::AwaitPingResp) => Explanation::new(
            format!(
                "the broker did not answer a keep-alive ping within {} s, so the connection stalled",
                context.keep_alive.as_secs()
            ),
            "The app reconnects by itself; check the network if this repeats",
        ),
        ConnectionError::MqttState(StateError::ConnectionAborted) if phase == Phase::Connecting => {
            closed_before_connack(context)
        }
        ConnectionError::MqttState(StateError::ConnectionAborted) => Explanation::new(
            "the broker closed the connection",
            "The app reconnects by itself",
        ),
        _ => match find_io_error(error) {
            Some(io_error) => explain_io_error(io_error, context, phase),
            None => Explanation::new(error.to_string(), ""),
        },
    }
}

/// Explains an I/O error of a TCP connection or TLS handshake.
#[must_use]
pub fn explain_io_error(
    error: &io::Error,
    context: &ConnectionContext,
    phase: Phase,
) -> Explanation {
    let address = format!("{}:{}", context.host, context.port);
    if let Some(tls) = error.get_ref().and_then(|inner| find_rustls_error(inner)) {
        return explain_tls_error(tls, context);
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => Explanation::new(
            format!("nothing accepts connections on {address} (connection refused)"),
            match context.kind {
                BrokerKind::Aws => {
                    "Check the endpoint: AWS IoT Core answers on 8883 and 443, so a refusal \
                     means the host is not an AWS IoT data endpoint"
                }
                BrokerKind::Custom => "Check that the broker is running and that the port is right",
            },
        ),
        io::ErrorKind::TimedOut => timed_out(context),
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
            if context.tls && phase == Phase::Connecting =>
        {
            closed_during_tls(context)
        }
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
            if phase == Phase::Connecting =>
        {
            closed_before_connack(context)
        }
        _ if is_lookup_failure(error) => Explanation::new(
            format!("cannot resolve the host name {} ({error})", context.host),
            "Check the spelling of the endpoint and that this computer has a network connection",
        ),
        _ => Explanation::new(format!("{address}: {error}"), ""),
    }
}

/// Explains a rustls error: a rejected server certificate, a TLS alert from the broker, or
/// a server that does not speak TLS.
#[must_use]
pub fn explain_tls_error(error: &rustls::Error, context: &ConnectionContext) -> Explanation {
    match error {
        rustls::Error::InvalidCertificate(certificate_error) => {
            explain_server_certificate(certificate_error, context)
        }
        rustls::Error::AlertReceived(alert) => explain_alert(*alert, context),
        rustls::Error::NoApplicationProtocol => alpn_problem(context),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            not_tls(context)
        }
        other => Explanation::new(format!("TLS failed: {other}"), ""),
    }
}

fn explain_server_certificate(
    error: &CertificateError,
    context: &ConnectionContext,
) -> Explanation {
    match error {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => Explanation::new(
            format!(
                "the broker's certificate is not signed by a trusted CA ({})",
                context.anchors
            ),
            match context.kind {
                BrokerKind::Aws => {
                    "Use the -ats endpoint, and Amazon Root CA 1 or no CA file (the built-in Amazon roots)"
                }
                BrokerKind::Custom => {
                    "Choose the CA certificate that signed the broker's certificate"
                }
            },
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Explanation::new(
                format!(
                    "the broker's certificate is not valid for the host name {}",
                    context.host
                ),
                match context.kind {
                    BrokerKind::Aws => {
                        "Enter the device data endpoint exactly as the AWS IoT console shows it"
                    }
                    BrokerKind::Custom => {
                        "Connect with a host name that the broker's certificate lists"
                    }
                },
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => Explanation::new(
            format!("the broker's certificate is outside its validity dates ({error})"),
            "Check this computer's date and time",
        ),
        other => Explanation::new(
            format!("the broker's certificate was rejected: {other}"),
            "",
        ),
    }
}

fn explain_alert(alert: AlertDescription, context: &ConnectionContext) -> Explanation {
    match alert {
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateRevoked
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnknownCA
        | AlertDescription::AccessDenied
        | AlertDescription::DecryptError
        | AlertDescription::CertificateRequired => {
            let fix = if !context.client_certificate {
                "The broker requires a client certificate: set the device certificate and private key"
            } else if context.kind == BrokerKind::Aws {
                "In the AWS IoT console (Security, Certificates), check that this certificate is registered in this account and region and is Active"
            } else {
                "Check that the broker trusts the CA that issued the device certificate (its cafile) and that the certificate is not revoked"
            };
            Explanation::new(
                format!("the broker rejected the device certificate (TLS alert {alert:?})"),
                fix,
            )
        }
        AlertDescription::NoApplicationProtocol => alpn_problem(context),
        AlertDescription::HandshakeFailure
            if context.kind == BrokerKind::Aws && context.port == 443 =>
        {
            alpn_problem(context)
        }
        AlertDescription::ProtocolVersion => Explanation::new(
            "the broker supports neither TLS 1.2 nor TLS 1.3",
            "Enable TLS 1.2 or newer on the broker",
        ),
        other => Explanation::new(
            format!("the broker ended the TLS handshake (TLS alert {other:?})"),
            "",
        ),
    }
}

fn explain_refusal(code: ConnectReturnCode, context: &ConnectionContext) -> Explanation {
    let client = &context.client_id;
    match (code, context.kind) {
        (ConnectReturnCode::BadUserNamePassword, _) => Explanation::new(
            "the broker rejected the user name or password (CONNACK: bad user name or password)",
            "Check the user name and password of this profile",
        ),
        (ConnectReturnCode::NotAuthorized, BrokerKind::Aws) => Explanation::new(
            format!("AWS IoT Core refused client id \"{client}\" (CONNACK: not authorized)"),
            format!(
                "The IoT policy's iot:Connect statement probably does not allow this client id: allow the resource arn:aws:iot:REGION:ACCOUNT:client/{client}"
            ),
        ),
        (ConnectReturnCode::NotAuthorized, BrokerKind::Custom) => Explanation::new(
            format!("the broker refused client id \"{client}\" (CONNACK: not authorized)"),
            "Check the broker's access rules for this client id, user name or certificate",
        ),
        (ConnectReturnCode::BadClientId, _) => Explanation::new(
            format!(
                "the broker rejected the client id \"{client}\" (CONNACK: identifier rejected)"
            ),
            "Choose a client id the broker accepts (letters, digits, - and _; many brokers allow at most 23 characters)",
        ),
        (ConnectReturnCode::ServiceUnavailable, _) => Explanation::new(
            "the broker is unavailable (CONNACK: server unavailable)",
            "The app retries; wait or check the broker",
        ),
        (code, _) => Explanation::new(format!("the broker refused the connection ({code:?})"), ""),
    }
}

/// Explains a subscription the broker rejected with a SUBACK failure, or by closing the
/// connection (`closed`), which is what AWS IoT Core does when the policy does not allow
/// the topic filter.
#[must_use]
pub fn subscribe_rejected(context: &ConnectionContext, filter: &str, closed: bool) -> Explanation {
    let problem = if closed {
        format!("the broker closed the connection right after SUBSCRIBE to {filter}")
    } else {
        format!("the broker rejected the subscription to {filter} (SUBACK failure)")
    };
    let fix = match context.kind {
        BrokerKind::Aws => format!(
            "The IoT policy probably does not allow this topic filter: allow iot:Subscribe on arn:aws:iot:REGION:ACCOUNT:topicfilter/{filter} and iot:Receive on arn:aws:iot:REGION:ACCOUNT:topic/{filter}"
        ),
        BrokerKind::Custom => {
            "Check the broker's access rules for this client and topic filter".to_owned()
        }
    };
    Explanation { problem, fix }
}

/// Explains a connection closed after a PUBLISH that was never acknowledged.
#[must_use]
pub fn publish_rejected(context: &ConnectionContext, topic: &str) -> Explanation {
    let fix = match context.kind {
        BrokerKind::Aws => format!(
            "The IoT policy probably does not allow publishing on this topic: allow iot:Publish on arn:aws:iot:REGION:ACCOUNT:topic/{topic}"
        ),
        BrokerKind::Custom => {
            "Check the broker's access rules for this client and topic".to_owned()
        }
    };
    Explanation {
        problem: format!(
            "the broker closed the connection after a PUBLISH to {topic}, before acknowledging any"
        ),
        fix,
    }
}

/// Says why the link stopped retrying after `strikes` take-overs.
#[must_use]
pub fn takeover_message(context: &ConnectionContext, strikes: u32) -> String {
    format!(
        "the broker closed the connection soon after accepting it {strikes} times in a row, the sign of another client connected with the same client id \"{}\" (brokers, AWS IoT Core included, disconnect the older connection). Stop the other client or give this profile another client id, then connect again",
        context.client_id
    )
}

fn closed_before_connack(context: &ConnectionContext) -> Explanation {
    match context.kind {
        BrokerKind::Aws => Explanation::new(
            "AWS IoT Core closed the connection before CONNACK",
            format!(
                "The IoT policy attached to the certificate probably does not allow iot:Connect for client id \"{}\" (resource arn:aws:iot:REGION:ACCOUNT:client/{}), or the certificate is not Active",
                context.client_id, context.client_id
            ),
        ),
        BrokerKind::Custom => Explanation::new(
            "the broker closed the connection before CONNACK",
            "The broker may reject this client id, or require a user name, password or client certificate",
        ),
    }
}

fn closed_during_tls(context: &ConnectionContext) -> Explanation {
    let problem = format!(
        "{}:{} closed the connection during the TLS handshake",
        context.host, context.port
    );
    let fix = match context.kind {
        BrokerKind::Aws if context.port == 443 => {
            "On port 443, AWS IoT Core needs ALPN x-amzn-mqtt-ca (the app sends it) and an active certificate; check the certificate in the AWS IoT console"
        }
        BrokerKind::Aws => {
            "Check that the certificate is registered and Active in the AWS IoT console"
        }
        BrokerKind::Custom if !context.client_certificate => {
            "Check that this port is the broker's TLS port (plain MQTT is usually 1883, TLS 8883), and whether the broker requires a client certificate"
        }
        BrokerKind::Custom => {
            "Check that this port is the broker's TLS port (plain MQTT is usually 1883, TLS 8883)"
        }
    };
    Explanation::new(problem, fix)
}

fn not_tls(context: &ConnectionContext) -> Explanation {
    Explanation::new(
        format!(
            "the server on {}:{} does not speak TLS",
            context.host, context.port
        ),
        "Check the port: AWS IoT Core uses 8883 or 443; brokers usually serve plain MQTT on 1883 and TLS on 8883",
    )
}

fn alpn_problem(context: &ConnectionContext) -> Explanation {
    Explanation::new(
        format!(
            "the TLS handshake with {}:{} failed on the application protocol (ALPN)",
            context.host, context.port
        ),
        "AWS IoT Core accepts MQTT with certificates on port 443 only with ALPN x-amzn-mqtt-ca, which the AWS profile sends on port 443; use port 8883 otherwise",
    )
}

fn timed_out(context: &ConnectionContext) -> Explanation {
    Explanation::new(
        format!("no answer from {}:{} in time", context.host, context.port),
        match context.kind {
            BrokerKind::Aws => {
                "Check the network; a firewall may block port 8883, in which case use port 443"
            }
            BrokerKind::Custom => "Check the network, the host name and the port",
        },
    )
}

fn is_lookup_failure(error: &io::Error) -> bool {
    let text = error.to_string();
    text.contains("lookup") || text.contains("resolve") || text.contains("No such host")
}

/// Finds a rustls error inside wrapped errors, looking inside I/O errors too, whose
/// `source()` skips the error they wrap.
#[must_use]
pub fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: &(dyn StdError + 'static) = error;
    loop {
        if let Some(found) = current.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io_error) = current.downcast_ref::<io::Error>()
            && let Some(inner) = io_error.get_ref()
        {
            current = inner;
            continue;
        }
        current = current.source()?;
    }
}

fn find_io_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut current: &(dyn StdError + 'static) = error;
    loop {
        if let Some(found) = current.downcast_ref::<io::Error>() {
            return Some(found);
        }
        current = current.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(kind: BrokerKind) -> ConnectionContext {
        ConnectionContext {
            kind,
            host: "abc123-ats.iot.eu-west-1.amazonaws.com".to_owned(),
            port: 8883,
            client_id: "WeatherEmulator".to_owned(),
            tls: true,
            client_certificate: true,
            anchors: "Amazon Root CA 1 and 3 (built in)".to_owned(),
            keep_alive: Duration::from_secs(30),
        }
    }

    #[test]
    fn alert_inside_serialization_error_is_found() {
        // What rumqttc returns when the broker rejects the certificate after a TLS 1.3
        // handshake: the alert arrives while reading CONNACK.
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let io_error = io::Error::new(io::ErrorKind::InvalidData, alert);
        let error =
            ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::Io(io_error)));
        let explanation =
            explain_connection_error(&error, &context(BrokerKind::Aws), Phase::Connecting);
        assert_eq!(
            explanation.problem,
            "the broker rejected the device certificate (TLS alert CertificateRequired)"
        );
        assert!(explanation.fix.contains("Active"), "{explanation}");
    }

    #[test]
    fn refused_connect_names_the_policy_for_aws() {
        let error = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        let explanation =
            explain_connection_error(&error, &context(BrokerKind::Aws), Phase::Connecting);
        assert!(explanation.fix.contains("iot:Connect"), "{explanation}");
        assert!(
            explanation.fix.contains("client/WeatherEmulator"),
            "{explanation}"
        );
    }

    #[test]
    fn close_before_connack_differs_by_broker() {
        let error = ConnectionError::MqttState(StateError::ConnectionAborted);
        let aws = explain_connection_error(&error, &context(BrokerKind::Aws), Phase::Connecting);
        assert!(aws.fix.contains("iot:Connect"), "{aws}");
        let custom =
            explain_connection_error(&error, &context(BrokerKind::Custom), Phase::Connecting);
        assert!(!custom.fix.contains("iot:Connect"), "{custom}");
        let later = explain_connection_error(&error, &context(BrokerKind::Aws), Phase::Connected);
        assert_eq!(later.problem, "the broker closed the connection");
    }

    #[test]
    fn unknown_issuer_points_at_the_ats_endpoint() {
        let error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let explanation = explain_tls_error(&error, &context(BrokerKind::Aws));
        assert!(explanation.fix.contains("-ats"), "{explanation}");
    }

    #[test]
    fn missing_pong_is_a_stall() {
        let error = ConnectionError::MqttState(StateError::AwaitPingResp);
        let explanation =
            explain_connection_error(&error, &context(BrokerKind::Custom), Phase::Connected);
        assert!(explanation.problem.contains("keep-alive"), "{explanation}");
    }
}
