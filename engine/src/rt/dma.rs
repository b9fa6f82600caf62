//! DmaStorage: the store's `Storage` on glommio direct-I/O files (io_uring, O_DIRECT).
//!
//! Data files go through `DmaFile` with aligned buffers. Directory operations
//! (create, list, rename, remove, directory sync) are rare control-plane steps and
//! use blocking std calls. Lives on one core: handles are not `Send`.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile, OpenOptions, ReadResult};
use riffle_store::storage::{IoBuf, Storage, StorageFile};

fn to_io(e: glommio::GlommioError<()>) -> io::Error {
    match e {
        glommio::GlommioError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Direct-I/O storage on the local file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct DmaStorage;

/// An open direct-I/O file.
pub struct DmaStorageFile {
    file: Rc<DmaFile>,
}

/// A DMA buffer from glommio's allocator.
pub struct DmaBuf(DmaBuffer);

impl IoBuf for DmaBuf {
    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.0.as_bytes_mut()
    }
    fn trim_to_size(&mut self, len: usize) {
        self.0.trim_to_size(len)
    }
}

impl StorageFile for DmaStorageFile {
    type Buf = DmaBuf;
    type ReadBuf = ReadResult;

    fn alloc(&self, len: usize) -> DmaBuf {
        DmaBuf(self.file.alloc_dma_buffer(len))
    }

    async fn write_at(&self, buf: DmaBuf, pos: u64) -> io::Result<()> {
        let len = buf.0.len();
        let written = self.file.write_at(buf.0, pos).await.map_err(to_io)?;
        if written != len {
            return Err(io::Error::other(format!(
                "short write: {written} of {len} bytes"
            )));
        }
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<ReadResult> {
        self.file.read_at(pos, len).await.map_err(to_io)
    }

    async fn sync(&self) -> io::Result<()> {
        self.file.fdatasync().await.map_err(to_io)
    }

    async fn len(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(to_io)
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(to_io)
    }

    async fn allocate(&self, len: u64) -> io::Result<()> {
        if self.file.file_size().await.map_err(to_io)? >= len {
            return Ok(());
        }
        self.file.pre_allocate(len, false).await.map_err(to_io)
    }

    async fn data_end(&self) -> io::Result<u64> {
        // Walk the data extents with SEEK_DATA/SEEK_HOLE: reserved (unwritten)
        // extents are holes, so the last hole start is where written data ends.
        let fd = self.file.as_raw_fd();
        let mut end = 0i64;
        loop {
            // SAFETY: lseek on a file descriptor we own; no memory is involved.
            let data = unsafe { libc::lseek(fd, end, libc::SEEK_DATA) };
            if data < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENXIO) {
                    return Ok(end as u64);
                }
                return self.len().await; // the file system cannot tell: no bound
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            if hole < 0 {
                return self.len().await;
            }
            end = hole;
        }
    }
}

impl DmaStorage {
    /// Settles glommio's io-poll probe for the device under `dir` with a real read.
    ///
    /// glommio probes io-poll support with a read at offset 0 of the first file it
    /// opens on a device; on an empty file that read succeeds without reaching the
    /// device, glommio wrongly enables the poll ring, and every later read fails
    /// with EOPNOTSUPP on devices without polling (virtio disks). Opening a
    /// non-empty file first makes the probe answer truthfully. Call once per core
    /// before opening any data file.
    pub async fn probe_device(dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let path =
            dir.join(format!(".probe-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        std::fs::write(&path, vec![0u8; 4096])?;
        let result = OpenOptions::new()
            .read(true)
            .dma_open(&path)
            .await
            .map_err(to_io);
        if let Ok(file) = result {
            let _ = file.read_at(0, 4096).await;
            let _ = file.close().await;
        }
        std::fs::remove_file(&path)
    }
}

impl Storage for DmaStorage {
    type File = DmaStorageFile;

    async fn open(&self, path: &Path, create: bool) -> io::Result<DmaStorageFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await
            .map_err(to_io)?;
        Ok(DmaStorageFile {
            file: Rc::new(file),
        })
    }

    async fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    async fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
}
