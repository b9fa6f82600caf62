//! Record batches: the unit Riffle appends, stores and serves.
//!
//! The same bytes are written to a segment file and later handed to readers. What is
//! checked where (a crc proves the bytes were not damaged, not that we made them: a
//! client can put a valid-crc "batch" inside its record data):
//! - [`validate`]: a batch from outside (client or wire): crc, checked rkyv access
//!   (bounds, UTF-8, pointers), limits per record. [`ValidBatch::validate`] keeps
//!   the proof with the owned bytes.
//! - [`verify`]: bytes read back from disk or the wire: crc and checked rkyv access,
//!   no limits. Safe on any bytes; the recovery scan calls it at every 8-aligned
//!   offset, including inside record data.
//! - [`ValidBatch::view`], [`ValidBatch::seal`]: no check; the type is the proof
//!   (built by [`BatchBuilder`] or validated, changed since only by sealing).
//! - [`reopen_verified`] and [`seal`]: `unsafe fn`s for callers that hold such a
//!   proof in another form (a read span re-opening the batch it verified).
//!
//! Layout (all integers little-endian; offsets in bytes):
//! ```text
//!  0  magic             [u8; 4]  b"RFLB"
//!  4  version           u16      1
//!  6  flags             u16      0, or FLAG_ENCRYPTED in a segment (below)
//!  8  length            u32      header + payload, excluding trailing padding
//! 12  crc32c            u32      over bytes [0, 12) ++ [16, length)
//! 16  base_offset       u64      offset of the first record in its shard
//! 24  record_count      u32
//! 28  key_ref           u32      0, or the stream's data key the batch is written under
//! 32  first_arrival_ms  i64      arrival time of the first record (ms since epoch)
//! 40  last_arrival_ms   i64      arrival time of the last record
//! 48  payload           rkyv 0.8 archive whose root is ArchivedVec<ArchivedRecordIn>
//! ```
//! Inside a segment each batch starts at a multiple of [`BATCH_ALIGNMENT`]; the gap
//! after `length` is zero padding.
//!
//! A batch of an encrypted stream is kept in memory as above with its `key_ref`
//! set, and written to its segment as a frame with [`FLAG_ENCRYPTED`] whose
//! payload is a nonce, the encrypted payload and a tag (`riffle_store::cipher`).
//! Only [`verify_stored`] and the scan accept such a frame; every check of a
//! record archive ([`validate`], [`verify`]) refuses it, and
//! [`ValidBatch::validate`] (a client's batch entering the server) refuses any
//! flag or key reference.

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::vec::ArchivedVec;
use rkyv::with::InlineAsBox;

use crate::le::{u16_at, u32_at, u64_at};
use crate::limits::{BATCH_ALIGNMENT, BATCH_HEADER_SIZE, Limits};

pub const BATCH_MAGIC: [u8; 4] = *b"RFLB";
pub const BATCH_VERSION: u16 = 1;
/// A segment frame whose payload is encrypted (see the module's header).
pub const FLAG_ENCRYPTED: u16 = 1;

/// One record as given to the encoder. Archived as [`ArchivedRecordIn`].
#[derive(rkyv::Archive, rkyv::Serialize, Clone, Copy, Debug)]
pub struct RecordIn<'a> {
    #[rkyv(with = InlineAsBox)]
    pub partition_key: &'a str,
    /// The explicit hash key as a little-endian u128, when the producer gave one.
    pub explicit_hash_key: Option<[u8; 16]>,
    #[rkyv(with = InlineAsBox)]
    pub data: &'a [u8],
    /// Server arrival time in ms since the epoch; set when the batch is sealed.
    pub arrival_ms: i64,
}

/// The archived form of a record, as readers see it.
pub type ArchivedRecord = ArchivedRecordIn<'static>;

impl ArchivedRecord {
    pub fn partition_key(&self) -> &str {
        &self.partition_key
    }
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    pub fn arrival_ms(&self) -> i64 {
        self.arrival_ms.to_native()
    }
    pub fn explicit_hash_key(&self) -> Option<u128> {
        self.explicit_hash_key
            .as_ref()
            .map(|k| u128::from_le_bytes(*k))
    }
}

