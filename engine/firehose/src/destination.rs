//! Destination configurations: what CreateDeliveryStream and UpdateDestination
//! accept, stored as given with AWS's defaults filled in, described back in
//! AWS's shapes, and read into the typed form the delivery runs on.
//!
//! Served: `ExtendedS3DestinationConfiguration` and the deprecated
//! `S3DestinationConfiguration` (both an `ExtendedS3` destination), with every
//! `CompressionFormat`, dynamic partitioning, `S3BackupMode` Enabled and
//! `CustomTimeZone`; `HttpEndpointDestinationConfiguration`. Every other
//! destination and feature is refused with a clear InvalidArgumentException
//! naming it, never accepted and ignored.

use riffle_protocol::Error;
use serde_json::{Map, Value, json};

use crate::members;
use crate::prefix::{self, Prefixes};
use crate::state::Destination;

/// AWS's S3 defaults: 5 MiB or 300 s, whichever comes first.
pub const S3_SIZE_MIB_DEFAULT: u64 = 5;
pub const S3_INTERVAL_S_DEFAULT: u64 = 300;

/// The kinds of destination AWS has, by the name of their configuration member.
pub const CONFIG_MEMBERS: &[(&str, &str)] = &[
    ("S3DestinationConfiguration", "S3"),
    ("ExtendedS3DestinationConfiguration", "ExtendedS3"),
    ("RedshiftDestinationConfiguration", "Redshift"),
    ("ElasticsearchDestinationConfiguration", "Elasticsearch"),
    (
        "AmazonopensearchserviceDestinationConfiguration",
        "Amazonopensearchservice",
    ),
    (
        "AmazonOpenSearchServerlessDestinationConfiguration",
        "AmazonOpenSearchServerless",
    ),
    ("SplunkDestinationConfiguration", "Splunk"),
    ("HttpEndpointDestinationConfiguration", "HttpEndpoint"),
    ("SnowflakeDestinationConfiguration", "Snowflake"),
    ("IcebergDestinationConfiguration", "Iceberg"),
];

/// Object compression (`CompressionFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    /// A ZIP archive holding the object as its one entry.
    Zip,
    /// Snappy's framing format.
    Snappy,
    /// Hadoop's block format around raw Snappy blocks.
    HadoopSnappy,
}

impl Compression {
    /// AWS's `CompressionFormat` name.
    pub fn aws_name(self) -> &'static str {
        match self {
            Compression::Uncompressed => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
            Compression::Zip => "ZIP",
            Compression::Snappy => "Snappy",
            Compression::HadoopSnappy => "HADOOP_SNAPPY",
        }
    }

    /// The compression AWS names so.
    pub fn of_aws_name(name: &str) -> Option<Compression> {
        [
            Compression::Uncompressed,
            Compression::Gzip,
            Compression::Zip,
            Compression::Snappy,
            Compression::HadoopSnappy,
        ]
        .into_iter()
        .find(|c| c.aws_name() == name)
    }

    /// The extension AWS gives objects when `FileExtension` is not set.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => ".gz",
            Compression::Zip => ".zip",
            Compression::Snappy | Compression::HadoopSnappy => ".snappy",
        }
    }
}

/// An S3 destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Destination {
    pub bucket: String,
    pub prefixes: Prefixes,
    pub size_bytes: u64,
    pub interval_ms: u64,
    pub compression: Compression,
    pub file_extension: String,
    /// `DynamicPartitioningConfiguration.Enabled`: records go to the object
    /// of their partition keys' prefix.
    pub dynamic_partitioning: bool,
    /// `CustomTimeZone`: the zone of prefixes' and names' times.
    pub zone: crate::time::Zone,
    /// `S3BackupMode` Enabled: the source records (before processing) also
    /// go to this destination.
    pub backup: Option<Box<S3Destination>>,
    /// `DataFormatConversionConfiguration`: objects are Parquet files.
    pub conversion: Option<crate::conversion::Conversion>,
}

