//! The producer's records and batches: what a user record waiting for its
//! result carries ([`Pending`]), and how a run of them becomes the Kinesis
//! records of one batch ([`plan`]): each put on its own, or, with aggregation,
//! packed in order into aggregated records (KPL format) under a size and count
//! limit, a lone one put plain as the KPL does.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use riffle_protocol::kpl::Aggregator;

use crate::error::ClientError;
use crate::types::Put;

/// A user record as `send` leaves it in the intake: its partition key and
/// data are in the round's byte buffer (one copy, no allocation per record),
/// key first, from `start`.
pub(super) struct Sent {
    pub number: u64,
    pub shard_index: u32,
    pub explicit_hash_key: Option<u128>,
    pub start: usize,
    pub key_len: u32,
    pub data_len: u32,
    /// When `send` took it (latency, time to live).
    pub sent: Instant,
    /// Where its result goes; None when the caller does not wait for it
    /// (`Producer::put`: only the metrics count it).
    pub result: Option<SyncSender<Result<Put, ClientError>>>,
}

/// A user record waiting for its result: a [`Sent`] with the bytes of its
/// round, shared by the round's records and freed with the last of them.
pub(super) struct Pending {
    pub number: u64,
    pub shard_index: u32,
    pub explicit_hash_key: Option<u128>,
    bytes: Arc<Vec<u8>>,
    start: usize,
    key_len: u32,
    data_len: u32,
    pub sent: Instant,
    pub result: Option<SyncSender<Result<Put, ClientError>>>,
}

impl Pending {
    /// `sent`, whose bytes are in `bytes` (the round's buffer it was written to).
    pub fn new(sent: Sent, bytes: &Arc<Vec<u8>>) -> Pending {
        Pending {
            number: sent.number,
            shard_index: sent.shard_index,
            explicit_hash_key: sent.explicit_hash_key,
            bytes: bytes.clone(),
            start: sent.start,
            key_len: sent.key_len,
            data_len: sent.data_len,
            sent: sent.sent,
            result: sent.result,
        }
    }

    pub fn partition_key(&self) -> &str {
        let key = &self.bytes[self.start..self.start + self.key_len as usize];
        // Copied from a `&str` by `send`, whole: always UTF-8.
        std::str::from_utf8(key).unwrap_or_default()
    }

    pub fn data(&self) -> &[u8] {
        let from = self.start + self.key_len as usize;
        &self.bytes[from..from + self.data_len as usize]
    }

    /// What the producer's buffer counts for it: data and partition key.
    pub fn size(&self) -> usize {
        self.key_len as usize + self.data_len as usize
    }
}

pub(super) fn record_size(partition_key: &str, data: &[u8]) -> usize {
    partition_key.len() + data.len()
}

/// One Kinesis record of a batch: user records `users` of the batch, put on
/// their own (one, `aggregated` None) or as one aggregated record.
#[derive(Debug)]
pub(super) struct Entry {
    pub users: Range<usize>,
    pub aggregated: Option<Vec<u8>>,
}

/// Batch and aggregate bounds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    /// Kinesis records per batch.
    pub records_max: usize,
    /// Bytes (data + partition keys of the Kinesis records) per batch.
    pub bytes_max: usize,
    /// Aggregated records: None to put every user record on its own.
    pub aggregate: Option<AggregateShape>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct AggregateShape {
    /// Put size (encoded aggregate plus outer partition key) at most.
    pub bytes_max: usize,
    /// User records per aggregated record at most.
    pub records_max: usize,
}

