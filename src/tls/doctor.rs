//! The connection doctor: checks a remote profile step by step, from the files on disk to
//! one published reading, and says for each step whether it passed and what to fix.
//!
//! Steps run in order. After a failure the remaining steps are skipped, because each one
//! needs the previous ones: no TLS handshake without a TCP connection, no CONNACK without
//! a handshake.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Packet, QoS, SubscribeReasonCode};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

use super::describe::{
    ConnectionContext, Explanation, Phase, explain_connection_error, explain_io_error,
    publish_rejected, subscribe_rejected,
};
use super::remote::{CheckResult, RemoteProfile, check_endpoint};
use super::{ClientIdentity, TrustAnchors, build_client_config, format_date};
use crate::pipeline::KEEP_ALIVE;
use crate::sensor::{NumberFormat, SensorModel, SensorSettings};

/// Certificates that expire sooner than this give a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// How long the TLS step waits for an alert after the handshake. With TLS 1.3 the broker
/// checks the client certificate after the client has finished the handshake, so a
/// rejection arrives as an alert on the first read.
const ALERT_WAIT: Duration = Duration::from_millis(500);

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Files,
    KeyMatch,
    Validity,
    Endpoint,
    Dns,
    Tcp,
    TlsHandshake,
    MqttConnect,
    Subscribe,
    Publish,
}

impl Step {
    pub const ALL: [Self; 10] = [
        Self::Files,
        Self::KeyMatch,
        Self::Validity,
        Self::Endpoint,
        Self::Dns,
        Self::Tcp,
        Self::TlsHandshake,
        Self::MqttConnect,
        Self::Subscribe,
        Self::Publish,
    ];

    /// Name in reports.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::Files => "Certificate, key and CA files",
            Self::KeyMatch => "Private key matches the certificate",
            Self::Validity => "Certificate validity dates",
            Self::Endpoint => "Endpoint and port",
            Self::Dns => "DNS lookup",
            Self::Tcp => "TCP connection",
            Self::TlsHandshake => "TLS handshake with server verification",
            Self::MqttConnect => "MQTT connection (CONNACK)",
            Self::Subscribe => "Subscribe to the control and alerts topics",
            Self::Publish => "Publish one reading",
        }
    }
}

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    /// Works, but something may be wrong; it does not stop the next steps.
    Warning,
    Failed,
    /// Not run: not needed for this profile, or an earlier step failed.
    Skipped,
}

impl Status {
    /// Word in reports.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Warning => "warning",
            Self::Failed => "FAILED",
            Self::Skipped => "skipped",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub step: Step,
    pub status: Status,
    pub detail: String,
    /// What to do; empty when the step passed or was skipped.
    pub fix: String,
}

/// The doctor's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `AWS IoT Core` or `custom broker`, the address and the client id.
    pub target: String,
    pub steps: Vec<StepResult>,
}

impl Report {
    /// Whether no step failed; warnings do not count.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|step| step.status != Status::Failed)
    }

    /// The result of `step`.
    #[must_use]
    pub fn step(&self, step: Step) -> Option<&StepResult> {
        self.steps.iter().find(|result| result.step == step)
    }

    /// The first failed step.
    #[must_use]
    pub fn first_failure(&self) -> Option<&StepResult> {
        self.steps
            .iter()
            .find(|result| result.status == Status::Failed)
    }

    fn count(&self, status: Status) -> usize {
        self.steps
            .iter()
            .filter(|result| result.status == status)
            .count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Connection doctor: {}", self.target)?;
        for (index, result) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "{:>2}. {:<8} {}: {}",
                index + 1,
                result.status.label(),
                result.step.title(),
                result.detail
            )?;
            if !result.fix.is_empty() {
                writeln!(f, "    {:<8} Fix: {}", "", result.fix)?;
            }
        }
        write!(
            f,
            "Result: {} passed, {} failed, {} warnings, {} skipped.",
            self.count(Status::Passed),
            self.count(Status::Failed),
            self.count(Status::Warning),
            self.count(Status::Skipped)
        )
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// Longest wait of each network step.
    pub timeout: Duration,
    /// Time for the validity check.
    pub now: OffsetDateTime,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            now: OffsetDateTime::now_utc(),
        }
    }
}

