//! MQTT transport: one task owns a rumqttc event loop, reconnects with exponential backoff
//! and jitter, subscribes again after every connection without a session, and forwards
//! incoming messages over a channel. Callers publish through a [`Link`] and never wait on
//! the network.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng as _;
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Largest MQTT packet sent or accepted. AWS IoT Core allows payloads up to 128 KB;
/// rumqttc's own default of 10 KiB would drop the connection on a larger message.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;

/// Messages the event loop can hold for sending before `publish` reports the link full.
const REQUEST_CAPACITY: usize = 1024;

/// First wait after a failed connection; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub keep_alive: Duration,
    /// Topic filters subscribed at `QoS` 1 after each connection.
    pub subscriptions: Vec<String>,
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
}

impl LinkState {
    /// A short label for the status bar.
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
        }
    }
}

/// A message received on a subscribed topic.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Why a message was not queued for sending.
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

/// Handle to a running MQTT connection. Clones share the connection; the task stops when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Link {
    client: AsyncClient,
    subscriptions: Arc<Mutex<Vec<String>>>,
    state: watch::Receiver<LinkState>,
    _task: Arc<AbortOnDrop>,
}

#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
        let mut mqtt = MqttOptions::new(
            options.client_id.clone(),
            options.host.clone(),
            options.port,
        );
        mqtt.set_keep_alive(options.keep_alive)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_clean_session(true);
        let (client, event_loop) = AsyncClient::new(mqtt, REQUEST_CAPACITY);
        let subscriptions = Arc::new(Mutex::new(options.subscriptions));
        let (state_tx, state) = watch::channel(LinkState::Connecting);
        let task = Connection {
            client: client.clone(),
            event_loop,
            subscriptions: Arc::clone(&subscriptions),
            messages,
            state: state_tx,
            on_state: Box::new(on_state),
            client_id: options.client_id,
        };
        let handle = tokio::spawn(task.run());
        Self {
            client,
            subscriptions,
            state,
            _task: Arc::new(AbortOnDrop(handle)),
        }
    }

    /// Queues a message for sending without waiting.
    pub fn publish(&self, topic: &str, payload: Vec<u8>, qos: QoS) -> Result<(), LinkError> {
        self.client.try_publish(topic, qos, false, payload)?;
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
            self.client.try_subscribe(new, QoS::AtLeastOnce)?;
        }
        Ok(())
    }

    /// The current connection state.
    #[must_use]
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every state change.
    #[must_use]
    pub fn watch_state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }
}

struct Connection {
    client: AsyncClient,
    event_loop: EventLoop,
    subscriptions: Arc<Mutex<Vec<String>>>,
    messages: mpsc::Sender<Message>,
    state: watch::Sender<LinkState>,
    on_state: Box<dyn Fn(&LinkState) + Send>,
    client_id: String,
}

impl Connection {
    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    info!(client_id = %self.client_id, session_present = ack.session_present, "MQTT connected");
                    backoff = FIRST_BACKOFF;
                    if !ack.session_present {
                        self.subscribe_all();
                    }
                    self.set_state(LinkState::Connected);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let message = Message {
                        topic: publish.topic.clone(),
                        payload: publish.payload.to_vec(),
                    };
                    if self.messages.send(message).await.is_err() {
                        debug!(client_id = %self.client_id, "message receiver closed; stopping");
                        return;
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(error) => {
                    let retry_in = with_jitter(backoff);
                    warn!(client_id = %self.client_id, %error, retry_in_ms = retry_in.as_millis(), "MQTT connection failed");
                    self.set_state(LinkState::Disconnected {
                        error: error.to_string(),
                        retry_in,
                    });
                    tokio::time::sleep(retry_in).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    self.set_state(LinkState::Connecting);
                }
            }
        }
    }

    fn subscribe_all(&self) {
        let filters = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for filter in filters {
            if let Err(error) = self.client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                warn!(client_id = %self.client_id, %filter, %error, "subscribe request not queued");
            }
        }
    }

    fn set_state(&self, state: LinkState) {
        (self.on_state)(&state);
        self.state.send_replace(state);
    }
}

/// Spreads reconnection attempts by up to a quarter of the wait either way, so that many
/// clients restarted together do not reconnect in step.
fn with_jitter(base: Duration) -> Duration {
    let factor = rand::rng().random_range(0.75..=1.25);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..1000 {
            let wait = with_jitter(Duration::from_secs(4));
            assert!(
                wait >= Duration::from_secs(3) && wait <= Duration::from_secs(5),
                "{wait:?}"
            );
        }
    }

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
    }
}
