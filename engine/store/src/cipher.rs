//! Encryption at rest of a shard's batches: a stream's data keys and the
//! encrypted frame a batch is written to its segment as.
//!
//! A data key is an AES-256-GCM key, made and wrapped by the KMS (the engine's
//! `kms` module); the store only uses it. A batch of an encrypted stream is
//! sealed in memory as usual, with its header's `key_ref` naming the data key,
//! and written as a frame:
//!
//! ```text
//!  0  the batch's header, flags | FLAG_ENCRYPTED, length = the frame's, crc over the frame
//! 48  nonce              [u8; 12]
//! 60  payload            the batch's payload, encrypted
//!  …  tag                [u8; 16]
//! ```
//!
//! The frame's header (crc field zeroed) is the associated data, so a frame
//! cannot be replayed at another offset, under another key reference or with
//! another record count. The crc still says whether the bytes on disk are
//! damaged (recovery has no key); the tag says they are the server's.
//!
//! Nonces: a random 32-bit prefix and a 64-bit counter with a random start,
//! both drawn when the data key is loaded, the counter stepped per frame: unique
//! within a load, and two loads of one key (each start of the server loads it
//! again) collide only with negligible probability: 96 random bits per load.
//!
//! The associated data binds a frame to its offset, count and key reference,
//! not to its shard: someone who can write the disk could move frames between
//! the shards of one stream (or delete them); encryption at rest keeps the
//! records from someone who can read it.

use std::sync::atomic::{AtomicU64, Ordering};

use riffle_protocol::batch::{
    self, BatchHeader, ENCRYPTION_OVERHEAD, FLAG_ENCRYPTED, ValidBatch, batch_crc,
};
use riffle_protocol::limits::BATCH_HEADER_SIZE;
use riffle_protocol::{Error, ErrorCode};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rkyv::util::AlignedVec;

/// The length of a data key's material.
pub const DATA_KEY_LEN: usize = 32;

/// A stream's data key, ready to encrypt and decrypt batches.
pub struct DataKey {
    key: LessSafeKey,
    nonce_prefix: [u8; 4],
    counter: AtomicU64,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn new(material: &[u8; DATA_KEY_LEN]) -> Result<DataKey, Error> {
        let key = UnboundKey::new(&AES_256_GCM, material)
            .map_err(|_| Error::internal("cannot load an AES-256-GCM data key"))?;
        let mut start = [0u8; 12];
        SystemRandom::new()
            .fill(&mut start)
            .map_err(|_| Error::internal("the system's random source failed"))?;
        Ok(DataKey {
            key: LessSafeKey::new(key),
            nonce_prefix: start[..4].try_into().expect("4 bytes"),
            counter: AtomicU64::new(u64::from_le_bytes(start[4..].try_into().expect("8 bytes"))),
        })
    }

