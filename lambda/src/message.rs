//! The alert message published on the alerts topic, and the email text sent for it.
//!
//! The local cloud and the Lambda function publish the same JSON, so the desktop app shows
//! alerts from either with one code path.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::event::ReadingEvent;

/// Subject of raise and reminder emails, as in the tutorial.
pub const RAISED_SUBJECT: &str = "Temperature Alert";
/// Subject of the email sent when a device is back to normal.
pub const CLEARED_SUBJECT: &str = "Temperature back to normal";

/// What happened to a device's alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A reading went above the threshold.
    Raised,
    /// The alarm is still raised after the cooldown.
    Reminder,
    /// A reading came back to the clear level or below.
    Cleared,
    /// The alarm is raised but the device stopped reporting.
    Stale,
}

impl AlertKind {
    /// The word used in messages and file names.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Reminder => "reminder",
            Self::Cleared => "cleared",
            Self::Stale => "stale",
        }
    }
}

/// Which cloud decided an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    /// The embedded local cloud of the desktop app.
    Local,
    /// The Lambda function behind an AWS IoT Core topic rule.
    Aws,
}

/// Delivery of the email for an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Notification {
    /// Decided, not yet delivered.
    Pending,
    /// Delivered: the outbox file name locally, the SNS message id in AWS.
    Sent { id: String },
    /// Delivery failed with this error.
    Failed { error: String },
}

/// An alert as published on the alerts topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub kind: AlertKind,
    pub device_id: String,
    /// The reading's temperature, °C.
    pub temperature: f64,
    /// The threshold in force, °C.
    pub threshold: f64,
    /// The level at or below which the alarm clears, °C.
    pub clear_level: f64,
    pub reading_seq: Option<u64>,
    pub reading_session: Option<String>,
    pub reading_timestamp: Option<String>,
    /// When the decision was made, ISO 8601 UTC with milliseconds.
    pub alerted_at: String,
    pub source: AlertSource,
    pub notification: Notification,
}

impl Alert {
    /// Builds the alert for `event`, with the notification still pending.
    #[must_use]
    pub fn new(
        kind: AlertKind,
        event: &ReadingEvent,
        threshold: f64,
        clear_level: f64,
        alerted_at: OffsetDateTime,
        source: AlertSource,
    ) -> Self {
        Self {
            kind,
            device_id: event.device_id.clone(),
            temperature: event.temperature,
            threshold,
            clear_level,
            reading_seq: event.seq,
            reading_session: event.session.clone(),
            reading_timestamp: event.timestamp.clone(),
            alerted_at: format_timestamp(alerted_at),
            source,
            notification: Notification::Pending,
        }
    }
}

/// Returns the email subject for an alert of this kind.
#[must_use]
pub fn email_subject(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Raised | AlertKind::Reminder | AlertKind::Stale => RAISED_SUBJECT,
        AlertKind::Cleared => CLEARED_SUBJECT,
    }
}

/// Writes the plain-text email body for an alert: what happened, the value, the
/// threshold, the device and the time. It stays far below SNS's 256 KB message limit
/// because device ids are at most 128 characters.
#[must_use]
pub fn email_body(alert: &Alert) -> String {
    let headline = match alert.kind {
        AlertKind::Raised => format!(
            "The temperature of {} is {:.2} °C, above the threshold of {:.2} °C.",
            alert.device_id, alert.temperature, alert.threshold
        ),
        AlertKind::Reminder => format!(
            "The temperature of {} is still above the threshold of {:.2} °C: now {:.2} °C.",
            alert.device_id, alert.threshold, alert.temperature
        ),
        AlertKind::Cleared => format!(
            "The temperature of {} is back to normal: {:.2} °C, at or below {:.2} °C.",
            alert.device_id, alert.temperature, alert.clear_level
        ),
        AlertKind::Stale => format!(
            "{} stopped reporting while its temperature alert was raised (last value {:.2} °C).",
            alert.device_id, alert.temperature
        ),
    };
    let reading_time = alert.reading_timestamp.as_deref().unwrap_or("not given");
    let seq = alert
        .reading_seq
        .map_or_else(|| "not given".to_owned(), |seq| seq.to_string());
    format!(
        "{headline}\n\n\
         Device:         {device}\n\
         Temperature:    {temperature:.2} °C\n\
         Threshold:      {threshold:.2} °C (clears at {clear:.2} °C)\n\
         Reading time:   {reading_time}\n\
         Reading seq:    {seq}\n\
         Alert time:     {alerted_at}\n\
         Decided by:     {source}\n",
        device = alert.device_id,
        temperature = alert.temperature,
        threshold = alert.threshold,
        clear = alert.clear_level,
        alerted_at = alert.alerted_at,
        source = match alert.source {
            AlertSource::Local => "Sensor Emulator local cloud",
            AlertSource::Aws => "AWS Lambda",
        },
    )
}