/// The Kinesis records a leading run of `records` makes, in order, within
/// `shape`: how many user records they take, the records, and their bytes. A
/// first user record is always taken, whatever its size (it was checked
/// against the record limits when sent).
pub(super) fn plan<'a>(
    records: impl IntoIterator<Item = &'a Pending>,
    shape: &Shape,
    aggregator: &mut Aggregator,
) -> (usize, Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut bytes = 0;
    let mut taken = 0;
    let Some(agg) = shape.aggregate else {
        for p in records {
            let size = p.size();
            if taken > 0 && (entries.len() >= shape.records_max || bytes + size > shape.bytes_max) {
                break;
            }
            entries.push(Entry {
                users: taken..taken + 1,
                aggregated: None,
            });
            bytes += size;
            taken += 1;
        }
        return (taken, entries, bytes);
    };
    aggregator.clear();
    // The open aggregated record: its first user record and its put size (a
    // lone user record's own size, as it would go plain).
    let mut open_start = 0;
    let mut open_size = 0;
    let mut hash_key = String::new();
    for p in records {
        let (partition_key, data) = (p.partition_key(), p.data());
        let explicit_hash_key = p.explicit_hash_key.map(|k| {
            hash_key.clear();
            let _ = write!(hash_key, "{k}");
            hash_key.as_str()
        });
        let joined = if aggregator.is_empty() {
            p.size()
        } else {
            aggregator.put_size_with(partition_key, explicit_hash_key, data)
        };
        let joins = aggregator.is_empty()
            || (joined <= agg.bytes_max && aggregator.len() < agg.records_max);
        let (count, size) = if joins {
            (entries.len() + 1, bytes + joined)
        } else {
            (entries.len() + 2, bytes + open_size + p.size())
        };
        if taken > 0 && (count > shape.records_max || size > shape.bytes_max) {
            break;
        }
        if !joins {
            bytes += open_size;
            entries.push(close(aggregator, open_start..taken));
            open_start = taken;
        }
        open_size = if aggregator.is_empty() {
            p.size()
        } else {
            joined
        };
        aggregator.add(partition_key, explicit_hash_key, data);
        taken += 1;
    }
    if !aggregator.is_empty() {
        bytes += open_size;
        entries.push(close(aggregator, open_start..taken));
    }
    (taken, entries, bytes)
}

