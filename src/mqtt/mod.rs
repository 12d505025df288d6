//! MQTT transport: one task owns a rumqttc event loop, reconnects with exponential backoff
//! and jitter, subscribes again after every connection without a session, and forwards
//! incoming messages over a channel. Callers publish through a [`Link`] and never wait on
//! the network.
//!
//! `QoS` 1 messages go through an offline queue owned by the link, not through rumqttc's
//! own buffers: rumqttc 0.25 drops, without a signal, everything in flight and everything
//! already taken from its request channel when the broker answers a reconnection without a
//! session. The link keeps a copy of each message until the broker acknowledges it, puts
//! unacknowledged ones back in front of the queue after a disconnection, and sends the
//! backlog in order, at most [`MAX_PUBLISH_RATE`] messages a second. Consumers may see a
//! message twice after a reconnection (at-least-once delivery) and de-duplicate by `seq`.

mod connection;
pub mod queue;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{AsyncClient, ClientError, MqttOptions, QoS};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::tls::describe::ConnectionContext;
use crate::tls::remote::BrokerKind;
use connection::{Connection, Outgoing, QueuedMessage};

/// Largest MQTT packet sent or accepted. AWS IoT Core allows payloads up to 128 KB;
/// rumqttc's own default of 10 KiB would drop the connection on a larger message.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;

/// Requests (subscriptions, `QoS` 0 messages) the event loop can hold before `publish`
/// reports the link full.
const REQUEST_CAPACITY: usize = 1024;

/// Messages handed to the event loop and not yet acknowledged; rumqttc's in-flight limit
/// is set to the same number.
const MAX_IN_FLIGHT: u16 = 100;

/// Publishes per second at most, which keeps a backlog sent after an outage within AWS IoT
/// Core's per-connection limit of about 100 publishes a second.
pub const MAX_PUBLISH_RATE: u32 = 100;

/// Messages kept while disconnected unless the caller sets another length.
pub const DEFAULT_OFFLINE_QUEUE: usize = 10_000;

/// First wait after a failed connection; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Connection settings: broker address, client id, keep-alive and subscriptions.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Broker address, client id, keep-alive, TLS and credentials.
    pub mqtt: MqttOptions,
    /// Topic filters subscribed at `QoS` 1 after each connection.
    pub subscriptions: Vec<String>,
    /// `QoS` 1 messages kept while disconnected; the oldest are dropped beyond this.
    pub offline_queue: usize,
    /// Publishes per second at most.
    pub max_publish_rate: u32,
    /// Maximum wait between reconnection attempts.
    pub max_backoff: Duration,
    /// Broker facts that error messages refer to.
    pub context: ConnectionContext,
}

impl LinkOptions {
    /// Plain MQTT to `host`:`port`, with the defaults of this module.
    #[must_use]
    pub fn plain(host: &str, port: u16, client_id: String, keep_alive: Duration) -> Self {
        let mut mqtt = MqttOptions::new(client_id.clone(), host, port);
        mqtt.set_keep_alive(keep_alive)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_clean_session(true);
        let context = ConnectionContext {
            kind: BrokerKind::Custom,
            host: host.to_owned(),
            port,
            client_id,
            tls: false,
            client_certificate: false,
            anchors: "no TLS".to_owned(),
            keep_alive,
        };
        Self::new(mqtt, context)
    }

    /// Options around prepared rumqttc options.
    #[must_use]
    pub fn new(mqtt: MqttOptions, context: ConnectionContext) -> Self {
        Self {
            mqtt,
            subscriptions: Vec::new(),
            offline_queue: DEFAULT_OFFLINE_QUEUE,
            max_publish_rate: MAX_PUBLISH_RATE,
            max_backoff: MAX_BACKOFF,
            context,
        }
    }
}

/// Connection state as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// The last attempt failed with `error`; the next one starts after `retry_in`.
    Disconnected {
        error: String,
        retry_in: Duration,
    },
    /// Disconnected on request, for a connection test with the same client id.
    Paused,
    /// Retrying cannot help, for example because another client uses the same client id.
    Stopped {
        error: String,
    },
}

impl LinkState {
    /// Returns a short label for the status bar.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Connecting => "connecting".to_owned(),
            Self::Connected => "connected".to_owned(),
            Self::Disconnected { error, retry_in } => {
                format!(
                    "disconnected ({error}); retrying in {} s",
                    retry_in.as_secs()
                )
            }
            Self::Paused => "paused for the connection test".to_owned(),
            Self::Stopped { error } => format!("stopped: {error}"),
        }
    }
}

/// Transport figures for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub state: LinkState,
    /// The latest connection error, kept after the link reconnects.
    pub last_error: Option<String>,
    /// From writing the latest acknowledged message to its PUBACK.
    pub round_trip: Option<Duration>,
    /// `QoS` 1 messages waiting to be sent or acknowledged.
    pub queued: usize,
    /// Messages dropped because the offline queue was full.
    pub dropped: u64,
    /// Messages the broker acknowledged.
    pub acknowledged: u64,
    /// Successful connections, the first one included.
    pub connections: u64,
    /// Whether the broker acknowledged every subscription of the current connection.
    pub subscribed: bool,
}

impl Default for LinkStatus {
    fn default() -> Self {
        Self {
            state: LinkState::Connecting,
            last_error: None,
            round_trip: None,
            queued: 0,
            dropped: 0,
            acknowledged: 0,
            connections: 0,
            subscribed: false,
        }
    }
}

/// A message received on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Error: a message was not queued for sending.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(
        "the MQTT send queue is full ({REQUEST_CAPACITY} messages); the broker is not keeping up"
    )]
    QueueFull,
    #[error("the MQTT connection task has stopped")]
    Stopped,
}

