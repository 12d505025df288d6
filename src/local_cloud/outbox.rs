//! The local notifier: one RFC 5322 email file per alert in an outbox folder, and every
//! alert appended to `alerts.jsonl` in the same folder.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use temperature_alert::{Alert, Notification, email_body, email_subject, parse_timestamp};
use tracing::warn;

/// File, in the outbox folder, that lists every alert as one JSON object per line.
pub const JOURNAL_FILE: &str = "alerts.jsonl";

const SENDER: &str = "Sensor Emulator <alerts@sensor-emulator.localhost>";

/// Failures of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot create the outbox folder {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "email address {value:?} is invalid: {reason}; enter an address such as you@example.com"
    )]
    Address { value: String, reason: String },
    #[error("cannot build the email: {0}")]
    Email(String),
}

/// An outbox folder and the address its emails are written to.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    to: Mailbox,
}

/// What [`Outbox::read_journal`] found.
#[derive(Debug, Default)]
pub struct Journal {
    pub alerts: Vec<Alert>,
    /// Lines that were not alerts, left in place and skipped.
    pub skipped_lines: usize,
}

impl Outbox {
    /// Opens the outbox in `dir`, creating the folder when missing.
    pub fn open(dir: PathBuf, to: &str) -> Result<Self, OutboxError> {
        let to = parse_mailbox(to)?;
        fs::create_dir_all(&dir).map_err(|source| OutboxError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir, to })
    }

    /// The outbox folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the alert journal.
    #[must_use]
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL_FILE)
    }

    /// Writes the email for `alert`, records the outcome in its `notification`, and appends
    /// the alert to the journal with an fsync. A failed email is recorded as failed and
    /// still journaled; only a failed journal write is returned as an error.
    pub fn deliver(&self, alert: &mut Alert) -> Result<(), OutboxError> {
        alert.notification = match self.write_email(alert) {
            Ok(name) => Notification::Sent { id: name },
            Err(error) => {
                warn!(%error, device_id = %alert.device_id, "alert email not written");
                Notification::Failed {
                    error: error.to_string(),
                }
            }
        };
        self.append_journal(alert)
    }

    fn write_email(&self, alert: &Alert) -> Result<String, OutboxError> {
        let sent_at =
            parse_timestamp(&alert.alerted_at).map_or_else(|_| SystemTime::now(), SystemTime::from);
        let sender = parse_mailbox(SENDER)?;
        let message = Message::builder()
            .from(sender)
            .to(self.to.clone())
            .subject(email_subject(alert.kind))
            .date(sent_at)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(email_body(alert))
            .map_err(|error| OutboxError::Email(error.to_string()))?;
        let bytes = message.formatted();
        let stem = file_stem(alert);
        for attempt in 1..=1000 {
            let name = if attempt == 1 {
                format!("{stem}.eml")
            } else {
                format!("{stem}-{attempt}.eml")
            };
            let path = self.dir.join(&name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(&bytes)
                        .and_then(|()| file.sync_all())
                        .map_err(|source| OutboxError::Write { path, source })?;
                    return Ok(name);
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(OutboxError::Write { path, source }),
            }
        }
        Err(OutboxError::Write {
            path: self.dir.join(format!("{stem}.eml")),
            source: std::io::Error::other("1000 emails with this name already exist"),
        })
    }

    fn append_journal(&self, alert: &Alert) -> Result<(), OutboxError> {
        let path = self.journal_path();
        let mut line =
            serde_json::to_vec(alert).map_err(|error| OutboxError::Email(error.to_string()))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| OutboxError::Write {
                path: path.clone(),
                source,
            })?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|source| OutboxError::Write { path, source })
    }

    /// Reads every alert in the journal, oldest first. A missing journal is empty.
    pub fn read_journal(&self) -> Result<Journal, OutboxError> {
        let path = self.journal_path();
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Journal::default());
            }
            Err(source) => return Err(OutboxError::Read { path, source }),
        };
        let mut journal = Journal::default();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|source| OutboxError::Read {
                path: path.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Alert>(&line) {
                Ok(alert) => journal.alerts.push(alert),
                Err(_) => journal.skipped_lines += 1,
            }
        }
        Ok(journal)
    }
}

fn parse_mailbox(value: &str) -> Result<Mailbox, OutboxError> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|error| OutboxError::Address {
            value: value.to_owned(),
            reason: error.to_string(),
        })
}

