//! The async client: one pipelined connection over any `futures_io` stream, for
//! use from a single thread (glommio, or tokio through tokio-util's compat).
//!
//! Pipelining without a background task: requests are appended whole to a shared
//! output buffer and replies land in per-request slots of a shared table, both in
//! one `RefCell` that is never borrowed across an `.await`. Whichever call is
//! being polled drives the connection: it writes what is buffered, then reads and
//! dispatches frames (waking their owners) until its own reply is there or the
//! stream says Pending, and then it leaves its waker with the stream. A call that
//! finishes or is dropped wakes one other waiting call, so that somebody is
//! always registered with the stream while replies are owed. All I/O state (the
//! partial frame being read, the unsent bytes) lives in the shared state, never
//! in a future, so dropping a future at any point (a timeout) is safe: its frame
//! still goes out whole and its reply is dropped on arrival.
//!
//! No reconnects: when the stream fails, every pending and later call fails with
//! `ConnectionLost`; make a new client over a new stream. No timeouts either:
//! wrap calls in the runtime's timeout.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use riffle_protocol::ErrorCode;
use riffle_protocol::native::{
    Api, BatchResult, Response, StartPosition, flags, response_frame_size_max,
};

use crate::config::AsyncClientConfig;
use crate::error::ClientError;
use crate::frames::{Frame, FrameAssembler};
use crate::ops::{self, Op, RoutingTable};
use crate::types::{
    GetRecordsOutput, Put, PutRecordsEntry, PutRecordsResults, ShardInfo, StreamDescription,
    SubscriptionEvent,
};
use crate::view::{PutBatches, RecordsView};

enum Slot {
    /// A request with one reply. `frame_end` is where its frame ends in the
    /// stream of bytes written, so a failure can say whether it was sent.
    Once {
        frame_end: u64,
        waker: Option<Waker>,
        reply: Option<Frame>,
    },
    /// A subscription: frames queue here until its handle takes them.
    Stream {
        waker: Option<Waker>,
        queue: VecDeque<Frame>,
        /// The end frame (or an error) is queued: nothing more will come.
        finished: bool,
        lagged: bool,
    },
}

impl Slot {
    fn waker(&mut self) -> &mut Option<Waker> {
        match self {
            Slot::Once { waker, .. } | Slot::Stream { waker, .. } => waker,
        }
    }
}

