//! Temperature alert policy shared by the Sensor Emulator desktop app and its AWS Lambda
//! function, so that an alert raised locally and one raised in AWS follow the same rules.
//!
//! The crate does no I/O. [`parse_event`] turns a topic-rule result into a
//! [`ReadingEvent`]; [`Policy::decide`] works out what a device's alarm does next from its
//! [`AlarmState`]; [`Alert`] is the JSON message both clouds publish on the alerts topic,
//! with the email text from [`email_subject`] and [`email_body`]. [`Monitor`] keeps the
//! states of many devices in memory, as the desktop app's local cloud does.
//!
//! # Policy
//!
//! An alarm is raised when a reading is strictly above the threshold `T` (after `debounce`
//! consecutive such readings), and clears only when a reading is at or below `T − H`, the
//! clear level, so noise around the threshold raises one alert and not dozens. While an
//! alarm stays raised, a reminder goes out at most once per cooldown. Mode
//! [`AlertMode::Every`] reproduces the tutorial instead: one notification for every reading
//! above `T`, and no state. Time is event time: the reading's own timestamp when it has one.

#![cfg_attr(
    test,
    allow(
        clippy::float_cmp,
        clippy::cast_possible_wrap,
        clippy::type_complexity,
        reason = "tests compare exact expected values and build case tables"
    )
)]
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod event;
mod message;

pub use event::{
    EventError, MAX_EVENT_BYTES, ReadingEvent, UNKNOWN_DEVICE, parse_event, parse_event_bytes,
    parse_temperature,
};
pub use message::{
    Alert, AlertKind, AlertSource, CLEARED_SUBJECT, Notification, RAISED_SUBJECT, email_body,
    email_subject, format_timestamp, parse_timestamp,
};

/// How often notifications go out for a device that is above the threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertMode {
    /// One raise per excursion above the threshold, one clear when it ends, and reminders
    /// per cooldown in between.
    #[default]
    OncePerExcursion,
    /// One notification for every reading above the threshold, as the tutorial's function
    /// sends.
    Every,
}

impl AlertMode {
    /// The setting's spelling: `once-per-excursion` or `every`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OncePerExcursion => "once-per-excursion",
            Self::Every => "every",
        }
    }
}

impl fmt::Display for AlertMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertMode {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "once-per-excursion" => Ok(Self::OncePerExcursion),
            "every" => Ok(Self::Every),
            other => Err(ConfigError::Invalid {
                name: "ALERT_MODE",
                value: other.to_owned(),
                expected: "once-per-excursion or every",
            }),
        }
    }
}

/// An invalid policy setting. `name` is the environment variable of the same meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Settings of the alert policy. The desktop app stores them with its settings, and the
/// Lambda function reads them from the environment ([`PolicyConfig::from_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyConfig {
    /// °C; a reading strictly above it counts as hot. `TEMPERATURE_THRESHOLD`, default 35.
    pub threshold: f64,
    /// °C below the threshold where a raised alarm clears. `ALERT_HYSTERESIS`, default 1.
    pub hysteresis: f64,
    /// Consecutive hot readings needed to raise. `ALERT_DEBOUNCE`, default 1.
    pub debounce: u32,
    /// Least time between reminders while raised, in seconds; 0 sends none.
    /// `ALERT_COOLDOWN_SECONDS`, default 300.
    pub cooldown_seconds: u64,
    /// `ALERT_MODE`, default `once-per-excursion`.
    pub mode: AlertMode,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            threshold: 35.0,
            hysteresis: 1.0,
            debounce: 1,
            cooldown_seconds: 300,
            mode: AlertMode::OncePerExcursion,
        }
    }
}

impl PolicyConfig {
    /// Level at or below which a raised alarm clears.
    #[must_use]
    pub fn clear_level(&self) -> f64 {
        self.threshold - self.hysteresis
    }

