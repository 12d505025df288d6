//! [`StateStore`] on a DynamoDB table with the partition key `deviceId` (string).
//!
//! One item per device. The alarm state is kept in plain attributes (`raised`, `hotStreak`,
//! `raisedAtMs`, `lastNotifiedMs`) so it reads well in the console. `pending` stores
//! the [`PendingAlert`] as JSON. `version` guards every write.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::error::ServiceError;
use super::store::{PendingAlert, SaveOutcome, StateStore, StoreError, StoredAlarm};
use crate::{AlarmState, Decision, format_timestamp};

/// Name of the table's partition key.
pub const KEY: &str = "deviceId";

type Item = HashMap<String, AttributeValue>;

/// Alarm states in one DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    #[must_use]
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

impl StateStore for DynamoStore {
    async fn load(&self, device_id: &str) -> Result<StoredAlarm, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(device_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| ServiceError::from_sdk("dynamodb:GetItem", &error))?;
        match output.item {
            Some(item) => from_item(&item),
            None => Ok(StoredAlarm::default()),
        }
    }

    async fn save(
        &self,
        device_id: &str,
        expected_version: u64,
        record: &StoredAlarm,
    ) -> Result<SaveOutcome, StoreError> {
        let version = expected_version + 1;
        let item = to_item(device_id, version, record)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        // DynamoDB rejects expression attribute names that the expression does not use, so
        // each branch defines only its own.
        let request = if expected_version == 0 {
            request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", KEY)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", number(expected_version))
        };
        match request.send().await {
            Ok(_) => Ok(SaveOutcome::Saved { version }),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(SaveOutcome::Conflict)
            }
            Err(error) => Err(ServiceError::from_sdk("dynamodb:PutItem", &error).into()),
        }
    }
}

fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item(device_id: &str, version: u64, record: &StoredAlarm) -> Result<Item, StoreError> {
    let state = &record.state;
    let mut item = Item::new();
    item.insert(KEY.to_owned(), AttributeValue::S(device_id.to_owned()));
    item.insert("version".to_owned(), number(version));

    item.insert("raised".to_owned(), AttributeValue::Bool(state.raised));
    item.insert("hotStreak".to_owned(), number(state.hot_streak));
    if let Some(at) = state.raised_at_ms {
        item.insert("raisedAtMs".to_owned(), number(at));
    }
    if let Some(at) = state.last_notified_ms {
        item.insert("lastNotifiedMs".to_owned(), number(at));
    }
    if let Some(pending) = &record.pending {
        let json = serde_json::to_string(pending).map_err(|error| StoreError::InvalidRecord {
            detail: format!("the pending alert does not serialize to JSON: {error}"),
        })?;
        item.insert("pending".to_owned(), AttributeValue::S(json));
    }

    if let Some(id) = &record.last_request_id {
        item.insert("lastRequestId".to_owned(), AttributeValue::S(id.clone()));
    }
    if let Some(key) = &record.last_reading {
        item.insert("lastReading".to_owned(), AttributeValue::S(key.clone()));
    }
    if let Some(decision) = record.last_decision {
        let text = decision.as_str().to_owned();
        item.insert("lastDecision".to_owned(), AttributeValue::S(text));
    }

    let now = format_timestamp(OffsetDateTime::now_utc());
    item.insert("updatedAt".to_owned(), AttributeValue::S(now));
    Ok(item)
}

