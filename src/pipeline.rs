//! The emulator's pipeline, shared by the window and headless mode: the sensor scheduler
//! publishes readings, the local cloud (or a remote broker's cloud, such as AWS IoT Core)
//! judges them, and alerts come back on the alerts topic. The caller sends [`Command`]s
//! and receives [`PipelineEvent`]s; nothing here waits on the caller.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::QoS;
use temperature_alert::{Alert, AlertSource, Monitor, PolicyConfig};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::local_cloud::broker::{self, BrokerError, BrokerHandle};
use crate::local_cloud::engine::{Engine, EngineCommand, EngineObserver, RuleTrace, SeenReadings};
use crate::local_cloud::outbox::{Outbox, OutboxError};
use crate::local_cloud::rules::{Rule, RuleError};
use crate::mqtt::{Link, LinkOptions, LinkState, LinkStatus, MAX_BACKOFF, Message};
use crate::sensor::{Clock, Reading, SensorModel, SensorSettings};
use crate::settings::{BrokerSettings, TopicSettings};
use crate::tls::TlsError;
use crate::tls::remote::RemoteProfile;

/// Maximum wait for the rules engine's subscription before telemetry starts.
const RULES_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Events buffered for the window or headless printer before the oldest are dropped.
const EVENT_CAPACITY: usize = 16_384;
/// MQTT keep-alive; AWS IoT Core accepts 30 to 1200 seconds.
pub const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Failures to start the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("topic rule is invalid: {0}")]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where the device link publishes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The embedded local cloud. An embedded broker that is running already is reused,
    /// because rumqttd cannot be stopped; `None` starts one.
    Local { broker: Option<BrokerHandle> },
    /// A remote broker; no embedded broker or rules engine runs.
    Remote(Box<RemoteTarget>),
}

/// A remote profile with its TLS configuration loaded and checked.
#[derive(Debug, Clone)]
pub struct RemoteTarget {
    pub profile: RemoteProfile,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Describes the trust anchors for error messages.
    pub anchors: String,
    pub keep_alive: Duration,
    /// Readings kept while disconnected.
    pub offline_queue: usize,
    pub max_backoff: Duration,
}

impl RemoteTarget {
    /// Loads and checks the profile's certificate, key and CA files, so that a bad file
    /// fails here once, with its message, rather than at every connection attempt.
    pub fn prepare(
        profile: RemoteProfile,
        offline_queue: usize,
        now: OffsetDateTime,
    ) -> Result<Self, TlsError> {
        let tls = match &profile.tls {
            Some(files) => Some(files.client_config(now)?),
            None => None,
        };
        Ok(Self {
            anchors: profile.anchors_label(),
            profile,
            tls,
            keep_alive: KEEP_ALIVE,
            offline_queue,
            max_backoff: MAX_BACKOFF,
        })
    }

    fn link_options(&self, subscriptions: Vec<String>) -> LinkOptions {
        let mqtt = self.profile.mqtt_options(self.tls.clone(), self.keep_alive);
        let mut options = LinkOptions::new(
            mqtt,
            self.profile.context(self.anchors.clone(), self.keep_alive),
        );
        options.subscriptions = subscriptions;
        options.offline_queue = self.offline_queue;
        options.max_backoff = self.max_backoff;
        options
    }
}

/// What the pipeline starts with.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub sensor: SensorSettings,
    pub policy: PolicyConfig,
    pub rule_sql: String,
    pub broker: BrokerSettings,
    pub outbox_dir: PathBuf,
    pub email_to: String,
    /// Seed of the sensor noise; random when `None`.
    pub seed: Option<u64>,
    /// Telemetry stops this long after the first reading, for headless runs of fixed
    /// length; it runs until dropped when `None`.
    pub run_for: Option<time::Duration>,
}

/// Changes sent to a running pipeline.
#[derive(Debug)]
pub enum Command {
    UpdateSensor(SensorSettings),
    /// Pause or resume telemetry from the window (Space).
    SetPaused(bool),
    /// Spike from `start`, or from now when `None`, with the configured size and length.
    Spike {
        start: Option<OffsetDateTime>,
    },
    CancelSpike,
    SetPolicy(PolicyConfig),
    SetRule(Box<Rule>),
}

