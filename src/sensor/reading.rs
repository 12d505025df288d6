//! Readings and their JSON payload on the telemetry topic.

use serde::Serialize;
use temperature_alert::format_timestamp;
use time::OffsetDateTime;

/// Topic the emulator publishes readings on, as in the tutorial.
pub const TELEMETRY_TOPIC: &str = "Emulators/Weather/SensorReadings";
/// Topic whose `{"isTelemetryActive": bool}` messages pause and resume telemetry.
pub const CONTROL_TOPIC: &str = "Emulators/Weather/Control";
/// Topic the local cloud and the Lambda function publish alerts on.
pub const ALERTS_TOPIC: &str = "Emulators/Weather/Alerts";

/// One emulated weather-station reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: String,
    pub timestamp: OffsetDateTime,
    /// °C, rounded to two decimals.
    pub temperature: f64,
    /// Percent relative humidity, from 50 to 60.
    pub humidity: u32,
    /// hPa, one decimal, from 1000 to 1050.
    pub pressure: f64,
    /// Increases by one per reading of this device within one run.
    pub seq: u64,
    /// Random id of the emulator run, so consumers keep readings of a restarted emulator.
    pub session: String,
}

/// How the payload writes the tutorial's three measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NumberFormat {
    /// JSON numbers: `"temperature":32.75`.
    #[default]
    Numbers,
    /// JSON strings, exactly as the tutorial's emulator sends them: `"temperature":"32.75"`.
    Strings,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a, T: Serialize, H: Serialize> {
    device_id: &'a str,
    timestamp: String,
    temperature: T,
    humidity: H,
    pressure: T,
    seq: u64,
    session: &'a str,
}

impl Reading {
    /// Encodes the reading as the JSON published on [`TELEMETRY_TOPIC`].
    #[must_use]
    pub fn to_payload(&self, format: NumberFormat) -> Vec<u8> {
        let encoded = match format {
            NumberFormat::Numbers => {
                serde_json::to_vec(&self.payload(self.temperature, self.humidity, self.pressure))
            }
            NumberFormat::Strings => serde_json::to_vec(&self.payload(
                format!("{:.2}", self.temperature),
                self.humidity.to_string(),
                format!("{:.1}", self.pressure),
            )),
        };
        // Serializing plain strings and finite floats into a Vec cannot fail.
        encoded.unwrap_or_default()
    }

    fn payload<T: Serialize, H: Serialize>(
        &self,
        temperature: T,
        humidity: H,
        pressure: T,
    ) -> Payload<'_, T, H> {
        Payload {
            device_id: &self.device_id,
            timestamp: format_timestamp(self.timestamp),
            temperature,
            humidity,
            pressure,
            seq: self.seq,
            session: &self.session,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample() -> Reading {
        Reading {
            device_id: "WeatherStationEmulator".into(),
            timestamp: datetime!(2026-12-04 10:00:01.5 UTC),
            temperature: 32.75,
            humidity: 55,
            pressure: 1012.3,
            seq: 7,
            session: "3f2a".into(),
        }
    }

    #[test]
    fn payload_numbers() {
        let text = String::from_utf8(sample().to_payload(NumberFormat::Numbers)).unwrap();
        assert_eq!(
            text,
            r#"{"deviceId":"WeatherStationEmulator","timestamp":"2026-12-04T10:00:01.500Z","temperature":32.75,"humidity":55,"pressure":1012.3,"seq":7,"session":"3f2a"}"#
        );
    }

    #[test]
    fn payload_strings_like_tutorial() {
        let text = String::from_utf8(sample().to_payload(NumberFormat::Strings)).unwrap();
        assert_eq!(
            text,
            r#"{"deviceId":"WeatherStationEmulator","timestamp":"2026-12-04T10:00:01.500Z","temperature":"32.75","humidity":"55","pressure":"1012.3","seq":7,"session":"3f2a"}"#
        );
    }
}
