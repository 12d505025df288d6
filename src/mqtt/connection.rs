//! The tasks behind a [`Link`](super::Link): the connection task, which owns the rumqttc
//! event loop, and the hand-over task, which moves queued messages into the event loop
//! while the link is connected.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng as _;
use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, EventLoop, Outgoing as Sent, Packet, QoS,
    StateError, SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::queue::{OfflineQueue, RateLimiter};
use super::{FIRST_BACKOFF, LinkState, MAX_IN_FLIGHT, Message, Shared};
use crate::tls::describe::{
    ConnectionContext, Explanation, Phase, explain_connection_error, publish_rejected,
    subscribe_rejected, takeover_message,
};

/// Connections that the broker closed soon after accepting them, in a row, before the
/// link gives up: the pattern of another client connected with the same client id, which
/// makes the broker close the older connection each time the other one reconnects.
const TAKEOVER_STRIKES: u32 = 3;
/// A connection closed by the broker within this time after CONNACK counts as a strike.
const TAKEOVER_WINDOW: Duration = Duration::from_secs(30);

/// Burst of the publish rate limit: a tenth of a second at the full rate.
const RATE_BURST: u32 = 10;

/// A `QoS` 1 or 2 message kept until the broker acknowledges it.
#[derive(Debug, Clone)]
pub(super) struct QueuedMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
}

/// A message given to the event loop and not yet acknowledged.
#[derive(Debug)]
pub(super) struct Handed {
    message: QueuedMessage,
    /// Packet id, known once the event loop reports writing the message.
    pkid: Option<u16>,
    written_at: Option<Instant>,
}

/// Messages on their way out.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub queue: OfflineQueue<QueuedMessage>,
    /// In the order they were handed over, which is the order the event loop writes them.
    pub handed: VecDeque<Handed>,
    /// Whether messages may be handed over now: between CONNACK and the next error.
    pub connected: bool,
}

impl Outgoing {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: OfflineQueue::new(capacity),
            handed: VecDeque::new(),
            connected: false,
        }
    }
}

/// What the hand-over task waits for next.
enum Wait {
    Wake,
    For(Duration),
    Stop,
}

/// Moves queued messages into the event loop while connected, keeping at most
/// [`MAX_IN_FLIGHT`] unacknowledged and at most `max_rate` a second.
pub(super) async fn hand_over(shared: Arc<Shared>, client: AsyncClient, max_rate: u32) {
    let mut limiter = RateLimiter::new(max_rate, RATE_BURST.min(max_rate), Instant::now());
    loop {
        match hand_over_ready(&shared, &client, &mut limiter) {
            Wait::Wake => shared.wake.notified().await,
            Wait::For(delay) => {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shared.wake.notified() => {}
                }
            }
            Wait::Stop => return,
        }
    }
}

fn hand_over_ready(shared: &Shared, client: &AsyncClient, limiter: &mut RateLimiter) -> Wait {
    let mut outgoing = shared.lock();
    let wait = loop {
        if !outgoing.connected
            || outgoing.queue.is_empty()
            || outgoing.handed.len() >= usize::from(MAX_IN_FLIGHT)
        {
            break Wait::Wake;
        }
        if let Err(delay) = limiter.try_take(Instant::now()) {
            break Wait::For(delay);
        }
        let Some(message) = outgoing.queue.pop_front() else {
            break Wait::Wake;
        };
        // The lock is held across the request, so the connection task never sees a
        // message in the event loop's channel that is missing from `handed`.
        match client.try_publish(
            message.topic.as_str(),
            message.qos,
            false,
            message.payload.clone(),
        ) {
            Ok(()) => outgoing.handed.push_back(Handed {
                message,
                pkid: None,
                written_at: None,
            }),
            Err(ClientError::TryRequest(_)) => {
                outgoing.queue.unpop(message);
                break Wait::For(Duration::from_millis(50));
            }
            Err(ClientError::Request(_)) => {
                outgoing.queue.unpop(message);
                break Wait::Stop;
            }
        }
    };
    shared.publish_counts(&outgoing);
    wait
}

