//! Loading certificates and private keys from PEM files, with a message for every file the
//! app cannot use that names the file, what it contains and how to convert it.
//!
//! Accepted: certificates (`BEGIN CERTIFICATE`) and unencrypted private keys in PKCS#1 RSA
//! (`BEGIN RSA PRIVATE KEY`, what AWS IoT Core issues), PKCS#8 (`BEGIN PRIVATE KEY`) and
//! SEC1 EC (`BEGIN EC PRIVATE KEY`) form, with LF or CRLF line endings and with or without
//! a UTF-8 byte order mark.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::provider;

/// Files larger than this are no certificates or keys, so reading stops with an error.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What a file is expected to contain, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The device's (client's) certificate.
    Certificate,
    /// The private key of the device certificate.
    PrivateKey,
    /// The certificate authorities that sign the broker's certificate.
    CaCertificates,
}

impl FileRole {
    /// Name of the file's role in messages.
    #[must_use]
    pub fn noun(self) -> &'static str {
        match self {
            Self::Certificate => "device certificate",
            Self::PrivateKey => "private key",
            Self::CaCertificates => "CA certificate",
        }
    }

    /// Names of the file in AWS's downloads, to tell the user which one to choose.
    #[must_use]
    pub fn aws_file_hint(self) -> &'static str {
        match self {
            Self::Certificate => {
                "the file ending in .cert.pem (connection kit) or -certificate.pem.crt (console download)"
            }
            Self::PrivateKey => {
                "the file ending in .private.key (connection kit) or -private.pem.key (console download)"
            }
            Self::CaCertificates => {
                "AmazonRootCA1.pem, or the CA that signed the broker's certificate"
            }
        }
    }
}

/// Form of a private key that loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    Pkcs1Rsa,
    Pkcs8,
    Sec1Ec,
}

impl fmt::Display for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pkcs1Rsa => "PKCS#1 RSA private key (BEGIN RSA PRIVATE KEY)",
            Self::Pkcs8 => "PKCS#8 private key (BEGIN PRIVATE KEY)",
            Self::Sec1Ec => "SEC1 EC private key (BEGIN EC PRIVATE KEY)",
        })
    }
}

/// A file that cannot be used, with what it contains and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("no {} file is set; choose {}", role.noun(), role.aws_file_hint())]
    NotSet { role: FileRole },
    #[error("cannot read the {} file {}: {reason}", role.noun(), path.display())]
    Read {
        role: FileRole,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the {} file {} is empty; download it again, or choose {}",
        role.noun(), path.display(), role.aws_file_hint()
    )]
    Empty { role: FileRole, path: PathBuf },
    #[error(
        "the {} file {} is larger than {} KiB, so it is no certificate or key; choose {}",
        role.noun(), path.display(), MAX_FILE_BYTES / 1024, role.aws_file_hint()
    )]
    TooLarge { role: FileRole, path: PathBuf },
    #[error(
        "the {} file {} is a binary DER {found}, but PEM text is expected; convert it with: {command}",
        role.noun(), path.display()
    )]
    Der {
        role: FileRole,
        path: PathBuf,
        found: &'static str,
        command: String,
    },
    #[error(
        "the {} file {} is neither PEM nor DER (it has no \"-----BEGIN\" line); choose {}",
        role.noun(), path.display(), role.aws_file_hint()
    )]
    NotPem { role: FileRole, path: PathBuf },
    #[error(
        "the private key file {} is an encrypted {found}, which needs its passphrase; write a decrypted copy with: {command}",
        path.display()
    )]
    EncryptedKey {
        path: PathBuf,
        found: &'static str,
        command: String,
    },
    #[error(
        "the private key file {} is an OpenSSH key (BEGIN OPENSSH PRIVATE KEY), which is for SSH logins and is not the key of a device certificate; choose {}. Only if this key signed the certificate request, convert a copy to PKCS#8 with: {command} (openssl cannot read OpenSSH keys)",
        path.display(), FileRole::PrivateKey.aws_file_hint()
    )]
    OpenSshKey { path: PathBuf, command: String },
    #[error(
        "the {} file {} contains {found}, not a {}; choose {}",
        role.noun(), path.display(), role.noun(), role.aws_file_hint()
    )]
    WrongContent {
        role: FileRole,
        path: PathBuf,
        found: String,
    },
    #[error(
        "the {} file {} is damaged ({reason}); download it again, or inspect it with: {command}",
        role.noun(), path.display()
    )]
    Damaged {
        role: FileRole,
        path: PathBuf,
        reason: String,
        command: String,
    },
    #[error(
        "the private key file {} contains {found}, which TLS cannot use ({reason}); AWS IoT Core accepts RSA keys of 2048 bits or more and EC keys on P-256 or P-384. Inspect the key with: {command}",
        path.display()
    )]
    UnsupportedKey {
        path: PathBuf,
        found: String,
        reason: String,
        command: String,
    },
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `basicConstraints CA:true`: a certificate authority, not a device certificate.
    pub is_ca: bool,
    /// SHA-256 of the DER bytes in lowercase hex, which AWS IoT Core shows as the
    /// certificate ID.
    pub sha256: String,
}