/// The open aggregated record as an entry: a lone user record goes plain.
fn close(aggregator: &mut Aggregator, users: Range<usize>) -> Entry {
    let aggregated = if aggregator.len() == 1 {
        aggregator.clear();
        None
    } else {
        Some(aggregator.finish())
    };
    Entry { users, aggregated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_protocol::kpl;

    fn pending(keys: &[(&str, Option<u128>, usize)]) -> Vec<Pending> {
        let mut bytes = Vec::new();
        let sent: Vec<Sent> = keys
            .iter()
            .enumerate()
            .map(|(i, &(k, h, len))| {
                let start = bytes.len();
                bytes.extend_from_slice(k.as_bytes());
                bytes.extend(std::iter::repeat_n(i as u8, len));
                Sent {
                    number: i as u64,
                    shard_index: 0,
                    explicit_hash_key: h,
                    start,
                    key_len: k.len() as u32,
                    data_len: len as u32,
                    sent: Instant::now(),
                    result: None,
                }
            })
            .collect();
        let bytes = Arc::new(bytes);
        sent.into_iter().map(|s| Pending::new(s, &bytes)).collect()
    }

    fn shape(records_max: usize, bytes_max: usize, aggregate: Option<(usize, usize)>) -> Shape {
        Shape {
            records_max,
            bytes_max,
            aggregate: aggregate.map(|(bytes_max, records_max)| AggregateShape {
                bytes_max,
                records_max,
            }),
        }
    }

    /// Every user record is found once, in order, with its keys and data, and
    /// every entry's size is what the plan counted.
    fn check(records: &[Pending], taken: usize, entries: &[Entry], bytes: usize) {
        let mut next = 0;
        let mut counted = 0;
        for e in entries {
            assert_eq!(e.users.start, next);
            next = e.users.end;
            let first = &records[e.users.start];
            match &e.aggregated {
                None => {
                    assert_eq!(e.users.len(), 1);
                    counted += first.size();
                }
                Some(body) => {
                    assert!(e.users.len() >= 2, "a lone record goes plain");
                    counted += body.len() + first.partition_key().len();
                    let users = kpl::deaggregate(body).expect("a valid aggregated record");
                    assert_eq!(users.len(), e.users.len());
                    for (u, p) in users.iter().zip(&records[e.users.clone()]) {
                        assert_eq!(u.partition_key, p.partition_key());
                        assert_eq!(
                            u.explicit_hash_key,
                            p.explicit_hash_key.map(|k| k.to_string()).as_deref()
                        );
                        assert_eq!(u.data, p.data());
                    }
                }
            }
        }
        assert_eq!(next, taken);
        assert_eq!(counted, bytes);
    }

    #[test]
    fn without_aggregation_each_record_is_its_own() {
        let records = pending(&[("a", None, 10), ("b", None, 10), ("c", None, 10)]);
        let mut agg = Aggregator::new();
        let (taken, entries, bytes) = plan(&records, &shape(2, 1000, None), &mut agg);
        assert_eq!((taken, entries.len(), bytes), (2, 2, 22));
        check(&records, taken, &entries, bytes);
        let (taken, _, bytes) = plan(&records, &shape(10, 15, None), &mut agg);
        assert_eq!(
            (taken, bytes),
            (1, 11),
            "bytes cut the batch; the first always goes"
        );
    }

    #[test]
    fn aggregates_fill_up_to_their_size_then_start_anew() {
        let keys: Vec<(&str, Option<u128>, usize)> = (0..50)
            .map(|i| (["k1", "k2", "k3"][i % 3], None, 100))
            .collect();
        let records = pending(&keys);
        let mut agg = Aggregator::new();
        let (taken, entries, bytes) = plan(
            &records,
            &shape(500, 1 << 20, Some((1000, usize::MAX))),
            &mut agg,
        );
        assert_eq!(taken, 50);
        check(&records, taken, &entries, bytes);
        for e in &entries {
            let body = e.aggregated.as_ref().expect("aggregated");
            assert!(body.len() + 2 <= 1000, "{}", body.len());
        }
        assert!(
            entries.len() >= 6 && entries.len() <= 8,
            "{}",
            entries.len()
        );
    }

    #[test]
    fn the_batch_counts_aggregated_records_and_their_bytes() {
        let keys: Vec<(&str, Option<u128>, usize)> = (0..100).map(|_| ("k", Some(7), 90)).collect();
        let records = pending(&keys);
        let mut agg = Aggregator::new();
        // Aggregates of at most 10 user records; at most 3 per batch.
        let (taken, entries, bytes) =
            plan(&records, &shape(3, 1 << 20, Some((1 << 20, 10))), &mut agg);
        assert_eq!((taken, entries.len()), (30, 3));
        check(&records, taken, &entries, bytes);
        // A batch byte bound in the middle of an aggregate stops it there.
        let (taken, entries, bytes) =
            plan(&records, &shape(500, 1000, Some((1 << 20, 1000))), &mut agg);
        assert!(bytes <= 1000 && taken > 1, "{taken} {bytes}");
        check(&records, taken, &entries, bytes);
        let (more, _, _) = plan(
            &records[taken..],
            &shape(500, 1000, Some((1 << 20, 1000))),
            &mut agg,
        );
        assert_eq!(more, taken, "the same shape again");
    }

    #[test]
    fn a_record_too_big_to_share_goes_plain() {
        let records = pending(&[
            ("a", None, 10),
            ("b", None, 5000),
            ("c", None, 10),
            ("d", None, 10),
        ]);
        let mut agg = Aggregator::new();
        let (taken, entries, bytes) =
            plan(&records, &shape(500, 1 << 20, Some((1000, 100))), &mut agg);
        assert_eq!(taken, 4);
        check(&records, taken, &entries, bytes);
        let plain: Vec<bool> = entries.iter().map(|e| e.aggregated.is_none()).collect();
        assert_eq!(
            plain,
            [true, true, false],
            "a alone, b alone, c+d aggregated"
        );
    }
}