impl From<ClientError> for LinkError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::TryRequest(_) => Self::QueueFull,
            ClientError::Request(_) => Self::Stopped,
        }
    }
}

/// State shared by the link handle, the connection task and the task that hands queued
/// messages to the event loop.
struct Shared {
    outgoing: Mutex<Outgoing>,
    /// Wakes the hand-over task: a message was queued, acknowledged, or the link connected.
    wake: Notify,
    status: watch::Sender<LinkStatus>,
    /// Subscription filters in the order they were requested, to name the filter of each
    /// SUBACK.
    subscribe_order: Mutex<std::collections::VecDeque<String>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies the queue figures into the status.
    fn publish_counts(&self, outgoing: &Outgoing) {
        let queued = outgoing.queue.len() + outgoing.handed.len();
        let dropped = outgoing.queue.dropped();
        self.status.send_if_modified(|status| {
            let changed = status.queued != queued || status.dropped != dropped;
            status.queued = queued;
            status.dropped = dropped;
            changed
        });
    }
}

/// Handle to a running MQTT connection. Clones share the connection; the tasks stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Link {
    client: AsyncClient,
    subscriptions: Arc<Mutex<Vec<String>>>,
    shared: Arc<Shared>,
    status: watch::Receiver<LinkStatus>,
    state: watch::Receiver<LinkState>,
    pause: Arc<watch::Sender<bool>>,
    _tasks: Arc<AbortOnDrop>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for handle in &self.0 {
            handle.abort();
        }
    }
}

impl Link {
    /// Starts the connection task on the current tokio runtime. Received messages go to
    /// `messages`; `on_state` runs on every state change (the window uses it to repaint).
    pub fn spawn(
        options: LinkOptions,
        messages: mpsc::Sender<Message>,
        on_state: impl Fn(&LinkState) + Send + 'static,
    ) -> Self {
        let mut mqtt = options.mqtt;
        mqtt.set_inflight(MAX_IN_FLIGHT);
        let (client, event_loop) = AsyncClient::new(mqtt, REQUEST_CAPACITY);
        let subscriptions = Arc::new(Mutex::new(options.subscriptions));
        let (status_tx, status) = watch::channel(LinkStatus::default());
        let (state_tx, state) = watch::channel(LinkState::Connecting);
        let (pause_tx, pause_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            outgoing: Mutex::new(Outgoing::new(options.offline_queue)),
            wake: Notify::new(),
            status: status_tx,
            subscribe_order: Mutex::default(),
        });
        let task = Connection::new(
            client.clone(),
            event_loop,
            Arc::clone(&shared),
            Arc::clone(&subscriptions),
            messages,
            state_tx,
            Box::new(on_state),
            options.context,
            options.max_backoff,
            pause_rx,
        );
        let connection = tokio::spawn(task.run());
        let hand_over = tokio::spawn(connection::hand_over(
            Arc::clone(&shared),
            client.clone(),
            options.max_publish_rate,
        ));
        Self {
            client,
            subscriptions,
            shared,
            status,
            state,
            pause: Arc::new(pause_tx),
            _tasks: Arc::new(AbortOnDrop(vec![connection, hand_over])),
        }
    }

    /// Queues a message for sending without waiting. `QoS` 1 and 2 messages wait in the
    /// offline queue until the broker acknowledges them; when the queue is full the oldest
    /// one is dropped and counted in [`LinkStatus::dropped`].
    pub fn publish(&self, topic: &str, payload: Vec<u8>, qos: QoS) -> Result<(), LinkError> {
        if qos == QoS::AtMostOnce {
            self.client.try_publish(topic, qos, false, payload)?;
            return Ok(());
        }
        let message = QueuedMessage {
            topic: topic.to_owned(),
            payload,
            qos,
        };
        {
            let mut outgoing = self.shared.lock();
            if outgoing.queue.push_back(message) && outgoing.queue.dropped() % 1000 == 1 {
                tracing::warn!(
                    dropped = outgoing.queue.dropped(),
                    "offline queue full; dropping the oldest messages"
                );
            }
            self.shared.publish_counts(&outgoing);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Replaces the subscription `old` with `new`, now and after every reconnection.
    pub fn replace_subscription(&self, old: &str, new: &str) -> Result<(), LinkError> {
        {
            let mut subscriptions = self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            subscriptions.retain(|filter| filter != old);
            subscriptions.push(new.to_owned());
        }
        if old != new {
            self.client.try_unsubscribe(old)?;
            let mut order = self
                .shared
                .subscribe_order
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.client.try_subscribe(new, QoS::AtLeastOnce)?;
            order.push_back(new.to_owned());
        }
        Ok(())
    }

    /// Disconnects and stays disconnected while `paused` is true; messages queue meanwhile.
    /// The connection test uses it, because a second connection with the same client id
    /// would make the broker close the first.
    pub fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }

    /// Returns the current connection state.
    #[must_use]
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Returns a receiver notified of every state change.
    #[must_use]
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    /// State, last error, round-trip time and queue figures.
    #[must_use]
    pub fn status(&self) -> LinkStatus {
        self.status.borrow().clone()
    }

    /// Returns a receiver notified of every status change.
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<LinkStatus> {
        self.status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_labels() {
        assert_eq!(LinkState::Connected.label(), "connected");
        let down = LinkState::Disconnected {
            error: "I/O: connection refused".into(),
            retry_in: Duration::from_secs(2),
        };
        assert_eq!(
            down.label(),
            "disconnected (I/O: connection refused); retrying in 2 s"
        );
        let stopped = LinkState::Stopped {
            error: "another client".into(),
        };
        assert_eq!(stopped.label(), "stopped: another client");
    }
}
