//! Aligned appender: turns appended byte strings into direct-I/O write jobs.
//!
//! Sans-I/O: it never writes a file, it only hands out [`WriteJob`]s. Appends go
//! into an aligned buffer that starts at the block holding the current end of the
//! file; a job writes whole blocks. A job whose `end` is block aligned (one made
//! when a buffer filled up) never overlaps the next job, so such jobs may be
//! written concurrently. A job that ends mid-block (the last one before
//! `take_write` returns `None`) is rewritten, with more data, by the next job: it
//! must complete before the next job is issued. Completed jobs are reported in
//! the order they were taken.
//!
//! Used by segment files and by the catalog's metadata log. Lives on one core.

use std::collections::VecDeque;

use crate::storage::{DMA_ALIGNMENT, IoBuf, StorageFile, align_down, align_up};

/// One write to perform: `buf` at file position `pos`. Once it and every job
/// taken before it have completed, the file holds the appended bytes up to `end`.
pub struct WriteJob<B> {
    pub buf: B,
    pub pos: u64,
    pub end: u64,
}

/// Buffers appends for one file. See the module docs.
pub struct Appender<B> {
    /// Buffer whose byte 0 is at file position `buf_pos` (block aligned).
    buf: B,
    buf_pos: u64,
    filled: usize,
    /// Full buffers waiting to be taken, oldest first.
    ready: VecDeque<WriteJob<B>>,
    /// Capacity of a fresh buffer.
    write_size: usize,
    /// End as of the last job taken: everything before it has been handed out.
    taken_end: u64,
}

impl<B: IoBuf> Appender<B> {
    /// An appender for `file` whose logical content ends at `end`; `tail` holds
    /// the file's bytes from `align_down(end)` to `end` (the partial last block).
    pub fn new<F: StorageFile<Buf = B>>(
        file: &F,
        end: u64,
        tail: &[u8],
        write_size: usize,
    ) -> Appender<B> {
        assert_eq!(
            tail.len() as u64,
            end - align_down(end),
            "tail must be the partial last block"
        );
        assert!(write_size >= DMA_ALIGNMENT && write_size.is_multiple_of(DMA_ALIGNMENT));
        let mut buf = file.alloc(write_size);
        buf.as_bytes_mut()[..tail.len()].copy_from_slice(tail);
        Appender {
            buf,
            buf_pos: align_down(end),
            filled: tail.len(),
            ready: VecDeque::new(),
            write_size,
            taken_end: end,
        }
    }

    /// Logical end of the file: where the next append lands.
    pub fn end(&self) -> u64 {
        self.buf_pos + self.filled as u64
    }

    /// Bytes appended but not yet handed out as a job.
    pub fn pending_bytes(&self) -> u64 {
        self.end() - self.taken_end
    }

    /// Appends `bytes` followed by `pad` zero bytes; returns the file position of the
    /// first byte. Never fails: memory is bounded by the caller's admission control.
    pub fn append<F: StorageFile<Buf = B>>(&mut self, file: &F, bytes: &[u8], pad: usize) -> u64 {
        let at = self.end();
        let need = bytes.len() + pad;
        if self.filled + need > self.buf.as_bytes().len() {
            self.roll_buffer(file, need);
        }
        let out = &mut self.buf.as_bytes_mut()[self.filled..self.filled + need];
        out[..bytes.len()].copy_from_slice(bytes);
        out[bytes.len()..].fill(0);
        self.filled += need;
        at
    }

    /// Moves the current buffer to the ready queue and starts a new one, with room
    /// for at least `need` more bytes, holding a copy of the partial last block.
    fn roll_buffer<F: StorageFile<Buf = B>>(&mut self, file: &F, need: usize) {
        // The full buffer becomes a job that ends on the last block boundary; the
        // bytes after it (the partial block) move to the new buffer. So jobs from
        // full buffers never overlap the job after them.
        let end = self.end();
        let cut = align_down(end).max(self.buf_pos);
        let keep = (end - cut) as usize;
        let capacity = (align_up((keep + need) as u64) as usize).max(self.write_size);
        let mut next = file.alloc(capacity);
        next.as_bytes_mut()[..keep]
            .copy_from_slice(&self.buf.as_bytes()[self.filled - keep..self.filled]);
        let full = std::mem::replace(&mut self.buf, next);
        if cut > self.buf_pos && cut > self.taken_end {
            let job = self.job_of(full, self.buf_pos, (cut - self.buf_pos) as usize);
            self.ready.push_back(job);
        }
        self.buf_pos = cut;
        self.filled = keep;
    }