/// A destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Configured {
    S3(S3Destination),
    Http(crate::http_endpoint::HttpDestination),
    OpenSearch(crate::opensearch::SearchDestination),
    Splunk(crate::splunk::SplunkDestination),
    Redshift(Box<crate::redshift::RedshiftDestination>),
}

impl Configured {
    pub fn of(d: &Destination) -> Result<Configured, Error> {
        let config = d
            .config
            .as_object()
            .ok_or_else(|| invalid("the destination's configuration is not a structure"))?;
        match d.kind.as_str() {
            "HttpEndpoint" => Ok(Configured::Http(crate::http_endpoint::of_config(config)?)),
            "Splunk" => Ok(Configured::Splunk(crate::splunk::of_config(config)?)),
            "Redshift" => Ok(Configured::Redshift(Box::new(crate::redshift::of_config(
                config,
            )?))),
            kind if crate::opensearch::Flavor::of_kind(kind).is_some() => {
                let flavor = crate::opensearch::Flavor::of_kind(kind).expect("just matched");
                Ok(Configured::OpenSearch(crate::opensearch::of_config(
                    flavor, config,
                )?))
            }
            _ => Ok(Configured::S3(s3(config)?)),
        }
    }

    /// Where objects go: the S3 destination itself, or an HTTP endpoint's
    /// backup bucket (failed records, or all of them).
    pub fn objects(&self) -> &S3Destination {
        match self {
            Configured::S3(s) => s,
            Configured::Http(h) => &h.backup,
            Configured::OpenSearch(o) => &o.backup,
            Configured::Splunk(s) => &s.backup,
            Configured::Redshift(r) => &r.intermediate,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        match self {
            Configured::S3(s) => s.size_bytes,
            Configured::Http(h) => h.size_bytes,
            Configured::OpenSearch(o) => o.size_bytes,
            Configured::Splunk(s) => s.size_bytes,
            Configured::Redshift(r) => r.intermediate.size_bytes,
        }
    }

    pub fn interval_ms(&self) -> u64 {
        match self {
            Configured::S3(s) => s.interval_ms,
            Configured::Http(h) => h.interval_ms,
            Configured::OpenSearch(o) => o.interval_ms,
            Configured::Splunk(s) => s.interval_ms,
            Configured::Redshift(r) => r.intermediate.interval_ms,
        }
    }

    /// Records one delivery may hold.
    pub fn records_max(&self) -> usize {
        match self {
            Configured::S3(_)
            | Configured::OpenSearch(_)
            | Configured::Splunk(_)
            | Configured::Redshift(_) => usize::MAX,
            Configured::Http(_) => crate::http_endpoint::RECORDS_PER_REQUEST_MAX,
        }
    }

    /// Whether every source record also goes to the backup bucket (HTTP
    /// endpoint AllData, OpenSearch AllDocuments, Splunk AllEvents).
    pub fn backs_up_all(&self) -> bool {
        match self {
            Configured::S3(_) | Configured::Redshift(_) => false,
            Configured::Http(h) => h.backup_all,
            Configured::OpenSearch(o) => o.backup_all,
            Configured::Splunk(s) => s.backup_all,
        }
    }

    /// The error output type of records the destination refused (empty: none).
    pub fn error_output_type(&self) -> &'static str {
        match self {
            Configured::S3(_) | Configured::Redshift(_) => "",
            Configured::Http(_) => "http-endpoint-failed",
            Configured::OpenSearch(_) => crate::opensearch::ERROR_OUTPUT_TYPE,
            Configured::Splunk(_) => crate::splunk::ERROR_OUTPUT_TYPE,
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// The one destination of a CreateDeliveryStream input, checked and stored.
pub fn from_create(input: &Map<String, Value>) -> Result<Destination, Error> {
    let given: Vec<(&str, &str)> = CONFIG_MEMBERS
        .iter()
        .copied()
        .filter(|(member, _)| input.contains_key(*member))
        .collect();
    let (member, kind) = match given.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(
                "Exactly one destination configuration must be specified.",
            ));
        }
        _ => {
            return Err(invalid(
                "Only one destination configuration can be specified.",
            ));
        }
    };
    let config = input[member]
        .as_object()
        .cloned()
        .ok_or_else(|| invalid(format!("{member} must be a structure")))?;
    match kind {
        "S3" | "ExtendedS3" => {
            let config = with_s3_defaults(config);
            s3(&config)?;
            Ok(Destination {
                kind: "ExtendedS3".to_string(),
                config: Value::Object(config),
            })
        }
        "HttpEndpoint" => {
            let config = crate::http_endpoint::with_defaults(config);
            crate::http_endpoint::of_config(&config)?;
            Ok(Destination {
                kind: "HttpEndpoint".to_string(),
                config: Value::Object(config),
            })
        }
        "Redshift" => {
            let config = crate::redshift::with_defaults(config);
            crate::redshift::of_config(&config)?;
            Ok(Destination {
                kind: kind.to_string(),
                config: Value::Object(config),
            })
        }
        "Splunk" => {
            let config = crate::splunk::with_defaults(config);
            crate::splunk::of_config(&config)?;
            Ok(Destination {
                kind: kind.to_string(),
                config: Value::Object(config),
            })
        }
        kind if crate::opensearch::Flavor::of_kind(kind).is_some() => {
            let flavor = crate::opensearch::Flavor::of_kind(kind).expect("just matched");
            let config = crate::opensearch::with_defaults(flavor, config);
            crate::opensearch::of_config(flavor, &config)?;
            Ok(Destination {
                kind: kind.to_string(),
                config: Value::Object(config),
            })
        }
        other => Err(not_served(other)),
    }
}

