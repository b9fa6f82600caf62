//! The storage seam under the store: files with aligned positional I/O.
//!
//! Two implementations exist: the engine's glommio direct-I/O storage
//! (`riffle_engine::rt::dma`) and [`crate::sim::SimStorage`], a simulated disk that
//! keeps written bytes apart from durable bytes. Every write position and length is a
//! multiple of [`DMA_ALIGNMENT`]; reads start at aligned positions so archived
//! records in the returned buffer stay 8-byte aligned.

use std::io;
use std::ops::Deref;
use std::path::Path;

pub use riffle_protocol::limits::DMA_ALIGNMENT;

/// A writable, DMA-aligned buffer of fixed length.
pub trait IoBuf {
    fn as_bytes(&self) -> &[u8];
    fn as_bytes_mut(&mut self) -> &mut [u8];
    /// Shortens the buffer to `len` bytes (aligned, at most the current length).
    fn trim_to_size(&mut self, len: usize);
}

#[allow(clippy::len_without_is_empty)]
/// A file on some storage. Methods take `&self` so one file can have a write and
/// several syncs in flight at once (on one core: no `Send` needed).
pub trait StorageFile: 'static {
    type Buf: IoBuf;
    /// Clones share the bytes (as an `Rc` does): read spans keep a clone and check
    /// that it still derefs to the bytes that were verified (`log::ReadSpan`).
    type ReadBuf: Deref<Target = [u8]> + Clone;

    /// A DMA-aligned buffer of `len` bytes (`len` a multiple of [`DMA_ALIGNMENT`]).
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Writes all of `buf` at `pos`; both aligned.
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<()>;
    /// Reads up to `len` bytes at aligned `pos`; shorter at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::ReadBuf>;
    /// fdatasync: every write that completed before this call is durable when it returns.
    async fn sync(&self) -> io::Result<()>;
    async fn len(&self) -> io::Result<u64>;
    /// Shrinks or grows the file to `len` (aligned).
    async fn truncate(&self, len: u64) -> io::Result<()>;
    /// Reserves space so the file is at least `len` bytes long; the new bytes
    /// read as zeros. Writes inside the reserved space do not extend the file,
    /// which lets the file system run them concurrently.
    async fn allocate(&self, len: u64) -> io::Result<()>;
    /// An upper bound of where the file's written (non-zero) content ends, block
    /// aligned. The file length is always a correct answer; a smaller one lets
    /// recovery skip reserved space it knows to be empty.
    async fn data_end(&self) -> io::Result<u64>;
}

/// Directories and files. Clone is cheap (a handle).
pub trait Storage: Clone + 'static {
    type File: StorageFile;

    /// Opens a file for reading and writing, creating it when `create` is set.
    async fn open(&self, path: &Path, create: bool) -> io::Result<Self::File>;
    async fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// File names (not paths) in `dir`, sorted.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    async fn remove_file(&self, path: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    async fn exists(&self, path: &Path) -> io::Result<bool>;
}

/// Rounds `n` up to the next multiple of [`DMA_ALIGNMENT`].
pub fn align_up(n: u64) -> u64 {
    n.div_ceil(DMA_ALIGNMENT as u64) * DMA_ALIGNMENT as u64
}

/// Rounds `n` down to a multiple of [`DMA_ALIGNMENT`].
pub fn align_down(n: u64) -> u64 {
    n / DMA_ALIGNMENT as u64 * DMA_ALIGNMENT as u64
}

/// Writes `bytes` as the whole content of `path`, durably and atomically
/// (temp file, sync, rename, sync dir). For small metadata files.
pub async fn write_file_atomic<S: Storage>(
    storage: &S,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let dir = path.parent().unwrap_or(Path::new("."));
    {
        let file = storage.open(&tmp, true).await?;
        file.truncate(0).await?;
        let len = align_up(bytes.len() as u64 + 8) as usize;
        let mut buf = file.alloc(len);
        let out = buf.as_bytes_mut();
        out[..8].copy_from_slice(&atomic_header(bytes).to_le_bytes());
        out[8..8 + bytes.len()].copy_from_slice(bytes);
        out[8 + bytes.len()..].fill(0);
        file.write_at(buf, 0).await?;
        file.sync().await?;
    }
    storage.rename(&tmp, path).await?;
    storage.sync_dir(dir).await
}

/// Reads a file written by [`write_file_atomic`]; `None` when it does not exist.
pub async fn read_file_atomic<S: Storage>(storage: &S, path: &Path) -> io::Result<Option<Vec<u8>>> {
    if !storage.exists(path).await? {
        return Ok(None);
    }
    let file = storage.open(path, false).await?;
    let len = file.len().await?;
    let buf = file.read_at(0, len as usize).await?;
    if buf.len() < 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is truncated", path.display()),
        ));
    }
    let header = u64::from_le_bytes(buf[..8].try_into().unwrap());
    let n = (header & u64::from(u32::MAX)) as usize;
    if 8 + n > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is truncated", path.display()),
        ));
    }
    let content = &buf[8..8 + n];
    let stored = (header >> 32) as u32;
    // 0: written before files carried a crc (not checked).
    if stored != 0 && stored != masked_crc(content) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is corrupt: its crc does not match its content",
                path.display()
            ),
        ));
    }
    Ok(Some(content.to_vec()))
}

/// XORed into an atomic file's crc so that a stored 0 means "no crc" (files
/// written before the crc) only by a 1-in-2^32 chance.
const CRC_MASK: u32 = 0xa282_ead8;

fn masked_crc(content: &[u8]) -> u32 {
    crc32c::crc32c(content) ^ CRC_MASK
}

/// An atomic file's header: the content's length (low 32 bits) and its masked
/// crc32c (high 32 bits).
fn atomic_header(content: &[u8]) -> u64 {
    let len = u32::try_from(content.len()).expect("an atomic file's content is under 4 GiB");
    u64::from(len) | (u64::from(masked_crc(content)) << 32)
}
