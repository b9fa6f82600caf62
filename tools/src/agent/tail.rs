//! File tailing with rotation tracking, for one flow. Lives on the flow's
//! reader thread; owns the open file and the [`Framer`].
//!
//! The tailer follows one file at a time, by its open descriptor, so a file
//! renamed away (logrotate's `create` rotation) is read to its end wherever
//! it now is. At the end of a file it moves to the oldest file of the
//! pattern that is newer (modification time) and is not a copy of it (its
//! first bytes differ: see [`Fingerprint`]). On every step it checks that
//! the file was not truncated (smaller than what was read, or different first
//! bytes); after a truncation (logrotate's `copytruncate`) it finishes reading
//! from the rotated copy (a file of the pattern starting with the same bytes
//! and holding at least as much) at the same offset, then reads the truncated
//! file from its start. Lines written between logrotate's copy and its
//! truncation are lost by logrotate itself, not here.
//!
//! At start: from the checkpoint (the file found by device and inode, its
//! first bytes checked; else a copy of it; else the oldest newer file), or,
//! without one, the newest file of the pattern from its start or its end
//! (`initialPosition`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;

use super::checkpoint::Position;
use super::config::{FlowConfig, InitialPosition};
use super::files::{self, FINGERPRINT_BYTES_MAX, FileKey, Fingerprint, Glob, Listed};
use super::framing::{Framed, Framer};

/// Bytes read from a file at once.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// The file a record came from, as its checkpoint names it.
#[derive(Debug)]
pub struct FileInfo {
    pub path: PathBuf,
    pub key: FileKey,
    pub fingerprint: Fingerprint,
    pub mtime_ns: i64,
}

impl FileInfo {
    pub fn position(&self, offset: u64) -> Position {
        Position::new(
            &self.path,
            self.key,
            self.fingerprint,
            offset,
            self.mtime_ns,
        )
    }
}

struct Current {
    file: File,
    info: Arc<FileInfo>,
    /// A file footer was seen: nothing more is read from this file.
    ended: bool,
}

/// What a step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Read something or moved on: step again.
    Progress,
    /// At the end of the newest file: nothing to do until it grows.
    Idle,
}

/// The settings a tailer uses, from its flow.
pub struct TailSettings {
    pub directory: PathBuf,
    pub glob: Glob,
    pub initial_position: InitialPosition,
    pub skip_header_lines: usize,
    pub multi_line_start: Option<Regex>,
    pub file_footer: Option<Regex>,
    /// The parser's buffer: records longer than this are cut.
    pub hold_max: usize,
}

impl TailSettings {
    pub fn of(flow: &FlowConfig, hold_max: usize) -> TailSettings {
        TailSettings {
            directory: flow.directory.clone(),
            glob: Glob::new(&flow.file_glob).expect("checked when the config was read"),
            initial_position: flow.initial_position,
            skip_header_lines: flow.skip_header_lines,
            multi_line_start: flow.multi_line_start.clone(),
            file_footer: flow.file_footer.clone(),
            hold_max,
        }
    }
}

pub struct Tailer {
    settings: TailSettings,
    name: String,
    current: Option<Current>,
    /// After draining a rotated copy: the truncated file, to read from 0.
    after_copy: Option<(File, Listed)>,
    framer: Framer,
    chunk: Vec<u8>,
    restore: Option<Position>,
}

impl Tailer {
    /// A tailer that resumes from `restore` (the flow's checkpoint), if any.
    pub fn new(settings: TailSettings, name: &str, restore: Option<Position>) -> Tailer {
        let framer = Framer::new(settings.multi_line_start.clone(), settings.hold_max);
        Tailer {
            settings,
            name: name.to_string(),
            current: None,
            after_copy: None,
            framer,
            chunk: vec![0; READ_CHUNK_BYTES],
            restore,
        }
    }

    /// The file being read and the offset of the first byte not in a record.
    pub fn consumed(&self) -> Option<(Arc<FileInfo>, u64)> {
        let c = self.current.as_ref()?;
        Some((c.info.clone(), self.framer.consumed_offset()))
    }