    /// Reads the settings from environment variables through `lookup`, using the default
    /// for each one that is unset or empty. A value that does not parse is an error naming
    /// the variable.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let read = |name: &'static str| lookup(name).filter(|value| !value.trim().is_empty());
        let config = Self {
            threshold: match read("TEMPERATURE_THRESHOLD") {
                Some(value) => parse_number("TEMPERATURE_THRESHOLD", &value)?,
                None => defaults.threshold,
            },
            hysteresis: match read("ALERT_HYSTERESIS") {
                Some(value) => parse_number("ALERT_HYSTERESIS", &value)?,
                None => defaults.hysteresis,
            },
            debounce: match read("ALERT_DEBOUNCE") {
                Some(value) => parse_integer("ALERT_DEBOUNCE", &value)?,
                None => defaults.debounce,
            },
            cooldown_seconds: match read("ALERT_COOLDOWN_SECONDS") {
                Some(value) => parse_integer("ALERT_COOLDOWN_SECONDS", &value)?,
                None => defaults.cooldown_seconds,
            },
            mode: match read("ALERT_MODE") {
                Some(value) => value.parse()?,
                None => defaults.mode,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges: a finite threshold, a hysteresis from 0 to 100 °C and a
    /// debounce of at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.threshold.is_finite() {
            return Err(ConfigError::Invalid {
                name: "TEMPERATURE_THRESHOLD",
                value: self.threshold.to_string(),
                expected: "a finite number of °C",
            });
        }
        if !(0.0..=100.0).contains(&self.hysteresis) {
            return Err(ConfigError::Invalid {
                name: "ALERT_HYSTERESIS",
                value: self.hysteresis.to_string(),
                expected: "a number of °C from 0 to 100",
            });
        }
        if self.debounce == 0 {
            return Err(ConfigError::Invalid {
                name: "ALERT_DEBOUNCE",
                value: "0".to_owned(),
                expected: "a whole number of readings, at least 1",
            });
        }
        Ok(())
    }
}

fn parse_number(name: &'static str, value: &str) -> Result<f64, ConfigError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ConfigError::Invalid {
            name,
            value: value.to_owned(),
            expected: "a number",
        })
}

fn parse_integer<T: FromStr>(name: &'static str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        expected: "a whole number, 0 or more",
    })
}

/// Alarm state of one device between readings. Times are milliseconds since the Unix
/// epoch, in event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AlarmState {
    /// Whether an alert is raised.
    pub raised: bool,
    /// Consecutive readings above the threshold while not raised, for the debounce.
    pub hot_streak: u32,
    /// When the current alert was raised.
    pub raised_at_ms: Option<i64>,
    /// When the last raise or reminder went out, for the cooldown.
    pub last_notified_ms: Option<i64>,
}

/// The outcome of one reading for its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Raised,
    Reminder,
    Cleared,
    Unchanged,
}

impl Decision {
    /// The alert to send for this decision, if any.
    #[must_use]
    pub fn alert_kind(self) -> Option<AlertKind> {
        match self {
            Self::Raised => Some(AlertKind::Raised),
            Self::Reminder => Some(AlertKind::Reminder),
            Self::Cleared => Some(AlertKind::Cleared),
            Self::Unchanged => None,
        }
    }

    /// The decision's spelling in results and logs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Reminder => "reminder",
            Self::Cleared => "cleared",
            Self::Unchanged => "unchanged",
        }
    }
}

/// The alert policy with its settings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    pub config: PolicyConfig,
}

impl Policy {
    #[must_use]
    pub fn new(config: PolicyConfig) -> Self {
        Self { config }
    }