/// `2026-12-04T161713.042Z-raised-WeatherStationEmulator`: sortable by time, and safe as a
/// file name on Windows too.
fn file_stem(alert: &Alert) -> String {
    let time: String = alert.alerted_at.chars().filter(|c| *c != ':').collect();
    let device: String = alert
        .device_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{time}-{}-{device}", alert.kind.as_str())
}

#[cfg(test)]
mod tests {
    use temperature_alert::{AlertKind, AlertSource, ReadingEvent};
    use time::macros::datetime;

    use super::*;

    fn alert(kind: AlertKind, device: &str) -> Alert {
        let event = ReadingEvent {
            device_id: device.into(),
            temperature: 40.5,
            seq: Some(4),
            session: None,
            timestamp: Some("2026-12-04T10:00:03.000Z".into()),
            event_time: None,
        };
        Alert::new(
            kind,
            &event,
            35.0,
            34.0,
            datetime!(2026-12-04 10:00:03.25 UTC),
            AlertSource::Local,
        )
    }

    #[test]
    fn deliver_writes_email_and_journal() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().join("outbox"), "ops@example.com").unwrap();
        let mut raised = alert(AlertKind::Raised, "Weather/Station 1");
        outbox.deliver(&mut raised).unwrap();
        let Notification::Sent { id } = &raised.notification else {
            panic!("not sent: {:?}", raised.notification);
        };
        assert_eq!(id, "2026-12-04T100003.250Z-raised-Weather_Station_1.eml");
        let email = fs::read_to_string(outbox.dir().join(id)).unwrap();
        assert!(email.contains("Subject: Temperature Alert\r\n"), "{email}");
        assert!(email.contains("To: ops@example.com\r\n"));
        assert!(email.contains("Date: Fri, 04 Dec 2026 10:00:03 +0000\r\n"));
        assert!(email.contains("Message-ID: <"));
        assert!(email.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
        let body = decode_quoted_printable(email.split_once("\r\n\r\n").unwrap().1);
        assert!(
            body.starts_with(
                "The temperature of Weather/Station 1 is 40.50 °C, above the threshold of 35.00 °C."
            ),
            "{body}"
        );

        let mut cleared = alert(AlertKind::Cleared, "Weather/Station 1");
        outbox.deliver(&mut cleared).unwrap();
        let journal = outbox.read_journal().unwrap();
        assert_eq!(journal.alerts, vec![raised, cleared]);
        assert_eq!(journal.skipped_lines, 0);
    }

    /// Undoes the quoted-printable encoding lettre chooses for a body with "°C".
    fn decode_quoted_printable(text: &str) -> String {
        let joined = text.replace("=\r\n", "");
        let mut bytes = Vec::new();
        let mut rest = joined.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first == b'=' && tail.len() >= 2 {
                let hex = std::str::from_utf8(&tail[..2]).unwrap();
                bytes.push(u8::from_str_radix(hex, 16).unwrap());
                rest = &tail[2..];
            } else {
                bytes.push(first);
                rest = tail;
            }
        }
        String::from_utf8(bytes).unwrap().replace("\r\n", "\n")
    }

    #[test]
    fn same_second_alerts_get_distinct_files() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().to_path_buf(), "ops@example.com").unwrap();
        let mut first = alert(AlertKind::Raised, "a");
        let mut second = alert(AlertKind::Raised, "a");
        outbox.deliver(&mut first).unwrap();
        outbox.deliver(&mut second).unwrap();
        assert_ne!(first.notification, second.notification);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn journal_skips_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path().to_path_buf(), "ops@example.com").unwrap();
        let mut raised = alert(AlertKind::Raised, "a");
        outbox.deliver(&mut raised).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(outbox.journal_path())
            .unwrap();
        file.write_all(b"{\"kind\": \"rais\n\n").unwrap();
        let journal = outbox.read_journal().unwrap();
        assert_eq!(journal.alerts.len(), 1);
        assert_eq!(journal.skipped_lines, 1);
    }

    #[test]
    fn invalid_address_names_value() {
        let dir = tempfile::tempdir().unwrap();
        let error = Outbox::open(dir.path().to_path_buf(), "not an address").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("email address \"not an address\" is invalid"),
            "{error}"
        );
    }
}
