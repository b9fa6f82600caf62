//! The `riffle` CLI against the real server: every command, every `--from`,
//! human and JSON output, and a clear message with a non-zero exit for every
//! error.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use riffle_tests::{Server, data_dir, riffle_bin};

struct Cli {
    server: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(riffle_bin())
            .args(args)
            .env("RIFFLE_SERVER", &self.server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "riffle {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "riffle {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "nothing on stdout when failing");
        String::from_utf8(out.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut full = args.to_vec();
        full.push("--json");
        self.ok(&full)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn setup() -> (tempfile::TempDir, Server, Cli) {
    let dir = data_dir(env!("CARGO_TARGET_TMPDIR"));
    let server = Server::start(dir.path(), &["--cores", "2"]);
    let cli = Cli {
        server: server.addr.to_string(),
    };
    (dir, server, cli)
}

fn data_of(record: &serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = record["data"].as_str().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn streams_are_created_listed_described_and_deleted() {
    let (_dir, _server, cli) = setup();
    assert_eq!(cli.ok(&["stream", "list"]), "no streams\n");
    assert_eq!(
        cli.ok(&["stream", "create", "orders", "--shards", "3"]),
        "created stream orders with 3 shard(s)\n"
    );
    cli.ok(&["stream", "create", "audit"]);
    assert_eq!(cli.ok(&["stream", "list"]), "audit\norders\n");
    assert_eq!(
        cli.json(&["stream", "list"]),
        vec![serde_json::json!({"streams": ["audit", "orders"]})]
    );
    let human = cli.ok(&["stream", "describe", "orders"]);
    assert!(human.contains("status     ACTIVE"), "{human}");
    assert!(human.contains("shardId-000000000002"), "{human}");
    let d = &cli.json(&["stream", "describe", "orders"])[0];
    assert_eq!(d["stream"], "orders");
    assert_eq!(d["retention_hours"], 24);
    let shards = d["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    assert_eq!(shards[0]["hash_key_start"], "0");
    assert_eq!(
        shards[2]["hash_key_end"],
        u128::MAX.to_string(),
        "the shards cover the whole hash key space"
    );
    let err = cli.fails(&["stream", "create", "orders"], 1);
    assert!(err.contains("ResourceInUseException"), "{err}");
    assert_eq!(
        cli.ok(&["stream", "delete", "orders"]),
        "deleted stream orders\n"
    );
    assert_eq!(cli.ok(&["stream", "list"]), "audit\n");
    let err = cli.fails(&["stream", "describe", "orders"], 1);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    let err = cli.fails(&["stream", "delete", "orders"], 1);
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

#[test]
fn put_and_get_with_every_start_position() {
    let (_dir, _server, cli) = setup();
    cli.ok(&["stream", "create", "s", "--shards", "2"]);
    // One record from the argument, three from stdin; all the same key, so the
    // same shard, in order.
    let first = cli.json(&["put", "s", "--partition-key", "user-7", "first"]);
    let shard = first[0]["shard_id"].as_str().unwrap().to_string();
    let out = cli.run_stdin(
        &["put", "s", "--partition-key", "user-7", "--json"],
        Some("second\nthird\nfourth\n"),
    );
    assert!(out.status.success());
    let puts: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(puts.len(), 3);
    let seqs: Vec<String> = std::iter::once(&first[0])
        .chain(&puts)
        .map(|p| {
            assert_eq!(p["shard_id"], shard.as_str());
            p["sequence_number"].as_str().unwrap().to_string()
        })
        .collect();
    let human = cli.ok(&["put", "s", "--partition-key", "user-7", "fifth"]);
    assert!(human.starts_with(&format!("{shard} ")), "{human}");

    let get = |from: &str| -> Vec<String> {
        cli.json(&["get", "s", "--shard", &shard, "--from", from])
            .iter()
            .map(data_of)
            .collect()
    };
    let all = ["first", "second", "third", "fourth", "fifth"];
    assert_eq!(get("trim-horizon"), all);
    assert_eq!(get("latest"), Vec::<String>::new());
    assert_eq!(get(&format!("at:{}", seqs[2])), all[2..]);
    assert_eq!(get(&format!("after:{}", seqs[2])), all[3..]);
    assert_eq!(get("at-time:2000-01-01T00:00:00Z"), all);
    assert_eq!(get("at-time:2999-01-01T00:00:00Z"), Vec::<String>::new());
    let limited = cli.json(&["get", "s", "--shard", &shard, "--limit", "2"]);
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0]["sequence_number"], seqs[0].as_str());
    assert_eq!(limited[0]["partition_key"], "user-7");
    // The shard can also be named by its number; human output has one line per record.
    let number = shard.trim_start_matches("shardId-").trim_start_matches('0');
    let human = cli.ok(&[
        "get",
        "s",
        "--shard",
        if number.is_empty() { "0" } else { number },
    ]);
    assert_eq!(human.lines().count(), 5);
    assert!(
        human.lines().next().unwrap().starts_with(&seqs[0]),
        "{human}"
    );
    assert!(
        human.lines().next().unwrap().ends_with("user-7  first"),
        "{human}"
    );
}

#[test]
fn follow_prints_records_as_they_commit() {
    let (_dir, _server, cli) = setup();
    cli.ok(&["stream", "create", "live"]);
    cli.ok(&["put", "live", "--partition-key", "k", "backlog"]);
    let mut follower = Command::new(riffle_bin())
        .args([
            "get", "live", "--shard", "0", "--follow", "--limit", "3", "--json",
        ])
        .env("RIFFLE_SERVER", &cli.server)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(data_of(&first), "backlog");
    // The follower has caught up (it printed the backlog); new records reach it.
    cli.ok(&["put", "live", "--partition-key", "k", "live-1"]);
    cli.ok(&["put", "live", "--partition-key", "k", "live-2"]);
    let rest: Vec<String> = lines
        .map(|l| data_of(&serde_json::from_str(&l.unwrap()).unwrap()))
        .collect();
    assert_eq!(rest, ["live-1", "live-2"]);
    assert!(
        follower.wait().unwrap().success(),
        "--limit 3 ends the follow"
    );
}

#[test]
fn every_error_has_a_message_and_an_exit_code() {
    let (_dir, _server, cli) = setup();
    cli.ok(&["stream", "create", "e"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["get", "nope", "--shard", "0"],
            1,
            "ResourceNotFoundException",
        ),
        (
            &["get", "e", "--shard", "9"],
            1,
            "ResourceNotFoundException",
        ),
        (&["get", "e", "--shard", "zero"], 1, "invalid --shard"),
        (
            &["get", "e", "--shard", "0", "--from", "soon"],
            1,
            "invalid --from",
        ),
        (
            &["get", "e", "--shard", "0", "--from", "at:xyz"],
            1,
            "Invalid SequenceNumber",
        ),
        (
            &["get", "e", "--shard", "0", "--from", "at-time:yesterday"],
            1,
            "RFC 3339",
        ),
        (
            &["put", "nope", "--partition-key", "k", "x"],
            1,
            "ResourceNotFoundException",
        ),
        (
            &["put", "e", "--partition-key", "", "x"],
            1,
            "partition key",
        ),
        (&["stream", "create", "bad name!"], 1, "InvalidArgument"),
        (
            &["stream", "create", "z", "--shards", "0"],
            1,
            "InvalidArgument",
        ),
        (&["stream", "frobnicate"], 2, "unrecognized subcommand"),
    ];
    for (args, code, message) in cases {
        let err = cli.fails(args, *code);
        assert!(
            err.contains(message),
            "riffle {args:?}: expected {message:?} in {err:?}"
        );
    }
    let unreachable = Cli {
        server: "127.0.0.1:1".into(),
    };
    let err = unreachable.fails(&["stream", "list"], 3);
    assert!(
        err.contains("cannot reach the server at 127.0.0.1:1"),
        "{err}"
    );
}