fn not_served(kind: &str) -> Error {
    invalid(format!(
        "Riffle does not deliver to {kind} destinations yet; ExtendedS3 (and S3), HttpEndpoint, Amazonopensearchservice, Elasticsearch, AmazonOpenSearchServerless, Splunk and Redshift (on PostgreSQL) destinations are served."
    ))
}

/// The stored configuration after an UpdateDestination input's update member.
pub fn from_update(
    current: &Destination,
    input: &Map<String, Value>,
) -> Result<Destination, Error> {
    let updates: Vec<&str> = input
        .keys()
        .filter(|k| k.ends_with("DestinationUpdate"))
        .map(String::as_str)
        .collect();
    let member = match updates.as_slice() {
        [one] => *one,
        [] => return Err(invalid("Exactly one destination update must be specified.")),
        _ => return Err(invalid("Only one destination update can be specified.")),
    };
    let kind = member.trim_end_matches("DestinationUpdate");
    let update = input[member]
        .as_object()
        .ok_or_else(|| invalid(format!("{member} must be a structure")))?;
    let stored = current.config.as_object().cloned().unwrap_or_default();
    let config = match (current.kind.as_str(), kind) {
        ("ExtendedS3", "S3" | "ExtendedS3") => {
            let config = members::updated(
                &stored,
                update,
                &[("S3BackupUpdate", "S3BackupConfiguration")],
            );
            if enabled(&config, "DynamicPartitioningConfiguration")
                != enabled(&stored, "DynamicPartitioningConfiguration")
            {
                return Err(invalid(
                    "Dynamic partitioning can only be enabled when the delivery stream is created, and cannot be disabled.",
                ));
            }
            let backed_up = |c: &Map<String, Value>| {
                c.get("S3BackupMode").and_then(Value::as_str) == Some("Enabled")
            };
            if backed_up(&stored) && !backed_up(&config) {
                return Err(invalid(
                    "S3BackupMode cannot be disabled once it is Enabled.",
                ));
            }
            s3(&config)?;
            config
        }
        ("HttpEndpoint", "HttpEndpoint") => {
            let config = members::updated(&stored, update, &[members::S3_UPDATE]);
            crate::http_endpoint::of_config(&config)?;
            config
        }
        ("Redshift", "Redshift") => crate::redshift::updated(&stored, update)?,
        ("Splunk", "Splunk") => crate::splunk::updated(&stored, update)?,
        (current_kind, new_kind)
            if current_kind == new_kind
                && crate::opensearch::Flavor::of_kind(current_kind).is_some() =>
        {
            let flavor = crate::opensearch::Flavor::of_kind(current_kind).expect("just matched");
            let config = members::updated(&stored, update, &[members::S3_UPDATE]);
            crate::opensearch::of_config(flavor, &config)?;
            config
        }
        (current, new) => {
            return Err(invalid(format!(
                "Changing the destination of a delivery stream from {current} to {new} is not supported."
            )));
        }
    };
    Ok(Destination {
        kind: current.kind.clone(),
        config: Value::Object(config),
    })
}

