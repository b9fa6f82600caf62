//! One native request: decode it, make the engine call, encode the reply.
//! Subscriptions run here too: after their first reply they push records as
//! they commit until cancelled, the connection closes or the server stops.

use std::rc::Rc;

use riffle_protocol::native::messages::api_name;
use riffle_protocol::native::{
    Api, BatchResult, FrameHeader, Records, Request, Response, ShardInfo, Span, StartPosition,
    StreamInfo, decode_request, encode_push, encode_response,
};
use riffle_protocol::{Error, ErrorCode};
use riffle_store::iterator::{IteratorToken, IteratorType};
use rkyv::util::AlignedVec;

use super::conn::ConnState;
use super::extension::Answer;
use crate::rt::Permit;
use crate::{GetRecordsOutput, join_all};

fn iterator_type(p: StartPosition) -> IteratorType {
    match p {
        StartPosition::TrimHorizon => IteratorType::TrimHorizon,
        StartPosition::Latest => IteratorType::Latest,
        StartPosition::AtSequenceNumber(s) => IteratorType::AtSequenceNumber(s),
        StartPosition::AfterSequenceNumber(s) => IteratorType::AfterSequenceNumber(s),
        StartPosition::AtTimestamp(t) => IteratorType::AtTimestamp(t),
    }
}