/// What happened during one connection, to explain how it ended.
#[derive(Debug)]
struct Session {
    started: Instant,
    /// Filters subscribed and not yet acknowledged, in request order.
    awaiting_suback: VecDeque<String>,
    /// Packet ids of sent SUBSCRIBEs and their filters.
    subscribe_pkids: Vec<(u16, String)>,
    acknowledged: u64,
}

impl Session {
    fn healthy(&self) -> bool {
        self.awaiting_suback.is_empty() && self.subscribe_pkids.is_empty()
    }
}

/// The task that owns the event loop.
pub(super) struct Connection {
    client: AsyncClient,
    event_loop: EventLoop,
    shared: Arc<Shared>,
    subscriptions: Arc<Mutex<Vec<String>>>,
    messages: mpsc::Sender<Message>,
    state: watch::Sender<LinkState>,
    on_state: Box<dyn Fn(&LinkState) + Send>,
    context: ConnectionContext,
    max_backoff: Duration,
    pause: watch::Receiver<bool>,
    session: Option<Session>,
    strikes: u32,
}

impl Connection {
    #[allow(
        clippy::too_many_arguments,
        reason = "private constructor called from one place"
    )]
    pub fn new(
        client: AsyncClient,
        event_loop: EventLoop,
        shared: Arc<Shared>,
        subscriptions: Arc<Mutex<Vec<String>>>,
        messages: mpsc::Sender<Message>,
        state: watch::Sender<LinkState>,
        on_state: Box<dyn Fn(&LinkState) + Send>,
        context: ConnectionContext,
        max_backoff: Duration,
        pause: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client,
            event_loop,
            shared,
            subscriptions,
            messages,
            state,
            on_state,
            context,
            max_backoff,
            pause,
            session: None,
            strikes: 0,
        }
    }

    pub async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if *self.pause.borrow_and_update() {
                if !self.pause_until_resumed().await {
                    return;
                }
                continue;
            }
            let event = tokio::select! {
                event = self.event_loop.poll() => event,
                changed = self.pause.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if self.on_connack(ack.session_present) {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if self.on_suback(ack.pkid, &ack.return_codes) {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => self.on_puback(ack.pkid),
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let message = Message {
                        topic: publish.topic.clone(),
                        payload: publish.payload.to_vec(),
                    };
                    if self.messages.send(message).await.is_err() {
                        debug!(client_id = %self.context.client_id, "message receiver closed; stopping");
                        return;
                    }
                }
                Ok(Event::Outgoing(Sent::Publish(pkid))) => self.on_written(pkid),
                Ok(Event::Outgoing(Sent::Subscribe(pkid))) => self.on_subscribe_written(pkid),
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => return,
                Err(error) => {
                    if !self.on_error(&error, &mut backoff).await {
                        return;
                    }
                }
            }
        }
    }

    /// Records a CONNACK; returns true when the connection is healthy already because
    /// there is nothing to subscribe to.
    fn on_connack(&mut self, session_present: bool) -> bool {
        info!(client_id = %self.context.client_id, session_present, "MQTT connected");
        self.session = Some(Session {
            started: Instant::now(),
            awaiting_suback: VecDeque::new(),
            subscribe_pkids: Vec::new(),
            acknowledged: 0,
        });
        if !session_present {
            self.subscribe_all();
        }
        self.shared.lock().connected = true;
        self.shared.wake.notify_one();
        self.shared
            .status
            .send_modify(|status| status.connections += 1);
        self.set_state(LinkState::Connected);
        let healthy = self.session.as_ref().is_some_and(Session::healthy);
        self.shared
            .status
            .send_modify(|status| status.subscribed = healthy);
        healthy
    }

    fn subscribe_all(&mut self) {
        let filters = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut order = self
            .shared
            .subscribe_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for filter in filters {
            match self.client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                Ok(()) => {
                    order.push_back(filter.clone());
                    if let Some(session) = &mut self.session {
                        session.awaiting_suback.push_back(filter);
                    }
                }
                Err(error) => {
                    warn!(client_id = %self.context.client_id, %filter, %error, "subscribe request not queued");
                }
            }
        }
    }

    fn on_subscribe_written(&mut self, pkid: u16) {
        let filter = self
            .shared
            .subscribe_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .unwrap_or_default();
        if let Some(session) = &mut self.session {
            session.subscribe_pkids.push((pkid, filter));
        }
    }

    /// Records a SUBACK; returns true when every subscription of the connection is
    /// acknowledged, which makes the connection count as healthy.
    fn on_suback(&mut self, pkid: u16, codes: &[SubscribeReasonCode]) -> bool {
        let Some(session) = &mut self.session else {
            return false;
        };
        let filter = session
            .subscribe_pkids
            .iter()
            .position(|(id, _)| *id == pkid)
            .map(|index| session.subscribe_pkids.remove(index).1)
            .unwrap_or_default();
        session.awaiting_suback.retain(|awaited| *awaited != filter);
        if codes
            .iter()
            .any(|code| matches!(code, SubscribeReasonCode::Failure))
        {
            let explanation = subscribe_rejected(&self.context, &filter, false);
            warn!(client_id = %self.context.client_id, %filter, "subscription rejected");
            self.shared
                .status
                .send_modify(|status| status.last_error = Some(explanation.to_string()));
        }
        let healthy = session.healthy();
        self.shared
            .status
            .send_modify(|status| status.subscribed = healthy);
        healthy
    }

    fn on_written(&mut self, pkid: u16) {
        // `QoS` 0 messages have packet id 0 and are not tracked.
        if pkid == 0 {
            return;
        }
        let mut outgoing = self.shared.lock();
        if let Some(handed) = outgoing.handed.iter_mut().find(|h| h.pkid.is_none()) {
            handed.pkid = Some(pkid);
            handed.written_at = Some(Instant::now());
        }
    }

    fn on_puback(&mut self, pkid: u16) {
        let round_trip = {
            let mut outgoing = self.shared.lock();
            let Some(index) = outgoing.handed.iter().position(|h| h.pkid == Some(pkid)) else {
                return;
            };
            let handed = outgoing.handed.remove(index);
            self.shared.publish_counts(&outgoing);
            handed.and_then(|h| h.written_at).map(|at| at.elapsed())
        };
        if let Some(session) = &mut self.session {
            session.acknowledged += 1;
        }
        self.shared.status.send_modify(|status| {
            status.acknowledged += 1;
            if round_trip.is_some() {
                status.round_trip = round_trip;
            }
        });
        self.shared.wake.notify_one();
    }

    /// Puts every unacknowledged message back in front of the queue and empties the event
    /// loop's own buffers, whose copies would otherwise be dropped silently (after a
    /// reconnection without a session) or sent a second time out of order.
    fn take_back_messages(&mut self) {
        let mut outgoing = self.shared.lock();
        outgoing.connected = false;
        // Drops the network and moves what is in flight and in the request channel into
        // `pending`; the hand-over task cannot add more while the lock is held.
        self.event_loop.clean();
        self.event_loop.pending.clear();
        self.shared
            .subscribe_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let handed: Vec<QueuedMessage> = outgoing.handed.drain(..).map(|h| h.message).collect();
        outgoing.queue.requeue_front(handed.into_iter());
        self.shared.publish_counts(&outgoing);
    }

    /// Handles a failed attempt or a lost connection. Returns false when the link stops.
    async fn on_error(&mut self, error: &ConnectionError, backoff: &mut Duration) -> bool {
        let session = self.session.take();
        let phase = if session.is_some() {
            Phase::Connected
        } else {
            Phase::Connecting
        };
        let closed_by_broker = is_closed_by_broker(error);
        let explanation = session
            .as_ref()
            .filter(|_| closed_by_broker)
            .and_then(|session| self.explain_close(session))
            .unwrap_or_else(|| explain_connection_error(error, &self.context, phase));
        self.take_back_messages();
        self.shared
            .status
            .send_modify(|status| status.last_error = Some(explanation.to_string()));

        match &session {
            Some(session)
                if closed_by_broker
                    && session.healthy()
                    && session.started.elapsed() < TAKEOVER_WINDOW =>
            {
                self.strikes += 1;
            }
            _ => self.strikes = 0,
        }
        if self.strikes >= TAKEOVER_STRIKES {
            let error = takeover_message(&self.context, TAKEOVER_STRIKES);
            warn!(client_id = %self.context.client_id, strikes = self.strikes, "connection taken over repeatedly; not retrying");
            self.shared
                .status
                .send_modify(|status| status.last_error = Some(error.clone()));
            self.set_state(LinkState::Stopped { error });
            return false;
        }

        let retry_in = with_jitter(*backoff);
        warn!(client_id = %self.context.client_id, %error, reason = %explanation, retry_in_ms = retry_in.as_millis(), "MQTT connection failed");
        self.set_state(LinkState::Disconnected {
            error: explanation.to_string(),
            retry_in,
        });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            changed = self.pause.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
        }
        *backoff = (*backoff * 2).min(self.max_backoff);
        self.set_state(LinkState::Connecting);
        true
    }

    /// Explains a connection the broker closed right after a SUBSCRIBE or before the
    /// first PUBACK: AWS IoT Core closes the connection when the policy does not allow a
    /// topic.
    fn explain_close(&self, session: &Session) -> Option<Explanation> {
        if let Some((_, filter)) = session.subscribe_pkids.first() {
            return Some(subscribe_rejected(&self.context, filter, true));
        }
        let outgoing = self.shared.lock();
        let first = outgoing.handed.front()?;
        if session.acknowledged > 0 || first.pkid.is_none() {
            return None;
        }
        Some(publish_rejected(&self.context, &first.message.topic))
    }

    /// Disconnects until the pause ends; returns false when the link is gone.
    async fn pause_until_resumed(&mut self) -> bool {
        self.take_back_messages();
        self.session = None;
        self.shared
            .status
            .send_modify(|status| status.subscribed = false);
        info!(client_id = %self.context.client_id, "MQTT connection paused");
        self.set_state(LinkState::Paused);
        while *self.pause.borrow_and_update() {
            if self.pause.changed().await.is_err() {
                return false;
            }
        }
        self.set_state(LinkState::Connecting);
        true
    }

    fn set_state(&self, state: LinkState) {
        (self.on_state)(&state);
        self.shared.status.send_modify(|status| {
            // Subscriptions belong to one connection; a CONNACK sets this again.
            if state != LinkState::Connected {
                status.subscribed = false;
            }
            status.state = state.clone();
        });
        self.state.send_replace(state);
    }
}

