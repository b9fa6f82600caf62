//! Tests of `opensearch.rs`: configurations, index rotation, document ids,
//! bulk bodies and answers, error lines.
use super::*;

fn config(flavor: Flavor, extra: Value) -> Map<String, Value> {
    let mut c = json!({
        "RoleARN": "arn:aws:iam::123456789012:role/r",
        "IndexName": "logs",
        "S3Configuration": {"RoleARN": "r", "BucketARN": "arn:aws:s3:::backup"},
    });
    let endpoint = match flavor {
        Flavor::Serverless => "CollectionEndpoint",
        _ => "ClusterEndpoint",
    };
    c[endpoint] = json!("https://search.local:9200/");
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    with_defaults(flavor, c.as_object().unwrap().clone())
}

#[test]
fn defaults_are_aws_and_described() {
    let c = config(Flavor::OpenSearch, json!({}));
    let d = of_config(Flavor::OpenSearch, &c).unwrap();
    assert_eq!(
        (d.size_bytes, d.interval_ms, d.retry_ms),
        (5 << 20, 300_000, 300_000)
    );
    assert_eq!(d.rotation, Rotation::OneDay);
    assert!(d.document_ids && !d.backup_all);
    assert_eq!(
        d.bulk_url(),
        "https://search.local:9200/_bulk?filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"
    );
    assert_eq!(d.backup.bucket, "backup");
    let described = describe(&c);
    assert_eq!(described["IndexRotationPeriod"], "OneDay");
    assert_eq!(described["S3BackupMode"], "FailedDocumentsOnly");
    assert_eq!(described["RetryOptions"], json!({"DurationInSeconds": 300}));
    assert_eq!(
        described["DocumentIdOptions"],
        json!({"DefaultDocumentIdFormat": "FIREHOSE_DEFAULT"})
    );
    assert_eq!(
        described["S3DestinationDescription"]["BucketARN"],
        "arn:aws:s3:::backup"
    );
    assert!(
        described["S3DestinationDescription"]
            .get("S3BackupMode")
            .is_none()
    );
    assert!(described.get("S3Configuration").is_none());
    // Serverless has neither rotation nor document id options.
    let s = config(Flavor::Serverless, json!({}));
    assert!(s.get("IndexRotationPeriod").is_none() && s.get("DocumentIdOptions").is_none());
    let d = of_config(Flavor::Serverless, &s).unwrap();
    assert_eq!((d.rotation, d.document_ids), (Rotation::NoRotation, true));
    let e = config(Flavor::Elasticsearch, json!({"TypeName": "doc"}));
    assert_eq!(
        of_config(Flavor::Elasticsearch, &e)
            .unwrap()
            .type_name
            .as_deref(),
        Some("doc")
    );
    let e = config(Flavor::Elasticsearch, json!({"TypeName": ""}));
    assert_eq!(
        of_config(Flavor::Elasticsearch, &e).unwrap().type_name,
        None
    );
}

