//! A toy AWS-shaped service on the HTTP gateway, end to end: the pattern every
//! service follows (docs/ARCHITECTURE.md, "Adding a service").
//!
//! `ToyService` registers a JSON-protocol target (`Toy_20261202.`) and a REST
//! route with a streamed body (`/toy/upload`). Its operations call the `Engine`
//! API as any service does (Append puts a record into a Kinesis stream, Count
//! reads the shard back), and the upload answers each chunk of a chunked
//! request as it arrives, on a streamed answer. Requests no service claims get
//! the gateway's own answer; Kinesis beside it still works.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use hyper::{Response, StatusCode};
use riffle_aws::error::{Refusal, ok_response};
use riffle_aws::input::{Input, decode_checked};
use riffle_aws::json::Format;
use riffle_aws::model::{Rules, ServiceModel};
use riffle_engine::http::service::{LocalFuture, streamed, whole};
use riffle_engine::http::{
    Call, HttpBody, HttpConfig, HttpServer, RequestBody, Route, Service, Services,
};
use riffle_engine::kinesis::{KinesisConfig, KinesisService};
use riffle_engine::{Engine, EngineConfig};
use riffle_store::iterator::IteratorType;
use serde_json::{Value, json};

/// The toy service's model, in botocore's shape (a real service embeds AWS's
/// published one: `riffle_aws::model::firehose()`, ...). Its constraints are
/// checked before any handler runs, with AWS's wording.
const TOY_MODEL: &str = r#"{
  "version": "2.0",
  "metadata": {"apiVersion": "2026-12-02", "protocol": "json", "jsonVersion": "1.1",
               "targetPrefix": "Toy_20261202", "signingName": "toy", "serviceId": "Toy",
               "endpointPrefix": "toy"},
  "operations": {
    "Echo": {"name": "Echo", "input": {"shape": "EchoInput"}},
    "Append": {"name": "Append", "input": {"shape": "AppendInput"}},
    "Count": {"name": "Count", "input": {"shape": "CountInput"}}
  },
  "shapes": {
    "EchoInput": {"type": "structure", "members": {}},
    "AppendInput": {"type": "structure", "required": ["Stream", "Text"],
                    "members": {"Stream": {"shape": "StreamName"}, "Text": {"shape": "Text"}}},
    "CountInput": {"type": "structure", "required": ["Stream"],
                   "members": {"Stream": {"shape": "StreamName"}}},
    "StreamName": {"type": "string", "min": 1, "max": 128, "pattern": "[a-zA-Z0-9_.-]+"},
    "Text": {"type": "string", "max": 16}
  }
}"#;

/// The toy service: its model and a handle on the engine.
struct ToyService {
    engine: Engine,
    model: ServiceModel,
}

impl Service for ToyService {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn routes(&self) -> Vec<Route> {
        vec![
            Route::Target {
                prefix: "Toy_20261202.",
                signing_name: "toy",
            },
            Route::Rest {
                path_prefix: "/toy/upload",
                signing_name: "toy",
                streaming_body: true,
            },
        ]
    }

    fn call(&self, call: Call) -> LocalFuture<'_, Response<HttpBody>> {
        Box::pin(async move {
            match call.body {
                RequestBody::Streaming(body) => upload(body).await,
                RequestBody::Whole(ref bytes) => {
                    let format = Format::of(&call.parts.headers);
                    let op = call.parts.headers["x-amz-target"]
                        .to_str()
                        .unwrap_or("")
                        .trim_start_matches("Toy_20261202.")
                        .to_owned();
                    // Decoded and checked against the model, with AWS's refusals.
                    let answer = match decode_checked(&self.model, format, &op, bytes, &Rules::NONE)
                    {
                        Ok(input) => self.run(&op, Input(&input)).await,
                        Err(r) => Err(r),
                    };
                    whole(match answer {
                        Ok(v) => ok_response(format, format.encode(&v, &Default::default())),
                        Err(r) => r.to_response(format),
                    })
                }
            }
        })
    }
}

impl ToyService {
    async fn run(&self, op: &str, input: Input<'_>) -> Result<Value, Refusal> {
        match op {
            "Echo" => Ok(json!({ "Echo": input.0 })),
            "Append" => {
                let stream = input.required_str("Stream")?;
                let text = input.required_str("Text")?;
                let put = self
                    .engine
                    .put_record(stream, "toy", None, text.as_bytes())
                    .await?;
                Ok(
                    json!({ "SequenceNumber": riffle_protocol::seqno::to_string(put.sequence_number()) }),
                )
            }
            "Count" => {
                let stream = input.required_str("Stream")?;
                let it = self
                    .engine
                    .get_shard_iterator(stream, "shardId-000000000000", IteratorType::TrimHorizon)
                    .await?;
                let got = self.engine.get_records(&it, None).await?;
                let texts: Vec<String> = got
                    .records()
                    .map(|r| String::from_utf8_lossy(r.data()).into_owned())
                    .collect();
                Ok(json!({ "Texts": texts }))
            }
            _ => Err(Refusal::unknown_operation()),
        }
    }
}

