//! "Import connection kit folder": finds the certificate, private key and root CA in a
//! folder laid out like AWS IoT Core's downloads, plus the thing name and endpoint when the
//! folder tells them.
//!
//! The console's "Connect one device" kit holds `<thing>.cert.pem`, `<thing>.private.key`,
//! `<thing>.public.key`, a `start.sh` that names the endpoint, and `root-CA.crt` once
//! `start.sh` has run. A certificate created under Security, Certificates downloads as
//! `<id>-certificate.pem.crt`, `<id>-private.pem.key`, `<id>-public.pem.key` and
//! `AmazonRootCA1.pem`.

use std::path::{Path, PathBuf};

/// Largest script scanned for the endpoint.
const MAX_SCRIPT_BYTES: u64 = 256 * 1024;

/// What a connection kit folder holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionKit {
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    /// `None` when the folder has no root CA; the built-in Amazon roots then apply.
    pub ca_file: Option<PathBuf>,
    /// From `<thing>.cert.pem`.
    pub thing_name: Option<String>,
    /// From the kit's start script.
    pub endpoint: Option<String>,
}

/// Why a folder is no connection kit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KitError {
    #[error("cannot read the folder {}: {reason}", dir.display())]
    Read { dir: PathBuf, reason: String },
    #[error("the folder {} has no {what} ({pattern}); choose the folder of the unpacked connection kit", dir.display())]
    Missing {
        dir: PathBuf,
        what: &'static str,
        pattern: &'static str,
    },
    #[error("the folder {} has {} {what} files ({}); keep one, or choose the files one by one", dir.display(), files.len(), files.join(", "))]
    Ambiguous {
        dir: PathBuf,
        what: &'static str,
        files: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KitFile {
    Certificate,
    PrivateKey,
    RootCa,
    Script,
    Other,
}

fn classify(name: &str) -> KitFile {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".cert.pem") || lower.ends_with("certificate.pem.crt") {
        KitFile::Certificate
    } else if lower.ends_with(".private.key") || lower.ends_with("private.pem.key") {
        KitFile::PrivateKey
    } else if lower.starts_with("amazonrootca") || lower.starts_with("root-ca") {
        KitFile::RootCa
    } else if Path::new(&lower)
        .extension()
        .is_some_and(|extension| ["sh", "ps1", "bat"].iter().any(|known| extension == *known))
    {
        KitFile::Script
    } else {
        KitFile::Other
    }
}

/// Reads a connection kit folder.
pub fn import(dir: &Path) -> Result<ConnectionKit, KitError> {
    let read_error = |error: std::io::Error| KitError::Read {
        dir: dir.to_owned(),
        reason: error.to_string(),
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_type().map_err(read_error)?.is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let of_kind = |kind: KitFile| -> Vec<&String> {
        names.iter().filter(|name| classify(name) == kind).collect()
    };
    let certificate = single(
        dir,
        &of_kind(KitFile::Certificate),
        "certificate",
        "*.cert.pem or *-certificate.pem.crt",
    )?;
    let key = single(
        dir,
        &of_kind(KitFile::PrivateKey),
        "private key",
        "*.private.key or *-private.pem.key",
    )?;
    // Amazon Root CA 1 first: it signs the RSA certificates that most endpoints serve.
    let ca_file = of_kind(KitFile::RootCa)
        .into_iter()
        .min_by_key(|name| !name.to_ascii_lowercase().contains("ca1"))
        .map(|name| dir.join(name));
    let thing_name = certificate
        .strip_suffix(".cert.pem")
        .filter(|thing| !thing.is_empty())
        .map(str::to_owned);
    let endpoint = of_kind(KitFile::Script)
        .into_iter()
        .find_map(|name| endpoint_in_script(&dir.join(name)));
    Ok(ConnectionKit {
        certificate_file: dir.join(certificate),
        private_key_file: dir.join(key),
        ca_file,
        thing_name,
        endpoint,
    })
}

fn single<'a>(
    dir: &Path,
    found: &[&'a String],
    what: &'static str,
    pattern: &'static str,
) -> Result<&'a str, KitError> {
    match found {
        [] => Err(KitError::Missing {
            dir: dir.to_owned(),
            what,
            pattern,
        }),
        [name] => Ok(name.as_str()),
        many => Err(KitError::Ambiguous {
            dir: dir.to_owned(),
            what,
            files: many.iter().map(|name| (*name).clone()).collect(),
        }),
    }
}

/// The first `…-ats.iot.….amazonaws.com` host named in a script.
fn endpoint_in_script(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if metadata.len() > MAX_SCRIPT_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find_endpoint(&text)
}

fn find_endpoint(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        .map(|token| token.trim_matches('.'))
        .find(|token| {
            let lower = token.to_ascii_lowercase();
            lower.contains("-ats.iot.")
                && (lower.ends_with(".amazonaws.com") || lower.ends_with(".amazonaws.com.cn"))
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_kit_layout() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "WeatherEmulator.cert.pem",
            "WeatherEmulator.private.key",
            "WeatherEmulator.public.key",
            "root-CA.crt",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::write(
            dir.path().join("start.sh"),
            "python3 aws-iot-device-sdk-python-v2/samples/pubsub.py --endpoint a1b2c3d4e5-ats.iot.eu-west-1.amazonaws.com --ca_file root-CA.crt --cert WeatherEmulator.cert.pem\n",
        )
        .unwrap();
        let kit = import(dir.path()).unwrap();
        assert_eq!(
            kit.certificate_file,
            dir.path().join("WeatherEmulator.cert.pem")
        );
        assert_eq!(
            kit.private_key_file,
            dir.path().join("WeatherEmulator.private.key")
        );
        assert_eq!(kit.ca_file, Some(dir.path().join("root-CA.crt")));
        assert_eq!(kit.thing_name.as_deref(), Some("WeatherEmulator"));
        assert_eq!(
            kit.endpoint.as_deref(),
            Some("a1b2c3d4e5-ats.iot.eu-west-1.amazonaws.com")
        );
    }

    #[test]
    fn console_download_layout() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "3f9e2a-certificate.pem.crt",
            "3f9e2a-private.pem.key",
            "3f9e2a-public.pem.key",
            "AmazonRootCA3.pem",
            "AmazonRootCA1.pem",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let kit = import(dir.path()).unwrap();
        assert_eq!(
            kit.certificate_file,
            dir.path().join("3f9e2a-certificate.pem.crt")
        );
        assert_eq!(
            kit.private_key_file,
            dir.path().join("3f9e2a-private.pem.key")
        );
        assert_eq!(kit.ca_file, Some(dir.path().join("AmazonRootCA1.pem")));
        assert_eq!(kit.thing_name, None);
        assert_eq!(kit.endpoint, None);
    }

    #[test]
    fn missing_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("thing.cert.pem"), "x").unwrap();
        let error = import(dir.path()).unwrap_err();
        assert!(
            matches!(
                error,
                KitError::Missing {
                    what: "private key",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn two_certificates_are_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.cert.pem", "b.cert.pem", "a.private.key"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let error = import(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("a.cert.pem, b.cert.pem"),
            "{error}"
        );
    }

    #[test]
    fn endpoint_is_found_in_quotes() {
        assert_eq!(
            find_endpoint("ENDPOINT=\"abc-ats.iot.us-east-1.amazonaws.com\"\n").as_deref(),
            Some("abc-ats.iot.us-east-1.amazonaws.com")
        );
        assert_eq!(find_endpoint("iot.us-east-1.amazonaws.com"), None);
    }
}
