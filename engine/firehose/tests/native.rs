//! Firehose over the native protocol, end to end in process: an engine, the
//! Firehose service on the HTTP gateway (to create delivery streams and to
//! compare answers with) and the native server with Firehose's extension.
//! Records put through riffle-client's FirehosePutRecordBatch arrive in the
//! embedded store's object; FirehoseDescribe answers what the JSON API does;
//! refusals carry the JSON API's words (both are asked the same question).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_client::{Client, ClientConfig, ClientError};
use riffle_engine::http::{HttpConfig, HttpServer, Services};
use riffle_engine::net::{Extensions, NativeServer, NetConfig};
use riffle_engine::{Engine, EngineConfig};
use riffle_firehose::{FirehoseConfig, FirehoseService};
use riffle_protocol::native::{
    FRAME_HEADER_SIZE, Reply, Request, Response, decode_reply, encode_request,
};
use riffle_protocol::{ErrorCode, Limits};
use serde_json::{Value, json};

struct Server {
    dir: tempfile::TempDir,
    engine: Engine,
    native: NativeServer,
    http: HttpServer,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut config = EngineConfig::new(dir.path());
        config.cores = 2;
        config.pin = false;
        let engine = Engine::start(config).unwrap();
        let firehose = FirehoseService::start(
            engine.clone(),
            FirehoseConfig {
                region: "us-east-1".into(),
                account: engine.config().account.clone(),
                state_delay_ms: 0,
                s3: None,
                functions: BTreeMap::new(),
                ca_file: None,
                glue: None,
            },
        )
        .unwrap();
        let mut services = Services::new();
        services.register(Arc::new(firehose.clone()));
        let http = HttpServer::start(
            &engine,
            HttpConfig::new("127.0.0.1:0".parse().unwrap()),
            services,
        )
        .unwrap();
        let mut extensions = Extensions::new();
        extensions.register(Arc::new(firehose));
        let native = NativeServer::start_with(
            &engine,
            NetConfig::new("127.0.0.1:0".parse().unwrap()),
            extensions,
        )
        .unwrap();
        Server {
            dir,
            engine,
            native,
            http,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.native.local_addr(), ClientConfig::default()).unwrap()
    }

    /// A Firehose JSON 1.1 call over HTTP: its status and answer.
    fn post(&self, operation: &str, body: &Value) -> (u16, Value) {
        let mut conn = TcpStream::connect(self.http.local_addr()).unwrap();
        let body = body.to_string();
        write!(
            conn,
            "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Firehose_20150804.{operation}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let json = answer.split("\r\n\r\n").nth(1).unwrap();
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }

    fn create(&self, name: &str, bucket: &str) {
        let (status, answer) = self.post(
            "CreateDeliveryStream",
            &json!({
                "DeliveryStreamName": name,
                "DeliveryStreamType": "DirectPut",
                "ExtendedS3DestinationConfiguration": {
                    "RoleARN": "arn:aws:iam::123456789012:role/r",
                    "BucketARN": format!("arn:aws:s3:::{bucket}"),
                    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
                },
            }),
        );
        assert_eq!(status, 200, "{answer}");
    }

    fn stop(self) {
        self.http.shutdown();
        self.native.shutdown(Duration::from_secs(5));
        self.http.drain(Duration::from_secs(5));
        self.engine.shutdown().unwrap();
        drop(self.dir);
    }
}