/// Telemetry state, naming who paused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryState {
    Active,
    PausedByUser,
    /// `{"isTelemetryActive": false}` arrived on the control topic.
    PausedByControl,
}

/// Things the pipeline reports.
#[derive(Debug, Clone)]
pub enum PipelineEvent {
    Link(LinkState),
    /// A reading was queued for publishing.
    ReadingSent(Reading),
    /// A reading was due but telemetry is paused.
    ReadingSkipped {
        at: OffsetDateTime,
    },
    Telemetry(TelemetryState),
    /// The spike running now ends at this time, or no spike runs.
    Spike {
        ends_at: Option<OffsetDateTime>,
    },
    /// An alert arrived on the alerts topic.
    Alert(Alert),
    Trace(RuleTrace),
    /// A control message that is not `{"isTelemetryActive": bool}`.
    UnexpectedControl {
        payload: String,
    },
    /// Telemetry reached `stop_at`; `last_seq` is the last reading's sequence number.
    Finished {
        last_seq: u64,
    },
    Error(String),
}

/// Delivers events to the consumer and wakes it. Events beyond the buffer are dropped and
/// counted rather than blocking the pipeline.
#[derive(Clone)]
pub struct EventSink {
    sender: mpsc::Sender<PipelineEvent>,
    wake: Arc<dyn Fn() + Send + Sync>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Creates a sink and the receiver its events arrive on; `wake` runs after each event.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> (Self, mpsc::Receiver<PipelineEvent>) {
        let (sender, receiver) = mpsc::channel(EVENT_CAPACITY);
        let sink = Self {
            sender,
            wake: Arc::new(wake),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (sink, receiver)
    }

    fn emit(&self, event: PipelineEvent) {
        if self.sender.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        (self.wake)();
    }

    /// Events dropped because the consumer fell behind.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl EngineObserver for EventSink {
    fn trace(&self, trace: RuleTrace) {
        self.emit(PipelineEvent::Trace(trace));
    }

    fn error(&self, message: String) {
        self.emit(PipelineEvent::Error(message));
    }
}

/// A running pipeline.
pub struct Pipeline {
    commands: mpsc::Sender<Command>,
    /// The local rules engine; `None` for a remote profile.
    engine: Option<mpsc::Sender<EngineCommand>>,
    /// Where the embedded broker listens; `None` for a remote profile.
    pub broker: Option<BrokerHandle>,
    /// The remote profile in use; `None` for the local cloud.
    pub remote: Option<RemoteProfile>,
    pub outbox_dir: PathBuf,
    /// Time of the first reading.
    pub started_at: OffsetDateTime,
    /// Session id written into the readings.
    pub session: String,
    /// Alerts found in the journal at start, oldest first.
    pub past_alerts: Vec<Alert>,
    device_link: Link,
    _engine_link: Option<Link>,
}

/// The local cloud's parts that the sensor side does not see.
struct LocalCloud {
    broker: BrokerHandle,
    engine: mpsc::Sender<EngineCommand>,
    engine_link: Link,
    past_alerts: Vec<Alert>,
}

impl Pipeline {
    /// Starts the broker, the rules engine and the sensor on the current tokio runtime.
    pub fn start(
        config: PipelineConfig,
        clock: Clock,
        sink: EventSink,
    ) -> Result<Self, PipelineError> {
        Self::start_with(config, Target::Local { broker: None }, clock, sink)
    }