/// Certificates loaded from one file, in file order.
#[derive(Debug, Clone)]
pub struct LoadedCertificates {
    pub path: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub info: Vec<CertificateInfo>,
}

/// A private key loaded from a file.
#[derive(Debug)]
pub struct LoadedKey {
    pub path: PathBuf,
    pub der: PrivateKeyDer<'static>,
    pub format: KeyFormat,
}

/// Loads every certificate in a PEM file; there must be at least one.
pub fn load_certificates(path: &Path, role: FileRole) -> Result<LoadedCertificates, FileError> {
    let text = read_pem_text(path, role)?;
    let blocks = scan_blocks(&text);
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(&text) {
        let der = item.map_err(|error| damaged(path, role, &error))?;
        chain.push(der);
    }
    if chain.is_empty() {
        return Err(wrong_content_for_certificate(path, role, &blocks));
    }
    let mut info = Vec::with_capacity(chain.len());
    for der in &chain {
        let parsed = certificate_info(der).map_err(|reason| FileError::Damaged {
            role,
            path: path.to_owned(),
            reason,
            command: inspect_certificate_command(path),
        })?;
        info.push(parsed);
    }
    Ok(LoadedCertificates {
        path: path.to_owned(),
        chain,
        info,
    })
}

/// Loads the first private key of a PEM file and checks that the ring provider can sign
/// with it.
pub fn load_private_key(path: &Path) -> Result<LoadedKey, FileError> {
    let role = FileRole::PrivateKey;
    let text = read_pem_text(path, role)?;
    let blocks = scan_blocks(&text);
    if let Some(error) = unusable_key(path, &blocks) {
        return Err(error);
    }
    let der = PrivateKeyDer::from_pem_slice(&text).map_err(|error| match error {
        rustls::pki_types::pem::Error::NoItemsFound => wrong_content_for_key(path, &blocks),
        other => damaged(path, role, &other),
    })?;
    let format = match &der {
        PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1Rsa,
        PrivateKeyDer::Sec1(_) => KeyFormat::Sec1Ec,
        _ => KeyFormat::Pkcs8,
    };
    if let Err(error) = provider().key_provider.load_private_key(der.clone_key()) {
        return Err(FileError::UnsupportedKey {
            path: path.to_owned(),
            found: format!("a {format}"),
            reason: error.to_string(),
            command: format!("openssl pkey -in {} -noout -text", quoted(path)),
        });
    }
    Ok(LoadedKey {
        path: path.to_owned(),
        der,
        format,
    })
}

