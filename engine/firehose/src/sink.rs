//! Where objects are stored: an S3-compatible server when one is configured
//! (`s3.rs`), else the embedded default, `<data-dir>/s3/<bucket>/<key>`, a
//! bucket being a directory made on first use ([`LocalStore`]).
//!
//! An object is written to a temporary file beside its place (`.<name>.riffle-tmp`),
//! synced, renamed over its key and the directory synced: a key holds a whole
//! object or nothing, and writing a key again (a delivery redone after a crash)
//! replaces it. File I/O runs on one thread of its own so a core never blocks
//! on the file system; a core awaits the answer.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use riffle_protocol::Error;

/// Objects waiting for the writer thread.
const QUEUE_MAX: usize = 64;

struct Job {
    bucket: String,
    key: String,
    body: Bytes,
    reply: flume::Sender<Result<(), String>>,
}

/// Where a delivery stream's objects go.
#[derive(Clone)]
pub enum ObjectStore {
    Local(LocalStore),
    S3(crate::s3::S3Client),
}

/// The longest file name the embedded store writes (with its temporary
/// suffix): most file systems stop at 255 bytes.
const FILE_NAME_BYTES_MAX: usize = 255;

/// The longest key S3 stores.
const S3_KEY_BYTES_MAX: usize = 1024;

impl ObjectStore {
    /// Whether `key` can be stored (checked when a destination is configured:
    /// a planned object's key never changes, so one that cannot be written
    /// would stop its shard's delivery).
    pub fn check_key(&self, bucket: &str, key: &str) -> Result<(), String> {
        if key.len() > S3_KEY_BYTES_MAX {
            return Err(format!(
                "object keys are at most {S3_KEY_BYTES_MAX} bytes; {key:?} is longer"
            ));
        }
        match self {
            ObjectStore::S3(_) => Ok(()),
            ObjectStore::Local(l) => {
                let path = object_path(&l.root, bucket, key)?;
                let name = path.file_name().map_or(0, |n| n.len());
                if name + ".riffle-tmp".len() + 1 > FILE_NAME_BYTES_MAX {
                    return Err(format!(
                        "the object name {:?} is too long for a file",
                        path.file_name().unwrap_or_default()
                    ));
                }
                // Every directory on the way is a file name too.
                if let Some(long) = key.split('/').find(|s| s.len() > FILE_NAME_BYTES_MAX) {
                    return Err(format!(
                        "the key's part {:?}... is longer than a file name can be",
                        &long[..long.floor_char_boundary(32)]
                    ));
                }
                if key.contains('\0') {
                    return Err("a key with a NUL byte cannot be a file name".into());
                }
                Ok(())
            }
        }
    }

    /// Stores `body` under `bucket`/`key`, replacing what was there; Ok once
    /// the store has it durably.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), Error> {
        match self {
            ObjectStore::Local(l) => l.put(bucket, key, body).await,
            ObjectStore::S3(s) => s.put(bucket, key, body).await,
        }
    }
}

/// The embedded object store: a directory per bucket.
#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    jobs: flume::Sender<Job>,
}

impl LocalStore {
    /// A store under `root` (`<data-dir>/s3`) with its writer thread.
    pub fn start(root: PathBuf) -> std::io::Result<LocalStore> {
        let (jobs, rx) = flume::bounded::<Job>(QUEUE_MAX);
        let dir = root.clone();
        std::thread::Builder::new()
            .name("riffle-firehose-files".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let result = write_object(&dir, &job.bucket, &job.key, &job.body)
                        .map_err(|e| e.to_string());
                    // The body goes before the answer: the delivery task
                    // takes its buffer back for the next object.
                    drop(job.body);
                    let _ = job.reply.send(result);
                }
            })?;
        Ok(LocalStore { root, jobs })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `body` under `bucket`/`key`, durably, replacing what was there.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), Error> {
        let (reply, answer) = flume::bounded(1);
        self.jobs
            .send_async(Job {
                bucket: bucket.to_string(),
                key: key.to_string(),
                body,
                reply,
            })
            .await
            .map_err(|_| Error::internal("the object writer stopped"))?;
        answer
            .recv_async()
            .await
            .map_err(|_| Error::internal("the object writer stopped"))?
            .map_err(|e| Error::internal(format!("cannot store s3://{bucket}/{key}: {e}")))
    }
}

/// The file of `key` in `bucket`: a key is a relative path of normal parts
/// (`..`, `.`, empty parts and absolute paths are refused, so no key leaves
/// its bucket).
pub fn object_path(root: &Path, bucket: &str, key: &str) -> Result<PathBuf, String> {
    if key.is_empty() || key.ends_with('/') {
        return Err(format!("the key {key:?} names no object"));
    }
    let mut path = root.join(bucket);
    for part in key.split('/') {
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(c)), None) if !part.is_empty() => path.push(c),
            _ => return Err(format!("the key {key:?} cannot be stored as a file")),
        }
    }
    Ok(path)
}

