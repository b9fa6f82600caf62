//! The local keyring file: the KMS keys a server encrypts with, as `riffle kms`
//! makes and changes them and the server reads them.
//!
//! A JSON document (mode 0600, written whole to a temporary file, synced and
//! renamed over the old one, under an exclusive `flock` of `FILE.lock` so the
//! CLI and a server never interleave their changes):
//!
//! ```json
//! {"Format": "riffle-keyring/1",
//!  "Protection": {"Kind": "pbkdf2-sha256+aes-256-gcm", "Iterations": 600000,
//!                 "Salt": "…", "Check": "…"},
//!  "Keys": [{"KeyId": "5f0c…", "Aliases": ["alias/orders"], "KeyState": "Enabled",
//!            "CreationDate": 1733…, "Description": "", "Material": "…"}]}
//! ```
//!
//! Key material is never written in the clear unless the operator chose so
//! (`"Protection": {"Kind": "none"}`, made by `riffle kms create-key --plaintext`):
//! otherwise each key's 32 bytes are sealed with AES-256-GCM under a key derived
//! from a passphrase (PBKDF2-HMAC-SHA256, the file's salt and iteration count;
//! the key id is the associated data), and `Check` seals a known text so a wrong
//! passphrase is told apart from a damaged file. The passphrase comes from the
//! environment variable [`PASSPHRASE_ENV`], for the CLI and the server alike.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The environment variable holding the keyring's passphrase.
pub const PASSPHRASE_ENV: &str = "RIFFLE_KMS_PASSPHRASE";
const FORMAT: &str = "riffle-keyring/1";
const SEALED: &str = "pbkdf2-sha256+aes-256-gcm";
const CHECK_TEXT: &[u8] = b"riffle keyring passphrase check";
/// PBKDF2-HMAC-SHA256 iterations for a new keyring (OWASP's 2023 advice).
pub const ITERATIONS_DEFAULT: u32 = 600_000;
/// The length of a KMS key's material (AES-256).
pub const KEY_LEN: usize = 32;

/// Why a keyring cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a keyring: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} is protected by a passphrase: set {PASSPHRASE_ENV} (a wrong one is refused)")]
    NoPassphrase { path: PathBuf },
    #[error("{path}: the passphrase in {PASSPHRASE_ENV} does not open this keyring")]
    WrongPassphrase { path: PathBuf },
    #[error("{0}")]
    Refused(String),
}

/// A key's state, as KMS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
}

/// A KMS key's material, overwritten when dropped.
#[derive(Clone)]
pub struct Material([u8; KEY_LEN]);

impl Material {
    pub fn random() -> Result<Material, KeyringError> {
        let mut m = [0u8; KEY_LEN];
        fill(&mut m)?;
        Ok(Material(m))
    }
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for Material {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a write through a valid, aligned `&mut u8`; volatile so
            // the compiler does not drop it as a dead store.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Material(..)")
    }
}

/// One key of the keyring, its material in the clear (in memory only).
#[derive(Clone, Debug)]
pub struct Key {
    /// A GUID, as KMS's key ids.
    pub id: String,
    /// `alias/...` names.
    pub aliases: Vec<String>,
    pub state: KeyState,
    pub created_ms: i64,
    pub description: String,
    pub material: Material,
}

/// How the file protects key material.
#[derive(Clone)]
enum Protection {
    /// The operator chose to keep material in the clear.
    None,
    Passphrase {
        iterations: u32,
        salt: Vec<u8>,
        /// The key derived from the passphrase.
        kek: [u8; KEY_LEN],
    },
}