/// Whether the broker (or the network in between) closed an established connection, as
/// opposed to a stall the client detected itself.
fn is_closed_by_broker(error: &ConnectionError) -> bool {
    let io_kind = |error: &std::io::Error| {
        matches!(
            error.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
        ) && crate::tls::describe::find_rustls_error(error).is_none()
    };
    match error {
        ConnectionError::MqttState(StateError::ConnectionAborted) => true,
        ConnectionError::MqttState(
            StateError::Io(io) | StateError::Deserialization(rumqttc::Error::Io(io)),
        )
        | ConnectionError::Io(io) => io_kind(io),
        _ => false,
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
    fn closes_and_stalls_are_told_apart() {
        assert!(is_closed_by_broker(&ConnectionError::MqttState(
            StateError::ConnectionAborted
        )));
        assert!(is_closed_by_broker(&ConnectionError::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset)
        )));
        assert!(!is_closed_by_broker(&ConnectionError::MqttState(
            StateError::AwaitPingResp
        )));
        assert!(!is_closed_by_broker(&ConnectionError::NetworkTimeout));
        let alert = std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        );
        assert!(!is_closed_by_broker(&ConnectionError::Io(alert)));
    }

    #[test]
    fn subscribe_rejection_names_the_policy_for_aws() {
        use crate::tls::remote::BrokerKind;
        let context = ConnectionContext {
            kind: BrokerKind::Aws,
            host: "abc-ats.iot.eu-west-1.amazonaws.com".to_owned(),
            port: 8883,
            client_id: "WeatherEmulator".to_owned(),
            tls: true,
            client_certificate: true,
            anchors: String::new(),
            keep_alive: Duration::from_secs(30),
        };
        let explanation = subscribe_rejected(&context, "Emulators/Weather/Control", true);
        assert!(
            explanation
                .fix
                .contains("topicfilter/Emulators/Weather/Control")
        );
        assert!(takeover_message(&context, 3).contains("\"WeatherEmulator\""));
    }
}
