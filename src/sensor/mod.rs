//! The emulated weather station: a temperature that follows a setpoint with Gaussian noise
//! and on-demand spikes, plus humidity and pressure wandering within the tutorial's ranges.
//!
//! The model does no I/O and takes time as an argument; with the same seed and times it
//! produces the same readings.

mod clock;
mod reading;

use std::ops::RangeInclusive;

pub use clock::{Clock, ManualClock, WallClock};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Normal};
pub use reading::{ALERTS_TOPIC, CONTROL_TOPIC, NumberFormat, Reading, TELEMETRY_TOPIC};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Allowed setpoints, °C.
pub const SETPOINT_RANGE: RangeInclusive<f64> = -20.0..=80.0;
/// Allowed noise standard deviations, °C.
pub const NOISE_RANGE: RangeInclusive<f64> = 0.0..=5.0;
/// Allowed publish intervals, milliseconds.
pub const INTERVAL_RANGE_MS: RangeInclusive<u64> = 100..=10_000;
/// Allowed spike sizes, °C.
pub const SPIKE_DELTA_RANGE: RangeInclusive<f64> = -60.0..=60.0;
/// Allowed spike lengths, seconds.
pub const SPIKE_SECONDS_RANGE: RangeInclusive<f64> = 1.0..=600.0;
/// Humidity range of the tutorial's emulator, percent.
pub const HUMIDITY_RANGE: RangeInclusive<f64> = 50.0..=60.0;
/// Pressure range of the tutorial's emulator, hPa.
pub const PRESSURE_RANGE: RangeInclusive<f64> = 1000.0..=1050.0;

/// Device id the tutorial's emulator sends.
pub const DEFAULT_DEVICE_ID: &str = "WeatherStationEmulator";

/// What the user sets for the emulated sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SensorSettings {
    /// Temperature the sensor hovers around, °C.
    pub setpoint: f64,
    /// Standard deviation of the Gaussian noise, °C.
    pub noise_std_dev: f64,
    /// Time between readings, milliseconds.
    pub interval_ms: u64,
    /// How much a spike adds to the setpoint, °C.
    pub spike_delta: f64,
    /// How long a spike lasts, seconds.
    pub spike_seconds: f64,
    /// `deviceId` of the readings.
    pub device_id: String,
    /// Send the measurements as JSON strings, as the tutorial's emulator does.
    pub numbers_as_strings: bool,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            setpoint: 25.0,
            noise_std_dev: 0.3,
            interval_ms: 1000,
            spike_delta: 15.0,
            spike_seconds: 10.0,
            device_id: DEFAULT_DEVICE_ID.to_owned(),
            numbers_as_strings: false,
        }
    }
}

impl SensorSettings {
    /// Publish interval.
    #[must_use]
    pub fn interval(&self) -> Duration {
        Duration::milliseconds(self.interval_ms.clamp(100, 10_000).cast_signed())
    }

    /// Payload format of the measurements.
    #[must_use]
    pub fn number_format(&self) -> NumberFormat {
        if self.numbers_as_strings {
            NumberFormat::Strings
        } else {
            NumberFormat::Numbers
        }
    }

    /// Brings every value into its allowed range and returns a note for each one changed,
    /// naming the setting, the value found and the value used.
    pub fn clamp_to_ranges(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        clamp_f64(&mut self.setpoint, &SETPOINT_RANGE, "setpoint", &mut notes);
        clamp_f64(&mut self.noise_std_dev, &NOISE_RANGE, "noise", &mut notes);
        clamp_f64(
            &mut self.spike_delta,
            &SPIKE_DELTA_RANGE,
            "spike size",
            &mut notes,
        );
        clamp_f64(
            &mut self.spike_seconds,
            &SPIKE_SECONDS_RANGE,
            "spike length",
            &mut notes,
        );
        let interval = self
            .interval_ms
            .clamp(*INTERVAL_RANGE_MS.start(), *INTERVAL_RANGE_MS.end());
        if interval != self.interval_ms {
            notes.push(format!(
                "interval {} ms is out of range; using {interval} ms",
                self.interval_ms
            ));
            self.interval_ms = interval;
        }
        let trimmed = self.device_id.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 128 {
            notes.push(format!(
                "device id {:?} must have 1 to 128 characters; using {DEFAULT_DEVICE_ID}",
                self.device_id
            ));
            DEFAULT_DEVICE_ID.clone_into(&mut self.device_id);
        } else if trimmed != self.device_id {
            self.device_id = trimmed.to_owned();
        }
        notes
    }
}

