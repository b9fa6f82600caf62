//! The AWS-compatible HTTP API (Kinesis JSON 1.1) against the real server, over
//! plain HTTP/1.1: each operation served so far, AWS's shapes, and errors in
//! AWS form (status, `__type`, `message`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_tests::{Server, data_dir};
use serde_json::{Value, json};

/// One POST / with `X-Amz-Target: Kinesis_20131202.<op>`: (status, JSON body).
fn call(addr: SocketAddr, op: &str, body: &str) -> (u16, Value) {
    call_raw(addr, &format!("Kinesis_20131202.{op}"), body.as_bytes())
}

fn call_raw(addr: SocketAddr, target: &str, body: &[u8]) -> (u16, Value) {
    send(addr, target, body.len(), body)
}

/// Sends a request declaring `length` body bytes but sending only `body`.
fn send(addr: SocketAddr, target: &str, length: usize, body: &[u8]) -> (u16, Value) {
    let mut conn = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    // An operation without output answers an empty body, as AWS does.
    if body.is_empty() {
        return (status, Value::Null);
    }
    (status, serde_json::from_slice(&body).unwrap())
}

fn ok(addr: SocketAddr, op: &str, body: Value) -> Value {
    let (status, out) = call(addr, op, &body.to_string());
    assert_eq!(status, 200, "{op} {body}: {out}");
    out
}

/// Each (operation, input, exception) is refused with HTTP 400, that `__type`
/// and a message.
fn assert_refused(addr: SocketAddr, cases: &[(&str, Value, &str)]) {
    for (op, body, want) in cases {
        let (status, kind, message) = refused(addr, op, &body.to_string());
        assert_eq!(
            (status, kind.as_str()),
            (400, *want),
            "{op} {body}: {message}"
        );
        assert!(!message.is_empty(), "{op} {body}: empty message");
    }
}

