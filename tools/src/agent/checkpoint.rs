//! The checkpoint file (`checkpointFile`): per flow, the file and offset up
//! to which every record has been acknowledged by the destination. The Java
//! agent keeps these in a SQLite database; Riffle's agent keeps a JSON
//! document, replaced atomically (written to a temporary file beside it,
//! fsynced, renamed over it, the directory fsynced), so a crash at any point
//! leaves the previous or the new checkpoints, never a torn file.
//!
//! ```json
//! {"version": 1, "flows": {"kinesis:s:/var/log/app.log*":
//!   {"path": "/var/log/app.log", "dev": 2049, "ino": 1234, "offset": 4096,
//!    "fingerprint_len": 1024, "fingerprint_md5": "9e10…", "mtime_ns": 1700000000000000000}}}
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{FileKey, Fingerprint};

/// Where a flow is: a file (by identity and content) and an offset in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Where the file was when it was checkpointed (it may be renamed since).
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Every byte before this offset is in acknowledged records (or skipped).
    pub offset: u64,
    pub fingerprint_len: u64,
    pub fingerprint_md5: String,
    /// The file's modification time when it was last read (ns since the epoch).
    pub mtime_ns: i64,
}

impl Position {
    pub fn new(path: &Path, key: FileKey, fp: Fingerprint, offset: u64, mtime_ns: i64) -> Position {
        Position {
            path: path.to_path_buf(),
            dev: key.dev,
            ino: key.ino,
            offset,
            fingerprint_len: fp.len,
            fingerprint_md5: fp.md5.iter().map(|b| format!("{b:02x}")).collect(),
            mtime_ns,
        }
    }

    pub fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            ino: self.ino,
        }
    }

    /// The fingerprint, if it is well formed.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        let hex = self.fingerprint_md5.as_bytes();
        if hex.len() != 32 {
            return None;
        }
        let mut md5 = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            md5[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Fingerprint {
            len: self.fingerprint_len,
            md5,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    flows: BTreeMap<String, Position>,
}

/// The checkpoint file and its contents.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    flows: BTreeMap<String, Position>,
}

impl Checkpoints {
    /// Reads `path`; a missing file is an empty set of checkpoints, an
    /// unreadable one an error naming it (the agent would otherwise re-send
    /// or skip whole files).
    pub fn open(path: &Path) -> Result<Checkpoints, String> {
        let flows = match std::fs::read(path) {
            Ok(bytes) => {
                let doc: Document = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "checkpoint file {} is not Riffle's agent's: {e} (move it away to start over)",
                        path.display()
                    )
                })?;
                if doc.version != 1 {
                    return Err(format!(
                        "checkpoint file {}: version {} is not known",
                        path.display(),
                        doc.version
                    ));
                }
                doc.flows
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(format!(
                    "cannot read the checkpoint file {}: {e}",
                    path.display()
                ));
            }
        };
        Ok(Checkpoints {
            path: path.to_path_buf(),
            flows,
        })
    }

    pub fn get(&self, flow_id: &str) -> Option<&Position> {
        self.flows.get(flow_id)
    }

    /// Sets a flow's position (in memory; [`Checkpoints::save`] writes it).
    pub fn set(&mut self, flow_id: &str, position: Position) {
        self.flows.insert(flow_id.to_string(), position);
    }

    /// Writes every checkpoint, atomically.
    pub fn save(&self) -> Result<(), String> {
        let doc = Document {
            version: 1,
            flows: self.flows.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&doc).expect("checkpoints serialise");
        write_atomically(&self.path, &bytes).map_err(|e| {
            format!(
                "cannot write the checkpoint file {}: {e}",
                self.path.display()
            )
        })
    }
}

/// Replaces `path` with `bytes`: a temporary file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces_atomically() {
        let dir = crate::agent::test_dir();
        let path = dir.path().join("sub/checkpoints");
        let mut c = Checkpoints::open(&path).unwrap();
        assert!(c.get("f").is_none());
        let fp = Fingerprint {
            len: 3,
            md5: [0xab; 16],
        };
        let p = Position::new(Path::new("/l/a"), FileKey { dev: 1, ino: 2 }, fp, 42, 7);
        c.set("f", p.clone());
        c.save().unwrap();
        let again = Checkpoints::open(&path).unwrap();
        assert_eq!(again.get("f"), Some(&p));
        assert_eq!(again.get("f").unwrap().fingerprint(), Some(fp));
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["checkpoints"]);
        std::fs::write(&path, "{not json").unwrap();
        assert!(
            Checkpoints::open(&path)
                .unwrap_err()
                .contains("is not Riffle's agent's")
        );
    }
}
