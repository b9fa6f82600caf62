//! `riffle server` as an operator sees it: the data-directory lock, settings
//! from a config file and the environment, and graceful shutdown on SIGTERM
//! with requests in flight.

use std::io::Write;
use std::process::{Command, Stdio};

use riffle_protocol::native::{Reply, Request, Response, encode_request};
use riffle_protocol::{BatchBuilder, RecordIn};
use riffle_tests::{RawConn, Server, data_dir, read_shard, reply, riffle_bin};

#[test]
fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let first = Server::start(dir.path(), &["--cores", "1"]);
    let out = Command::new(riffle_bin())
        .args([
            "server",
            "--http",
            "off",
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is in use by another riffle process")
            && stderr.contains(&first.pid().to_string()),
        "{stderr}"
    );
    // The first one is unharmed.
    let mut conn = RawConn::connect(first.addr);
    let frame = conn.call(1, &Request::Ping { nonce: 1 });
    assert_eq!(reply(&frame), Reply::Response(Response::Pong { nonce: 1 }));
}

#[test]
fn a_second_server_on_the_same_port_is_refused() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let other = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let first = Server::start(dir.path(), &["--cores", "1"]);
    let out = Command::new(riffle_bin())
        .args(["server", "--http", "off", "--cores", "1", "--listen"])
        .arg(first.addr.to_string())
        .arg("--data-dir")
        .arg(other.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn settings_come_from_the_config_file_and_the_environment() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let config = dir.path().join("riffle.toml");
    let data = dir.path().join("from-config");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ncores = 1\ndurability = \"none\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(riffle_bin())
        .args(["server", "--no-pin"])
        .env("RIFFLE_CONFIG", &config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("riffle listening on 127.0.0.1:"), "{line}");
    assert!(data.join("LOCK").exists(), "data_dir came from the file");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("durability=None") && logs.contains("cores=1"),
        "{logs}"
    );

    // A typo in the file is an error, not ignored; a flag beats the file.
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\ncorse = 2\n").unwrap();
    let out = Command::new(riffle_bin())
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corse"));
    let out = Command::new(riffle_bin())
        .args(["server", "--listen", "not-an-address"])
        .env("RIFFLE_DATA_DIR", dir.path().join("d2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid listen address"));
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    let frame = conn.call(
        1,
        &Request::CreateStream {
            stream: "g",
            shard_count: 1,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    // 300 puts pipelined, then SIGTERM while they are being processed.
    let mut out = Vec::new();
    for n in 0..300u64 {
        let data = format!("graceful {n}");
        let batch = BatchBuilder::new().encode(&[RecordIn {
            partition_key: "k",
            explicit_hash_key: None,
            data: data.as_bytes(),
            arrival_ms: 0,
        }]);
        encode_request(
            &mut out,
            100 + n,
            &Request::PutRecord {
                stream: "g",
                batch: &batch,
            },
        );
    }
    conn.stream.write_all(&out).unwrap();
    let (first, _) = conn.recv().expect("the first put is answered");
    assert!(first >= 100);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let mut acked = vec![first];
    while let Some((id, frame)) = conn.recv() {
        assert!(matches!(
            reply(&frame),
            Reply::Response(Response::Put { .. })
        ));
        acked.push(id);
    }
    let (status, logs) = server.wait_exit();
    assert!(status.success(), "{status}\n{logs}");
    assert!(logs.contains("stopped cleanly"), "{logs}");
    server.restart();
    let mut conn = RawConn::connect(server.addr);
    let stored: Vec<String> = read_shard(&mut conn, "g", 0)
        .into_iter()
        .map(|r| String::from_utf8(r.2).unwrap())
        .collect();
    for id in &acked {
        assert!(
            stored.contains(&format!("graceful {}", id - 100)),
            "acknowledged put {id} is missing after a graceful stop"
        );
    }
    assert!(stored.len() >= acked.len());
}

/// What one HTTP connection got back.
#[derive(Debug)]
enum Answer {
    /// A whole response: status and body.
    Whole(u16, Vec<u8>),
    /// Closed or reset before a single byte of a response: the request was
    /// never started (it waited in the kernel's accept queue).
    Nothing(String),
    /// Part of a response, then the connection ended: a request cut off.
    Cut(Vec<u8>),
}

/// Reads one HTTP/1.1 response (with a Content-Length) from `conn`.
fn read_answer(conn: &mut std::net::TcpStream) -> Answer {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return Answer::Whole(status, got[end + 4..end + 4 + length].to_vec());
            }
        }
        match conn.read(&mut buf) {
            Ok(0) if got.is_empty() => return Answer::Nothing("closed".into()),
            Ok(0) => return Answer::Cut(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if got.is_empty() => return Answer::Nothing(e.to_string()),
            Err(_) => return Answer::Cut(got),
        }
    }
}