/// A keyring read from its file (or new).
#[derive(Clone)]
pub struct Keyring {
    protection: Protection,
    pub keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("plaintext", &self.is_plaintext())
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FileKeyring {
    format: String,
    protection: FileProtection,
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FileProtection {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    salt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    check: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FileKey {
    key_id: String,
    #[serde(default)]
    aliases: Vec<String>,
    key_state: KeyState,
    creation_date: i64,
    #[serde(default)]
    description: String,
    material: String,
}

fn fill(out: &mut [u8]) -> Result<(), KeyringError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| KeyringError::Refused("the system's random source failed".into()))
}

/// A new random key id, formatted as a version 4 GUID.
pub fn new_key_id() -> Result<String, KeyringError> {
    let mut b = [0u8; 16];
    fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Seals `plain` under `key`: nonce, ciphertext and tag.
pub(crate) fn seal(key: &[u8; KEY_LEN], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeyringError> {
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let mut nonce = [0u8; NONCE_LEN];
    fill(&mut nonce)?;
    let mut out = nonce.to_vec();
    let mut body = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| KeyringError::Refused("cannot encrypt".into()))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens what [`seal`] made; `None` when it does not authenticate.
pub(crate) fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().ok()?;
    let mut body = sealed[NONCE_LEN..].to_vec();
    let plain = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .ok()?;
    Some(plain.to_vec())
}

fn derive(passphrase: &str, salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut kek = [0u8; KEY_LEN];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1"),
        salt,
        passphrase.as_bytes(),
        &mut kek,
    );
    kek
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Keyring {
    /// An empty keyring protected by `passphrase`, or in the clear when `None`.
    pub fn new(passphrase: Option<&str>, iterations: u32) -> Result<Keyring, KeyringError> {
        let protection = match passphrase {
            None => Protection::None,
            Some(p) => {
                let mut salt = vec![0u8; 16];
                fill(&mut salt)?;
                Protection::Passphrase {
                    kek: derive(p, &salt, iterations),
                    iterations,
                    salt,
                }
            }
        };
        Ok(Keyring {
            protection,
            keys: Vec::new(),
        })
    }

    /// Whether key material is kept in the clear in the file.
    pub fn is_plaintext(&self) -> bool {
        matches!(self.protection, Protection::None)
    }

    /// Reads the keyring at `path`; `passphrase` opens a protected one.
    pub fn load(path: &Path, passphrase: Option<&str>) -> Result<Keyring, KeyringError> {
        let text = std::fs::read(path).map_err(|e| KeyringError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Keyring::parse(path, &text, passphrase)
    }

    fn parse(path: &Path, text: &[u8], passphrase: Option<&str>) -> Result<Keyring, KeyringError> {
        let format = |message: String| KeyringError::Format {
            path: path.to_owned(),
            message,
        };
        let file: FileKeyring = serde_json::from_slice(text).map_err(|e| format(e.to_string()))?;
        if file.format != FORMAT {
            return Err(format(format!(
                "format {:?}, expected {FORMAT:?}",
                file.format
            )));
        }
        let b64 = |what: &str, s: &str| {
            B64.decode(s)
                .map_err(|e| format(format!("{what} is not base64: {e}")))
        };
        let protection = match file.protection.kind.as_str() {
            "none" => Protection::None,
            SEALED => {
                let passphrase = passphrase.ok_or_else(|| KeyringError::NoPassphrase {
                    path: path.to_owned(),
                })?;
                let iterations = file
                    .protection
                    .iterations
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format("Protection.Iterations is missing".into()))?;
                let salt = b64(
                    "Protection.Salt",
                    file.protection.salt.as_deref().unwrap_or(""),
                )?;
                let check = b64(
                    "Protection.Check",
                    file.protection.check.as_deref().unwrap_or(""),
                )?;
                let kek = derive(passphrase, &salt, iterations);
                if open(&kek, b"check", &check).as_deref() != Some(CHECK_TEXT) {
                    return Err(KeyringError::WrongPassphrase {
                        path: path.to_owned(),
                    });
                }
                Protection::Passphrase {
                    iterations,
                    salt,
                    kek,
                }
            }
            other => return Err(format(format!("unknown protection {other:?}"))),
        };
        let mut keys = Vec::with_capacity(file.keys.len());
        for k in file.keys {
            let raw = b64("Material", &k.material)?;
            let plain = match &protection {
                Protection::None => raw,
                Protection::Passphrase { kek, .. } => open(kek, k.key_id.as_bytes(), &raw)
                    .ok_or_else(|| format(format!("key {}: its material is damaged", k.key_id)))?,
            };
            let material: [u8; KEY_LEN] = plain
                .as_slice()
                .try_into()
                .map_err(|_| format(format!("key {}: material is not 32 bytes", k.key_id)))?;
            keys.push(Key {
                id: k.key_id,
                aliases: k.aliases,
                state: k.key_state,
                created_ms: k.creation_date,
                description: k.description,
                material: Material(material),
            });
        }
        Ok(Keyring { protection, keys })
    }

    fn to_file(&self) -> Result<Vec<u8>, KeyringError> {
        let protection = match &self.protection {
            Protection::None => FileProtection {
                kind: "none".into(),
                iterations: None,
                salt: None,
                check: None,
            },
            Protection::Passphrase {
                iterations,
                salt,
                kek,
            } => FileProtection {
                kind: SEALED.into(),
                iterations: Some(*iterations),
                salt: Some(B64.encode(salt)),
                check: Some(B64.encode(seal(kek, b"check", CHECK_TEXT)?)),
            },
        };
        let mut keys = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            let material = match &self.protection {
                Protection::None => B64.encode(k.material.bytes()),
                Protection::Passphrase { kek, .. } => {
                    B64.encode(seal(kek, k.id.as_bytes(), k.material.bytes())?)
                }
            };
            keys.push(FileKey {
                key_id: k.id.clone(),
                aliases: k.aliases.clone(),
                key_state: k.state,
                creation_date: k.created_ms,
                description: k.description.clone(),
                material,
            });
        }
        let file = FileKeyring {
            format: FORMAT.into(),
            protection,
            keys,
        };
        let mut out = serde_json::to_vec_pretty(&file).expect("a keyring serializes");
        out.push(b'\n');
        Ok(out)
    }

    /// Writes the keyring to `path` (mode 0600): a new temporary file beside
    /// it (`PATH.tmp.RANDOM`, made exclusively: never an existing file or a
    /// link), synced, renamed over the old one, and the directory synced.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        let io = |e: std::io::Error| KeyringError::Io {
            path: path.to_owned(),
            message: e.to_string(),
        };
        let bytes = self.to_file()?;
        let mut suffix = [0u8; 8];
        fill(&mut suffix)?;
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".tmp.{}", u64::from_le_bytes(suffix)));
        let tmp = PathBuf::from(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        // The umask may have taken bits away, never added: 0600 exactly.
        use std::os::unix::fs::PermissionsExt;
        let written = f
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|()| f.write_all(&bytes))
            .and_then(|()| f.sync_all());
        drop(f);
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Ok(d) = std::fs::File::open(dir.unwrap_or(Path::new("."))) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads, changes and writes the keyring at `path` under its lock; a
    /// missing file starts as an empty keyring protected by `passphrase` (in
    /// the clear only when `plaintext` says the operator chose so). `change`
    /// says whether it changed anything: an unchanged keyring is not written.
    pub fn update<T>(
        path: &Path,
        passphrase: Option<&str>,
        plaintext: bool,
        change: impl FnOnce(&mut Keyring) -> Result<(T, bool), KeyringError>,
    ) -> Result<T, KeyringError> {
        let _lock = FileLock::exclusive(path)?;
        let existed = path.exists();
        let mut ring = if existed {
            Keyring::load(path, passphrase)?
        } else {
            match (passphrase, plaintext) {
                (Some(p), false) => Keyring::new(Some(p), ITERATIONS_DEFAULT)?,
                (None, true) => Keyring::new(None, 0)?,
                (Some(_), true) => {
                    return Err(KeyringError::Refused(format!(
                        "--plaintext keeps key material in the clear: unset {PASSPHRASE_ENV} or drop --plaintext"
                    )));
                }
                (None, false) => {
                    return Err(KeyringError::Refused(format!(
                        "{} does not exist: set {PASSPHRASE_ENV} to protect the new keyring's keys with a passphrase, or give --plaintext to keep them in the clear",
                        path.display()
                    )));
                }
            }
        };
        let (out, changed) = change(&mut ring)?;
        if changed || !existed {
            ring.save(path)?;
        }
        Ok(out)
    }

    /// The key an id, alias name or ARN names: `5f0c…`, `alias/x`,
    /// `arn:aws:kms:R:A:key/5f0c…`, `arn:aws:kms:R:A:alias/x`.
    pub fn find(&self, key_id: &str) -> Option<&Key> {
        let name = key_name(key_id)?;
        match name.strip_prefix("key/") {
            Some(id) => self.keys.iter().find(|k| k.id == id),
            None if name.starts_with("alias/") => self
                .keys
                .iter()
                .find(|k| k.aliases.iter().any(|a| a == name)),
            None => self.keys.iter().find(|k| k.id == name),
        }
    }

    /// Adds a new enabled key with `alias` (`alias/NAME` or `NAME`).
    pub fn create_key(
        &mut self,
        alias: Option<&str>,
        description: &str,
    ) -> Result<&Key, KeyringError> {
        let alias = alias.map(|a| {
            if a.starts_with("alias/") {
                a.to_owned()
            } else {
                format!("alias/{a}")
            }
        });
        if let Some(a) = &alias {
            check_alias(a)?;
            if self.find(a).is_some() {
                return Err(KeyringError::Refused(format!("{a} already exists")));
            }
        }
        self.keys.push(Key {
            id: new_key_id()?,
            aliases: alias.into_iter().collect(),
            state: KeyState::Enabled,
            created_ms: now_ms(),
            description: description.to_owned(),
            material: Material::random()?,
        });
        Ok(self.keys.last().expect("just pushed"))
    }

    /// Sets the state of the key `key_id` names.
    pub fn set_state(&mut self, key_id: &str, state: KeyState) -> Result<&Key, KeyringError> {
        let id = self
            .find(key_id)
            .ok_or_else(|| KeyringError::Refused(format!("no key {key_id} in the keyring")))?
            .id
            .clone();
        let key = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .expect("found above");
        key.state = state;
        Ok(key)
    }
}

