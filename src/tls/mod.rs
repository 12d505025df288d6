//! TLS for remote brokers: certificates and keys loaded from PEM files, the Amazon trust
//! anchors shipped with the app, rustls client configurations on the `ring` provider, the
//! translation of connection errors into fixes, and the connection doctor.
//!
//! Every `ClientConfig` is built with an explicit provider, because a workspace-wide build
//! unifies rustls features with the Lambda function's AWS SDK, and then both `ring` and
//! `aws-lc-rs` are compiled in and rustls cannot choose a default one.

pub mod describe;
pub mod doctor;
pub mod files;
pub mod kit;
pub mod remote;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::{ClientConfig, RootCertStore};
use time::OffsetDateTime;

use files::{FileError, FileRole, LoadedCertificates, LoadedKey};

/// ALPN protocol name that AWS IoT Core requires for MQTT with client certificates on
/// port 443.
pub const AWS_ALPN_PROTOCOL: &[u8] = b"x-amzn-mqtt-ca";

/// Amazon Root CA 1 (RSA 2048), which signs the `-ats` endpoints' RSA certificates.
/// SHA-256 fingerprint 8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E,
/// the same as in Debian's `ca-certificates` 20230311.
pub const AMAZON_ROOT_CA_1: &[u8] = include_bytes!("../../assets/AmazonRootCA1.pem");
/// Amazon Root CA 3 (EC P-256), which signs the `-ats` endpoints' ECC certificates.
/// SHA-256 fingerprint 18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4.
pub const AMAZON_ROOT_CA_3: &[u8] = include_bytes!("../../assets/AmazonRootCA3.pem");

/// The crypto provider of every TLS connection the app makes.
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Problems found before connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "the device certificate file {} holds a CA certificate ({subject}), not the device's own certificate; choose {}",
        path.display(), FileRole::Certificate.aws_file_hint()
    )]
    CaAsDeviceCertificate { path: PathBuf, subject: String },
    #[error(
        "the private key {} does not belong to the device certificate {} (their public keys differ); choose the key downloaded together with this certificate. Compare them with: openssl x509 -in {} -noout -pubkey and openssl pkey -in {} -pubout",
        key.display(), certificate.display(), files::quoted(certificate), files::quoted(key)
    )]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    #[error(
        "the device certificate {} expired on {}; create a new certificate for the Thing (AWS IoT console: Security, Certificates), attach the policy and the Thing to it, and download it",
        path.display(), format_date(*not_after)
    )]
    Expired {
        path: PathBuf,
        not_after: OffsetDateTime,
    },
    #[error(
        "the device certificate {} is valid only from {}, but this computer's clock says {}; check the clock",
        path.display(), format_date(*not_before), format_date(*now)
    )]
    NotYetValid {
        path: PathBuf,
        not_before: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error("the CA file {} has no certificate that can be a trust anchor: {reason}", path.display())]
    UnusableCa { path: PathBuf, reason: String },
    #[error("the TLS configuration was rejected: {0}")]
    Config(String),
}

/// `2026-12-04 10:00 UTC`.
#[must_use]
pub fn format_date(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

/// Where the broker's certificate must chain to.
#[derive(Debug, Clone)]
pub enum TrustAnchors {
    /// Amazon Root CA 1 and 3, built into the app.
    Amazon,
    /// Certificates from a CA file.
    File(LoadedCertificates),
}

impl TrustAnchors {
    /// Loads the CA file, or uses the Amazon roots when no file is set.
    pub fn load(ca_file: Option<&Path>) -> Result<Self, FileError> {
        match ca_file {
            Some(path) => Ok(Self::File(files::load_certificates(
                path,
                FileRole::CaCertificates,
            )?)),
            None => Ok(Self::Amazon),
        }
    }

    /// Builds the root store; fails when no certificate can be a trust anchor.
    pub fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        match self {
            Self::Amazon => {
                for pem in [AMAZON_ROOT_CA_1, AMAZON_ROOT_CA_3] {
                    for der in CertificateDer::pem_slice_iter(pem) {
                        let der = der.map_err(|error| TlsError::Config(error.to_string()))?;
                        store
                            .add(der)
                            .map_err(|error| TlsError::Config(error.to_string()))?;
                    }
                }
            }
            Self::File(loaded) => {
                let mut last_error = None;
                for der in &loaded.chain {
                    if let Err(error) = store.add(der.clone()) {
                        last_error = Some(error.to_string());
                    }
                }
                if store.is_empty() {
                    return Err(TlsError::UnusableCa {
                        path: loaded.path.clone(),
                        reason: last_error.unwrap_or_else(|| "no certificates".to_owned()),
                    });
                }
            }
        }
        Ok(store)
    }

    /// Names the anchors for reports.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Amazon => "Amazon Root CA 1 and 3 (built in)".to_owned(),
            Self::File(loaded) => {
                let subjects: Vec<&str> = loaded
                    .info
                    .iter()
                    .map(|info| info.subject.as_str())
                    .collect();
                format!("{} ({})", loaded.path.display(), subjects.join("; "))
            }
        }
    }
}

/// The device's certificate and private key.
#[derive(Debug)]
pub struct ClientIdentity {
    pub certificates: LoadedCertificates,
    pub key: LoadedKey,
}

