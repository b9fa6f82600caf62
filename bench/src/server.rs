//! The server under test: a `riffle server` child started in a fresh data
//! directory (removed afterwards), or one already running at `--server ADDR`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

pub struct ServerUnderTest {
    pub addr: SocketAddr,
    /// The Kinesis HTTP API, when the server serves it.
    pub http: Option<SocketAddr>,
    /// Whose CPU time is reported as the server's.
    pub pid: Option<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl ServerUnderTest {
    pub fn attach(addr: &str, pid: Option<u32>) -> anyhow::Result<ServerUnderTest> {
        use std::net::ToSocketAddrs;
        let addr = addr
            .to_socket_addrs()
            .with_context(|| format!("--server {addr}"))?
            .next()
            .with_context(|| format!("--server {addr} resolves to nothing"))?;
        Ok(ServerUnderTest {
            addr,
            http: None,
            pid,
            child: None,
            _dir: None,
        })
    }

    /// Starts `riffle server` on a free loopback port with a temporary data
    /// directory under `parent`; `extra` are more `riffle server` flags.
    pub fn start(
        bin: &Path,
        parent: &Path,
        durability: &str,
        cores: Option<usize>,
        http: bool,
        extra: &[String],
    ) -> anyhow::Result<ServerUnderTest> {
        let dir = tempfile::Builder::new()
            .prefix("riffle-bench-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot create a data directory in {}", parent.display()))?;
        let mut cmd = Command::new(bin);
        // Only the flags below configure the server under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RIFFLE_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0", "--durability", durability])
            .args(["--http", if http { "127.0.0.1:0" } else { "off" }])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The server goes when the bench goes, even killed.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        if let Some(c) = cores {
            cmd.arg("--cores").arg(c.to_string());
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} (use --riffle-bin PATH)", bin.display()))?;
        let stdout = child.stdout.take().context("no server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(a) = line.strip_prefix("riffle listening on ") {
                        break a.trim().parse::<SocketAddr>()?;
                    }
                }
                _ => {
                    let status = child.wait()?;
                    bail!("the server exited before listening ({status})");
                }
            }
        };
        let http = if http {
            let line = lines.next().context("no http line")??;
            let a = line
                .strip_prefix("riffle http listening on ")
                .with_context(|| format!("unexpected line {line:?}"))?;
            Some(a.trim().parse::<SocketAddr>()?)
        } else {
            None
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerUnderTest {
            addr,
            http,
            pid: Some(child.id()),
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// The data directory of the bench's own server.
    pub fn data_dir(&self) -> Option<&Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

impl Drop for ServerUnderTest {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // SIGTERM: a clean shutdown, then the directory goes.
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

/// The `riffle` binary: `--riffle-bin`, else `RIFFLE_BIN`, else the one built
/// beside this executable, else `riffle` on PATH.
pub fn riffle_bin(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag.or_else(|| std::env::var_os("RIFFLE_BIN").map(PathBuf::from)) {
        return p;
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        for candidate in [dir.join("riffle"), dir.join("../riffle")] {
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("riffle")
}