/// What a key id names in the keyring: `key/ID`, `alias/NAME` or a bare id,
/// the ARN forms (`arn:PARTITION:kms:REGION:ACCOUNT:NAME`) read strictly.
pub fn key_name(key_id: &str) -> Option<&str> {
    match key_id.strip_prefix("arn:") {
        Some(rest) => {
            let mut parts = rest.split(':');
            let (_, kms, _, _, name) = (
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
                parts.next()?,
            );
            (kms == "kms" && parts.next().is_none()).then_some(name)
        }
        None => Some(key_id),
    }
}

/// KMS's rule for alias names: `alias/` then 1-250 of `[a-zA-Z0-9/_-]`.
fn check_alias(alias: &str) -> Result<(), KeyringError> {
    let name = alias.strip_prefix("alias/").unwrap_or("");
    let ok = !name.is_empty()
        && alias.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(KeyringError::Refused(format!(
            "alias {alias:?} must be alias/ then 1 to 250 letters, digits, '/', '_' or '-'"
        )))
    }
}

/// An exclusive `flock` of `PATH.lock`, released when dropped.
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    fn exclusive(path: &Path) -> Result<FileLock, KeyringError> {
        use std::os::fd::AsRawFd;
        let mut name = path.as_os_str().to_owned();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock)
            .map_err(|e| KeyringError::Io {
                path: lock.clone(),
                message: e.to_string(),
            })?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(KeyringError::Io {
                path: lock,
                message: std::io::Error::last_os_error().to_string(),
            });
        }
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("riffle-keyring-{}", new_key_id().unwrap()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_protected_keyring_keeps_no_material_in_the_clear_and_opens_with_its_passphrase() {
        let path = dir().join("keys.json");
        let (id, material) = Keyring::update(&path, Some("correct horse"), false, |k| {
            let key = k.create_key(Some("orders"), "for orders")?;
            Ok(((key.id.clone(), key.material.clone()), true))
        })
        .unwrap();
        let text = std::fs::read(&path).unwrap();
        let b64 = B64.encode(material.bytes());
        assert!(!String::from_utf8_lossy(&text).contains(&b64));
        assert!(
            !text
                .windows(16)
                .any(|w| material.bytes().windows(16).any(|m| m == w))
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k = Keyring::load(&path, Some("correct horse")).unwrap();
        let key = k.find("alias/orders").unwrap();
        assert_eq!(key.id, id);
        assert_eq!(key.material.bytes(), material.bytes());
        assert_eq!(k.find(&id).unwrap().id, id);
        assert_eq!(
            k.find(&format!("arn:aws:kms:us-east-1:1:key/{id}"))
                .unwrap()
                .id,
            id
        );
        assert_eq!(
            k.find("arn:aws:kms:us-east-1:1:alias/orders").unwrap().id,
            id
        );
        assert!(k.find("alias/other").is_none());
        assert!(matches!(
            Keyring::load(&path, Some("wrong")),
            Err(KeyringError::WrongPassphrase { .. })
        ));
        assert!(matches!(
            Keyring::load(&path, None),
            Err(KeyringError::NoPassphrase { .. })
        ));
    }

    #[test]
    fn a_new_keyring_needs_a_passphrase_or_the_operators_choice_of_plaintext() {
        let path = dir().join("keys.json");
        let e = Keyring::update(&path, None, false, |_| Ok(((), true))).unwrap_err();
        assert!(e.to_string().contains(PASSPHRASE_ENV), "{e}");
        assert!(!path.exists());
        Keyring::update(&path, None, true, |k| {
            k.create_key(None, "").map(|_| ((), true))
        })
        .unwrap();
        let k = Keyring::load(&path, None).unwrap();
        assert!(k.is_plaintext());
        assert_eq!(k.keys.len(), 1);
    }

    #[test]
    fn states_and_aliases_change_as_kms_allows() {
        let path = dir().join("keys.json");
        Keyring::update(&path, Some("p"), false, |k| {
            k.create_key(Some("alias/a"), "")?;
            assert!(k.create_key(Some("a"), "").is_err(), "a taken alias");
            assert!(k.create_key(Some("alias/"), "").is_err());
            assert!(k.create_key(Some("bad name!"), "").is_err());
            k.set_state("alias/a", KeyState::Disabled)?;
            Ok(((), true))
        })
        .unwrap();
        let k = Keyring::load(&path, Some("p")).unwrap();
        assert_eq!(k.find("alias/a").unwrap().state, KeyState::Disabled);
        // A damaged file is an error naming it, never a panic.
        std::fs::write(&path, b"{\"Format\": 3").unwrap();
        let e = Keyring::load(&path, Some("p")).unwrap_err();
        assert!(e.to_string().contains("is not a keyring"), "{e}");
    }
}
