//! Loading certificates and keys: every accepted format loads, and every rejected file
//! gives a message that names the file, what it contains and the fix. Also checks which
//! ALPN protocols the AWS profile offers, against a small rustls server.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests fail the test on any error"
)]

mod tls_support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sensor_emulator::settings::AwsSettings;
use sensor_emulator::tls::files::{
    FileError, FileRole, KeyFormat, load_certificates, load_private_key,
};
use sensor_emulator::tls::remote::RemoteProfile;
use sensor_emulator::tls::{AWS_ALPN_PROTOCOL, ClientIdentity, TlsError, TlsFiles};
use time::{Duration, OffsetDateTime};
use tls_support::{Identity, TestPki, openssl, path_str};

const BASE64_BODY: &str = "MIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIc2FsdHNhbHQCAggA\nMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBCqqqqqqqqqqqqqqqqqqqqq\n";

fn write(dir: &Path, name: &str, contents: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn pem_block(label: &str, headers: &str) -> String {
    format!("-----BEGIN {label}-----\n{headers}{BASE64_BODY}-----END {label}-----\n")
}

fn key_error(path: &Path) -> String {
    load_private_key(path)
        .expect_err("the key is rejected")
        .to_string()
}

fn certificate_error(path: &Path) -> String {
    load_certificates(path, FileRole::Certificate)
        .expect_err("the certificate is rejected")
        .to_string()
}

fn assert_contains_all(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing in: {message}");
    }
}

#[test]
fn rejected_key_files_name_file_format_and_fix() {
    let pki = TestPki::new("files");
    let client = pki.client_ec("station");
    let dir = pki.dir.path();
    let certificate_text = std::fs::read(&client.certificate).unwrap();
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "encrypted.key",
            pem_block("ENCRYPTED PRIVATE KEY", "").into_bytes(),
            vec![
                "encrypted PKCS#8 private key (BEGIN ENCRYPTED PRIVATE KEY)",
                "openssl pkey -in",
            ],
        ),
        (
            "legacy.key",
            pem_block(
                "RSA PRIVATE KEY",
                "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0011\n\n",
            )
            .into_bytes(),
            vec!["Proc-Type: 4,ENCRYPTED", "openssl pkey -in"],
        ),
        (
            "id_ed25519",
            pem_block("OPENSSH PRIVATE KEY", "").into_bytes(),
            vec![
                "OpenSSH key (BEGIN OPENSSH PRIVATE KEY)",
                "ssh-keygen -p -m PKCS8 -f",
                ".private.key",
            ],
        ),
        (
            "swapped.key",
            certificate_text.clone(),
            vec![
                "contains a certificate (BEGIN CERTIFICATE), not a private key",
                ".private.key",
            ],
        ),
        (
            "station.public.key",
            pem_block("PUBLIC KEY", "").into_bytes(),
            vec!["contains a public key (BEGIN PUBLIC KEY), not a private key"],
        ),
        (
            "key.der",
            pki_key_der(),
            vec!["binary DER private key", "openssl pkey -inform DER -in"],
        ),
        ("empty.key", Vec::new(), vec!["is empty"]),
        ("blank.key", b"\r\n  \n".to_vec(), vec!["is empty"]),
        (
            "notes.txt",
            b"my private key is somewhere else".to_vec(),
            vec!["neither PEM nor DER", "-----BEGIN"],
        ),
        (
            "dsa.key",
            pem_block("DSA PRIVATE KEY", "").into_bytes(),
            vec!["unsupported type (BEGIN DSA PRIVATE KEY)"],
        ),
    ];
    let mut messages = Vec::new();
    for (name, contents, parts) in cases {
        let path = write(dir, name, &contents);
        let message = key_error(&path);
        assert!(
            message.contains(path_str(&path)),
            "{name}: no path in {message}"
        );
        assert_contains_all(&message, &parts);
        messages.push(message.replace(path_str(&path), "FILE"));
    }
    // Each kind of bad input gets its own message; the empty and the blank file are one kind.
    let distinct: std::collections::HashSet<_> = messages.iter().collect();
    assert_eq!(distinct.len(), messages.len() - 1, "{messages:#?}");
}

fn pki_key_der() -> Vec<u8> {
    rcgen::KeyPair::generate().unwrap().serialize_der()
}