    fn job_of(&mut self, mut buf: B, pos: u64, filled: usize) -> WriteJob<B> {
        let len = align_up(filled as u64) as usize;
        buf.as_bytes_mut()[filled..len].fill(0);
        buf.trim_to_size(len);
        let end = pos + filled as u64;
        self.taken_end = end;
        WriteJob { buf, pos, end }
    }

    /// The next write to perform, or `None` when everything appended has been
    /// handed out. Jobs must be written in the order they are returned.
    pub fn take_write<F: StorageFile<Buf = B>>(&mut self, file: &F) -> Option<WriteJob<B>> {
        if let Some(job) = self.ready.pop_front() {
            return Some(job);
        }
        if self.end() == self.taken_end {
            return None;
        }
        // Hand out the current buffer and continue in a new one that starts at the
        // partial last block (which the next job writes again).
        let end = self.end();
        let partial = (end - align_down(end)) as usize;
        let mut next = file.alloc(self.write_size);
        let carry = self.filled - partial;
        next.as_bytes_mut()[..partial].copy_from_slice(&self.buf.as_bytes()[carry..self.filled]);
        let full = std::mem::replace(&mut self.buf, next);
        let job = self.job_of(full, self.buf_pos, self.filled);
        self.buf_pos = align_down(end);
        self.filled = partial;
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;
    use crate::storage::Storage;
    use futures_lite::future::block_on;
    use std::path::Path;

    /// Appends chunks, performs the jobs in order, and checks the file content.
    fn check(chunks: &[usize], write_size: usize, take_every: usize) {
        block_on(async {
            let storage = SimStorage::new(1);
            storage.create_dir_all(Path::new("/d")).await.unwrap();
            let file = storage.open(Path::new("/d/f"), true).await.unwrap();
            let mut appender = Appender::new(&file, 0, &[], write_size);
            let mut expected = Vec::new();
            for (i, &len) in chunks.iter().enumerate() {
                let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                let at = appender.append(&file, &bytes, 3);
                assert_eq!(at, expected.len() as u64);
                expected.extend_from_slice(&bytes);
                expected.extend_from_slice(&[0, 0, 0]);
                if (i + 1) % take_every == 0 {
                    // One group: every job but the last ends on a block boundary and
                    // overlaps nothing after it, so write them in reverse order (as
                    // concurrent writes may land), then the last one.
                    let mut jobs = Vec::new();
                    while let Some(job) = appender.take_write(&file) {
                        assert!(job.pos.is_multiple_of(DMA_ALIGNMENT as u64));
                        jobs.push(job);
                    }
                    let last = jobs.pop();
                    for pair in jobs.windows(2) {
                        assert!(pair[0].end.is_multiple_of(DMA_ALIGNMENT as u64));
                        assert!(pair[0].pos + pair[0].buf.as_bytes().len() as u64 <= pair[1].pos);
                    }
                    for job in jobs.into_iter().rev() {
                        file.write_at(job.buf, job.pos).await.unwrap();
                    }
                    if let Some(job) = last {
                        file.write_at(job.buf, job.pos).await.unwrap();
                    }
                }
            }
            while let Some(job) = appender.take_write(&file) {
                file.write_at(job.buf, job.pos).await.unwrap();
            }
            assert_eq!(appender.pending_bytes(), 0);
            let len = file.len().await.unwrap();
            let got = file.read_at(0, len as usize).await.unwrap();
            assert_eq!(&got[..expected.len()], &expected[..]);
            assert!(got[expected.len()..].iter().all(|&b| b == 0));

            // Reopen at the end and keep appending.
            let end = expected.len() as u64;
            let tail = &got[align_down(end) as usize..end as usize];
            let mut appender = Appender::new(&file, end, tail, write_size);
            appender.append(&file, b"more", 0);
            expected.extend_from_slice(b"more");
            let job = appender.take_write(&file).unwrap();
            file.write_at(job.buf, job.pos).await.unwrap();
            let got = file.read_at(0, expected.len() + 8).await.unwrap();
            assert_eq!(&got[..expected.len()], &expected[..]);
        })
    }

    #[test]
    fn appends_become_ordered_block_writes() {
        check(&[10, 20, 5000, 1, 4093, 4096, 9000, 100], 4096, 1);
        check(&[10, 20, 5000, 1, 4093, 4096, 9000, 100], 4096, 3);
        check(&[100; 200], 8192, 7);
        check(&[70_000, 3, 3, 3], 16384, 2);
        check(&[1; 5000], 4096, 1000);
    }
}
