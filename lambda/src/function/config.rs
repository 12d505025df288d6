//! The function's settings, read once at start from environment variables.
//!
//! The policy settings have the same names and defaults as the desktop app's
//! ([`PolicyConfig::from_env`]). A value that does not parse stops the function at start
//! with a message naming the variable, so a bad deploy fails loudly and not per event.

use crate::{AlertMode, ConfigError, PolicyConfig};

/// Default of `ALERTS_MQTT_TOPIC`, the topic the desktop app subscribes to.
pub const DEFAULT_ALERTS_TOPIC: &str = "Emulators/Weather/Alerts";

/// AWS IoT Core rejects topic names longer than 256 bytes.
const MAX_TOPIC_BYTES: usize = 256;

/// A missing or invalid setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunctionConfigError {
    #[error("{name} is not set: {help}")]
    Missing {
        name: &'static str,
        help: &'static str,
    },
    #[error("{name}={value:?} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Policy(#[from] ConfigError),
}

/// Settings of the function.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    pub policy: PolicyConfig,
    /// `ALERT_TOPIC_ARN`: the SNS topic that emails the subscribers.
    pub topic_arn: String,
    /// `ALARM_TABLE`: the DynamoDB table of alarm states. Required unless `ALERT_MODE` is
    /// `every`, which keeps no state.
    pub table: Option<String>,
    /// `ALERTS_MQTT_TOPIC`: where the alert JSON is published.
    pub alerts_topic: String,
    /// `IOT_DATA_ENDPOINT` as a URL. The variable contains the account's `iot:Data-ATS`
    /// endpoint host name, or a whole `http://` or `https://` URL for tests.
    pub iot_data_endpoint: String,
}

impl FunctionConfig {
    /// Reads the settings through `lookup`, which returns a variable's value. Empty values
    /// count as unset.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FunctionConfigError> {
        let read = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let policy = PolicyConfig::from_env(read)?;
        let topic_arn = read("ALERT_TOPIC_ARN").ok_or(FunctionConfigError::Missing {
            name: "ALERT_TOPIC_ARN",
            help: "set it to the ARN of the SNS topic that emails the alerts",
        })?;
        check_topic_arn(&topic_arn)?;
        let table = match (read("ALARM_TABLE"), policy.mode) {
            (Some(table), _) => Some(check_table_name(table)?),
            (None, AlertMode::Every) => None,
            (None, AlertMode::OncePerExcursion) => {
                return Err(FunctionConfigError::Missing {
                    name: "ALARM_TABLE",
                    help: "set it to the DynamoDB table of alarm states, which the \
                           once-per-excursion mode needs",
                });
            }
        };
        let alerts_topic = read("ALERTS_MQTT_TOPIC").unwrap_or_else(|| DEFAULT_ALERTS_TOPIC.into());
        check_mqtt_topic(&alerts_topic)?;
        let endpoint = read("IOT_DATA_ENDPOINT").ok_or(FunctionConfigError::Missing {
            name: "IOT_DATA_ENDPOINT",
            help: "set it to the account's data endpoint, as printed by \
                   `aws iot describe-endpoint --endpoint-type iot:Data-ATS`",
        })?;
        let iot_data_endpoint = endpoint_url(&endpoint)?;
        Ok(Self {
            policy,
            topic_arn,
            table,
            alerts_topic,
            iot_data_endpoint,
        })
    }
}

/// Checks the shape `arn:<partition>:sns:<region>:<account>:<topic>`.
fn check_topic_arn(arn: &str) -> Result<(), FunctionConfigError> {
    let parts: Vec<&str> = arn.split(':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && !parts[4].is_empty()
        && !parts[5].is_empty();
    if valid {
        Ok(())
    } else {
        Err(FunctionConfigError::Invalid {
            name: "ALERT_TOPIC_ARN",
            value: arn.to_owned(),
            expected: "an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:alerts",
        })
    }
}

/// DynamoDB table names have 3 to 255 characters from `a-z A-Z 0-9 _ - .`.
fn check_table_name(name: String) -> Result<String, FunctionConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if (3..=255).contains(&name.len()) && name.chars().all(allowed) {
        Ok(name)
    } else {
        Err(FunctionConfigError::Invalid {
            name: "ALARM_TABLE",
            value: name,
            expected: "a DynamoDB table name of 3 to 255 letters, digits, '_', '-' or '.'",
        })
    }
}

/// Checks a topic to publish on: no wildcards, not reserved (`$` prefix), at most 256 bytes.
fn check_mqtt_topic(topic: &str) -> Result<(), FunctionConfigError> {
    let valid = topic.len() <= MAX_TOPIC_BYTES
        && !topic.starts_with('$')
        && !topic.contains(['+', '#', '\0']);
    if valid {
        Ok(())
    } else {
        Err(FunctionConfigError::Invalid {
            name: "ALERTS_MQTT_TOPIC",
            value: topic.to_owned(),
            expected: "an MQTT topic name of at most 256 bytes without '+', '#' or a leading '$'",
        })
    }
}

