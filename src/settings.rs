//! Settings on disk: a JSON file under the OS config folder, loaded with defaults for
//! anything missing, checked, and written atomically.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use temperature_alert::PolicyConfig;

use crate::sensor::{ALERTS_TOPIC, CONTROL_TOPIC, SensorSettings, TELEMETRY_TOPIC};

/// The product's default topic rule: it keeps the device id, so alarm state is per device,
/// and the sequence number and timestamp, so alerts point at the reading behind them.
pub const DEFAULT_RULE_SQL: &str =
    "SELECT temperature, deviceId, seq, timestamp FROM 'Emulators/Weather/SensorReadings'";

/// Address the local outbox's emails are written to.
pub const DEFAULT_EMAIL: &str = "you@example.com";

/// Failures to save settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot save settings to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode settings: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where the app publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The embedded local cloud: broker, rules engine and outbox in this process.
    #[default]
    Local,
    /// AWS IoT Core with mutual TLS.
    Aws,
    /// Any MQTT broker, with or without TLS.
    Custom,
}

impl Profile {
    pub const ALL: [Self; 3] = [Self::Local, Self::Aws, Self::Custom];

    /// Name in the window.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Local => "Local",
            Self::Aws => "AWS IoT Core",
            Self::Custom => "Custom MQTT broker",
        }
    }

    /// Name on the command line and in `settings.json`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Aws => "aws",
            Self::Custom => "custom",
        }
    }
}

/// Topics of a remote profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TopicSettings {
    pub telemetry: String,
    pub control: String,
    pub alerts: String,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            telemetry: TELEMETRY_TOPIC.to_owned(),
            control: CONTROL_TOPIC.to_owned(),
            alerts: ALERTS_TOPIC.to_owned(),
        }
    }
}

/// The AWS IoT Core profile. Empty paths and ids mean "not set".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AwsSettings {
    /// Device data endpoint, `<prefix>-ats.iot.<region>.amazonaws.com`.
    pub endpoint: String,
    /// 8883, or 443 with the ALPN protocol `x-amzn-mqtt-ca`.
    pub port: u16,
    pub thing_name: String,
    /// MQTT client id; the thing name when empty, which is what least-privilege IoT
    /// policies (`client/${iot:Connection.Thing.ThingName}`) expect.
    pub client_id: String,
    /// `deviceId` of the readings; the thing name when empty.
    pub device_id: String,
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    /// CA file; Amazon Root CA 1 and 3, built into the app, when empty.
    pub ca_file: PathBuf,
    pub topics: TopicSettings,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            port: 8883,
            thing_name: "WeatherEmulator".to_owned(),
            client_id: String::new(),
            device_id: String::new(),
            certificate_file: PathBuf::new(),
            private_key_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            topics: TopicSettings::default(),
        }
    }
}

impl AwsSettings {
    /// The client id in use: the thing name unless another one is set.
    #[must_use]
    pub fn effective_client_id(&self) -> &str {
        non_empty(&self.client_id).unwrap_or(self.thing_name.trim())
    }

    /// The `deviceId` in use: the thing name unless another one is set.
    #[must_use]
    pub fn effective_device_id(&self) -> &str {
        non_empty(&self.device_id).unwrap_or(self.thing_name.trim())
    }
}

/// A custom MQTT broker. Empty paths and strings mean "not set".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CustomBrokerSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// `deviceId` of the readings; the sensor's device id when empty.
    pub device_id: String,
    pub tls: bool,
    /// CA that signed the broker's certificate; required with TLS.
    pub ca_file: PathBuf,
    /// Client certificate and key, for brokers that require them.
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    pub username: String,
    /// NOTE: stored in plain text in settings.json, like the broker's own clients do.
    pub password: String,
    pub topics: TopicSettings,
}

impl Default for CustomBrokerSettings {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 1883,
            client_id: "sensor-emulator".to_owned(),
            device_id: String::new(),
            tls: false,
            ca_file: PathBuf::new(),
            certificate_file: PathBuf::new(),
            private_key_file: PathBuf::new(),
            username: String::new(),
            password: String::new(),
            topics: TopicSettings::default(),
        }
    }
}

/// Transport options shared by the remote profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TransportSettings {
    /// Readings kept while disconnected; the oldest are dropped beyond this.
    pub offline_queue: usize,
}

/// Allowed offline queue lengths.
pub const OFFLINE_QUEUE_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000;

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            offline_queue: 10_000,
        }
    }
}