/// Every file under `dir`, by path.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The bytes of the bucket's objects once they hold `len` bytes (objects
/// are written whole, atomically), in key order.
fn objects_holding(bucket: &Path, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut paths = Vec::new();
        files(bucket, &mut paths);
        paths.sort();
        let bytes: Vec<u8> = paths
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect();
        if bytes.len() >= len || Instant::now() > deadline {
            return bytes;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request frame on a new connection, and the server's reply: the
/// server's own refusals, without the client's checks before sending.
fn raw_call(addr: SocketAddr, request: &Request<'_>) -> Reply<'static> {
    let mut frame = Vec::new();
    encode_request(&mut frame, 1, request);
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(&frame).unwrap();
    let mut reply = vec![0u8; FRAME_HEADER_SIZE];
    conn.read_exact(&mut reply).unwrap();
    let size = u32::from_le_bytes(reply[..4].try_into().unwrap()) as usize;
    reply.resize(size, 0);
    conn.read_exact(&mut reply[FRAME_HEADER_SIZE..]).unwrap();
    let reply: &'static [u8] = reply.leak();
    decode_reply(reply, &Limits::default()).unwrap().1
}

fn server_error(e: ClientError) -> (ErrorCode, String) {
    match e {
        ClientError::Server(e) => (e.code, e.message),
        other => panic!("not a server error: {other:?}"),
    }
}

#[test]
fn records_put_natively_arrive_in_the_object_and_describe_matches_the_json_api() {
    let server = Server::start();
    server.create("clicks", "bucket");
    let client = server.client();
    let records: Vec<&[u8]> = vec![b"alpha\n", b"beta\n", b"", b"gamma\n"];
    let put = client
        .firehose_put_record_batch("clicks", &records)
        .unwrap();
    assert_eq!((put.failed_put_count, put.encrypted), (0, false));
    assert_eq!(put.records.len(), 4);
    let ids: Vec<String> = put.records.into_iter().map(Result::unwrap).collect();
    // RecordIds are the JSON API's: 20 bytes in base64, distinct.
    assert!(ids.iter().all(|id| BASE64.decode(id).unwrap().len() == 20));
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        4
    );
    let more = client
        .firehose_put_record_batch("clicks", &[b"delta\n".to_vec()])
        .unwrap();
    assert_eq!(more.failed_put_count, 0);
    let expected = b"alpha\nbeta\ngamma\ndelta\n";
    let bucket = server.dir.path().join("s3").join("bucket");
    let stored = objects_holding(&bucket, expected.len());
    // Two calls may land on the internal stream's two shards: compare as lines.
    let mut lines: Vec<&[u8]> = stored.split_inclusive(|&b| b == b'\n').collect();
    lines.sort();
    let mut want: Vec<&[u8]> = expected.split_inclusive(|&b| b == b'\n').collect();
    want.sort();
    assert_eq!(lines, want);

    let described = client.firehose_describe("clicks").unwrap();
    let native: Value = serde_json::from_str(&described.json).unwrap();
    let d = &native["DeliveryStreamDescription"];
    assert_eq!(d["DeliveryStreamName"], "clicks");
    assert_eq!(d["DeliveryStreamStatus"], "ACTIVE");
    assert_eq!(d["DeliveryStreamType"], "DirectPut");
    let (status, over_http) = server.post(
        "DescribeDeliveryStream",
        &json!({"DeliveryStreamName": "clicks"}),
    );
    assert_eq!(status, 200);
    assert_eq!(native, over_http);
    server.stop();
}

#[test]
fn refusals_carry_the_json_apis_words() {
    let server = Server::start();
    server.create("orders", "bucket");
    let client = server.client();
    // A missing delivery stream.
    let (status, http) = server.post(
        "DescribeDeliveryStream",
        &json!({"DeliveryStreamName": "missing"}),
    );
    assert_eq!(status, 400);
    assert_eq!(http["__type"], "ResourceNotFoundException");
    let message = http["message"].as_str().unwrap();
    let e = server_error(client.firehose_describe("missing").unwrap_err());
    assert_eq!(e, (ErrorCode::ResourceNotFound, message.to_string()));
    let e = server_error(
        client
            .firehose_put_record_batch("missing", &[b"x"])
            .unwrap_err(),
    );
    assert_eq!(e, (ErrorCode::ResourceNotFound, message.to_string()));

    // Over AWS's limits: the client refuses before sending ...
    let data = vec![b'x'; 1000 * 1024];
    let five: Vec<&[u8]> = vec![&data; 5];
    let e = client
        .firehose_put_record_batch("orders", &five)
        .unwrap_err();
    assert!(matches!(e, ClientError::InvalidArgument(_)), "{e:?}");
    // ... and the server refuses as the JSON API does.
    let addr = server.native.local_addr();
    let refusal = |request: Request<'_>| match raw_call(addr, &request) {
        Reply::Error(e) => (e.code, e.message),
        other => panic!("{other:?}"),
    };
    let (status, http) = server.post(
        "PutRecordBatch",
        &json!({
            "DeliveryStreamName": "orders",
            "Records": five.iter().map(|r| json!({"Data": BASE64.encode(r)})).collect::<Vec<_>>(),
        }),
    );
    assert_eq!(
        (status, http["__type"].as_str()),
        (400, Some("InvalidArgumentException"))
    );
    let native = refusal(Request::FirehosePutRecordBatch {
        delivery_stream: "orders",
        records: five.clone(),
    });
    assert_eq!(
        native,
        (
            ErrorCode::InvalidArgument,
            http["message"].as_str().unwrap().into()
        )
    );
    assert!(
        native
            .1
            .contains("Records size exceeds 4194304 bytes limit"),
        "{native:?}"
    );

    // The model's constraints: ValidationException's text.
    let big = vec![b'x'; 1000 * 1024 + 1];
    for (name, records) in [
        ("orders", vec![&big[..]]),
        ("orders", vec![]),
        ("bad:name", vec![&b"x"[..]]),
    ] {
        let (status, http) = server.post(
            "PutRecordBatch",
            &json!({
                "DeliveryStreamName": name,
                "Records": records.iter().map(|r| json!({"Data": BASE64.encode(r)})).collect::<Vec<_>>(),
            }),
        );
        assert_eq!(
            (status, http["__type"].as_str()),
            (400, Some("ValidationException"))
        );
        let native = refusal(Request::FirehosePutRecordBatch {
            delivery_stream: name,
            records,
        });
        assert_eq!(
            native,
            (
                ErrorCode::InvalidArgument,
                http["message"].as_str().unwrap().into()
            ),
            "{name}"
        );
    }
    // Nothing refused was stored: the stream still takes a put.
    let put = client
        .firehose_put_record_batch("orders", &[b"ok\n"])
        .unwrap();
    assert_eq!(put.failed_put_count, 0);
    server.stop();
}

#[test]
fn a_server_without_the_extension_says_it_does_not_serve_firehose() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.cores = 1;
    config.pin = false;
    let engine = Engine::start(config).unwrap();
    let native =
        NativeServer::start(&engine, NetConfig::new("127.0.0.1:0".parse().unwrap())).unwrap();
    let client = Client::connect(native.local_addr(), ClientConfig::default()).unwrap();
    let e = server_error(client.firehose_describe("clicks").unwrap_err());
    assert_eq!(
        e,
        (
            ErrorCode::InvalidArgument,
            "FirehoseDescribe is not served by this server (no extension serves it)".into()
        )
    );
    // The connection goes on.
    client.ping().unwrap();
    let Reply::Response(Response::Pong { nonce: 5 }) =
        raw_call(native.local_addr(), &Request::Ping { nonce: 5 })
    else {
        panic!("no pong");
    };
    native.shutdown(Duration::from_secs(5));
    engine.shutdown().unwrap();
}
