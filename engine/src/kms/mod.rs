//! The KMS of encryption at rest: resolves KMS key ids the way AWS does, makes
//! and unwraps streams' data keys, and answers with AWS's KMS errors.
//!
//! Keys come from a [`KeySource`]: the local keyring file ([`keyring`],
//! `--kms-keyring FILE`, [`KeyringSource`]) is the one the server offers;
//! another is plugged in with [`Kms::with_source`]. Without one, every key is
//! missing (`KMSNotFoundException` naming the flag).
//! The keyring is read again whenever its file changes (checked every
//! [`RELOAD_EVERY`]): `riffle kms disable` reaches a running server that way,
//! and from then on puts and reads under that key fail with
//! `KMSDisabledException` until it is enabled again.
//!
//! Envelope encryption: a stream's data key (`cipher::DataKey`, AES-256-GCM) is
//! made when encryption starts, wrapped by the KMS key (AES-256-GCM under the
//! key's material, the stream's identity, [`context`], as associated data) and
//! kept wrapped in the catalog (`StreamSettings::data_keys`). Unwrapped data keys are cached in
//! memory; every use checks the KMS key's state first, so a disabled key stops
//! its data keys at once. The AWS-managed aliases (`alias/aws/kinesis`,
//! `alias/aws/firehose`, `alias/aws/kinesisvideo`) are made in the keyring the
//! first time they are named.

pub mod keyring;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use riffle_protocol::{Error, ErrorCode};
use riffle_store::catalog::StreamDataKey;
use riffle_store::cipher::{DATA_KEY_LEN, DataKey};

use keyring::{KeyState, Keyring, KeyringError};

/// How often the keyring file is checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_millis(250);

/// The aliases of AWS-managed keys the server makes on first use.
pub const AWS_MANAGED: &[&str] = &[
    "alias/aws/kinesis",
    "alias/aws/firehose",
    "alias/aws/kinesisvideo",
];

/// A KMS key as its source holds it: its key id (a GUID) and whether it
/// may be used now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceKey {
    pub id: String,
    pub enabled: bool,
}

/// Where master keys live and how data keys are wrapped under them: the
/// pluggable part of the KMS. [`Kms`] adds what is AWS's (the key-id forms in
/// its errors, the managed aliases, the errors' wording) and keeps unwrapped
/// data keys; a source only finds keys, wraps and unwraps. The local keyring
/// file ([`KeyringSource`]) is the one the server offers (`--kms-keyring`);
/// another (an HSM, a Vault, AWS KMS itself) implements this and is given to
/// [`Kms::with_source`]. Calls come from the cores: a source answers from
/// memory (the keyring's keys, read when they change) except
/// [`KeySource::make_managed`], once per alias.
pub trait KeySource: Send + Sync {
    /// What it is, for logs (`keyring /etc/riffle/keys.json`).
    fn name(&self) -> String;
    /// The key `key_id` names, in any of AWS's forms (GUID, key ARN,
    /// `alias/x`, alias ARN); None when it names none.
    fn find(&self, key_id: &str) -> Option<SourceKey>;
    /// Whether key `key_id` may be used now (None: no such key): `find`
    /// without its answer's allocation, for every put and read.
    fn enabled(&self, key_id: &str) -> Option<bool> {
        self.find(key_id).map(|k| k.enabled)
    }
    /// Makes the AWS-managed key `alias` (`alias/aws/kinesis`, ...) unless it
    /// exists; `find` names it afterwards.
    fn make_managed(&self, alias: &str) -> Result<(), String>;
    /// `data` wrapped under key `id` (from `find`), bound to `aad`.
    fn wrap(&self, id: &str, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, String>;
    /// What `wrap` wrapped under key `id` for `aad`; None when it does not
    /// open (another key, another `aad`, damaged).
    fn unwrap(&self, id: &str, aad: &[u8], wrapped: &[u8]) -> Option<Vec<u8>>;
    /// Takes in changes made outside the server (a file edited); called
    /// every [`RELOAD_EVERY`].
    fn reload(&self) {}
}

/// The local keyring file as a [`KeySource`], read again when it changes.
pub struct KeyringSource {
    path: PathBuf,
    passphrase: Option<String>,
    /// The file's identity and version when last read.
    stamp: Mutex<Option<Stamp>>,
    keyring: ArcSwap<Keyring>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    })
}