fn refused(addr: SocketAddr, op: &str, body: &str) -> (u16, String, String) {
    let (status, out) = call(addr, op, body);
    (
        status,
        out["__type"].as_str().unwrap_or_default().to_owned(),
        // AWS spells it `Message` in SerializationException.
        out["message"]
            .as_str()
            .or(out["Message"].as_str())
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn records_put_over_http_are_read_back_over_http() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let a = server.http_addr;

    ok(
        a,
        "CreateStream",
        json!({"StreamName": "h", "ShardCount": 2}),
    );
    let listed = ok(a, "ListStreams", json!({}));
    assert_eq!(listed["StreamNames"], json!(["h"]));
    assert_eq!(listed["HasMoreStreams"], json!(false));
    let described = ok(a, "DescribeStream", json!({"StreamName": "h"}));
    let d = &described["StreamDescription"];
    assert_eq!(d["StreamStatus"], "ACTIVE");
    assert_eq!(
        d["StreamARN"],
        "arn:aws:kinesis:us-east-1:000000000000:stream/h"
    );
    assert_eq!(d["Shards"].as_array().unwrap().len(), 2);
    assert_eq!(d["Shards"][0]["HashKeyRange"]["StartingHashKey"], "0");
    assert_eq!(
        d["Shards"][1]["HashKeyRange"]["EndingHashKey"],
        u128::MAX.to_string()
    );
    // By ARN.
    let summary = ok(
        a,
        "DescribeStreamSummary",
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/h"}),
    );
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 2);
    let shards = ok(a, "ListShards", json!({"StreamName": "h"}));
    assert_eq!(shards["Shards"], d["Shards"]);

    // One record, then a batch; every record lands in shard 0 by its hash key.
    let one = ok(
        a,
        "PutRecord",
        json!({"StreamName": "h", "PartitionKey": "k", "ExplicitHashKey": "1", "Data": BASE64.encode(b"first")}),
    );
    assert_eq!(one["ShardId"], "shardId-000000000000");
    let records: Vec<Value> = (0..5)
        .map(|i| json!({"PartitionKey": format!("k{i}"), "ExplicitHashKey": "7", "Data": BASE64.encode(format!("r{i}"))}))
        .collect();
    let many = ok(
        a,
        "PutRecords",
        json!({"StreamName": "h", "Records": records}),
    );
    assert_eq!(many["FailedRecordCount"], 0);
    assert_eq!(many["Records"].as_array().unwrap().len(), 5);

    let it = ok(
        a,
        "GetShardIterator",
        json!({"StreamName": "h", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = ok(
        a,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    );
    let data: Vec<Vec<u8>> = got["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| BASE64.decode(r["Data"].as_str().unwrap()).unwrap())
        .collect();
    let mut want = vec![b"first".to_vec()];
    want.extend((0..5).map(|i| format!("r{i}").into_bytes()));
    assert_eq!(data, want);
    assert_eq!(got["Records"][0]["SequenceNumber"], one["SequenceNumber"]);
    assert!(
        got["Records"][0]["ApproximateArrivalTimestamp"]
            .as_f64()
            .unwrap()
            > 1.7e9
    );
    assert!(got["NextShardIterator"].is_string());
    assert_eq!(got["MillisBehindLatest"], 0);

    // AFTER_SEQUENCE_NUMBER of the first record starts at the second.
    let it = ok(
        a,
        "GetShardIterator",
        json!({"StreamName": "h", "ShardId": "shardId-000000000000",
               "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
               "StartingSequenceNumber": one["SequenceNumber"]}),
    );
    let got = ok(
        a,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"], "Limit": 2}),
    );
    assert_eq!(got["Records"].as_array().unwrap().len(), 2);
    assert_eq!(got["Records"][0]["PartitionKey"], "k0");

    ok(a, "DeleteStream", json!({"StreamName": "h"}));
    assert_eq!(ok(a, "ListStreams", json!({}))["StreamNames"], json!([]));
}

#[test]
fn bad_requests_get_aws_errors_and_change_nothing() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "e", "ShardCount": 1}),
    );

    let (status, out) = call_raw(a, "Kinesis_20131202.Bogus", b"{}");
    assert_eq!(
        (status, out["__type"].as_str().unwrap()),
        (400, "UnknownOperationException")
    );
    let (status, out) = call_raw(a, "Other.ListStreams", b"{}");
    assert_eq!(
        (status, out["__type"].as_str().unwrap()),
        (400, "UnknownOperationException")
    );

    let cases: &[(&str, &str, &str)] = &[
        ("ListStreams", "{not json", "SerializationException"),
        ("ListStreams", "[1]", "SerializationException"),
        ("DescribeStream", "{}", "ValidationException"),
        (
            "DescribeStream",
            r#"{"StreamName": 5}"#,
            "SerializationException",
        ),
        (
            "DescribeStream",
            r#"{"StreamName": "nope"}"#,
            "ResourceNotFoundException",
        ),
        // Not an ARN by the model's pattern (a 12-digit account).
        (
            "DescribeStream",
            r#"{"StreamARN": "arn:aws:kinesis:eu-west-1:1:stream/e"}"#,
            "ValidationException",
        ),
        // An ARN, of another region.
        (
            "DescribeStream",
            r#"{"StreamARN": "arn:aws:kinesis:eu-west-1:000000000000:stream/e"}"#,
            "InvalidArgumentException",
        ),
        (
            "PutRecord",
            r#"{"StreamName": "e", "PartitionKey": "k"}"#,
            "ValidationException",
        ),
        (
            "PutRecord",
            r#"{"StreamName": "e", "PartitionKey": "k", "Data": "!!"}"#,
            "SerializationException",
        ),
        (
            "PutRecords",
            r#"{"StreamName": "e"}"#,
            "ValidationException",
        ),
        (
            "PutRecords",
            r#"{"StreamName": "e", "Records": [{"PartitionKey": "k"}]}"#,
            "ValidationException",
        ),
        (
            "CreateStream",
            r#"{"StreamName": "e", "ShardCount": 1}"#,
            "ResourceInUseException",
        ),
        (
            "CreateStream",
            r#"{"StreamName": "z", "ShardCount": 0}"#,
            "ValidationException",
        ),
        (
            "GetShardIterator",
            r#"{"StreamName": "e", "ShardId": "shardId-000000000000", "ShardIteratorType": "SOON"}"#,
            "ValidationException",
        ),
        (
            "GetShardIterator",
            r#"{"StreamName": "e", "ShardId": "shardId-000000000009", "ShardIteratorType": "LATEST"}"#,
            "ResourceNotFoundException",
        ),
        (
            "GetRecords",
            r#"{"ShardIterator": "garbage"}"#,
            "InvalidArgumentException",
        ),
        (
            "GetRecords",
            r#"{"ShardIterator": "x", "Limit": 0}"#,
            "ValidationException",
        ),
    ];
    for (op, body, want) in cases {
        let (status, kind, message) = refused(a, op, body);
        assert_eq!(
            (status, kind.as_str()),
            (400, *want),
            "{op} {body}: {message}"
        );
        assert!(!message.is_empty(), "{op} {body}: empty message");
    }

    // A body over the limit is refused from its declared length, before any of
    // it is read.
    let (status, out) = send(a, "Kinesis_20131202.ListStreams", 17 << 20, b"");
    assert_eq!(
        (status, out["__type"].as_str().unwrap()),
        (413, "SerializationException")
    );

    // None of it changed anything: the stream is empty and alone.
    assert_eq!(ok(a, "ListStreams", json!({}))["StreamNames"], json!(["e"]));
    let it = ok(
        a,
        "GetShardIterator",
        json!({"StreamName": "e", "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON"}),
    );
    let got = ok(
        a,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    );
    assert_eq!(got["Records"], json!([]));
}

