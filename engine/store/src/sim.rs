//! SimStorage: a simulated disk for deterministic tests.
//!
//! It keeps each file's *written* bytes (what reads see, like the page cache) apart
//! from its *durable* bytes (what survives a crash). A crash can be scheduled at
//! the n-th sync or triggered at any moment; the image that survives keeps every
//! durable byte and, for each 4 KiB block written since the last sync, either the
//! new or the old content, chosen by a seeded generator (torn and reordered writes).
//! Faults can be injected into the n-th write, read, sync or open.
//!
//! Directory operations (create, rename, remove) are durable at once: the store's
//! recovery does not rely on them being otherwise. Single-threaded by design.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rkyv::util::AlignedVec;

use crate::storage::{DMA_ALIGNMENT, IoBuf, Storage, StorageFile};

/// Which operation a fault is injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SimOp {
    Write,
    Read,
    Sync,
    Open,
}

#[derive(Default)]
struct FileData {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Byte range changed by writes and truncations since the last sync.
    dirty: Option<(usize, usize)>,
}

impl FileData {
    fn mark_dirty(&mut self, from: usize, to: usize) {
        if from < to {
            self.dirty = Some(match self.dirty {
                Some((a, b)) => (a.min(from), b.max(to)),
                None => (from, to),
            });
        }
    }

    /// What fdatasync does: the written content and length become durable.
    fn sync(&mut self) {
        let len = self.written.len();
        self.durable.resize(len, 0);
        if let Some((a, b)) = self.dirty.take() {
            let b = b.min(len);
            if a < b {
                self.durable[a..b].copy_from_slice(&self.written[a..b]);
            }
        }
    }
}

struct Disk {
    files: BTreeMap<PathBuf, Rc<RefCell<FileData>>>,
    dirs: BTreeSet<PathBuf>,
    sync_count: u64,
    crash_at_sync: Option<u64>,
    crashed: bool,
    /// Remaining operations of each kind before an injected failure.
    faults: BTreeMap<SimOp, u64>,
    op_counts: BTreeMap<SimOp, u64>,
    rng: u64,
}

/// The simulated disk. Cloning gives another handle to the same disk.
#[derive(Clone)]
pub struct SimStorage {
    disk: Rc<RefCell<Disk>>,
}