/// Collects results and skips the remaining steps after a failure.
struct Recorder {
    steps: Vec<StepResult>,
    failed: Option<Step>,
}

impl Recorder {
    fn record(&mut self, step: Step, status: Status, detail: String, fix: String) {
        if status == Status::Failed && self.failed.is_none() {
            self.failed = Some(step);
        }
        self.steps.push(StepResult {
            step,
            status,
            detail,
            fix,
        });
    }

    fn pass(&mut self, step: Step, detail: String) {
        self.record(step, Status::Passed, detail, String::new());
    }

    fn fail(&mut self, step: Step, explanation: Explanation) {
        self.record(step, Status::Failed, explanation.problem, explanation.fix);
    }

    fn skip(&mut self, step: Step, reason: &str) {
        self.record(step, Status::Skipped, reason.to_owned(), String::new());
    }

    fn check(&mut self, step: Step, result: CheckResult) {
        match result {
            CheckResult::Passed(detail) => self.pass(step, detail),
            CheckResult::Warning { problem, fix } => {
                self.record(step, Status::Warning, problem, fix);
            }
            CheckResult::Failed { problem, fix } => self.fail(step, Explanation { problem, fix }),
        }
    }

    /// Skips every step from `from` on, naming the step that failed.
    fn skip_rest(&mut self, from: Step) {
        let reason = match self.failed {
            Some(failed) => format!("not run, because \"{}\" failed", failed.title()),
            None => "not run".to_owned(),
        };
        for step in Step::ALL.iter().skip_while(|step| **step != from).copied() {
            self.skip(step, &reason);
        }
    }
}

/// A failure message as an explanation whose text already says what to do.
fn message(problem: &impl ToString) -> Explanation {
    Explanation {
        problem: problem.to_string(),
        fix: String::new(),
    }
}

/// Runs every check against `profile`. Network steps contact only the profile's broker.
pub async fn run(profile: &RemoteProfile, options: &DoctorOptions) -> Report {
    let mut recorder = Recorder {
        steps: Vec::new(),
        failed: None,
    };
    let target = format!(
        "{} at {}, client id \"{}\"",
        match profile.kind {
            super::remote::BrokerKind::Aws => "AWS IoT Core",
            super::remote::BrokerKind::Custom => "custom broker",
        },
        profile.address(),
        profile.client_id
    );
    let config = check_files(profile, options, &mut recorder);
    if recorder.failed.is_none() {
        recorder.check(
            Step::Endpoint,
            check_endpoint(
                profile.kind,
                &profile.host,
                profile.port,
                profile.tls.is_some(),
            ),
        );
    }
    let Some(config) = config.filter(|_| recorder.failed.is_none()) else {
        let from = Step::ALL
            .iter()
            .copied()
            .find(|step| recorder.steps.iter().all(|result| result.step != *step))
            .unwrap_or(Step::Publish);
        recorder.skip_rest(from);
        return Report {
            target,
            steps: recorder.steps,
        };
    };
    let context = profile.context(config.anchors.clone(), KEEP_ALIVE);
    check_network(profile, &config, &context, options, &mut recorder).await;
    Report {
        target,
        steps: recorder.steps,
    }
}

/// The TLS configuration the network steps use.
struct Prepared {
    tls: Option<Arc<ClientConfig>>,
    anchors: String,
}