fn clamp_f64(value: &mut f64, range: &RangeInclusive<f64>, name: &str, notes: &mut Vec<String>) {
    let clamped = if value.is_finite() {
        value.clamp(*range.start(), *range.end())
    } else {
        *range.start()
    };
    if clamped.to_bits() != value.to_bits() {
        notes.push(format!(
            "{name} {value} is outside {}..={}; using {clamped}",
            range.start(),
            range.end()
        ));
        *value = clamped;
    }
}

/// A spike in progress or scheduled.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spike {
    start: OffsetDateTime,
    end: OffsetDateTime,
    delta: f64,
}

/// The sensor model. Each call to [`SensorModel::next_reading`] takes one reading.
#[derive(Debug, Clone)]
pub struct SensorModel {
    settings: SensorSettings,
    rng: ChaCha8Rng,
    spike: Option<Spike>,
    seq: u64,
    session: String,
    humidity: f64,
    pressure: f64,
}

impl SensorModel {
    /// Creates a model whose noise comes from `seed`; `session` tags its readings.
    #[must_use]
    pub fn new(settings: SensorSettings, seed: u64, session: String) -> Self {
        Self {
            settings,
            rng: ChaCha8Rng::seed_from_u64(seed),
            spike: None,
            seq: 0,
            session,
            humidity: 55.0,
            pressure: 1013.2,
        }
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &SensorSettings {
        &self.settings
    }

    /// Replaces the settings; the next reading uses them.
    pub fn set_settings(&mut self, settings: SensorSettings) {
        self.settings = settings;
    }

    /// Session id written into every reading.
    #[must_use]
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Number of readings taken so far.
    #[must_use]
    pub fn readings_taken(&self) -> u64 {
        self.seq
    }

    /// Starts a spike of the configured size and length at `start`, replacing any other.
    pub fn spike(&mut self, start: OffsetDateTime) {
        let length = Duration::seconds_f64(self.settings.spike_seconds.max(0.0));
        self.spike = Some(Spike {
            start,
            end: start + length,
            delta: self.settings.spike_delta,
        });
    }

    /// Ends the spike now, if one is running or scheduled.
    pub fn cancel_spike(&mut self) {
        self.spike = None;
    }

    /// When the spike running at `at` ends, if one is running.
    #[must_use]
    pub fn spike_end(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        self.spike
            .filter(|spike| spike.start <= at && at < spike.end)
            .map(|spike| spike.end)
    }

    /// Takes the reading for time `at`.
    pub fn next_reading(&mut self, at: OffsetDateTime) -> Reading {
        self.seq += 1;
        let spike = self
            .spike
            .filter(|spike| spike.start <= at && at < spike.end)
            .map_or(0.0, |spike| spike.delta);
        let noise = self.gaussian(self.settings.noise_std_dev);
        let temperature = round_to(self.settings.setpoint + spike + noise, 2);

        let humidity_step = self.gaussian(0.3);
        self.humidity =
            (self.humidity + humidity_step).clamp(*HUMIDITY_RANGE.start(), *HUMIDITY_RANGE.end());
        let pressure_step = self.gaussian(0.2);
        self.pressure =
            (self.pressure + pressure_step).clamp(*PRESSURE_RANGE.start(), *PRESSURE_RANGE.end());

        Reading {
            device_id: self.settings.device_id.clone(),
            timestamp: at,
            temperature,
            humidity: self.humidity.round() as u32,
            pressure: round_to(self.pressure, 1),
            seq: self.seq,
            session: self.session.clone(),
        }
    }

    fn gaussian(&mut self, std_dev: f64) -> f64 {
        match Normal::new(0.0, std_dev) {
            Ok(normal) if std_dev > 0.0 => normal.sample(&mut self.rng),
            _ => {
                // Draw anyway, so that changing the noise does not shift later values.
                let _: f64 = self.rng.random();
                0.0
            }
        }
    }
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const START: OffsetDateTime = datetime!(2026-12-04 10:00 UTC);

    fn readings(model: &mut SensorModel, count: i64) -> Vec<Reading> {
        (0..count)
            .map(|i| model.next_reading(START + Duration::seconds(i)))
            .collect()
    }

    #[test]
    fn same_seed_same_readings() {
        let mut a = SensorModel::new(SensorSettings::default(), 7, "s".into());
        let mut b = SensorModel::new(SensorSettings::default(), 7, "s".into());
        assert_eq!(readings(&mut a, 50), readings(&mut b, 50));
        let mut c = SensorModel::new(SensorSettings::default(), 8, "s".into());
        assert_ne!(readings(&mut a, 5), readings(&mut c, 5));
    }

    #[test]
    fn noise_matches_std_dev() {
        let mut model = SensorModel::new(SensorSettings::default(), 1, "s".into());
        let values: Vec<f64> = readings(&mut model, 4000)
            .iter()
            .map(|r| r.temperature)
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!((mean - 25.0).abs() < 0.05, "mean {mean}");
        assert!(
            (variance.sqrt() - 0.3).abs() < 0.03,
            "std dev {}",
            variance.sqrt()
        );
    }

    #[test]
    fn zero_noise_is_exact() {
        let settings = SensorSettings {
            noise_std_dev: 0.0,
            setpoint: 31.5,
            ..SensorSettings::default()
        };
        let mut model = SensorModel::new(settings, 1, "s".into());
        assert!(
            readings(&mut model, 20)
                .iter()
                .all(|r| r.temperature == 31.5)
        );
    }

    #[test]
    fn spike_window() {
        let settings = SensorSettings {
            noise_std_dev: 0.0,
            ..SensorSettings::default()
        };
        let mut model = SensorModel::new(settings, 1, "s".into());
        model.spike(START + Duration::seconds(3));
        let temperatures: Vec<f64> = readings(&mut model, 16)
            .iter()
            .map(|r| r.temperature)
            .collect();
        let mut expected = vec![25.0; 16];
        expected[3..13].fill(40.0);
        assert_eq!(temperatures, expected);
        assert_eq!(
            model.spike_end(START + Duration::seconds(5)),
            Some(START + Duration::seconds(13))
        );
        assert_eq!(model.spike_end(START + Duration::seconds(13)), None);
    }

    #[test]
    fn default_spike_crosses_threshold_and_returns_below_clear_level() {
        let mut model = SensorModel::new(SensorSettings::default(), 3, "s".into());
        model.spike(START);
        let all = readings(&mut model, 20);
        assert!(all[..10].iter().all(|r| r.temperature > 35.0));
        assert!(all[10..].iter().all(|r| r.temperature <= 34.0));
    }

    #[test]
    fn humidity_and_pressure_stay_in_tutorial_ranges() {
        let mut model = SensorModel::new(SensorSettings::default(), 9, "s".into());
        for reading in readings(&mut model, 5000) {
            assert!(
                (50..=60).contains(&reading.humidity),
                "humidity {}",
                reading.humidity
            );
            assert!(
                PRESSURE_RANGE.contains(&reading.pressure),
                "pressure {}",
                reading.pressure
            );
            assert_eq!(round_to(reading.pressure, 1), reading.pressure);
        }
    }

    #[test]
    fn seq_counts_up_with_session() {
        let mut model = SensorModel::new(SensorSettings::default(), 9, "abc".into());
        let all = readings(&mut model, 3);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(all.iter().all(|r| r.session == "abc"));
    }

    #[test]
    fn clamp_reports_each_change() {
        let mut settings = SensorSettings {
            setpoint: 120.0,
            noise_std_dev: f64::NAN,
            interval_ms: 5,
            device_id: "  ".into(),
            ..SensorSettings::default()
        };
        let notes = settings.clamp_to_ranges();
        assert_eq!(settings.setpoint, 80.0);
        assert_eq!(settings.noise_std_dev, 0.0);
        assert_eq!(settings.interval_ms, 100);
        assert_eq!(settings.device_id, DEFAULT_DEVICE_ID);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes[0].starts_with("setpoint 120 is outside -20..=80"));
        assert!(SensorSettings::default().clamp_to_ranges().is_empty());
    }
}