impl ClientIdentity {
    /// Loads both files; the format checks happen here.
    pub fn load(certificate: &Path, key: &Path) -> Result<Self, FileError> {
        let certificates = files::load_certificates(certificate, FileRole::Certificate)?;
        let key = files::load_private_key(key)?;
        Ok(Self { certificates, key })
    }

    /// Rejects a CA certificate chosen as the device certificate.
    pub fn check_is_device_certificate(&self) -> Result<(), TlsError> {
        match self.certificates.info.first() {
            Some(info) if info.is_ca => Err(TlsError::CaAsDeviceCertificate {
                path: self.certificates.path.clone(),
                subject: info.subject.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Checks that the private key is the one of the first certificate.
    pub fn check_key_matches(&self) -> Result<(), TlsError> {
        let signing_key = provider()
            .key_provider
            .load_private_key(self.key.der.clone_key())
            .map_err(|error| TlsError::Config(error.to_string()))?;
        let certified =
            rustls::sign::CertifiedKey::new(self.certificates.chain.clone(), signing_key);
        match certified.keys_match() {
            // The ring provider always reports its public key, so `Unknown` cannot happen;
            // rustls checks again when the configuration is built.
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(())
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch {
                    certificate: self.certificates.path.clone(),
                    key: self.key.path.clone(),
                })
            }
            Err(error) => Err(TlsError::Config(error.to_string())),
        }
    }

    /// Checks that `now` is within the device certificate's validity dates.
    pub fn check_validity(&self, now: OffsetDateTime) -> Result<(), TlsError> {
        let Some(info) = self.certificates.info.first() else {
            return Ok(());
        };
        if now > info.not_after {
            return Err(TlsError::Expired {
                path: self.certificates.path.clone(),
                not_after: info.not_after,
            });
        }
        if now < info.not_before {
            return Err(TlsError::NotYetValid {
                path: self.certificates.path.clone(),
                not_before: info.not_before,
                now,
            });
        }
        Ok(())
    }

    /// Runs every check before connecting, in the doctor's order.
    pub fn check_all(&self, now: OffsetDateTime) -> Result<(), TlsError> {
        self.check_is_device_certificate()?;
        self.check_key_matches()?;
        self.check_validity(now)
    }
}

/// Files and options of one TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA file; `None` uses Amazon Root CA 1 and 3.
    pub ca_file: Option<PathBuf>,
    /// Device certificate and private key, for brokers that require client certificates.
    pub client: Option<(PathBuf, PathBuf)>,
    /// ALPN protocol to offer, if any.
    pub alpn: Option<Vec<u8>>,
}

impl TlsFiles {
    /// Loads and checks every file and builds the configuration: all problems with the
    /// files show up here, once, instead of at every connection attempt.
    pub fn client_config(&self, now: OffsetDateTime) -> Result<Arc<ClientConfig>, TlsError> {
        let anchors = TrustAnchors::load(self.ca_file.as_deref())?;
        let identity = match &self.client {
            Some((certificate, key)) => {
                let identity = ClientIdentity::load(certificate, key)?;
                identity.check_all(now)?;
                Some(identity)
            }
            None => None,
        };
        build_client_config(&anchors, identity, self.alpn.as_deref())
    }
}

/// Builds a rustls client configuration on the ring provider. The server certificate is
/// always verified against `anchors`.
pub fn build_client_config(
    anchors: &TrustAnchors,
    identity: Option<ClientIdentity>,
    alpn: Option<&[u8]>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = anchors.root_store()?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => {
            let certificate = identity.certificates.path.clone();
            let key = identity.key.path.clone();
            builder
                .with_client_auth_cert(identity.certificates.chain, identity.key.der)
                .map_err(|error| match error {
                    rustls::Error::InconsistentKeys(_) => {
                        TlsError::KeyMismatch { certificate, key }
                    }
                    other => TlsError::Config(other.to_string()),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    if let Some(protocol) = alpn {
        config.alpn_protocols = vec![protocol.to_vec()];
    }
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprints(pem: &[u8]) -> Vec<String> {
        CertificateDer::pem_slice_iter(pem)
            .map(|der| files::certificate_info(&der.unwrap()).unwrap().sha256)
            .collect()
    }

    #[test]
    fn amazon_roots_have_the_published_fingerprints() {
        assert_eq!(
            fingerprints(AMAZON_ROOT_CA_1),
            ["8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e"]
        );
        assert_eq!(
            fingerprints(AMAZON_ROOT_CA_3),
            ["18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4"]
        );
    }

    #[test]
    fn amazon_roots_build_a_root_store() {
        let store = TrustAnchors::Amazon.root_store().unwrap();
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn alpn_is_offered_only_when_asked() {
        let with =
            build_client_config(&TrustAnchors::Amazon, None, Some(AWS_ALPN_PROTOCOL)).unwrap();
        assert_eq!(with.alpn_protocols, vec![AWS_ALPN_PROTOCOL.to_vec()]);
        let without = build_client_config(&TrustAnchors::Amazon, None, None).unwrap();
        assert!(without.alpn_protocols.is_empty());
    }

    #[test]
    fn dates_format_in_utc() {
        let at = time::macros::datetime!(2026-12-04 11:30 +01:00);
        assert_eq!(format_date(at), "2026-12-04 10:30 UTC");
    }
}
