//! The records of one object being gathered by a delivery task: their data
//! (KPL user records split out for stream sources), arrivals, and for stream
//! sources where each was (`kinesisRecordMetadata`).

use riffle_engine::{GetRecordsOutput, Record};
use riffle_protocol::kpl;

use super::Source;
use crate::processing::KinesisMeta;

/// Direct I/O's alignment: a buffer's records start at an address aligned to
/// it when the buffer is large (kept from the last object), so the embedded
/// store writes the object to disk from here, without a copy.
const ALIGNMENT: usize = 4096;

/// The records of one object being gathered.
#[derive(Default)]
pub(super) struct Buffer {
    /// `lead` bytes (to align what follows), then the records' data (user
    /// records, after de-aggregation), concatenated.
    data: Vec<u8>,
    lead: usize,
    /// Where each record ends in `data`.
    pub(super) ends: Vec<usize>,
    /// When each record arrived.
    pub(super) arrivals: Vec<i64>,
    /// The first source record's offset.
    pub(super) start: u64,
    /// Source records taken (an aggregated record counts once).
    pub(super) count: u64,
    /// The oldest record's arrival.
    pub(super) oldest_ms: Option<i64>,
    /// Stream sources: where each record was (for the function's events).
    pub(super) kinesis: Vec<KinesisMeta>,
}

impl Buffer {
    /// An empty buffer for records from offset `start`, in `data` (the last
    /// object's, emptied: its memory is reused).
    pub(super) fn new(start: u64, mut data: Vec<u8>) -> Buffer {
        data.clear();
        let lead = match data.capacity() >= 2 * ALIGNMENT {
            true => (ALIGNMENT - data.as_ptr() as usize % ALIGNMENT) % ALIGNMENT,
            false => 0,
        };
        data.resize(lead, 0);
        Buffer {
            data,
            lead,
            start,
            ..Buffer::default()
        }
    }

    /// The records' data, concatenated.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.data[self.lead..]
    }

    /// The buffer's memory and where the records' data starts in it.
    pub(super) fn into_data(self) -> (Vec<u8>, usize) {
        (self.data, self.lead)
    }

    /// Whether it holds memory while empty (to give back when idle).
    pub(super) fn holds_memory(&self) -> bool {
        self.data.capacity() > 0
    }

    /// The records one by one.
    pub(super) fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(self.lead).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter()).map(|(a, &b)| &self.data[a..b])
    }

    /// The offset after the last source record taken.
    pub(super) fn end(&self) -> u64 {
        self.start + self.count
    }

    /// Takes one source record (its user records when `deaggregate` and it is
    /// a KPL aggregated record); `kinesis`: a stream source's partition key
    /// and sequence number, kept for each user record.
    pub(super) fn take(
        &mut self,
        data: &[u8],
        arrival_ms: i64,
        deaggregate: bool,
        kinesis: Option<(&str, String)>,
    ) {
        let meta = |partition_key: &str, subsequence_number: u32| {
            kinesis.as_ref().map(|(_, sequence_number)| KinesisMeta {
                partition_key: partition_key.to_string(),
                sequence_number: sequence_number.clone(),
                subsequence_number,
            })
        };
        match deaggregate.then(|| kpl::deaggregate(data)).flatten() {
            Some(users) => {
                for (i, u) in users.into_iter().enumerate() {
                    self.data.extend_from_slice(u.data);
                    self.ends.push(self.data.len());
                    self.arrivals.push(arrival_ms);
                    self.kinesis.extend(meta(u.partition_key, i as u32));
                }
            }
            None => {
                self.data.extend_from_slice(data);
                self.ends.push(self.data.len());
                self.arrivals.push(arrival_ms);
                let partition_key = kinesis.as_ref().map_or("", |(pk, _)| *pk);
                self.kinesis.extend(meta(partition_key, 0));
            }
        }
        self.count += 1;
        self.oldest_ms.get_or_insert(arrival_ms);
    }

    /// Takes record `r` of `read` from `source` (with its partition key and
    /// AWS's sequence number when the source is a Kinesis stream).
    pub(super) fn take_read(&mut self, read: &GetRecordsOutput, r: &Record<'_>, source: &Source) {
        let kinesis = source.start_ms.is_some().then(|| {
            let seq = riffle_engine::kinesis::sequence_number(
                r.shard_index,
                read.shard_opened,
                r.offset,
                r.arrival_ms(),
            );
            (r.partition_key(), seq)
        });
        self.take(r.data(), r.arrival_ms(), source.deaggregate, kinesis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_give_back_their_records() {
        let mut b = Buffer {
            start: 7,
            ..Buffer::default()
        };
        for r in [&b"ab"[..], b"", b"cde"] {
            b.take(r, 5, false, None);
        }
        let got: Vec<&[u8]> = b.records().collect();
        assert_eq!(got, vec![&b"ab"[..], b"", b"cde"]);
        assert_eq!((b.end(), b.oldest_ms), (10, Some(5)));
    }

    #[test]
    fn a_large_buffer_aligns_its_records() {
        let mut b = Buffer::new(3, Vec::with_capacity(1 << 20));
        for r in [&b"ab"[..], b"cde"] {
            b.take(r, 5, false, None);
        }
        assert_eq!(b.bytes(), b"abcde");
        assert_eq!(b.bytes().as_ptr().align_offset(ALIGNMENT), 0);
        assert_eq!(b.records().collect::<Vec<_>>(), vec![&b"ab"[..], b"cde"]);
        let (data, from) = b.into_data();
        assert_eq!(&data[from..], b"abcde");
        // A small one does not (its records start at once).
        let small = Buffer::new(0, Vec::with_capacity(100));
        assert_eq!(small.into_data().1, 0);
    }

    #[test]
    fn aggregated_records_count_once_and_give_their_user_records() {
        use md5::{Digest, Md5};
        // An aggregated record of two user records, "x" and "yz".
        let body: Vec<u8> = [
            &[0x0a, 0x01, b'k'][..],                         // partition_key_table: "k"
            &[0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, b'x'][..], // records: {0, "x"}
            &[0x1a, 0x06, 0x08, 0x00, 0x1a, 0x02, b'y', b'z'][..],
        ]
        .concat();
        let mut agg = kpl::MAGIC.to_vec();
        agg.extend_from_slice(&body);
        agg.extend_from_slice(&Md5::digest(&body));
        let mut b = Buffer::default();
        b.take(&agg, 1, true, Some(("outer", "49".to_string())));
        b.take(b"plain", 2, true, Some(("pk2", "50".to_string())));
        let got: Vec<&[u8]> = b.records().collect();
        assert_eq!(got, vec![&b"x"[..], b"yz", b"plain"]);
        assert_eq!(b.end(), 2);
        // Each user record keeps its own partition key and its index.
        let meta: Vec<(&str, &str, u32)> = b
            .kinesis
            .iter()
            .map(|m| {
                (
                    m.partition_key.as_str(),
                    m.sequence_number.as_str(),
                    m.subsequence_number,
                )
            })
            .collect();
        assert_eq!(meta, vec![("k", "49", 0), ("k", "49", 1), ("pk2", "50", 0)]);
        // Without de-aggregation the record is delivered as it is.
        let mut raw = Buffer::default();
        raw.take(&agg, 1, false, None);
        assert_eq!(raw.records().next(), Some(&agg[..]));
    }
}