/// Formats a time as ISO 8601 in UTC with milliseconds, as the tutorial's emulator writes
/// timestamps: `2026-12-04T16:17:13.042Z`.
#[must_use]
pub fn format_timestamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Parses an RFC 3339 (ISO 8601) timestamp such as `2026-12-04T16:17:13.042Z`.
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &Rfc3339)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn sample_event() -> ReadingEvent {
        ReadingEvent {
            device_id: "WeatherEmulator".into(),
            temperature: 40.123,
            seq: Some(3),
            session: Some("s1".into()),
            timestamp: Some("2026-12-04T10:00:03.000Z".into()),
            event_time: None,
        }
    }

    #[test]
    fn alert_json_field_names() {
        let alert = Alert::new(
            AlertKind::Raised,
            &sample_event(),
            35.0,
            34.0,
            datetime!(2026-12-04 10:00:03.5 UTC),
            AlertSource::Local,
        );
        let value = serde_json::to_value(&alert).unwrap();
        assert_eq!(
            value,
            json!({
                "kind": "raised",
                "deviceId": "WeatherEmulator",
                "temperature": 40.123,
                "threshold": 35.0,
                "clearLevel": 34.0,
                "readingSeq": 3,
                "readingSession": "s1",
                "readingTimestamp": "2026-12-04T10:00:03.000Z",
                "alertedAt": "2026-12-04T10:00:03.500Z",
                "source": "local",
                "notification": {"status": "pending"}
            })
        );
        let back: Alert = serde_json::from_value(value).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn notification_json() {
        let sent = Notification::Sent { id: "a.eml".into() };
        assert_eq!(
            serde_json::to_value(sent).unwrap(),
            json!({"status": "sent", "id": "a.eml"})
        );
        let failed = Notification::Failed {
            error: "disk full".into(),
        };
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            json!({"status": "failed", "error": "disk full"})
        );
    }

    #[test]
    fn email_text_per_kind() {
        let mut alert = Alert::new(
            AlertKind::Raised,
            &sample_event(),
            35.0,
            34.0,
            datetime!(2026-12-04 10:00:03 UTC),
            AlertSource::Aws,
        );
        assert_eq!(email_subject(alert.kind), "Temperature Alert");
        let body = email_body(&alert);
        assert!(body.starts_with("The temperature of WeatherEmulator is 40.12 °C, above"));
        assert!(body.contains("Threshold:      35.00 °C (clears at 34.00 °C)"));
        assert!(body.contains("Reading time:   2026-12-04T10:00:03.000Z"));
        assert!(body.contains("Decided by:     AWS Lambda"));

        alert.kind = AlertKind::Cleared;
        assert_eq!(email_subject(alert.kind), "Temperature back to normal");
        assert!(email_body(&alert).contains("is back to normal"));
        alert.kind = AlertKind::Reminder;
        assert_eq!(email_subject(alert.kind), "Temperature Alert");
        assert!(email_body(&alert).contains("still above"));
    }

    #[test]
    fn timestamp_round_trip() {
        let at = datetime!(2026-12-04 16:17:13.042 UTC);
        let text = format_timestamp(at);
        assert_eq!(text, "2026-12-04T16:17:13.042Z");
        assert_eq!(parse_timestamp(&text).unwrap(), at);
        let offset = datetime!(2026-12-04 17:17:13.042 +1);
        assert_eq!(format_timestamp(offset), "2026-12-04T16:17:13.042Z");
    }
}
