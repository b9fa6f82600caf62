//! riffle-tests: end-to-end tests that run the real `riffle` binary.
//!
//! [`Server`] starts `riffle server` on an ephemeral loopback port with a data
//! directory the test owns, waits for its "riffle listening on ADDR" line (an
//! event, not a sleep), and can stop it gracefully (SIGTERM), kill it (SIGKILL)
//! and restart it on the same directory. [`RawConn`] speaks frames directly for
//! tests that must send what no well-behaved client would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use riffle_protocol::Limits;
use riffle_protocol::native::{
    FRAME_HEADER_SIZE, FrameHeader, Reply, Request, decode_reply, encode_request,
    response_frame_size_max,
};
use rkyv::util::AlignedVec;

/// The `riffle` binary under test: `$RIFFLE_BIN`, or the one built beside this
/// test executable (target/<profile>/riffle; tools/test.sh builds it first).
pub fn riffle_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RIFFLE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps");
    let bin = profile_dir.join("riffle");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p riffle` first (tools/test.sh does)",
        bin.display()
    );
    bin
}

/// A running `riffle server` process.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// The AWS-compatible HTTP API.
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    args: Vec<String>,
    /// The process's stderr (logs), collected by a thread.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts a server on `data_dir` listening on an ephemeral port, with extra
    /// arguments (e.g. `["--durability", "none"]`).
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            stderr: None,
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, listen: &str) {
        let mut child = Command::new(riffle_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg(listen)
            .arg("--http")
            .arg(self.http_addr.to_string())
            .arg("--no-pin")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn riffle server");
        let mut stderr = child.stderr.take().unwrap();
        self.stderr = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        }));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let status = child.wait().unwrap();
                let logs = self.stderr.take().unwrap().join().unwrap();
                panic!("riffle server exited ({status}) before listening:\n{logs}");
            }
        };
        let addr = line
            .strip_prefix("riffle listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.addr = addr.parse().unwrap();
        let http = match lines.next() {
            Some(Ok(line)) => line,
            other => panic!("no http line after {line:?}: {other:?}"),
        };
        self.http_addr = http
            .strip_prefix("riffle http listening on ")
            .unwrap_or_else(|| panic!("unexpected second line {http:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// SIGSTOP, returning once every thread of the server has stopped (the
    /// kernel reports the completed group stop to the parent), so nothing the
    /// server has not already answered is answered until it is killed.
    pub fn stop(&self) {
        let pid = self.pid() as i32;
        // SAFETY: signalling and waiting for our own child process by pid.
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(rc, 0, "kill(SIGSTOP)");
        loop {
            let mut status = 0;
            // SAFETY: as above; WUNTRACED reports the stop without reaping.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
            if rc == pid && libc::WIFSTOPPED(status) {
                return;
            }
            let err = std::io::Error::last_os_error();
            assert!(
                rc == -1 && err.kind() == std::io::ErrorKind::Interrupted,
                "waitpid for the stopped server: rc {rc}, status {status:#x}, {err}"
            );
        }
    }

    /// SIGKILL: no shutdown, no flush. Returns the server's logs so far.
    pub fn kill9(&mut self) -> String {
        let mut child = self.child.take().expect("server is running");
        child.kill().unwrap();
        child.wait().unwrap();
        self.stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }

    /// SIGTERM and wait: the graceful path. Returns the exit status and logs.
    pub fn terminate(&mut self) -> (ExitStatus, String) {
        let child = self.child.take().expect("server is running");
        // SAFETY: sending a signal to our own child process by pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        self.child = Some(child);
        self.wait_exit()
    }

    /// Waits for the process to exit (after a signal sent elsewhere).
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("server is running");
        let status = child.wait().unwrap();
        let logs = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        (status, logs)
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let addr = self.addr.to_string();
        self.spawn(&addr);
    }

    /// Resident memory of the server process in bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw native-protocol connection: sends arbitrary bytes, reads whole frames.
pub struct RawConn {
    pub stream: TcpStream,
    limits: Limits,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::try_connect(addr).expect("connect")
    }

    /// Connects, or `None` when nobody listens (e.g. the server was killed).
    pub fn try_connect(addr: SocketAddr) -> Option<RawConn> {
        let stream = TcpStream::connect(addr).ok()?;
        stream.set_nodelay(true).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        Some(RawConn {
            stream,
            limits: Limits::default(),
        })
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, request_id: u64, request: &Request<'_>) {
        let mut out = Vec::new();
        encode_request(&mut out, request_id, request);
        self.send_bytes(&out);
    }

    /// Reads one frame; `None` when the connection closed (even mid-frame).
    pub fn recv_frame(&mut self) -> Option<AlignedVec<16>> {
        let mut header = [0u8; FRAME_HEADER_SIZE];
        if self.stream.read_exact(&mut header).is_err() {
            return None;
        }
        let h = FrameHeader::parse(&header, response_frame_size_max(&self.limits))
            .expect("the server sends well-formed headers");
        let mut frame = AlignedVec::<16>::with_capacity(h.frame_size as usize);
        frame.extend_from_slice(&header);
        frame.resize(h.frame_size as usize, 0);
        self.stream
            .read_exact(&mut frame[FRAME_HEADER_SIZE..])
            .ok()?;
        Some(frame)
    }

    /// Reads one frame and decodes it: (request id, reply), with owned errors
    /// and the frame kept for borrowed replies.
    pub fn recv(&mut self) -> Option<(u64, AlignedVec<16>)> {
        let frame = self.recv_frame()?;
        let id = decode_reply(&frame, &self.limits)
            .expect("the server sends valid frames")
            .0
            .request_id;
        Some((id, frame))
    }

    /// Sends a request and returns its reply frame (no other request in flight).
    pub fn call(&mut self, request_id: u64, request: &Request<'_>) -> AlignedVec<16> {
        self.send(request_id, request);
        let (id, frame) = self.recv().expect("a reply");
        assert_eq!(id, request_id);
        frame
    }

    /// True when the server closed the connection (EOF before any byte).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

/// Decodes a reply frame with default limits.
pub fn reply(frame: &[u8]) -> Reply<'_> {
    decode_reply(frame, &Limits::default())
        .expect("valid reply")
        .1
}

/// A data directory under the target dir (direct I/O does not work on tmpfs).
pub fn data_dir(target_tmpdir: &str) -> tempfile::TempDir {
    std::fs::create_dir_all(target_tmpdir).unwrap();
    tempfile::tempdir_in(target_tmpdir).unwrap()
}

/// An empty KMS keyring kept in the clear, beside a test's data directory
/// (`riffle server --kms-keyring`): the AWS-managed keys (`alias/aws/kinesis`)
/// are made in it the first time a call names them.
pub fn empty_keyring(dir: &Path) -> String {
    let path = dir.join("keyring.json");
    std::fs::write(
        &path,
        r#"{"Format": "riffle-keyring/1", "Protection": {"Kind": "none"}, "Keys": []}"#,
    )
    .unwrap();
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// The seed for a randomized test: `$RIFFLE_SEED` or fresh; printed for replay.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("RIFFLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: RIFFLE_SEED={seed}");
    seed
}

/// Every record of one shard from the trim horizon to the tip, over `conn`:
/// (offset, partition key, data), following GetRecords until a read returns
/// nothing. Panics on any error (tests only).
pub fn read_shard(
    conn: &mut RawConn,
    stream: &str,
    shard_index: u32,
) -> Vec<(u64, String, Vec<u8>)> {
    use riffle_protocol::native::{Response, StartPosition};
    let frame = conn.call(
        u64::MAX - 1,
        &Request::GetShardIterator {
            stream,
            shard_index,
            position: StartPosition::TrimHorizon,
        },
    );
    let Reply::Response(Response::Iterator(it)) = reply(&frame) else {
        panic!("no iterator: {:?}", reply(&frame));
    };
    let mut iterator = it.to_string();
    let mut out = Vec::new();
    loop {
        let frame = conn.call(
            u64::MAX - 2,
            &Request::GetRecords {
                iterator: &iterator,
                limit: 0,
            },
        );
        let Reply::Response(Response::Records(r)) = reply(&frame) else {
            panic!("no records: {:?}", reply(&frame));
        };
        if r.spans.is_empty() {
            return out;
        }
        for span in &r.spans {
            let view = riffle_protocol::batch::verify(span.batch).expect("served batches verify");
            let base = view.header.base_offset + span.skip as u64;
            let records = &view.records()[span.skip as usize..(span.skip + span.take) as usize];
            for (i, rec) in records.iter().enumerate() {
                out.push((
                    base + i as u64,
                    rec.partition_key().to_string(),
                    rec.data().to_vec(),
                ));
            }
        }
        iterator = r
            .next_iterator
            .expect("GetRecords has a next iterator")
            .to_string();
    }
}
