//! The one home of every size and count bound in Riffle. Each limit says why it
//! has its value; relations between them are asserted at compile time.

/// Bytes in a batch header (see `batch.rs`).
pub const BATCH_HEADER_SIZE: usize = 48;
/// Batches start on this boundary inside a segment so archived records stay aligned.
pub const BATCH_ALIGNMENT: usize = 8;
/// Direct I/O block: every write position and length is a multiple of it.
pub const DMA_ALIGNMENT: usize = 4096;

/// Per-request and per-record bounds. `Limits::default()` matches AWS Kinesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// AWS: a record's data blob is at most 1 MiB (UpdateMaxRecordSize raises it to 10 MiB).
    pub record_data_size_max: u32,
    /// AWS: partition keys are 1 to 256 Unicode characters.
    pub partition_key_chars_max: u32,
    /// AWS: PutRecords takes at most 500 records.
    pub put_records_count_max: u32,
    /// AWS: a PutRecords request is at most 10 MiB including partition keys.
    pub request_size_max: u32,
    /// AWS: GetRecords returns at most 10,000 records.
    pub get_records_count_max: u32,
    /// AWS: GetRecords returns at most 10 MiB.
    pub get_records_bytes_max: u32,
    /// AWS: shard iterators expire five minutes after they are issued.
    pub iterator_age_ms_max: u64,
    /// AWS: at most 500 shards per stream by default for provisioned streams.
    pub stream_shard_count_max: u32,
    /// AWS: stream names are 1 to 128 characters of [a-zA-Z0-9_.-].
    pub stream_name_chars_max: u32,
    /// A new stream keeps records this long (AWS's default, 24 hours).
    pub retention_hours_default: u32,
    /// Shortest retention the engine accepts. The SDK models allow 1 hour; the AWS
    /// service itself refuses less than 24 through its API, which the HTTP gateway
    /// enforces, so only the native interfaces may go lower (handy for tests).
    pub retention_hours_min: u32,
    /// AWS: the longest retention is 365 days.
    pub retention_hours_max: u32,
    /// AWS: at most 50 tags per stream, keys of 1-128 and values of 0-256 characters.
    pub tags_per_stream_max: u32,
    pub tag_key_chars_max: u32,
    pub tag_value_chars_max: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            record_data_size_max: 1 << 20,
            partition_key_chars_max: 256,
            put_records_count_max: 500,
            request_size_max: 10 << 20,
            get_records_count_max: 10_000,
            get_records_bytes_max: 10 << 20,
            iterator_age_ms_max: 5 * 60 * 1000,
            stream_shard_count_max: 500,
            stream_name_chars_max: 128,
            retention_hours_default: 24,
            retention_hours_min: 1,
            retention_hours_max: 8760,
            tags_per_stream_max: 50,
            tag_key_chars_max: 128,
            tag_value_chars_max: 256,
        }
    }
}

impl Limits {
    /// The largest batch a request of this configuration can produce: all records,
    /// their keys, and per-record archive overhead, plus the header.
    pub fn batch_size_max(&self) -> usize {
        BATCH_HEADER_SIZE
            + self.request_size_max as usize
            + self.put_records_count_max as usize * 64
    }
}

const _: () = assert!(BATCH_HEADER_SIZE.is_multiple_of(BATCH_ALIGNMENT));
const _: () = assert!(DMA_ALIGNMENT.is_multiple_of(BATCH_ALIGNMENT));