    fn next_nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..4].copy_from_slice(&self.nonce_prefix);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        nonce[4..].copy_from_slice(&n.to_le_bytes());
        nonce
    }

    /// Writes the frame of `sealed` (a sealed batch, its `key_ref` set) into
    /// `out`, which is cleared first.
    pub fn encrypt(&self, sealed: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let header = BatchHeader::parse(sealed).map_err(|e| Error::internal(e.to_string()))?;
        let plain_len = header.length as usize;
        let frame_len = plain_len + ENCRYPTION_OVERHEAD;
        let framed = BatchHeader {
            flags: header.flags | FLAG_ENCRYPTED,
            length: u32::try_from(frame_len)
                .map_err(|_| Error::internal("an encrypted batch is shorter than 4 GiB"))?,
            crc: 0,
            ..header
        };
        out.clear();
        out.reserve(frame_len);
        out.resize(BATCH_HEADER_SIZE, 0);
        framed.write(&mut out[..BATCH_HEADER_SIZE]);
        let aad: [u8; BATCH_HEADER_SIZE] = out[..].try_into().expect("a header");
        let nonce = self.next_nonce();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed[BATCH_HEADER_SIZE..plain_len]);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[BATCH_HEADER_SIZE + NONCE_LEN..],
            )
            .map_err(|_| Error::internal("cannot encrypt a batch"))?;
        out.extend_from_slice(tag.as_ref());
        let crc = batch_crc(out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// The batch an encrypted frame holds, authenticated and checked (the
    /// caller checked the frame's crc: `batch::verify_stored`). The batch keeps
    /// its `key_ref`; its flags lose [`FLAG_ENCRYPTED`].
    pub fn decrypt(&self, frame: &[u8]) -> Result<ValidBatch, Error> {
        let header = BatchHeader::parse(frame).map_err(|e| Error::internal(e.to_string()))?;
        let frame_len = header.length as usize;
        if !header.is_encrypted()
            || frame_len > frame.len()
            || frame_len <= BATCH_HEADER_SIZE + ENCRYPTION_OVERHEAD
        {
            return Err(Error::internal(format!(
                "not an encrypted frame: flags {:#06x}, {frame_len} of {} bytes",
                header.flags,
                frame.len()
            )));
        }
        let mut aad = [0u8; BATCH_HEADER_SIZE];
        aad.copy_from_slice(&frame[..BATCH_HEADER_SIZE]);
        aad[12..16].fill(0);
        let nonce: [u8; NONCE_LEN] = frame[BATCH_HEADER_SIZE..BATCH_HEADER_SIZE + NONCE_LEN]
            .try_into()
            .expect("12 bytes");
        let sealed = &frame[BATCH_HEADER_SIZE + NONCE_LEN..frame_len];
        let plain_len = frame_len - ENCRYPTION_OVERHEAD;
        let mut out = AlignedVec::<16>::with_capacity(BATCH_HEADER_SIZE + sealed.len());
        out.resize(BATCH_HEADER_SIZE, 0);
        out.extend_from_slice(sealed);
        self.key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[BATCH_HEADER_SIZE..],
            )
            .map_err(|_| {
                Error::internal(format!(
                    "the batch at offset {} does not authenticate under its data key {}",
                    header.base_offset, header.key_ref
                ))
            })?;
        out.resize(plain_len, 0);
        let plain = BatchHeader {
            flags: header.flags & !FLAG_ENCRYPTED,
            length: plain_len as u32,
            crc: 0,
            ..header
        };
        plain.write(&mut out[..BATCH_HEADER_SIZE]);
        let crc = batch_crc(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        ValidBatch::verified(out).map_err(|e| {
            Error::internal(format!(
                "the batch at offset {} decrypts to no valid batch: {e}",
                header.base_offset
            ))
        })
    }
}

/// What a read needs to serve an encrypted stream's batches: its data keys,
/// by the `key_ref` batches carry, each usable only while its KMS key is.
pub trait BatchKeys {
    /// The data key `key_ref` names, or the KMS's refusal (a disabled or
    /// missing key: `ErrorCode::Kms*`).
    fn data_key(&self, key_ref: u32) -> Result<std::sync::Arc<DataKey>, Error>;
}

/// Decrypts an encrypted frame with the data key its header names.
pub fn open(keys: Option<&dyn BatchKeys>, frame: &[u8]) -> Result<ValidBatch, Error> {
    let header = BatchHeader::parse(frame).map_err(|e| Error::internal(e.to_string()))?;
    no_keys(keys, header.key_ref)?
        .data_key(header.key_ref)?
        .decrypt(frame)
}

/// Whether a batch written under `key_ref` may be served (its key usable now),
/// as the KMS says; a batch in the clear (0) always may.
pub fn check(keys: Option<&dyn BatchKeys>, key_ref: u32) -> Result<(), Error> {
    if key_ref == 0 {
        return Ok(());
    }
    no_keys(keys, key_ref)?.data_key(key_ref).map(|_| ())
}

fn no_keys(keys: Option<&dyn BatchKeys>, key_ref: u32) -> Result<&dyn BatchKeys, Error> {
    keys.ok_or_else(|| {
        Error::new(
            ErrorCode::KmsNotFound,
            format!(
                "a batch is encrypted under data key {key_ref} and no key was given to read it"
            ),
        )
    })
}