#[test]
fn rejected_certificate_files_name_file_format_and_fix() {
    let pki = TestPki::new("files");
    let client = pki.client_ec("station");
    let dir = pki.dir.path();
    let certificate_der =
        CertificateDer::from_pem_slice(&std::fs::read(&client.certificate).unwrap()).unwrap();
    let der_path = write(dir, "station.cert.der", certificate_der.as_ref());
    let message = certificate_error(&der_path);
    assert_contains_all(
        &message,
        &[
            path_str(&der_path),
            "binary DER certificate",
            "openssl x509 -inform DER -in",
        ],
    );

    let message = certificate_error(&client.key);
    assert_contains_all(
        &message,
        &[
            path_str(&client.key),
            "contains a private key (BEGIN PRIVATE KEY), not a device certificate",
            ".cert.pem",
        ],
    );

    let empty = write(dir, "empty.pem", b"");
    assert_contains_all(
        &certificate_error(&empty),
        &["device certificate file", "is empty"],
    );

    let broken = write(
        dir,
        "broken.pem",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    assert_contains_all(
        &certificate_error(&broken),
        &["is damaged", "openssl x509 -in"],
    );

    let missing = dir.join("missing.pem");
    assert_contains_all(
        &certificate_error(&missing),
        &["cannot read", path_str(&missing)],
    );

    let ca_as_device = load_certificates(&pki.ca_file, FileRole::Certificate).unwrap();
    let identity = ClientIdentity {
        certificates: ca_as_device,
        key: load_private_key(&client.key).unwrap(),
    };
    let error = identity.check_is_device_certificate().unwrap_err();
    assert!(
        matches!(error, TlsError::CaAsDeviceCertificate { .. }),
        "{error}"
    );
}

#[test]
fn crlf_and_byte_order_mark_are_tolerated() {
    let pki = TestPki::new("files");
    let client = pki.client_ec("station");
    let dir = pki.dir.path();
    let certificate = std::fs::read_to_string(&client.certificate).unwrap();
    let key = std::fs::read_to_string(&client.key).unwrap();
    let crlf_certificate = write(
        dir,
        "crlf.cert.pem",
        certificate.replace('\n', "\r\n").as_bytes(),
    );
    let bom_key = write(
        dir,
        "bom.private.key",
        format!("\u{feff}{}", key.replace('\n', "\r\n")).as_bytes(),
    );
    let identity = ClientIdentity::load(&crlf_certificate, &bom_key).unwrap();
    assert_eq!(identity.key.format, KeyFormat::Pkcs8);
    identity.check_all(OffsetDateTime::now_utc()).unwrap();
}

#[test]
fn mismatched_key_and_expired_certificate_fail_at_load() {
    let pki = TestPki::new("files");
    let station = pki.client_ec("station");
    let other = pki.client_ec("other");
    let files = TlsFiles {
        ca_file: Some(pki.ca_file.clone()),
        client: Some((station.certificate.clone(), other.key.clone())),
        alpn: None,
    };
    let error = files.client_config(OffsetDateTime::now_utc()).unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    assert_contains_all(
        &error.to_string(),
        &[
            path_str(&station.certificate),
            path_str(&other.key),
            "does not belong",
            "openssl x509 -in",
        ],
    );

    let now = OffsetDateTime::now_utc();
    let expired = pki.client_ec_valid(
        "expired",
        Some((now - Duration::days(400), now - Duration::days(35))),
    );
    let files = TlsFiles {
        ca_file: Some(pki.ca_file.clone()),
        client: Some((expired.certificate.clone(), expired.key.clone())),
        alpn: None,
    };
    let error = files.client_config(now).unwrap_err();
    assert!(matches!(error, TlsError::Expired { .. }), "{error}");
    assert_contains_all(
        &error.to_string(),
        &[
            path_str(&expired.certificate),
            "expired on",
            "create a new certificate",
        ],
    );

    let future = pki.client_ec_valid(
        "future",
        Some((now + Duration::days(2), now + Duration::days(400))),
    );
    let files = TlsFiles {
        ca_file: Some(pki.ca_file.clone()),
        client: Some((future.certificate.clone(), future.key.clone())),
        alpn: None,
    };
    let error = files.client_config(now).unwrap_err();
    assert!(matches!(error, TlsError::NotYetValid { .. }), "{error}");
    assert!(error.to_string().contains("check the clock"), "{error}");
}

#[test]
#[ignore = "needs openssl; run by .ci/run"]
fn openssl_key_formats_load() {
    let pki = TestPki::new("formats");
    let rsa = pki.client_rsa("rsa-station");
    let text = std::fs::read_to_string(&rsa.key).unwrap();
    assert!(
        text.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{text}"
    );
    let identity = ClientIdentity::load(&rsa.certificate, &rsa.key).unwrap();
    assert_eq!(identity.key.format, KeyFormat::Pkcs1Rsa);
    identity.check_all(OffsetDateTime::now_utc()).unwrap();

    let ec = pki.client_ec("ec-station");
    let sec1 = pki.path("ec-station.sec1.key");
    openssl(&[
        "pkey",
        "-in",
        path_str(&ec.key),
        "-traditional",
        "-out",
        path_str(&sec1),
    ]);
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    let identity = ClientIdentity::load(&ec.certificate, &sec1).unwrap();
    assert_eq!(identity.key.format, KeyFormat::Sec1Ec);
    identity.check_all(OffsetDateTime::now_utc()).unwrap();
}

#[test]
#[ignore = "needs openssl; run by .ci/run"]
fn encrypted_key_message_gives_a_working_command() {
    let pki = TestPki::new("encrypted");
    let ec = pki.client_ec("station");
    let encrypted = pki.path("station.encrypted.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        path_str(&ec.key),
        "-out",
        path_str(&encrypted),
        "-passout",
        "pass:secret",
    ]);
    let error = load_private_key(&encrypted).unwrap_err();
    let FileError::EncryptedKey { command, .. } = &error else {
        panic!("{error}");
    };
    // The suggested command, with the passphrase given on the command line.
    let decrypted = pki.path("station.encrypted.key.decrypted.key");
    assert!(command.contains(path_str(&decrypted)), "{command}");
    openssl(&[
        "pkey",
        "-in",
        path_str(&encrypted),
        "-out",
        path_str(&decrypted),
        "-passin",
        "pass:secret",
    ]);
    let identity = ClientIdentity::load(&ec.certificate, &decrypted).unwrap();
    identity.check_key_matches().unwrap();
}