impl KeyringSource {
    /// The keyring at `path`, opened with `passphrase` when it is protected.
    pub fn open(path: &Path, passphrase: Option<String>) -> Result<KeyringSource, Error> {
        let stamp = stamp(path);
        let ring = Keyring::load(path, passphrase.as_deref())
            .map_err(|e| Error::invalid(format!("--kms-keyring: {e}")))?;
        Ok(KeyringSource {
            path: path.to_owned(),
            passphrase,
            stamp: Mutex::new(stamp),
            keyring: ArcSwap::from_pointee(ring),
        })
    }

    fn material(&self, id: &str) -> Option<keyring::Material> {
        self.keyring.load().find(id).map(|k| k.material.clone())
    }
}

impl KeySource for KeyringSource {
    fn name(&self) -> String {
        format!("keyring {}", self.path.display())
    }

    fn find(&self, key_id: &str) -> Option<SourceKey> {
        self.keyring.load().find(key_id).map(|k| SourceKey {
            id: k.id.clone(),
            enabled: k.state == KeyState::Enabled,
        })
    }

    fn enabled(&self, key_id: &str) -> Option<bool> {
        self.keyring
            .load()
            .find(key_id)
            .map(|k| k.state == KeyState::Enabled)
    }

    /// Blocks (the keyring's lock, its key derivation, a synced write).
    fn make_managed(&self, alias: &str) -> Result<(), String> {
        let plaintext = self.keyring.load().is_plaintext();
        Keyring::update(&self.path, self.passphrase.as_deref(), plaintext, |ring| {
            if ring.find(alias).is_some() {
                return Ok(((), false));
            }
            let service = alias.trim_start_matches("alias/aws/");
            ring.create_key(
                Some(alias),
                &format!(
                    "Default key that protects my {service} data when no other key is defined"
                ),
            )?;
            Ok(((), true))
        })
        .map_err(|e: KeyringError| e.to_string())?;
        *self.stamp.lock().expect("not poisoned") = None;
        self.reload();
        Ok(())
    }

    fn wrap(&self, id: &str, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        let material = self.material(id).ok_or_else(|| format!("no key {id}"))?;
        keyring::seal(material.bytes(), aad, data).map_err(|e| e.to_string())
    }

    fn unwrap(&self, id: &str, aad: &[u8], wrapped: &[u8]) -> Option<Vec<u8>> {
        keyring::open(self.material(id)?.bytes(), aad, wrapped)
    }

    /// Reads the keyring again if its file changed; a file that cannot be
    /// read keeps the keys last read (and is logged).
    fn reload(&self) {
        let now = stamp(&self.path);
        let mut last = self.stamp.lock().expect("not poisoned");
        if now == *last {
            return;
        }
        match Keyring::load(&self.path, self.passphrase.as_deref()) {
            Ok(ring) => {
                self.keyring.store(Arc::new(ring));
                *last = now;
                tracing::info!(keyring = %self.path.display(), "KMS keyring read again");
            }
            Err(e) => {
                *last = now;
                tracing::warn!(error = %e, "cannot read the KMS keyring again; keeping the keys last read");
            }
        }
    }
}

/// The server's KMS.
pub struct Kms {
    source: Option<Arc<dyn KeySource>>,
    account: String,
    region: String,
    /// Unwrapped data keys by their wrapped form.
    data_keys: ArcSwap<HashMap<String, Arc<DataKey>>>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("source", &self.source.as_ref().map(|s| s.name()))
            .finish()
    }
}

/// A KMS key usable now: its ARN and key id.
struct Usable {
    arn: String,
    id: String,
}

impl Kms {
    /// A KMS without keys: every key is missing.
    pub fn unconfigured(account: &str, region: &str) -> Arc<Kms> {
        Arc::new(Kms {
            source: None,
            account: account.to_owned(),
            region: region.to_owned(),
            data_keys: ArcSwap::default(),
        })
    }