fn non_empty(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// The embedded broker's listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerSettings {
    /// Loopback by default, so that nothing outside this computer can connect.
    pub bind: IpAddr,
    /// 1883 by default; a free port is used when it is taken.
    pub port: u16,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1883,
        }
    }
}

/// Window size and position in logical points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WindowSettings {
    pub width: f32,
    pub height: f32,
    /// Left edge of the outer window; the operating system places the window when `None`.
    pub x: Option<f32>,
    /// Top edge of the outer window.
    pub y: Option<f32>,
}

impl Default for WindowSettings {
    fn default() -> Self {
        Self {
            width: 1280.0,
            height: 800.0,
            x: None,
            y: None,
        }
    }
}

/// Everything the app remembers between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    pub profile: Profile,
    pub sensor: SensorSettings,
    pub policy: PolicyConfig,
    pub rule_sql: String,
    pub broker: BrokerSettings,
    /// Recipient written into the outbox's emails.
    pub email_to: String,
    pub window: WindowSettings,
    pub aws: AwsSettings,
    pub custom: CustomBrokerSettings,
    pub transport: TransportSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profile: Profile::Local,
            sensor: SensorSettings::default(),
            policy: PolicyConfig::default(),
            rule_sql: DEFAULT_RULE_SQL.to_owned(),
            broker: BrokerSettings::default(),
            email_to: DEFAULT_EMAIL.to_owned(),
            window: WindowSettings::default(),
            aws: AwsSettings::default(),
            custom: CustomBrokerSettings::default(),
            transport: TransportSettings::default(),
        }
    }
}

impl Settings {
    /// Replaces values that are out of range and returns a note for each.
    pub fn repair(&mut self) -> Vec<String> {
        let mut notes = self.sensor.clamp_to_ranges();
        if let Err(error) = self.policy.validate() {
            notes.push(format!("alert policy: {error}; using the default policy"));
            self.policy = PolicyConfig::default();
        }
        let window = WindowSettings::default();
        if !(200.0..=10_000.0).contains(&self.window.width)
            || !(150.0..=10_000.0).contains(&self.window.height)
        {
            self.window = window;
        }
        if !matches!(self.aws.port, 8883 | 443) {
            notes.push(format!(
                "AWS port {} is not 8883 or 443; using 8883",
                self.aws.port
            ));
            self.aws.port = 8883;
        }
        let queue = self
            .transport
            .offline_queue
            .clamp(*OFFLINE_QUEUE_RANGE.start(), *OFFLINE_QUEUE_RANGE.end());
        if queue != self.transport.offline_queue {
            notes.push(format!(
                "offline queue of {} readings is out of range; using {queue}",
                self.transport.offline_queue
            ));
            self.transport.offline_queue = queue;
        }
        notes
    }
}

/// Settings loaded from disk, with what had to be fixed on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// Messages for the user: a damaged file set aside, values out of range.
    pub notices: Vec<String>,
}