#[test]
fn listings_page_and_retention_changes_keep_aws_bounds() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    for name in ["s1", "s2", "s3"] {
        ok(
            a,
            "CreateStream",
            json!({"StreamName": name, "ShardCount": 5}),
        );
    }

    // ListStreams: pages of two, by NextToken, then by ExclusiveStartStreamName.
    let first = ok(a, "ListStreams", json!({"Limit": 2}));
    assert_eq!(first["StreamNames"], json!(["s1", "s2"]));
    assert_eq!(first["HasMoreStreams"], json!(true));
    let second = ok(
        a,
        "ListStreams",
        json!({"Limit": 2, "NextToken": first["NextToken"]}),
    );
    assert_eq!(second["StreamNames"], json!(["s3"]));
    assert_eq!(second["HasMoreStreams"], json!(false));
    assert!(second.get("NextToken").is_none());
    let after = ok(a, "ListStreams", json!({"ExclusiveStartStreamName": "s1"}));
    assert_eq!(after["StreamNames"], json!(["s2", "s3"]));

    // ListShards: pages of two by NextToken (which names the stream itself).
    let mut ids = Vec::new();
    let mut page = ok(
        a,
        "ListShards",
        json!({"StreamName": "s2", "MaxResults": 2}),
    );
    loop {
        for s in page["Shards"].as_array().unwrap() {
            ids.push(s["ShardId"].as_str().unwrap().to_owned());
        }
        let Some(token) = page.get("NextToken").cloned() else {
            break;
        };
        page = ok(
            a,
            "ListShards",
            json!({"NextToken": token, "MaxResults": 2}),
        );
    }
    let want: Vec<String> = (0..5).map(|i| format!("shardId-{i:012}")).collect();
    assert_eq!(ids, want);
    let later = ok(
        a,
        "ListShards",
        json!({"StreamName": "s2", "ExclusiveStartShardId": "shardId-000000000003",
               "ShardFilter": {"Type": "AT_LATEST"}}),
    );
    assert_eq!(later["Shards"].as_array().unwrap().len(), 1);
    let (status, kind, _) = refused(
        a,
        "ListShards",
        &json!({"StreamName": "s2", "NextToken": page_token(a)}).to_string(),
    );
    assert_eq!((status, kind.as_str()), (400, "InvalidArgumentException"));
    let (_, kind, _) = refused(a, "ListShards", r#"{"StreamName": "s2", "MaxResults": 0}"#);
    assert_eq!(kind, "ValidationException");
    let (_, kind, _) = refused(
        a,
        "ListShards",
        r#"{"StreamName": "s2", "ShardFilter": {"Type": "SOME"}}"#,
    );
    assert_eq!(kind, "ValidationException");

    // Retention: 24 h to start, up and down within AWS's bounds and directions.
    let hours = |a| {
        ok(a, "DescribeStreamSummary", json!({"StreamName": "s1"}))["StreamDescriptionSummary"]["RetentionPeriodHours"].as_i64().unwrap()
    };
    assert_eq!(hours(a), 24);
    ok(
        a,
        "IncreaseStreamRetentionPeriod",
        json!({"StreamName": "s1", "RetentionPeriodHours": 168}),
    );
    assert_eq!(hours(a), 168);
    for (op, h) in [
        ("IncreaseStreamRetentionPeriod", 48),
        ("DecreaseStreamRetentionPeriod", 200),
        ("DecreaseStreamRetentionPeriod", 23),
        ("IncreaseStreamRetentionPeriod", 8761),
        ("IncreaseStreamRetentionPeriod", 1_i64 << 40),
    ] {
        let (status, kind, message) = refused(
            a,
            op,
            &json!({"StreamName": "s1", "RetentionPeriodHours": h}).to_string(),
        );
        assert_eq!(
            (status, kind.as_str()),
            (400, "InvalidArgumentException"),
            "{op} {h}: {message}"
        );
    }
    assert_eq!(hours(a), 168, "refused changes changed nothing");
    ok(
        a,
        "DecreaseStreamRetentionPeriod",
        json!({"StreamName": "s1", "RetentionPeriodHours": 24}),
    );
    assert_eq!(hours(a), 24);

    let limits = ok(a, "DescribeLimits", json!({}));
    assert_eq!(limits["OpenShardCount"], 15);
    assert!(limits["ShardLimit"].as_u64().unwrap() >= 15);
}

/// A valid ListShards NextToken (of stream s2 after its first shard).
fn page_token(a: SocketAddr) -> Value {
    ok(
        a,
        "ListShards",
        json!({"StreamName": "s2", "MaxResults": 1}),
    )["NextToken"]
        .clone()
}

