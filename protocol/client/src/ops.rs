//! Every operation as a value: what request it sends and how its reply becomes
//! an owned result. Both clients run operations through [`Op`], so each
//! operation's encoding, reply checks and conversion live here once; the clients
//! only move frames. Also owns client-side routing (`RoutingTable`), which checks
//! the server's shard list before trusting it.

use riffle_protocol::batch::{self, BatchBuilder};
use riffle_protocol::native::messages::{ITERATOR_CHARS_MAX, api_name};
use riffle_protocol::native::{
    Api, Records, Reply, Request, Response, ShardBatch, StartPosition, decode_reply, encode_request,
};
use riffle_protocol::{ErrorCode, Limits, RecordIn};
use riffle_protocol::{routing, seqno};
use rkyv::util::AlignedVec;

use crate::error::ClientError;
use crate::frames::Frame;
use crate::types::{
    GetRecordsOutput, Put, PutRecordsEntry, PutRecordsResults, ShardInfo, StreamDescription,
    SubscriptionEvent, owned_records,
};

/// An operation: its request, and the conversion of its response.
pub(crate) trait Op {
    type Output;
    const API: Api;
    /// Sending it twice has the effect of sending it once, so it may be resent
    /// after a lost reply.
    const IDEMPOTENT: bool;
    /// Refuses input the encoder cannot carry, before anything is sent.
    fn check(&self, _limits: &Limits) -> Result<(), ClientError> {
        Ok(())
    }
    fn request(&self) -> Request<'_>;
    fn response(
        &self,
        response: Response<'_>,
        limits: &Limits,
    ) -> Result<Self::Output, ClientError>;
}

/// Appends the operation's request frame to `out`.
pub(crate) fn encode<O: Op>(op: &O, request_id: u64, out: &mut Vec<u8>) {
    encode_request(out, request_id, &op.request());
}

/// Decodes the reply to `op`: a server error, or the response the operation
/// expects; anything else is a protocol violation.
pub(crate) fn decode<O: Op>(
    op: &O,
    frame: &Frame,
    limits: &Limits,
) -> Result<O::Output, ClientError> {
    op.response(decode_response(frame, O::API, limits)?, limits)
}

/// Decodes the reply to a request of `api`: its response, or the server's error.
pub(crate) fn decode_response<'f>(
    frame: &'f Frame,
    api: Api,
    limits: &Limits,
) -> Result<Response<'f>, ClientError> {
    let (header, reply) = decode_reply(&frame.bytes, limits).map_err(ClientError::protocol)?;
    match reply {
        Reply::Error(e) => Err(ClientError::Server(e)),
        Reply::Push { .. } => Err(ClientError::protocol(format!(
            "a push frame answered {}",
            api_name(api)
        ))),
        Reply::Response(response) => {
            if header.api_key != api as u16 {
                return Err(ClientError::protocol(format!(
                    "{} was answered for api key {}",
                    api_name(api),
                    header.api_key
                )));
            }
            Ok(response)
        }
    }
}

/// Decodes a frame a subscription received after it was confirmed: a push (its
/// records, and whether it is the last), or an error that ends the subscription.
pub(crate) fn decode_push_records<'f>(
    frame: &'f Frame,
    limits: &Limits,
) -> Result<(Records<'f>, bool), ClientError> {
    let (_, reply) = decode_reply(&frame.bytes, limits).map_err(ClientError::protocol)?;
    match reply {
        Reply::Push { records, end } => Ok((records, end)),
        Reply::Error(e) => Err(ClientError::Server(e)),
        Reply::Response(_) => Err(ClientError::protocol(
            "a response arrived for a confirmed subscription",
        )),
    }
}

/// [`decode_push_records`] with the records copied out.
pub(crate) fn decode_push(
    frame: &Frame,
    limits: &Limits,
) -> Result<SubscriptionEvent, ClientError> {
    let (records, end) = decode_push_records(frame, limits)?;
    Ok(SubscriptionEvent {
        shard_index: records.shard_index,
        records: owned_records(&records, limits)?,
        millis_behind_latest: records.millis_behind_latest,
        next_offset: records.next_offset,
        end,
    })
}

pub(crate) fn unexpected(api: Api, response: &Response<'_>) -> ClientError {
    ClientError::protocol(format!("{} answered with {response:?}", api_name(api)))
}