fn from_item(item: &Item) -> Result<StoredAlarm, StoreError> {
    let state = AlarmState {
        raised: matches!(item.get("raised"), Some(AttributeValue::Bool(true))),
        hot_streak: optional_number(item, "hotStreak")?.unwrap_or(0),
        raised_at_ms: optional_number(item, "raisedAtMs")?,
        last_notified_ms: optional_number(item, "lastNotifiedMs")?,
    };
    let pending = match optional_string(item, "pending")? {
        Some(json) => Some(
            serde_json::from_str::<PendingAlert>(&json).map_err(|error| {
                StoreError::InvalidRecord {
                    detail: format!("attribute \"pending\" is not a pending alert: {error}"),
                }
            })?,
        ),
        None => None,
    };
    let last_decision = match optional_string(item, "lastDecision")? {
        Some(text) => Some(parse_decision(&text)?),
        None => None,
    };
    Ok(StoredAlarm {
        version: optional_number(item, "version")?.ok_or_else(|| StoreError::InvalidRecord {
            detail: "attribute \"version\" is missing".to_owned(),
        })?,
        state,
        pending,
        last_request_id: optional_string(item, "lastRequestId")?,
        last_reading: optional_string(item, "lastReading")?,
        last_decision,
    })
}

fn optional_number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => {
            text.parse()
                .map(Some)
                .map_err(|_| StoreError::InvalidRecord {
                    detail: format!("attribute {name:?} is {text}, out of range"),
                })
        }
        Some(_) => Err(StoreError::InvalidRecord {
            detail: format!("attribute {name:?} is not a number"),
        }),
    }
}

fn optional_string(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text.clone())),
        Some(_) => Err(StoreError::InvalidRecord {
            detail: format!("attribute {name:?} is not a string"),
        }),
    }
}

fn parse_decision(text: &str) -> Result<Decision, StoreError> {
    match text {
        "raised" => Ok(Decision::Raised),
        "reminder" => Ok(Decision::Reminder),
        "cleared" => Ok(Decision::Cleared),
        "unchanged" => Ok(Decision::Unchanged),
        other => Err(StoreError::InvalidRecord {
            detail: format!("attribute \"lastDecision\" is {other:?}, not a decision"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertKind, AlertSource, Notification, parse_event};

    #[test]
    fn item_round_trip() {
        let event = parse_event(&serde_json::json!({"temperature": 40, "deviceId": "d1"})).unwrap();
        let alert = crate::Alert::new(
            AlertKind::Raised,
            &event,
            35.0,
            34.0,
            OffsetDateTime::UNIX_EPOCH,
            AlertSource::Aws,
        );
        let record = StoredAlarm {
            version: 0,
            state: AlarmState {
                raised: true,
                hot_streak: 0,
                raised_at_ms: Some(1_000),
                last_notified_ms: Some(2_000),
            },
            pending: Some(PendingAlert {
                alert,
                decided_by: "req-1".into(),
                owner: "req-2".into(),
                lease_until_ms: 99,
                email_message_id: Some("m-1".into()),
                attempts: 2,
                last_error: None,
            }),
            last_request_id: Some("req-1".into()),
            last_reading: Some("s/1".into()),
            last_decision: Some(Decision::Raised),
        };
        let item = to_item("d1", 7, &record).unwrap();
        assert_eq!(item.get(KEY), Some(&AttributeValue::S("d1".into())));
        let back = from_item(&item).unwrap();
        assert_eq!(back.version, 7);
        assert_eq!(
            StoredAlarm {
                version: 0,
                ..back.clone()
            },
            record
        );
        let pending = back.pending.unwrap();
        assert_eq!(pending.alert.notification, Notification::Pending);
    }

    #[test]
    fn item_invalid_attributes_rejected() {
        let mut item = to_item("d1", 1, &StoredAlarm::default()).unwrap();
        item.insert("hotStreak".into(), AttributeValue::S("three".into()));
        let error = from_item(&item).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the stored record is invalid: attribute \"hotStreak\" is not a number"
        );

        let mut item = to_item("d1", 1, &StoredAlarm::default()).unwrap();
        item.remove("version");
        assert!(
            from_item(&item)
                .unwrap_err()
                .to_string()
                .contains("\"version\" is missing")
        );

        let mut item = to_item("d1", 1, &StoredAlarm::default()).unwrap();
        item.insert("pending".into(), AttributeValue::S("{}".into()));
        assert!(
            from_item(&item)
                .unwrap_err()
                .to_string()
                .contains("not a pending alert")
        );
    }
}