#[test]
fn refusals_name_what_is_wrong() {
    use Flavor::*;
    let arn = "arn:aws:es:us-east-1:123456789012:domain/logs";
    #[rustfmt::skip]
    let cases = [
        (OpenSearch, json!({"DomainARN": arn}), "ClusterEndpoint", "give ClusterEndpoint"),
        (Elasticsearch, json!({"DomainARN": arn}), "", "not both"),
        (OpenSearch, json!({}), "ClusterEndpoint", "ClusterEndpoint is required"),
        (Serverless, json!({}), "CollectionEndpoint", "CollectionEndpoint is required"),
        (OpenSearch, json!({"ClusterEndpoint": "ftp://x"}), "", "ClusterEndpoint"),
        (OpenSearch, json!({"ClusterEndpoint": "https://h:9200/?x=1"}), "", "query"),
        (OpenSearch, json!({"IndexName": "Logs"}), "", "lowercase"),
        (OpenSearch, json!({"IndexName": "_x"}), "", "must not start"),
        (OpenSearch, json!({"IndexName": "a b"}), "", "must not contain"),
        (OpenSearch, json!({"IndexName": "x".repeat(250)}), "", "too long"),
        (OpenSearch, json!({"IndexRotationPeriod": "OneYear"}), "", "OneYear"),
        (OpenSearch, json!({"S3BackupMode": "AllData"}), "", "AllData"),
        (OpenSearch, json!({"BufferingHints": {"SizeInMBs": 2}}), "", "both"),
        (OpenSearch, json!({"VpcConfiguration": {}}), "", "VPC"),
        (Serverless, json!({"TypeName": "t"}), "", "TypeName"),
        (OpenSearch, json!({"DocumentIdOptions": {"DefaultDocumentIdFormat": "X"}}), "", "X is not"),
        (OpenSearch, json!({}), "S3Configuration", "S3Configuration is required"),
    ];
    for (flavor, extra, remove, says) in cases {
        let mut c = config(flavor, extra);
        c.remove(remove);
        let e = of_config(flavor, &c).unwrap_err();
        assert!(e.message.contains(says), "{says}: {}", e.message);
    }
}

#[test]
fn updates_merge_the_backup() {
    let c = config(Flavor::OpenSearch, json!({}));
    let u = crate::members::updated(
        &c,
        json!({"IndexName": "other", "S3Update": {"Prefix": "b/"}})
            .as_object()
            .unwrap(),
        &[crate::members::S3_UPDATE],
    );
    assert_eq!(u["IndexName"], "other");
    assert_eq!(u["S3Configuration"]["Prefix"], "b/");
    assert_eq!(u["S3Configuration"]["BucketARN"], "arn:aws:s3:::backup");
    assert!(u.get("S3Update").is_none());
}

#[test]
fn index_names_rotate_with_the_arrival_time() {
    let at = 1_456_405_200_000; // 2016-02-25T13:00:00Z, AWS's example
    for (rotation, name) in [
        (Rotation::NoRotation, "myindex"),
        (Rotation::OneHour, "myindex-2016-02-25-13"),
        (Rotation::OneDay, "myindex-2016-02-25"),
        // US weeks (see the module doc): AWS's table says w08, its rule w09.
        (Rotation::OneWeek, "myindex-2016-w09"),
        (Rotation::OneMonth, "myindex-2016-02"),
    ] {
        assert_eq!(index_name("myindex", rotation, at), name);
    }
    let day = |y: i32, m: u32, d: u32| {
        // Days from 1970-01-01 (Hinnant's days_from_civil).
        let y = i64::from(y) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (i64::from(m) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400_000
    };
    for ((y, m, d), week) in [
        ((2016, 1, 1), (2016, 1)),   // Friday: week 1 began Sunday 27 December
        ((2015, 12, 27), (2016, 1)), // that Sunday
        ((2015, 12, 26), (2015, 52)),
        ((2016, 1, 3), (2016, 2)),
        ((2017, 1, 1), (2017, 1)), // a Sunday
        ((2016, 12, 31), (2016, 53)),
        ((2020, 8, 12), (2020, 33)), // AWS's "2020-w33"
    ] {
        assert_eq!(us_week(day(y, m, d) + 3_600_000), week, "{y}-{m}-{d}");
    }
}

#[test]
fn documents_are_json_objects_on_one_line() {
    assert_eq!(
        document(b"{\"a\":1}").unwrap(),
        Cow::Borrowed(&b"{\"a\":1}"[..])
    );
    assert_eq!(
        &*document(b"{\n \"a\": \"x\\ny\"\r\n}\n").unwrap(),
        b"{  \"a\": \"x\\ny\"  } "
    );
    assert!(
        document(b"not json")
            .unwrap_err()
            .contains("not valid JSON")
    );
    assert!(document(b"[1]").unwrap_err().contains("not a JSON object"));
    assert!(document(b"{\"a\":1} {").is_err());
    assert!(document(b"{\"a\":\"\xff\"}").unwrap_err().contains("UTF-8"));
    assert!(document(b"{\"a\":\"x\ny\"}").is_err());
    let a = document_id("s-1-0-100", 3);
    assert_eq!(a, document_id("s-1-0-100", 3));
    assert_ne!(a, document_id("s-1-0-101", 3));
    assert!(a.ends_with("-3") && a.len() == 22, "{a}");
}

#[test]
fn bulk_bodies_are_ndjson_with_explicit_index_and_id() {
    let docs = [
        Doc {
            index: "i-2016".into(),
            id: Some("x-0".into()),
            source: Cow::Borrowed(b"{\"a\":1}"),
        },
        Doc {
            index: "i".into(),
            id: None,
            source: Cow::Borrowed(b"{}"),
        },
    ];
    let body = bulk_body(docs.iter(), None);
    let lines: Vec<Value> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"index": {"_index": "i-2016", "_id": "x-0"}}),
            json!({"a": 1}),
            json!({"index": {"_index": "i"}}),
            json!({}),
        ]
    );
    assert!(body.ends_with(b"\n"));
    assert_eq!(
        docs.iter().map(|d| doc_bytes(d, None)).sum::<usize>(),
        body.len()
    );
    let typed = bulk_body(docs[..1].iter(), Some("doc"));
    let action: Value =
        serde_json::from_slice(typed.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(action["index"]["_type"], "doc");
    assert_eq!(ranges(&[10; 7], 3, 1000), vec![0..3, 3..6, 6..7]);
    assert_eq!(
        ranges(&[600, 600, 10, 2000], 100, 1000),
        vec![0..1, 1..3, 3..4]
    );
    assert!(ranges(&[], 3, 10).is_empty());
}

