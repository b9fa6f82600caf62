//! The engine's data plane: records put (routed by hash key to their
//! shard's owning core) and appended as batches, shard iterators resolved,
//! and records read.

use riffle_protocol::batch::{self, BatchBuilder, RecordIn, ValidBatch};
use riffle_protocol::{Error, ErrorCode};
use riffle_protocol::{routing, seqno};
use riffle_store::iterator::{IteratorToken, IteratorType};
use riffle_store::log::Appended;
use rkyv::util::AlignedVec;

use super::streams::{check_incarnation, children, shard_opened};
use super::types::*;
use super::{Engine, recv};
use crate::control::{StreamInfo, owner};
use crate::core::{CoreMsg, Position};
use crate::rt::{self};
use crate::stream_metrics::{PutOutcome, StreamMetrics};

/// How many times `put_records` routes records again after shards they were
/// routed to were sealed by resharding.
const RESEAL_ROUNDS_MAX: usize = 8;

impl Engine {
    pub(super) fn shard_of(
        s: &StreamInfo,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
    ) -> Result<(u32, Option<u128>), Error> {
        let explicit = explicit_hash_key
            .map(routing::parse_explicit_hash_key)
            .transpose()?;
        let hash = explicit.unwrap_or_else(|| routing::hash_key_of(partition_key));
        Ok((s.route(hash), explicit))
    }

    pub async fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> Result<PutResult, Error> {
        let entry = PutRecordsEntry {
            partition_key,
            explicit_hash_key,
            data,
        };
        let mut results = self
            .put_counted(stream, std::slice::from_ref(&entry), true)
            .await?;
        results.pop().expect("one result per record")
    }

    /// A put request's shape against the engine's limits: 1 to
    /// `put_records_count_max` records of `bytes` (data and keys) in all.
    fn check_request(&self, count: usize, bytes: usize) -> Result<(), Error> {
        let limits = self.limits();
        if count == 0 || count > limits.put_records_count_max as usize {
            return Err(Error::invalid(format!(
                "Records must contain 1 to {} entries, got {count}",
                limits.put_records_count_max
            )));
        }
        if bytes > limits.request_size_max as usize {
            return Err(Error::invalid(format!(
                "request of {bytes} bytes exceeds {}",
                limits.request_size_max
            )));
        }
        Ok(())
    }