    /// Starts the sensor, publishing to `target`, on the current tokio runtime.
    pub fn start_with(
        config: PipelineConfig,
        target: Target,
        clock: Clock,
        sink: EventSink,
    ) -> Result<Self, PipelineError> {
        let session = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let (device_options, topics, device_id, local, remote) = match target {
            Target::Local { broker } => {
                let local = start_local_cloud(&config, broker, &clock, &sink, &session)?;
                let topics = TopicSettings::default();
                let options = link_options(
                    local.broker.addr,
                    format!("sensor-emulator-{session}"),
                    vec![topics.control.clone(), topics.alerts.clone()],
                );
                (options, topics, None, Some(local), None)
            }
            Target::Remote(remote) => {
                let remote = *remote;
                let topics = remote.profile.topics.clone();
                let options =
                    remote.link_options(vec![topics.control.clone(), topics.alerts.clone()]);
                let device_id = remote.profile.device_id.clone();
                (options, topics, device_id, None, Some(remote.profile))
            }
        };

        let (device_messages_tx, device_messages) = mpsc::channel(1024);
        let state_sink = sink.clone();
        let device_link = Link::spawn(device_options, device_messages_tx, move |state| {
            state_sink.emit(PipelineEvent::Link(state.clone()));
        });

        let (commands, command_rx) = mpsc::channel(256);
        let started_at = clock.now();
        let seed = config.seed.unwrap_or_else(rand::random);
        let mut sensor = config.sensor;
        if let Some(id) = &device_id {
            sensor.device_id.clone_from(id);
        }
        let scheduler = Scheduler {
            model: SensorModel::new(sensor, seed, session.clone()),
            clock,
            link: device_link.clone(),
            sink: sink.clone(),
            telemetry: TelemetryState::Active,
            stop_at: config
                .run_for
                .and_then(|length| started_at.checked_add(length)),
            telemetry_topic: topics.telemetry.clone(),
            device_id,
        };
        let (control_tx, control_rx) = mpsc::channel(64);
        tokio::spawn(route_device_messages(
            device_messages,
            control_tx,
            sink,
            topics,
        ));
        let rules_status = local.as_ref().map(|local| local.engine_link.watch_status());
        tokio::spawn(async move {
            // Readings published before the rules engine subscribed would reach no rule.
            if let Some(mut status) = rules_status {
                let subscribed = status.wait_for(|status| status.subscribed);
                if tokio::time::timeout(RULES_READY_TIMEOUT, subscribed)
                    .await
                    .is_err()
                {
                    warn!(
                        "the rules engine has not subscribed after 5 s; starting telemetry anyway"
                    );
                }
            }
            scheduler.run(started_at, command_rx, control_rx).await;
        });
        match (&local, &remote) {
            (Some(local), _) => {
                info!(broker = %local.broker.addr, session, seed, "pipeline started");
            }
            (None, Some(remote)) => {
                info!(endpoint = %remote.address(), client_id = %remote.client_id, session, seed, "pipeline started");
            }
            (None, None) => {}
        }

        let (broker, engine, engine_link, past_alerts) = match local {
            Some(local) => (
                Some(local.broker),
                Some(local.engine),
                Some(local.engine_link),
                local.past_alerts,
            ),
            None => (None, None, None, Vec::new()),
        };
        Ok(Self {
            commands,
            engine,
            broker,
            remote,
            outbox_dir: config.outbox_dir,
            started_at,
            session,
            past_alerts,
            device_link,
            _engine_link: engine_link,
        })
    }

    /// Sends a command without waiting; returns false when the pipeline is gone or busy,
    /// or for policy and rule changes, which have no rules engine to go to in a remote
    /// profile.
    pub fn send(&self, command: Command) -> bool {
        let result = match command {
            Command::SetPolicy(config) => {
                let _ = self.commands.try_send(Command::SetPolicy(config));
                match &self.engine {
                    Some(engine) => engine
                        .try_send(EngineCommand::SetPolicy(config))
                        .map_err(|_| ()),
                    None => Err(()),
                }
            }
            Command::SetRule(rule) => match &self.engine {
                Some(engine) => engine
                    .try_send(EngineCommand::SetRule(rule))
                    .map_err(|_| ()),
                None => Err(()),
            },
            other => self.commands.try_send(other).map_err(|_| ()),
        };
        result.is_ok()
    }

    /// The embedded broker's address; `None` for a remote profile.
    #[must_use]
    pub fn broker_addr(&self) -> Option<SocketAddr> {
        self.broker.as_ref().map(|broker| broker.addr)
    }

    /// Whether the local cloud (broker, rules engine, outbox) runs in this pipeline.
    #[must_use]
    pub fn is_local(&self) -> bool {
        self.engine.is_some()
    }