    /// Reads what there is (a chunk at most), giving each record to `emit`.
    pub fn step(&mut self, emit: &mut dyn FnMut(Framed, &Arc<FileInfo>)) -> io::Result<Step> {
        if self.current.is_none() && !self.open_first()? {
            return Ok(Step::Idle);
        }
        self.check_truncation(emit)?;
        let cur = self.current.as_mut().expect("opened above");
        if !cur.ended {
            let at = self.framer.read_offset();
            let n = cur.file.read_at(&mut self.chunk, at)?;
            if n > 0 {
                self.framer.push(&self.chunk[..n]);
                self.grow_fingerprint()?;
                self.drain(n < self.chunk.len(), emit);
                return Ok(Step::Progress);
            }
        }
        self.drain(true, emit);
        // At the end of the file: is there a next one?
        if let Some((file, listed)) = self.after_copy.take() {
            self.leave(emit);
            self.open_at(file, &listed, 0, None);
            return Ok(Step::Progress);
        }
        let cur = self.current.as_mut().expect("opened above");
        let meta = cur.file.metadata()?;
        let mtime_ns = files::mtime_ns(&meta);
        if mtime_ns != cur.info.mtime_ns {
            cur.info = Arc::new(FileInfo {
                mtime_ns,
                path: cur.info.path.clone(),
                key: cur.info.key,
                fingerprint: cur.info.fingerprint,
            });
        }
        let info = cur.info.clone();
        let ended = cur.ended;
        let listed = files::list(&self.settings.directory, &self.settings.glob)?;
        let mut next = None;
        for l in listed
            .iter()
            .filter(|l| l.key != info.key && l.mtime_ns > info.mtime_ns)
        {
            let Ok(file) = File::open(&l.path) else {
                continue; // gone since the listing
            };
            if !info.fingerprint.matches(&file)? {
                next = Some((file, l.clone()));
                break;
            }
            // Else a copy of this file (copytruncate), not its successor.
        }
        let Some((file, l)) = next else {
            return Ok(Step::Idle);
        };
        // One more read: what was written before the rotation is not lost.
        if !ended {
            let at = self.framer.read_offset();
            let cur = self.current.as_ref().expect("opened above");
            let n = cur.file.read_at(&mut self.chunk, at)?;
            if n > 0 {
                self.framer.push(&self.chunk[..n]);
                self.drain(n < self.chunk.len(), emit);
                return Ok(Step::Progress);
            }
        }
        tracing::info!(flow = %self.name, from = %info.path.display(), to = %l.path.display(), "next file");
        self.leave(emit);
        self.open_at(file, &l, 0, None);
        Ok(Step::Progress)
    }

    /// Gives the framed records to `emit`, dropping a footer and what follows.
    fn drain(&mut self, at_eof: bool, emit: &mut dyn FnMut(Framed, &Arc<FileInfo>)) {
        let cur = self.current.as_mut().expect("a file is open");
        if cur.ended {
            return;
        }
        while let Some(record) = self.framer.next(at_eof) {
            if let Some(footer) = &self.settings.file_footer {
                let text = String::from_utf8_lossy(&record.data);
                if footer.is_match(text.trim_matches(|c: char| c <= ' ')) {
                    tracing::info!(flow = %self.name, file = %cur.info.path.display(), "file footer: the rest of the file is not read");
                    cur.ended = true;
                    return;
                }
            }
            emit(record, &cur.info);
        }
    }

    /// Leaves the current file: its unfinished last record goes as it is.
    fn leave(&mut self, emit: &mut dyn FnMut(Framed, &Arc<FileInfo>)) {
        let cur = self.current.as_ref().expect("a file is open");
        if !cur.ended
            && let Some(record) = self.framer.flush()
        {
            emit(record, &cur.info);
        }
    }

    /// Starts reading `file` at `offset`; `fingerprint` is what is known of
    /// its first bytes (else it is read).
    fn open_at(&mut self, file: File, l: &Listed, offset: u64, fingerprint: Option<Fingerprint>) {
        let fingerprint = match fingerprint {
            Some(fp) => fp,
            None => Fingerprint::of(&file, offset).unwrap_or(Fingerprint {
                len: 0,
                md5: [0; 16],
            }),
        };
        self.framer.reset(offset, self.settings.skip_header_lines);
        self.current = Some(Current {
            file,
            info: Arc::new(FileInfo {
                path: l.path.clone(),
                key: l.key,
                fingerprint,
                mtime_ns: l.mtime_ns,
            }),
            ended: false,
        });
    }