/// Records the ALPN protocols of each `ClientHello`, then fails the handshake.
#[derive(Debug, Default)]
struct AlpnRecorder {
    offered: Mutex<Vec<Vec<Vec<u8>>>>,
}

impl ResolvesServerCert for AlpnRecorder {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let protocols = client_hello
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        self.offered.lock().unwrap().push(protocols);
        None
    }
}

/// Connects with the AWS profile's TLS configuration for `port` to a rustls server on a
/// free loopback port and returns the ALPN protocols it saw.
async fn offered_alpn(aws_port: u16, pki: &TestPki, client: &Identity) -> Vec<Vec<u8>> {
    let recorder = Arc::new(AlpnRecorder::default());
    let server_config =
        rustls::ServerConfig::builder_with_provider(sensor_emulator::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(socket).await;
    });

    let aws = AwsSettings {
        endpoint: "localhost".to_owned(),
        port: aws_port,
        certificate_file: client.certificate.clone(),
        private_key_file: client.key.clone(),
        ca_file: pki.ca_file.clone(),
        ..AwsSettings::default()
    };
    let profile = RemoteProfile::aws(&aws);
    let config = profile
        .tls
        .as_ref()
        .unwrap()
        .client_config(OffsetDateTime::now_utc())
        .unwrap();
    let socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let handshake = tokio_rustls::TlsConnector::from(config)
        .connect(name, socket)
        .await;
    assert!(
        handshake.is_err(),
        "the recording server has no certificate"
    );
    server.await.unwrap();
    let offered = recorder.offered.lock().unwrap();
    assert_eq!(offered.len(), 1);
    offered[0].clone()
}

#[tokio::test]
async fn port_443_offers_aws_alpn_and_8883_none() {
    let pki = TestPki::new("alpn");
    let client = pki.client_ec("station");
    assert_eq!(
        offered_alpn(443, &pki, &client).await,
        vec![AWS_ALPN_PROTOCOL.to_vec()]
    );
    assert!(offered_alpn(8883, &pki, &client).await.is_empty());
}
