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
