//! A remote profile resolved from the settings: where to connect, as whom, over which TLS
//! files, and which topics to use; plus the check of the endpoint's shape.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::ClientConfig;

use super::describe::ConnectionContext;
use super::{AWS_ALPN_PROTOCOL, TlsFiles};
use crate::mqtt::MAX_PACKET_BYTES;
use crate::settings::{AwsSettings, CustomBrokerSettings, Profile, Settings, TopicSettings};

/// Which rules the checks and messages follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Aws,
    Custom,
}

/// Everything needed to connect to a remote broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteProfile {
    pub kind: BrokerKind,
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// `deviceId` of the readings, when the profile sets one.
    pub device_id: Option<String>,
    /// TLS files and options; `None` for plain MQTT.
    pub tls: Option<TlsFiles>,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    pub topics: TopicSettings,
}

impl RemoteProfile {
    /// The profile `profile` of `settings`, or `None` for the local profile.
    #[must_use]
    pub fn from_settings(settings: &Settings, profile: Profile) -> Option<Self> {
        match profile {
            Profile::Local => None,
            Profile::Aws => Some(Self::aws(&settings.aws)),
            Profile::Custom => Some(Self::custom(&settings.custom)),
        }
    }

    /// The AWS IoT Core profile. Port 443 offers the ALPN protocol `x-amzn-mqtt-ca`, which
    /// AWS IoT Core requires there; port 8883 offers none.
    #[must_use]
    pub fn aws(aws: &AwsSettings) -> Self {
        let alpn = (aws.port == 443).then(|| AWS_ALPN_PROTOCOL.to_vec());
        Self {
            kind: BrokerKind::Aws,
            host: aws.endpoint.trim().to_owned(),
            port: aws.port,
            client_id: aws.effective_client_id().to_owned(),
            device_id: Some(aws.effective_device_id().to_owned()).filter(|id| !id.is_empty()),
            tls: Some(TlsFiles {
                ca_file: path_if_set(&aws.ca_file),
                client: Some((aws.certificate_file.clone(), aws.private_key_file.clone())),
                alpn,
            }),
            credentials: None,
            topics: aws.topics.clone(),
        }
    }

    /// The custom broker profile.
    #[must_use]
    pub fn custom(custom: &CustomBrokerSettings) -> Self {
        let client = match (
            path_if_set(&custom.certificate_file),
            path_if_set(&custom.private_key_file),
        ) {
            (None, None) => None,
            (certificate, key) => Some((certificate.unwrap_or_default(), key.unwrap_or_default())),
        };
        let tls = custom.tls.then(|| TlsFiles {
            // A custom broker has no default CA: an empty path reports "no CA file is set".
            ca_file: Some(custom.ca_file.clone()),
            client,
            alpn: None,
        });
        let credentials = (!custom.username.trim().is_empty())
            .then(|| (custom.username.trim().to_owned(), custom.password.clone()));
        Self {
            kind: BrokerKind::Custom,
            host: custom.host.trim().to_owned(),
            port: custom.port,
            client_id: custom.client_id.trim().to_owned(),
            device_id: Some(custom.device_id.trim().to_owned()).filter(|id| !id.is_empty()),
            tls,
            credentials,
            topics: custom.topics.clone(),
        }
    }

    /// `host:port`.
    #[must_use]
    pub fn address(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }

    /// rumqttc options for this profile with a prepared TLS configuration.
    #[must_use]
    pub fn mqtt_options(
        &self,
        tls: Option<Arc<ClientConfig>>,
        keep_alive: Duration,
    ) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        options
            .set_keep_alive(keep_alive)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_clean_session(true);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        if let Some(config) = tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        options
    }

    /// What error explanations need to know.
    #[must_use]
    pub fn context(&self, anchors: String, keep_alive: Duration) -> ConnectionContext {
        ConnectionContext {
            kind: self.kind,
            host: self.host.clone(),
            port: self.port,
            client_id: self.client_id.clone(),
            tls: self.tls.is_some(),
            client_certificate: self.tls.as_ref().is_some_and(|tls| tls.client.is_some()),
            anchors,
            keep_alive,
        }
    }

    /// Describes the trust anchors without loading them.
    #[must_use]
    pub fn anchors_label(&self) -> String {
        match self.tls.as_ref().map(|tls| tls.ca_file.as_deref()) {
            None => "no TLS".to_owned(),
            Some(None) => "Amazon Root CA 1 and 3 (built in)".to_owned(),
            Some(Some(path)) => format!("CA file {}", path.display()),
        }
    }
}

