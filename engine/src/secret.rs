//! The shard iterator secret: 32 random bytes kept in `<data_dir>/iterator-secret`
//! (made on first start, mode 0600), so iterators handed out before a restart
//! stay valid for their five minutes, as AWS's do across its own deployments.
//!
//! A secret is never made of anything but random bytes: when they cannot be read
//! the engine does not start (a predictable key would let anyone forge iterators).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use riffle_protocol::Error;

/// Secret length in bytes (the HMAC-SHA256 key).
pub const SECRET_SIZE: usize = 32;

/// Where random bytes come from.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// The secret kept in `data_dir`, made from the system's random bytes if there
/// is none yet.
pub fn stored_secret(data_dir: &Path) -> Result<[u8; SECRET_SIZE], Error> {
    stored_secret_from(data_dir, Path::new(RANDOM_SOURCE))
}

/// [`stored_secret`] with random bytes read from `source`.
fn stored_secret_from(data_dir: &Path, source: &Path) -> Result<[u8; SECRET_SIZE], Error> {
    let path = data_dir.join("iterator-secret");
    match std::fs::read(&path) {
        Ok(bytes) => match <[u8; SECRET_SIZE]>::try_from(bytes.as_slice()) {
            Ok(secret) => return Ok(secret),
            Err(_) => tracing::warn!(
                path = %path.display(),
                len = bytes.len(),
                "iterator secret has the wrong length; making a new one (older iterators become invalid)"
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::internal(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let secret = random_bytes(source)?;
    let tmp = data_dir.join("iterator-secret.tmp");
    let fail = |e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(&secret).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)?;
    Ok(secret)
}

/// [`SECRET_SIZE`] bytes read from `source`; an error (never zeros) when it
/// cannot be opened or ends early.
fn random_bytes(source: &Path) -> Result<[u8; SECRET_SIZE], Error> {
    let mut secret = [0u8; SECRET_SIZE];
    std::fs::File::open(source)
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| {
            Error::internal(format!(
                "cannot make the shard iterator secret: reading {SECRET_SIZE} random bytes from {}: {e}",
                source.display()
            ))
        })?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_random_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = stored_secret(dir.path()).unwrap();
        assert_ne!(first, [0; SECRET_SIZE]);
        assert_eq!(stored_secret(dir.path()).unwrap(), first);
        assert_eq!(
            std::fs::read(dir.path().join("iterator-secret")).unwrap(),
            first
        );
    }

    /// No random bytes, no secret: the start fails with a message naming the
    /// source, and nothing is written (the next start tries again).
    #[test]
    fn unreadable_random_bytes_fail_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, [7u8; SECRET_SIZE - 1]).unwrap();
        let missing = dir.path().join("missing");
        for source in [missing.as_path(), short.as_path(), dir.path()] {
            let e = stored_secret_from(dir.path(), source).unwrap_err();
            assert!(
                e.message.contains("cannot make the shard iterator secret")
                    && e.message.contains(&source.display().to_string()),
                "{e}"
            );
            assert!(!dir.path().join("iterator-secret").exists());
        }
        // A secret already kept needs no random bytes.
        let kept = stored_secret(dir.path()).unwrap();
        assert_eq!(stored_secret_from(dir.path(), &missing).unwrap(), kept);
    }
}