/// Why a batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch is truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("bad batch magic {0:?}")]
    BadMagic([u8; 4]),
    #[error("unsupported batch version {0}")]
    BadVersion(u16),
    #[error("batch length {length} is invalid (buffer has {have} bytes, maximum {max})")]
    BadLength {
        length: u32,
        have: usize,
        max: usize,
    },
    #[error("batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("batch payload is not a valid record archive: {0}")]
    BadArchive(String),
    #[error("batch header says {header} records, archive holds {archive}")]
    CountMismatch { header: u32, archive: u32 },
    #[error("batch holds no records")]
    Empty,
    #[error("batch holds {count} records, more than the limit {max}")]
    TooManyRecords { count: u32, max: u32 },
    #[error("record {index}: {message}")]
    BadRecord { index: u32, message: String },
    #[error("batch payload is not aligned to 8 bytes in memory")]
    Misaligned,
    #[error("batch flags {flags:#06x} and key reference {key_ref} are not allowed here")]
    Reserved { flags: u16, key_ref: u32 },
}

/// The fixed header at the start of every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub flags: u16,
    pub length: u32,
    pub crc: u32,
    pub base_offset: u64,
    pub record_count: u32,
    /// The stream's data key the batch is written under; 0 when in the clear.
    pub key_ref: u32,
    pub first_arrival_ms: i64,
    pub last_arrival_ms: i64,
}

impl BatchHeader {
    /// Parses a header without checking the crc. Fails on short input, bad magic
    /// or version, or a length shorter than the header.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < BATCH_HEADER_SIZE {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: BATCH_HEADER_SIZE,
            });
        }
        let magic: [u8; 4] = bytes[0..4].try_into().unwrap();
        if magic != BATCH_MAGIC {
            return Err(BatchError::BadMagic(magic));
        }
        let version = u16_at(bytes, 4);
        if version != BATCH_VERSION {
            return Err(BatchError::BadVersion(version));
        }
        let header = BatchHeader {
            flags: u16_at(bytes, 6),
            length: u32_at(bytes, 8),
            crc: u32_at(bytes, 12),
            base_offset: u64_at(bytes, 16),
            record_count: u32_at(bytes, 24),
            key_ref: u32_at(bytes, 28),
            first_arrival_ms: u64_at(bytes, 32) as i64,
            last_arrival_ms: u64_at(bytes, 40) as i64,
        };
        if (header.length as usize) < BATCH_HEADER_SIZE {
            return Err(BatchError::BadLength {
                length: header.length,
                have: bytes.len(),
                max: 0,
            });
        }
        Ok(header)
    }

    /// Writes this header into the first [`BATCH_HEADER_SIZE`] bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&BATCH_MAGIC);
        out[4..6].copy_from_slice(&BATCH_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..12].copy_from_slice(&self.length.to_le_bytes());
        out[12..16].copy_from_slice(&self.crc.to_le_bytes());
        out[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        out[24..28].copy_from_slice(&self.record_count.to_le_bytes());
        out[28..32].copy_from_slice(&self.key_ref.to_le_bytes());
        out[32..40].copy_from_slice(&self.first_arrival_ms.to_le_bytes());
        out[40..48].copy_from_slice(&self.last_arrival_ms.to_le_bytes());
    }

    /// The offset one past the last record of this batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count as u64
    }

    /// Bytes this batch occupies in a segment, padding included.
    pub fn padded_length(&self) -> usize {
        padded(self.length as usize)
    }

    /// Whether this is an encrypted segment frame ([`FLAG_ENCRYPTED`]).
    pub fn is_encrypted(&self) -> bool {
        self.flags & FLAG_ENCRYPTED != 0
    }
}

/// Rounds a batch length up to the batch alignment.
pub fn padded(length: usize) -> usize {
    length.div_ceil(BATCH_ALIGNMENT) * BATCH_ALIGNMENT
}