/// 300 PutRecords over HTTP/1.1, one per connection, all written before
/// SIGTERM: every one is answered 200 with its records (none is cut off or
/// dropped), the server exits 0, and every acknowledged record is there after
/// a restart.
#[test]
fn sigterm_finishes_in_flight_http_requests_and_exits_zero() {
    use base64::Engine as _;
    use std::collections::HashMap;
    const REQUESTS: usize = 300;
    const RECORDS: usize = 4;

    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    let frame = conn.call(
        1,
        &Request::CreateStream {
            stream: "h",
            shard_count: 2,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    let http = server.http_addr;
    let mut conns: Vec<std::net::TcpStream> = (0..REQUESTS)
        .map(|_| {
            let c = std::net::TcpStream::connect(http).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .unwrap();
            c
        })
        .collect();
    for (n, c) in conns.iter_mut().enumerate() {
        let records: Vec<serde_json::Value> = (0..RECORDS)
            .map(|i| {
                serde_json::json!({
                    "Data": base64::engine::general_purpose::STANDARD.encode(format!("http {n} {i}")),
                    "PartitionKey": format!("k{n}-{i}"),
                })
            })
            .collect();
        let body = serde_json::json!({"StreamName": "h", "Records": records}).to_string();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {http}\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(request.as_bytes()).unwrap();
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };

    // Acknowledged records: data → shard index.
    let mut acked: HashMap<String, u32> = HashMap::new();
    let mut unanswered = Vec::new();
    for (n, c) in conns.iter_mut().enumerate() {
        match read_answer(c) {
            Answer::Whole(status, body) => {
                let out: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(status, 200, "request {n}: {out}");
                assert_eq!(out["FailedRecordCount"], 0, "request {n}: {out}");
                let records = out["Records"].as_array().expect("Records");
                assert_eq!(records.len(), RECORDS, "request {n}: {out}");
                for (i, r) in records.iter().enumerate() {
                    let shard = r["ShardId"].as_str().expect("ShardId");
                    let index = riffle_protocol::routing::parse_shard_id(shard).unwrap();
                    assert!(r["SequenceNumber"].is_string(), "request {n}: {out}");
                    acked.insert(format!("http {n} {i}"), index);
                }
            }
            Answer::Cut(part) => panic!(
                "request {n} was cut off mid-answer: {:?}",
                String::from_utf8_lossy(&part)
            ),
            Answer::Nothing(why) => unanswered.push((n, why)),
        }
    }
    let (status, logs) = server.wait_exit();
    assert!(status.success(), "{status}\n{logs}");
    assert!(logs.contains("stopped cleanly"), "{logs}");
    assert!(
        !logs.contains("still in flight"),
        "the drain timed out:\n{logs}"
    );
    assert!(
        unanswered.is_empty(),
        "{} of {REQUESTS} requests written before SIGTERM got no answer: {:?}",
        unanswered.len(),
        &unanswered[..unanswered.len().min(5)]
    );
    assert_eq!(acked.len(), REQUESTS * RECORDS);

    server.restart();
    let mut conn = RawConn::connect(server.addr);
    let mut stored: HashMap<String, u32> = HashMap::new();
    for shard in 0..2 {
        for (_, _, data) in read_shard(&mut conn, "h", shard) {
            stored.insert(String::from_utf8(data).unwrap(), shard);
        }
    }
    for (data, shard) in &acked {
        assert_eq!(
            stored.get(data),
            Some(shard),
            "acknowledged record {data:?} is missing after a graceful stop"
        );
    }
}

/// Clients that never pause (keep-alive connections each sending PutRecords
/// again as soon as the last is answered) do not hold the drain to its 30 s:
/// after SIGTERM the server shuts their connections down gracefully (each
/// after the answer it is writing), exits 0 within seconds, cuts no answer off,
/// and every acknowledged record is there after a restart.
#[test]
fn sigterm_stops_clients_that_never_pause() {
    use base64::Engine as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    const CLIENTS: usize = 8;

    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let mut server = Server::start(dir.path(), &["--cores", "2"]);
    let mut conn = RawConn::connect(server.addr);
    let frame = conn.call(
        1,
        &Request::CreateStream {
            stream: "busy",
            shard_count: 2,
        },
    );
    assert_eq!(reply(&frame), Reply::Response(Response::Done));
    let http = server.http_addr;
    let answered = Arc::new(AtomicUsize::new(0));
    // Every client has had an answer: then the signal.
    let warm = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (answered, warm) = (answered.clone(), warm.clone());
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(http).unwrap();
                c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                    .unwrap();
                let mut acked = Vec::new();
                for i in 0.. {
                    let data = format!("busy {n} {i}");
                    let body = serde_json::json!({"StreamName": "busy", "Records": [{
                        "Data": base64::engine::general_purpose::STANDARD.encode(&data),
                        "PartitionKey": data,
                    }]})
                    .to_string();
                    let request = format!(
                        "POST / HTTP/1.1\r\nHost: {http}\r\nX-Amz-Target: Kinesis_20131202.PutRecords\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if c.write_all(request.as_bytes()).is_err() {
                        return acked;
                    }
                    match read_answer(&mut c) {
                        Answer::Whole(200, body) => {
                            let out: serde_json::Value = serde_json::from_slice(&body).unwrap();
                            assert_eq!(out["FailedRecordCount"], 0, "{out}");
                            acked.push(data);
                            if i == 0 {
                                warm.wait();
                            }
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Answer::Whole(status, body) => panic!(
                            "client {n}: {status} {}",
                            String::from_utf8_lossy(&body)
                        ),
                        Answer::Cut(part) => panic!(
                            "client {n}: an answer was cut off: {:?}",
                            String::from_utf8_lossy(&part)
                        ),
                        // The connection was shut down between requests.
                        Answer::Nothing(_) => return acked,
                    }
                }
                unreachable!()
            })
        })
        .collect();
    warm.wait();
    let signalled = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) };
    let acked: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let (status, logs) = server.wait_exit();
    let took = signalled.elapsed();
    assert!(status.success(), "{status}\n{logs}");
    assert!(
        !logs.contains("still in flight"),
        "the drain timed out:\n{logs}"
    );
    // The drain's first wait is at most 2 s; the 30 s timeout is far.
    assert!(
        took < std::time::Duration::from_secs(15),
        "{took:?}\n{logs}"
    );
    assert!(answered.load(Ordering::Relaxed) >= CLIENTS);

    server.restart();
    let mut conn = RawConn::connect(server.addr);
    let mut stored = std::collections::HashSet::new();
    for shard in 0..2 {
        for (_, _, data) in read_shard(&mut conn, "busy", shard) {
            stored.insert(String::from_utf8(data).unwrap());
        }
    }
    for data in &acked {
        assert!(stored.contains(data), "acknowledged {data:?} is missing");
    }
}
