//! The audit trail's files: CloudTrail records, one JSON object a line,
//! appended by a thread of their own to
//! `<data-dir>/audit/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<n>.jsonl`
//! (CloudTrail's file naming, its `.json.gz` aside).
//!
//! Writing never blocks a request: a request's core hands its line over a
//! bounded channel and goes on; when the channel (or the bytes queued) is
//! full the line is dropped and counted ([`AuditLog::dropped`]), and a
//! warning is logged. A file that cannot be written is tried again a second
//! later; lines meanwhile are dropped and counted.
//! A line is synced to disk within `sync_ms` of being handed over (one
//! `fdatasync` covers every line written since the last). A file is closed
//! at the hour's end or once it holds `file_bytes_max`; files older than
//! the retention are removed when one is closed. The directory is 0700 and
//! the files 0600: requests' parameters are the operator's business only.
//! Knows nothing of HTTP or of what a record holds (`http::trail` does).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Where and how the trail is written.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// `<data-dir>/audit`.
    pub dir: PathBuf,
    /// The account and region in the files' names.
    pub account: String,
    pub region: String,
    /// A file is closed once it holds this many bytes.
    pub file_bytes_max: u64,
    /// Files last written longer ago than this are removed.
    pub retention: Duration,
    /// Lines handed over and not yet written, at most.
    pub queue_max: usize,
    /// Bytes handed over and not yet written, at most.
    pub queue_bytes_max: u64,
    /// A line is on disk within this long.
    pub sync_ms: u64,
}

impl AuditConfig {
    pub fn new(dir: PathBuf, account: &str, region: &str) -> AuditConfig {
        AuditConfig {
            dir,
            account: account.into(),
            region: region.into(),
            file_bytes_max: 64 << 20,
            retention: Duration::from_secs(7 * 24 * 3600),
            queue_max: 65_536,
            queue_bytes_max: 64 << 20,
            sync_ms: 200,
        }
    }
}

enum Message {
    Line(String),
    /// Write what came before, sync, and stop.
    Close,
}

/// The trail's writer (see the module's header).
pub struct AuditLog {
    tx: flume::Sender<Message>,
    counts: Arc<Counts>,
    queue_bytes_max: u64,
    thread: Mutex<Option<(JoinHandle<()>, flume::Receiver<()>)>>,
}

/// What the writer and the request cores share.
#[derive(Debug, Default)]
struct Counts {
    dropped: AtomicU64,
    /// Bytes handed over and not yet written.
    queued_bytes: AtomicU64,
}

