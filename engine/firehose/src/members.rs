//! Configuration members every destination kind shares, read one way:
//! `BufferingHints`, `RetryOptions`, the S3 backup bucket (`S3Configuration`)
//! and its defaults, an update's nested members merged into the stored ones,
//! and the refusal of `SecretsManagerConfiguration`.

use riffle_protocol::Error;
use serde_json::{Map, Value};

use crate::destination::{S3Destination, with_s3_defaults};

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// `BufferingHints` in bytes and milliseconds: both or neither given.
pub(crate) fn buffering(
    config: &Map<String, Value>,
    size_mib_default: u64,
    interval_s_default: u64,
) -> Result<(u64, u64), Error> {
    let hints = config.get("BufferingHints");
    let member = |name| hints.and_then(|h| h.get(name)).and_then(Value::as_u64);
    let (size, interval) = match (member("SizeInMBs"), member("IntervalInSeconds")) {
        (Some(s), Some(i)) => (s, i),
        (None, None) => (size_mib_default, interval_s_default),
        _ => {
            return Err(invalid(
                "BufferingHints must specify both SizeInMBs and IntervalInSeconds, or neither.",
            ));
        }
    };
    Ok((size * 1024 * 1024, interval * 1000))
}

/// `RetryOptions.DurationInSeconds` in milliseconds.
pub(crate) fn retry_ms(config: &Map<String, Value>, default_s: u64) -> u64 {
    config
        .get("RetryOptions")
        .and_then(|r| r.get("DurationInSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(default_s)
        * 1000
}

/// The backup bucket (`S3Configuration`), required.
pub(crate) fn backup(config: &Map<String, Value>) -> Result<S3Destination, Error> {
    let s3 = config
        .get("S3Configuration")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid("S3Configuration is required: failed records are backed up there")
        })?;
    crate::destination::s3(s3)
}

/// The backup's stored members: `S3Configuration` with S3's defaults (it has
/// no backup mode of its own).
pub(crate) fn with_backup_defaults(mut config: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Object(s3)) = config.remove("S3Configuration") {
        let mut s3 = with_s3_defaults(s3);
        s3.remove("S3BackupMode");
        config.insert("S3Configuration".into(), Value::Object(s3));
    }
    config
}

/// The stored configuration after an update: the update members `nested`
/// names (`S3Update`, ...) change the members of the stored structure they
/// map to (`S3Configuration`, ...); every other member replaces the stored one.
pub(crate) fn updated(
    current: &Map<String, Value>,
    update: &Map<String, Value>,
    nested: &[(&str, &str)],
) -> Map<String, Value> {
    let mut config = current.clone();
    for (k, v) in update {
        let stored = nested.iter().find(|(u, _)| u == k).map(|(_, s)| *s);
        match (stored, v) {
            (Some(stored), Value::Object(fields)) => {
                let target = config
                    .entry(stored)
                    .or_insert_with(|| Value::Object(Map::new()));
                match target {
                    Value::Object(target) => target.extend(fields.clone()),
                    other => *other = v.clone(),
                }
            }
            _ => {
                config.insert(k.clone(), v.clone());
            }
        }
    }
    config
}

/// The backup's update (`S3Update` into `S3Configuration`), which every
/// destination with a backup bucket has.
pub(crate) const S3_UPDATE: (&str, &str) = ("S3Update", "S3Configuration");

/// Refuses `SecretsManagerConfiguration` (Riffle has no Secrets Manager);
/// `instead` says what to give.
pub(crate) fn refuse_secrets_manager(
    config: &Map<String, Value>,
    instead: &str,
) -> Result<(), Error> {
    let enabled = config
        .get("SecretsManagerConfiguration")
        .and_then(|c| c.get("Enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match enabled {
        true => Err(invalid(format!(
            "Riffle has no Secrets Manager: give {instead} instead of SecretsManagerConfiguration."
        ))),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn shared_members_are_read_one_way() {
        let c = map(
            json!({"BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 3},
                           "RetryOptions": {"DurationInSeconds": 7}}),
        );
        assert_eq!(buffering(&c, 5, 300).unwrap(), (2 << 20, 3000));
        assert_eq!(buffering(&Map::new(), 5, 300).unwrap(), (5 << 20, 300_000));
        assert!(buffering(&map(json!({"BufferingHints": {"SizeInMBs": 1}})), 5, 300).is_err());
        assert_eq!(retry_ms(&c, 60), 7000);
        assert_eq!(retry_ms(&Map::new(), 60), 60_000);
        assert!(backup(&c).unwrap_err().message.contains("S3Configuration"));
        let secret = map(json!({"SecretsManagerConfiguration": {"Enabled": true}}));
        assert!(
            refuse_secrets_manager(&secret, "HECToken")
                .unwrap_err()
                .message
                .contains("HECToken")
        );
        assert!(refuse_secrets_manager(&c, "x").is_ok());
    }

    #[test]
    fn updates_merge_nested_members_and_replace_the_rest() {
        let current = map(json!({"S3Configuration": {"BucketARN": "b", "Prefix": "p/"}, "A": 1}));
        let u = updated(
            &current,
            &map(json!({"S3Update": {"Prefix": "q/"}, "A": 2})),
            &[S3_UPDATE],
        );
        assert_eq!(
            u["S3Configuration"],
            json!({"BucketARN": "b", "Prefix": "q/"})
        );
        assert_eq!(u["A"], 2);
    }
}
