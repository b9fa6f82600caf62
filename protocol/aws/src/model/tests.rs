//! Validation against AWS's recorded answers: the kinesalite conformance suite
//! (recorded from real Kinesis, `test/*.js` under shared/conformance), with the
//! current Kinesis model as the source of the constraints. Where the model has
//! moved since the recording (limits raised, members made optional, patterns
//! rewritten), the case follows the model and says so. Also: every vendored
//! model parses, resolves and compiles its patterns.

use serde_json::{Value, json};

use super::{InputError, Required, Rules, ServiceModel, ShapeKind, all, kinesis};

/// The rules Kinesis adds to its model (see `Rules`): AWS still answers
/// "must not be null" for these.
const KINESIS: Rules<'static> = Rules {
    required: &[
        Required {
            shape: "*",
            member: "StreamName",
            unless_present: &["StreamARN"],
        },
        Required {
            shape: "PutRecordInput",
            member: "PartitionKey",
            unless_present: &[],
        },
        Required {
            shape: "PutRecordsRequestEntry",
            member: "PartitionKey",
            unless_present: &[],
        },
    ],
    unpatterned: &[],
};

/// `Value '<value>' at '<path>' failed to satisfy constraint: <constraint>`.
fn v(value: &str, path: &str, constraint: &str) -> String {
    format!("Value '{value}' at '{path}' failed to satisfy constraint: {constraint}")
}

fn null(path: &str) -> String {
    format!("Value null at '{path}' failed to satisfy constraint: Member must not be null")
}

const NAME: &str = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+";
const MIN1: &str = "Member must have length greater than or equal to 1";
const MAX128: &str = "Member must have length less than or equal to 128";
/// The model now states `^(0|([1-9]\d{0,38}))$`; AWS's recorded answer quoted
/// `0|([1-9]\d{0,38})`. The message quotes the model.
const HASH_KEY: &str = "Member must satisfy regular expression pattern: ^(0|([1-9]\\d{0,38}))$";
const SEQUENCE: &str = "Member must satisfy regular expression pattern: ^(0|([1-9]\\d{0,128}))$";

/// Checks `operation`'s `input` under `rules`: no violations when `expected`
/// is empty, else a ValidationException with exactly these violations, in any
/// order (as kinesalite's `assertValidation` compares them).
fn check(operation: &str, rules: &Rules<'_>, input: Value, expected: &[String]) {
    let got = kinesis().check_input_with(operation, &input, rules);
    if expected.is_empty() {
        assert_eq!(got, Ok(()), "{operation}");
        return;
    }
    let Err(InputError::Validation(message)) = got else {
        panic!("{operation}: expected a ValidationException, got {got:?}");
    };
    let n = expected.len();
    let prefix = if n == 1 {
        "1 validation error detected: ".to_string()
    } else {
        format!("{n} validation errors detected: ")
    };
    let mut rest = message
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{operation}: {message}"));
    let mut left: Vec<&String> = expected.iter().collect();
    while !left.is_empty() {
        let i = left
            .iter()
            .position(|e| rest.starts_with(e.as_str()))
            .unwrap_or_else(|| panic!("{operation}: could not match {rest:?} from {left:?}"));
        rest = &rest[left[i].len()..];
        rest = rest.strip_prefix("; ").unwrap_or(rest);
        left.remove(i);
    }
    assert_eq!(rest, "", "{operation}: {message}");
}

fn a(n: usize) -> String {
    "a".repeat(n)
}

/// Base64 text that decodes to `len` bytes.
fn base64_of_len(len: usize) -> String {
    let mut s = "AAAA".repeat(len / 3);
    s.push_str(match len % 3 {
        0 => "",
        1 => "AA==",
        _ => "AAA=",
    });
    s
}