impl Counts {
    fn drop_line(&self) {
        let before = self.dropped.fetch_add(1, Ordering::Relaxed);
        // One warning per 10,000 lines lost, not one per line.
        if before.is_multiple_of(10_000) {
            tracing::warn!(
                dropped = before + 1,
                "audit trail queue full or not writable: records dropped"
            );
        }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl AuditLog {
    /// Makes the directory (0700) and starts the writer thread.
    pub fn open(config: AuditConfig) -> io::Result<AuditLog> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)?;
        let (tx, rx) = flume::bounded(config.queue_max);
        let (done_tx, done) = flume::bounded(1);
        let counts = Arc::new(Counts::default());
        let queue_bytes_max = config.queue_bytes_max;
        let writer = Writer::new(config, counts.clone());
        let thread = std::thread::Builder::new()
            .name("riffle-audit".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })?;
        Ok(AuditLog {
            tx,
            counts,
            queue_bytes_max,
            thread: Mutex::new(Some((thread, done))),
        })
    }

    /// Hands a line (one JSON object, no newline) to the writer; never
    /// waits. A full queue or a closed log drops it (counted).
    pub fn record(&self, line: String) {
        let len = line.len() as u64 + 1;
        let queued = self.counts.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if queued + len > self.queue_bytes_max || self.tx.try_send(Message::Line(line)).is_err() {
            self.counts.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.counts.drop_line();
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Writes and syncs every line handed over before, then stops the
    /// writer; later lines are dropped. Idempotent.
    /// Waits up to 10 s for the writer (a disk that hangs does not hold
    /// the server's shutdown).
    pub fn close(&self) {
        let Some((thread, done)) = self.thread.lock().expect("not poisoned").take() else {
            return;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // Waits for room: the writer is draining the queue.
        let sent = self.tx.send_deadline(Message::Close, deadline).is_ok();
        if sent && done.recv_deadline(deadline).is_ok() {
            let _ = thread.join();
        } else {
            tracing::error!("the audit trail's writer did not finish within 10 s");
        }
        if self.dropped() > 0 {
            tracing::warn!(dropped = self.dropped(), "audit trail records were dropped");
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The file being written.
struct Current {
    file: io::BufWriter<File>,
    /// The hour (since the epoch) it was opened in.
    hour: u64,
    bytes: u64,
}

struct Writer {
    config: AuditConfig,
    counts: Arc<Counts>,
    current: Option<Current>,
    /// After a failure, no file is opened before then.
    retry_at: Option<Instant>,
    /// Bytes written since the last sync.
    unsynced: bool,
    last_sync: Instant,
    /// A write failed: reported once until one succeeds.
    failing: bool,
}

impl Writer {
    fn new(config: AuditConfig, counts: Arc<Counts>) -> Writer {
        Writer {
            config,
            counts,
            current: None,
            retry_at: None,
            unsynced: false,
            last_sync: Instant::now(),
            failing: false,
        }
    }

    fn run(mut self, rx: flume::Receiver<Message>) {
        let sync_every = Duration::from_millis(self.config.sync_ms);
        loop {
            let wait = if self.unsynced {
                sync_every.saturating_sub(self.last_sync.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            match rx.recv_timeout(wait) {
                Ok(Message::Line(line)) => {
                    self.counts
                        .queued_bytes
                        .fetch_sub(line.len() as u64 + 1, Ordering::Relaxed);
                    if self.retry_at.is_some_and(|at| Instant::now() < at) {
                        self.counts.drop_line();
                        continue;
                    }
                    let result = self.write(&line);
                    if result.is_err() {
                        self.counts.drop_line();
                    }
                    self.report(result);
                }
                Ok(Message::Close) | Err(flume::RecvTimeoutError::Disconnected) => {
                    let result = self.sync();
                    self.report(result);
                    return;
                }
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
            if self.unsynced && self.last_sync.elapsed() >= sync_every {
                let result = self.sync();
                self.report(result);
            }
        }
    }

    fn report(&mut self, result: io::Result<()>) {
        match result {
            Ok(()) => {
                self.failing = false;
                self.retry_at = None;
            }
            Err(e) => {
                if !self.failing {
                    tracing::error!(error = %e, dir = %self.config.dir.display(), "cannot write the audit trail");
                }
                self.failing = true;
                // A new file, a second later (lines buffered in the failed
                // one may be lost).
                self.current = None;
                self.unsynced = false;
                self.retry_at = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    fn write(&mut self, line: &str) -> io::Result<()> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let hour = now.as_secs() / 3600;
        let full = self.current.as_ref().is_some_and(|c| {
            c.hour != hour || c.bytes + line.len() as u64 + 1 > self.config.file_bytes_max
        });
        if full {
            self.sync()?;
            self.current = None;
            self.remove_expired();
        }
        if self.current.is_none() {
            self.current = Some(Current {
                file: io::BufWriter::with_capacity(64 << 10, self.create(now)?),
                hour,
                bytes: 0,
            });
        }
        let current = self.current.as_mut().expect("opened above");
        current.file.write_all(line.as_bytes())?;
        current.file.write_all(b"\n")?;
        current.bytes += line.len() as u64 + 1;
        self.unsynced = true;
        Ok(())
    }

    /// A new file, named for the minute it was opened in (a number after
    /// it when that name is taken).
    fn create(&self, now: Duration) -> io::Result<File> {
        let minute =
            riffle_protocol::time::format_rfc3339_ms((now.as_millis() as i64) / 60_000 * 60_000);
        // 2026-12-05T00:40:00.000Z -> 20261205T0040Z
        let stamp: String = minute[..16]
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        for n in 0u32.. {
            let path = self.config.dir.join(format!(
                "{}_CloudTrail_{}_{stamp}Z_{n:06}.jsonl",
                self.config.account, self.config.region
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => {
                    sync_dir(&self.config.dir)?;
                    return Ok(f);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("u32 names run out only after 4 billion files a minute")
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(c) = &mut self.current {
            c.file.flush()?;
            c.file.get_ref().sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Removes the trail's files last written before the retention.
    fn remove_expired(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > self.config.retention);
            if old && let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, path = %path.display(), "cannot remove an expired audit file");
            }
        }
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The trail's files, oldest first (by name: the minute they were opened).
pub fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dir: &Path) -> Vec<String> {
        files(dir)
            .unwrap()
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn lines_are_on_disk_in_order_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(AuditConfig::new(
            dir.path().join("audit"),
            "123456789012",
            "us-east-1",
        ))
        .unwrap();
        for i in 0..1000 {
            log.record(format!("{{\"n\":{i}}}"));
        }
        log.close();
        let got = lines(&dir.path().join("audit"));
        assert_eq!(got.len(), 1000);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("{{\"n\":{i}}}"))
        );
        assert_eq!(log.dropped(), 0);
        // After close, a line is dropped and counted, not written.
        log.record("late".into());
        assert_eq!(log.dropped(), 1);
        let file = &files(&dir.path().join("audit")).unwrap()[0];
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("123456789012_CloudTrail_us-east-1_")
                && name.ends_with("Z_000000.jsonl"),
            "{name}"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("audit"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }

    #[test]
    fn a_full_file_is_closed_and_the_next_one_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf(), "1", "r");
        config.file_bytes_max = 100;
        let log = AuditLog::open(config).unwrap();
        for i in 0..10 {
            log.record(format!("{i:039}"));
        }
        log.close();
        // 40 bytes a line: two lines a file.
        let files = files(dir.path()).unwrap();
        assert_eq!(files.len(), 5, "{files:?}");
        assert_eq!(lines(dir.path()).len(), 10);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf(), "1", "r");
        config.queue_max = 1;
        let log = AuditLog::open(config).unwrap();
        for i in 0..10_000 {
            log.record(format!("{i}"));
        }
        log.close();
        let written = lines(dir.path()).len() as u64;
        assert_eq!(written + log.dropped(), 10_000);
        assert!(log.dropped() > 0);
    }

    #[test]
    fn expired_files_are_removed_when_a_file_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.jsonl");
        std::fs::write(&old, "{}\n").unwrap();
        let keep = dir.path().join("notes.txt");
        std::fs::write(&keep, "x").unwrap();
        let mut config = AuditConfig::new(dir.path().to_path_buf(), "1", "r");
        config.file_bytes_max = 10;
        config.retention = Duration::ZERO;
        let log = AuditLog::open(config).unwrap();
        log.record("{\"a\":1}".into());
        log.record("{\"b\":2}".into());
        log.close();
        assert!(!old.exists());
        assert!(keep.exists());
    }
}