    /// Puts records; each gets its own result (AWS partial failure semantics).
    /// Records with the same partition key keep their order.
    pub async fn put_records(
        &self,
        stream: &str,
        records: &[PutRecordsEntry<'_>],
    ) -> Result<Vec<Result<PutResult, Error>>, Error> {
        self.put_counted(stream, records, false).await
    }

    /// A PutRecord (`single`) or PutRecords call, counted in the stream's
    /// metrics.
    async fn put_counted(
        &self,
        stream: &str,
        records: &[PutRecordsEntry<'_>],
        single: bool,
    ) -> Result<Vec<Result<PutResult, Error>>, Error> {
        let started = std::time::Instant::now();
        let result = self.put_uncounted(stream, records).await;
        if let Some(m) = self.metrics_of(stream) {
            let mut o = PutOutcome {
                ok: result.is_ok(),
                records: records.len() as u64,
                ..PutOutcome::default()
            };
            if let Ok(results) = &result {
                for (r, entry) in results.iter().zip(records) {
                    match r {
                        Ok(_) => {
                            o.stored_records += 1;
                            o.stored_bytes += entry.data.len() as u64;
                        }
                        Err(e) if e.code == ErrorCode::ProvisionedThroughputExceeded => {
                            o.throttled += 1;
                        }
                        Err(_) => {}
                    }
                }
            }
            m.put(single, o, started.elapsed());
        }
        result
    }

    /// Every data stream's metrics, by name (services' internal streams left
    /// out).
    pub fn stream_metrics(&self) -> Vec<(String, std::sync::Arc<StreamMetrics>)> {
        self.shared
            .view
            .load()
            .streams
            .iter()
            .filter(|(name, _)| !riffle_store::catalog::is_internal_stream(name))
            .map(|(name, s)| (name.clone(), s.metrics.clone()))
            .collect()
    }

    /// The stream an iterator token reads, expired or not (IAM names the
    /// resource of a GetRecords by it).
    pub fn iterator_stream(&self, token: &str) -> Option<String> {
        IteratorToken::decode(token, &self.shared.key, rt::now_ms(), u64::MAX)
            .ok()
            .map(|t| t.stream_name)
    }

    /// The stream's metrics, when it exists.
    pub(crate) fn metrics_of(&self, stream: &str) -> Option<std::sync::Arc<StreamMetrics>> {
        self.shared
            .view
            .load()
            .streams
            .get(stream)
            .map(|s| s.metrics.clone())
    }

    async fn put_uncounted(
        &self,
        stream: &str,
        records: &[PutRecordsEntry<'_>],
    ) -> Result<Vec<Result<PutResult, Error>>, Error> {
        self.check_request(
            records.len(),
            records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum(),
        )?;
        let limits = &self.stream_limits(self.shared.view.load().streams.get(stream).map(|s| &**s));
        for r in records {
            batch::check_record(r.partition_key, r.data.len(), limits).map_err(Error::invalid)?;
            if let Some(key) = r.explicit_hash_key {
                routing::parse_explicit_hash_key(key)?;
            }
        }
        let mut results: Vec<Option<Result<PutResult, Error>>> =
            (0..records.len()).map(|_| None).collect();
        // Indexes to put again (none yet: the first round puts every record).
        let mut todo: Option<Vec<usize>> = None;
        // A shard sealed for resharding refuses its records while the new view
        // is being published: wait for it and route them again (a few rounds at
        // most; each is a published reshard).
        for _round in 0..RESEAL_ROUNDS_MAX {
            let view = self.shared.view.load();
            let version = view.version;
            let s = match (self.data_stream_in(&view, stream), &todo) {
                (Ok(s), _) => s,
                (Err(e), None) => return Err(e),
                // Records of the first round landed: the rest fail one by one
                // (failing the whole request would have the client put them twice).
                (Err(e), Some(t)) => {
                    for &i in t {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            // An encrypted stream whose KMS key cannot be used fails the
            // whole call with the KMS's error, as AWS does (in a later round,
            // the records left fail with it).
            let seal = match (self.sealing_key(&s), &todo) {
                (Ok(seal), _) => seal,
                (Err(e), None) => return Err(e),
                (Err(e), Some(t)) => {
                    for &i in t {
                        results[i] = Some(Err(e.clone()));
                    }
                    break;
                }
            };
            drop(view);
            let refused = match &todo {
                None => {
                    self.put_routed(&s, seal, records, 0..records.len(), &mut results)
                        .await
                }
                Some(t) => {
                    self.put_routed(&s, seal, records, t.iter().copied(), &mut results)
                        .await
                }
            };
            if refused.is_empty() {
                break;
            }
            todo = Some(refused);
            // Subscribe, then look: a view published in between is not missed.
            let watch = self.shared.watch.subscribe();
            if self.shared.view.load().version == version {
                let _ = watch.recv_async().await;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record has a result after its last round"))
            .collect())
    }

    /// Puts `records[todo]` with `s`'s routing, under `seal` (its data key,
    /// `Engine::sealing_key`), into `results`; returns the indexes refused by
    /// a sealed shard (their results are that refusal).
    pub(super) async fn put_routed(
        &self,
        s: &StreamInfo,
        seal: crate::core::SealingKey,
        records: &[PutRecordsEntry<'_>],
        todo: impl Iterator<Item = usize>,
        results: &mut [Option<Result<PutResult, Error>>],
    ) -> Vec<usize> {
        // Route every record, then group by shard in arrival order.
        let mut groups: Vec<(u32, Vec<usize>, Vec<RecordIn<'_>>)> = Vec::new();
        let mut refused = Vec::new();
        for i in todo {
            let r = &records[i];
            let (shard, explicit) = Self::shard_of(s, r.partition_key, r.explicit_hash_key)
                .expect("explicit hash keys were checked");
            let rec = RecordIn {
                partition_key: r.partition_key,
                explicit_hash_key: explicit.map(u128::to_le_bytes),
                data: r.data,
                arrival_ms: 0,
            };
            match groups.iter_mut().find(|g| g.0 == shard) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(rec);
                }
                None => groups.push((shard, vec![i], vec![rec])),
            }
        }
        let mut builder = BatchBuilder::new();
        let mut pending = Vec::with_capacity(groups.len());
        for (shard, indexes, recs) in &groups {
            let bytes = builder.build_to_append(recs);
            let key = (s.meta.id, *shard);
            let (tx, rx) = flume::bounded(1);
            let core = owner(key, self.shared.cores.len());
            let sent = self.shared.cores[core]
                .send_async(CoreMsg::Append {
                    key,
                    batch: bytes,
                    seal: seal.clone(),
                    reply: tx,
                })
                .await;
            pending.push((*shard, indexes, sent.map(|_| rx)));
        }
        for (shard, indexes, rx) in pending {
            let outcome = match rx {
                Ok(rx) => recv(rx).await,
                Err(_) => Err(Error::internal("the engine is shutting down")),
            };
            if matches!(&outcome, Err(e) if crate::pump::is_sealed_error(e)) {
                refused.extend_from_slice(indexes);
            }
            for (j, &i) in indexes.iter().enumerate() {
                results[i] = Some(match &outcome {
                    Ok(a) => Ok(PutResult {
                        shard_index: shard,
                        offset: a.base_offset + j as u64,
                        arrival_ms: a.arrival_ms,
                        shard_opened: shard_opened(s, shard),
                    }),
                    Err(e) => Err(e.clone()),
                });
            }
        }
        refused
    }

    /// Appends `records` as one batch to one open shard of `stream`, the
    /// `spread`-th one (modulo their count): a service spreading its calls
    /// over the shards of its own internal stream (Firehose's Direct PUT),
    /// with no routing by key. Checked as PutRecords checks its records;
    /// returns the shard and the append (record `i` is at `base_offset + i`).
    pub async fn append_records(
        &self,
        stream: &str,
        spread: u64,
        records: &[&[u8]],
        partition_key: &str,
    ) -> Result<(u32, Appended), Error> {
        let keyed: Vec<(&str, &[u8])> = records.iter().map(|d| (partition_key, *d)).collect();
        self.append_keyed(stream, spread, &keyed).await
    }

    /// [`Engine::append_records`] with a partition key per record (stored,
    /// not used to route): a service writing rows that each carry their own
    /// name (Analytics' outputs), without hashing every key.
    pub async fn append_keyed(
        &self,
        stream: &str,
        spread: u64,
        records: &[(&str, &[u8])],
    ) -> Result<(u32, Appended), Error> {
        self.check_request(
            records.len(),
            records.iter().map(|(k, d)| d.len() + k.len()).sum(),
        )?;
        let s = self.data_stream(stream)?;
        let limits = self.stream_limits(Some(&s));
        for (key, data) in records {
            batch::check_record(key, data.len(), &limits).map_err(Error::invalid)?;
        }
        let shard = Self::spread_shard(&s, spread)?;
        let recs: Vec<RecordIn<'_>> = records
            .iter()
            .map(|&(partition_key, data)| RecordIn {
                partition_key,
                explicit_hash_key: None,
                data,
                arrival_ms: 0,
            })
            .collect();
        let batch = BatchBuilder::new().build_to_append(&recs);
        Ok((shard, self.append_validated(&s, shard, batch).await?))
    }

    /// Appends a batch the server built itself ([`BatchBuilder::build_to_append`]) to one
    /// open shard of `stream`, the `spread`-th (as [`Engine::append_keyed`]),
    /// without checking its records again: the caller checked each against
    /// the stream's limits ([`batch::check_record`]) and keeps a batch to
    /// `put_records_count_max` records and `request_size_max` bytes.
    pub async fn append_built(
        &self,
        stream: &str,
        spread: u64,
        batch: ValidBatch,
    ) -> Result<(u32, Appended), Error> {
        let s = self.data_stream(stream)?;
        let shard = Self::spread_shard(&s, spread)?;
        Ok((shard, self.append_validated(&s, shard, batch).await?))
    }

    /// The `spread`-th open shard of `s` (modulo their count).
    fn spread_shard(s: &StreamInfo, spread: u64) -> Result<u32, Error> {
        let open = s.meta.shards.iter().filter(|sh| sh.is_open()).count();
        s.meta
            .shards
            .iter()
            .enumerate()
            .filter(|(_, sh)| sh.is_open())
            .nth((spread % open.max(1) as u64) as usize)
            .map(|(i, _)| i as u32)
            .ok_or_else(|| Error::internal(format!("stream {} has no open shard", s.meta.name)))
    }

    /// Appends a batch built by a client (the native protocol's path): validated
    /// here, then appended as is to the given shard.
    /// `stream_id`, when given, must name the stream's current incarnation (see
    /// [`Engine::check_incarnation`]); otherwise nothing lands.
    pub async fn append_batch(
        &self,
        stream: &str,
        stream_id: Option<u64>,
        shard_index: u32,
        batch: AlignedVec<16>,
    ) -> Result<Appended, Error> {
        // Parameters are checked before existence, as AWS does.
        let s = self.data_stream(stream);
        let batch = ValidBatch::validate(batch, &self.stream_limits(s.as_deref().ok()))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let s = s?;
        check_incarnation(&s, stream_id)?;
        let (records, bytes) = batch_size(&batch);
        let appended = self.append_validated(&s, shard_index, batch).await?;
        // A native PutRecords' batch (the call itself is counted by the
        // native dispatch).
        let m = &s.metrics;
        m.incoming_records.add(records);
        m.incoming_bytes.add(bytes);
        m.put_records_bytes.add(bytes);
        m.put_records_total.add(records);
        m.put_records_successful.add(records);
        Ok(appended)
    }

    /// Appends a client-built batch of one record to the shard its partition key
    /// (or explicit hash key) routes to; returns that shard and the append.
    /// Validated once, like [`Engine::append_batch`].
    pub async fn append_routed(
        &self,
        stream: &str,
        batch: AlignedVec<16>,
    ) -> Result<(u32, Appended), Error> {
        let s = self.data_stream(stream);
        let batch = ValidBatch::validate(batch, &self.stream_limits(s.as_deref().ok()))
            .map_err(|e| Error::invalid(e.to_string()))?;
        let view = batch.view();
        if view.len() != 1 {
            return Err(Error::invalid(format!(
                "a routed batch holds one record, this one {}",
                view.len()
            )));
        }
        let record = &view.records()[0];
        let hash = record
            .explicit_hash_key()
            .unwrap_or_else(|| routing::hash_key_of(record.partition_key()));
        let s = s?;
        let shard = s.route(hash);
        let (records, bytes) = batch_size(&batch);
        let appended = self.append_validated(&s, shard, batch).await?;
        // A native PutRecord (the call is counted by the native dispatch).
        s.metrics.incoming_records.add(records);
        s.metrics.incoming_bytes.add(bytes);
        s.metrics.put_record_bytes.add(bytes);
        Ok((shard, appended))
    }

    pub(super) async fn append_validated(
        &self,
        s: &StreamInfo,
        shard_index: u32,
        batch: ValidBatch,
    ) -> Result<Appended, Error> {
        self.check_shard(s, shard_index)?;
        if !s.meta.shards[shard_index as usize].is_open() {
            return Err(crate::pump::sealed_error());
        }
        let seal = self.sealing_key(s)?;
        let key = (s.meta.id, shard_index);
        self.ask(key, |reply| CoreMsg::Append {
            key,
            batch,
            seal,
            reply,
        })
        .await
    }

    /// The index of the shard a client named `shard_id` (`shardId-000000000000`),
    /// or AWS's ResourceNotFoundException.
    pub(super) fn shard_index(&self, s: &StreamInfo, shard_id: &str) -> Result<u32, Error> {
        match routing::parse_shard_id(shard_id) {
            Some(index) => self.check_shard(s, index),
            None => Err(self.shard_not_found(s, shard_id)),
        }
    }

    /// `index` when `s` has that shard (open or closed), else AWS's
    /// ResourceNotFoundException.
    pub(super) fn check_shard(&self, s: &StreamInfo, index: u32) -> Result<u32, Error> {
        if (index as usize) < s.meta.shards.len() {
            Ok(index)
        } else {
            Err(self.shard_not_found(s, &routing::shard_id(index)))
        }
    }

    pub(super) fn shard_not_found(&self, s: &StreamInfo, shard_id: &str) -> Error {
        Error::not_found(format!(
            "Shard {shard_id} in stream {} under account {} does not exist",
            s.meta.name, self.shared.config.account
        ))
    }

    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        kind: IteratorType,
    ) -> Result<String, Error> {
        let cursor = self.shard_cursor_by_id(stream, shard_id, kind).await?;
        Ok(cursor.encode(&self.shared.key))
    }

    /// [`Engine::get_shard_iterator`] of the shard with index `shard_index` (the
    /// native protocol's name for it).
    pub async fn get_shard_iterator_at(
        &self,
        stream: &str,
        shard_index: u32,
        kind: IteratorType,
    ) -> Result<String, Error> {
        let cursor = self.shard_cursor(stream, shard_index, kind).await?;
        Ok(cursor.encode(&self.shared.key))
    }

    /// [`Engine::shard_cursor`] of the shard named `shard_id`
    /// (`shardId-000000000000`).
    pub async fn shard_cursor_by_id(
        &self,
        stream: &str,
        shard_id: &str,
        kind: IteratorType,
    ) -> Result<IteratorToken, Error> {
        let shard = self.shard_index(&*self.stream(stream)?, shard_id)?;
        self.shard_cursor(stream, shard, kind).await
    }

    /// Resolves `kind` to a position in shard `shard_index` of `stream`: the
    /// un-encoded form of a shard iterator (subscriptions keep it as their cursor).
    pub async fn shard_cursor(
        &self,
        stream: &str,
        shard_index: u32,
        kind: IteratorType,
    ) -> Result<IteratorToken, Error> {
        let s = self.data_stream(stream)?;
        let shard = self.check_shard(&s, shard_index)?;
        let key = (s.meta.id, shard);
        let position = match kind {
            IteratorType::TrimHorizon => Position::TrimHorizon,
            IteratorType::Latest => Position::Latest,
            IteratorType::AtTimestamp(t) => Position::AtTimestamp(t),
            IteratorType::AtSequenceNumber(seq) | IteratorType::AfterSequenceNumber(seq) => {
                let (seq_shard, offset) = seqno::decode(seq)?;
                if seq_shard != shard {
                    return Err(Error::invalid(format!(
                        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                        routing::shard_id(seq_shard),
                        routing::shard_id(shard)
                    )));
                }
                let after = matches!(kind, IteratorType::AfterSequenceNumber(_));
                // Offset u64::MAX is no record's: AFTER it is offset 0, the
                // sequence number "before the shard's first record"
                // (`seqno::before_first`, SubscribeToShard's continuation on a
                // shard nothing was read from yet).
                Position::Offset(offset.wrapping_add(after as u64))
            }
        };
        let offset = self
            .ask(key, |reply| CoreMsg::Position {
                key,
                position,
                reply,
            })
            .await?;
        Ok(IteratorToken {
            stream_id: s.meta.id,
            stream_name: s.meta.name.clone(),
            shard_index: shard,
            offset,
            issued_ms: rt::now_ms(),
        })
    }

    /// Reads from a shard iterator: at most `limit` records (default and maximum
    /// 10,000) and 10 MiB; an empty result at the tip still has a next iterator.
    /// A client's GetRecords (HTTP and native): the one read the shard limits
    /// meter (`EngineConfig::shard_limits`; refused with
    /// ProvisionedThroughputExceeded).
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<u32>,
    ) -> Result<GetRecordsOutput, Error> {
        let limits = self.limits();
        let started = std::time::Instant::now();
        let token = IteratorToken::decode(
            iterator,
            &self.shared.key,
            rt::now_ms(),
            limits.iterator_age_ms_max,
        )?;
        let read = self.read_from(&token, limit, 0, None, true).await;
        // Counted for the iterator's incarnation of the stream only.
        if let Some(m) = self
            .shared
            .view
            .load()
            .streams
            .get(&token.stream_name)
            .filter(|s| s.meta.id == token.stream_id)
            .map(|s| s.metrics.clone())
        {
            let now = rt::now_ms();
            match &read {
                Ok(out) => {
                    let (mut records, mut bytes, mut last_ms) = (0u64, 0u64, None);
                    for r in out.records() {
                        records += 1;
                        bytes += r.data().len() as u64;
                        last_ms = Some(r.arrival_ms());
                    }
                    // The age of the last record returned; 0 at the tip.
                    let age = last_ms.map_or(0, |at| (now - at).max(0) as u64);
                    m.get(true, records, bytes, age, started.elapsed());
                }
                Err(_) => m.get(false, 0, 0, 0, started.elapsed()),
            }
        }
        let mut out = read?;
        if out.child_shards.is_some() {
            return Ok(out);
        }
        out.next_shard_iterator = Some(
            IteratorToken {
                offset: out.read.next_offset,
                issued_ms: rt::now_ms(),
                ..token
            }
            .encode(&self.shared.key),
        );
        Ok(out)
    }

    /// Reads at `cursor` (see [`Engine::shard_cursor`]); when nothing is there yet,
    /// waits up to `wait_ms` for records to commit. The output has no next
    /// iterator: continue at [`GetRecordsOutput::next_offset`]. Not metered by
    /// the shard limits (subscriptions read with it).
    pub async fn read_at(
        &self,
        cursor: &IteratorToken,
        limit: Option<u32>,
        wait_ms: u64,
    ) -> Result<GetRecordsOutput, Error> {
        self.read_from(cursor, limit, wait_ms, None, false).await
    }

    /// [`Engine::read_at`] for a reader that follows the shard, reading each
    /// record once, soon after it arrives (a delivery task), as `follower`
    /// (an id unique among the shard's readers): the shard keeps what the
    /// followers have not read yet in memory (within
    /// `LogConfig::follow_bytes_max`), so a moment's lag is still served
    /// without reading the disk back.
    pub async fn follow_at(
        &self,
        cursor: &IteratorToken,
        limit: Option<u32>,
        wait_ms: u64,
        follower: u64,
    ) -> Result<GetRecordsOutput, Error> {
        self.read_from(cursor, limit, wait_ms, Some(follower), false)
            .await
    }

    /// `metered`: a client's GetRecords, subject to the shard limits.
    async fn read_from(
        &self,
        cursor: &IteratorToken,
        limit: Option<u32>,
        wait_ms: u64,
        follow: Option<u64>,
        metered: bool,
    ) -> Result<GetRecordsOutput, Error> {
        let limits = self.limits();
        let count_max = limit.unwrap_or(limits.get_records_count_max);
        if count_max == 0 || count_max > limits.get_records_count_max {
            return Err(Error::invalid(format!(
                "Limit must be between 1 and {}",
                limits.get_records_count_max
            )));
        }
        // A stream deleted since (or deleted and created again) has no such
        // shard any more: AWS's words.
        let gone = || {
            Error::not_found(format!(
                "Shard {} in stream {} under account {} does not exist",
                routing::shard_id(cursor.shard_index),
                cursor.stream_name,
                self.shared.config.account
            ))
        };
        let s = self.stream(&cursor.stream_name).map_err(|e| match e.code {
            ErrorCode::ResourceNotFound => gone(),
            _ => e,
        })?;
        if s.meta.id != cursor.stream_id {
            return Err(gone());
        }
        let key = (cursor.stream_id, cursor.shard_index);
        let bytes_max = limits.get_records_bytes_max as u64;
        // A closed shard gets no more records: never wait on it.
        let end = s
            .meta
            .shards
            .get(cursor.shard_index as usize)
            .and_then(|sh| sh.closed)
            .map(|c| c.end_offset);
        let wait_ms = if end.is_some() { 0 } else { wait_ms };
        let keys = self.read_keys(&s);
        let read = self
            .ask(key, |reply| CoreMsg::Read {
                key,
                keys,
                from: cursor.offset,
                count_max,
                bytes_max,
                wait_ms,
                follow,
                metered,
                reply,
            })
            .await?;
        let now = rt::now_ms();
        let mut out = GetRecordsOutput {
            shard_index: cursor.shard_index,
            record_count: read.spans.iter().map(|s| s.take()).sum(),
            next_shard_iterator: None,
            millis_behind_latest: 0,
            child_shards: None,
            encrypted: s.meta.settings.encryption_key.is_some(),
            shard_opened: shard_opened(&s, cursor.shard_index),
            read,
        };
        if end.is_some_and(|end| out.read.next_offset >= end) {
            out.child_shards = Some(children(&s, cursor.shard_index));
            return Ok(out);
        }
        if out.read.next_offset < out.read.visible_offset {
            let last = out
                .records()
                .last()
                .map(|r| r.arrival_ms())
                .or(out.read.tip_arrival_ms)
                .unwrap_or(now);
            out.millis_behind_latest = (now - last).max(0);
        }
        Ok(out)
    }
}

/// A batch's records and data bytes (its stream's IncomingRecords and
/// IncomingBytes).
fn batch_size(batch: &ValidBatch) -> (u64, u64) {
    let view = batch.view();
    let bytes = view.records().iter().map(|r| r.data().len() as u64).sum();
    (view.len() as u64, bytes)
}