/// Answers every chunk of the upload with a line, as it arrives, then a total.
async fn upload(mut body: riffle_engine::http::service::StreamingBody) -> Response<HttpBody> {
    let (tx, resp) = streamed(StatusCode::OK, "text/plain", 4);
    riffle_engine::rt::spawn(async move {
        let mut total = 0usize;
        while let Some(chunk) = body.chunk().await {
            let Ok(chunk) = chunk else { return };
            total += chunk.len();
            if !tx.send(format!("got {}\n", chunk.len()).into()).await {
                return;
            }
        }
        tx.send(format!("total {total}\n").into()).await;
    });
    resp
}

fn start() -> (tempfile::TempDir, Engine, HttpServer) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.cores = 2;
    config.iterator_secret = Some([7; 32]);
    let engine = Engine::start(config).unwrap();
    let mut services = Services::new();
    services
        .register(Arc::new(KinesisService::new(
            engine.clone(),
            KinesisConfig::default(),
        )))
        .register(Arc::new(ToyService {
            engine: engine.clone(),
            model: ServiceModel::parse(TOY_MODEL).unwrap(),
        }));
    let http = HttpServer::start(
        &engine,
        HttpConfig::new("127.0.0.1:0".parse().unwrap()),
        services,
    )
    .unwrap();
    (dir, engine, http)
}

/// One JSON 1.1 request on a new connection: the status and the JSON answer.
fn post(addr: SocketAddr, target: &str, body: &str) -> (u16, Value) {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: {target}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let json = answer.split("\r\n\r\n").nth(1).unwrap();
    // Operations without output answer with an empty body, as AWS does.
    let json = if json.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(json).unwrap()
    };
    (status, json)
}

#[test]
fn a_registered_service_answers_its_targets_beside_kinesis() {
    let (_dir, engine, http) = start();
    let addr = http.local_addr();
    let (status, v) = post(addr, "Toy_20261202.Echo", r#"{"A": [1, "b"]}"#);
    assert_eq!((status, v), (200, json!({"Echo": {"A": [1, "b"]}})));

    // The toy writes through the engine; Kinesis reads the same stream.
    let (status, _) = post(
        addr,
        "Kinesis_20131202.CreateStream",
        r#"{"StreamName": "toys", "ShardCount": 1}"#,
    );
    assert_eq!(status, 200);
    for text in ["one", "two"] {
        let (status, v) = post(
            addr,
            "Toy_20261202.Append",
            &json!({"Stream": "toys", "Text": text}).to_string(),
        );
        assert_eq!(status, 200, "{v}");
    }
    let (_, v) = post(addr, "Toy_20261202.Count", r#"{"Stream": "toys"}"#);
    assert_eq!(v, json!({"Texts": ["one", "two"]}));

    // Its model's refusals, its own, and the gateway's for a target nobody claims.
    let (status, v) = post(addr, "Toy_20261202.Append", r#"{"Stream": "to ys"}"#);
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"__type": "ValidationException", "message": "2 validation errors detected: \
            Value 'to ys' at 'stream' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
            Value null at 'text' failed to satisfy constraint: Member must not be null"})
    );
    let (status, v) = post(addr, "Toy_20261202.Append", r#"{"Stream": 5, "Text": "x"}"#);
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    let (status, v) = post(addr, "Toy_20261202.Nothing", "{}");
    assert_eq!(
        (status, v),
        (400, json!({"__type": "UnknownOperationException"}))
    );
    let (status, v) = post(addr, "Toy_20261202.Count", r#"{"Stream": "none"}"#);
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("ResourceNotFoundException"))
    );
    let (status, v) = post(addr, "Nobody_20200101.Anything", "{}");
    assert_eq!(
        (status, v),
        (400, json!({"__type": "UnknownOperationException"}))
    );

    http.shutdown();
    assert_eq!(http.drain(std::time::Duration::from_secs(5)), 0);
    engine.shutdown().unwrap();
}

#[test]
fn a_streamed_upload_is_answered_chunk_by_chunk_on_a_streamed_answer() {
    let (_dir, engine, http) = start();
    let mut conn = TcpStream::connect(http.local_addr()).unwrap();
    conn.write_all(
        b"POST /toy/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    // The answer starts before the upload ends.
    answer.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), "HTTP/1.1 200 OK");
    while line != "\r\n" {
        line.clear();
        answer.read_line(&mut line).unwrap();
    }
    let mut acks = Vec::new();
    for size in [5usize, 3000, 17] {
        write!(conn, "{size:x}\r\n{}\r\n", "x".repeat(size)).unwrap();
        conn.flush().unwrap();
        // Each chunk is acknowledged before the next is sent (the answer is
        // chunked too: a size line, the ack, a CRLF).
        line.clear();
        answer.read_line(&mut line).unwrap();
        line.clear();
        answer.read_line(&mut line).unwrap();
        acks.push(line.trim_end().to_owned());
        line.clear();
        answer.read_line(&mut line).unwrap();
    }
    conn.write_all(b"0\r\n\r\n").unwrap();
    let mut rest = String::new();
    answer.read_to_string(&mut rest).unwrap();
    assert_eq!(acks, ["got 5", "got 3000", "got 17"]);
    assert!(rest.contains("total 3022\n"), "{rest:?}");
    http.shutdown();
    engine.shutdown().unwrap();
}