fn check_files(
    profile: &RemoteProfile,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) -> Option<Prepared> {
    let Some(files) = &profile.tls else {
        for step in [Step::Files, Step::KeyMatch, Step::Validity] {
            recorder.skip(step, "TLS is off for this profile");
        }
        return Some(Prepared {
            tls: None,
            anchors: "no TLS".to_owned(),
        });
    };
    let anchors = match TrustAnchors::load(files.ca_file.as_deref()) {
        Ok(anchors) => anchors,
        Err(error) => {
            recorder.fail(Step::Files, message(&error));
            return None;
        }
    };
    if let Err(error) = anchors.root_store() {
        recorder.fail(Step::Files, message(&error));
        return None;
    }
    let identity = match &files.client {
        Some((certificate, key)) => match ClientIdentity::load(certificate, key) {
            Ok(identity) => Some(identity),
            Err(error) => {
                recorder.fail(Step::Files, message(&error));
                return None;
            }
        },
        None => None,
    };
    let Some(identity) = identity else {
        recorder.pass(
            Step::Files,
            format!("no client certificate; CA {}", anchors.describe()),
        );
        recorder.skip(Step::KeyMatch, "no client certificate in this profile");
        recorder.skip(Step::Validity, "no client certificate in this profile");
        let tls = build_client_config(&anchors, None, files.alpn.as_deref());
        return finish_config(tls, anchors.describe(), recorder);
    };
    if let Err(error) = identity.check_is_device_certificate() {
        recorder.fail(Step::Files, message(&error));
        return None;
    }
    recorder.pass(Step::Files, describe_files(&identity, &anchors));
    if let Err(error) = identity.check_key_matches() {
        recorder.fail(Step::KeyMatch, message(&error));
        return None;
    }
    recorder.pass(
        Step::KeyMatch,
        "the key's public key is the certificate's".to_owned(),
    );
    if let Err(error) = identity.check_validity(options.now) {
        recorder.fail(Step::Validity, message(&error));
        return None;
    }
    recorder.check(Step::Validity, validity_result(&identity, options.now));
    let tls = build_client_config(&anchors, Some(identity), files.alpn.as_deref());
    finish_config(tls, anchors.describe(), recorder)
}

fn finish_config(
    tls: Result<Arc<ClientConfig>, super::TlsError>,
    anchors: String,
    recorder: &mut Recorder,
) -> Option<Prepared> {
    match tls {
        Ok(config) => Some(Prepared {
            tls: Some(config),
            anchors,
        }),
        Err(error) => {
            recorder.fail(Step::Files, message(&error));
            None
        }
    }
}

fn describe_files(identity: &ClientIdentity, anchors: &TrustAnchors) -> String {
    let mut text = String::new();
    let certificates = &identity.certificates;
    if let Some(info) = certificates.info.first() {
        let _ = write!(
            text,
            "certificate {} ({}, certificate ID {}); ",
            certificates.path.display(),
            info.subject,
            info.sha256
        );
    }
    let _ = write!(
        text,
        "key {} ({}); CA {}",
        identity.key.path.display(),
        identity.key.format,
        anchors.describe()
    );
    text
}

fn validity_result(identity: &ClientIdentity, now: OffsetDateTime) -> CheckResult {
    let Some(info) = identity.certificates.info.first() else {
        return CheckResult::Passed("no certificate dates to check".to_owned());
    };
    let days_left = (info.not_after - now).whole_days();
    let left = match days_left {
        0 => "expires within a day".to_owned(),
        1 => "1 day left".to_owned(),
        days => format!("{days} days left"),
    };
    let detail = format!(
        "valid from {} to {} ({left})",
        format_date(info.not_before),
        format_date(info.not_after)
    );
    if days_left < EXPIRY_WARNING_DAYS {
        CheckResult::Warning {
            problem: detail,
            fix: "Create a new certificate for the Thing before this one expires".to_owned(),
        }
    } else {
        CheckResult::Passed(detail)
    }
}

async fn check_network(
    profile: &RemoteProfile,
    prepared: &Prepared,
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) {
    let Some(addresses) = check_dns(profile, options, recorder).await else {
        recorder.skip_rest(Step::Tcp);
        return;
    };
    let Some(stream) = check_tcp(&addresses, context, options, recorder).await else {
        if prepared.tls.is_none() {
            recorder.skip(Step::TlsHandshake, "TLS is off for this profile");
            recorder.skip_rest(Step::MqttConnect);
        } else {
            recorder.skip_rest(Step::TlsHandshake);
        }
        return;
    };
    if let Some(config) = &prepared.tls {
        if !check_tls(profile, config, stream, context, options, recorder).await {
            recorder.skip_rest(Step::MqttConnect);
            return;
        }
    } else {
        drop(stream);
        recorder.skip(Step::TlsHandshake, "TLS is off for this profile");
    }
    check_mqtt(profile, prepared, context, options, recorder).await;
}

