//! Where a firehose run's objects are (the embedded store's bucket directory
//! or an S3-compatible server's bucket), and reading them back once delivery
//! has gone quiet: every record found, malformed ones counted, and each
//! record's put-to-object latency.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::firehose_target::MARK;
use crate::report::histogram;
use crate::s3_client::{Listed, S3};

/// Objects are read once none has appeared for this long.
const QUIET: Duration = Duration::from_secs(3);
/// How long the end of a run waits for every acknowledged record to be delivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// What the objects of a run hold.
pub(crate) struct Found {
    pub(crate) objects: u64,
    pub(crate) object_bytes: u64,
    pub(crate) records: u64,
    pub(crate) malformed: u64,
    /// The newest object's time, µs since the run's epoch.
    pub(crate) newest_us: i64,
    pub(crate) latency: Histogram<u64>,
}

/// Waits until `expected` records are in objects (or the timeout), reading
/// objects once none has appeared for [`QUIET`]. `judge(stamp_us,
/// object_wall_us)` says whether a record is measured, the object's time since
/// the epoch, and the record's latency.
pub(crate) fn collect(
    store: &Store,
    expected: u64,
    record_size: usize,
    judge: impl Fn(u64, i64) -> (bool, i64, u64),
) -> anyhow::Result<Found> {
    let mut found = Found {
        objects: 0,
        object_bytes: 0,
        records: 0,
        malformed: 0,
        newest_us: 0,
        latency: histogram(),
    };
    let mut seen = HashSet::new();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let mut listed_before = usize::MAX;
    let mut last_change = Instant::now();
    loop {
        let listed = store.list()?;
        if listed.len() != listed_before {
            listed_before = listed.len();
            last_change = Instant::now();
        }
        let late = Instant::now() >= deadline;
        if last_change.elapsed() >= QUIET || late {
            for object in listed {
                if !seen.insert(object.key.clone()) {
                    continue;
                }
                let mut data = store.get(&object.key)?;
                found.objects += 1;
                found.object_bytes += data.len() as u64;
                if object.key.ends_with(".gz") {
                    let mut plain = Vec::with_capacity(data.len() * 3);
                    flate2::read::MultiGzDecoder::new(&data[..])
                        .read_to_end(&mut plain)
                        .with_context(|| format!("gunzip {}", object.key))?;
                    data = plain;
                }
                if data.len() % record_size != 0 {
                    found.malformed += 1;
                }
                for record in data.chunks_exact(record_size) {
                    if record[8] != MARK {
                        found.malformed += 1;
                        continue;
                    }
                    let stamp = u64::from_le_bytes(record[..8].try_into().expect("8 bytes"));
                    found.records += 1;
                    let (measured, at, latency) = judge(stamp, object.time_us);
                    found.newest_us = found.newest_us.max(at);
                    if measured {
                        found.latency.record(latency).ok();
                    }
                }
            }
            if found.records >= expected || late {
                return Ok(found);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn wall_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Where the run's objects are.
pub(crate) enum Store {
    /// The embedded store's bucket directory.
    Dir(PathBuf),
    S3 {
        client: S3,
        bucket: String,
    },
}

impl Store {
    pub(crate) fn describe(&self) -> String {
        match self {
            Store::Dir(d) => format!("embedded store {}", d.display()),
            Store::S3 { client, bucket } => format!("s3://{bucket} at {}", client.host()),
        }
    }

    pub(crate) fn list(&self) -> anyhow::Result<Vec<Listed>> {
        match self {
            Store::Dir(root) => {
                let mut out = Vec::new();
                walk(root, root, &mut out)?;
                Ok(out)
            }
            Store::S3 { client, bucket } => client.list_objects(bucket),
        }
    }

    pub(crate) fn get(&self, key: &str) -> anyhow::Result<Vec<u8>> {
        match self {
            Store::Dir(root) => {
                std::fs::read(root.join(key)).with_context(|| format!("reading object {key}"))
            }
            Store::S3 { client, bucket } => client.get_object(bucket, key),
        }
    }

    /// Removes the run's objects and bucket.
    pub(crate) fn remove(&self) {
        match self {
            Store::Dir(root) => {
                let _ = std::fs::remove_dir_all(root);
            }
            Store::S3 { client, bucket } => {
                if let Ok(listed) = client.list_objects(bucket) {
                    for o in listed {
                        let _ = client.delete_object(bucket, &o.key);
                    }
                }
                let _ = client.delete_bucket(bucket);
            }
        }
    }
}

/// The objects under `dir` (keys relative to `root`), leaving out the
/// store's temporary files (`.<name>.riffle-tmp`).
fn walk(root: &Path, dir: &Path, out: &mut Vec<Listed>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // No object yet: the bucket is made on first delivery.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = match entry.metadata() {
            Ok(m) => m,
            // A temporary file renamed into its object since the listing:
            // the object is seen by the next walk.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if !entry.file_name().to_string_lossy().starts_with('.') {
            let key = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .into_owned();
            out.push(Listed {
                key,
                time_us: wall_us(meta.modified()?),
            });
        }
    }
    Ok(())
}