/// Whether `bytes` start with an encrypted frame (its header parses and says so).
pub fn is_encrypted(bytes: &[u8]) -> bool {
    batch::BatchHeader::parse(bytes).is_ok_and(|h| h.is_encrypted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_protocol::batch::{BatchBuilder, RecordIn, verify_stored};

    fn sealed(key_ref: u32) -> ValidBatch {
        let mut b = BatchBuilder::new().build_to_append(&[
            RecordIn {
                partition_key: "k",
                explicit_hash_key: None,
                data: b"a secret worth keeping",
                arrival_ms: 0,
            },
            RecordIn {
                partition_key: "k2",
                explicit_hash_key: Some(9u128.to_le_bytes()),
                data: &[7u8; 300],
                arrival_ms: 0,
            },
        ]);
        b.set_key_ref(key_ref);
        b.seal(42, 1_700_000_000_000);
        b
    }

    fn key(byte: u8) -> DataKey {
        DataKey::new(&[byte; DATA_KEY_LEN]).unwrap()
    }

    #[test]
    fn a_frame_decrypts_to_the_batch_and_hides_its_payload() {
        let batch = sealed(3);
        let k = key(1);
        let mut frame = Vec::new();
        k.encrypt(&batch, &mut frame).unwrap();
        assert_eq!(frame.len(), batch.len() + ENCRYPTION_OVERHEAD);
        let h = verify_stored(&frame).unwrap();
        assert!(h.is_encrypted());
        assert_eq!((h.base_offset, h.record_count, h.key_ref), (42, 2, 3));
        assert!(
            !frame
                .windows(16)
                .any(|w| b"a secret worth keeping".starts_with(w)),
            "plaintext in the frame"
        );
        assert!(
            batch::verify(&frame).is_err(),
            "no archive check accepts a frame"
        );
        let back = k.decrypt(&frame).unwrap();
        assert_eq!(
            back.as_slice(),
            batch.as_slice(),
            "the same batch, byte for byte"
        );
        // Each frame gets its own nonce.
        let mut again = Vec::new();
        k.encrypt(&batch, &mut again).unwrap();
        assert_ne!(frame, again);
    }

    #[test]
    fn a_frame_changed_anywhere_or_under_another_key_is_refused() {
        let batch = sealed(1);
        let k = key(1);
        let mut frame = Vec::new();
        k.encrypt(&batch, &mut frame).unwrap();
        assert!(key(2).decrypt(&frame).is_err(), "another key");
        for at in 0..frame.len() {
            if (12..16).contains(&at) {
                continue; // the crc is not authenticated: the read checks it
            }
            let mut bad = frame.clone();
            bad[at] ^= 0x01;
            assert!(k.decrypt(&bad).is_err(), "a flip at byte {at} was accepted");
        }
        for cut in 0..frame.len() {
            assert!(k.decrypt(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn the_scan_accepts_only_frames_the_server_could_write() {
        let k = key(1);
        let mut frame = Vec::new();
        k.encrypt(&sealed(1), &mut frame).unwrap();
        assert!(verify_stored(&frame).is_ok());
        // A frame claiming key 0 (the clear) is not one the server writes.
        let mut zero = frame.clone();
        zero[28..32].fill(0);
        let crc = batch_crc(&zero);
        zero[12..16].copy_from_slice(&crc.to_le_bytes());
        assert!(verify_stored(&zero).is_err());
        // A damaged frame fails its crc.
        let mut bad = frame.clone();
        bad[70] ^= 1;
        assert!(verify_stored(&bad).is_err());
    }

    #[test]
    fn a_client_batch_with_a_key_reference_or_flag_is_refused() {
        let limits = riffle_protocol::Limits::default();
        let mut b = BatchBuilder::new().build_to_append(&[RecordIn {
            partition_key: "k",
            explicit_hash_key: None,
            data: b"x",
            arrival_ms: 0,
        }]);
        b.set_key_ref(5);
        b.seal(0, 0);
        let mut bytes = AlignedVec::<16>::new();
        bytes.extend_from_slice(&b);
        // A reader may see it (a served batch keeps its key reference)...
        assert!(batch::validate(&bytes, &limits).is_ok());
        // ...but the server takes no such batch from a client.
        assert!(matches!(
            ValidBatch::validate(bytes, &limits),
            Err(batch::BatchError::Reserved { key_ref: 5, .. })
        ));
    }
}