/// The crc32c a batch stores: over the header before the crc field and everything
/// after it up to `length`.
pub fn batch_crc(bytes: &[u8]) -> u32 {
    let length = u32_at(bytes, 8) as usize;
    crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), &bytes[16..length])
}

/// Encodes records into batches. Reuses its buffer between batches.
#[derive(Default)]
pub struct BatchBuilder {}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder::default()
    }

    /// Encodes `records` as one batch with `base_offset` 0 and arrival time 0; the
    /// shard assigns both when it appends ([`seal`]). Does not check limits: use
    /// [`validate`] on anything that came from outside.
    pub fn encode(&mut self, records: &[RecordIn<'_>]) -> AlignedVec<16> {
        let mut out = self.archive(records);
        let crc = batch_crc(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The batch of `records` with its crc left 0.
    fn archive(&mut self, records: &[RecordIn<'_>]) -> AlignedVec<16> {
        let mut out = AlignedVec::<16>::with_capacity(
            BATCH_HEADER_SIZE
                + records
                    .iter()
                    .map(|r| r.partition_key.len() + r.data.len() + 64)
                    .sum::<usize>()
                + 16,
        );
        out.resize(BATCH_HEADER_SIZE, 0);
        let scratch: Vec<RecordIn<'_>> = records.to_vec();
        let result = rkyv::api::high::to_bytes_in::<_, rancor::Error>(&scratch, out);
        let mut out = result.expect("serializing into memory cannot fail");
        // The header's length must describe the whole archive (readers slice by it).
        let length = u32::try_from(out.len()).expect("a batch is shorter than 4 GiB");
        let header = BatchHeader {
            flags: 0,
            length,
            crc: 0,
            base_offset: 0,
            record_count: records.len() as u32,
            key_ref: 0,
            first_arrival_ms: 0,
            last_arrival_ms: 0,
        };
        header.write(&mut out[..BATCH_HEADER_SIZE]);
        out
    }

    /// [`BatchBuilder::encode`], kept as a [`ValidBatch`] (the server's own batches,
    /// and tests): rkyv serialized these records, so the archive is valid.
    pub fn build(&mut self, records: &[RecordIn<'_>]) -> ValidBatch {
        ValidBatch {
            bytes: self.encode(records),
        }
    }

    /// [`BatchBuilder::build`] of a batch the server appends, with its crc
    /// left 0: the shard's log writes it when it seals the batch (offsets and
    /// arrival times change the bytes anyway), so it is computed once. Not for
    /// a batch anything reads before it is sealed.
    pub fn build_to_append(&mut self, records: &[RecordIn<'_>]) -> ValidBatch {
        ValidBatch {
            bytes: self.archive(records),
        }
    }
}

/// An owned batch whose record archive is known to be valid: it passed [`validate`]
/// ([`ValidBatch::validate`]) or was built by [`BatchBuilder::build`], and has been
/// changed since only by [`ValidBatch::seal`] (which writes arrival times and
/// offsets, fields any value of is valid). The buffer is 16-aligned, so the payload
/// (at byte 48) is 8-aligned. This type is the precondition of the unchecked
/// accesses on the append path: the shard log takes only `ValidBatch`es. A clone
/// is a byte-identical copy in a new 16-aligned buffer: valid too.
#[derive(Clone)]
pub struct ValidBatch {
    bytes: AlignedVec<16>,
}

impl ValidBatch {
    /// Checks a batch from outside the server ([`validate`]) and keeps it. A
    /// client's batch has no flag and no key reference: those are the
    /// server's to set (a served batch may carry the key reference it was
    /// written under; a client reading it checks it with [`validate`]).
    pub fn validate(bytes: AlignedVec<16>, limits: &Limits) -> Result<ValidBatch, BatchError> {
        let header = validate(&bytes, limits)?.header;
        if header.flags != 0 || header.key_ref != 0 {
            return Err(BatchError::Reserved {
                flags: header.flags,
                key_ref: header.key_ref,
            });
        }
        Ok(ValidBatch { bytes })
    }

    /// Checks a batch the server made and got back in another form (decrypted
    /// from its segment): [`verify`], no limits. `bytes` holds the batch alone
    /// (no padding after `length`).
    pub fn verified(bytes: AlignedVec<16>) -> Result<ValidBatch, BatchError> {
        let length = verify(&bytes)?.header.length as usize;
        if length != bytes.len() {
            return Err(BatchError::BadLength {
                length: length as u32,
                have: bytes.len(),
                max: bytes.len(),
            });
        }
        Ok(ValidBatch { bytes })
    }

    /// Sets the data key the batch is to be written under (0: in the clear).
    /// Call before [`ValidBatch::seal`], which writes the crc over it.
    pub fn set_key_ref(&mut self, key_ref: u32) {
        self.bytes[28..32].copy_from_slice(&key_ref.to_le_bytes());
    }

    /// The batch, without checking it again.
    pub fn view(&self) -> BatchView<'_> {
        // SAFETY: the type's invariant: validated or built by `BatchBuilder`, then
        // changed only by `seal`, in a 16-aligned buffer.
        unsafe { reopen_verified(&self.bytes) }
    }

    /// [`seal`]: assigns the batch its base offset and arrival time.
    pub fn seal(&mut self, base_offset: u64, arrival_ms: i64) {
        // SAFETY: the type's invariant (see `view`); sealing keeps it.
        unsafe { seal(&mut self.bytes, base_offset, arrival_ms) }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_inner(self) -> AlignedVec<16> {
        self.bytes
    }
}

impl std::ops::Deref for ValidBatch {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for ValidBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidBatch")
            .field("header", &self.view().header)
            .finish()
    }
}

/// A batch whose header and archive have been checked. Borrowed from its buffer.
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    pub header: BatchHeader,
    bytes: &'a [u8],
    records: &'a ArchivedVec<ArchivedRecord>,
}

impl<'a> BatchView<'a> {
    /// The batch's bytes (header and payload, no padding).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn records(&self) -> &'a [ArchivedRecord] {
        self.records.as_slice()
    }
    pub fn len(&self) -> usize {
        self.records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl std::fmt::Debug for BatchView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchView")
            .field("header", &self.header)
            .finish()
    }
}

fn check_frame(bytes: &[u8], length_max: usize) -> Result<(BatchHeader, &[u8]), BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let length = header.length as usize;
    if length > bytes.len() || length > length_max {
        return Err(BatchError::BadLength {
            length: header.length,
            have: bytes.len(),
            max: length_max,
        });
    }
    let bytes = &bytes[..length];
    let computed = batch_crc(bytes);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if !(bytes.as_ptr() as usize + BATCH_HEADER_SIZE).is_multiple_of(BATCH_ALIGNMENT) {
        return Err(BatchError::Misaligned);
    }
    Ok((header, bytes))
}

/// The checked view of a frame that passed [`check_frame`]: the whole rkyv archive
/// (bounds, UTF-8, pointers; an empty or garbage payload is refused) and the
/// header's record count. rkyv's low-level validator is enough: records hold
/// boxes, no shared pointers.
fn check_archive(header: BatchHeader, bytes: &[u8]) -> Result<BatchView<'_>, BatchError> {
    if header.is_encrypted() {
        return Err(BatchError::Reserved {
            flags: header.flags,
            key_ref: header.key_ref,
        });
    }
    let payload = &bytes[BATCH_HEADER_SIZE..];
    let records = rkyv::api::low::access::<ArchivedVec<ArchivedRecord>, rancor::Error>(payload)
        .map_err(|e| BatchError::BadArchive(e.to_string()))?;
    if records.len() as u64 != header.record_count as u64 {
        return Err(BatchError::CountMismatch {
            header: header.record_count,
            archive: records.len() as u32,
        });
    }
    Ok(BatchView {
        header,
        bytes,
        records,
    })
}