    /// Opens the first file: from the checkpoint, or by `initialPosition`.
    fn open_first(&mut self) -> io::Result<bool> {
        let listed = files::list(&self.settings.directory, &self.settings.glob)?;
        let Some(cp) = self.restore.clone() else {
            let Some(newest) = listed.last() else {
                return Ok(false);
            };
            let file = File::open(&newest.path)?;
            let offset = match self.settings.initial_position {
                InitialPosition::StartOfFile => 0,
                InitialPosition::EndOfFile => file.metadata()?.len(),
            };
            tracing::info!(flow = %self.name, file = %newest.path.display(), offset, "tailing");
            self.open_at(file, newest, offset, None);
            return Ok(true);
        };
        let fp = cp.fingerprint();
        // The checkpointed file, by identity, its first bytes unchanged.
        for l in listed.iter().filter(|l| l.key == cp.key()) {
            let file = File::open(&l.path)?;
            let same = match fp {
                Some(fp) if fp.len > 0 => fp.matches(&file)?,
                _ => true,
            };
            if same && l.size >= cp.offset {
                tracing::info!(flow = %self.name, file = %l.path.display(), offset = cp.offset, "resuming from the checkpoint");
                self.open_at(file, l, cp.offset, fp);
                self.restore = None;
                return Ok(true);
            }
        }
        // Truncated or replaced while the agent was down: a copy of it, else
        // the oldest newer file.
        if let Some(fp) = fp.filter(|fp| fp.len > 0) {
            for l in listed.iter().filter(|l| l.size >= cp.offset) {
                let file = File::open(&l.path)?;
                if fp.matches(&file)? {
                    tracing::info!(flow = %self.name, file = %l.path.display(), offset = cp.offset, "resuming from a rotated copy of the checkpointed file");
                    self.open_at(file, l, cp.offset, Some(fp));
                    self.restore = None;
                    return Ok(true);
                }
            }
        }
        if let Some(l) = listed.iter().find(|l| l.mtime_ns > cp.mtime_ns) {
            tracing::warn!(flow = %self.name, gone = %cp.path.display(), file = %l.path.display(), "the checkpointed file is gone; reading the next one from its start");
            let file = File::open(&l.path)?;
            self.open_at(file, l, 0, None);
            self.restore = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Extends the fingerprint over what was read, up to its size limit.
    fn grow_fingerprint(&mut self) -> io::Result<()> {
        let cur = self.current.as_mut().expect("a file is open");
        let want = self.framer.read_offset().min(FINGERPRINT_BYTES_MAX);
        if cur.info.fingerprint.len < want {
            let fingerprint = Fingerprint::of_len(&cur.file, want)?;
            cur.info = Arc::new(FileInfo {
                fingerprint,
                path: cur.info.path.clone(),
                key: cur.info.key,
                mtime_ns: cur.info.mtime_ns,
            });
        }
        Ok(())
    }

    /// Whether the file shrank below what was read or its first bytes
    /// changed; if so, finishes from its rotated copy, then reads it anew.
    fn check_truncation(&mut self, emit: &mut dyn FnMut(Framed, &Arc<FileInfo>)) -> io::Result<()> {
        if self.after_copy.is_some() {
            return Ok(());
        }
        let cur = self.current.as_ref().expect("a file is open");
        let size = cur.file.metadata()?.len();
        let read = self.framer.read_offset();
        let fp = cur.info.fingerprint;
        let changed = size < read || (fp.len > 0 && !fp.matches(&cur.file)?);
        if !changed {
            return Ok(());
        }
        let listed = files::list(&self.settings.directory, &self.settings.glob)?;
        let truncated = Listed {
            path: cur.info.path.clone(),
            key: cur.info.key,
            size,
            mtime_ns: files::mtime_ns(&cur.file.metadata()?),
        };
        let reopened = cur.file.try_clone()?;
        for l in listed
            .iter()
            .filter(|l| l.key != cur.info.key && l.size >= read)
        {
            let file = File::open(&l.path)?;
            if fp.len > 0 && fp.matches(&file)? {
                tracing::info!(flow = %self.name, file = %cur.info.path.display(), copy = %l.path.display(), offset = read, "truncated: finishing from its rotated copy");
                // The copy holds the same bytes at the same offsets: read on from it.
                self.current = Some(Current {
                    file,
                    info: Arc::new(FileInfo {
                        path: l.path.clone(),
                        key: l.key,
                        fingerprint: fp,
                        mtime_ns: l.mtime_ns,
                    }),
                    ended: false,
                });
                self.after_copy = Some((reopened, truncated));
                return Ok(());
            }
        }
        tracing::warn!(flow = %self.name, file = %cur.info.path.display(), offset = read, "truncated, and no rotated copy starting with its first bytes was found: reading it from its start (what was written after offset {read} before the truncation is lost)");
        self.leave(emit);
        self.open_at(reopened, &truncated, 0, None);
        Ok(())
    }
}

#[cfg(test)]
#[path = "tail_tests.rs"]
mod tests;