#[test]
fn tags_by_name_and_by_arn_survive_a_restart() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "t", "ShardCount": 1, "Tags": {"team": "data"}}),
    );
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/t";
    ok(
        a,
        "AddTagsToStream",
        json!({"StreamName": "t", "Tags": {"env": "dev", "team": "core"}}),
    );
    ok(
        a,
        "TagResource",
        json!({"ResourceARN": arn, "Tags": {"cost": "42"}}),
    );
    let listed = ok(a, "ListTagsForStream", json!({"StreamName": "t"}));
    assert_eq!(
        listed["Tags"],
        json!([{"Key": "cost", "Value": "42"}, {"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "core"}])
    );
    assert_eq!(listed["HasMoreTags"], json!(false));
    let page = ok(
        a,
        "ListTagsForStream",
        json!({"StreamName": "t", "Limit": 1, "ExclusiveStartTagKey": "cost"}),
    );
    assert_eq!(page["Tags"], json!([{"Key": "env", "Value": "dev"}]));
    assert_eq!(page["HasMoreTags"], json!(true));
    ok(
        a,
        "RemoveTagsFromStream",
        json!({"StreamName": "t", "TagKeys": ["env", "absent"]}),
    );
    ok(
        a,
        "UntagResource",
        json!({"ResourceARN": arn, "TagKeys": ["cost"]}),
    );

    // Refusals change nothing: too many tags, empty key, unknown stream, bad ARN.
    let many: serde_json::Map<String, Value> =
        (0..50).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, kind, message) = refused(
        a,
        "AddTagsToStream",
        &json!({"StreamName": "t", "Tags": many}).to_string(),
    );
    assert_eq!(
        (status, kind.as_str()),
        (400, "InvalidArgumentException"),
        "{message}"
    );
    assert_refused(
        a,
        &[
            (
                "AddTagsToStream",
                json!({"StreamName": "t", "Tags": {"": "v"}}),
                "ValidationException",
            ),
            (
                "AddTagsToStream",
                json!({"StreamName": "t", "Tags": {}}),
                "ValidationException",
            ),
            (
                "AddTagsToStream",
                json!({"StreamName": "nope", "Tags": {"a": "b"}}),
                "ResourceNotFoundException",
            ),
            (
                "RemoveTagsFromStream",
                json!({"StreamName": "t", "TagKeys": []}),
                "ValidationException",
            ),
            // Not an ARN by the model's pattern.
            (
                "TagResource",
                json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:consumer/x", "Tags": {"a": "b"}}),
                "ValidationException",
            ),
            // A consumer's ARN: not a stream's.
            (
                "TagResource",
                json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/t/consumer/x:1", "Tags": {"a": "b"}}),
                "InvalidArgumentException",
            ),
        ],
    );

    server.terminate();
    server.restart();
    let a = server.http_addr;
    let after = ok(a, "ListTagsForResource", json!({"ResourceARN": arn}));
    assert_eq!(after["Tags"], json!([{"Key": "team", "Value": "core"}]));
}

/// A resource policy as PutResourcePolicy takes it (one this server reads).
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kinesis:GetRecords"}]}"#;

#[test]
fn stream_settings_are_stored_reported_and_durable() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let keyring = riffle_tests::empty_keyring(dir.path());
    let mut server = Server::start(dir.path(), &["--cores", "1", "--kms-keyring", &keyring]);
    let a = server.http_addr;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/o";
    // ON_DEMAND without a ShardCount; PROVISIONED needs one.
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "o", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
    );
    let (_, kind, _) = refused(a, "CreateStream", r#"{"StreamName": "p"}"#);
    assert_eq!(kind, "InvalidArgumentException");
    let summary = |a| {
        ok(a, "DescribeStreamSummary", json!({"StreamName": "o"}))["StreamDescriptionSummary"]
            .clone()
    };
    let s = summary(a);
    assert_eq!(s["StreamModeDetails"]["StreamMode"], "ON_DEMAND");
    assert_eq!(s["OpenShardCount"], 4);
    assert_eq!(s["EncryptionType"], "NONE");

    ok(
        a,
        "StartStreamEncryption",
        json!({"StreamName": "o", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    );
    let on = ok(
        a,
        "EnableEnhancedMonitoring",
        json!({"StreamName": "o", "ShardLevelMetrics": ["IncomingBytes", "OutgoingRecords"]}),
    );
    assert_eq!(on["CurrentShardLevelMetrics"], json!([]));
    assert_eq!(
        on["DesiredShardLevelMetrics"],
        json!(["IncomingBytes", "OutgoingRecords"])
    );
    let off = ok(
        a,
        "DisableEnhancedMonitoring",
        json!({"StreamARN": arn, "ShardLevelMetrics": ["IncomingBytes"]}),
    );
    assert_eq!(off["DesiredShardLevelMetrics"], json!(["OutgoingRecords"]));
    ok(
        a,
        "PutResourcePolicy",
        json!({"ResourceARN": arn, "Policy": POLICY}),
    );
    ok(
        a,
        "UpdateStreamMode",
        json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "PROVISIONED"}}),
    );

    assert_refused(
        a,
        &[
            (
                "StartStreamEncryption",
                json!({"StreamName": "o", "EncryptionType": "AES", "KeyId": "k"}),
                "ValidationException",
            ),
            (
                "StartStreamEncryption",
                json!({"StreamName": "o", "EncryptionType": "KMS"}),
                "ValidationException",
            ),
            (
                "EnableEnhancedMonitoring",
                json!({"StreamName": "o", "ShardLevelMetrics": ["Nope"]}),
                "ValidationException",
            ),
            (
                "PutResourcePolicy",
                json!({"ResourceARN": arn, "Policy": "not json"}),
                "InvalidArgumentException",
            ),
            (
                "UpdateStreamMode",
                json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": "FAST"}}),
                "ValidationException",
            ),
            (
                "StartStreamEncryption",
                json!({"StreamName": "nope", "EncryptionType": "KMS", "KeyId": "k"}),
                "ResourceNotFoundException",
            ),
        ],
    );

    server.terminate();
    server.restart();
    let a = server.http_addr;
    let s = summary(a);
    assert_eq!(s["StreamModeDetails"]["StreamMode"], "PROVISIONED");
    assert_eq!(
        (s["EncryptionType"].as_str(), s["KeyId"].as_str()),
        (Some("KMS"), Some("alias/aws/kinesis"))
    );
    assert_eq!(
        s["EnhancedMonitoring"],
        json!([{"ShardLevelMetrics": ["OutgoingRecords"]}])
    );
    let d = ok(a, "DescribeStream", json!({"StreamName": "o"}));
    assert_eq!(d["StreamDescription"]["EncryptionType"], "KMS");
    assert_eq!(
        ok(a, "GetResourcePolicy", json!({"ResourceARN": arn}))["Policy"],
        POLICY
    );
    ok(
        a,
        "StopStreamEncryption",
        json!({"StreamName": "o", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    );
    ok(a, "DeleteResourcePolicy", json!({"ResourceARN": arn}));
    let (_, kind, _) = refused(
        a,
        "DeleteResourcePolicy",
        &json!({"ResourceARN": arn}).to_string(),
    );
    assert_eq!(kind, "ResourceNotFoundException");
    assert_eq!(
        ok(a, "GetResourcePolicy", json!({"ResourceARN": arn}))["Policy"],
        "{}"
    );
    assert_eq!(summary(a)["EncryptionType"], "NONE");
}

#[test]
fn consumers_are_registered_durably_and_refused_in_aws_form() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/c";
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "c", "ShardCount": 1}),
    );
    let c = ok(
        a,
        "RegisterStreamConsumer",
        json!({"StreamARN": arn, "ConsumerName": "reader"}),
    );
    let consumer_arn = c["Consumer"]["ConsumerARN"].as_str().unwrap().to_owned();
    assert!(
        consumer_arn.starts_with(&format!("{arn}/consumer/reader:")),
        "{consumer_arn}"
    );
    assert_refused(
        a,
        &[
            (
                "RegisterStreamConsumer",
                json!({"StreamARN": arn, "ConsumerName": "reader"}),
                "ResourceInUseException",
            ),
            (
                "RegisterStreamConsumer",
                json!({"StreamARN": arn, "ConsumerName": "bad name"}),
                "ValidationException",
            ),
            (
                "RegisterStreamConsumer",
                json!({"StreamARN": arn}),
                "ValidationException",
            ),
            (
                "RegisterStreamConsumer",
                json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/none", "ConsumerName": "r"}),
                "ResourceNotFoundException",
            ),
            (
                "DescribeStreamConsumer",
                json!({"StreamARN": arn, "ConsumerName": "other"}),
                "ResourceNotFoundException",
            ),
            // Not a consumer ARN by the model's pattern.
            (
                "DescribeStreamConsumer",
                json!({"ConsumerARN": "arn:aws:kinesis:us-east-1:000000000000:stream/c/nope"}),
                "ValidationException",
            ),
            (
                "DescribeStreamConsumer",
                json!({"StreamARN": arn}),
                "InvalidArgumentException",
            ),
            (
                "DeregisterStreamConsumer",
                json!({"StreamARN": arn, "ConsumerName": "other"}),
                "ResourceNotFoundException",
            ),
        ],
    );
    // Twenty at most.
    for i in 1..20 {
        ok(
            a,
            "RegisterStreamConsumer",
            json!({"StreamARN": arn, "ConsumerName": format!("r{i}")}),
        );
    }
    let (_, kind, _) = refused(
        a,
        "RegisterStreamConsumer",
        &json!({"StreamARN": arn, "ConsumerName": "r20"}).to_string(),
    );
    assert_eq!(kind, "LimitExceededException");

    server.terminate();
    server.restart();
    let a = server.http_addr;
    let d = ok(
        a,
        "DescribeStreamConsumer",
        json!({"ConsumerARN": consumer_arn}),
    );
    assert_eq!(d["ConsumerDescription"]["ConsumerName"], "reader");
    assert_eq!(d["ConsumerDescription"]["ConsumerARN"], json!(consumer_arn));
    let listed = ok(a, "ListStreamConsumers", json!({"StreamARN": arn}));
    assert_eq!(listed["Consumers"].as_array().unwrap().len(), 20);
}