/// Checks a batch that came from outside the server: header, crc, the whole rkyv
/// archive (bounds, UTF-8, pointers), and every record against `limits`.
pub fn validate<'a>(bytes: &'a [u8], limits: &Limits) -> Result<BatchView<'a>, BatchError> {
    let (header, bytes) = check_frame(bytes, limits.batch_size_max())?;
    let view = check_archive(header, bytes)?;
    let records = view.records;
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    if header.record_count > limits.put_records_count_max {
        return Err(BatchError::TooManyRecords {
            count: header.record_count,
            max: limits.put_records_count_max,
        });
    }
    for (index, record) in records.iter().enumerate() {
        check_record(record.partition_key(), record.data().len(), limits).map_err(|message| {
            BatchError::BadRecord {
                index: index as u32,
                message,
            }
        })?;
    }
    Ok(view)
}

/// Checks one record's partition key and data size against `limits`, with the
/// message AWS would give.
pub fn check_record(partition_key: &str, data_len: usize, limits: &Limits) -> Result<(), String> {
    let max = limits.partition_key_chars_max as usize;
    // A key of 1..=max bytes has 1..=max characters: counted only if longer.
    let chars = match partition_key.len() {
        len @ 1.. if len <= max => len,
        _ => partition_key.chars().count(),
    };
    if chars == 0 || chars > max {
        return Err(format!(
            "partition key must be 1 to {} characters, got {chars}",
            limits.partition_key_chars_max
        ));
    }
    if data_len > limits.record_data_size_max as usize {
        return Err(format!(
            "record data is {data_len} bytes, more than the maximum {}",
            limits.record_data_size_max
        ));
    }
    Ok(())
}

