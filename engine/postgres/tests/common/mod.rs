//! One throwaway PostgreSQL cluster per test process (cargo test runs a
//! binary's tests in one process; nextest runs each test in its own), started
//! on first use by `tools/postgres-test.sh run` on a free port under
//! target/tmp, and shared by the process's tests. The server is a child of a thread that lives as long
//! as the test process; it gets SIGINT (fast shutdown) when the process ends
//! (`setpriv --pdeathsig`), so no test leaves it running.
//!
//! Readiness is the server's own log line, not a sleep. Missing binaries make
//! every test fail with the script's message saying how to install them.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use riffle_engine::rt::net::{self, Connection};
use riffle_postgres::{AuthMethods, Client, PgError};

/// How long the cluster may take to initdb and start.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The shared cluster; panics with the reason when it cannot start.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("the test PostgreSQL cluster did not start:\n{e}"),
    }
}

fn start() -> Result<Cluster, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("tools/postgres-test.sh");
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "pg".into());
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // Clusters of test processes that are gone (their servers stopped with them).
    let mine = format!("postgres-{name}-");
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file.strip_prefix(&mine).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{mine}{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let (tx, rx) = mpsc::channel::<Result<(), String>>();
    let dir_arg = dir.clone();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || {
            let child = Command::new(&script)
                .arg("run")
                .arg(&dir_arg)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot run {}: {e}", script.display())));
                    return;
                }
            };
            let Some(stderr) = child.stderr.take() else {
                let _ = tx.send(Err("no stderr pipe".into()));
                return;
            };
            let mut log = String::new();
            let mut ready = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !ready {
                    log.push_str(&line);
                    log.push('\n');
                    if line.contains("database system is ready to accept connections") {
                        ready = true;
                        let _ = tx.send(Ok(()));
                    }
                }
            }
            if !ready {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let _ = tx.send(Err(format!("{log}(exit: {status})")));
                return;
            }
            // Lives until the process ends; then the server gets SIGINT.
            let _ = child.wait();
        })
        .map_err(|e| format!("cannot start the keeper thread: {e}"))?;
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(Cluster { port, dir }),
        Ok(Err(log)) => Err(log),
        Err(_) => Err(format!("not ready after {START_TIMEOUT:?}")),
    }
}

/// Connects to the shared cluster's database `riffle`.
pub async fn connect_as(user: &str, password: &str) -> Result<Client<Connection>, PgError> {
    let port = cluster().port;
    let stream = net::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    Client::connect(stream, "riffle", user, password).await
}

/// Connects allowing only the methods of `require_auth` (libpq's syntax).
pub async fn connect_with_auth(
    user: &str,
    password: &str,
    require_auth: &str,
) -> Result<Client<Connection>, PgError> {
    let methods = AuthMethods::parse(require_auth).map_err(PgError::Auth)?;
    let port = cluster().port;
    let stream = net::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    Client::connect_with(stream, "riffle", user, password, methods).await
}

/// Connects as the superuser `riffle` (SCRAM-SHA-256).
pub async fn connect() -> Client<Connection> {
    match connect_as("riffle", "riffle").await {
        Ok(c) => c,
        Err(e) => panic!("connect: {e}"),
    }
}

/// Runs an async test body on a fresh Riffle executor.
pub fn run<G, F, T>(body: G) -> T
where
    G: FnOnce() -> F + Send + 'static,
    F: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    cluster();
    match riffle_engine::rt::block_on_local(body) {
        Ok(t) => t,
        Err(e) => panic!("executor: {e}"),
    }
}

/// `Some(text)` for each value, as rows come back from `query`.
pub fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}
