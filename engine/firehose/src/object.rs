//! One delivered object's key, in AWS's format (its bytes: `compress.rs`).
//!
//! Key: `<evaluated prefix><delivery stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`
//! (AWS's "Amazon S3 object name format"), the time being the arrival of the
//! object's oldest record. The UUID and the prefix's random strings are
//! derived from where the object's records are (delivery stream incarnation,
//! shard, first offset), not drawn at random: an object rebuilt after a crash
//! gets the very key it was planned under.

use riffle_protocol::Error;
use sha2::{Digest, Sha256};

use crate::destination::S3Destination;
use crate::prefix::Context;
use crate::time::civil_of_ms;

/// Where an object's records come from: what its names are derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    pub stream: &'a str,
    /// The delivery stream's incarnation id.
    pub id: u64,
    pub shard: u32,
    /// The offset of the object's first record.
    pub start: u64,
}

impl Origin<'_> {
    /// 32 bytes that only this origin gives.
    fn seed(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.stream.as_bytes());
        h.update([0]);
        h.update(self.id.to_le_bytes());
        h.update(self.shard.to_le_bytes());
        h.update(self.start.to_le_bytes());
        h.finalize().into()
    }
}

/// A version-4-shaped UUID made from the first 16 of `bytes`.
fn uuid(bytes: &[u8; 32]) -> String {
    riffle_aws::ids::uuid_v4(bytes[..16].try_into().expect("16 bytes"))
}

/// The key of an object of `origin` whose oldest record arrived at
/// `oldest_arrival_ms`, delivered under configuration version `version`.
/// With dynamic partitioning, the prefix's partition keys stay expressions
/// (`partition::object_key` fills them in for each partition's object).
pub fn key(
    dest: &S3Destination,
    origin: Origin<'_>,
    version: u64,
    oldest_arrival_ms: i64,
) -> Result<String, Error> {
    named(dest, origin, version, oldest_arrival_ms, Kind::Object)
}

/// The key of the error object beside it (records that failed processing,
/// `error_type` such as `processing-failed`), under the error prefix, with
/// its own UUID, and no compression extension (error objects are JSON lines).
pub fn error_key(
    dest: &S3Destination,
    origin: Origin<'_>,
    version: u64,
    oldest_arrival_ms: i64,
    error_type: &str,
) -> Result<String, Error> {
    named(
        dest,
        origin,
        version,
        oldest_arrival_ms,
        Kind::Error(error_type),
    )
}

/// The key of the source-record backup of the object (`S3BackupMode`
/// Enabled; `backup` is the backup destination), with its own UUID.
pub fn backup_key(
    backup: &S3Destination,
    origin: Origin<'_>,
    version: u64,
    oldest_arrival_ms: i64,
) -> Result<String, Error> {
    named(backup, origin, version, oldest_arrival_ms, Kind::Backup)
}

#[derive(Clone, Copy)]
enum Kind<'a> {
    Object,
    Error(&'a str),
    Backup,
}

fn named(
    dest: &S3Destination,
    origin: Origin<'_>,
    version: u64,
    oldest_arrival_ms: i64,
    kind: Kind<'_>,
) -> Result<String, Error> {
    let mut seed = origin.seed();
    match kind {
        Kind::Object => {}
        Kind::Error(_) => seed = Sha256::digest([&seed[..], b"error"].concat()).into(),
        Kind::Backup => seed = Sha256::digest([&seed[..], b"backup"].concat()).into(),
    }
    // random-string draws: successive words of a counter-mode hash of the seed.
    let mut draw = 0u64;
    let mut random = || {
        draw += 1;
        let mut h = Sha256::new();
        h.update(seed);
        h.update(draw.to_le_bytes());
        let out: [u8; 32] = h.finalize().into();
        u64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
    };
    let partitioned = dest.dynamic_partitioning && matches!(kind, Kind::Object);
    let placeholders = |name: &str, from_lambda: bool| {
        partitioned.then(|| crate::partition::placeholder(from_lambda, name))
    };
    let (prefix, error_type) = match kind {
        Kind::Error(t) => (&dest.prefixes.error, t),
        Kind::Object | Kind::Backup => (&dest.prefixes.prefix, ""),
    };
    // Times in the destination's zone (CustomTimeZone), prefix and name alike.
    let local_ms = dest.zone.local_ms(oldest_arrival_ms);
    let prefix = prefix.evaluate(&mut Context {
        oldest_arrival_ms: local_ms,
        error_output_type: error_type,
        random: &mut random,
        partition_keys: &placeholders,
    })?;
    let t = civil_of_ms(local_ms);
    Ok(format!(
        "{prefix}{}-{version}-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{}{}",
        origin.stream,
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        uuid(&seed),
        match kind {
            Kind::Error(_) => "",
            Kind::Object | Kind::Backup => dest.file_extension.as_str(),
        }
    ))
}