impl SimStorage {
    /// A new empty disk; `seed` drives which unsynced blocks survive a crash.
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            disk: Rc::new(RefCell::new(Disk {
                files: BTreeMap::new(),
                dirs: BTreeSet::new(),
                sync_count: 0,
                crash_at_sync: None,
                crashed: false,
                faults: BTreeMap::new(),
                op_counts: BTreeMap::new(),
                rng: splitmix64(seed) | 1,
            })),
        }
    }

    /// Crash when the `n`-th sync (counting from 1 since the disk was made) is
    /// called: that sync does not take effect and it and every later operation fail.
    pub fn crash_at_sync(&self, n: u64) {
        self.disk.borrow_mut().crash_at_sync = Some(n);
    }

    /// Crash now: freeze what is durable (plus a random part of unsynced blocks).
    pub fn crash(&self) {
        let mut disk = self.disk.borrow_mut();
        if disk.crashed {
            return;
        }
        disk.crashed = true;
        let mut rng = disk.rng;
        for file in disk.files.values() {
            let mut f = file.borrow_mut();
            let mut image = f.durable.clone();
            let len = f.written.len().max(image.len());
            let blocks = len.div_ceil(DMA_ALIGNMENT);
            let mut image_len = image.len();
            for b in 0..blocks {
                let range = b * DMA_ALIGNMENT..((b + 1) * DMA_ALIGNMENT).min(f.written.len());
                if range.start >= f.written.len() {
                    break;
                }
                let old = image.get(range.clone());
                if old == Some(&f.written[range.clone()]) {
                    continue;
                }
                rng = xorshift(rng);
                if rng.is_multiple_of(2) {
                    if image.len() < range.end {
                        image.resize(range.end, 0);
                    }
                    image[range.clone()].copy_from_slice(&f.written[range.clone()]);
                    image_len = image_len.max(range.end);
                }
            }
            image.truncate(image_len);
            f.durable = image;
        }
        disk.rng = rng;
    }

    pub fn is_crashed(&self) -> bool {
        self.disk.borrow().crashed
    }

    /// The disk as a restarted machine sees it: only the durable image, as a fresh
    /// disk with no crash scheduled and no faults. Crashes this disk first if needed.
    pub fn restart(&self) -> SimStorage {
        self.crash();
        let disk = self.disk.borrow();
        let files = disk
            .files
            .iter()
            .map(|(p, f)| {
                let durable = f.borrow().durable.clone();
                (
                    p.clone(),
                    Rc::new(RefCell::new(FileData {
                        written: durable.clone(),
                        durable,
                        dirty: None,
                    })),
                )
            })
            .collect();
        SimStorage {
            disk: Rc::new(RefCell::new(Disk {
                files,
                dirs: disk.dirs.clone(),
                sync_count: 0,
                crash_at_sync: None,
                crashed: false,
                faults: BTreeMap::new(),
                op_counts: BTreeMap::new(),
                rng: xorshift(disk.rng),
            })),
        }
    }

    /// Make the `n`-th next operation of kind `op` fail (n = 1: the very next one).
    pub fn fail_nth(&self, op: SimOp, n: u64) {
        assert!(n >= 1);
        self.disk.borrow_mut().faults.insert(op, n);
    }

    /// How many syncs have been called.
    pub fn sync_count(&self) -> u64 {
        self.disk.borrow().sync_count
    }

    /// How many operations of a kind have been called.
    pub fn op_count(&self, op: SimOp) -> u64 {
        self.disk.borrow().op_counts.get(&op).copied().unwrap_or(0)
    }

    /// Flips one bit of a file's durable and written bytes (to test corruption).
    pub fn corrupt(&self, path: &Path, at: usize) {
        let disk = self.disk.borrow();
        let mut f = disk
            .files
            .get(path)
            .expect("corrupt: no such file")
            .borrow_mut();
        f.written[at] ^= 0x01;
        f.durable[at] ^= 0x01;
    }

    /// Paths of all files, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.disk.borrow().files.keys().cloned().collect()
    }

    fn check(&self, op: SimOp) -> io::Result<()> {
        let mut disk = self.disk.borrow_mut();
        if disk.crashed {
            return Err(io::Error::other("simulated crash: the disk is gone"));
        }
        *disk.op_counts.entry(op).or_insert(0) += 1;
        if let Some(n) = disk.faults.get_mut(&op) {
            *n -= 1;
            if *n == 0 {
                disk.faults.remove(&op);
                return Err(io::Error::other(format!("injected {op:?} failure")));
            }
        }
        Ok(())
    }
}

/// Spreads a small seed over all 64 bits so the first coin flips vary with it.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// A file on the simulated disk.
pub struct SimFile {
    storage: SimStorage,
    data: Rc<RefCell<FileData>>,
}

/// An aligned buffer for the simulated disk.
pub struct SimBuf(AlignedVec<16>);

impl IoBuf for SimBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn trim_to_size(&mut self, len: usize) {
        assert!(len <= self.0.len());
        self.0.resize(len, 0);
    }
}

/// Bytes read from the simulated disk; cheap to clone.
#[derive(Clone)]
pub struct SimReadBuf(Rc<AlignedVec<16>>);

impl Deref for SimReadBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl StorageFile for SimFile {
    type Buf = SimBuf;
    type ReadBuf = SimReadBuf;

    fn alloc(&self, len: usize) -> SimBuf {
        assert_eq!(len % DMA_ALIGNMENT, 0, "unaligned buffer length {len}");
        let mut v = AlignedVec::<16>::with_capacity(len);
        v.resize(len, 0);
        SimBuf(v)
    }