/// Turns a host name into an `https://` URL and accepts a whole `http://` or `https://`
/// URL with no path as it is.
fn endpoint_url(value: &str) -> Result<String, FunctionConfigError> {
    let value = value.trim();
    let (url, host_and_port) = match value.split_once("://") {
        Some(("http" | "https", rest)) => (value.to_owned(), rest.trim_end_matches('/')),
        Some(_) => (String::new(), ""),
        None => (format!("https://{value}"), value),
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':');
    if !host_and_port.is_empty() && host_and_port.chars().all(allowed) {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(FunctionConfigError::Invalid {
            name: "IOT_DATA_ENDPOINT",
            value: value.to_owned(),
            expected: "a host name such as abc123-ats.iot.eu-west-1.amazonaws.com, or an \
                       http:// or https:// URL without a path",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC_ARN: &str = "arn:aws:sns:eu-west-1:123456789012:temperature-alert-topic";

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ALERT_TOPIC_ARN", TOPIC_ARN),
            ("ALARM_TABLE", "alarm-state"),
            (
                "IOT_DATA_ENDPOINT",
                "abc123-ats.iot.eu-west-1.amazonaws.com",
            ),
        ]
    }

    #[test]
    fn config_defaults() {
        let config = FunctionConfig::from_env(env(&minimal())).unwrap();
        assert_eq!(config.policy, PolicyConfig::default());
        assert_eq!(config.policy.threshold, 35.0);
        assert_eq!(config.topic_arn, TOPIC_ARN);
        assert_eq!(config.table.as_deref(), Some("alarm-state"));
        assert_eq!(config.alerts_topic, "Emulators/Weather/Alerts");
        assert_eq!(
            config.iot_data_endpoint,
            "https://abc123-ats.iot.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn config_all_values() {
        let mut vars = minimal();
        vars.retain(|(name, _)| *name != "IOT_DATA_ENDPOINT");
        vars.extend([
            ("TEMPERATURE_THRESHOLD", "30"),
            ("ALERT_HYSTERESIS", "0.5"),
            ("ALERT_DEBOUNCE", "2"),
            ("ALERT_COOLDOWN_SECONDS", "60"),
            ("ALERT_MODE", "every"),
            ("ALERTS_MQTT_TOPIC", "site/alerts"),
            ("IOT_DATA_ENDPOINT", "http://127.0.0.1:5000/"),
        ]);
        let config = FunctionConfig::from_env(env(&vars)).unwrap();
        assert_eq!(config.policy.threshold, 30.0);
        assert_eq!(config.policy.hysteresis, 0.5);
        assert_eq!(config.policy.debounce, 2);
        assert_eq!(config.policy.cooldown_seconds, 60);
        assert_eq!(config.policy.mode, AlertMode::Every);
        assert_eq!(config.alerts_topic, "site/alerts");
        assert_eq!(config.iot_data_endpoint, "http://127.0.0.1:5000");
    }

    #[test]
    fn config_every_mode_needs_no_table() {
        let vars = [
            ("ALERT_TOPIC_ARN", TOPIC_ARN),
            (
                "IOT_DATA_ENDPOINT",
                "abc123-ats.iot.eu-west-1.amazonaws.com",
            ),
            ("ALERT_MODE", "every"),
        ];
        let config = FunctionConfig::from_env(env(&vars)).unwrap();
        assert_eq!(config.table, None);
    }

    #[test]
    fn config_errors_name_variable() {
        let cases: [(&str, &str, &str); 9] = [
            (
                "TEMPERATURE_THRESHOLD",
                "35°C",
                "TEMPERATURE_THRESHOLD=\"35°C\" is invalid",
            ),
            ("ALERT_MODE", "always", "ALERT_MODE=\"always\" is invalid"),
            (
                "ALERT_COOLDOWN_SECONDS",
                "5m",
                "ALERT_COOLDOWN_SECONDS=\"5m\" is invalid",
            ),
            (
                "ALERT_TOPIC_ARN",
                "temperature-alert-topic",
                "ALERT_TOPIC_ARN=\"temperature-alert-topic\" is invalid",
            ),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sqs:eu-west-1:1:q",
                "ALERT_TOPIC_ARN=\"arn:aws:sqs:eu-west-1:1:q\" is invalid",
            ),
            ("ALARM_TABLE", "a b", "ALARM_TABLE=\"a b\" is invalid"),
            (
                "ALERTS_MQTT_TOPIC",
                "Emulators/+/Alerts",
                "ALERTS_MQTT_TOPIC=\"Emulators/+/Alerts\" is invalid",
            ),
            (
                "ALERTS_MQTT_TOPIC",
                "$aws/things",
                "ALERTS_MQTT_TOPIC=\"$aws/things\" is invalid",
            ),
            (
                "IOT_DATA_ENDPOINT",
                "ftp://host",
                "IOT_DATA_ENDPOINT=\"ftp://host\" is invalid",
            ),
        ];
        for (name, value, expected) in cases {
            let mut vars = minimal();
            vars.retain(|(key, _)| *key != name);
            vars.push((name, value));
            let error = FunctionConfig::from_env(env(&vars))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(expected), "{name}={value}: {error}");
        }
    }

    #[test]
    fn config_missing_variables() {
        for name in ["ALERT_TOPIC_ARN", "ALARM_TABLE", "IOT_DATA_ENDPOINT"] {
            let mut vars = minimal();
            vars.retain(|(key, _)| *key != name);
            let error = FunctionConfig::from_env(env(&vars)).unwrap_err();
            assert!(
                matches!(error, FunctionConfigError::Missing { name: missing, .. } if missing == name),
                "{name}: {error}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{name} is not set: set it to"))
            );
        }
    }
}