fn write_object(root: &Path, bucket: &str, key: &str, body: &[u8]) -> std::io::Result<()> {
    let path = object_path(root, bucket, key).map_err(std::io::Error::other)?;
    let dir = path.parent().expect("a key has a parent: its bucket");
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .expect("a key names a file")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.riffle-tmp"));
    match write_direct(&tmp, body) {
        Ok(()) => {}
        // No direct I/O here (tmpfs, some network file systems): buffered.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_data()?;
        }
        Err(e) => return Err(e),
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Direct I/O's alignment (of buffers, offsets and lengths).
const DIRECT_ALIGNMENT: usize = 4096;
/// Written at most this much per call.
const DIRECT_CHUNK: usize = 1024 * 1024;

/// Writes `body` to a new file `path` with `O_DIRECT` (no page cache: objects
/// are written once and read by others, and filling fresh page cache cost
/// more CPU than the copy into an aligned buffer), padded to the alignment,
/// then cut to its length and synced. A `body` that starts aligned (a
/// delivery task's buffer) is written from where it is, but for its last
/// partial block; any other goes through an aligned buffer.
fn write_direct(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    // One buffer per writing thread, made once (zeroing the chunk per
    // object cost more than small objects' writes).
    thread_local! {
        static BUF: std::cell::RefCell<AlignedBuf> =
            std::cell::RefCell::new(AlignedBuf::new(DIRECT_CHUNK));
    }
    BUF.with(|buf| -> std::io::Result<()> {
        let mut buf = buf.borrow_mut();
        let mut at = 0;
        if body.as_ptr().align_offset(DIRECT_ALIGNMENT) == 0 {
            let whole = body.len() - body.len() % DIRECT_ALIGNMENT;
            while at < whole {
                let n = (whole - at).min(DIRECT_CHUNK);
                f.write_all_at(&body[at..at + n], at as u64)?;
                at += n;
            }
        }
        while at < body.len() {
            let n = (body.len() - at).min(DIRECT_CHUNK);
            let padded = n.next_multiple_of(DIRECT_ALIGNMENT);
            let out = buf.as_mut();
            out[..n].copy_from_slice(&body[at..at + n]);
            out[n..padded].fill(0);
            f.write_all_at(&out[..padded], at as u64)?;
            at += n;
        }
        Ok(())
    })?;
    f.set_len(body.len() as u64)?;
    f.sync_all()
}

/// A zeroed buffer aligned for direct I/O.
struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        assert!(len > 0, "an aligned buffer holds at least one byte");
        let layout =
            std::alloc::Layout::from_size_align(len, DIRECT_ALIGNMENT).expect("a valid layout");
        // SAFETY: the layout has a non-zero size (asserted above).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, layout }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points at `layout.size()` bytes allocated (and zeroed)
        // by `new`, owned by this buffer, which `&mut self` borrows exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc_zeroed` with this very layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_their_bucket() {
        let root = Path::new("/d/s3");
        assert_eq!(
            object_path(root, "b", "2018/08/27/x-1").unwrap(),
            Path::new("/d/s3/b/2018/08/27/x-1")
        );
        for bad in ["", "a/", "../x", "a/../../x", "/abs", "a//b", "./a"] {
            assert!(object_path(root, "b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects_of_every_size_are_written_whole() {
        // On the ext4 target dir (direct I/O), and sizes around the alignment
        // and the chunk.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/tmp");
        std::fs::create_dir_all(dir).unwrap();
        let tmp = tempfile::tempdir_in(dir).unwrap();
        for len in [
            0,
            1,
            4095,
            4096,
            4097,
            DIRECT_CHUNK - 1,
            DIRECT_CHUNK + 5000,
        ] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            write_object(tmp.path(), "b", &format!("k{len}"), &body).unwrap();
            assert_eq!(
                std::fs::read(tmp.path().join(format!("b/k{len}"))).unwrap(),
                body,
                "{len}"
            );
            // The same bytes starting at an aligned address: written from
            // where they are (but the last partial block).
            let mut aligned = AlignedBuf::new(len.next_multiple_of(DIRECT_ALIGNMENT).max(1));
            aligned.as_mut()[..len].copy_from_slice(&body);
            let aligned_body = &aligned.as_mut()[..len];
            assert_eq!(aligned_body.as_ptr().align_offset(DIRECT_ALIGNMENT), 0);
            write_object(tmp.path(), "b", &format!("a{len}"), aligned_body).unwrap();
            assert_eq!(
                std::fs::read(tmp.path().join(format!("b/a{len}"))).unwrap(),
                body,
                "aligned {len}"
            );
        }
    }

    #[test]
    fn objects_are_replaced_whole() {
        let tmp = tempfile::tempdir().unwrap();
        write_object(tmp.path(), "b", "p/k", b"first").unwrap();
        write_object(tmp.path(), "b", "p/k", b"second").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("b/p/k")).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("b/p")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }
}