    async fn write_at(&self, buf: SimBuf, pos: u64) -> io::Result<()> {
        assert_eq!(
            pos % DMA_ALIGNMENT as u64,
            0,
            "unaligned write position {pos}"
        );
        assert_eq!(buf.0.len() % DMA_ALIGNMENT, 0, "unaligned write length");
        self.storage.check(SimOp::Write)?;
        let mut f = self.data.borrow_mut();
        let end = pos as usize + buf.0.len();
        if f.written.len() < end {
            f.written.resize(end, 0);
        }
        f.written[pos as usize..end].copy_from_slice(&buf.0);
        f.mark_dirty(pos as usize, end);
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<SimReadBuf> {
        assert_eq!(
            pos % DMA_ALIGNMENT as u64,
            0,
            "unaligned read position {pos}"
        );
        self.storage.check(SimOp::Read)?;
        let f = self.data.borrow();
        let start = (pos as usize).min(f.written.len());
        let end = (pos as usize + len).min(f.written.len());
        let mut v = AlignedVec::<16>::with_capacity(end - start);
        v.extend_from_slice(&f.written[start..end]);
        Ok(SimReadBuf(Rc::new(v)))
    }

    async fn sync(&self) -> io::Result<()> {
        {
            let mut disk = self.storage.disk.borrow_mut();
            if !disk.crashed {
                disk.sync_count += 1;
                if disk.crash_at_sync == Some(disk.sync_count) {
                    drop(disk);
                    self.storage.crash();
                }
            }
        }
        self.storage.check(SimOp::Sync)?;
        self.data.borrow_mut().sync();
        Ok(())
    }

    async fn len(&self) -> io::Result<u64> {
        self.storage.check(SimOp::Read)?;
        Ok(self.data.borrow().written.len() as u64)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.storage.check(SimOp::Write)?;
        let mut f = self.data.borrow_mut();
        let old = f.written.len();
        f.written.resize(len as usize, 0);
        f.mark_dirty(len as usize, old);
        Ok(())
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        self.storage.check(SimOp::Write)?;
        let mut f = self.data.borrow_mut();
        if f.written.len() < len as usize {
            f.written.resize(len as usize, 0);
        }
        Ok(())
    }

    async fn data_end(&self) -> io::Result<u64> {
        self.storage.check(SimOp::Read)?;
        let f = self.data.borrow();
        let last = f.written.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Ok(crate::storage::align_up(last as u64))
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<SimFile> {
        self.check(SimOp::Open)?;
        let mut disk = self.disk.borrow_mut();
        let data = match disk.files.get(path) {
            Some(d) => d.clone(),
            None if create => {
                let parent = path.parent().unwrap_or(Path::new(""));
                if !parent.as_os_str().is_empty() && !disk.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
                let d = Rc::new(RefCell::new(FileData::default()));
                disk.files.insert(path.to_path_buf(), d.clone());
                d
            }
            None => return Err(not_found(path)),
        };
        Ok(SimFile {
            storage: self.clone(),
            data,
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(SimOp::Open)?;
        let mut disk = self.disk.borrow_mut();
        for ancestor in path.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                disk.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(SimOp::Open)?;
        let disk = self.disk.borrow();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        for p in disk.files.keys().chain(disk.dirs.iter()) {
            if p.parent() == Some(dir) {
                names.insert(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(SimOp::Open)?;
        self.disk
            .borrow_mut()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(SimOp::Open)?;
        let mut disk = self.disk.borrow_mut();
        disk.files.retain(|p, _| !p.starts_with(path));
        disk.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(SimOp::Open)?;
        let mut disk = self.disk.borrow_mut();
        let data = disk.files.remove(from).ok_or_else(|| not_found(from))?;
        // A renamed file keeps only what was durable plus what is written; the
        // store always syncs before renaming, so written == durable here.
        disk.files.insert(to.to_path_buf(), data);
        Ok(())
    }

    async fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.check(SimOp::Open)?;
        Ok(())
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        self.check(SimOp::Open)?;
        let disk = self.disk.borrow();
        Ok(disk.files.contains_key(path) || disk.dirs.contains(path))
    }
}
