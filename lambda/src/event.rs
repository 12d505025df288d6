//! Parsing of topic-rule results into readings the policy can judge.
//!
//! A rule result is whatever the rule's `SELECT` produced: the product's default rule keeps
//! `temperature`, `deviceId`, `seq` and `timestamp`, the tutorial's rule keeps only
//! `temperature`, and `SELECT *` passes the whole reading. Numbers may arrive as JSON
//! numbers or, as the tutorial's emulator sends them, as strings.

use serde_json::Value;
use time::OffsetDateTime;

use crate::message::parse_timestamp;

/// Device id used when an event names no device, so such events share one alarm state.
pub const UNKNOWN_DEVICE: &str = "unknown";

/// Largest event accepted, in bytes of JSON. AWS IoT Core caps a payload at 128 KB, so a
/// larger event did not come from a topic rule.
pub const MAX_EVENT_BYTES: usize = 128 * 1024;

/// Longest device id accepted; AWS IoT thing names and client ids are at most 128 characters.
const MAX_DEVICE_ID_CHARS: usize = 128;

/// Why an event cannot be judged. Each message names the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is {found}, expected a JSON object such as {{\"temperature\": 36.5}}")]
    NotAnObject { found: &'static str },
    #[error("event has no \"temperature\" field; the topic rule must select it")]
    MissingTemperature,
    #[error("temperature is {found}, expected a number or a numeric string such as \"36.20\"")]
    WrongTemperatureType { found: &'static str },
    #[error("temperature {value:?} is not a decimal number such as \"36.20\"")]
    NonNumericTemperature { value: String },
    #[error("temperature {value:?} is not a finite number")]
    NonFiniteTemperature { value: String },
    #[error("\"deviceId\" is {found}, expected a string of 1 to 128 characters")]
    InvalidDeviceId { found: String },
    #[error("event is {size} bytes, larger than the {MAX_EVENT_BYTES}-byte limit of AWS IoT Core")]
    TooLarge { size: usize },
}

/// One reading as the alert policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingEvent {
    /// From `deviceId`, else from a `clientId` field a rule adds with `clientid()`, else
    /// [`UNKNOWN_DEVICE`].
    pub device_id: String,
    /// Degrees Celsius.
    pub temperature: f64,
    /// The reading's sequence number, when the rule selected it.
    pub seq: Option<u64>,
    /// The emulator run the reading came from, when the rule selected it.
    pub session: Option<String>,
    /// The reading's `timestamp` text exactly as received.
    pub timestamp: Option<String>,
    /// `timestamp` parsed; `None` when absent or not ISO 8601, and callers then use the
    /// time the event arrived.
    pub event_time: Option<OffsetDateTime>,
}

/// Parses the text of an event, rejecting events larger than [`MAX_EVENT_BYTES`] before
/// parsing them.
pub fn parse_event_bytes(bytes: &[u8]) -> Result<ReadingEvent, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge { size: bytes.len() });
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => parse_event(&value),
        Err(_) => Err(EventError::NotAnObject {
            found: "not valid JSON",
        }),
    }
}

/// Parses a topic-rule result into a [`ReadingEvent`].
pub fn parse_event(value: &Value) -> Result<ReadingEvent, EventError> {
    let Value::Object(fields) = value else {
        return Err(EventError::NotAnObject {
            found: json_kind(value),
        });
    };
    let temperature = match fields.get("temperature") {
        Some(raw) => parse_temperature(raw)?,
        None => return Err(EventError::MissingTemperature),
    };
    let device_id = device_id(fields.get("deviceId"))
        .or_else(|| device_id(fields.get("clientId")))
        .transpose()?
        .unwrap_or_else(|| UNKNOWN_DEVICE.to_owned());
    let timestamp = fields
        .get("timestamp")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let event_time = timestamp
        .as_deref()
        .and_then(|text| parse_timestamp(text).ok());
    Ok(ReadingEvent {
        device_id,
        temperature,
        seq: fields.get("seq").and_then(parse_seq),
        session: fields
            .get("session")
            .and_then(Value::as_str)
            .map(str::to_owned),
        timestamp,
        event_time,
    })
}

/// Reads a temperature given as a JSON number or as a string holding a plain decimal
/// number (`"36.20"`, `"-4"`, `"1.5e1"`). Units, spaces, `NaN` and `Infinity` are rejected.
pub fn parse_temperature(value: &Value) -> Result<f64, EventError> {
    match value {
        Value::Number(number) => number.as_f64().filter(|t| t.is_finite()).ok_or_else(|| {
            EventError::NonFiniteTemperature {
                value: number.to_string(),
            }
        }),
        Value::String(text) => parse_decimal(text),
        other => Err(EventError::WrongTemperatureType {
            found: json_kind(other),
        }),
    }
}

fn parse_decimal(text: &str) -> Result<f64, EventError> {
    if !is_decimal_literal(text) {
        return Err(EventError::NonNumericTemperature {
            value: text.to_owned(),
        });
    }
    match text.parse::<f64>() {
        Ok(parsed) if parsed.is_finite() => Ok(parsed),
        _ => Err(EventError::NonFiniteTemperature {
            value: text.to_owned(),
        }),
    }
}