fn path_if_set(path: &Path) -> Option<PathBuf> {
    (!path.as_os_str().is_empty()).then(|| path.to_owned())
}

/// Result of a check that can pass, warn or fail, with a fix for the last two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    Passed(String),
    Warning { problem: String, fix: String },
    Failed { problem: String, fix: String },
}

const ENDPOINT_FIX: &str = "Copy the device data endpoint from the AWS IoT console (Settings, Device data endpoint), or run: aws iot describe-endpoint --endpoint-type iot:Data-ATS";

/// Checks the endpoint's shape and the port, without any network access.
///
/// For AWS the endpoint must be a host name of the form
/// `<prefix>-ats.iot.<region>.amazonaws.com`: an IP address sends no server name (SNI),
/// which AWS IoT Core needs to choose the account's certificate, and endpoints without
/// `-ats` present a certificate from a CA that Amazon's roots do not cover. For a custom
/// broker these AWS rules are warnings only.
#[must_use]
pub fn check_endpoint(kind: BrokerKind, host: &str, port: u16, tls: bool) -> CheckResult {
    let host = host.trim();
    let failed_for_aws = |problem: String, fix: &str| match kind {
        BrokerKind::Aws => CheckResult::Failed {
            problem,
            fix: fix.to_owned(),
        },
        BrokerKind::Custom => CheckResult::Warning {
            problem,
            fix: fix.to_owned(),
        },
    };
    if host.is_empty() {
        return CheckResult::Failed {
            problem: "no endpoint is set".to_owned(),
            fix: match kind {
                BrokerKind::Aws => ENDPOINT_FIX.to_owned(),
                BrokerKind::Custom => "Enter the broker's host name".to_owned(),
            },
        };
    }
    if kind == BrokerKind::Aws && !matches!(port, 8883 | 443) {
        return CheckResult::Failed {
            problem: format!("port {port} is not served by AWS IoT Core"),
            fix: "Use 8883, or 443 where a firewall blocks 8883".to_owned(),
        };
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !tls {
            return CheckResult::Passed(format!("{ip} is an IP address; no TLS, so no SNI needed"));
        }
        return failed_for_aws(
            format!(
                "{ip} is an IP address, so TLS sends no server name (SNI); AWS IoT Core needs it to pick the account's certificate, and other brokers' certificates rarely list IP addresses"
            ),
            "Enter the host name instead",
        );
    }
    if host.contains("://") || host.contains('/') || host.contains(':') || host.contains(' ') {
        return CheckResult::Failed {
            problem: format!("\"{host}\" is not a bare host name"),
            fix: "Enter only the host name, such as abc123-ats.iot.eu-west-1.amazonaws.com, without mqtts://, a path or a port".to_owned(),
        };
    }
    let lower = host.to_ascii_lowercase();
    let amazon = lower.ends_with(".amazonaws.com") || lower.ends_with(".amazonaws.com.cn");
    let first_label = lower.split('.').next().unwrap_or_default();
    if amazon && lower.starts_with("iot.") {
        return failed_for_aws(
            format!("{host} is the AWS IoT management API, not the device data endpoint"),
            ENDPOINT_FIX,
        );
    }
    if amazon && lower.contains(".iot.") {
        if first_label.ends_with("-ats") {
            return CheckResult::Passed(format!("{host} is an AWS IoT Core ATS data endpoint"));
        }
        return failed_for_aws(
            format!(
                "{host} is a legacy AWS IoT endpoint (no -ats), whose certificate chains to a Symantec CA that Amazon Root CA 1 and 3 do not cover"
            ),
            ENDPOINT_FIX,
        );
    }
    match kind {
        BrokerKind::Aws => CheckResult::Warning {
            problem: format!(
                "{host} is not an AWS IoT data endpoint (<prefix>-ats.iot.<region>.amazonaws.com); that is right only for a custom domain configured in AWS IoT Core"
            ),
            fix: ENDPOINT_FIX.to_owned(),
        },
        BrokerKind::Custom => CheckResult::Passed(format!(
            "{host} is a host name (the AWS endpoint rules do not apply to a custom broker)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_passed(result: &CheckResult) -> bool {
        matches!(result, CheckResult::Passed(_))
    }

    fn is_warning(result: &CheckResult) -> bool {
        matches!(result, CheckResult::Warning { .. })
    }

    fn is_failed(result: &CheckResult) -> bool {
        matches!(result, CheckResult::Failed { .. })
    }

    #[test]
    fn ats_endpoint_passes() {
        let result = check_endpoint(
            BrokerKind::Aws,
            "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com",
            8883,
            true,
        );
        assert!(is_passed(&result), "{result:?}");
        let china = check_endpoint(
            BrokerKind::Aws,
            "a1b2c3-ats.iot.cn-north-1.amazonaws.com.cn",
            443,
            true,
        );
        assert!(is_passed(&china), "{china:?}");
    }

    #[test]
    fn ip_address_breaks_sni_for_aws() {
        let result = check_endpoint(BrokerKind::Aws, "52.94.236.248", 8883, true);
        let CheckResult::Failed { problem, .. } = &result else {
            panic!("{result:?}");
        };
        assert!(problem.contains("SNI"), "{problem}");
        let ipv6 = check_endpoint(BrokerKind::Aws, "2600:1f18::1", 8883, true);
        assert!(is_failed(&ipv6), "{ipv6:?}");
    }

    #[test]
    fn ip_address_is_a_warning_for_custom_brokers() {
        assert!(is_warning(&check_endpoint(
            BrokerKind::Custom,
            "127.0.0.1",
            8883,
            true
        )));
        assert!(is_passed(&check_endpoint(
            BrokerKind::Custom,
            "127.0.0.1",
            1883,
            false
        )));
    }

    #[test]
    fn legacy_endpoint_fails_for_aws_and_warns_for_custom() {
        let host = "a1b2c3d4e5f6g7.iot.us-east-1.amazonaws.com";
        let aws = check_endpoint(BrokerKind::Aws, host, 8883, true);
        let CheckResult::Failed { problem, fix } = &aws else {
            panic!("{aws:?}");
        };
        assert!(problem.contains("-ats"), "{problem}");
        assert!(fix.contains("iot:Data-ATS"), "{fix}");
        assert!(is_warning(&check_endpoint(
            BrokerKind::Custom,
            host,
            8883,
            true
        )));
    }

    #[test]
    fn management_api_is_not_a_data_endpoint() {
        let result = check_endpoint(BrokerKind::Aws, "iot.eu-west-1.amazonaws.com", 8883, true);
        assert!(is_failed(&result), "{result:?}");
    }

    #[test]
    fn urls_and_ports_are_rejected() {
        for host in [
            "mqtts://abc-ats.iot.eu-west-1.amazonaws.com",
            "abc-ats.iot.eu-west-1.amazonaws.com:8883",
            "abc-ats.iot.eu-west-1.amazonaws.com/mqtt",
        ] {
            let result = check_endpoint(BrokerKind::Aws, host, 8883, true);
            assert!(is_failed(&result), "{host}: {result:?}");
        }
    }

    #[test]
    fn aws_rejects_other_ports() {
        let result = check_endpoint(
            BrokerKind::Aws,
            "abc-ats.iot.eu-west-1.amazonaws.com",
            1883,
            true,
        );
        assert!(is_failed(&result), "{result:?}");
    }

    #[test]
    fn other_host_names_warn_for_aws_and_pass_for_custom() {
        assert!(is_warning(&check_endpoint(
            BrokerKind::Aws,
            "localhost",
            8883,
            true
        )));
        assert!(is_passed(&check_endpoint(
            BrokerKind::Custom,
            "localhost",
            8883,
            true
        )));
        assert!(is_failed(&check_endpoint(
            BrokerKind::Aws,
            "  ",
            8883,
            true
        )));
    }

    #[test]
    fn port_443_offers_the_aws_alpn_protocol() {
        let mut aws = AwsSettings {
            port: 443,
            ..AwsSettings::default()
        };
        let profile = RemoteProfile::aws(&aws);
        assert_eq!(
            profile.tls.unwrap().alpn.as_deref(),
            Some(AWS_ALPN_PROTOCOL)
        );
        aws.port = 8883;
        assert_eq!(RemoteProfile::aws(&aws).tls.unwrap().alpn, None);
    }

    #[test]
    fn aws_profile_uses_the_thing_name() {
        let aws = AwsSettings {
            thing_name: "Station-7".to_owned(),
            ..AwsSettings::default()
        };
        let profile = RemoteProfile::aws(&aws);
        assert_eq!(profile.client_id, "Station-7");
        assert_eq!(profile.device_id.as_deref(), Some("Station-7"));
        assert_eq!(profile.tls.unwrap().ca_file, None);
    }
}