    /// The KMS of the keyring at `path` (opened with `passphrase` when it is
    /// protected), watched for changes while the KMS lives.
    pub fn open(
        path: &Path,
        passphrase: Option<String>,
        account: &str,
        region: &str,
    ) -> Result<Arc<Kms>, Error> {
        let source = KeyringSource::open(path, passphrase)?;
        Kms::with_source(Arc::new(source), account, region)
    }

    /// The KMS of keys from `source`, which is asked to reload every
    /// [`RELOAD_EVERY`] while the KMS lives.
    pub fn with_source(
        source: Arc<dyn KeySource>,
        account: &str,
        region: &str,
    ) -> Result<Arc<Kms>, Error> {
        let kms = Arc::new(Kms {
            source: Some(source),
            account: account.to_owned(),
            region: region.to_owned(),
            data_keys: ArcSwap::default(),
        });
        let weak: Weak<Kms> = Arc::downgrade(&kms);
        std::thread::Builder::new()
            .name("riffle-kms".into())
            .spawn(move || {
                while let Some(kms) = weak.upgrade() {
                    kms.reload();
                    drop(kms);
                    std::thread::sleep(RELOAD_EVERY);
                }
            })
            .map_err(|e| Error::internal(format!("cannot start the keyring watcher: {e}")))?;
        Ok(kms)
    }

    /// Whether keys are configured (a keyring, or another source).
    pub fn has_keyring(&self) -> bool {
        self.source.is_some()
    }

    /// Takes in the source's changes (a keyring file edited).
    pub fn reload(&self) {
        if let Some(source) = &self.source {
            source.reload();
        }
    }

    fn arn(&self, what: &str) -> String {
        format!("arn:aws:kms:{}:{}:{what}", self.region, self.account)
    }

    /// The key `key_id` names if it can be used now, else AWS's error.
    fn usable(&self, key_id: &str) -> Result<Usable, Error> {
        let Some(source) = &self.source else {
            return Err(Error::new(
                ErrorCode::KmsNotFound,
                format!(
                    "Key '{key_id}' does not exist: no KMS keyring is configured (start the server with --kms-keyring FILE)"
                ),
            ));
        };
        let mut found = source.find(key_id);
        if found.is_none()
            && let Some(alias) = managed_alias(key_id)
        {
            source.make_managed(alias).map_err(|e| {
                Error::new(
                    ErrorCode::KmsInvalidState,
                    format!("cannot make the AWS-managed key {alias}: {e}"),
                )
            })?;
            found = source.find(key_id);
        }
        let key = match found {
            Some(k) => k,
            None if key_id.contains("alias/") => {
                let alias = key_id.rsplit_once(':').map_or(key_id, |(_, a)| a);
                return Err(Error::new(
                    ErrorCode::KmsNotFound,
                    format!("Alias {} is not found.", self.arn(alias)),
                ));
            }
            None => {
                let id = key_id.rsplit_once("key/").map_or(key_id, |(_, id)| id);
                return Err(Error::new(
                    ErrorCode::KmsNotFound,
                    format!("Key '{}' does not exist", self.arn(&format!("key/{id}"))),
                ));
            }
        };
        let arn = self.arn(&format!("key/{}", key.id));
        match key.enabled {
            true => Ok(Usable { arn, id: key.id }),
            false => Err(Error::new(
                ErrorCode::KmsDisabled,
                format!("{arn} is disabled."),
            )),
        }
    }

    /// Checks that `key_id` names a key usable now (StartStreamEncryption's
    /// and CreateStream's check); returns its ARN.
    pub fn describe(&self, key_id: &str) -> Result<String, Error> {
        self.usable(key_id).map(|k| k.arn)
    }

    /// A new data key wrapped by `key_id`, for the resource `context` (an ARN).
    pub fn generate_data_key(&self, key_id: &str, context: &str) -> Result<StreamDataKey, Error> {
        let key = self.usable(key_id)?;
        let source = self.source.as_ref().expect("a usable key has a source");
        let data = keyring::Material::random().map_err(|e| Error::internal(e.to_string()))?;
        let wrapped = source
            .wrap(&key.id, &aad(&key.id, context), data.bytes())
            .map_err(Error::internal)?;
        Ok(StreamDataKey {
            kms_key: key.arn,
            wrapped: B64.encode(wrapped),
        })
    }