fn owned(bytes: &[u8]) -> AlignedVec<16> {
    let mut v = AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

fn records_of<'a>(out: &'a GetRecordsOutput, next_iterator: Option<&'a str>) -> Records<'a> {
    Records {
        shard_index: out.shard_index(),
        millis_behind_latest: out.millis_behind_latest,
        next_offset: out.next_offset(),
        next_iterator,
        spans: out
            .spans()
            .map(|(batch, skip, take)| Span { skip, take, batch })
            .collect(),
    }
}

/// About the size of the frame serving `got`: its batches (up to 10 MiB and
/// more), so the reply is encoded without growing its buffer again and again.
fn frame_size_hint(got: &GetRecordsOutput) -> usize {
    1024 + got
        .spans()
        .map(|(batch, _, _)| batch.len() + 24)
        .sum::<usize>()
}

/// Handles one request frame; `budget` covers the frame's bytes, `slot` is its
/// place among the connection's requests in flight (a subscription gives it back
/// once it is answered: it is long-lived, not in flight).
pub(super) async fn handle(
    state: &Rc<ConnState>,
    frame: AlignedVec<16>,
    budget: Permit,
    slot: Permit,
) {
    let server = &state.server;
    let (header, request) = match decode_request(&frame, &server.limits) {
        Ok(ok) => ok,
        Err((header, e)) => {
            let (api_key, request_id) = header.map_or((0, 0), |h| (h.api_key, h.request_id));
            let error = Error::invalid(e.to_string());
            state.send_error(api_key, request_id, &error).await;
            return;
        }
    };
    // Its record in the audit trail (as the AWS call it is), completed with
    // its outcome below.
    let mut pending = server.config.trail.as_ref().and_then(|trail| {
        super::audit::draft(
            trail,
            &request,
            || state.auth.key(),
            state.peer.map(|p| p.ip()),
        )
    });
    // Who the connection is, and whether it may make this request.
    let auth = server.config.auth.as_ref();
    let answered = match request {
        Request::AuthChallenge => Some(state.auth.challenge().map(|nonce| {
            let mut out = Vec::new();
            encode_response(
                &mut out,
                Api::AuthChallenge,
                header.request_id,
                &Response::Challenge { nonce },
            );
            out
        })),
        Request::Authenticate {
            access_key_id,
            proof,
        } => Some(
            state
                .auth
                .authenticate(auth, access_key_id, &proof)
                .map(|principal| {
                    let mut out = Vec::new();
                    encode_response(
                        &mut out,
                        Api::Authenticate,
                        header.request_id,
                        &Response::Authenticated {
                            principal: &principal,
                        },
                    );
                    out
                }),
        ),
        _ => state
            .auth
            .decide(
                auth,
                &server.engine,
                &request,
                state.peer.map(|p| p.ip()),
                server.tls.is_some(),
            )
            .err()
            .map(Err),
    };
    if let Some(answer) = answered {
        match answer {
            Ok(out) => {
                state.send(out, None).await;
            }
            Err(e) => {
                super::audit::finish(pending.take(), Err(&e));
                state
                    .send_error(header.api_key, header.request_id, &e)
                    .await;
            }
        }
        return;
    }
    // Internal streams (a service's, `firehose:<name>`) are not the clients':
    // they do not exist for the native protocol.
    if let Some(stream) = named_stream(&request)
        && riffle_store::catalog::is_internal_stream(stream)
    {
        let error = Error::not_found(format!(
            "Stream {stream} under account {} not found.",
            server.engine.config().account
        ));
        super::audit::finish(pending.take(), Err(&error));
        state
            .send_error(header.api_key, header.request_id, &error)
            .await;
        return;
    }
    if let Request::Subscribe {
        stream,
        shard_index,
        position,
    } = request
    {
        let stream = stream.to_string();
        drop(budget);
        drop(slot);
        subscribe(
            state,
            header,
            &stream,
            shard_index,
            position,
            pending.take(),
        )
        .await;
        return;
    }
    let mut out = Vec::new();
    let result = match extension_api(&request) {
        Some(api) => call_extension(state, api, &header, &request, &mut out).await,
        None => call(state, &header, &request, &mut out).await,
    };
    drop(request);
    drop(frame);
    drop(budget);
    super::audit::finish(pending.take(), result.as_ref().map(|_| ()));
    match result {
        Ok(()) => {
            let reply_budget = server.budget.acquire(out.len() as u64).await;
            state.send(out, reply_budget).await;
        }
        Err(e) => {
            state
                .send_error(header.api_key, header.request_id, &e)
                .await;
        }
    }
}

/// The stream a request names, if any.
fn named_stream<'a>(request: &Request<'a>) -> Option<&'a str> {
    match *request {
        Request::CreateStream { stream, .. }
        | Request::DeleteStream { stream }
        | Request::DescribeStream { stream }
        | Request::ListShards { stream }
        | Request::PutRecord { stream, .. }
        | Request::PutRecords { stream, .. }
        | Request::GetShardIterator { stream, .. }
        | Request::Subscribe { stream, .. }
        | Request::GroupHeartbeat { stream, .. }
        | Request::GroupCheckpoint { stream, .. }
        | Request::GroupDescribe { stream, .. }
        | Request::GroupLeave { stream, .. } => Some(stream),
        Request::Ping { .. }
        | Request::ListStreams
        | Request::GetRecords { .. }
        | Request::Unsubscribe { .. }
        | Request::FirehosePutRecordBatch { .. }
        | Request::FirehoseDescribe { .. }
        | Request::AuthChallenge
        | Request::Authenticate { .. } => None,
    }
}

/// The request's api when an extension serves it, not the engine.
fn extension_api(request: &Request<'_>) -> Option<Api> {
    let api = request.api();
    super::EXTENSION_APIS.contains(&api).then_some(api)
}

/// Hands the request to the extension registered for `api`.
async fn call_extension(
    state: &ConnState,
    api: Api,
    header: &FrameHeader,
    request: &Request<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let extensions = state.server.extensions.borrow().clone();
    let Some(extension) = extensions.get(api) else {
        return Err(Error::invalid(format!(
            "{} is not served by this server (no extension serves it)",
            api_name(api)
        )));
    };
    extension
        .call(request, Answer::new(api, header.request_id, out))
        .await?;
    if out.is_empty() {
        return Err(Error::internal(format!(
            "extension {} answered {} with nothing",
            extension.name(),
            api_name(api)
        )));
    }
    Ok(())
}