#[test]
fn account_settings_and_record_size_are_checked_and_durable() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/m";
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "m", "ShardCount": 1}),
    );
    for (op, body) in [
        (
            "UpdateMaxRecordSize",
            json!({"StreamARN": arn, "MaxRecordSizeInKiB": 1023}),
        ),
        (
            "UpdateMaxRecordSize",
            json!({"StreamARN": arn, "MaxRecordSizeInKiB": 10241}),
        ),
        ("UpdateMaxRecordSize", json!({"StreamARN": arn})),
        (
            "UpdateAccountSettings",
            json!({"MinimumThroughputBillingCommitment": {"Status": "MAYBE"}}),
        ),
        (
            "UpdateStreamWarmThroughput",
            json!({"StreamName": "m", "WarmThroughputMiBps": -1}),
        ),
    ] {
        let (status, kind, message) = refused(a, op, &body.to_string());
        assert_eq!(
            (status, kind.as_str()),
            (400, "ValidationException"),
            "{op} {body}: {message}"
        );
    }
    ok(
        a,
        "UpdateMaxRecordSize",
        json!({"StreamARN": arn, "MaxRecordSizeInKiB": 10240}),
    );
    let on = ok(
        a,
        "UpdateAccountSettings",
        json!({"MinimumThroughputBillingCommitment": {"Status": "ENABLED"}}),
    );
    let started = on["MinimumThroughputBillingCommitment"]["StartedAt"]
        .as_f64()
        .unwrap();

    server.terminate();
    server.restart();
    let a = server.http_addr;
    let s = ok(a, "DescribeStreamSummary", json!({"StreamName": "m"}));
    assert_eq!(s["StreamDescriptionSummary"]["MaxRecordSizeInKiB"], 10240);
    let acct = ok(a, "DescribeAccountSettings", json!({}));
    assert_eq!(
        acct["MinimumThroughputBillingCommitment"]["Status"],
        "ENABLED"
    );
    assert_eq!(
        acct["MinimumThroughputBillingCommitment"]["StartedAt"].as_f64(),
        Some(started)
    );
}