/// Reads subject, issuer, validity dates, CA flag and fingerprint of a DER certificate.
pub fn certificate_info(der: &CertificateDer<'_>) -> Result<CertificateInfo, String> {
    let (_, certificate) =
        X509Certificate::from_der(der.as_ref()).map_err(|error| error.to_string())?;
    let validity = certificate.validity();
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(CertificateInfo {
        subject: certificate.subject().to_string(),
        issuer: certificate.issuer().to_string(),
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
        is_ca: certificate.is_ca(),
        sha256: hex(digest.as_ref()),
    })
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// Reads a file that should be PEM text, with the byte order mark removed. Empty files,
/// binary DER files and files without any PEM block are rejected here.
fn read_pem_text(path: &Path, role: FileRole) -> Result<Vec<u8>, FileError> {
    if path.as_os_str().is_empty() {
        return Err(FileError::NotSet { role });
    }
    let read_error = |error: std::io::Error| FileError::Read {
        role,
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge {
            role,
            path: path.to_owned(),
        });
    }
    let text = bytes.strip_prefix(UTF8_BOM).unwrap_or(&bytes);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(FileError::Empty {
            role,
            path: path.to_owned(),
        });
    }
    if !scan_blocks(text).is_empty() {
        return Ok(text.to_vec());
    }
    // A DER structure starts with a SEQUENCE tag.
    if text.first() == Some(&0x30) {
        return Err(der_error(path, role, text));
    }
    Err(FileError::NotPem {
        role,
        path: path.to_owned(),
    })
}

fn der_error(path: &Path, role: FileRole, bytes: &[u8]) -> FileError {
    let is_certificate = X509Certificate::from_der(bytes).is_ok();
    let (found, command) = if is_certificate {
        (
            "certificate",
            format!(
                "openssl x509 -inform DER -in {} -out {}",
                quoted(path),
                quoted(&with_suffix(path, ".pem"))
            ),
        )
    } else if role == FileRole::PrivateKey {
        (
            "private key",
            format!(
                "openssl pkey -inform DER -in {} -out {}",
                quoted(path),
                quoted(&with_suffix(path, ".pem"))
            ),
        )
    } else {
        (
            "file",
            format!("openssl asn1parse -inform DER -in {}", quoted(path)),
        )
    };
    FileError::Der {
        role,
        path: path.to_owned(),
        found,
        command,
    }
}

/// One `-----BEGIN …-----` block of a PEM file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PemBlock {
    label: String,
    /// The block has a `Proc-Type: 4,ENCRYPTED` header: OpenSSL's legacy key encryption.
    encrypted_header: bool,
}

/// Lists the PEM blocks of a file by their labels, including the ones `rustls-pki-types`
/// skips (encrypted and OpenSSH keys).
fn scan_blocks(text: &[u8]) -> Vec<PemBlock> {
    let mut blocks: Vec<PemBlock> = Vec::new();
    let mut inside = false;
    for line in text.split(|byte| *byte == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            blocks.push(PemBlock {
                label: label.trim().to_owned(),
                encrypted_header: false,
            });
            inside = true;
        } else if line.starts_with("-----END ") {
            inside = false;
        } else if inside
            && line.starts_with("Proc-Type:")
            && line.contains("ENCRYPTED")
            && let Some(block) = blocks.last_mut()
        {
            block.encrypted_header = true;
        }
    }
    // OpenSSL writes the curve as a separate block before an EC key; it is no content.
    blocks.retain(|block| block.label != "EC PARAMETERS");
    blocks
}

/// Rejects a key file whose first key block is encrypted or an OpenSSH key, which
/// `rustls-pki-types` would skip without saying why.
fn unusable_key(path: &Path, blocks: &[PemBlock]) -> Option<FileError> {
    let decrypt = || {
        format!(
            "openssl pkey -in {} -out {}",
            quoted(path),
            quoted(&with_suffix(path, ".decrypted.key"))
        )
    };
    let block = blocks
        .iter()
        .find(|block| block.label.contains("PRIVATE KEY"))?;
    match block.label.as_str() {
        "ENCRYPTED PRIVATE KEY" => Some(FileError::EncryptedKey {
            path: path.to_owned(),
            found: "PKCS#8 private key (BEGIN ENCRYPTED PRIVATE KEY)",
            command: decrypt(),
        }),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" if block.encrypted_header => {
            Some(FileError::EncryptedKey {
                path: path.to_owned(),
                found: "PEM private key (Proc-Type: 4,ENCRYPTED)",
                command: decrypt(),
            })
        }
        "OPENSSH PRIVATE KEY" => Some(FileError::OpenSshKey {
            path: path.to_owned(),
            command: format!("ssh-keygen -p -m PKCS8 -f {}", quoted(path)),
        }),
        "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "PRIVATE KEY" => None,
        other => Some(FileError::UnsupportedKey {
            path: path.to_owned(),
            found: format!("a private key of an unsupported type (BEGIN {other})"),
            reason: "only RSA and EC keys are supported".to_owned(),
            command: format!("openssl pkey -in {} -noout -text", quoted(path)),
        }),
    }
}