/// Checks the shape `[+-]digits[.digits][(e|E)[+-]digits]`, which excludes the words
/// `inf` and `NaN` that `f64::from_str` would accept.
fn is_decimal_literal(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn device_id(value: Option<&Value>) -> Option<Result<String, EventError>> {
    match value? {
        Value::Null => None,
        Value::String(id) if !id.is_empty() && id.chars().count() <= MAX_DEVICE_ID_CHARS => {
            Some(Ok(id.clone()))
        }
        other => Some(Err(EventError::InvalidDeviceId {
            found: describe(other),
        })),
    }
}

fn parse_seq(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) if text.is_empty() => "an empty string".to_owned(),
        Value::String(text) => format!("a string of {} characters", text.chars().count()),
        other => json_kind(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn temperature_accepts_numbers_and_decimal_strings() {
        let cases = [
            (json!(40), 40.0),
            (json!(36.5), 36.5),
            (json!("36.20"), 36.2),
            (json!("-4"), -4.0),
            (json!("+12.5"), 12.5),
            (json!(".5"), 0.5),
            (json!("3."), 3.0),
            (json!("1.5e1"), 15.0),
        ];
        for (input, expected) in cases {
            let parsed = parse_temperature(&input).unwrap();
            assert!(
                (parsed - expected).abs() < 1e-9,
                "{input} parsed as {parsed}"
            );
        }
    }

    #[test]
    fn temperature_rejects_non_numbers_with_reason() {
        let cases = [
            (json!("36.2°C"), "\"36.2°C\" is not a decimal number"),
            (json!(""), "\"\" is not a decimal number"),
            (json!(" 36"), "\" 36\" is not a decimal number"),
            (json!("NaN"), "\"NaN\" is not a decimal number"),
            (json!("Infinity"), "\"Infinity\" is not a decimal number"),
            (json!("inf"), "\"inf\" is not a decimal number"),
            (json!("1e999"), "\"1e999\" is not a finite number"),
            (json!("."), "\".\" is not a decimal number"),
            (json!("1e"), "\"1e\" is not a decimal number"),
            (json!(true), "temperature is a boolean"),
            (json!(null), "temperature is null"),
            (json!({"value": 36}), "temperature is an object"),
            (json!([36]), "temperature is an array"),
        ];
        for (input, expected) in cases {
            let message = parse_temperature(&input).unwrap_err().to_string();
            assert!(message.contains(expected), "{input}: {message}");
        }
    }

    #[test]
    fn event_default_rule_result() {
        let event = parse_event(&json!({
            "temperature": 36.4,
            "deviceId": "WeatherEmulator",
            "seq": 17,
            "timestamp": "2026-12-04T10:00:05.250Z"
        }))
        .unwrap();
        assert_eq!(event.device_id, "WeatherEmulator");
        assert_eq!(event.seq, Some(17));
        assert_eq!(event.timestamp.as_deref(), Some("2026-12-04T10:00:05.250Z"));
        let at = event.event_time.unwrap();
        assert_eq!(at.unix_timestamp_nanos(), 1_796_378_405_250_000_000);
    }

    #[test]
    fn event_tutorial_rule_result() {
        let event = parse_event(&json!({"temperature": "32.75"})).unwrap();
        assert_eq!(event.device_id, UNKNOWN_DEVICE);
        assert!((event.temperature - 32.75).abs() < 1e-9);
        assert_eq!(event.seq, None);
        assert_eq!(event.event_time, None);
    }

    #[test]
    fn event_device_from_client_id() {
        let event = parse_event(&json!({"temperature": 20, "clientId": "thing-7"})).unwrap();
        assert_eq!(event.device_id, "thing-7");
    }

    #[test]
    fn event_rejections() {
        let cases = [
            (json!(null), EventError::NotAnObject { found: "null" }),
            (json!([1, 2]), EventError::NotAnObject { found: "an array" }),
            (json!("40"), EventError::NotAnObject { found: "a string" }),
            (json!({"deviceId": "a"}), EventError::MissingTemperature),
            (
                json!({"temperature": 40, "deviceId": 7}),
                EventError::InvalidDeviceId {
                    found: "a number".into(),
                },
            ),
            (
                json!({"temperature": 40, "deviceId": ""}),
                EventError::InvalidDeviceId {
                    found: "an empty string".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_event(&input), Err(expected), "{input}");
        }
    }

    #[test]
    fn event_bytes_limit_and_invalid_json() {
        let big = format!(
            "{{\"temperature\": 40, \"pad\": \"{}\"}}",
            "x".repeat(200 * 1024)
        );
        assert!(matches!(
            parse_event_bytes(big.as_bytes()),
            Err(EventError::TooLarge { size }) if size == big.len()
        ));
        assert_eq!(
            parse_event_bytes(b"{temperature: 40"),
            Err(EventError::NotAnObject {
                found: "not valid JSON"
            })
        );
        assert_eq!(
            parse_event_bytes(br#"{"temperature": 40}"#)
                .unwrap()
                .temperature,
            40.0
        );
    }

    #[test]
    fn event_bad_timestamp_falls_back_to_arrival() {
        let event = parse_event(&json!({"temperature": 1, "timestamp": "yesterday"})).unwrap();
        assert_eq!(event.timestamp.as_deref(), Some("yesterday"));
        assert_eq!(event.event_time, None);
    }
}
