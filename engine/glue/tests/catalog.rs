//! Glue through the HTTP gateway and its read API together: tables created
//! and updated with `AWSGlue.*` requests are what `GlueCatalog::table` answers
//! (each version), on the running engine and after it is started again on the
//! same data directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use riffle_engine::http::{HttpConfig, HttpServer, Services};
use riffle_engine::{Engine, EngineConfig};
use riffle_glue::{GlueConfig, GlueService, TableSchema};
use riffle_protocol::ErrorCode;
use serde_json::{Value, json};

fn start(dir: &std::path::Path) -> (Engine, GlueService, HttpServer) {
    let mut config = EngineConfig::new(dir);
    config.cores = 2;
    config.iterator_secret = Some([7; 32]);
    let engine = Engine::start(config).unwrap();
    let glue = GlueService::start(
        &engine,
        GlueConfig {
            account: "123456789012".into(),
        },
    )
    .unwrap();
    let mut services = Services::new();
    services.register(Arc::new(glue.clone()));
    let http = HttpServer::start(
        &engine,
        HttpConfig::new("127.0.0.1:0".parse().unwrap()),
        services,
    )
    .unwrap();
    (engine, glue, http)
}

fn stop(engine: Engine, http: HttpServer) {
    http.shutdown();
    assert_eq!(http.drain(std::time::Duration::from_secs(5)), 0);
    engine.shutdown().unwrap();
}

/// One JSON 1.1 request: the status, the error type header and the JSON answer.
fn post(addr: SocketAddr, op: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSGlue.{op}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap();
    (status, serde_json::from_str(json).unwrap())
}

fn columns(list: &[(&str, &str)]) -> Value {
    list.iter()
        .map(|(n, t)| json!({"Name": n, "Type": t}))
        .collect()
}

#[test]
fn tables_made_through_the_api_are_what_the_catalog_reads() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (engine, glue, http) = start(dir.path());
    let addr = http.local_addr();
    let ok = |op: &str, body: Value| {
        let (status, v) = post(addr, op, body);
        assert_eq!(status, 200, "{op}: {v}");
        v
    };
    ok(
        "CreateDatabase",
        json!({"DatabaseInput": {"Name": "Analytics"}}),
    );
    ok(
        "CreateTable",
        json!({"DatabaseName": "analytics", "TableInput": {
            "Name": "Trades",
            "StorageDescriptor": {"Columns": columns(&[("ticker", "string"), ("price", "double")])},
            "PartitionKeys": columns(&[("dt", "string")]),
        }}),
    );
    ok(
        "UpdateTable",
        json!({"DatabaseName": "analytics", "VersionId": "0", "TableInput": {
            "Name": "trades",
            "StorageDescriptor": {"Columns": columns(&[("ticker", "string"), ("price", "decimal(10,2)")])},
        }}),
    );

    let catalog = glue.catalog();
    assert_eq!(catalog.catalog_id(), "123456789012");
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    let v0 = TableSchema {
        columns: vec![pair("ticker", "string"), pair("price", "double")],
        partition_keys: vec![pair("dt", "string")],
        version_id: "0".into(),
    };
    let v1 = TableSchema {
        columns: vec![pair("ticker", "string"), pair("price", "decimal(10,2)")],
        partition_keys: vec![],
        version_id: "1".into(),
    };
    assert_eq!(catalog.table("analytics", "trades", Some("0")).unwrap(), v0);
    assert_eq!(catalog.table("ANALYTICS", "Trades", None).unwrap(), v1);
    assert_eq!(
        catalog
            .table("analytics", "trades", Some("LATEST"))
            .unwrap(),
        v1
    );
    let e = catalog.table("analytics", "quotes", None).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ErrorCode::ResourceNotFound,
            "Glue table quotes not found in database analytics."
        )
    );

    // The API's refusals, in Glue's form.
    let (status, v) = post(
        addr,
        "GetTable",
        json!({"DatabaseName": "analytics", "Name": "quotes"}),
    );
    assert_eq!(
        (status, v),
        (
            400,
            json!({"__type": "EntityNotFoundException", "Message": "Table quotes not found."})
        )
    );
    let (status, v) = post(
        addr,
        "CreateDatabase",
        json!({"DatabaseInput": {"Name": "ANALYTICS"}}),
    );
    assert_eq!(
        (status, v),
        (
            400,
            json!({"__type": "AlreadyExistsException", "Message": "Database already exists."})
        )
    );
    stop(engine, http);

    // The catalog is durable: the same answers after a restart.
    let (engine, glue, http) = start(dir.path());
    let catalog = glue.catalog();
    assert_eq!(catalog.table("analytics", "trades", Some("0")).unwrap(), v0);
    assert_eq!(catalog.table("analytics", "trades", None).unwrap(), v1);
    let (_, v) = post(
        http.local_addr(),
        "GetTable",
        json!({"DatabaseName": "analytics", "Name": "trades"}),
    );
    assert_eq!(v["Table"]["VersionId"], "1");
    assert_eq!(v["Table"]["CatalogId"], "123456789012");
    stop(engine, http);
}