#[test]
fn bulk_answers_say_which_documents_failed() {
    assert_eq!(
        read_bulk_answer(200, br#"{"took":3,"errors":false,"items":[]}"#, 2).unwrap(),
        vec![Item::Indexed; 2]
    );
    let answer = json!({"took": 1, "errors": true, "items": [
        {"index": {"_index": "i", "_id": "a", "status": 201}},
        {"index": {"_index": "i", "_id": "b", "status": 400,
                   "error": {"type": "mapper_parsing_exception", "reason": "failed to parse"}}},
        {"index": {"_index": "i", "_id": "c", "status": 429,
                   "error": {"type": "es_rejected_execution_exception"}}},
    ]});
    let items = read_bulk_answer(200, answer.to_string().as_bytes(), 3).unwrap();
    assert_eq!(items[0], Item::Indexed);
    assert!(
        matches!(&items[1], Item::Failed { code, message } if code == "400" && message.contains("mapper_parsing_exception"))
    );
    assert!(matches!(&items[2], Item::Retry { code, .. } if code == "429"));
    for (status, body, count) in [
        (429, &b"{}"[..], 1),
        (500, b"oops", 1),
        (200, b"not json", 1),
        (200, br#"{"errors":true,"items":[]}"#, 1),
        (200, br#"{"errors":true,"items":[{"index":{}}]}"#, 1),
    ] {
        let e = read_bulk_answer(status, body, count).unwrap_err();
        assert_eq!(e.code, status.to_string());
    }
}

#[test]
fn filtered_bulk_answers_are_read_as_whole_ones() {
    // What `filter_path` leaves of an answer: no took, ids or shards.
    assert_eq!(
        read_bulk_answer(
            200,
            br#"{"errors":false,"items":[{"index":{"status":201}},{"index":{"status":200}}]}"#,
            2
        )
        .unwrap(),
        vec![Item::Indexed; 2]
    );
    let answer = br#"{"errors":true,"items":[{"index":{"status":201}},
        {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [x]"}}},
        {"index":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}]}"#;
    assert_eq!(
        read_bulk_answer(200, answer, 3).unwrap(),
        vec![
            Item::Indexed,
            Item::Failed {
                code: "400".into(),
                message: "mapper_parsing_exception: failed to parse field [x]".into()
            },
            Item::Retry {
                code: "503".into(),
                message: "unavailable_shards_exception: primary shard is not active".into()
            },
        ]
    );
}

#[test]
fn failure_messages_are_cut_to_512_bytes_whatever_the_answer() {
    assert_eq!(capped("short".into()), "short");
    let exact = "x".repeat(FAILURE_MESSAGE_BYTES_MAX);
    assert_eq!(capped(exact.clone()), exact);
    let cut = capped("y".repeat(FAILURE_MESSAGE_BYTES_MAX + 1));
    assert_eq!(cut.len(), FAILURE_MESSAGE_BYTES_MAX);
    assert!(cut.ends_with("y..."));
    // At a character boundary: 'é' is two bytes.
    let cut = capped("é".repeat(FAILURE_MESSAGE_BYTES_MAX));
    assert!(
        cut.len() <= FAILURE_MESSAGE_BYTES_MAX && cut.ends_with("é..."),
        "{cut}"
    );

    // Every message made from an answer, however large the answer.
    let big = vec![b'z'; 8 << 20];
    let long_reason = "r".repeat(100_000);
    let item = json!({"errors": true, "items": [{"index": {"status": 400,
        "error": {"type": "mapper_parsing_exception", "reason": long_reason}}}]});
    let messages = [
        read_bulk_answer(500, &big, 1).unwrap_err().message,
        read_bulk_answer(200, &big, 1).unwrap_err().message,
        match &read_bulk_answer(200, item.to_string().as_bytes(), 1).unwrap()[0] {
            Item::Failed { message, .. } => message.clone(),
            other => panic!("{other:?}"),
        },
    ];
    for m in &messages {
        assert!(m.len() <= FAILURE_MESSAGE_BYTES_MAX, "{} bytes", m.len());
        assert!(m.ends_with("..."), "{m}");
    }
    // The error's type comes first, so the cut keeps it.
    assert!(messages[2].starts_with("mapper_parsing_exception: rrr"));
    // An error without type and reason is kept as its JSON.
    let odd = br#"{"errors":true,"items":[{"index":{"status":409,"error":"version conflict"}}]}"#;
    assert_eq!(
        read_bulk_answer(200, odd, 1).unwrap(),
        vec![Item::Failed {
            code: "409".into(),
            message: r#""version conflict""#.into()
        }]
    );
}

#[test]
fn failed_document_lines_are_aws_json() {
    let f = FailedDoc {
        attempts: 2,
        arrival_ms: 5,
        code: "400",
        message: "bad",
        ended_ms: 9,
        id: Some("x-1"),
        index: "logs-2016-02-25",
        raw: b"ab",
    };
    let es: Value = serde_json::from_slice(&error_record(Flavor::OpenSearch, None, &f)).unwrap();
    assert_eq!(
        es,
        json!({"attemptsMade": 2, "arrivalTimestamp": 5, "errorCode": "400",
        "errorMessage": "bad", "attemptEndingTimestamp": 9, "esDocumentId": "x-1",
        "esIndexName": "logs-2016-02-25", "esTypeName": "", "rawData": "YWI="})
    );
    let os: Value = serde_json::from_slice(&error_record(Flavor::Serverless, None, &f)).unwrap();
    assert_eq!(
        (os["osDocumentId"].as_str(), os["osIndexName"].as_str()),
        (Some("x-1"), Some("logs-2016-02-25"))
    );
    assert!(os.get("esDocumentId").is_none() && os.get("esTypeName").is_none());
    assert!(error_record(Flavor::Elasticsearch, Some("t"), &f).ends_with(b"}\n"));
}