pub(crate) fn with_s3_defaults(mut config: Map<String, Value>) -> Map<String, Value> {
    // With record format conversion AWS buffers 128 MiB by default.
    let size = match crate::conversion::enabled(&config) {
        true => crate::conversion::SIZE_MIB_DEFAULT,
        false => S3_SIZE_MIB_DEFAULT,
    };
    config
        .entry("BufferingHints")
        .or_insert_with(|| json!({"SizeInMBs": size, "IntervalInSeconds": S3_INTERVAL_S_DEFAULT}));
    config
        .entry("CompressionFormat")
        .or_insert_with(|| json!("UNCOMPRESSED"));
    config
        .entry("EncryptionConfiguration")
        .or_insert_with(|| json!({"NoEncryptionConfig": "NoEncryption"}));
    config
        .entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    config
        .entry("S3BackupMode")
        .or_insert_with(|| json!("Disabled"));
    config
}

fn enabled(config: &Map<String, Value>, member: &str) -> bool {
    config
        .get(member)
        .and_then(|v| v.get("Enabled"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The bucket of an S3 bucket ARN (`arn:aws:s3:::bucket`).
fn bucket_of(arn: &str) -> Result<String, Error> {
    let bucket = arn
        .strip_prefix("arn:")
        .and_then(|r| r.split_once(":s3:::"))
        .map(|(_, b)| b)
        .ok_or_else(|| {
            invalid(format!(
                "BucketARN {arn} is not an S3 bucket ARN (arn:aws:s3:::BUCKET)"
            ))
        })?;
    // S3's bucket names: 3-63 of lowercase letters, digits, '.', '-'.
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !ok {
        return Err(invalid(format!(
            "BucketARN {arn} does not name a valid S3 bucket"
        )));
    }
    Ok(bucket.to_string())
}

/// The types of the configured processors.
fn processor_types(config: &Map<String, Value>) -> Vec<&str> {
    let Some(p) = config
        .get("ProcessingConfiguration")
        .filter(|p| p.get("Enabled").and_then(Value::as_bool).unwrap_or(false))
    else {
        return Vec::new();
    };
    p.get("Processors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("Type").and_then(Value::as_str))
        .collect()
}

/// Reads (and so checks) a stored S3 destination.
pub fn s3(config: &Map<String, Value>) -> Result<S3Destination, Error> {
    let dynamic_partitioning = enabled(config, "DynamicPartitioningConfiguration");
    let mut dest = s3_members(config, dynamic_partitioning)?;
    dest.conversion = crate::conversion::of_config(config)?;
    if dynamic_partitioning && dest.interval_ms == 0 {
        return Err(invalid(
            "Zero buffering (IntervalInSeconds 0) is not available with dynamic partitioning.",
        ));
    }
    if !dynamic_partitioning && processor_types(config).contains(&"MetadataExtraction") {
        return Err(invalid(
            "The MetadataExtraction processor needs dynamic partitioning enabled (DynamicPartitioningConfiguration).",
        ));
    }
    match config.get("S3BackupMode").and_then(Value::as_str) {
        None | Some("Disabled") => {}
        Some("Enabled") => {
            let backup = config
                .get("S3BackupConfiguration")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid("S3BackupMode Enabled needs an S3BackupConfiguration."))?;
            dest.backup = Some(Box::new(s3_members(backup, false)?));
        }
        Some(other) => {
            return Err(invalid(format!(
                "S3BackupMode {other} is not one of Disabled, Enabled."
            )));
        }
    }
    Ok(dest)
}

/// The members an S3 destination and an S3 backup configuration share.
fn s3_members(
    config: &Map<String, Value>,
    dynamic_partitioning: bool,
) -> Result<S3Destination, Error> {
    let arn = config
        .get("BucketARN")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("BucketARN is required"))?;
    let bucket = bucket_of(arn)?;
    let (size_bytes, interval_ms) =
        crate::members::buffering(config, S3_SIZE_MIB_DEFAULT, S3_INTERVAL_S_DEFAULT)?;
    let compression = match config.get("CompressionFormat").and_then(Value::as_str) {
        None => Compression::Uncompressed,
        Some(name) if Compression::of_aws_name(name).is_some() => {
            Compression::of_aws_name(name).expect("just matched")
        }
        Some(other) => {
            return Err(invalid(format!(
                "CompressionFormat {other} is not one of UNCOMPRESSED, GZIP, ZIP, Snappy, HADOOP_SNAPPY."
            )));
        }
    };
    let zone = crate::time::Zone::named(
        config
            .get("CustomTimeZone")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )?;
    let prefixes = prefix::validate(
        config.get("Prefix").and_then(Value::as_str),
        config.get("ErrorOutputPrefix").and_then(Value::as_str),
        dynamic_partitioning,
    )?;
    let file_extension = match config.get("FileExtension").and_then(Value::as_str) {
        Some(ext) => ext.to_string(),
        None => compression.extension().to_string(),
    };
    Ok(S3Destination {
        bucket,
        prefixes,
        size_bytes,
        interval_ms,
        compression,
        file_extension,
        dynamic_partitioning,
        zone,
        backup: None,
        conversion: None,
    })
}

/// The destination's `DestinationDescription` members (without `DestinationId`).
pub fn describe(d: &Destination) -> Map<String, Value> {
    let mut out = Map::new();
    if d.kind == "HttpEndpoint" {
        let config = d.config.as_object().cloned().unwrap_or_default();
        out.insert(
            "HttpEndpointDestinationDescription".into(),
            crate::http_endpoint::describe(&config),
        );
    }
    if d.kind == "Redshift" {
        let config = d.config.as_object().cloned().unwrap_or_default();
        out.insert(
            "RedshiftDestinationDescription".into(),
            crate::redshift::describe(&config),
        );
    }
    if d.kind == "Splunk" {
        let config = d.config.as_object().cloned().unwrap_or_default();
        out.insert(
            "SplunkDestinationDescription".into(),
            crate::splunk::describe(&config),
        );
    }
    if let Some(flavor) = crate::opensearch::Flavor::of_kind(&d.kind) {
        let config = d.config.as_object().cloned().unwrap_or_default();
        out.insert(
            flavor.description_member(),
            crate::opensearch::describe(&config),
        );
    }
    if d.kind == "ExtendedS3" {
        let config = d.config.as_object().cloned().unwrap_or_default();
        // The deprecated S3 description: the members it has.
        let mut s3 = Map::new();
        for k in [
            "RoleARN",
            "BucketARN",
            "Prefix",
            "ErrorOutputPrefix",
            "BufferingHints",
            "CompressionFormat",
            "EncryptionConfiguration",
            "CloudWatchLoggingOptions",
        ] {
            if let Some(v) = config.get(k) {
                s3.insert(k.to_string(), v.clone());
            }
        }
        out.insert("S3DestinationDescription".into(), Value::Object(s3));
        let mut extended = config;
        if let Some(backup) = extended.remove("S3BackupConfiguration") {
            extended.insert("S3BackupDescription".into(), backup);
        }
        out.insert(
            "ExtendedS3DestinationDescription".into(),
            Value::Object(extended),
        );
    }
    out
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