async fn check_dns(
    profile: &RemoteProfile,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) -> Option<Vec<SocketAddr>> {
    if let Ok(ip) = profile.host.parse::<std::net::IpAddr>() {
        recorder.pass(Step::Dns, format!("{ip} is an address; no lookup needed"));
        return Some(vec![SocketAddr::new(ip, profile.port)]);
    }
    let lookup = tokio::net::lookup_host((profile.host.as_str(), profile.port));
    match tokio::time::timeout(options.timeout, lookup).await {
        Ok(Ok(found)) => {
            let addresses: Vec<SocketAddr> = found.collect();
            let list: Vec<String> = addresses.iter().map(|addr| addr.ip().to_string()).collect();
            recorder.pass(
                Step::Dns,
                format!("{} resolves to {}", profile.host, list.join(", ")),
            );
            Some(addresses)
        }
        Ok(Err(error)) => {
            recorder.fail(
                Step::Dns,
                Explanation {
                    problem: format!("cannot resolve {} ({error})", profile.host),
                    fix: "Check the spelling of the endpoint and that this computer has a network connection".to_owned(),
                },
            );
            None
        }
        Err(_) => {
            recorder.fail(
                Step::Dns,
                Explanation {
                    problem: format!(
                        "looking up {} took longer than {} s",
                        profile.host,
                        options.timeout.as_secs()
                    ),
                    fix: "Check this computer's network and DNS settings".to_owned(),
                },
            );
            None
        }
    }
}

async fn check_tcp(
    addresses: &[SocketAddr],
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) -> Option<TcpStream> {
    let mut last_error = None;
    for address in addresses {
        let started = Instant::now();
        match tokio::time::timeout(options.timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                recorder.pass(
                    Step::Tcp,
                    format!(
                        "connected to {address} in {} ms",
                        started.elapsed().as_millis()
                    ),
                );
                return Some(stream);
            }
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => last_error = Some(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    }
    let error = last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the lookup returned no address",
        )
    });
    recorder.fail(
        Step::Tcp,
        explain_io_error(&error, context, Phase::Connecting),
    );
    None
}