/// A request with an empty body: the status and the error type header.
fn post_empty(addr: SocketAddr, op: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AWSGlue.{op}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let kind = answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(": ")?;
            name.eq_ignore_ascii_case("x-amzn-errortype")
                .then(|| value.to_string())
        })
        .unwrap_or_default();
    (answer[9..12].parse().unwrap(), kind)
}

#[test]
fn names_members_share_types_and_operations_as_glue_answers_them() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (engine, _glue, http) = start(dir.path());
    let addr = http.local_addr();
    let ok = |op: &str, body: Value| {
        let (status, v) = post(addr, op, body);
        assert_eq!(status, 200, "{op}: {v}");
        v
    };
    let invalid = |op: &str, body: Value, naming: &str| {
        let (status, v) = post(addr, op, body);
        assert_eq!(status, 400, "{op}: {v}");
        assert_eq!(v["__type"], "InvalidInputException", "{op}: {v}");
        let message = v["Message"].as_str().unwrap();
        assert!(message.contains(naming), "{op}: {message}");
    };

    // Uppercase letters without a lowercase form are valid names.
    for name in ["𝐀", "🄰x"] {
        ok("CreateDatabase", json!({"DatabaseInput": {"Name": name}}));
        ok(
            "CreateTable",
            json!({"DatabaseName": name, "TableInput": {"Name": name}}),
        );
        let t = ok("GetTable", json!({"DatabaseName": name, "Name": name}));
        assert_eq!(t["Table"]["Name"], name.to_lowercase());
    }

    // Members naming what is not served are refused, naming the member;
    // ones that ask for nothing are accepted.
    let table = |name: &str| json!({"Name": name, "TableType": "EXTERNAL_TABLE"});
    // Tags are kept (Terraform and CDK tag databases), not refused.
    ok(
        "CreateDatabase",
        json!({"DatabaseInput": {"Name": "tagged"}, "Tags": {"team": "a"}}),
    );
    let tagged = ok("GetDatabase", json!({"Name": "tagged"}));
    assert_eq!(tagged["Database"]["Name"], "tagged");
    ok(
        "CreateDatabase",
        json!({"DatabaseInput": {"Name": "db", "TargetDatabase": {"CatalogId": "1", "DatabaseName": "x"}}, "Tags": {}}),
    );
    invalid(
        "CreateTable",
        json!({"DatabaseName": "db", "TableInput": table("t"),
            "PartitionIndexes": [{"Keys": ["dt"], "IndexName": "i"}]}),
        "PartitionIndexes",
    );
    ok(
        "CreateTable",
        json!({"DatabaseName": "db", "TableInput": table("t"), "PartitionIndexes": []}),
    );
    invalid(
        "UpdateTable",
        json!({"DatabaseName": "db", "TableInput": table("t"), "ViewUpdateAction": "REPLACE"}),
        "ViewUpdateAction",
    );
    invalid(
        "UpdateTable",
        json!({"DatabaseName": "db", "TableInput": table("t"), "Force": true}),
        "Force",
    );
    ok(
        "UpdateTable",
        json!({"DatabaseName": "db", "TableInput": table("t"), "Force": false}),
    );
    ok(
        "CreateTable",
        json!({"DatabaseName": "db", "TableInput": {"Name": "u"}}),
    );

    // AttributesToGet is served: only the members asked for.
    let list = ok("GetDatabases", json!({"AttributesToGet": ["NAME"]}));
    let names: Vec<&Value> = list["DatabaseList"].as_array().unwrap().iter().collect();
    assert_eq!(
        names,
        [
            &json!({"Name": "db"}),
            &json!({"Name": "tagged"}),
            &json!({"Name": "𝐀"}),
            &json!({"Name": "🄰x"})
        ]
    );
    let list = ok(
        "GetDatabases",
        json!({"AttributesToGet": ["TARGET_DATABASE", "NAME"], "MaxResults": 1}),
    );
    assert_eq!(
        list["DatabaseList"],
        json!([{"Name": "db", "TargetDatabase": {"CatalogId": "1", "DatabaseName": "x"}}])
    );
    invalid(
        "GetDatabases",
        json!({"AttributesToGet": ["TARGET_DATABASE"]}),
        "AttributesToGet [TARGET_DATABASE]",
    );
    let list = ok(
        "GetTables",
        json!({"DatabaseName": "db", "AttributesToGet": ["NAME", "TABLE_TYPE"]}),
    );
    assert_eq!(
        list["TableList"],
        json!([{"Name": "t", "TableType": "EXTERNAL_TABLE"}, {"Name": "u"}])
    );
    let list = ok(
        "GetTables",
        json!({"DatabaseName": "db", "AttributesToGet": ["NAME"]}),
    );
    assert_eq!(list["TableList"], json!([{"Name": "t"}, {"Name": "u"}]));
    invalid(
        "GetTables",
        json!({"DatabaseName": "db", "AttributesToGet": ["DEFAULT"]}),
        "AttributesToGet [DEFAULT]",
    );
    let t = ok(
        "GetTable",
        json!({"DatabaseName": "db", "Name": "t", "AttributesToGet": ["DEFAULT"]}),
    );
    assert_eq!(t["Table"]["VersionId"], "1");
    invalid(
        "GetTable",
        json!({"DatabaseName": "db", "Name": "t", "AttributesToGet": ["DEFAULT", "LATEST_ICEBERG_METADATA"]}),
        "LATEST_ICEBERG_METADATA",
    );

    // No databases are shared or federated, and no tables federated.
    for share in ["FOREIGN", "FEDERATED"] {
        let list = ok("GetDatabases", json!({"ResourceShareType": share}));
        assert_eq!(list, json!({"DatabaseList": []}), "{share}");
    }
    let all = ok("GetDatabases", json!({"ResourceShareType": "ALL"}));
    assert_eq!(all["DatabaseList"].as_array().unwrap().len(), 4);
    let list = ok(
        "GetTables",
        json!({"DatabaseName": "db", "ResourceShareType": "FEDERATED"}),
    );
    assert_eq!(list, json!({"TableList": []}));
    let list = ok(
        "GetTables",
        json!({"DatabaseName": "db", "ResourceShareType": "ALL"}),
    );
    assert_eq!(list["TableList"].as_array().unwrap().len(), 2);

    // Operations are the model's: an empty body for one that is not served is
    // a SerializationException, as for a served one; with a body, the
    // unserved one is UnknownOperationException.
    assert_eq!(
        post_empty(addr, "GetTable"),
        (400, "SerializationException".into())
    );
    assert_eq!(
        post_empty(addr, "GetPartitions"),
        (400, "SerializationException".into())
    );
    assert_eq!(
        post_empty(addr, "NoSuchThing"),
        (400, "UnknownOperationException".into())
    );
    let (status, v) = post(
        addr,
        "GetPartitions",
        json!({"DatabaseName": "db", "TableName": "t"}),
    );
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );
    stop(engine, http);
}