/// The `X-Amz-Firehose-Request-Id` of request `chunk` of the object
/// `object_id` names: a GUID derived from both, the same on every retry and
/// after a restart.
pub fn request_id(object_id: &str, chunk: usize) -> String {
    let mut h = Sha256::new();
    h.update(object_id.as_bytes());
    h.update(b"request");
    h.update(chunk.to_le_bytes());
    uuid(&h.finalize().into())
}

/// The name of a ZIP archive's one entry: the object's file name without
/// its extension.
pub fn entry_name(key: &str) -> &str {
    let file = key.rsplit('/').next().unwrap_or(key);
    file.rsplit_once('.').map_or(file, |(stem, _)| stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::s3;
    use serde_json::json;

    fn dest(config: serde_json::Value) -> S3Destination {
        s3(config.as_object().unwrap()).unwrap()
    }

    #[test]
    fn keys_have_aws_format_and_depend_only_on_the_origin() {
        let d = dest(json!({"BucketARN": "arn:aws:s3:::abc"}));
        let origin = Origin {
            stream: "orders",
            id: 3,
            shard: 1,
            start: 500,
        };
        let at = 1_535_365_800_000; // 2018-08-27 10:30:00 UTC
        let k = key(&d, origin, 2, at).unwrap();
        let (head, uuid) = k.split_at(k.len() - 36);
        assert_eq!(head, "2018/08/27/10/orders-2-2018-08-27-10-30-00-");
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
        assert_eq!(key(&d, origin, 2, at).unwrap(), k);
        let other = Origin {
            start: 501,
            ..origin
        };
        assert_ne!(key(&d, other, 2, at).unwrap(), k);
        // Random strings too are the origin's.
        let d = dest(
            json!({"BucketARN": "arn:aws:s3:::abc", "Prefix": "r=!{firehose:random-string}/!{timestamp:yyyy}/",
                             "ErrorOutputPrefix": "e/!{firehose:error-output-type}/", "FileExtension": ".json"}),
        );
        let k = key(&d, origin, 1, at).unwrap();
        assert_eq!(k, key(&d, origin, 1, at).unwrap());
        assert!(k.starts_with("r=") && k.ends_with(".json"), "{k}");
        assert_ne!(k, key(&d, other, 1, at).unwrap());
    }

    #[test]
    fn error_objects_go_under_the_error_prefix() {
        let d = dest(json!({"BucketARN": "arn:aws:s3:::abc", "Prefix": "data/",
                            "CompressionFormat": "GZIP"}));
        let origin = Origin {
            stream: "s",
            id: 0,
            shard: 0,
            start: 0,
        };
        let at = 1_535_365_800_000;
        let k = key(&d, origin, 1, at).unwrap();
        let e = error_key(&d, origin, 1, at, "processing-failed").unwrap();
        assert!(
            k.starts_with("data/2018/08/27/10/s-1-") && k.ends_with(".gz"),
            "{k}"
        );
        assert!(
            e.starts_with("data/processing-failed/2018/08/27/10/s-1-"),
            "{e}"
        );
        assert!(!e.ends_with(".gz"));
        assert_ne!(k.rsplit('-').next(), e.rsplit('-').next());
    }

    #[test]
    fn zip_entries_are_named_after_the_object() {
        assert_eq!(entry_name("a/b/s-1-2018-uuid.zip"), "s-1-2018-uuid");
        assert_eq!(entry_name("plain"), "plain");
    }

    #[test]
    fn zones_name_objects_and_partitions_stay_expressions() {
        let origin = Origin {
            stream: "orders",
            id: 3,
            shard: 1,
            start: 500,
        };
        let at = 1_535_365_800_000; // 2018-08-27 10:30:00 UTC
        let tokyo = dest(json!({"BucketARN": "arn:aws:s3:::abc", "CustomTimeZone": "Asia/Tokyo"}));
        assert!(
            key(&tokyo, origin, 1, at)
                .unwrap()
                .starts_with("2018/08/27/19/orders-1-2018-08-27-19-30-00-")
        );
        let partitioned = dest(json!({"BucketARN": "arn:aws:s3:::abc",
            "DynamicPartitioningConfiguration": {"Enabled": true},
            "Prefix": "c=!{partitionKeyFromQuery:c}/!{timestamp:yyyy}/",
            "ErrorOutputPrefix": "e/!{firehose:error-output-type}/"}));
        let planned = key(&partitioned, origin, 1, at).unwrap();
        assert!(
            planned.starts_with("c=!{partitionKeyFromQuery:c}/2018/orders-1-"),
            "{planned}"
        );
        let mut keys = crate::partition::Keys::default();
        keys.add(false, [("c".to_string(), "acme".to_string())]);
        assert!(
            crate::partition::object_key(&planned, &keys)
                .unwrap()
                .starts_with("c=acme/2018/orders-1-")
        );
        // The backup's key differs from the object's even under one prefix.
        let plain = dest(json!({"BucketARN": "arn:aws:s3:::abc"}));
        assert_ne!(
            backup_key(&plain, origin, 1, at).unwrap(),
            key(&plain, origin, 1, at).unwrap()
        );
    }
}