/// Makes the engine call for `request` and encodes its response into `out`.
async fn call(
    state: &ConnState,
    header: &FrameHeader,
    request: &Request<'_>,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let engine = &state.server.engine;
    let (api, id) = (request.api(), header.request_id);
    let response = |out: &mut Vec<u8>, r: Response<'_>| {
        encode_response(out, api, id, &r);
    };
    match *request {
        Request::Ping { nonce } => response(out, Response::Pong { nonce }),
        Request::CreateStream {
            stream,
            shard_count,
        } => {
            engine.create_stream(stream, shard_count).await?;
            response(out, Response::Done)
        }
        Request::DeleteStream { stream } => {
            engine.delete_stream(stream).await?;
            response(out, Response::Done)
        }
        Request::DescribeStream { stream } => {
            let d = engine.describe_stream(stream)?;
            // The native protocol routes by these: open shards only.
            let shards = d
                .shards
                .iter()
                .filter(|s| s.is_open())
                .map(shard_info)
                .collect();
            response(
                out,
                Response::Stream(StreamInfo {
                    name: &d.name,
                    status: d.status,
                    retention_hours: d.retention_hours,
                    created_ms: d.created_ms,
                    shards,
                }),
            )
        }
        Request::ListStreams => {
            let mut names = engine.list_streams();
            names.sort();
            response(
                out,
                Response::StreamNames(names.iter().map(String::as_str).collect()),
            )
        }
        Request::ListShards { stream } => {
            let stream_id = engine.stream_id(stream)?;
            let shards = engine.list_shards(stream)?;
            response(
                out,
                Response::Shards {
                    stream_id,
                    shards: shards
                        .iter()
                        .filter(|s| s.is_open())
                        .map(shard_info)
                        .collect(),
                },
            )
        }
        Request::PutRecord { stream, batch } => {
            let started = std::time::Instant::now();
            let put = engine.append_routed(stream, owned(batch)).await;
            if let Some(m) = engine.metrics_of(stream) {
                m.put_record.record(put.is_ok(), started.elapsed());
            }
            let (shard_index, appended) = put?;
            response(
                out,
                Response::Put {
                    shard_index,
                    offset: appended.base_offset,
                },
            )
        }
        Request::PutRecords {
            stream,
            stream_id,
            ref batches,
        } => {
            if batches.is_empty() {
                return Err(Error::invalid("PutRecords needs at least one batch"));
            }
            // The whole request fails before any append when the client routed
            // with the shards of an earlier incarnation of the stream.
            let expected = (stream_id != 0).then_some(stream_id);
            let started = std::time::Instant::now();
            let checked = engine.check_incarnation(stream, expected);
            let metrics = engine.metrics_of(stream);
            if let (Err(_), Some(m)) = (&checked, &metrics) {
                m.put_records.record(false, started.elapsed());
            }
            checked?;
            let appends = batches
                .iter()
                .map(|b| async move {
                    let appended = engine
                        .append_batch(stream, expected, b.shard_index, owned(b.batch))
                        .await?;
                    Ok::<_, Error>((appended.base_offset, appended.record_count))
                })
                .collect();
            let results = join_all(appends)
                .await
                .into_iter()
                .zip(batches)
                .map(|(outcome, b)| BatchResult {
                    shard_index: b.shard_index,
                    outcome,
                })
                .collect();
            if let Some(m) = metrics {
                m.put_records.record(true, started.elapsed());
            }
            response(out, Response::PutBatches(results))
        }
        Request::GetShardIterator {
            stream,
            shard_index,
            position,
        } => {
            let it = engine
                .get_shard_iterator_at(stream, shard_index, iterator_type(position))
                .await?;
            response(out, Response::Iterator(&it))
        }
        Request::GetRecords { iterator, limit } => {
            let got = engine
                .get_records(iterator, (limit > 0).then_some(limit))
                .await?;
            let next = got.next_shard_iterator.as_deref();
            out.reserve(frame_size_hint(&got));
            response(out, Response::Records(records_of(&got, next)))
        }
        Request::Unsubscribe { subscription_id } => {
            if !state.subscriptions.borrow_mut().remove(&subscription_id) {
                return Err(Error::not_found(format!(
                    "no open subscription with request id {subscription_id} on this connection"
                )));
            }
            response(out, Response::Done)
        }
        Request::Subscribe { .. } => unreachable!("subscriptions are handled by `subscribe`"),
        Request::FirehosePutRecordBatch { .. }
        | Request::FirehoseDescribe { .. }
        | Request::GroupHeartbeat { .. }
        | Request::GroupCheckpoint { .. }
        | Request::GroupDescribe { .. }
        | Request::GroupLeave { .. } => {
            unreachable!("extensions' requests are handled by `call_extension`")
        }
        Request::AuthChallenge | Request::Authenticate { .. } => {
            unreachable!("authentication is answered by `handle`")
        }
    }
    Ok(())
}