/// Runs the TLS handshake on `stream` and waits briefly for an alert; returns whether the
/// step passed.
async fn check_tls(
    profile: &RemoteProfile,
    config: &Arc<ClientConfig>,
    stream: TcpStream,
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) -> bool {
    let server_name = match ServerName::try_from(profile.host.clone()) {
        Ok(name) => name,
        Err(error) => {
            recorder.fail(
                Step::TlsHandshake,
                message(&format!(
                    "\"{}\" cannot be a TLS server name: {error}",
                    profile.host
                )),
            );
            return false;
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    let handshake = connector.connect(server_name, stream);
    let mut tls = match tokio::time::timeout(options.timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            recorder.fail(
                Step::TlsHandshake,
                explain_io_error(&error, context, Phase::Connecting),
            );
            return false;
        }
        Err(_) => {
            recorder.fail(
                Step::TlsHandshake,
                Explanation {
                    problem: format!(
                        "the TLS handshake did not finish within {} s",
                        options.timeout.as_secs()
                    ),
                    fix: "Check that the port serves TLS and that no firewall or proxy holds the connection".to_owned(),
                },
            );
            return false;
        }
    };
    let (_, connection) = tls.get_ref();
    let version = connection
        .protocol_version()
        .map_or_else(|| "TLS".to_owned(), |version| format!("{version:?}"));
    let alpn = connection
        .alpn_protocol()
        .map(|protocol| String::from_utf8_lossy(protocol).into_owned());
    let mut byte = [0_u8; 1];
    match tokio::time::timeout(ALERT_WAIT, tls.read(&mut byte)).await {
        Ok(Err(error)) => {
            recorder.fail(
                Step::TlsHandshake,
                explain_io_error(&error, context, Phase::Connecting),
            );
            return false;
        }
        Ok(Ok(0)) => {
            recorder.fail(
                Step::TlsHandshake,
                explain_io_error(
                    &std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    context,
                    Phase::Connecting,
                ),
            );
            return false;
        }
        // A byte before CONNECT would be odd but is no TLS problem; silence is normal.
        Ok(Ok(_)) | Err(_) => {}
    }
    let mut detail = format!(
        "{version}; the server certificate is valid for {} and chains to {}",
        profile.host, context.anchors
    );
    if let Some(alpn) = alpn {
        let _ = write!(detail, "; ALPN {alpn}");
    }
    recorder.pass(Step::TlsHandshake, detail);
    true
}

async fn check_mqtt(
    profile: &RemoteProfile,
    prepared: &Prepared,
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) {
    let mqtt = profile.mqtt_options(prepared.tls.clone(), KEEP_ALIVE);
    let (client, mut event_loop) = AsyncClient::new(mqtt, 16);
    let started = Instant::now();
    match poll_until(&mut event_loop, options.timeout, |event| {
        matches!(event, Event::Incoming(Packet::ConnAck(_)))
    })
    .await
    {
        Ok(_) => recorder.pass(
            Step::MqttConnect,
            format!(
                "the broker accepted client id \"{}\" in {} ms",
                profile.client_id,
                started.elapsed().as_millis()
            ),
        ),
        Err(error) => {
            recorder.fail(
                Step::MqttConnect,
                explain_poll_error(&error, context, Phase::Connecting),
            );
            recorder.skip_rest(Step::Subscribe);
            return;
        }
    }
    if check_subscribe(
        profile,
        &client,
        &mut event_loop,
        context,
        options,
        recorder,
    )
    .await
    {
        check_publish(
            profile,
            &client,
            &mut event_loop,
            context,
            options,
            recorder,
        )
        .await;
    } else {
        recorder.skip_rest(Step::Publish);
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), event_loop.poll()).await;
}

async fn check_subscribe(
    profile: &RemoteProfile,
    client: &AsyncClient,
    event_loop: &mut EventLoop,
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) -> bool {
    let filters = [
        profile.topics.control.as_str(),
        profile.topics.alerts.as_str(),
    ];
    for filter in filters {
        if let Err(error) = client.try_subscribe(filter, QoS::AtLeastOnce) {
            recorder.fail(
                Step::Subscribe,
                message(&format!("subscribe request not queued: {error}")),
            );
            return false;
        }
        let outcome = poll_until(event_loop, options.timeout, |event| {
            matches!(event, Event::Incoming(Packet::SubAck(_)))
        })
        .await;
        match outcome {
            Ok(Event::Incoming(Packet::SubAck(ack)))
                if ack
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure)) =>
            {
                recorder.fail(Step::Subscribe, subscribe_rejected(context, filter, false));
                return false;
            }
            Ok(_) => {}
            Err(PollError::Connection(error)) if is_close(&error) => {
                recorder.fail(Step::Subscribe, subscribe_rejected(context, filter, true));
                return false;
            }
            Err(error) => {
                recorder.fail(
                    Step::Subscribe,
                    explain_poll_error(&error, context, Phase::Connected),
                );
                return false;
            }
        }
    }
    recorder.pass(
        Step::Subscribe,
        format!("SUBACK for {} and {}", filters[0], filters[1]),
    );
    true
}