/// The settings file.
#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    #[must_use]
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the settings. A missing file gives the defaults; a damaged one is renamed
    /// to a backup next to it, and the defaults are used with a notice saying so.
    #[must_use]
    pub fn load(&self) -> Loaded {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Loaded {
                    settings: Settings::default(),
                    notices: Vec::new(),
                };
            }
            Err(error) => {
                let notice = format!(
                    "Cannot read the settings file {} ({error}); default settings are in use.",
                    self.path.display()
                );
                return Loaded {
                    settings: Settings::default(),
                    notices: vec![notice],
                };
            }
        };
        match serde_json::from_str::<Settings>(&text) {
            Ok(mut settings) => {
                let notices = settings
                    .repair()
                    .into_iter()
                    .map(|note| format!("Settings file {}: {note}.", self.path.display()))
                    .collect();
                Loaded { settings, notices }
            }
            Err(error) => Loaded {
                settings: Settings::default(),
                notices: vec![self.set_aside(&error)],
            },
        }
    }

    fn set_aside(&self, error: &serde_json::Error) -> String {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let backup = self.path.with_extension(format!("corrupt-{stamp}.json"));
        match fs::rename(&self.path, &backup) {
            Ok(()) => format!(
                "The settings file was damaged ({error}). It was kept as {} and default settings are in use.",
                backup.display()
            ),
            Err(rename_error) => format!(
                "The settings file {} was damaged ({error}) and could not be set aside ({rename_error}); \
                 default settings are in use and will replace it when saved.",
                self.path.display()
            ),
        }
    }

    /// Writes the settings to a temporary file and renames it over the old one, so a
    /// crash mid-write never leaves a half-written file.
    pub fn save(&self, settings: &Settings) -> Result<(), SettingsError> {
        let write_error = |source| SettingsError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        let text = serde_json::to_string_pretty(settings)?;
        let temporary = self.path.with_extension("json.tmp");
        fs::write(&temporary, text).map_err(write_error)?;
        fs::rename(&temporary, &self.path).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = SettingsStore::new(dir.path().join("settings.json")).load();
        assert_eq!(loaded.settings, Settings::default());
        assert!(loaded.notices.is_empty());
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::new(dir.path().join("nested/settings.json"));
        let mut settings = Settings::default();
        settings.sensor.setpoint = 31.5;
        settings.policy.threshold = 30.0;
        settings.window.width = 900.0;
        store.save(&settings).unwrap();
        let loaded = store.load();
        assert_eq!(loaded.settings, settings);
        assert!(loaded.notices.is_empty());
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(&path, r#"{"sensor": {"setpoint": 30}}"#).unwrap();
        let loaded = SettingsStore::new(path).load();
        assert_eq!(loaded.settings.sensor.setpoint, 30.0);
        assert_eq!(loaded.settings.sensor.interval_ms, 1000);
        assert_eq!(loaded.settings.policy, PolicyConfig::default());
    }

    #[test]
    fn damaged_file_is_kept_as_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(&path, "{\"sensor\": {\"setpoint\": ").unwrap();
        let loaded = SettingsStore::new(path.clone()).load();
        assert_eq!(loaded.settings, Settings::default());
        assert_eq!(loaded.notices.len(), 1);
        assert!(
            loaded.notices[0].starts_with("The settings file was damaged"),
            "{:?}",
            loaded.notices
        );
        assert!(!path.exists());
        let backups: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(backups.len(), 1);
        let name = backups[0].to_string_lossy().into_owned();
        assert!(
            name.starts_with("settings.corrupt-")
                && std::path::Path::new(&name)
                    .extension()
                    .is_some_and(|e| e == "json"),
            "{name}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(&name)).unwrap(),
            "{\"sensor\": {\"setpoint\": "
        );
    }

    #[test]
    fn older_file_without_profiles_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(&path, r#"{"profile": "local", "sensor": {"setpoint": 30}}"#).unwrap();
        let loaded = SettingsStore::new(path).load();
        assert!(loaded.notices.is_empty(), "{:?}", loaded.notices);
        assert_eq!(loaded.settings.profile, Profile::Local);
        assert_eq!(loaded.settings.aws, AwsSettings::default());
        assert_eq!(loaded.settings.transport.offline_queue, 10_000);
    }

    #[test]
    fn aws_profile_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = SettingsStore::new(dir.path().join("settings.json"));
        let mut settings = Settings {
            profile: Profile::Aws,
            ..Settings::default()
        };
        settings.aws.endpoint = "abc123-ats.iot.eu-west-1.amazonaws.com".to_owned();
        settings.aws.port = 443;
        settings.aws.certificate_file = PathBuf::from("/kit/WeatherEmulator.cert.pem");
        store.save(&settings).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.contains(r#""profile": "aws""#), "{text}");
        assert_eq!(store.load().settings, settings);
    }

    #[test]
    fn client_and_device_id_default_to_thing_name() {
        let mut aws = AwsSettings {
            thing_name: " Station-7 ".to_owned(),
            ..AwsSettings::default()
        };
        assert_eq!(aws.effective_client_id(), "Station-7");
        assert_eq!(aws.effective_device_id(), "Station-7");
        aws.client_id = "other".to_owned();
        assert_eq!(aws.effective_client_id(), "other");
    }

    #[test]
    fn invalid_port_and_queue_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(
            &path,
            r#"{"aws": {"port": 1883}, "transport": {"offlineQueue": 0}}"#,
        )
        .unwrap();
        let loaded = SettingsStore::new(path).load();
        assert_eq!(loaded.settings.aws.port, 8883);
        assert_eq!(loaded.settings.transport.offline_queue, 1);
        assert_eq!(loaded.notices.len(), 2, "{:?}", loaded.notices);
    }

    #[test]
    fn out_of_range_values_are_repaired_with_notice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        fs::write(
            &path,
            r#"{"sensor": {"intervalMs": 50}, "policy": {"debounce": 0}}"#,
        )
        .unwrap();
        let loaded = SettingsStore::new(path).load();
        assert_eq!(loaded.settings.sensor.interval_ms, 100);
        assert_eq!(loaded.settings.policy, PolicyConfig::default());
        assert_eq!(loaded.notices.len(), 2, "{:?}", loaded.notices);
        assert!(loaded.notices[1].contains("ALERT_DEBOUNCE=\"0\" is invalid"));
    }
}
