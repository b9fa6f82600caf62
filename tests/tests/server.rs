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