    /// State, last error, round-trip time and queue figures of the device's connection.
    #[must_use]
    pub fn device_status(&self) -> LinkStatus {
        self.device_link.status()
    }

    /// Disconnects the device's connection while `paused`; readings queue meanwhile.
    pub fn pause_device_link(&self, paused: bool) {
        self.device_link.set_paused(paused);
    }
}

fn start_local_cloud(
    config: &PipelineConfig,
    broker: Option<BrokerHandle>,
    clock: &Clock,
    sink: &EventSink,
    session: &str,
) -> Result<LocalCloud, PipelineError> {
    let rule = Rule::parse(&config.rule_sql)?;
    let broker = match broker {
        Some(running) => running,
        None => broker::start(config.broker.bind, config.broker.port)?,
    };
    let outbox = Outbox::open(config.outbox_dir.clone(), &config.email_to)?;
    let (monitor, past_alerts) = restore_monitor(&outbox, config.policy, sink);

    let (engine_tx, engine_rx) = mpsc::channel(64);
    let (rule_messages_tx, rule_messages) = mpsc::channel(1024);
    let engine_link = Link::spawn(
        link_options(
            broker.addr,
            format!("sensor-emulator-rules-{session}"),
            vec![rule.topic_filter().to_owned()],
        ),
        rule_messages_tx,
        |_| {},
    );
    let engine = Engine {
        rule,
        monitor,
        outbox,
        link: engine_link.clone(),
        clock: clock.clone(),
        observer: sink.clone(),
        seen: SeenReadings::default(),
    };
    tokio::spawn(engine.run(rule_messages, engine_rx));
    Ok(LocalCloud {
        broker,
        engine: engine_tx,
        engine_link,
        past_alerts,
    })
}

fn link_options(addr: SocketAddr, client_id: String, subscriptions: Vec<String>) -> LinkOptions {
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let mut options = LinkOptions::plain(&host, addr.port(), client_id, KEEP_ALIVE);
    options.subscriptions = subscriptions;
    options
}

fn restore_monitor(
    outbox: &Outbox,
    policy: PolicyConfig,
    sink: &EventSink,
) -> (Monitor, Vec<Alert>) {
    let mut monitor = Monitor::new(policy, AlertSource::Local);
    let journal = match outbox.read_journal() {
        Ok(journal) => journal,
        Err(error) => {
            sink.emit(PipelineEvent::Error(format!(
                "{error}; alarm states start clear"
            )));
            return (monitor, Vec::new());
        }
    };
    if journal.skipped_lines > 0 {
        warn!(lines = journal.skipped_lines, path = %outbox.journal_path().display(), "damaged journal lines skipped");
    }
    for alert in journal
        .alerts
        .iter()
        .filter(|alert| alert.source == AlertSource::Local)
    {
        monitor.restore(alert);
    }
    (monitor, journal.alerts)
}

/// Sends control messages to the scheduler and alerts to the consumer.
async fn route_device_messages(
    mut messages: mpsc::Receiver<Message>,
    control: mpsc::Sender<bool>,
    sink: EventSink,
    topics: TopicSettings,
) {
    while let Some(message) = messages.recv().await {
        if message.topic == topics.control {
            if let Some(active) = parse_control(&message.payload) {
                if control.send(active).await.is_err() {
                    return;
                }
            } else {
                let payload: String = String::from_utf8_lossy(&message.payload)
                    .chars()
                    .take(200)
                    .collect();
                warn!(topic = %topics.control, %payload, "unexpected control message ignored; expected {{\"isTelemetryActive\": true|false}}");
                sink.emit(PipelineEvent::UnexpectedControl { payload });
            }
        } else if message.topic == topics.alerts {
            match serde_json::from_slice::<Alert>(&message.payload) {
                Ok(alert) => sink.emit(PipelineEvent::Alert(alert)),
                Err(error) => warn!(%error, "message on the alerts topic is not an alert; ignored"),
            }
        }
    }
}

/// Reads `{"isTelemetryActive": bool}` and nothing else.
fn parse_control(payload: &[u8]) -> Option<bool> {
    let serde_json::Value::Object(fields) = serde_json::from_slice(payload).ok()? else {
        return None;
    };
    if fields.len() != 1 {
        return None;
    }
    fields.get("isTelemetryActive")?.as_bool()
}

struct Scheduler {
    model: SensorModel,
    clock: Clock,
    link: Link,
    sink: EventSink,
    /// One pause state for both the window and the control topic, so either one resumes
    /// what the other paused; the value records who paused last.
    telemetry: TelemetryState,
    stop_at: Option<OffsetDateTime>,
    telemetry_topic: String,
    /// `deviceId` set by the remote profile, which the sensor panel does not change.
    device_id: Option<String>,
}

impl Scheduler {
    /// Takes a reading at `first_due` and every interval after it. Commands and control
    /// messages that arrive before a reading is due apply to that reading.
    async fn run(
        mut self,
        first_due: OffsetDateTime,
        mut commands: mpsc::Receiver<Command>,
        mut control: mpsc::Receiver<bool>,
    ) {
        let mut due = first_due;
        loop {
            if self.stop_at.is_some_and(|stop| due >= stop) {
                self.sink.emit(PipelineEvent::Finished {
                    last_seq: self.model.readings_taken(),
                });
                return;
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(command) => self.apply(command),
                    None => return,
                },
                Some(active) = control.recv() => {
                    self.telemetry = if active {
                        TelemetryState::Active
                    } else {
                        TelemetryState::PausedByControl
                    };
                    info!(active, "telemetry set by the control topic");
                    self.sink.emit(PipelineEvent::Telemetry(self.telemetry_state()));
                }
                () = self.clock.sleep_until(due) => {
                    self.tick(due);
                    due += self.model.settings().interval();
                    // After a suspended laptop wakes, skip the missed readings instead of
                    // sending them in a burst.
                    let now = self.clock.now();
                    if due + self.model.settings().interval() < now {
                        due = now;
                    }
                }
            }
        }
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::UpdateSensor(mut settings) => {
                if let Some(id) = &self.device_id {
                    settings.device_id.clone_from(id);
                }
                self.model.set_settings(settings);
            }
            Command::SetPaused(paused) => {
                self.telemetry = if paused {
                    TelemetryState::PausedByUser
                } else {
                    TelemetryState::Active
                };
                self.sink
                    .emit(PipelineEvent::Telemetry(self.telemetry_state()));
            }
            Command::Spike { start } => {
                let start = start.unwrap_or_else(|| self.clock.now());
                self.model.spike(start);
                self.sink.emit(PipelineEvent::Spike {
                    ends_at: self.model.spike_end(start),
                });
            }
            Command::CancelSpike => {
                self.model.cancel_spike();
                self.sink.emit(PipelineEvent::Spike { ends_at: None });
            }
            Command::SetPolicy(_) | Command::SetRule(_) => {}
        }
    }

    fn telemetry_state(&self) -> TelemetryState {
        self.telemetry
    }

    fn tick(&mut self, at: OffsetDateTime) {
        if self.telemetry_state() != TelemetryState::Active {
            self.sink.emit(PipelineEvent::ReadingSkipped { at });
            return;
        }
        let reading = self.model.next_reading(at);
        let payload = reading.to_payload(self.model.settings().number_format());
        if let Err(error) = self
            .link
            .publish(&self.telemetry_topic, payload, QoS::AtLeastOnce)
        {
            self.sink.emit(PipelineEvent::Error(format!(
                "reading {} not sent: {error}",
                reading.seq
            )));
            return;
        }
        self.sink.emit(PipelineEvent::ReadingSent(reading));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_accepts_only_the_documented_shape() {
        assert_eq!(
            parse_control(br#"{"isTelemetryActive": false}"#),
            Some(false)
        );
        assert_eq!(parse_control(br#"{"isTelemetryActive":true}"#), Some(true));
        for payload in [
            &br#"{"isTelemetryActive": "false"}"#[..],
            br#"{"isTelemetryActive": 0}"#,
            br#"{"isTelemetryActive": true, "extra": 1}"#,
            br#"{"telemetry": true}"#,
            b"[true]",
            b"true",
            b"not json",
        ] {
            assert_eq!(
                parse_control(payload),
                None,
                "{}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
