//! Smoke test of the `riffle-bench` binary against a real `riffle server`: every
//! scenario runs and its report is consistent (headline figures, percentiles,
//! echoed settings, CPU time, machine), the human table has its lines, a server
//! started by the test can be driven with `--server`, and bad input fails with
//! exit 1 and a message naming the flag (2 for clap's usage errors).
//!
//! Needs the `riffle` binary beside `riffle-bench` (`cargo build -p riffle`; the
//! CI script builds it first). Each run measures one second without warm-up and
//! consume/mixed write a 5 MB backlog, so the file stays well under a minute in
//! a debug build on two cores.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_riffle-bench");

/// Backlog written before consume and mixed, in MB (10^6 bytes).
const BACKLOG_MB: u64 = 5;

/// Flags every measuring run gets: one second, no warm-up, a small backlog.
const SHORT: &[&str] = &["--duration", "1", "--warmup", "0", "--backlog-mb", "5"];

/// The `riffle` binary built beside `riffle-bench` (target/<profile>/riffle).
fn riffle_bin() -> PathBuf {
    let bin = Path::new(BENCH)
        .parent()
        .expect("riffle-bench lives in target/<profile>")
        .join("riffle");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p riffle` first (the CI script does)",
        bin.display()
    );
    bin
}

/// A fresh directory under the target dir (direct I/O does not work on tmpfs).
fn data_dir() -> tempfile::TempDir {
    let tmp = env!("CARGO_TARGET_TMPDIR");
    std::fs::create_dir_all(tmp).unwrap();
    tempfile::Builder::new()
        .prefix("smoke-")
        .tempdir_in(tmp)
        .unwrap()
}

/// Runs `riffle-bench ARGS` with its own server's data under a fresh directory,
/// and checks the bench removed everything it put there.
fn bench(args: &[&str]) -> Output {
    let dir = data_dir();
    let out = Command::new(BENCH)
        .args(args)
        .arg("--riffle-bin")
        .arg(riffle_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("riffle-bench starts");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "riffle-bench {args:?} left {left:?} in its --data-dir"
    );
    out
}

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = bench(args);
    assert!(
        out.status.success(),
        "riffle-bench {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `ARGS` plus [`SHORT`] and `--json`; returns the one JSON object it
/// printed (progress goes to stderr, so stdout holds nothing else).
fn report(args: &[&str]) -> Value {
    let full = [args, SHORT, &["--json"]].concat();
    let stdout = ok(&full);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {stdout:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = bench(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "riffle-bench {args:?}: {}\n{stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when failing");
    stderr
}

fn num(r: &Value, key: &str) -> f64 {
    r[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {r}"))
}

fn int(r: &Value, key: &str) -> u64 {
    r[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not an integer: {r}"))
}

/// `a ≈ b` within a relative `tolerance` (and float rounding).
fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * a.abs().max(b.abs()) + 1e-6
}

/// Total records or bytes behind a `*_per_sec` figure.
fn total(r: &Value, per_sec_key: &str) -> f64 {
    num(r, per_sec_key) * num(r, "duration_s")
}

/// A latency object: at least one sample, percentiles in order.
fn check_percentiles(r: &Value, key: &str) {
    let p = &r[key];
    let at = |k: &str| {
        p[k].as_u64()
            .unwrap_or_else(|| panic!("{key}.{k} is not an integer: {r}"))
    };
    assert!(at("count") > 0, "{key} has samples: {r}");
    let ordered = [at("p50"), at("p90"), at("p99"), at("p999"), at("max")];
    assert!(
        ordered.windows(2).all(|w| w[0] <= w[1]),
        "{key}: p50 <= p90 <= p99 <= p999 <= max: {r}"
    );
}

/// What every report must satisfy, whatever the scenario.
fn check_report(r: &Value, scenario: &str, record_size: u64, durability: &str) {
    assert_eq!(r["scenario"], scenario, "{r}");
    assert_eq!(int(r, "record_size"), record_size, "{r}");
    assert_eq!(r["durability"], durability, "{r}");
    assert_eq!(int(r, "errors"), 0, "{r}");
    let records = num(r, "records_per_sec");
    assert!(records > 0.0, "records_per_sec > 0: {r}");
    assert!(
        near(num(r, "bytes_per_sec"), records * record_size as f64, 1e-9),
        "bytes_per_sec = records_per_sec x record_size: {r}"
    );
    for side in ["produced", "consumed"] {
        assert!(
            near(
                num(r, &format!("{side}_bytes_per_sec")),
                num(r, &format!("{side}_records_per_sec")) * record_size as f64,
                1e-9
            ),
            "{side} bytes = records x record_size: {r}"
        );
    }
    assert!(num(r, "duration_s") > 0.0, "{r}");
    // The headline is the scenario's own figure and latency.
    let (side, latency) = match scenario {
        "produce" => ("produced", "ack_latency_us"),
        "consume" => ("consumed", "read_latency_us"),
        _ => ("consumed", "e2e_latency_us"),
    };
    assert!(
        near(records, num(r, &format!("{side}_records_per_sec")), 1e-12),
        "records_per_sec is the {side} rate: {r}"
    );
    check_percentiles(r, "latency_us");
    check_percentiles(r, latency);
    assert_eq!(r["latency_us"], r[latency], "latency_us is {latency}: {r}");
    for key in ["ack_latency_us", "e2e_latency_us", "read_latency_us"] {
        if !r[key].is_null() {
            check_percentiles(r, key);
        }
    }
    assert!(r["cpu"]["client_s"].as_f64().unwrap() >= 0.0, "{r}");
    let server_s = r["cpu"]["server_s"].as_f64();
    assert!(
        server_s.is_some_and(|s| s >= 0.0),
        "the bench knows its server's pid, so server CPU time is a number: {r}"
    );
    let machine = &r["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1, "{r}");
    assert!(!machine["kernel"].as_str().unwrap().is_empty(), "{r}");
    assert_eq!(machine["loadavg"].as_array().unwrap().len(), 3, "{r}");
}

/// A timed closed-loop run echoes its load settings.
fn check_closed_loop(r: &Value) {
    assert_eq!(r["loop_mode"], "closed", "{r}");
    assert!(r["rate"].is_null(), "{r}");
    assert!(near(num(r, "duration_s"), 1.0, 1e-9), "{r}");
}

fn check_own_server(r: &Value) {
    let server = r["server"].as_str().unwrap();
    assert!(
        server.starts_with("riffle server started by the bench on 127.0.0.1:"),
        "{r}"
    );
}

#[test]
fn produce() {
    let r = report(&["produce"]);
    check_report(&r, "produce", 1024, "fsync");
    check_closed_loop(&r);
    check_own_server(&r);
    assert_eq!(int(&r, "producers"), 4, "{r}");
    assert_eq!(int(&r, "consumers"), 0, "{r}");
    assert_eq!(int(&r, "batch"), 500, "{r}");
    assert_eq!(int(&r, "shards"), 4, "{r}");
    assert_eq!(int(&r, "streams"), 1, "{r}");
    assert_eq!(num(&r, "consumed_records_per_sec"), 0.0, "{r}");
    assert!(r["e2e_latency_us"].is_null() && r["read_latency_us"].is_null());
    // Whole requests of 500 records are acknowledged, each with one latency
    // sample (give or take a reply racing the end of the run per producer).
    let records = total(&r, "produced_records_per_sec").round() as u64;
    assert_eq!(records % 500, 0, "{r}");
    assert!(
        (records / 500).abs_diff(int(&r["ack_latency_us"], "count")) <= 4,
        "{r}"
    );
}

#[test]
fn consume_reads_the_whole_backlog() {
    let record_size = 1000;
    let r = report(&["consume", "--record-size", "1000"]);
    check_report(&r, "consume", record_size, "fsync");
    check_own_server(&r);
    assert_eq!(int(&r, "producers"), 0, "no producers while consuming: {r}");
    assert_eq!(int(&r, "consumers"), 1, "{r}");
    assert!(r["ack_latency_us"].is_null() && r["e2e_latency_us"].is_null());
    // The backlog's producers send whole batches, so they may overshoot by
    // less than one batch each (4 producers x 500 records).
    let backlog = (BACKLOG_MB * 1_000_000) as f64;
    let overshoot_max = (4 * 500 * record_size) as f64;
    let consumed = total(&r, "consumed_bytes_per_sec");
    assert!(
        consumed >= backlog * (1.0 - 1e-9) && consumed <= backlog + overshoot_max,
        "consumed {consumed} bytes of a {backlog}-byte backlog: {r}"
    );
}

#[test]
fn tail() {
    let r = report(&["tail"]);
    check_report(&r, "tail", 1024, "fsync");
    check_closed_loop(&r);
    check_own_server(&r);
    assert_eq!(int(&r, "consumers"), 1, "{r}");
    check_percentiles(&r, "ack_latency_us");
    // Consumers start at LATEST, so they see only records of this run: those
    // acknowledged, and at most one request per producer still in flight.
    let (produced, consumed) = (
        total(&r, "produced_records_per_sec"),
        total(&r, "consumed_records_per_sec"),
    );
    assert!(produced > 0.0, "{r}");
    assert!(consumed <= produced + 4.0 * 500.0, "{r}");
}

#[test]
fn end_to_end_holds_the_offered_rate() {
    let rate = 2000.0;
    let r = report(&[
        "end-to-end",
        "--rate",
        "2000",
        "--batch",
        "10",
        "--record-size",
        "100",
    ]);
    check_report(&r, "end-to-end", 100, "fsync");
    check_own_server(&r);
    assert_eq!(r["loop_mode"], "open", "{r}");
    assert_eq!(int(&r, "rate"), 2000, "{r}");
    assert_eq!(int(&r, "batch"), 10, "{r}");
    let produced = num(&r, "produced_records_per_sec");
    assert!(
        near(produced, rate, 0.2),
        "produced {produced} records/s at {rate} offered: {r}"
    );
    let consumed = num(&r, "consumed_records_per_sec");
    assert!(
        near(consumed, produced, 0.1),
        "consumed {consumed} ≈ produced {produced}: {r}"
    );
    check_percentiles(&r, "e2e_latency_us");
    check_percentiles(&r, "ack_latency_us");
}

#[test]
fn end_to_end_defaults_to_an_open_loop() {
    // `e2e` is an alias; without --rate the offered rate is 50,000 records/s.
    // Records of 8 bytes (just the send time) keep 50,000 records/s light.
    let r = report(&["e2e", "--record-size", "8"]);
    check_report(&r, "end-to-end", 8, "fsync");
    assert_eq!(r["loop_mode"], "open", "{r}");
    assert_eq!(int(&r, "rate"), 50_000, "{r}");
}

#[test]
fn mixed_reads_the_backlog_and_new_records() {
    let r = report(&["mixed"]);
    check_report(&r, "mixed", 1024, "fsync");
    check_closed_loop(&r);
    check_own_server(&r);
    assert!(num(&r, "produced_records_per_sec") > 0.0, "{r}");
    // Records of this run carry a send time and are counted in e2e; backlog
    // records do not, so consumers starting at TRIM_HORIZON read more.
    let consumed = total(&r, "consumed_records_per_sec").round() as u64;
    let stamped = int(&r["e2e_latency_us"], "count");
    assert!(consumed > stamped, "backlog records read too: {r}");
}

#[test]
fn many_small_producers() {
    let r = report(&["produce", "--producers", "64", "--batch", "10"]);
    check_report(&r, "produce", 1024, "fsync");
    assert_eq!(int(&r, "producers"), 64, "{r}");
    assert_eq!(int(&r, "batch"), 10, "{r}");
}

#[test]
fn durability_none() {
    let r = report(&["produce", "--durability", "none", "--record-size", "100"]);
    check_report(&r, "produce", 100, "none");
}

#[test]
fn two_streams() {
    let r = report(&[
        "tail",
        "--streams",
        "2",
        "--shards",
        "2",
        "--consumers",
        "2",
    ]);
    check_report(&r, "tail", 1024, "fsync");
    assert_eq!(int(&r, "streams"), 2, "{r}");
    assert_eq!(int(&r, "shards"), 2, "{r}");
    assert_eq!(int(&r, "consumers"), 2, "{r}");
}

#[test]
fn bad_input_is_refused() {
    // (arguments, exit code, what stderr must contain)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["produce", "--batch", "0"], 1, "--batch"),
        (&["produce", "--batch", "501"], 1, "--batch"),
        (&["produce", "--producers", "0"], 1, "--producers"),
        (&["produce", "--shards", "0"], 1, "--shards"),
        (&["produce", "--rate", "0"], 1, "--rate"),
        (&["produce", "--record-size", "1048577"], 1, "--record-size"),
        (&["end-to-end", "--record-size", "4"], 1, "--record-size"),
        (&["tail", "--record-size", "7"], 1, "--record-size"),
        (&["bogus"], 2, "bogus"),
        (&["produce", "--no-such-flag"], 2, "--no-such-flag"),
        (
            &["produce", "--server", "127.0.0.1:1", "--duration", "1"],
            1,
            "cannot reach the server at 127.0.0.1:1",
        ),
    ];
    for &(args, code, needle) in cases {
        let stderr = fails(args, code);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        if code == 1 {
            assert!(stderr.starts_with("riffle-bench: "), "{args:?}: {stderr}");
        }
    }
}

/// Negative times are bad input like any other: exit 1 naming the flag, not a
/// panic (exit 101) after the server has started.
#[test]
fn negative_times_are_refused() {
    for (args, needle) in [
        (["produce", "--duration=-1", "--warmup=0"], "--duration"),
        (["produce", "--duration=1", "--warmup=-1"], "--warmup"),
    ] {
        let stderr = fails(&args, 1);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn human_table() {
    let stdout = ok(&[&["produce"], SHORT].concat());
    for key in ["scenario", "produce-to-ack", "cpu", "machine"] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(key)),
            "no {key:?} line in:\n{stdout}"
        );
    }
    let scenario = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("scenario"))
        .unwrap();
    assert!(scenario.trim_end().ends_with("produce"), "{scenario}");
    assert!(
        !stdout.contains("records/s |"),
        "progress lines go to stderr:\n{stdout}"
    );
}

/// A `riffle server` the test starts and stops itself.
struct External {
    child: Child,
    addr: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl External {
    fn start(data_dir: &Path) -> External {
        let mut child = Command::new(riffle_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--http", "off"])
            // Other tests run servers on the same cores.
            .arg("--no-pin")
            .env_remove("RIFFLE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn riffle server");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "riffle server exited before listening:\n{}",
                stderr.join().unwrap()
            )
        };
        let addr = line
            .strip_prefix("riffle listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        External {
            child,
            addr,
            stderr: Some(stderr),
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the child is ours and not
        // yet reaped, so the pid is still its own.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal})");
    }

    /// SIGTERM and wait: the server shuts down cleanly. Returns its logs.
    fn stop(&mut self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        let logs = self.stderr.take().unwrap().join().unwrap();
        (status, logs)
    }
}

impl Drop for External {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn drives_a_running_server() {
    let dir = data_dir();
    let mut server = External::start(dir.path());
    let pid = server.child.id().to_string();
    let r = report(&[
        "produce",
        "--server",
        &server.addr,
        "--server-pid",
        &pid,
        "--durability",
        "fsync",
    ]);
    check_report(&r, "produce", 1024, "fsync");
    check_closed_loop(&r);
    assert_eq!(r["server"], server.addr.as_str(), "{r}");
    assert!(
        num(&r["cpu"], "server_s") > 0.0,
        "the server worked, and --server-pid names it: {r}"
    );
    // Without --server-pid the server's CPU time is unknown, and said so.
    let table = ok(&[&["produce", "--server", &server.addr], SHORT].concat());
    let cpu = table
        .lines()
        .find(|l| l.trim_start().starts_with("cpu"))
        .unwrap_or_else(|| panic!("no cpu line in:\n{table}"));
    assert!(cpu.contains("unknown (pass --server-pid)"), "{cpu}");
    // The bench deletes the streams it created.
    let list = Command::new(riffle_bin())
        .args(["stream", "list", "--server", &server.addr])
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    assert_eq!(String::from_utf8_lossy(&list.stdout), "no streams\n");
    let (status, logs) = server.stop();
    assert!(status.success(), "server exit {status}:\n{logs}");
}

/// A child process killed if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Open loop: latency counts from each request's intended send time, so a
/// server that stalls shows up in the percentiles. That must hold for a stall
/// that straddles the end of the run too: every request intended inside the
/// window gets its latency sample, whenever its reply comes.
#[test]
fn a_stall_at_the_end_of_the_run_shows_in_the_latency() {
    let dir = data_dir();
    let server = External::start(dir.path());
    let bench_dir = data_dir();
    let pid = server.child.id().to_string();
    // 100 requests/s of 10 records for 2 s: 200 requests intended in the window.
    let mut bench = Reaped(
        Command::new(BENCH)
            .args(["produce", "--server", &server.addr, "--server-pid", &pid])
            .args(["--rate", "1000"])
            .args(["--batch", "10", "--producers", "1", "--record-size", "100"])
            .args(["--duration", "2", "--warmup", "0", "--json"])
            .arg("--data-dir")
            .arg(bench_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("riffle-bench starts"),
    );
    let mut stderr = BufReader::new(bench.0.stderr.take().unwrap()).lines();
    let mut log = String::new();
    // The first progress line comes one second into the window.
    for line in stderr.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("s] produced") {
            break;
        }
    }
    assert!(log.contains("s] produced"), "no progress line:\n{log}");
    // Stall the server from 1 s until past the end of the 2 s window.
    server.signal(libc::SIGSTOP);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.signal(libc::SIGCONT);
    for line in stderr {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let mut stdout = String::new();
    let mut pipe = bench.0.stdout.take().unwrap();
    pipe.read_to_string(&mut stdout).unwrap();
    let status = bench.0.wait().unwrap();
    assert!(status.success(), "riffle-bench failed ({status}):\n{log}");
    let r: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    check_report(&r, "produce", 100, "fsync");
    let ack = &r["ack_latency_us"];
    assert!(
        int(ack, "count") >= 180,
        "every request intended in the window has a latency sample: {r}"
    );
    assert!(
        int(ack, "max") >= 1_000_000,
        "the 1.5 s stall shows in the latency: {r}"
    );
}

/// The Kinesis-HTTP target: the same scenarios over AWS's JSON API.
#[test]
fn the_kinesis_http_target_produces_and_consumes() {
    let r = report(&[
        "produce",
        "--target",
        "kinesis-http",
        "--record-size",
        "100",
        "--batch",
        "50",
    ]);
    check_report(&r, "produce", 100, "fsync");
    assert!(num(&r, "records_per_sec") > 0.0, "{r}");
    let record_size = 1000;
    let r = report(&[
        "consume",
        "--target",
        "kinesis-http",
        "--record-size",
        "1000",
    ]);
    check_report(&r, "consume", record_size, "fsync");
    let backlog = (BACKLOG_MB * 1_000_000) as f64;
    let overshoot_max = (4 * 500 * record_size) as f64;
    let consumed = total(&r, "consumed_bytes_per_sec");
    assert!(
        consumed >= backlog * (1.0 - 1e-9) && consumed <= backlog + overshoot_max,
        "consumed {consumed} bytes of a {backlog}-byte backlog over HTTP: {r}"
    );
    // Only the scenarios without delivery stamps, closed loop.
    let err = fails(&["tail", "--target", "kinesis-http"], 1);
    assert!(err.contains("kinesis-http"), "{err}");
    let err = fails(
        &["produce", "--target", "kinesis-http", "--rate", "1000"],
        1,
    );
    assert!(err.contains("--rate"), "{err}");
}
