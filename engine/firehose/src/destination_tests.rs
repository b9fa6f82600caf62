//! Tests of `destination.rs`: configurations read, defaulted, described,
//! updated and refused.
use super::*;

fn create(config: Value) -> Result<Destination, Error> {
    from_create(config.as_object().unwrap())
}

#[test]
fn defaults_are_filled_and_described() {
    let d = create(json!({"ExtendedS3DestinationConfiguration":
        {"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::my-bucket"}}))
    .unwrap();
    let s3 = s3(d.config.as_object().unwrap()).unwrap();
    assert_eq!(s3.bucket, "my-bucket");
    assert_eq!((s3.size_bytes, s3.interval_ms), (5 << 20, 300_000));
    assert_eq!(s3.compression, Compression::Uncompressed);
    let described = describe(&d);
    let ext = &described["ExtendedS3DestinationDescription"];
    assert_eq!(
        ext["BufferingHints"],
        json!({"SizeInMBs": 5, "IntervalInSeconds": 300})
    );
    assert_eq!(ext["CompressionFormat"], "UNCOMPRESSED");
    assert_eq!(ext["S3BackupMode"], "Disabled");
    assert_eq!(
        described["S3DestinationDescription"]["BucketARN"],
        "arn:aws:s3:::my-bucket"
    );
}

#[test]
fn refusals_name_what_is_wrong() {
    let role = "arn:aws:iam::123456789012:role/r";
    for (input, says) in [
        (json!({}), "Exactly one destination"),
        (
            json!({"S3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::b12"},
                   "ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::b12"}}),
            "Only one",
        ),
        (json!({"SplunkDestinationConfiguration": {}}), "HECEndpoint"),
        (
            json!({"SnowflakeDestinationConfiguration": {}}),
            "Snowflake",
        ),
        (
            json!({"RedshiftDestinationConfiguration": {}}),
            "ClusterJDBCURL",
        ),
        (
            json!({"HttpEndpointDestinationConfiguration": {"EndpointConfiguration": {"Url": "https://h/x"}}}),
            "S3Configuration",
        ),
        (
            json!({"ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::B"}}),
            "valid S3 bucket",
        ),
        (
            json!({"ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
                   "BufferingHints": {"SizeInMBs": 1}}}),
            "both",
        ),
        (
            json!({"ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
                   "CompressionFormat": "LZ4"}}),
            "LZ4",
        ),
        (
            json!({"ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
                   "Prefix": "!{timestamp:yyyy}/"}}),
            "ErrorOutputPrefix",
        ),
        (
            json!({"ExtendedS3DestinationConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
                   "DataFormatConversionConfiguration": {"Enabled": true}}}),
            "SchemaConfiguration",
        ),
    ] {
        let e = create(input).unwrap_err();
        assert!(e.message.contains(says), "{says}: {}", e.message);
    }
}

#[test]
fn updates_merge_into_the_stored_configuration() {
    let d = create(json!({"ExtendedS3DestinationConfiguration":
        {"RoleARN": "r", "BucketARN": "arn:aws:s3:::abc", "Prefix": "p/"}}))
    .unwrap();
    let u = from_update(
        &d,
        json!({"ExtendedS3DestinationUpdate": {"CompressionFormat": "GZIP"}})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    let s3 = s3(u.config.as_object().unwrap()).unwrap();
    assert_eq!(
        (s3.compression, s3.file_extension.as_str()),
        (Compression::Gzip, ".gz")
    );
    assert_eq!(u.config["Prefix"], "p/");
    assert!(
        from_update(
            &d,
            json!({"HttpEndpointDestinationUpdate": {}})
                .as_object()
                .unwrap()
        )
        .is_err()
    );
}

#[test]
fn dynamic_partitioning_backup_and_time_zones_are_read() {
    let role = "arn:aws:iam::123456789012:role/r";
    let d = create(json!({"ExtendedS3DestinationConfiguration": {
        "RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
        "Prefix": "c=!{partitionKeyFromQuery:c}/", "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
        "DynamicPartitioningConfiguration": {"Enabled": true},
        "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
            {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{c: .c}"},
            {"ParameterName": "JsonParsingEngine", "ParameterValue": "JQ-1.6"}]}]},
        "S3BackupMode": "Enabled",
        "S3BackupConfiguration": {"RoleARN": role, "BucketARN": "arn:aws:s3:::backup", "Prefix": "source/",
                                  "CompressionFormat": "GZIP"},
        "CustomTimeZone": "Asia/Tokyo"}}))
    .unwrap();
    let s3 = s3(d.config.as_object().unwrap()).unwrap();
    assert!(s3.dynamic_partitioning);
    assert_eq!(s3.zone.name, "Asia/Tokyo");
    let backup = s3.backup.as_ref().unwrap();
    assert_eq!(
        (backup.bucket.as_str(), backup.compression),
        ("backup", Compression::Gzip)
    );
    assert_eq!(
        describe(&d)["ExtendedS3DestinationDescription"]["S3BackupDescription"]["BucketARN"],
        "arn:aws:s3:::backup"
    );
    // A backup update changes the members it names.
    let moved = from_update(
        &d,
        json!({"ExtendedS3DestinationUpdate": {"S3BackupUpdate": {"Prefix": "moved/"}}})
            .as_object()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        moved.config["S3BackupConfiguration"]["BucketARN"],
        "arn:aws:s3:::backup"
    );
    assert_eq!(moved.config["S3BackupConfiguration"]["Prefix"], "moved/");
    // Neither can be turned off, nor partitioning turned on, by an update.
    for (update, says) in [
        (
            json!({"DynamicPartitioningConfiguration": {"Enabled": false}}),
            "Dynamic partitioning",
        ),
        (json!({"S3BackupMode": "Disabled"}), "S3BackupMode"),
    ] {
        let e = from_update(
            &d,
            json!({"ExtendedS3DestinationUpdate": update})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.message.contains(says), "{says}: {}", e.message);
    }
    for (config, says) in [
        (
            json!({"RoleARN": role, "BucketARN": "arn:aws:s3:::abc",
                   "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "MetadataExtraction", "Parameters": [
                       {"ParameterName": "MetadataExtractionQuery", "ParameterValue": "{c: .c}"}]}]}}),
            "needs dynamic partitioning",
        ),
        (
            json!({"RoleARN": role, "BucketARN": "arn:aws:s3:::abc", "DynamicPartitioningConfiguration": {"Enabled": true},
                   "Prefix": "c=!{partitionKeyFromQuery:c}/", "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
                   "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 0}}),
            "Zero buffering",
        ),
        (
            json!({"RoleARN": role, "BucketARN": "arn:aws:s3:::abc", "S3BackupMode": "Enabled"}),
            "S3BackupConfiguration",
        ),
        (
            json!({"RoleARN": role, "BucketARN": "arn:aws:s3:::abc", "CustomTimeZone": "Nowhere/Else"}),
            "Nowhere/Else",
        ),
    ] {
        let e = create(json!({"ExtendedS3DestinationConfiguration": config})).unwrap_err();
        assert!(e.message.contains(says), "{says}: {}", e.message);
    }
}