    /// The data key `stored` unwraps to, if its KMS key is usable now.
    /// `context` (the resource it was made for) is asked only to unwrap it.
    pub fn data_key(
        &self,
        stored: &StreamDataKey,
        context: impl FnOnce() -> String,
    ) -> Result<Arc<DataKey>, Error> {
        // The common case, on every put and read: an enabled key, its data
        // key unwrapped before.
        if self
            .source
            .as_ref()
            .and_then(|s| s.enabled(&stored.kms_key))
            .unwrap_or(false)
            && let Some(k) = self.data_keys.load().get(&stored.wrapped)
        {
            return Ok(k.clone());
        }
        let key = self.usable(&stored.kms_key)?;
        let source = self.source.as_ref().expect("a usable key has a source");
        let context = context();
        let wrapped = B64
            .decode(&stored.wrapped)
            .map_err(|e| Error::internal(format!("a stored data key is not base64: {e}")))?;
        let plain = source
            .unwrap(&key.id, &aad(&key.id, &context), &wrapped)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::KmsInvalidState,
                    format!(
                        "a data key of {context} does not unwrap under {}: the KMS key is not the one that wrapped it",
                        key.arn
                    ),
                )
            })?;
        let material: [u8; DATA_KEY_LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::internal("a data key is not 32 bytes"))?;
        let data = Arc::new(DataKey::new(&material)?);
        self.data_keys.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(stored.wrapped.clone(), data.clone());
            m
        });
        Ok(data)
    }
}

/// The associated data of a wrapped data key: the KMS key and the resource.
fn aad(key_id: &str, context: &str) -> Vec<u8> {
    format!("riffle-data-key\0{key_id}\0{context}").into_bytes()
}

/// The AWS-managed alias `key_id` names (`alias/aws/kinesis` or a well-formed
/// alias ARN of one), if it does: exactly what `Keyring::find` would look up.
fn managed_alias(key_id: &str) -> Option<&'static str> {
    let name = keyring::key_name(key_id)?;
    AWS_MANAGED.iter().copied().find(|a| *a == name)
}

/// What a stream's data keys are wrapped for: its identity in the catalog
/// (an id never comes back: a stream made again has another).
pub fn context(meta: &riffle_store::catalog::StreamMeta) -> String {
    format!("riffle:stream/{}/{}", meta.id, meta.name)
}

/// A stream's data keys for a read (`riffle_store::cipher::BatchKeys`): looked
/// up in the catalog as published when a batch needs one (a read that waits
/// for records sees a key added meanwhile), unwrapped by the KMS.
pub struct StreamKeys {
    pub kms: Arc<Kms>,
    pub view: Arc<arc_swap::ArcSwap<crate::control::CatalogView>>,
    /// The stream read (its name and incarnation).
    pub stream: Arc<crate::control::StreamInfo>,
}