pub(crate) struct Ping {
    pub nonce: u64,
}
impl Op for Ping {
    type Output = ();
    const API: Api = Api::Ping;
    const IDEMPOTENT: bool = true;
    fn request(&self) -> Request<'_> {
        Request::Ping { nonce: self.nonce }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        match response {
            Response::Pong { nonce } if nonce == self.nonce => Ok(()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

/// AuthChallenge: a nonce to prove the access key's secret with.
pub(crate) struct AuthChallenge;

impl Op for AuthChallenge {
    type Output = [u8; riffle_protocol::native::auth::NONCE_LEN];
    const API: Api = Api::AuthChallenge;
    const IDEMPOTENT: bool = false;
    fn request(&self) -> Request<'_> {
        Request::AuthChallenge
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<Self::Output, ClientError> {
        match response {
            Response::Challenge { nonce } => Ok(nonce),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

/// Authenticate: the proof for the last challenge; answers the principal.
pub(crate) struct Authenticate<'a> {
    pub access_key_id: &'a str,
    pub proof: [u8; riffle_protocol::native::auth::PROOF_LEN],
}

impl Op for Authenticate<'_> {
    type Output = String;
    const API: Api = Api::Authenticate;
    const IDEMPOTENT: bool = false;
    fn check(&self, _: &Limits) -> Result<(), ClientError> {
        check_str(
            "access key id",
            self.access_key_id,
            riffle_protocol::native::auth::ACCESS_KEY_ID_CHARS_MAX,
        )
    }
    fn request(&self) -> Request<'_> {
        Request::Authenticate {
            access_key_id: self.access_key_id,
            proof: self.proof,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<String, ClientError> {
        match response {
            Response::Authenticated { principal } => Ok(principal.to_string()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

fn expect_done(api: Api, response: Response<'_>) -> Result<(), ClientError> {
    match response {
        Response::Done => Ok(()),
        r => Err(unexpected(api, &r)),
    }
}

pub(crate) fn check_stream(stream: &str, limits: &Limits) -> Result<(), ClientError> {
    check_str("stream name", stream, limits.stream_name_chars_max)
}

/// Checks a caller's string before it reaches the encoder (which panics on
/// strings of 64 KiB or more); the server checks the rest.
pub(crate) fn check_str(what: &str, s: &str, chars_max: u32) -> Result<(), ClientError> {
    if s.len() > u16::MAX as usize || s.chars().count() > chars_max as usize {
        return Err(ClientError::InvalidArgument(format!(
            "{what} is longer than {chars_max} characters"
        )));
    }
    Ok(())
}

pub(crate) struct CreateStream<'a> {
    pub stream: &'a str,
    pub shard_count: u32,
}
impl Op for CreateStream<'_> {
    type Output = ();
    const API: Api = Api::CreateStream;
    const IDEMPOTENT: bool = false;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::CreateStream {
            stream: self.stream,
            shard_count: self.shard_count,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        expect_done(Self::API, response)
    }
}

pub(crate) struct DeleteStream<'a> {
    pub stream: &'a str,
}
impl Op for DeleteStream<'_> {
    type Output = ();
    const API: Api = Api::DeleteStream;
    const IDEMPOTENT: bool = false;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::DeleteStream {
            stream: self.stream,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        expect_done(Self::API, response)
    }
}

pub(crate) struct Subscribe<'a> {
    pub stream: &'a str,
    pub shard_index: u32,
    pub position: StartPosition,
}
impl Op for Subscribe<'_> {
    type Output = ();
    const API: Api = Api::Subscribe;
    // A subscription dies with its connection, so a Subscribe resent on a new
    // connection cannot leave a duplicate behind.
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::Subscribe {
            stream: self.stream,
            shard_index: self.shard_index,
            position: self.position,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        expect_done(Self::API, response)
    }
}

pub(crate) struct Unsubscribe {
    pub subscription_id: u64,
}
impl Op for Unsubscribe {
    type Output = ();
    const API: Api = Api::Unsubscribe;
    const IDEMPOTENT: bool = true;
    fn request(&self) -> Request<'_> {
        Request::Unsubscribe {
            subscription_id: self.subscription_id,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<(), ClientError> {
        expect_done(Self::API, response)
    }
}

pub(crate) struct DescribeStream<'a> {
    pub stream: &'a str,
}
impl Op for DescribeStream<'_> {
    type Output = StreamDescription;
    const API: Api = Api::DescribeStream;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::DescribeStream {
            stream: self.stream,
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<StreamDescription, ClientError> {
        match response {
            Response::Stream(s) => Ok(StreamDescription {
                name: s.name.to_owned(),
                status: s.status.to_owned(),
                retention_hours: s.retention_hours,
                created_ms: s.created_ms,
                shards: s.shards,
            }),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct ListStreams;
impl Op for ListStreams {
    type Output = Vec<String>;
    const API: Api = Api::ListStreams;
    const IDEMPOTENT: bool = true;
    fn request(&self) -> Request<'_> {
        Request::ListStreams
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<Vec<String>, ClientError> {
        match response {
            Response::StreamNames(names) => Ok(names.into_iter().map(str::to_owned).collect()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct ListShards<'a> {
    pub stream: &'a str,
}
impl Op for ListShards<'_> {
    /// The stream's incarnation id and its shards.
    type Output = (u64, Vec<ShardInfo>);
    const API: Api = Api::ListShards;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::ListShards {
            stream: self.stream,
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<(u64, Vec<ShardInfo>), ClientError> {
        match response {
            Response::Shards { stream_id, shards } => Ok((stream_id, shards)),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct PutRecord<'a> {
    pub stream: &'a str,
    pub batch: AlignedVec<16>,
}
impl<'a> PutRecord<'a> {
    pub fn new(
        stream: &'a str,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: &[u8],
        limits: &Limits,
    ) -> Result<PutRecord<'a>, ClientError> {
        batch::check_record(partition_key, data.len(), limits)
            .map_err(ClientError::InvalidArgument)?;
        let batch = BatchBuilder::new().encode(&[RecordIn {
            partition_key,
            explicit_hash_key: explicit_hash_key.map(u128::to_le_bytes),
            data,
            arrival_ms: 0,
        }]);
        Ok(PutRecord { stream, batch })
    }
}
impl Op for PutRecord<'_> {
    type Output = Put;
    const API: Api = Api::PutRecord;
    const IDEMPOTENT: bool = false;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::PutRecord {
            stream: self.stream,
            batch: &self.batch,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<Put, ClientError> {
        match response {
            Response::Put {
                shard_index,
                offset,
            } => Ok(Put {
                shard_index,
                sequence_number: seqno::encode(shard_index, offset),
                sub_sequence_number: None,
            }),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

/// A stream's shards as a routing table: the key ranges sorted, checked to be
/// contiguous and to cover the whole key space (so `routing::route` cannot panic).
#[derive(Clone, Debug)]
pub struct RoutingTable {
    /// The stream incarnation the shard list belongs to; PutRecords sends it so
    /// the server refuses a request routed for a stream since deleted and
    /// created again.
    stream_id: u64,
    ranges: Vec<(u128, u128)>,
    shard_indexes: Vec<u32>,
}

impl RoutingTable {
    /// Builds the table from ListShards' answer (the open shards); a list with
    /// gaps or overlaps is a protocol error.
    pub fn new(stream_id: u64, shards: &[ShardInfo]) -> Result<RoutingTable, ClientError> {
        let mut sorted = shards.to_vec();
        sorted.sort_by_key(|s| s.hash_key_start);
        let mut expected_start = Some(0u128);
        for s in &sorted {
            if Some(s.hash_key_start) != expected_start || s.hash_key_end < s.hash_key_start {
                return Err(ClientError::protocol(format!(
                    "shard ranges do not tile the hash key space at shard {}",
                    s.shard_index
                )));
            }
            expected_start = s.hash_key_end.checked_add(1);
        }
        if sorted.is_empty() || expected_start.is_some() {
            return Err(ClientError::protocol(
                "shard ranges do not cover the hash key space",
            ));
        }
        Ok(RoutingTable {
            stream_id,
            ranges: sorted
                .iter()
                .map(|s| (s.hash_key_start, s.hash_key_end))
                .collect(),
            shard_indexes: sorted.iter().map(|s| s.shard_index).collect(),
        })
    }

    /// The stream incarnation this table was listed from.
    pub fn stream_id(&self) -> u64 {
        self.stream_id
    }

    /// Whether records route to shard `shard_index` (it is open).
    pub fn has_shard(&self, shard_index: u32) -> bool {
        self.shard_indexes.contains(&shard_index)
    }

    /// The shard a record goes to: by explicit hash key when given, else by the
    /// MD5 of its partition key.
    pub fn shard_for(&self, partition_key: &str, explicit_hash_key: Option<u128>) -> u32 {
        let hash = explicit_hash_key.unwrap_or_else(|| routing::hash_key_of(partition_key));
        self.shard_for_hash(hash)
    }

    /// The shard a hash key goes to.
    pub fn shard_for_hash(&self, hash_key: u128) -> u32 {
        self.shard_indexes[routing::route(&self.ranges, hash_key)]
    }
}

/// Records routed and grouped into one batch per shard, in input order within
/// each batch.
pub(crate) struct PutRecords<'a> {
    pub stream: &'a str,
    /// The routing table's stream incarnation (0: unchecked).
    pub stream_id: u64,
    /// Per shard: its index, its batch, and the input positions of its records.
    pub batches: Vec<(u32, AlignedVec<16>, Vec<usize>)>,
    pub record_count: usize,
}

impl<'a> PutRecords<'a> {
    pub fn new(
        stream: &'a str,
        table: &RoutingTable,
        entries: &[PutRecordsEntry<'_>],
        limits: &Limits,
    ) -> Result<PutRecords<'a>, ClientError> {
        if entries.is_empty() || entries.len() > limits.put_records_count_max as usize {
            return Err(ClientError::InvalidArgument(format!(
                "Records must contain 1 to {} entries, got {}",
                limits.put_records_count_max,
                entries.len()
            )));
        }
        let total: usize = entries
            .iter()
            .map(|e| e.data.len() + e.partition_key.len())
            .sum();
        if total > limits.request_size_max as usize {
            return Err(ClientError::InvalidArgument(format!(
                "request of {total} bytes exceeds {}",
                limits.request_size_max
            )));
        }
        let mut groups: Vec<(u32, Vec<usize>, Vec<RecordIn<'_>>)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            batch::check_record(e.partition_key, e.data.len(), limits)
                .map_err(|m| ClientError::InvalidArgument(format!("record {i}: {m}")))?;
            let shard = table.shard_for(e.partition_key, e.explicit_hash_key);
            let record = RecordIn {
                partition_key: e.partition_key,
                explicit_hash_key: e.explicit_hash_key.map(u128::to_le_bytes),
                data: e.data,
                arrival_ms: 0,
            };
            match groups.iter_mut().find(|g| g.0 == shard) {
                Some(g) => {
                    g.1.push(i);
                    g.2.push(record);
                }
                None => groups.push((shard, vec![i], vec![record])),
            }
        }
        let mut builder = BatchBuilder::new();
        let batches = groups
            .into_iter()
            .map(|(shard, indexes, records)| (shard, builder.encode(&records), indexes))
            .collect();
        Ok(PutRecords {
            stream,
            stream_id: table.stream_id(),
            batches,
            record_count: entries.len(),
        })
    }
}

impl Op for PutRecords<'_> {
    type Output = PutRecordsResults;
    const API: Api = Api::PutRecords;
    const IDEMPOTENT: bool = false;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        put_records_request(
            self.stream,
            self.stream_id,
            self.batches
                .iter()
                .map(|(shard, batch, _)| (*shard, batch.as_slice())),
        )
    }
    fn response(
        &self,
        response: Response<'_>,
        _: &Limits,
    ) -> Result<PutRecordsResults, ClientError> {
        let Response::PutBatches(results) = response else {
            return Err(unexpected(Self::API, &response));
        };
        let outcomes = batch_outcomes(&self.batches, results)?;
        let mut out: Vec<Option<Result<Put, riffle_protocol::Error>>> =
            vec![None; self.record_count];
        for ((_, _, indexes), outcome) in self.batches.iter().zip(outcomes) {
            for (&i, result) in indexes.iter().zip(outcome) {
                out[i] = Some(result);
            }
        }
        // Every input position is in exactly one batch.
        Ok(out.into_iter().flatten().collect())
    }
}

/// Whether a PutRecords outcome says the routing table is stale (the stream was
/// deleted, or deleted and created again): the whole call or a record refused
/// with ResourceNotFound. Both clients then forget the table.
pub(crate) fn routing_is_stale(result: &Result<PutRecordsResults, ClientError>) -> bool {
    match result {
        Err(e) => e.code() == Some(ErrorCode::ResourceNotFound),
        Ok(results) => results.iter().any(|r| {
            r.as_ref()
                .is_err_and(|e| e.code == ErrorCode::ResourceNotFound)
        }),
    }
}

/// A PutRecords request of one batch per shard.
pub(crate) fn put_records_request<'a>(
    stream: &'a str,
    stream_id: u64,
    batches: impl Iterator<Item = (u32, &'a [u8])>,
) -> Request<'a> {
    Request::PutRecords {
        stream,
        stream_id,
        batches: batches
            .map(|(shard_index, batch)| ShardBatch { shard_index, batch })
            .collect(),
    }
}

/// Per batch sent, the result of each of its records; checks that the server
/// answered every batch, in order, for the right shard and record count.
pub(crate) fn batch_outcomes<T>(
    sent: &[(u32, T, Vec<usize>)],
    results: Vec<riffle_protocol::native::BatchResult>,
) -> Result<Vec<Vec<Result<Put, riffle_protocol::Error>>>, ClientError> {
    if results.len() != sent.len() {
        return Err(ClientError::protocol(format!(
            "PutRecords sent {} batches, got {} results",
            sent.len(),
            results.len()
        )));
    }
    let mut out = Vec::with_capacity(sent.len());
    for ((shard, _, indexes), result) in sent.iter().zip(results) {
        if result.shard_index != *shard {
            return Err(ClientError::protocol(format!(
                "PutRecords result for shard {} answers the batch of shard {shard}",
                result.shard_index
            )));
        }
        out.push(match result.outcome {
            Ok((base, count)) => {
                if count as usize != indexes.len() || base.checked_add(count as u64).is_none() {
                    return Err(ClientError::protocol(format!(
                        "PutRecords stored {count} records at {base} for a batch of {}",
                        indexes.len()
                    )));
                }
                (0..count as u64)
                    .map(|j| {
                        Ok(Put {
                            shard_index: *shard,
                            sequence_number: seqno::encode(*shard, base + j),
                            sub_sequence_number: None,
                        })
                    })
                    .collect()
            }
            Err(e) => vec![Err(e); indexes.len()],
        });
    }
    Ok(out)
}

pub(crate) struct GetShardIterator<'a> {
    pub stream: &'a str,
    pub shard_index: u32,
    pub position: StartPosition,
}
impl Op for GetShardIterator<'_> {
    type Output = String;
    const API: Api = Api::GetShardIterator;
    const IDEMPOTENT: bool = true;
    fn check(&self, limits: &Limits) -> Result<(), ClientError> {
        check_stream(self.stream, limits)
    }
    fn request(&self) -> Request<'_> {
        Request::GetShardIterator {
            stream: self.stream,
            shard_index: self.shard_index,
            position: self.position,
        }
    }
    fn response(&self, response: Response<'_>, _: &Limits) -> Result<String, ClientError> {
        match response {
            Response::Iterator(it) => Ok(it.to_owned()),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}

pub(crate) struct GetRecords<'a> {
    pub iterator: &'a str,
    /// None: the server's default (sent as 0, so 0 itself is refused).
    pub limit: Option<u32>,
}
impl Op for GetRecords<'_> {
    type Output = GetRecordsOutput;
    const API: Api = Api::GetRecords;
    const IDEMPOTENT: bool = true;
    fn check(&self, _: &Limits) -> Result<(), ClientError> {
        if self.limit == Some(0) {
            return Err(ClientError::InvalidArgument(
                "GetRecords limit must be at least 1 (None: the server's default)".into(),
            ));
        }
        check_str("shard iterator", self.iterator, ITERATOR_CHARS_MAX)
    }
    fn request(&self) -> Request<'_> {
        Request::GetRecords {
            iterator: self.iterator,
            limit: self.limit.unwrap_or(0),
        }
    }
    fn response(
        &self,
        response: Response<'_>,
        limits: &Limits,
    ) -> Result<GetRecordsOutput, ClientError> {
        match response {
            Response::Records(r) => Ok(GetRecordsOutput {
                records: owned_records(&r, limits)?,
                next_iterator: r.next_iterator.map(str::to_owned),
                millis_behind_latest: r.millis_behind_latest,
                next_offset: r.next_offset,
            }),
            r => Err(unexpected(Self::API, &r)),
        }
    }
}