fn shard_info(d: &crate::ShardDescription) -> ShardInfo {
    ShardInfo {
        shard_index: d.shard_index,
        hash_key_start: d.hash_key_start,
        hash_key_end: d.hash_key_end,
    }
}

/// Answers a Subscribe, then pushes records as they commit. Ends (with an END
/// push) on Unsubscribe or server shutdown, with an error frame when reading
/// fails (e.g. the stream was deleted), silently when the connection is gone.
async fn subscribe(
    state: &Rc<ConnState>,
    header: FrameHeader,
    stream: &str,
    shard_index: u32,
    position: StartPosition,
    audit: Option<crate::http::trail::Pending>,
) {
    let server = &state.server;
    let id = header.request_id;
    // Its record in the audit trail: refused, or made once its cursor is.
    let audit = std::cell::RefCell::new(audit);
    let fail = |e: Error| {
        super::audit::finish(audit.borrow_mut().take(), Err(&e));
        async move { state.send_error(Api::Subscribe as u16, id, &e).await }
    };
    if state.subscriptions.borrow().len() >= server.config.connection_subscriptions_max {
        fail(Error::new(
            ErrorCode::LimitExceeded,
            format!(
                "this connection already has {} open subscriptions",
                server.config.connection_subscriptions_max
            ),
        ))
        .await;
        return;
    }
    if !state.subscriptions.borrow_mut().insert(id) {
        fail(Error::in_use(format!(
            "request id {id} already names an open subscription"
        )))
        .await;
        return;
    }
    let cursor = server
        .engine
        .shard_cursor(stream, shard_index, iterator_type(position))
        .await;
    let mut cursor: IteratorToken = match cursor {
        Ok(c) => c,
        Err(e) => {
            state.subscriptions.borrow_mut().remove(&id);
            fail(e).await;
            return;
        }
    };
    super::audit::finish(audit.borrow_mut().take(), Ok(()));
    let mut out = Vec::new();
    encode_response(&mut out, Api::Subscribe, id, &Response::Done);
    if !state.send(out, None).await {
        return;
    }
    loop {
        let cancelled = !state.subscriptions.borrow().contains(&id);
        if cancelled || server.stopping.get() {
            let end = Records {
                shard_index,
                millis_behind_latest: 0,
                next_offset: cursor.offset,
                next_iterator: None,
                spans: Vec::new(),
            };
            let mut out = Vec::new();
            encode_push(&mut out, id, &end, true);
            state.subscriptions.borrow_mut().remove(&id);
            state.send(out, None).await;
            return;
        }
        let got = server
            .engine
            .read_at(&cursor, None, server.config.subscription_wait_ms)
            .await;
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                state.subscriptions.borrow_mut().remove(&id);
                fail(e).await;
                return;
            }
        };
        // The end of a shard closed by resharding: its last records, then the
        // end push (the client continues with the children).
        let shard_end = got.child_shards.is_some();
        if got.record_count == 0 && !shard_end {
            continue;
        }
        cursor.offset = got.next_offset();
        let mut out = Vec::with_capacity(frame_size_hint(&got));
        encode_push(&mut out, id, &records_of(&got, None), shard_end);
        drop(got);
        let budget = server.budget.acquire(out.len() as u64).await;
        if !state.send(out, budget).await || shard_end {
            state.subscriptions.borrow_mut().remove(&id);
            return;
        }
    }
}
