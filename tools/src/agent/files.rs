//! The files a flow reads: its file-name glob (Java's `glob:` syntax, as the
//! agent's `SourceFile` matches names in one directory, `.gz`, `.bz2` and
//! `.zip` left out), each file's identity (device and inode, as Java's
//! `fileKey`) and its fingerprint (an MD5 of its first bytes, up to
//! [`FINGERPRINT_BYTES_MAX`]), which tells a rotated copy from a new file and
//! a truncated file from a grown one.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use regex::Regex;

/// How many leading bytes identify a file's content. Enough for several log
/// lines (timestamps make them unique); small enough to re-read on each poll.
pub const FINGERPRINT_BYTES_MAX: u64 = 1024;

/// A file-name pattern in Java's glob syntax: `*`, `?`, `[abc]`, `[!a-z]`,
/// `{a,b}`, `\` escapes.
#[derive(Clone, Debug)]
pub struct Glob(Regex);

impl Glob {
    pub fn new(glob: &str) -> Result<Glob, String> {
        let mut re = String::from(r"\A(?:");
        let mut chars = glob.chars();
        let mut in_group = false;
        while let Some(c) = chars.next() {
            match c {
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '\\' => match chars.next() {
                    Some(e) => re.push_str(&regex::escape(&e.to_string())),
                    None => return Err(format!("filePattern {glob:?}: ends with a lone \\")),
                },
                '[' => {
                    re.push('[');
                    let mut first = true;
                    loop {
                        match chars.next() {
                            None => return Err(format!("filePattern {glob:?}: unclosed [")),
                            Some(']') if !first => break,
                            Some('!') if first => re.push('^'),
                            Some(c @ ('[' | ']' | '\\' | '^' | '&' | '~')) => {
                                re.push('\\');
                                re.push(c);
                            }
                            Some(c) => re.push(c),
                        }
                        first = false;
                    }
                    re.push(']');
                }
                '{' if !in_group => {
                    in_group = true;
                    re.push_str("(?:");
                }
                ',' if in_group => re.push('|'),
                '}' if in_group => {
                    in_group = false;
                    re.push(')');
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        if in_group {
            return Err(format!("filePattern {glob:?}: unclosed {{"));
        }
        re.push_str(r")\z");
        Regex::new(&re)
            .map(Glob)
            .map_err(|e| format!("filePattern {glob:?} is not a valid glob: {e}"))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

/// A file's identity: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// An MD5 of a file's first `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub md5: [u8; 16],
}

impl Fingerprint {
    /// The fingerprint of `file`'s first `min(size, FINGERPRINT_BYTES_MAX)` bytes.
    pub fn of(file: &File, size: u64) -> io::Result<Fingerprint> {
        Self::of_len(file, size.min(FINGERPRINT_BYTES_MAX))
    }

    /// The fingerprint of exactly `len` first bytes (fewer if the file is shorter:
    /// then it cannot equal one of `len` bytes).
    pub fn of_len(file: &File, len: u64) -> io::Result<Fingerprint> {
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = file.read_at(&mut buf[got..], got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(Fingerprint {
            len: got as u64,
            md5: Md5::digest(&buf[..got]).into(),
        })
    }

    /// Whether `file` starts with the bytes this fingerprint was made of
    /// (an empty fingerprint matches nothing: it tells nothing).
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(false);
        }
        Ok(Fingerprint::of_len(file, self.len)? == *self)
    }
}

/// A file matching a flow's pattern, as listed.
#[derive(Clone, Debug)]
pub struct Listed {
    pub path: PathBuf,
    pub key: FileKey,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// Modification time of `meta` in nanoseconds since the epoch.
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
}

/// The regular files of `dir` whose names match `glob`, oldest first (by
/// modification time, then name). A missing directory lists nothing.
pub fn list(dir: &Path, glob: &Glob) -> io::Result<Vec<Listed>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let lower = name.to_ascii_lowercase();
        if !glob.matches(name) || [".gz", ".bz2", ".zip"].iter().any(|x| lower.ends_with(x)) {
            continue;
        }
        let path = entry.path();
        // Follows a symbolic link, as the agent reads through one.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // gone since the listing
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Listed {
            path,
            key: FileKey::of(&meta),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        });
    }
    out.sort_by(|a, b| {
        a.mtime_ns
            .cmp(&b.mtime_ns)
            .then_with(|| a.path.cmp(&b.path))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_javas() {
        for (glob, yes, no) in [
            (
                "app.log*",
                &["app.log", "app.log.1", "app.log-2024"][..],
                &["xapp.log", "app.lo"][..],
            ),
            ("*.log", &["a.log", ".log"], &["a.log.1", "a.txt"]),
            ("app.?", &["app.1"], &["app.10", "app."]),
            ("app.[0-9]", &["app.3"], &["app.x"]),
            ("app.[!0-9]", &["app.x"], &["app.3"]),
            ("{a,b}.log", &["a.log", "b.log"], &["c.log", "{a,b}.log"]),
            ("a\\*.log", &["a*.log"], &["ab.log"]),
            ("a(1)+.log", &["a(1)+.log"], &["a1.log"]),
        ] {
            let g = Glob::new(glob).unwrap();
            for name in yes {
                assert!(g.matches(name), "{glob} should match {name}");
            }
            for name in no {
                assert!(!g.matches(name), "{glob} should not match {name}");
            }
        }
        assert!(Glob::new("a[").is_err());
        assert!(Glob::new("{a").is_err());
    }

    #[test]
    fn listing_sorts_oldest_first_and_skips_archives() {
        let dir = crate::agent::test_dir();
        let at = |name: &str, secs: i64| {
            let p = dir.path().join(name);
            std::fs::write(&p, name).unwrap();
            let f = File::options().write(true).open(&p).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
                .unwrap();
        };
        at("app.log", 300);
        at("app.log.1", 200);
        at("app.log.2", 100);
        at("app.log.3.gz", 50);
        at("other.log", 10);
        std::fs::create_dir(dir.path().join("app.log.d")).unwrap();
        let names: Vec<_> = list(dir.path(), &Glob::new("app.log*").unwrap())
            .unwrap()
            .into_iter()
            .map(|l| l.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["app.log.2", "app.log.1", "app.log"]);
        assert!(
            list(&dir.path().join("none"), &Glob::new("*").unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn fingerprints_tell_copies_from_new_files() {
        let dir = crate::agent::test_dir();
        let a = dir.path().join("a");
        std::fs::write(&a, "line one\nline two\n").unwrap();
        let fa = File::open(&a).unwrap();
        let fp = Fingerprint::of(&fa, 18).unwrap();
        assert_eq!(fp.len, 18);
        let copy = dir.path().join("copy");
        std::fs::write(&copy, "line one\nline two\nline three\n").unwrap();
        assert!(fp.matches(&File::open(&copy).unwrap()).unwrap());
        std::fs::write(&copy, "line one\n").unwrap();
        assert!(!fp.matches(&File::open(&copy).unwrap()).unwrap());
        std::fs::write(&copy, "other one\nline two\n").unwrap();
        assert!(!fp.matches(&File::open(&copy).unwrap()).unwrap());
        let empty = Fingerprint::of(&fa, 0).unwrap();
        assert!(!empty.matches(&fa).unwrap());
    }
}