    /// Decides what a reading of `temperature` °C taken at `at` does to a device whose
    /// alarm is in `state`, and returns the decision with the device's next state.
    #[must_use]
    pub fn decide(
        &self,
        state: &AlarmState,
        temperature: f64,
        at: OffsetDateTime,
    ) -> (Decision, AlarmState) {
        let config = &self.config;
        let hot = temperature > config.threshold;
        if config.mode == AlertMode::Every {
            let decision = if hot {
                Decision::Raised
            } else {
                Decision::Unchanged
            };
            return (decision, *state);
        }
        let at_ms = unix_ms(at);
        let mut next = *state;
        if !state.raised {
            if !hot {
                next.hot_streak = 0;
                return (Decision::Unchanged, next);
            }
            next.hot_streak = state.hot_streak.saturating_add(1);
            if next.hot_streak < config.debounce.max(1) {
                return (Decision::Unchanged, next);
            }
            next = AlarmState {
                raised: true,
                hot_streak: 0,
                raised_at_ms: Some(at_ms),
                last_notified_ms: Some(at_ms),
            };
            return (Decision::Raised, next);
        }
        if temperature <= config.clear_level() {
            return (Decision::Cleared, AlarmState::default());
        }
        if self.reminder_due(state, at_ms) {
            next.last_notified_ms = Some(at_ms);
            return (Decision::Reminder, next);
        }
        (Decision::Unchanged, next)
    }

    fn reminder_due(&self, state: &AlarmState, at_ms: i64) -> bool {
        let cooldown_ms =
            i64::try_from(self.config.cooldown_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        if cooldown_ms == 0 {
            return false;
        }
        let since = state
            .last_notified_ms
            .or(state.raised_at_ms)
            .unwrap_or(at_ms);
        at_ms.saturating_sub(since) >= cooldown_ms
    }
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Alarm states of many devices kept in memory, as the local cloud keeps them.
#[derive(Debug, Clone)]
pub struct Monitor {
    policy: Policy,
    source: AlertSource,
    states: HashMap<String, AlarmState>,
}

impl Monitor {
    /// Creates a monitor whose alerts carry `source`.
    #[must_use]
    pub fn new(config: PolicyConfig, source: AlertSource) -> Self {
        Self {
            policy: Policy::new(config),
            source,
            states: HashMap::new(),
        }
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> PolicyConfig {
        self.policy.config
    }

    /// Replaces the settings; alarm states are kept, so a raised alarm stays raised.
    pub fn set_config(&mut self, config: PolicyConfig) {
        self.policy.config = config;
    }

    /// The alarm state of a device, if it has sent a reading.
    #[must_use]
    pub fn state(&self, device_id: &str) -> Option<&AlarmState> {
        self.states.get(device_id)
    }

    /// Judges one reading. `received_at` is when it arrived: it stamps the alert, and it is
    /// the event time for readings without a usable timestamp.
    pub fn observe(
        &mut self,
        event: &ReadingEvent,
        received_at: OffsetDateTime,
    ) -> (Decision, Option<Alert>) {
        let at = event.event_time.unwrap_or(received_at);
        let state = self.states.entry(event.device_id.clone()).or_default();
        let (decision, next) = self.policy.decide(state, event.temperature, at);
        *state = next;
        let alert = decision.alert_kind().map(|kind| {
            Alert::new(
                kind,
                event,
                self.policy.config.threshold,
                self.policy.config.clear_level(),
                received_at,
                self.source,
            )
        });
        (decision, alert)
    }

    /// Brings a device's state up to date with an alert sent earlier, so that a restart
    /// neither raises a raised alarm again nor forgets to clear it.
    pub fn restore(&mut self, alert: &Alert) {
        let at_ms = parse_timestamp(&alert.alerted_at).ok().map(unix_ms);
        let state = self.states.entry(alert.device_id.clone()).or_default();
        match alert.kind {
            AlertKind::Raised => {
                *state = AlarmState {
                    raised: true,
                    hot_streak: 0,
                    raised_at_ms: at_ms,
                    last_notified_ms: at_ms,
                };
            }
            AlertKind::Reminder => {
                state.raised = true;
                state.last_notified_ms = at_ms;
            }
            AlertKind::Cleared => *state = AlarmState::default(),
            AlertKind::Stale => {}
        }
    }
}

#[cfg(test)]
mod tests;

/// The AWS Lambda function (`bootstrap` binary); only with the `function` feature.
#[cfg(feature = "function")]
pub mod function;