#[test]
fn put_record() {
    let r = &KINESIS;
    check(
        "PutRecord",
        r,
        json!({}),
        &[null("partitionKey"), null("data"), null("streamName")],
    );
    check(
        "PutRecord",
        r,
        json!({"StreamName": "", "PartitionKey": "", "Data": "", "ExplicitHashKey": "", "SequenceNumberForOrdering": ""}),
        &[
            v("", "sequenceNumberForOrdering", SEQUENCE),
            v("", "partitionKey", MIN1),
            v("", "explicitHashKey", HASH_KEY),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    // Data's maximum is 10 MiB in the current model (1 MiB when recorded).
    let data_len = 10 * 1024 * 1024 + 1;
    check(
        "PutRecord",
        r,
        json!({"StreamName": a(129), "PartitionKey": a(257), "Data": base64_of_len(data_len), "ExplicitHashKey": ""}),
        &[
            v(
                &a(257),
                "partitionKey",
                "Member must have length less than or equal to 256",
            ),
            v("", "explicitHashKey", HASH_KEY),
            v(
                &format!("java.nio.HeapByteBuffer[pos=0 lim={data_len} cap={data_len}]"),
                "data",
                "Member must have length less than or equal to 10485760",
            ),
            v(&a(129), "streamName", MAX128),
        ],
    );
    check(
        "PutRecord",
        r,
        json!({"StreamName": "s", "PartitionKey": "k", "Data": "AAAA", "ExplicitHashKey": "340282366920938463463374607431768211455"}),
        &[],
    );
    // A stream named by ARN needs no StreamName.
    check(
        "PutRecord",
        r,
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s", "PartitionKey": "k", "Data": ""}),
        &[],
    );
}

#[test]
fn put_records() {
    let r = &KINESIS;
    check(
        "PutRecords",
        r,
        json!({}),
        &[null("records"), null("streamName")],
    );
    check(
        "PutRecords",
        r,
        json!({"StreamName": "", "Records": []}),
        &[
            v("[]", "records", MIN1),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "PutRecords",
        r,
        json!({"StreamName": "", "Records": [{"PartitionKey": "", "Data": "", "ExplicitHashKey": ""}]}),
        &[
            v("", "records.1.member.partitionKey", MIN1),
            v("", "records.1.member.explicitHashKey", HASH_KEY),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "PutRecords",
        r,
        json!({"StreamName": "s", "Records": [{"Data": ""}, {"PartitionKey": "k"}]}),
        &[
            null("records.1.member.partitionKey"),
            null("records.2.member.data"),
        ],
    );
    let data_len = 10 * 1024 * 1024 + 1;
    check(
        "PutRecords",
        r,
        json!({"StreamName": a(129), "Records": [{"PartitionKey": a(257), "Data": base64_of_len(data_len), "ExplicitHashKey": ""}]}),
        &[
            v(
                &a(257),
                "records.1.member.partitionKey",
                "Member must have length less than or equal to 256",
            ),
            v("", "records.1.member.explicitHashKey", HASH_KEY),
            v(
                &format!("java.nio.HeapByteBuffer[pos=0 lim={data_len} cap={data_len}]"),
                "records.1.member.data",
                "Member must have length less than or equal to 10485760",
            ),
            v(&a(129), "streamName", MAX128),
        ],
    );
    // 501 invalid records: the list's own violation and the first nine
    // records' fill the ten AWS reports; streamName's are dropped.
    let records: Vec<Value> = (0..501)
        .map(|_| json!({"PartitionKey": "", "Data": ""}))
        .collect();
    let entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
    let shown = format!("[{}]", vec![entry; 501].join(", "));
    let mut expected = vec![v(
        &shown,
        "records",
        "Member must have length less than or equal to 500",
    )];
    expected.extend((1..10).map(|i| v("", &format!("records.{i}.member.partitionKey"), MIN1)));
    check(
        "PutRecords",
        r,
        json!({"StreamName": "", "Records": records}),
        &expected,
    );
}

#[test]
fn shown_values_are_bounded() {
    // A list of 100,000 records: its value is cut, not 6.5 MB long.
    let records: Vec<Value> = (0..100_000).map(|_| json!({})).collect();
    let e = kinesis()
        .check_input_with(
            "PutRecords",
            &json!({"StreamName": "s", "Records": records}),
            &KINESIS,
        )
        .unwrap_err();
    let message = e.message();
    assert!(message.len() < 80 * 1024, "{}", message.len());
    assert!(
        message.contains("...' at 'records' failed to satisfy constraint"),
        "{}",
        &message[message.len() - 300..]
    );
}

#[test]
fn create_stream() {
    let r = &KINESIS;
    // ShardCount is optional now (on-demand streams); AWS's recording also
    // had `Value null at 'shardCount'`.
    check("CreateStream", r, json!({}), &[null("streamName")]);
    check(
        "CreateStream",
        r,
        json!({"StreamName": "", "ShardCount": 0}),
        &[
            v(
                "0",
                "shardCount",
                "Member must have value greater than or equal to 1",
            ),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    // Integers are truncated and clamped as AWS does (recorded: ShardCount
    // 100000000000 shown as '2147483647'; ShardCount has no maximum any more).
    check(
        "CreateStream",
        r,
        json!({"StreamName": a(129), "ShardCount": 100000000000u64, "MaxRecordSizeInKiB": 100000000000u64}),
        &[
            v(
                "2147483647",
                "maxRecordSizeInKiB",
                "Member must have value less than or equal to 10240",
            ),
            v(&a(129), "streamName", MAX128),
        ],
    );
    check(
        "CreateStream",
        r,
        json!({"StreamName": "s", "StreamModeDetails": {}, "RecordDistributionStrategy": "X"}),
        &[
            null("streamModeDetails.streamMode"),
            v(
                "X",
                "recordDistributionStrategy",
                "Member must satisfy enum value set: [USER_PARTITION_KEY, AUTO]",
            ),
        ],
    );
}

#[test]
fn get_records_and_shard_iterators() {
    let r = &KINESIS;
    check("GetRecords", r, json!({}), &[null("shardIterator")]);
    check(
        "GetRecords",
        r,
        json!({"ShardIterator": "", "Limit": 0}),
        &[
            v(
                "0",
                "limit",
                "Member must have value greater than or equal to 1",
            ),
            v("", "shardIterator", MIN1),
        ],
    );
    check(
        "GetRecords",
        r,
        json!({"ShardIterator": a(513), "Limit": 100000}),
        &[
            v(
                "100000",
                "limit",
                "Member must have value less than or equal to 10000",
            ),
            v(
                &a(513),
                "shardIterator",
                "Member must have length less than or equal to 512",
            ),
        ],
    );
    check(
        "GetShardIterator",
        r,
        json!({}),
        &[
            null("shardId"),
            null("shardIteratorType"),
            null("streamName"),
        ],
    );
    check(
        "GetShardIterator",
        r,
        json!({"StreamName": "", "ShardIteratorType": "", "ShardId": "", "StartingSequenceNumber": ""}),
        &[
            v("", "shardId", NAME),
            v("", "shardId", MIN1),
            v(
                "",
                "shardIteratorType",
                "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
            ),
            v("", "startingSequenceNumber", SEQUENCE),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "GetShardIterator",
        r,
        json!({"StreamName": a(129), "ShardId": a(129), "ShardIteratorType": "LATEST"}),
        &[
            v(&a(129), "shardId", MAX128),
            v(&a(129), "streamName", MAX128),
        ],
    );
}

#[test]
fn list_shards_streams_and_tags() {
    // ListShards without a stream is AWS's InvalidArgumentException, not a
    // validation error: no StreamName rule here.
    let none = &Rules::NONE;
    check("ListShards", none, json!({}), &[]);
    check(
        "ListShards",
        none,
        json!({"StreamName": "", "NextToken": "", "MaxResults": 0, "ExclusiveStartShardId": ""}),
        &[
            v(
                "0",
                "maxResults",
                "Member must have value greater than or equal to 1",
            ),
            v("", "exclusiveStartShardId", NAME),
            v("", "exclusiveStartShardId", MIN1),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
            v("", "nextToken", MIN1),
        ],
    );
    check(
        "ListShards",
        none,
        json!({"StreamName": a(129), "MaxResults": 100000, "ExclusiveStartShardId": a(129)}),
        &[
            v(
                "100000",
                "maxResults",
                "Member must have value less than or equal to 10000",
            ),
            v(&a(129), "exclusiveStartShardId", MAX128),
            v(&a(129), "streamName", MAX128),
        ],
    );
    check(
        "ListShards",
        none,
        json!({"ShardFilter": {"ShardId": "x"}}),
        &[null("shardFilter.type")],
    );
    check(
        "ListStreams",
        none,
        json!({"ExclusiveStartStreamName": "", "Limit": 0}),
        &[
            v(
                "0",
                "limit",
                "Member must have value greater than or equal to 1",
            ),
            v("", "exclusiveStartStreamName", NAME),
            v("", "exclusiveStartStreamName", MIN1),
        ],
    );
    check(
        "ListStreams",
        none,
        json!({"ExclusiveStartStreamName": a(129), "Limit": 1000000}),
        &[
            v(
                "1000000",
                "limit",
                "Member must have value less than or equal to 10000",
            ),
            v(&a(129), "exclusiveStartStreamName", MAX128),
        ],
    );
    // ListTagsForStream's Limit is at most 50 now (10 when recorded).
    check(
        "ListTagsForStream",
        &KINESIS,
        json!({"StreamName": a(129), "ExclusiveStartTagKey": a(129), "Limit": 100}),
        &[
            v(
                "100",
                "limit",
                "Member must have value less than or equal to 50",
            ),
            v(&a(129), "exclusiveStartTagKey", MAX128),
            v(&a(129), "streamName", MAX128),
        ],
    );
}

#[test]
fn reshard() {
    let r = &KINESIS;
    check(
        "SplitShard",
        r,
        json!({}),
        &[
            null("newStartingHashKey"),
            null("streamName"),
            null("shardToSplit"),
        ],
    );
    check(
        "SplitShard",
        r,
        json!({"StreamName": "", "ShardToSplit": "", "NewStartingHashKey": ""}),
        &[
            v("", "newStartingHashKey", HASH_KEY),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
            v("", "shardToSplit", NAME),
            v("", "shardToSplit", MIN1),
        ],
    );
    check(
        "SplitShard",
        r,
        json!({"StreamName": a(129), "ShardToSplit": a(129), "NewStartingHashKey": "0"}),
        &[
            v(&a(129), "streamName", MAX128),
            v(&a(129), "shardToSplit", MAX128),
        ],
    );
    check(
        "MergeShards",
        r,
        json!({}),
        &[
            null("shardToMerge"),
            null("adjacentShardToMerge"),
            null("streamName"),
        ],
    );
    check(
        "MergeShards",
        r,
        json!({"StreamName": "", "ShardToMerge": "", "AdjacentShardToMerge": ""}),
        &[
            v("", "shardToMerge", NAME),
            v("", "shardToMerge", MIN1),
            v("", "adjacentShardToMerge", NAME),
            v("", "adjacentShardToMerge", MIN1),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "MergeShards",
        r,
        json!({"StreamName": a(129), "ShardToMerge": a(129), "AdjacentShardToMerge": a(129)}),
        &[
            v(&a(129), "shardToMerge", MAX128),
            v(&a(129), "adjacentShardToMerge", MAX128),
            v(&a(129), "streamName", MAX128),
        ],
    );
}

#[test]
fn tags() {
    let r = &KINESIS;
    check(
        "AddTagsToStream",
        r,
        json!({}),
        &[null("tags"), null("streamName")],
    );
    check(
        "AddTagsToStream",
        r,
        json!({"StreamName": "", "Tags": {}}),
        &[
            v("{}", "tags", MIN1),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "AddTagsToStream",
        r,
        json!({"StreamName": a(129), "Tags": {"a;b": "b"}}),
        &[v(&a(129), "streamName", MAX128)],
    );
    let long_key = json!({"StreamName": "s", "Tags": {"a": "1", "b": "2", a(129): "3"}});
    check(
        "AddTagsToStream",
        r,
        long_key,
        &[v(
            &format!("{{a=1, {}=3, b=2}}", a(129)),
            "tags",
            "Map keys must satisfy constraint: [Member must have length less than or equal to 128, \
             Member must have length greater than or equal to 1]",
        )],
    );
    check(
        "AddTagsToStream",
        r,
        json!({"StreamName": "s", "Tags": {"a": "1", "b": "2", "c": a(257)}}),
        &[v(
            &format!("{{a=1, b=2, c={}}}", a(257)),
            "tags",
            "Map value must satisfy constraint: [Member must have length less than or equal to 256, \
             Member must have length greater than or equal to 0]",
        )],
    );
    // At most 200 tags now (10 when recorded).
    let many: serde_json::Map<String, Value> =
        (0..201).map(|i| (format!("k{i:03}"), json!("v"))).collect();
    let shown = format!(
        "{{{}}}",
        (0..201)
            .map(|i| format!("k{i:03}=v"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    check(
        "AddTagsToStream",
        r,
        json!({"StreamName": "s", "Tags": many}),
        &[v(
            &shown,
            "tags",
            "Member must have length less than or equal to 200",
        )],
    );
    check(
        "RemoveTagsFromStream",
        r,
        json!({}),
        &[null("tagKeys"), null("streamName")],
    );
    check(
        "RemoveTagsFromStream",
        r,
        json!({"StreamName": "", "TagKeys": []}),
        &[
            v("[]", "tagKeys", MIN1),
            v("", "streamName", NAME),
            v("", "streamName", MIN1),
        ],
    );
    check(
        "RemoveTagsFromStream",
        r,
        json!({"StreamName": "s", "TagKeys": ["a", a(129), "b"]}),
        &[v(
            &format!("[a, {}, b]", a(129)),
            "tagKeys",
            "Member must satisfy constraint: [Member must have length less than or equal to 128, \
             Member must have length greater than or equal to 1]",
        )],
    );
    // At most 50 keys now (10 when recorded).
    let keys: Vec<String> = (1..=51).map(|i| i.to_string()).collect();
    check(
        "RemoveTagsFromStream",
        r,
        json!({"StreamName": "s", "TagKeys": keys}),
        &[v(
            &format!("[{}]", keys.join(", ")),
            "tagKeys",
            "Member must have length less than or equal to 50",
        )],
    );
}

#[test]
fn retention_and_monitoring() {
    let r = &KINESIS;
    for op in [
        "IncreaseStreamRetentionPeriod",
        "DecreaseStreamRetentionPeriod",
    ] {
        check(
            op,
            r,
            json!({}),
            &[null("retentionPeriodHours"), null("streamName")],
        );
        // RetentionPeriodHours has no range in the current model (AWS's
        // recording had 1..=168): the service answers InvalidArgumentException.
        check(
            op,
            r,
            json!({"StreamName": "", "RetentionPeriodHours": -1}),
            &[v("", "streamName", NAME), v("", "streamName", MIN1)],
        );
        check(
            op,
            r,
            json!({"StreamName": a(129), "RetentionPeriodHours": 24}),
            &[v(&a(129), "streamName", MAX128)],
        );
    }
    // A list of enum values: one violation for the list, every constraint of
    // its members, the enum in AWS's hash-set order.
    check(
        "EnableEnhancedMonitoring",
        r,
        json!({"StreamName": "s", "ShardLevelMetrics": ["ALL", "Bogus"]}),
        &[v(
            "[ALL, Bogus]",
            "shardLevelMetrics",
            "Member must satisfy constraint: [Member must satisfy enum value set: [ALL, \
             WriteProvisionedThroughputExceeded, IteratorAgeMilliseconds, IncomingBytes, OutgoingRecords, \
             ReadProvisionedThroughputExceeded, IncomingRecords, OutgoingBytes]]",
        )],
    );
}

#[test]
fn input_that_is_not_an_object() {
    let m = kinesis();
    assert_eq!(
        m.check_input("ListStreams", &json!([])),
        Err(InputError::Serialization(
            "Start of list found where not expected".into()
        ))
    );
    assert_eq!(
        m.check_input("ListStreams", &json!(1)),
        Err(InputError::Serialization("Expected null".into()))
    );
    // A null body is an empty one.
    assert_eq!(
        m.check_input("DescribeStream", &Value::Null),
        Ok(()),
        "StreamName is optional in the model"
    );
    assert_eq!(
        m.check_input("Nope", &json!({})),
        Err(InputError::UnknownOperation("Nope".into()))
    );
}

#[test]
fn all_models_parse_and_resolve() {
    for (dir, model) in all() {
        let m: &ServiceModel = model();
        assert!(m.operations().count() > 0, "{dir}");
        for op in m.operations() {
            assert_eq!(m.operation(&op.name).map(|o| &o.name), Some(&op.name));
            assert!(!op.http.method.is_empty(), "{dir} {}", op.name);
            if let Some(id) = op.input {
                assert!(m.get(id).is_structure(), "{dir} {}", op.name);
            }
        }
        for shape in m.shapes() {
            for member in shape.members() {
                let _ = m.get(member.shape);
            }
            if let ShapeKind::List { member } = shape.kind {
                let _ = m.get(member);
            }
        }
        // An empty input to every operation is checked without a panic.
        for op in m.operations() {
            let got = m.check_input(&op.name, &json!({}));
            assert!(
                !matches!(got, Err(InputError::Serialization(_))),
                "{dir} {}",
                op.name
            );
        }
    }
    let k = kinesis();
    assert_eq!(
        k.metadata.target_prefix.as_deref(),
        Some("Kinesis_20131202")
    );
    assert_eq!(k.metadata.json_version.as_deref(), Some("1.1"));
    assert_eq!(k.metadata.signing_name(), "kinesis");
    let get_media = super::kinesis_video_media().operation("GetMedia").unwrap();
    assert_eq!(
        (
            get_media.http.method.as_str(),
            get_media.http.request_uri.as_str()
        ),
        ("POST", "/getMedia")
    );
}

/// Every pattern of the nine models compiles, with `regex` or, for look-around,
/// `fancy-regex`; none is skipped.
#[test]
fn every_pattern_compiles() {
    let mut skipped = Vec::new();
    let mut lookaround = Vec::new();
    for (dir, model) in all() {
        let m = model();
        skipped.extend(
            m.skipped_patterns()
                .iter()
                .map(|(shape, p, why)| format!("{dir} {shape} {p}: {why}")),
        );
        for shape in m.shapes() {
            if let Some(p) = &shape.pattern
                && p.uses_lookaround()
            {
                lookaround.push(format!("{dir}:{}", shape.name));
            }
        }
    }
    assert_eq!(skipped, Vec::<String>::new());
    assert!(
        lookaround.contains(&"firehose:TagKey".to_string()),
        "{lookaround:?}"
    );
}

#[test]
fn a_service_may_check_a_members_pattern_itself() {
    let model = super::firehose();
    let input = |url: &str| {
        serde_json::json!({"DeliveryStreamName": "d", "RedshiftDestinationConfiguration": {
            "RoleARN": "arn:aws:iam::123456789012:role/r", "ClusterJDBCURL": url,
            "CopyCommand": {"DataTableName": "t"},
            "S3Configuration": {"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::b12"}}})
    };
    let rules = Rules {
        required: &[],
        unpatterned: &[("RedshiftDestinationConfiguration", "ClusterJDBCURL")],
    };
    let url = "jdbc:postgresql://127.0.0.1:5432/db";
    assert!(
        model
            .check_input("CreateDeliveryStream", &input(url))
            .is_err()
    );
    model
        .check_input_with("CreateDeliveryStream", &input(url), &rules)
        .unwrap();
    // The other constraints (here the length, at least 1) still apply.
    assert!(
        model
            .check_input_with("CreateDeliveryStream", &input(""), &rules)
            .is_err()
    );
}