async fn check_publish(
    profile: &RemoteProfile,
    client: &AsyncClient,
    event_loop: &mut EventLoop,
    context: &ConnectionContext,
    options: &DoctorOptions,
    recorder: &mut Recorder,
) {
    let payload = doctor_reading(profile);
    let topic = profile.topics.telemetry.as_str();
    if let Err(error) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
        recorder.fail(
            Step::Publish,
            message(&format!("publish request not queued: {error}")),
        );
        return;
    }
    let started = Instant::now();
    let outcome = poll_until(event_loop, options.timeout, |event| {
        matches!(event, Event::Incoming(Packet::PubAck(_)))
    })
    .await;
    match outcome {
        Ok(_) => recorder.pass(
            Step::Publish,
            format!(
                "PUBACK on {topic} after {} ms",
                started.elapsed().as_millis()
            ),
        ),
        Err(PollError::Connection(error)) if is_close(&error) => {
            recorder.fail(Step::Publish, publish_rejected(context, topic));
        }
        Err(error) => {
            recorder.fail(
                Step::Publish,
                explain_poll_error(&error, context, Phase::Connected),
            );
        }
    }
}

/// One reading from the profile's device, at the current time, with session `doctor`.
fn doctor_reading(profile: &RemoteProfile) -> Vec<u8> {
    let settings = SensorSettings {
        device_id: profile
            .device_id
            .clone()
            .unwrap_or_else(|| SensorSettings::default().device_id),
        ..SensorSettings::default()
    };
    let mut model = SensorModel::new(settings, 0, "doctor".to_owned());
    model
        .next_reading(OffsetDateTime::now_utc())
        .to_payload(NumberFormat::Numbers)
}

enum PollError {
    Connection(ConnectionError),
    TimedOut(Duration),
}

/// Polls the event loop until `done` accepts an event.
async fn poll_until(
    event_loop: &mut EventLoop,
    timeout: Duration,
    done: impl Fn(&Event) -> bool,
) -> Result<Event, PollError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, event_loop.poll()).await {
            Ok(Ok(event)) if done(&event) => return Ok(event),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(PollError::Connection(error)),
            Err(_) => return Err(PollError::TimedOut(timeout)),
        }
    }
}

fn explain_poll_error(error: &PollError, context: &ConnectionContext, phase: Phase) -> Explanation {
    match error {
        PollError::Connection(error) => explain_connection_error(error, context, phase),
        PollError::TimedOut(timeout) => Explanation {
            problem: format!("no answer from the broker within {} s", timeout.as_secs()),
            fix: "Check the network and the broker".to_owned(),
        },
    }
}

fn is_close(error: &ConnectionError) -> bool {
    use rumqttc::StateError;
    match error {
        ConnectionError::MqttState(StateError::ConnectionAborted) => true,
        ConnectionError::MqttState(StateError::Io(io)) | ConnectionError::Io(io) => {
            super::describe::find_rustls_error(io).is_none()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_renders() {
        let report = Report {
            target: "custom broker at localhost:8883, client id \"x\"".to_owned(),
            steps: vec![
                StepResult {
                    step: Step::Files,
                    status: Status::Passed,
                    detail: "ok".to_owned(),
                    fix: String::new(),
                },
                StepResult {
                    step: Step::KeyMatch,
                    status: Status::Failed,
                    detail: "the key does not match".to_owned(),
                    fix: "Choose the right key".to_owned(),
                },
            ],
        };
        assert!(!report.passed());
        assert_eq!(report.first_failure().map(|r| r.step), Some(Step::KeyMatch));
        let text = report.to_string();
        assert!(
            text.contains(
                " 2. FAILED   Private key matches the certificate: the key does not match"
            ),
            "{text}"
        );
        assert!(text.contains("Fix: Choose the right key"), "{text}");
        assert!(
            text.ends_with("Result: 1 passed, 1 failed, 0 warnings, 0 skipped."),
            "{text}"
        );
    }

    #[test]
    fn skip_rest_names_the_failed_step() {
        let mut recorder = Recorder {
            steps: Vec::new(),
            failed: None,
        };
        recorder.fail(Step::Tcp, message(&"refused"));
        recorder.skip_rest(Step::TlsHandshake);
        assert_eq!(recorder.steps.len(), 5);
        assert!(
            recorder.steps[1]
                .detail
                .contains("\"TCP connection\" failed")
        );
        assert_eq!(recorder.steps.last().map(|r| r.step), Some(Step::Publish));
    }
}