/// Opens a batch read back from disk or received from the wire: header, crc and
/// the whole rkyv archive (checked access: bounds, UTF-8, pointers), but not the
/// limits of [`validate`] (they may have changed since it was stored). Safe on any
/// bytes: the recovery scan tries it at every 8-aligned offset of a segment,
/// including inside record data, where a client can have planted a valid-crc batch.
pub fn verify(bytes: &[u8]) -> Result<BatchView<'_>, BatchError> {
    let (header, bytes) = check_frame(bytes, u32::MAX as usize)?;
    check_archive(header, bytes)
}

/// Checks what a segment holds at a batch's place, as recovery scans it: an
/// encrypted frame by its crc and sizes (its archive cannot be read without its
/// key; reading it later authenticates it), anything else as [`verify`] does.
/// Returns the header.
pub fn verify_stored(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if !header.is_encrypted() {
        return verify(bytes).map(|v| v.header);
    }
    let (header, _) = check_frame(bytes, u32::MAX as usize)?;
    let least = BATCH_HEADER_SIZE + ENCRYPTION_OVERHEAD;
    if (header.length as usize) <= least || header.record_count == 0 || header.key_ref == 0 {
        return Err(BatchError::BadArchive(format!(
            "an encrypted frame of {} bytes, {} records, key {} is not one the server writes",
            header.length, header.record_count, header.key_ref
        )));
    }
    Ok(header)
}

/// What an encrypted frame adds to its batch: a 12-byte nonce before the
/// encrypted payload and a 16-byte tag after it.
pub const ENCRYPTION_OVERHEAD: usize = 12 + 16;

/// Re-opens a batch that already passed a checked access in this process, without
/// computing its crc or checking its archive again.
///
/// # Safety
/// `bytes` must start with a batch that passed [`verify`] or [`validate`] (or was
/// built by [`BatchBuilder::encode`]), has been changed since only by [`seal`], and
/// lies where it was checked, or is a byte-identical copy of one that is 8-byte
/// aligned after the header. Anything else is undefined behaviour: the archive is
/// not checked. A crc match is not enough: it proves the bytes were not damaged,
/// not that they hold a valid archive.
pub unsafe fn reopen_verified(bytes: &[u8]) -> BatchView<'_> {
    let header = BatchHeader::parse(bytes).expect("reopen_verified: the batch was verified");
    let bytes = &bytes[..header.length as usize];
    // SAFETY: the caller guarantees these bytes passed a checked access (valid
    // archive, alignment) or were built by the encoder, and changed only by `seal`.
    let records = unsafe {
        rkyv::access_unchecked::<ArchivedVec<ArchivedRecord>>(&bytes[BATCH_HEADER_SIZE..])
    };
    BatchView {
        header,
        bytes,
        records,
    }
}