struct State<S> {
    io: S,
    /// Frames not yet written, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes written before `out[0]`.
    out_base: u64,
    flush_needed: bool,
    asm: FrameAssembler,
    slots: HashMap<u64, Slot>,
    next_id: u64,
    dead: Option<String>,
    /// Wakers to call once the state is no longer borrowed.
    to_wake: Vec<Waker>,
    frames_max: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> State<S> {
    fn written(&self) -> u64 {
        self.out_base + self.out_pos as u64
    }

    fn fail(&mut self, reason: String) {
        if self.dead.is_some() {
            return;
        }
        tracing::debug!(%reason, "riffle async connection closed");
        self.dead = Some(reason);
        for slot in self.slots.values_mut() {
            if let Some(w) = slot.waker().take() {
                self.to_wake.push(w);
            }
        }
    }

    fn connection_lost(&self, request_sent: bool) -> ClientError {
        ClientError::ConnectionLost {
            request_sent,
            reason: self
                .dead
                .clone()
                .unwrap_or_else(|| "the connection is closed".into()),
        }
    }

    /// Appends a request frame and registers its slot.
    fn start<O: Op>(&mut self, op: &O, stream: bool) -> Result<u64, ClientError> {
        if self.dead.is_some() {
            return Err(self.connection_lost(false));
        }
        let id = self.next_id;
        self.next_id += 1;
        ops::encode(op, id, &mut self.out);
        let frame_end = self.out_base + self.out.len() as u64;
        let slot = if stream {
            Slot::Stream {
                waker: None,
                queue: VecDeque::new(),
                finished: false,
                lagged: false,
            }
        } else {
            Slot::Once {
                frame_end,
                waker: None,
                reply: None,
            }
        };
        self.slots.insert(id, slot);
        Ok(id)
    }

    /// Queues a request nobody waits for (an unsubscribe from a drop).
    fn fire_and_forget<O: Op>(&mut self, op: &O) {
        if self.dead.is_none() {
            let id = self.next_id;
            self.next_id += 1;
            ops::encode(op, id, &mut self.out);
        }
    }

    /// Writes what is buffered, as far as the stream takes it.
    fn poll_write(&mut self, cx: &mut Context<'_>) {
        while self.out_pos < self.out.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_pos..]) {
                Poll::Ready(Ok(0)) => return self.fail("the stream accepts no more bytes".into()),
                Poll::Ready(Ok(n)) => {
                    self.out_pos += n;
                    self.flush_needed = true;
                }
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return self.fail(format!("write failed: {e}")),
                Poll::Pending => return,
            }
        }
        self.out_base += self.out.len() as u64;
        self.out.clear();
        self.out_pos = 0;
        if self.flush_needed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.flush_needed = false,
                Poll::Ready(Err(e)) => self.fail(format!("flush failed: {e}")),
                Poll::Pending => {}
            }
        }
    }

    /// Reads the next whole frame.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame, String>> {
        loop {
            match self.asm.next_frame() {
                Ok(Some(frame)) => return Poll::Ready(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e.to_string())),
            }
            match Pin::new(&mut self.io).poll_read(cx, self.asm.read_buf()) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err("the server closed the connection".into()));
                }
                Poll::Ready(Ok(n)) => self.asm.filled(n),
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(format!("read failed: {e}"))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Puts a frame into its slot and wakes the slot's owner.
    fn dispatch(&mut self, frame: Frame) {
        let id = frame.request_id();
        let f = frame.header.flags;
        let frames_max = self.frames_max;
        let mut unsubscribe = false;
        match self.slots.get_mut(&id) {
            None => tracing::trace!(id, "dropping a frame nobody waits for"),
            Some(Slot::Once { reply, waker, .. }) => {
                // Whatever it is (even a push), it answers this request; the
                // waiter's decoding judges it.
                *reply = Some(frame);
                self.to_wake.extend(waker.take());
            }
            Some(Slot::Stream {
                waker,
                queue,
                finished,
                lagged,
            }) => {
                if *finished || *lagged {
                    return;
                }
                if queue.len() >= frames_max {
                    *lagged = true;
                    queue.clear();
                    unsubscribe = true;
                } else {
                    *finished = f & (flags::END | flags::ERROR) != 0;
                    queue.push_back(frame);
                }
                self.to_wake.extend(waker.take());
            }
        }
        if unsubscribe {
            self.fire_and_forget(&ops::Unsubscribe {
                subscription_id: id,
            });
        }
    }

    /// Drives the connection on behalf of slot `id` until `ready` finds what
    /// it waits for; leaves `cx`'s waker in the slot otherwise.
    fn drive<T>(
        &mut self,
        id: u64,
        cx: &mut Context<'_>,
        mut ready: impl FnMut(&mut State<S>) -> Option<T>,
    ) -> Poll<T> {
        loop {
            // `ready` answers `Some` once the connection is dead.
            if let Some(out) = ready(self) {
                return Poll::Ready(out);
            }
            self.poll_write(cx);
            if self.dead.is_some() {
                continue;
            }
            match self.poll_frame(cx) {
                Poll::Ready(Ok(frame)) => self.dispatch(frame),
                Poll::Ready(Err(reason)) => self.fail(reason),
                Poll::Pending => {
                    if let Some(slot) = self.slots.get_mut(&id) {
                        *slot.waker() = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The reply of request `id` if it is there, or its failure.
    fn take_reply(&mut self, id: u64) -> Option<Result<Frame, ClientError>> {
        let written = self.written();
        let sent = match self.slots.get_mut(&id) {
            Some(Slot::Once {
                reply, frame_end, ..
            }) => {
                if let Some(frame) = reply.take() {
                    return Some(Ok(frame));
                }
                written >= *frame_end
            }
            _ => true,
        };
        self.dead.is_some().then(|| Err(self.connection_lost(sent)))
    }

    /// The next frame of subscription `id` if there is one, `Some(None)` after
    /// its last frame, or its failure.
    fn take_push(&mut self, id: u64) -> Option<Option<Result<Frame, ClientError>>> {
        let frames_max = self.frames_max;
        match self.slots.get_mut(&id) {
            Some(Slot::Stream {
                queue,
                finished,
                lagged,
                ..
            }) => {
                if let Some(frame) = queue.pop_front() {
                    return Some(Some(Ok(frame)));
                }
                if *lagged {
                    return Some(Some(Err(ClientError::Lagged { frames_max })));
                }
                if *finished {
                    return Some(None);
                }
            }
            _ => return Some(None),
        }
        self.dead
            .is_some()
            .then(|| Some(Err(self.connection_lost(true))))
    }

    /// A waiter of slot `id` stops waiting (it got what it wanted or its future
    /// was dropped): its waker is stale, and one other waiter must take over
    /// reading the stream in case this one was registered with it.
    fn stop_waiting(&mut self, id: u64) {
        if let Some(slot) = self.slots.get_mut(&id) {
            *slot.waker() = None;
        }
        if let Some(w) = self.slots.values_mut().find_map(|s| s.waker().take()) {
            self.to_wake.push(w);
        }
    }

    /// Forgets slot `id` and wakes one other waiter to take over the stream.
    fn release(&mut self, id: u64) {
        self.stop_waiting(id);
        self.slots.remove(&id);
    }
}

/// Ends a wait on a slot however the wait ends (a dropped future too): a call's
/// slot is forgotten, a subscription's stays for its next wait.
struct WaitGuard<'c, S: AsyncRead + AsyncWrite + Unpin> {
    client: &'c AsyncClient<S>,
    id: u64,
    release: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Drop for WaitGuard<'_, S> {
    fn drop(&mut self) {
        let (id, release) = (self.id, self.release);
        self.client.with(|st| {
            if release {
                st.release(id)
            } else {
                st.stop_waiting(id)
            }
        });
    }
}

/// The async native-protocol client. Not `Send`: one thread, many concurrent calls.
pub struct AsyncClient<S> {
    state: RefCell<State<S>>,
    config: AsyncClientConfig,
    routing: RefCell<HashMap<String, Rc<RoutingTable>>>,
}

impl<S> std::fmt::Debug for AsyncClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncClient<S> {
    /// A client over a connected stream (TCP_NODELAY is the caller's to set).
    pub fn new(io: S, config: AsyncClientConfig) -> AsyncClient<S> {
        AsyncClient {
            state: RefCell::new(State {
                io,
                out: Vec::new(),
                out_pos: 0,
                out_base: 0,
                flush_needed: false,
                asm: FrameAssembler::new(response_frame_size_max(&config.limits)),
                slots: HashMap::new(),
                next_id: 1,
                dead: None,
                to_wake: Vec::new(),
                frames_max: config.subscription_frames_max.max(1),
            }),
            config,
            routing: RefCell::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &AsyncClientConfig {
        &self.config
    }

    /// Why the connection is unusable, once it is.
    pub fn failure(&self) -> Option<String> {
        self.state.borrow().dead.clone()
    }

    /// Runs `f` on the state, then wakes whoever `f` made ready.
    fn with<T>(&self, f: impl FnOnce(&mut State<S>) -> T) -> T {
        let (out, to_wake) = {
            let mut st = self.state.borrow_mut();
            let out = f(&mut st);
            (out, std::mem::take(&mut st.to_wake))
        };
        for w in to_wake {
            w.wake();
        }
        out
    }

    /// Proves `credentials` on this connection, as the blocking client does
    /// on each of its connections: a challenge, then its proof (HMAC-SHA256
    /// of the nonce; the secret never sent). A server with `--auth sigv4`
    /// takes no other call before; answers the principal it authenticated.
    pub async fn authenticate(
        &self,
        credentials: &crate::config::Credentials,
    ) -> Result<String, ClientError> {
        let nonce = self.call(&crate::ops::AuthChallenge).await?;
        let proof = riffle_protocol::native::auth::proof(
            &credentials.secret_access_key,
            &nonce,
            &credentials.access_key_id,
        );
        self.call(&crate::ops::Authenticate {
            access_key_id: &credentials.access_key_id,
            proof,
        })
        .await
    }

    pub(crate) async fn call<O: Op>(&self, op: &O) -> Result<O::Output, ClientError> {
        let reply = self.call_frame(op).await?;
        self.decode(op, reply)
    }

    /// Sends `op` and waits for its reply frame, undecoded.
    async fn call_frame<O: Op>(&self, op: &O) -> Result<Frame, ClientError> {
        op.check(&self.config.limits)?;
        let id = self.with(|st| st.start(op, false))?;
        let guard = WaitGuard {
            client: self,
            id,
            release: true,
        };
        let reply = poll_fn(|cx| self.with(|st| st.drive(id, cx, |st| st.take_reply(id)))).await;
        drop(guard);
        reply
    }

    /// Decodes a reply. A bad frame concerns its request only: the connection
    /// goes on (docs/protocol.md; only a frame size out of bounds loses the stream).
    fn decode<O: Op>(&self, op: &O, frame: Frame) -> Result<O::Output, ClientError> {
        ops::decode(op, &frame, &self.config.limits)
    }

    /// Round trip of one ping.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        let nonce = self.state.borrow().next_id;
        self.call(&ops::Ping { nonce }).await?;
        Ok(start.elapsed())
    }

    pub async fn create_stream(&self, stream: &str, shard_count: u32) -> Result<(), ClientError> {
        self.call(&ops::CreateStream {
            stream,
            shard_count,
        })
        .await
    }

    pub async fn delete_stream(&self, stream: &str) -> Result<(), ClientError> {
        self.forget_routing(stream);
        self.call(&ops::DeleteStream { stream }).await
    }

    pub async fn describe_stream(&self, stream: &str) -> Result<StreamDescription, ClientError> {
        self.call(&ops::DescribeStream { stream }).await
    }

    pub async fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        self.call(&ops::ListStreams).await
    }

    pub async fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, ClientError> {
        Ok(self.call(&ops::ListShards { stream }).await?.1)
    }

    /// The stream's routing table, from a cache filled by ListShards.
    pub async fn routing_table(&self, stream: &str) -> Result<Rc<RoutingTable>, ClientError> {
        if let Some(table) = self.routing.borrow().get(stream) {
            return Ok(table.clone());
        }
        let (stream_id, shards) = self.call(&ops::ListShards { stream }).await?;
        let table = Rc::new(RoutingTable::new(stream_id, &shards)?);
        self.routing
            .borrow_mut()
            .insert(stream.to_owned(), table.clone());
        Ok(table)
    }

    pub fn forget_routing(&self, stream: &str) {
        self.routing.borrow_mut().remove(stream);
    }

    /// Puts one record; the server routes it.
    pub async fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        explicit_hash_key: Option<u128>,
        data: &[u8],
    ) -> Result<Put, ClientError> {
        let op = ops::PutRecord::new(
            stream,
            partition_key,
            explicit_hash_key,
            data,
            &self.config.limits,
        )?;
        self.call(&op).await
    }

    /// Puts records routed here, one batch per shard; per-record results in input
    /// order (see `Client::put_records`).
    pub async fn put_records(
        &self,
        stream: &str,
        entries: &[PutRecordsEntry<'_>],
    ) -> Result<PutRecordsResults, ClientError> {
        let table = self.routing_table(stream).await?;
        let op = ops::PutRecords::new(stream, &table, entries, &self.config.limits)?;
        let mut result = self.call(&op).await;
        if result
            .as_ref()
            .is_err_and(|e| e.code() == Some(ErrorCode::ResourceNotFound))
        {
            // As in `Client::put_records`: refused before any append, so a resend
            // routed with a fresh table of a recreated stream is safe.
            self.forget_routing(stream);
            if let Ok(fresh) = self.routing_table(stream).await
                && fresh.stream_id() != table.stream_id()
            {
                let op = ops::PutRecords::new(stream, &fresh, entries, &self.config.limits)?;
                result = self.call(&op).await;
            }
        }
        if ops::routing_is_stale(&result) {
            self.forget_routing(stream);
        }
        result
    }

    pub async fn get_shard_iterator(
        &self,
        stream: &str,
        shard_index: u32,
        position: StartPosition,
    ) -> Result<String, ClientError> {
        self.call(&ops::GetShardIterator {
            stream,
            shard_index,
            position,
        })
        .await
    }

    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<u32>,
    ) -> Result<GetRecordsOutput, ClientError> {
        self.call(&ops::GetRecords { iterator, limit }).await
    }

    /// PutRecords of batches the caller encoded (`riffle_protocol::batch::BatchBuilder`)
    /// and routed itself, at most one per shard: `(shard_index, batch)`. `stream_id`
    /// is the routing table's incarnation ([`RoutingTable::stream_id`]; 0 skips the
    /// check). One result per batch, in order: its first offset and record count,
    /// or why it was refused. No retries.
    pub async fn put_batches(
        &self,
        stream: &str,
        stream_id: u64,
        batches: &[(u32, &[u8])],
    ) -> Result<Vec<BatchResult>, ClientError> {
        self.call(&PutBatches {
            stream,
            stream_id,
            batches,
        })
        .await
    }

    /// GetRecords without copying records out of the reply: `f` gets the records
    /// in place (validated like [`AsyncClient::get_records`]'s) and its result is
    /// returned.
    pub async fn get_records_view<T>(
        &self,
        iterator: &str,
        limit: Option<u32>,
        f: impl FnOnce(RecordsView<'_>) -> T,
    ) -> Result<T, ClientError> {
        let op = ops::GetRecords { iterator, limit };
        let frame = self.call_frame(&op).await?;
        let limits = &self.config.limits;
        match ops::decode_response(&frame, Api::GetRecords, limits)? {
            Response::Records(records) => Ok(f(RecordsView::new(records, false, limits)?)),
            r => Err(ops::unexpected(Api::GetRecords, &r)),
        }
    }

    /// Subscribes to a shard; the handle yields pushed events.
    pub async fn subscribe(
        &self,
        stream: &str,
        shard_index: u32,
        position: StartPosition,
    ) -> Result<AsyncSubscription<'_, S>, ClientError> {
        let op = ops::Subscribe {
            stream,
            shard_index,
            position,
        };
        op.check(&self.config.limits)?;
        let id = self.with(|st| st.start(&op, true))?;
        let mut subscription = AsyncSubscription {
            client: self,
            id,
            ended: false,
        };
        let first = subscription.next_frame().await;
        let Some(first) = first else {
            subscription.ended = true;
            return Err(ClientError::protocol("a subscription ended unconfirmed"));
        };
        let first = first.inspect_err(|_| subscription.ended = true)?;
        if first.header.flags & flags::PUSH != 0 {
            // Pushes are meant to follow the confirmation; keep this one queued.
            self.with(|st| {
                if let Some(Slot::Stream { queue, .. }) = st.slots.get_mut(&id) {
                    queue.push_front(first);
                }
            });
            return Ok(subscription);
        }
        if first.header.flags & flags::ERROR != 0 {
            subscription.ended = true;
        }
        self.decode(&op, first)?;
        Ok(subscription)
    }
}

/// A live subscription on an [`AsyncClient`]. Dropping it queues an unsubscribe
/// that goes out with the connection's next write.
pub struct AsyncSubscription<'c, S: AsyncRead + AsyncWrite + Unpin> {
    client: &'c AsyncClient<S>,
    id: u64,
    ended: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> std::fmt::Debug for AsyncSubscription<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSubscription")
            .field("id", &self.id)
            .field("ended", &self.ended)
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncSubscription<'_, S> {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next queued frame: `None` once the end frame was taken.
    async fn next_frame(&mut self) -> Option<Result<Frame, ClientError>> {
        let id = self.id;
        let guard = WaitGuard {
            client: self.client,
            id,
            release: false,
        };
        let frame = poll_fn(|cx| {
            self.client
                .with(|st| st.drive(id, cx, |st| st.take_push(id)))
        })
        .await;
        drop(guard);
        if !matches!(frame, Some(Ok(_))) {
            self.ended = true;
        }
        frame
    }

    /// The next event; `None` after the end frame or an error.
    pub async fn next(&mut self) -> Option<Result<SubscriptionEvent, ClientError>> {
        if self.ended {
            return None;
        }
        let frame = match self.next_frame().await? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        let event = ops::decode_push(&frame, &self.client.config.limits);
        self.settle(event.as_ref().map(|e| e.end));
        Some(event)
    }

    /// The next push in place (see [`AsyncClient::get_records_view`]): `f` gets its
    /// records and its result is returned; `None` after the end frame or an error.
    pub async fn next_view<T>(
        &mut self,
        f: impl FnOnce(RecordsView<'_>) -> T,
    ) -> Option<Result<T, ClientError>> {
        if self.ended {
            return None;
        }
        let frame = match self.next_frame().await? {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        let limits = &self.client.config.limits;
        let view = ops::decode_push_records(&frame, limits)
            .and_then(|(records, end)| RecordsView::new(records, end, limits));
        self.settle(view.as_ref().map(|v| v.end));
        Some(view.map(f))
    }

    /// After a push was taken: `Ok(end)` or why it could not be decoded. The end
    /// frame and errors end the subscription; a push that could not be decoded was
    /// lost, so the subscription cannot go on without a gap and is dropped.
    fn settle(&mut self, outcome: Result<bool, &ClientError>) {
        match outcome {
            Ok(false) => {}
            Err(ClientError::Protocol(_)) => {
                let id = self.id;
                self.client.with(|st| {
                    st.release(id);
                    st.fire_and_forget(&ops::Unsubscribe {
                        subscription_id: id,
                    })
                });
                self.ended = true;
            }
            _ => self.ended = true,
        }
    }

    /// Ends the subscription and waits for the server to confirm.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        let was_ended = self.ended;
        self.ended = true;
        self.client.with(|st| st.release(self.id));
        if was_ended || self.client.failure().is_some() {
            return Ok(());
        }
        match self
            .client
            .call(&ops::Unsubscribe {
                subscription_id: self.id,
            })
            .await
        {
            Err(ClientError::ConnectionLost { .. }) => Ok(()),
            result => result,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Drop for AsyncSubscription<'_, S> {
    fn drop(&mut self) {
        let ended = self.ended;
        let id = self.id;
        self.client.with(|st| {
            st.release(id);
            if !ended {
                st.fire_and_forget(&ops::Unsubscribe {
                    subscription_id: id,
                });
            }
        });
    }
}