impl riffle_store::cipher::BatchKeys for StreamKeys {
    fn data_key(&self, key_ref: u32) -> Result<Arc<DataKey>, Error> {
        let view = self.view.load();
        let meta = match view.streams.get(&self.stream.meta.name) {
            Some(s) if s.meta.id == self.stream.meta.id => &s.meta,
            // Deleted since: the keys it had when the read began.
            _ => &self.stream.meta,
        };
        let stored = meta.settings.data_key(key_ref).ok_or_else(|| {
            Error::new(
                ErrorCode::KmsNotFound,
                format!("stream {} has no data key {key_ref}", meta.name),
            )
        })?;
        self.kms.data_key(stored, || context(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kms_with(keys: &[(&str, KeyState)]) -> (Arc<Kms>, PathBuf, Arc<KeyringSource>) {
        let dir =
            std::env::temp_dir().join(format!("riffle-kms-{}", keyring::new_key_id().unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.json");
        Keyring::update(&path, None, true, |k| {
            for (alias, state) in keys {
                k.create_key(Some(alias), "")?;
                k.set_state(&format!("alias/{alias}"), *state)?;
            }
            Ok(((), true))
        })
        .unwrap();
        let source = Arc::new(KeyringSource::open(&path, None).unwrap());
        let kms = Kms::with_source(source.clone(), "111122223333", "eu-west-1").unwrap();
        (kms, path, source)
    }

    #[test]
    fn key_ids_resolve_in_every_aws_form_and_errors_are_aws_ones() {
        let (kms, _, _) = kms_with(&[("a", KeyState::Enabled), ("off", KeyState::Disabled)]);
        let arn = kms.describe("alias/a").unwrap();
        assert!(
            arn.starts_with("arn:aws:kms:eu-west-1:111122223333:key/"),
            "{arn}"
        );
        let id = arn.rsplit_once('/').unwrap().1;
        assert_eq!(kms.describe(id).unwrap(), arn);
        assert_eq!(kms.describe(&arn).unwrap(), arn);
        assert_eq!(
            kms.describe("arn:aws:kms:eu-west-1:111122223333:alias/a")
                .unwrap(),
            arn
        );
        let e = kms.describe("alias/off").unwrap_err();
        assert_eq!(e.code, ErrorCode::KmsDisabled);
        assert!(e.message.ends_with(" is disabled."), "{}", e.message);
        let e = kms.describe("alias/nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::KmsNotFound);
        assert_eq!(
            e.message,
            "Alias arn:aws:kms:eu-west-1:111122223333:alias/nope is not found."
        );
        let e = kms
            .describe("00000000-0000-4000-8000-000000000000")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::KmsNotFound);
        let e = Kms::unconfigured("1", "r").describe("alias/a").unwrap_err();
        assert_eq!(e.code, ErrorCode::KmsNotFound);
        assert!(e.message.contains("--kms-keyring"), "{}", e.message);
    }

    #[test]
    fn a_data_key_unwraps_only_for_its_context_and_while_its_key_is_enabled() {
        let (kms, path, source) = kms_with(&[("a", KeyState::Enabled)]);
        let stored = kms.generate_data_key("alias/a", "arn:stream/s").unwrap();
        let ctx = || "arn:stream/s".to_owned();
        let k1 = kms.data_key(&stored, ctx).unwrap();
        // The same key again (cached), and the same material: a frame one made
        // the other opens.
        let k2 = kms.data_key(&stored, ctx).unwrap();
        assert!(Arc::ptr_eq(&k1, &k2));
        let other = Kms::open(&path, None, "111122223333", "eu-west-1").unwrap();
        assert!(
            other
                .data_key(&stored, || "arn:stream/other".to_owned())
                .is_err()
        );
        let fresh = other.data_key(&stored, ctx).unwrap();
        let mut b = riffle_protocol::batch::BatchBuilder::new().build_to_append(&[
            riffle_protocol::batch::RecordIn {
                partition_key: "k",
                explicit_hash_key: None,
                data: b"d",
                arrival_ms: 0,
            },
        ]);
        b.set_key_ref(1);
        b.seal(0, 0);
        let mut frame = Vec::new();
        k1.encrypt(&b, &mut frame).unwrap();
        assert_eq!(fresh.decrypt(&frame).unwrap().as_slice(), b.as_slice());
        // Disabled in the file: refused at once after a reload, cache or not.
        Keyring::update(&path, None, true, |k| {
            k.set_state("alias/a", KeyState::Disabled)
                .map(|_| ((), true))
        })
        .unwrap();
        *source.stamp.lock().unwrap() = None;
        kms.reload();
        assert_eq!(
            kms.data_key(&stored, ctx).unwrap_err().code,
            ErrorCode::KmsDisabled
        );
        Keyring::update(&path, None, true, |k| {
            k.set_state("alias/a", KeyState::Enabled)
                .map(|_| ((), true))
        })
        .unwrap();
        *source.stamp.lock().unwrap() = None;
        kms.reload();
        assert!(kms.data_key(&stored, ctx).is_ok());
    }

    #[test]
    fn aws_managed_keys_are_made_on_first_use() {
        let (kms, path, _) = kms_with(&[]);
        let arn = kms.describe("alias/aws/kinesis").unwrap();
        assert_eq!(kms.describe("alias/aws/kinesis").unwrap(), arn, "made once");
        let ring = Keyring::load(&path, None).unwrap();
        assert_eq!(ring.keys.len(), 1);
        assert_eq!(ring.keys[0].aliases, ["alias/aws/kinesis"]);
        assert!(kms.describe("alias/aws/other").is_err());
    }
}
