//! The Redshift destination, served on PostgreSQL (the pure half):
//! `RedshiftDestinationConfiguration` with AWS's defaults, checked (the
//! `ClusterJDBCURL`, the `CopyCommand` read with Redshift's COPY rules by
//! `riffle_postgres`), described, and read into the form the delivery runs
//! on. As on AWS, each batch is first delivered to the intermediate S3
//! bucket (`S3Configuration`), then loaded; Riffle loads the batch it just
//! wrote with `COPY ... FROM STDIN` instead of having the cluster read the
//! object through a manifest (`delivery/load.rs`). A batch that cannot be
//! loaded within `RetryOptions` is skipped and its manifest written under
//! `errors/manifests/` in the intermediate bucket, as AWS does.

use riffle_postgres::{CopyPlan, Target};
use riffle_protocol::Error;
use serde_json::{Map, Value, json};

use crate::destination::{Compression, S3Destination};

/// AWS's default `RetryOptions.DurationInSeconds` for Redshift (0-7200).
pub const RETRY_S_DEFAULT: u64 = 3600;
pub const RETRY_S_MAX: u64 = 7200;

/// A Redshift destination as the delivery runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedshiftDestination {
    pub target: Target,
    pub plan: CopyPlan,
    pub user: String,
    pub password: String,
    pub retry_ms: u64,
    /// The intermediate bucket (and, with `S3BackupMode` Enabled, its
    /// `backup`: the source records).
    pub intermediate: S3Destination,
    /// The intermediate bucket's `Prefix` (literal text).
    pub prefix: String,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// The stored configuration with AWS's defaults filled in.
pub fn with_defaults(mut config: Map<String, Value>) -> Map<String, Value> {
    config
        .entry("RetryOptions")
        .or_insert_with(|| json!({"DurationInSeconds": RETRY_S_DEFAULT}));
    config
        .entry("S3BackupMode")
        .or_insert_with(|| json!("Disabled"));
    config
        .entry("CloudWatchLoggingOptions")
        .or_insert_with(|| json!({"Enabled": false}));
    for member in ["S3Configuration", "S3BackupConfiguration"] {
        if let Some(Value::Object(s3)) = config.get(member) {
            let s3 = crate::destination::with_s3_defaults(s3.clone());
            config.insert(member.to_string(), Value::Object(s3));
        }
    }
    config
}

/// Reads (and so checks) a stored Redshift destination.
pub fn of_config(config: &Map<String, Value>) -> Result<RedshiftDestination, Error> {
    crate::members::refuse_secrets_manager(config, "Username and Password")?;
    let url = config
        .get("ClusterJDBCURL")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("ClusterJDBCURL is required."))?;
    let target = riffle_postgres::parse_jdbc_url(url)
        .map_err(|e| invalid(format!("ClusterJDBCURL {url} is invalid: {e}")))?;
    let copy = config
        .get("CopyCommand")
        .ok_or_else(|| invalid("CopyCommand is required."))?;
    let table = copy
        .get("DataTableName")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("CopyCommand.DataTableName is required."))?;
    let plan = riffle_postgres::copy_plan(
        table,
        copy.get("DataTableColumns").and_then(Value::as_str),
        copy.get("CopyOptions").and_then(Value::as_str),
    )
    .map_err(|e| invalid(format!("CopyCommand cannot be run on PostgreSQL: {e}")))?;
    let user = config
        .get("Username")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| target.user.clone())
        .ok_or_else(|| invalid("Username is required."))?;
    let password = config
        .get("Password")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| target.password.clone())
        .ok_or_else(|| invalid("Password is required."))?;
    let retry_s = config
        .get("RetryOptions")
        .and_then(|r| r.get("DurationInSeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(RETRY_S_DEFAULT);
    if retry_s > RETRY_S_MAX {
        return Err(invalid(format!(
            "RetryOptions.DurationInSeconds must be from 0 to {RETRY_S_MAX}, not {retry_s}."
        )));
    }
    let s3 = config
        .get("S3Configuration")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("S3Configuration (the intermediate bucket) is required."))?;
    // AWS's rules for the intermediate bucket: COPY reads GZIP or nothing,
    // and the prefix has no expressions.
    let mut intermediate = crate::destination::s3(s3)?;
    if !matches!(
        intermediate.compression,
        Compression::Uncompressed | Compression::Gzip
    ) {
        return Err(invalid(format!(
            "The intermediate S3 bucket's CompressionFormat must be UNCOMPRESSED or GZIP for Redshift, not {}.",
            intermediate.compression.aws_name()
        )));
    }
    let prefix = s3.get("Prefix").and_then(Value::as_str).unwrap_or("");
    if prefix.contains("!{") || s3.contains_key("ErrorOutputPrefix") {
        return Err(invalid(
            "For Redshift the intermediate bucket's Prefix has no expressions and ErrorOutputPrefix is not set.",
        ));
    }
    intermediate.backup = match config.get("S3BackupMode").and_then(Value::as_str) {
        None | Some("Disabled") => None,
        Some("Enabled") => {
            let backup = config
                .get("S3BackupConfiguration")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid("S3BackupMode Enabled needs an S3BackupConfiguration."))?;
            Some(Box::new(crate::destination::s3(backup)?))
        }
        Some(other) => {
            return Err(invalid(format!(
                "S3BackupMode {other} is not one of Disabled, Enabled."
            )));
        }
    };
    Ok(RedshiftDestination {
        target,
        plan,
        user,
        password,
        retry_ms: retry_s * 1000,
        intermediate,
        prefix: prefix.to_string(),
    })
}