#[test]
fn arns_carry_the_configured_region_and_account() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(
        dir.path(),
        &[
            "--cores",
            "1",
            "--region",
            "eu-west-3",
            "--account",
            "123456789012",
        ],
    );
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "r", "ShardCount": 1}),
    );
    let arn = "arn:aws:kinesis:eu-west-3:123456789012:stream/r";
    let s = ok(a, "DescribeStreamSummary", json!({"StreamARN": arn}));
    assert_eq!(s["StreamDescriptionSummary"]["StreamARN"], arn);
    // The default region's ARN is not this server's.
    let (_, kind, _) = refused(
        a,
        "DescribeStreamSummary",
        r#"{"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/r"}"#,
    );
    assert_eq!(kind, "InvalidArgumentException");
}

/// `--account` is the account every "under account ..." message names, over
/// HTTP and on the native protocol: the engine's, the catalog's and
/// resharding's refusals alike.
#[test]
fn messages_name_the_configured_account() {
    use riffle_protocol::native::{Reply, Request, Response, ShardInfo, StartPosition};
    use riffle_tests::{RawConn, reply};

    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "1", "--account", "123456789012"]);
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "m", "ShardCount": 1}),
    );
    for (op, body, want, says) in [
        (
            "DescribeStream",
            json!({"StreamName": "nope"}),
            "ResourceNotFoundException",
            "Stream nope under account 123456789012 not found.",
        ),
        (
            "DeleteStream",
            json!({"StreamName": "nope"}),
            "ResourceNotFoundException",
            "Stream nope under account 123456789012 not found.",
        ),
        (
            "CreateStream",
            json!({"StreamName": "m", "ShardCount": 1}),
            "ResourceInUseException",
            "Stream m under account 123456789012 already exists.",
        ),
        (
            "GetShardIterator",
            json!({"StreamName": "m", "ShardId": "shardId-000000000007", "ShardIteratorType": "LATEST"}),
            "ResourceNotFoundException",
            "Shard shardId-000000000007 in stream m under account 123456789012 does not exist",
        ),
        (
            "MergeShards",
            json!({"StreamName": "m", "ShardToMerge": "shardId-000000000000", "AdjacentShardToMerge": "shardId-000000000000"}),
            "InvalidArgumentException",
            "Shards shardId-000000000000 and shardId-000000000000 in stream m under account 123456789012 are not an adjacent pair of shards eligible for merging",
        ),
    ] {
        let (status, kind, message) = refused(a, op, &body.to_string());
        assert_eq!((status, kind.as_str()), (400, want), "{op}: {message}");
        assert_eq!(message, says, "{op}");
    }

    // The native protocol carries the same messages.
    let mut conn = RawConn::connect(server.addr);
    let refusal = |conn: &mut RawConn, request: &Request<'_>| match reply(&conn.call(1, request)) {
        Reply::Error(e) => e.message,
        other => panic!("{request:?} answered {other:?}"),
    };
    assert_eq!(
        refusal(&mut conn, &Request::DescribeStream { stream: "nope" }),
        "Stream nope under account 123456789012 not found."
    );
    assert_eq!(
        refusal(
            &mut conn,
            &Request::CreateStream {
                stream: "m",
                shard_count: 1
            }
        ),
        "Stream m under account 123456789012 already exists."
    );
    assert_eq!(
        refusal(
            &mut conn,
            &Request::GetShardIterator {
                stream: "m",
                shard_index: 7,
                position: StartPosition::Latest,
            }
        ),
        "Shard shardId-000000000007 in stream m under account 123456789012 does not exist"
    );

    // After a split the open shards are 1 and 2: the native describe and list
    // name them by the indexes the engine gave them.
    let mid = 1u128 << 127;
    ok(
        a,
        "SplitShard",
        json!({"StreamName": "m", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": mid.to_string()}),
    );
    let open = vec![
        ShardInfo {
            shard_index: 1,
            hash_key_start: 0,
            hash_key_end: mid - 1,
        },
        ShardInfo {
            shard_index: 2,
            hash_key_start: mid,
            hash_key_end: u128::MAX,
        },
    ];
    match reply(&conn.call(2, &Request::DescribeStream { stream: "m" })) {
        Reply::Response(Response::Stream(info)) => assert_eq!(info.shards, open),
        other => panic!("DescribeStream answered {other:?}"),
    }
    match reply(&conn.call(3, &Request::ListShards { stream: "m" })) {
        Reply::Response(Response::Shards { shards, .. }) => assert_eq!(shards, open),
        other => panic!("ListShards answered {other:?}"),
    }
    // Shard 2 is readable by index; the closed shard 0 too.
    for shard_index in [0, 2] {
        match reply(&conn.call(
            4,
            &Request::GetShardIterator {
                stream: "m",
                shard_index,
                position: StartPosition::TrimHorizon,
            },
        )) {
            Reply::Response(Response::Iterator(_)) => {}
            other => panic!("shard {shard_index}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_region_or_account_is_refused_at_startup() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    for (flag, value, says) in [
        ("--account", "12", "invalid account"),
        ("--region", "Not A Region", "invalid region"),
        ("--http", "nowhere", "invalid http address"),
        ("--auth", "sigv4", "needs access keys"),
    ] {
        let out = std::process::Command::new(riffle_tests::riffle_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args([flag, value])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
    // TLS: a missing certificate file is an error naming it; a certificate
    // without its key is a usage error.
    let run = |args: &[&str]| {
        std::process::Command::new(riffle_tests::riffle_bin())
            .args([
                "server",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/cert.pem"), "{stderr}");
    let out = run(&["--tls-cert", "/nonexistent/cert.pem"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_largest_tags_and_policies_aws_allows_are_stored() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "1"]);
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "big", "ShardCount": 1}),
    );
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/big";
    // 50 tags with 128-character keys and 256-character values, in one call.
    let tags: serde_json::Map<String, Value> = (0..50)
        .map(|i| (format!("{i:0>128}"), json!("v".repeat(256))))
        .collect();
    ok(
        a,
        "AddTagsToStream",
        json!({"StreamName": "big", "Tags": tags}),
    );
    // A statement with a 19,900-character Sid: some 20 KB in all.
    let policy = format!(
        "{{\"Statement\":{{\"Sid\":\"{}\",\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kinesis:GetRecords\"}}}}",
        "x".repeat(19_900)
    );
    ok(
        a,
        "PutResourcePolicy",
        json!({"ResourceARN": arn, "Policy": policy}),
    );
    server.terminate();
    server.restart();
    let a = server.http_addr;
    let listed = ok(a, "ListTagsForStream", json!({"StreamName": "big"}));
    assert_eq!(listed["Tags"].as_array().unwrap().len(), 50);
    assert_eq!(
        ok(a, "GetResourcePolicy", json!({"ResourceARN": arn}))["Policy"],
        json!(policy)
    );
}

/// JSON PutRecords takes a fast path (borrowed parse, one decode buffer, the
/// answer written as text); its answers and refusals must read exactly as the
/// generic path's, and malformed bodies fall back to the generic refusals.
#[test]
fn put_records_fast_path_answers_like_the_generic_path() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let keyring = riffle_tests::empty_keyring(dir.path());
    let server = Server::start(dir.path(), &["--cores", "2", "--kms-keyring", &keyring]);
    let a = server.http_addr;
    ok(
        a,
        "CreateStream",
        json!({"StreamName": "fast", "ShardCount": 2}),
    );
    let arn = ok(a, "DescribeStreamSummary", json!({"StreamName": "fast"}))
        ["StreamDescriptionSummary"]["StreamARN"]
        .clone();
    let records: Vec<Value> = (0..20)
        .map(|i| json!({"Data": BASE64.encode(format!("r{i}")), "PartitionKey": format!("k{i}")}))
        .collect();
    let put = ok(
        a,
        "PutRecords",
        json!({"StreamARN": arn, "Records": records}),
    );
    assert_eq!(put["FailedRecordCount"], 0);
    // AWS reports EncryptionType only for an encrypted stream.
    assert_eq!(put["EncryptionType"], Value::Null);
    let got = put["Records"].as_array().unwrap();
    assert_eq!(got.len(), 20);
    // Each answer names the shard and sequence number PutRecord-style.
    for (i, r) in got.iter().enumerate() {
        let shard = r["ShardId"].as_str().unwrap();
        let it = ok(
            a,
            "GetShardIterator",
            json!({"StreamName": "fast", "ShardId": shard, "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                   "StartingSequenceNumber": r["SequenceNumber"]}),
        );
        let read = ok(
            a,
            "GetRecords",
            json!({"ShardIterator": it["ShardIterator"], "Limit": 1}),
        );
        assert_eq!(read["Records"][0]["Data"], BASE64.encode(format!("r{i}")));
    }
    ok(
        a,
        "StartStreamEncryption",
        json!({"StreamName": "fast", "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}),
    );
    let put = ok(
        a,
        "PutRecords",
        json!({"StreamName": "fast", "Records": [{"Data": "", "PartitionKey": "k"}]}),
    );
    assert_eq!(put["EncryptionType"], "KMS");
    assert_refused(
        a,
        &[
            (
                "PutRecords",
                json!({"StreamName": "fast", "Records": [{"Data": "!!", "PartitionKey": "k"}]}),
                "SerializationException",
            ),
            (
                "PutRecords",
                json!({"StreamName": "fast", "Records": [{"Data": 5, "PartitionKey": "k"}]}),
                "SerializationException",
            ),
            (
                "PutRecords",
                json!({"StreamName": "fast", "Records": [{"Data": "aGk="}]}),
                "ValidationException",
            ),
            (
                "PutRecords",
                json!({"StreamName": "fast"}),
                "ValidationException",
            ),
            (
                "PutRecords",
                json!({"Records": [{"Data": "aGk=", "PartitionKey": "k"}]}),
                "ValidationException",
            ),
            (
                "PutRecords",
                json!({"StreamName": "fast", "Records": []}),
                "ValidationException",
            ),
            (
                "PutRecords",
                json!({"StreamName": "nope", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]}),
                "ResourceNotFoundException",
            ),
            (
                "PutRecords",
                json!({"StreamARN": "arn:aws:kinesis:us-east-1:1:stream/x", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]}),
                "ValidationException",
            ),
            (
                "PutRecords",
                json!({"StreamARN": "arn:aws:kinesis:eu-west-1:000000000000:stream/x", "Records": [{"Data": "aGk=", "PartitionKey": "k"}]}),
                "InvalidArgumentException",
            ),
        ],
    );
    let (status, _) = call(a, "PutRecords", "{\"StreamName\":");
    assert_eq!(status, 400);
}

/// Slow or abusive clients: connections beyond a core's cap are closed on
/// accept, a connection that goes quiet (even mid-request) is closed after the
/// idle time, and the server keeps serving others throughout.
#[test]
fn connection_caps_and_idle_timeouts_bound_abusive_clients() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(
        dir.path(),
        &[
            "--cores",
            "1",
            "--http-connections-max",
            "3",
            "--http-idle-ms",
            "300",
        ],
    );
    let a = server.http_addr;
    let closed = |conn: &mut TcpStream| {
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        matches!(conn.read(&mut buf), Ok(0) | Err(_))
    };
    // A silent client and one stalled mid-request hold two of the three places.
    let mut silent = TcpStream::connect(a).unwrap();
    let mut stalled = TcpStream::connect(a).unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 100\r\n\r\n{\"Str")
        .unwrap();
    let mut third = TcpStream::connect(a).unwrap();
    // The fourth is over the cap: closed at once.
    let mut fourth = TcpStream::connect(a).unwrap();
    assert!(closed(&mut fourth), "a connection over the cap is closed");
    // The quiet ones are closed after the idle time; then there is room again.
    let started = std::time::Instant::now();
    assert!(closed(&mut silent) && closed(&mut stalled) && closed(&mut third));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, out) = call(a, "ListStreams", "{}");
    assert_eq!(status, 200, "{out}");
}