/// Assigns a validated batch its place in a shard: base offset and arrival time,
/// written into the header and into every record, then re-computes the crc.
/// [`ValidBatch::seal`] is the safe form.
///
/// # Safety
/// The same as [`reopen_verified`]: `bytes` must start with a batch that passed
/// [`validate`] or [`verify`] or was built by [`BatchBuilder::encode`], changed
/// since only by `seal`, 8-byte aligned after the header. The archive is read
/// without checks to find the records' arrival times.
pub unsafe fn seal(bytes: &mut [u8], base_offset: u64, arrival_ms: i64) {
    let header = BatchHeader::parse(bytes).expect("seal: caller validated the batch");
    let length = header.length as usize;
    // Find where each record's arrival time lives, as byte positions in `bytes`.
    let (first, stride, count) = {
        // SAFETY: the caller guarantees the batch passed a checked access or was
        // built by the encoder (a valid archive, payload 8-aligned).
        let records = unsafe {
            rkyv::access_unchecked::<ArchivedVec<ArchivedRecord>>(&bytes[BATCH_HEADER_SIZE..length])
        };
        let base = bytes.as_ptr() as usize;
        match records.as_slice().first() {
            Some(r) => (
                (&r.arrival_ms as *const _ as usize) - base,
                std::mem::size_of::<ArchivedRecord>(),
                records.len(),
            ),
            None => (0, 0, 0),
        }
    };
    let when = arrival_ms.to_le_bytes();
    for i in 0..count {
        let at = first + i * stride;
        bytes[at..at + 8].copy_from_slice(&when);
    }
    let sealed = BatchHeader {
        base_offset,
        first_arrival_ms: arrival_ms,
        last_arrival_ms: arrival_ms,
        ..header
    };
    sealed.write(&mut bytes[..BATCH_HEADER_SIZE]);
    let crc = batch_crc(&bytes[..length]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_measured_in_characters() {
        let limits = Limits::default();
        let max = limits.partition_key_chars_max as usize;
        let ok = |key: &str| check_record(key, 1, &limits);
        assert!(ok("k").is_ok());
        assert!(ok(&"k".repeat(max)).is_ok());
        // Two bytes a character: twice the limit in bytes, still `max` characters.
        assert!(ok(&"é".repeat(max)).is_ok());
        let long = ok(&"é".repeat(max + 1)).unwrap_err();
        assert!(long.ends_with(&format!("got {}", max + 1)), "{long}");
        let long = ok(&"k".repeat(max + 1)).unwrap_err();
        assert!(long.ends_with(&format!("got {}", max + 1)), "{long}");
        assert!(ok("").unwrap_err().ends_with("got 0"));
    }

    fn sample() -> AlignedVec<16> {
        let records = [
            RecordIn {
                partition_key: "a",
                explicit_hash_key: None,
                data: b"hello",
                arrival_ms: 0,
            },
            RecordIn {
                partition_key: "key-2",
                explicit_hash_key: Some(7u128.to_le_bytes()),
                data: &[0u8; 300],
                arrival_ms: 0,
            },
        ];
        BatchBuilder::new().encode(&records)
    }

    #[test]
    fn encode_validate_round_trip() {
        let bytes = sample();
        let view = validate(&bytes, &Limits::default()).unwrap();
        assert_eq!(view.len(), 2);
        assert_eq!(view.records()[0].partition_key(), "a");
        assert_eq!(view.records()[0].data(), b"hello");
        assert_eq!(view.records()[1].explicit_hash_key(), Some(7));
        assert_eq!(view.records()[1].data().len(), 300);
    }

    #[test]
    fn seal_sets_offsets_and_times_and_keeps_crc_valid() {
        let mut batch = ValidBatch::validate(sample(), &Limits::default()).unwrap();
        batch.seal(1234, 1_700_000_000_123);
        assert_eq!(batch.view().header.base_offset, 1234);
        let bytes = batch.into_inner();
        let view = verify(&bytes).unwrap();
        assert_eq!(view.header.base_offset, 1234);
        assert_eq!(view.header.next_offset(), 1236);
        assert_eq!(view.header.first_arrival_ms, 1_700_000_000_123);
        for r in view.records() {
            assert_eq!(r.arrival_ms(), 1_700_000_000_123);
        }
        validate(&bytes, &Limits::default()).unwrap();
    }

    #[test]
    fn a_batch_built_to_append_is_valid_once_sealed() {
        let records = [
            RecordIn {
                partition_key: "k1",
                explicit_hash_key: None,
                data: b"one",
                arrival_ms: 0,
            },
            RecordIn {
                partition_key: "k2",
                explicit_hash_key: Some(7u128.to_le_bytes()),
                data: b"two",
                arrival_ms: 0,
            },
        ];
        let mut batch = BatchBuilder::new().build_to_append(&records);
        // Its crc is left for the seal to write.
        assert!(verify(batch.as_slice()).is_err());
        batch.seal(40, 1_700_000_000_000);
        let view = verify(batch.as_slice()).unwrap();
        assert_eq!(view.header.base_offset, 40);
        let built = BatchBuilder::new().build(&records);
        let mut sealed = built.clone();
        sealed.seal(40, 1_700_000_000_000);
        assert_eq!(
            batch.as_slice(),
            sealed.as_slice(),
            "the same bytes once sealed"
        );
    }

    #[test]
    fn header_golden_bytes() {
        let h = BatchHeader {
            flags: 0,
            length: 0x0102_0304,
            crc: 0xAABB_CCDD,
            base_offset: 0x1122_3344_5566_7788,
            record_count: 3,
            key_ref: 0,
            first_arrival_ms: 1,
            last_arrival_ms: 2,
        };
        let mut out = [0u8; BATCH_HEADER_SIZE];
        h.write(&mut out);
        let expected: [u8; BATCH_HEADER_SIZE] = [
            b'R', b'F', b'L', b'B', 1, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0xDD, 0xCC, 0xBB,
            0xAA, //
            0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 3, 0, 0, 0, 0, 0, 0, 0, //
            1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(out, expected);
        assert_eq!(BatchHeader::parse(&out).unwrap(), h);
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_refused() {
        let bytes = sample();
        let limits = Limits::default();
        for cut in 0..bytes.len() {
            let mut buf = AlignedVec::<16>::new();
            buf.extend_from_slice(&bytes[..cut]);
            assert!(validate(&buf, &limits).is_err(), "truncated at {cut}");
        }
        for at in 0..bytes.len() {
            let mut buf = AlignedVec::<16>::new();
            buf.extend_from_slice(&bytes);
            buf[at] ^= 0x10;
            assert!(validate(&buf, &limits).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn limits_are_enforced_per_record() {
        let limits = Limits {
            record_data_size_max: 4,
            ..Limits::default()
        };
        let bytes = sample();
        assert!(matches!(
            validate(&bytes, &limits),
            Err(BatchError::BadRecord { index: 0, .. })
        ));
        let long_key = "k".repeat(257);
        let records = [RecordIn {
            partition_key: &long_key,
            explicit_hash_key: None,
            data: b"",
            arrival_ms: 0,
        }];
        let bytes = BatchBuilder::new().encode(&records);
        assert!(matches!(
            validate(&bytes, &Limits::default()),
            Err(BatchError::BadRecord { .. })
        ));
        let empty: [RecordIn<'_>; 0] = [];
        let bytes = BatchBuilder::new().encode(&empty);
        assert_eq!(
            validate(&bytes, &Limits::default()).unwrap_err(),
            BatchError::Empty
        );
    }

    /// A batch with this record count and payload, its length and crc made right:
    /// what a client can plant inside its record data (the crc proves nothing).
    fn forge(record_count: u32, payload: &[u8]) -> AlignedVec<16> {
        let mut out = AlignedVec::<16>::new();
        out.resize(BATCH_HEADER_SIZE, 0);
        out.extend_from_slice(payload);
        let header = BatchHeader {
            flags: 0,
            length: out.len() as u32,
            crc: 0,
            base_offset: 7,
            record_count,
            key_ref: 0,
            first_arrival_ms: 1,
            last_arrival_ms: 1,
        };
        header.write(&mut out);
        recrc(&mut out);
        out
    }

    fn recrc(bytes: &mut [u8]) {
        let crc = batch_crc(bytes);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    /// An archived `Vec` root: a relative pointer (from the root's own position)
    /// and a length, as rkyv writes it at the end of the payload.
    fn root(offset: i32, len: u32) -> [u8; 8] {
        let mut out = [0; 8];
        out[..4].copy_from_slice(&offset.to_le_bytes());
        out[4..].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// The offset of `field` inside `bytes`.
    fn offset_in<T>(bytes: &[u8], field: &T) -> usize {
        field as *const T as usize - bytes.as_ptr() as usize
    }

    /// Forged batches whose crc is right but whose archive is not ours: the safe
    /// API refuses each, also with more bytes after it in the buffer (as inside a
    /// segment), instead of reading the archive unchecked. Before checked access a
    /// header-only batch reached `access_unchecked` on an empty slice.
    #[test]
    fn forged_batches_with_a_valid_crc_are_refused() {
        let mut cases: Vec<(String, AlignedVec<16>)> = vec![
            ("header only, 0 records".into(), forge(0, &[])),
            ("header only, 1 record".into(), forge(1, &[])),
            ("root before the buffer".into(), forge(3, &root(-4096, 3))),
            ("root past the buffer".into(), forge(3, &root(4096, 3))),
            ("root into the header".into(), forge(2, &root(-40, 2))),
            (
                "root of 2^31 records".into(),
                forge(1 << 31, &root(-8, 1 << 31)),
            ),
        ];
        // A batch we built, then a record's key made invalid UTF-8, and a record's
        // data pointer sent out of the buffer, crc made right again.
        let good = sample();
        let view = verify(&good).unwrap();
        let key_at = offset_in(&good, &view.records()[0].partition_key().as_bytes()[0]);
        let data_box_at = offset_in(&good, &view.records()[1].data);
        let mut bad_key = good.clone();
        bad_key[key_at] = 0xff;
        recrc(&mut bad_key);
        cases.push(("key not UTF-8".into(), bad_key));
        let mut bad_data = good.clone();
        bad_data[data_box_at..data_box_at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
        recrc(&mut bad_data);
        cases.push(("data pointer out of the buffer".into(), bad_data));
        // Seeded garbage payloads, their record count matching the root's length (at
        // least 1: an empty `Vec` with any in-bounds pointer is a valid archive).
        for seed in 0..500u64 {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let len = rng.random_range(1..=40) * 8;
            let mut payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                // A small root offset: it lands inside the payload more often.
                let off = -(rng.random_range(0..len as i32 + 48) & !7);
                payload[len - 8..len - 4].copy_from_slice(&off.to_le_bytes());
            }
            let count = u32::from_le_bytes(payload[len - 4..].try_into().unwrap()) % 64 + 1;
            payload[len - 4..].copy_from_slice(&count.to_le_bytes());
            cases.push((
                format!("garbage payload, seed {seed}"),
                forge(count, &payload),
            ));
        }

        let limits = Limits::default();
        for (name, forged) in cases {
            let header = BatchHeader::parse(&forged).unwrap();
            assert_eq!(batch_crc(&forged), header.crc, "{name}: the crc is right");
            for tail in [0usize, 8, 64] {
                let mut buf = forged.clone();
                // What follows in a segment: here a plausible empty `Vec` root.
                buf.extend_from_slice(&root(0, 0).repeat(tail / 8));
                let got = verify(&buf);
                assert!(
                    matches!(
                        got,
                        Err(BatchError::BadArchive(_) | BatchError::CountMismatch { .. })
                    ),
                    "{name}, {tail} bytes after: verify gave {got:?}"
                );
                assert!(validate(&buf, &limits).is_err(), "{name}: validate");
                assert!(
                    ValidBatch::validate(buf, &limits).is_err(),
                    "{name}: ValidBatch"
                );
            }
        }
    }
}