/// The stored configuration after a `RedshiftDestinationUpdate`.
pub fn updated(
    current: &Map<String, Value>,
    update: &Map<String, Value>,
) -> Result<Map<String, Value>, Error> {
    let was_backed_up = current.get("S3BackupMode").and_then(Value::as_str) == Some("Enabled");
    let config = crate::members::updated(
        current,
        update,
        &[
            crate::members::S3_UPDATE,
            ("S3BackupUpdate", "S3BackupConfiguration"),
            ("CopyCommand", "CopyCommand"),
        ],
    );
    if was_backed_up && config.get("S3BackupMode").and_then(Value::as_str) != Some("Enabled") {
        return Err(invalid(
            "S3BackupMode cannot be disabled once it is Enabled.",
        ));
    }
    let config = with_defaults(config);
    of_config(&config)?;
    Ok(config)
}

/// `RedshiftDestinationDescription` (never the password).
pub fn describe(config: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in config {
        match k.as_str() {
            "Password" => {}
            "S3Configuration" => {
                out.insert("S3DestinationDescription".into(), v.clone());
            }
            "S3BackupConfiguration" => {
                out.insert("S3BackupDescription".into(), v.clone());
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// The manifest of a batch that could not be loaded (AWS's COPY manifest
/// format), for a manual load later.
pub fn manifest(bucket: &str, key: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"entries": [{"url": format!("s3://{bucket}/{key}"), "mandatory": true}]}),
    )
    .expect("JSON serializes")
}

impl RedshiftDestination {
    /// Where the manifest of a skipped batch goes: the intermediate
    /// bucket's `<Prefix>errors/manifests/` and the object's own name.
    pub fn manifest_key(&self, object_key: &str) -> String {
        let name = object_key.rsplit('/').next().unwrap_or(object_key);
        format!("{}errors/manifests/{name}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "RoleARN": "arn:aws:iam::123456789012:role/r",
            "ClusterJDBCURL": "jdbc:postgresql://127.0.0.1:5432/analytics",
            "CopyCommand": {"DataTableName": "events", "CopyOptions": "JSON 'auto'"},
            "Username": "riffle", "Password": "secret",
            "S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::stage"}
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        with_defaults(c.as_object().unwrap().clone())
    }

    #[test]
    fn configurations_are_read_with_defaults_and_described_without_the_password() {
        let c = config(json!({}));
        let r = of_config(&c).unwrap();
        assert_eq!(
            (
                r.target.host.as_str(),
                r.target.port,
                r.target.database.as_str()
            ),
            ("127.0.0.1", 5432, "analytics")
        );
        assert_eq!(r.retry_ms, RETRY_S_DEFAULT * 1000);
        assert_eq!(r.intermediate.bucket, "stage");
        let d = describe(&c);
        assert!(d.get("Password").is_none());
        assert_eq!(
            d["S3DestinationDescription"]["BucketARN"],
            "arn:aws:s3:::stage"
        );
        assert_eq!(d["RetryOptions"]["DurationInSeconds"], 3600);
        let u = updated(
            &c,
            json!({"CopyCommand": {"CopyOptions": "CSV"}, "S3Update": {"CompressionFormat": "GZIP"}})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(u["CopyCommand"]["DataTableName"], "events");
        assert_eq!(u["S3Configuration"]["CompressionFormat"], "GZIP");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        for (extra, says) in [
            (json!({"ClusterJDBCURL": "mysql://h/db"}), "ClusterJDBCURL"),
            (
                json!({"CopyCommand": {"DataTableName": "t", "CopyOptions": "FORMAT AS AVRO 'auto'"}}),
                "AVRO",
            ),
            (
                json!({"S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::stage", "CompressionFormat": "Snappy"}}),
                "UNCOMPRESSED or GZIP",
            ),
            (
                json!({"S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::stage", "Prefix": "!{timestamp:yyyy}/",
                        "ErrorOutputPrefix": "e/!{firehose:error-output-type}/"}}),
                "no expressions",
            ),
            (json!({"RetryOptions": {"DurationInSeconds": 9000}}), "7200"),
            (
                json!({"SecretsManagerConfiguration": {"Enabled": true}}),
                "Secrets Manager",
            ),
        ] {
            let e = of_config(&config(extra)).unwrap_err();
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
        let mut no_password = config(json!({}));
        no_password.remove("Password");
        assert!(
            of_config(&no_password)
                .unwrap_err()
                .message
                .contains("Password")
        );
    }

    #[test]
    fn manifests_name_the_object() {
        let m: Value = serde_json::from_slice(&manifest("stage", "2024/01/x-1")).unwrap();
        assert_eq!(m["entries"][0]["url"], "s3://stage/2024/01/x-1");
        assert_eq!(m["entries"][0]["mandatory"], true);
        let mut c = config(json!({}));
        c["S3Configuration"]["Prefix"] = json!("loads/");
        let r = of_config(&c).unwrap();
        assert_eq!(
            r.manifest_key("loads/2024/01/02/03/s-1-x"),
            "loads/errors/manifests/s-1-x"
        );
    }
}