fn wrong_content_for_key(path: &Path, blocks: &[PemBlock]) -> FileError {
    FileError::WrongContent {
        role: FileRole::PrivateKey,
        path: path.to_owned(),
        found: describe_blocks(blocks),
    }
}

fn wrong_content_for_certificate(path: &Path, role: FileRole, blocks: &[PemBlock]) -> FileError {
    FileError::WrongContent {
        role,
        path: path.to_owned(),
        found: describe_blocks(blocks),
    }
}

/// Names what the first PEM block holds, e.g. "a certificate (BEGIN CERTIFICATE)".
fn describe_blocks(blocks: &[PemBlock]) -> String {
    let Some(block) = blocks.first() else {
        return "no PEM block".to_owned();
    };
    let label = block.label.as_str();
    let what = match label {
        "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => "a certificate",
        "PUBLIC KEY" | "RSA PUBLIC KEY" => "a public key",
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => "a certificate signing request",
        "X509 CRL" => "a certificate revocation list",
        "ENCRYPTED PRIVATE KEY" => "an encrypted private key",
        "OPENSSH PRIVATE KEY" => "an OpenSSH private key",
        _ if label.ends_with("PRIVATE KEY") => "a private key",
        _ => "a PEM block",
    };
    format!("{what} (BEGIN {label})")
}

fn damaged(path: &Path, role: FileRole, error: &rustls::pki_types::pem::Error) -> FileError {
    let command = match role {
        FileRole::PrivateKey => format!("openssl pkey -in {} -noout", quoted(path)),
        FileRole::Certificate | FileRole::CaCertificates => inspect_certificate_command(path),
    };
    FileError::Damaged {
        role,
        path: path.to_owned(),
        reason: format!("invalid PEM: {error}"),
        command,
    }
}

fn inspect_certificate_command(path: &Path) -> String {
    format!("openssl x509 -in {} -noout -text", quoted(path))
}

/// The path in double quotes, for commands the user copies into a shell.
pub(crate) fn quoted(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_labels_and_encryption_headers() {
        let text = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
            -----BEGIN RSA PRIVATE KEY-----\r\nProc-Type: 4,ENCRYPTED\r\nDEK-Info: AES-128-CBC,00\r\n\r\nAAAA\r\n-----END RSA PRIVATE KEY-----\r\n";
        let blocks = scan_blocks(text);
        assert_eq!(
            blocks,
            vec![PemBlock {
                label: "RSA PRIVATE KEY".to_owned(),
                encrypted_header: true
            }]
        );
    }

    #[test]
    fn block_descriptions() {
        let block = |label: &str| PemBlock {
            label: label.to_owned(),
            encrypted_header: false,
        };
        assert_eq!(
            describe_blocks(&[block("CERTIFICATE")]),
            "a certificate (BEGIN CERTIFICATE)"
        );
        assert_eq!(
            describe_blocks(&[block("RSA PRIVATE KEY")]),
            "a private key (BEGIN RSA PRIVATE KEY)"
        );
        assert_eq!(
            describe_blocks(&[block("PUBLIC KEY")]),
            "a public key (BEGIN PUBLIC KEY)"
        );
        assert_eq!(describe_blocks(&[]), "no PEM block");
    }

    #[test]
    fn suffix_keeps_the_full_name() {
        assert_eq!(
            with_suffix(Path::new("/kit/thing.cert.der"), ".pem"),
            PathBuf::from("/kit/thing.cert.der.pem")
        );
    }

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x0a, 0xff, 0x00]), "0aff00");
    }
}
