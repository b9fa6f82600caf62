//! The blocking client: one pipelined TCP connection shared by every thread that
//! holds a clone, re-established lazily with backoff when it breaks.
//!
//! Pipelining: a caller registers a slot under a fresh request id, writes its whole
//! frame under the writer lock, and waits on its slot (with the request timeout).
//! One reader thread per connection cuts the incoming bytes into frames and hands
//! each to the slot of its request id, in whatever order the server answers.
//! Replies are decoded by the thread that waits for them, not by the reader. When
//! the connection breaks, every waiting slot learns it at once, with whether its
//! request had been sent; non-idempotent requests that were sent are never resent.
//!
//! Concurrency contract: `Client` is `Send + Sync + Clone`; the writer lock is held
//! only while one frame is written, the slot table lock never across I/O.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use riffle_protocol::ErrorCode;
use riffle_protocol::native::{StartPosition, flags, response_frame_size_max};

use crate::config::{Backoff, ClientConfig};
use crate::error::ClientError;
use crate::frames::{Frame, FrameAssembler};
use crate::ops::{self, Op, RoutingTable};
use crate::types::{
    GetRecordsOutput, Put, PutRecordsEntry, PutRecordsResults, ShardInfo, StreamDescription,
    SubscriptionEvent,
};

/// Locks a mutex even if a panicking thread poisoned it: every critical section
/// here leaves its data consistent at each step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called once with a request's reply frame, or with the error that ended it.
pub(crate) type Deliver = Box<dyn FnOnce(Result<Frame, ClientError>) + Send>;

/// Who waits for the frames of a request id.
enum Slot {
    /// A request with one reply. `sent` turns true just before its frame is
    /// written (so a failure report errs on the side of "sent").
    Once { sent: bool, deliver: Deliver },
    /// A subscription: its confirmation, its pushes, and its last frame.
    Stream { tx: SyncSender<Frame> },
}

struct ConnState {
    slots: HashMap<u64, Slot>,
    /// Why the connection is unusable, once it is.
    dead: Option<String>,
}

/// The TLS records a session has to send, taken out of it.
fn encrypted(session: &mut rustls::ClientConnection) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut out)?;
    }
    Ok(out)
}

/// TLS bytes read from the socket and not yet fed to the session.
struct RawTls {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Default for RawTls {
    /// Its buffer is made by the first TLS read (a plain connection has none).
    fn default() -> RawTls {
        RawTls {
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }
}

/// One TCP connection and its reader thread.
pub(crate) struct Conn {
    writer: Mutex<TcpStream>,
    /// The TLS session of a TLS connection. A writer takes it while holding
    /// `writer`; the reader thread takes it alone, and `writer` first when it
    /// has TLS records to send (never the other way round).
    tls: Option<Mutex<rustls::ClientConnection>>,
    state: Mutex<ConnState>,
    /// A handle used only to shut the socket down.
    socket: TcpStream,
}

impl Conn {
    fn open(addrs: &[SocketAddr], config: &ClientConfig) -> std::io::Result<Arc<Conn>> {
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(addr, config.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e),
            (None, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "no address to connect to",
                ));
            }
        };
        stream.set_nodelay(true)?;
        // A write that cannot finish breaks the connection instead of hanging.
        stream.set_write_timeout(Some(config.request_timeout))?;
        let tls = match &config.tls {
            None => None,
            Some(t) => {
                let mut session =
                    rustls::ClientConnection::new(t.config.clone(), t.server_name.clone())
                        .map_err(std::io::Error::other)?;
                // A frame is encrypted whole before it is written (up to the
                // largest request), not in 64 KiB pieces.
                session.set_buffer_limit(None);
                // The handshake, blocking, before anything else is sent.
                stream.set_read_timeout(Some(config.request_timeout))?;
                let mut io = &stream;
                while session.is_handshaking() {
                    session.complete_io(&mut io)?;
                }
                stream.set_read_timeout(None)?;
                Some(Mutex::new(session))
            }
        };
        let read_half = stream.try_clone()?;
        let conn = Arc::new(Conn {
            socket: stream.try_clone()?,
            tls,
            writer: Mutex::new(stream),
            state: Mutex::new(ConnState {
                slots: HashMap::new(),
                dead: None,
            }),
        });
        let frame_size_max = response_frame_size_max(&config.limits);
        let reader_conn = conn.clone();
        std::thread::Builder::new()
            .name("riffle-client-reader".into())
            .spawn(move || reader_conn.read_loop(read_half, frame_size_max))?;
        Ok(conn)
    }

    /// The reader thread: frames in, dispatched to slots, until the socket fails.
    fn read_loop(self: Arc<Conn>, mut stream: TcpStream, frame_size_max: u32) {
        let mut asm = FrameAssembler::new(frame_size_max);
        let mut raw = RawTls::default();
        let reason = 'read: loop {
            loop {
                match asm.next_frame() {
                    Ok(Some(frame)) => self.dispatch(frame),
                    Ok(None) => break,
                    Err(e) => break 'read e.to_string(),
                }
            }
            let got = match &self.tls {
                None => stream.read(asm.read_buf()),
                Some(tls) => self.read_tls(tls, &mut stream, &mut raw, asm.read_buf()),
            };
            match got {
                Ok(0) => break "the server closed the connection".to_string(),
                Ok(n) => asm.filled(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break format!("read failed: {e}"),
            }
        };
        tracing::debug!(%reason, "riffle connection closed");
        self.fail(reason);
    }

    /// Plaintext of a TLS connection into `out`: what the session holds, else
    /// what the socket brings (fed to the session a record at a time, so its
    /// plaintext buffer never overflows). `Ok(0)`: the server closed it.
    fn read_tls(
        &self,
        tls: &Mutex<rustls::ClientConnection>,
        stream: &mut TcpStream,
        raw: &mut RawTls,
        out: &mut [u8],
    ) -> std::io::Result<usize> {
        loop {
            match lock(tls).reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if raw.start == raw.end {
                if raw.buf.is_empty() {
                    raw.buf.resize(32 << 10, 0);
                }
                let n = stream.read(&mut raw.buf)?;
                if n == 0 {
                    return Ok(0);
                }
                (raw.start, raw.end) = (0, n);
            }
            let wants_write = {
                let mut session = lock(tls);
                let mut pending = &raw.buf[raw.start..raw.end];
                let fed = session.read_tls(&mut pending)?;
                raw.start += fed;
                session
                    .process_new_packets()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                session.wants_write()
            };
            // Records the session must answer (a key update) go out now if no
            // writer is busy, else with the next frame sent: the reader never
            // waits for a writer (a writer may be waiting for the peer to read).
            if wants_write && let Ok(mut writer) = self.writer.try_lock() {
                let pending = encrypted(&mut lock(tls))?;
                writer.write_all(&pending)?;
            }
        }
    }

    /// Hands a frame to its slot. Frames for unknown ids (late replies to timed
    /// out or cancelled requests) are dropped.
    fn dispatch(&self, frame: Frame) {
        let id = frame.request_id();
        let f = frame.header.flags;
        let mut state = lock(&self.state);
        match state.slots.get(&id) {
            None => tracing::trace!(id, "dropping a frame nobody waits for"),
            Some(Slot::Once { .. }) => {
                // Whatever it is (even a push), it answers this request; the
                // waiter's decoding judges it.
                if let Some(Slot::Once { deliver, .. }) = state.slots.remove(&id) {
                    drop(state);
                    deliver(Ok(frame));
                }
            }
            Some(Slot::Stream { tx }) => {
                let tx = tx.clone();
                if f & (flags::END | flags::ERROR) != 0 {
                    state.slots.remove(&id);
                }
                drop(state);
                // Waits while the subscriber's queue is full: backpressure. Fails
                // only when the subscriber is gone.
                let _ = tx.send(frame);
            }
        }
    }

    /// Marks the connection dead, shuts the socket, and tells every waiter.
    pub(crate) fn fail(&self, reason: String) {
        let slots = {
            let mut state = lock(&self.state);
            if state.dead.is_some() {
                return;
            }
            state.dead = Some(reason.clone());
            std::mem::take(&mut state.slots)
        };
        let _ = self.socket.shutdown(Shutdown::Both);
        for (_, slot) in slots {
            if let Slot::Once { sent, deliver } = slot {
                deliver(Err(ClientError::ConnectionLost {
                    request_sent: sent,
                    reason: reason.clone(),
                }));
            }
        }
    }

    fn is_dead(&self) -> bool {
        lock(&self.state).dead.is_some()
    }

    fn reason(&self) -> String {
        lock(&self.state)
            .dead
            .clone()
            .unwrap_or_else(|| "the connection is closed".into())
    }

    /// Registers `slot` under `id` and writes `frame`. Exactly one of these
    /// happens for a `Once` slot: `send` returns an error (the request was not
    /// sent and `deliver` is dropped uncalled), or `deliver` is called.
    fn send(&self, id: u64, frame: &[u8], slot: Slot) -> Result<(), ClientError> {
        {
            let mut state = lock(&self.state);
            if let Some(reason) = &state.dead {
                return Err(ClientError::ConnectionLost {
                    request_sent: false,
                    reason: reason.clone(),
                });
            }
            state.slots.insert(id, slot);
        }
        let mut writer = lock(&self.writer);
        {
            let mut state = lock(&self.state);
            match state.slots.get_mut(&id) {
                // The connection failed while we waited for the writer: the slot
                // has been told, with `sent: false`.
                None => return Ok(()),
                Some(Slot::Once { sent, .. }) => *sent = true,
                Some(Slot::Stream { .. }) => {}
            }
        }
        let written = match &self.tls {
            None => writer.write_all(frame),
            // Encrypted under the session's lock, written under `writer`'s
            // only: the reader can always take the session to drain replies.
            Some(tls) => {
                let records = {
                    let mut session = lock(tls);
                    session
                        .writer()
                        .write_all(frame)
                        .and_then(|()| encrypted(&mut session))
                };
                records.and_then(|r| writer.write_all(&r))
            }
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => {
                // The frame is incomplete on the wire and the socket is about to be
                // shut: the server cannot act on it.
                let mine = lock(&self.state).slots.remove(&id);
                drop(writer);
                let reason = format!("write failed: {e}");
                self.fail(reason.clone());
                match mine {
                    Some(_) => Err(ClientError::ConnectionLost {
                        request_sent: false,
                        reason,
                    }),
                    None => Ok(()),
                }
            }
        }
    }

    /// Forgets a request: a reply that arrives later is dropped.
    pub(crate) fn cancel(&self, id: u64) {
        lock(&self.state).slots.remove(&id);
    }
}

struct Shared {
    addrs: Vec<SocketAddr>,
    config: ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
    routing: Mutex<HashMap<String, Arc<RoutingTable>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(conn) = lock(&self.conn).take() {
            conn.fail("the client was dropped".into());
        }
    }
}

/// A request handed to the connection whose reply goes to a callback.
pub(crate) struct Submitted {
    pub conn: Arc<Conn>,
    pub id: u64,
}

/// The blocking native-protocol client. Clones share one connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addrs", &self.shared.addrs)
            .finish()
    }
}

impl Client {
    /// Resolves `addr` and connects (with the configured attempts and backoff).
    pub fn connect(addr: impl ToSocketAddrs, config: ClientConfig) -> Result<Client, ClientError> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| ClientError::Io(Arc::new(e)))?
            .collect();
        let client = Client {
            shared: Arc::new(Shared {
                addrs,
                config,
                conn: Mutex::new(None),
                next_id: AtomicU64::new(1),
                routing: Mutex::new(HashMap::new()),
            }),
        };
        client.connection()?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The live connection, or a new one: the first attempt at once, then with
    /// exponential backoff, `reconnect_attempts_max` attempts in all. Callers that
    /// arrive meanwhile wait for the outcome instead of connecting too.
    fn connection(&self) -> Result<Arc<Conn>, ClientError> {
        let mut current = lock(&self.shared.conn);
        if let Some(conn) = current.as_ref()
            && !conn.is_dead()
        {
            return Ok(conn.clone());
        }
        let config = &self.shared.config;
        let mut backoff = Backoff::new(
            config.reconnect_backoff_initial,
            config.reconnect_backoff_max,
        );
        let mut last = None;
        for attempt in 0..config.reconnect_attempts_max.max(1) {
            if attempt > 0 {
                std::thread::sleep(backoff.next_delay());
            }
            match Conn::open(&self.shared.addrs, config) {
                Ok(conn) => {
                    if let Some(credentials) = &config.credentials {
                        match self.authenticate(&conn, credentials) {
                            Ok(()) => {}
                            // Refused: the key is wrong; not retried.
                            Err(e @ ClientError::Server(_)) => {
                                conn.fail("authentication refused".into());
                                return Err(e);
                            }
                            // The connection failed meanwhile: another attempt.
                            Err(e) => {
                                conn.fail(format!("authentication failed: {e}"));
                                tracing::debug!(attempt, error = %e, "riffle authentication failed");
                                last = Some(std::io::Error::other(e.to_string()));
                                continue;
                            }
                        }
                    }
                    *current = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "riffle connect failed");
                    last = Some(e);
                }
            }
        }
        let e = last.unwrap_or_else(|| std::io::Error::other("no connect attempt was made"));
        Err(ClientError::Io(Arc::new(e)))
    }

    /// Sends a request whose reply (or failure) goes to `deliver`, without
    /// waiting. When this returns an error, `deliver` was not and will not be
    /// called; otherwise it will be called exactly once (unless cancelled).
    pub(crate) fn submit<O: Op>(&self, op: &O, deliver: Deliver) -> Result<Submitted, ClientError> {
        op.check(&self.shared.config.limits)?;
        let conn = self.connection()?;
        self.submit_on(conn, op, deliver)
    }

    /// [`Client::submit`] on `conn`, `op` already checked.
    fn submit_on<O: Op>(
        &self,
        conn: Arc<Conn>,
        op: &O,
        deliver: Deliver,
    ) -> Result<Submitted, ClientError> {
        let id = self.next_id();
        let mut frame = Vec::new();
        ops::encode(op, id, &mut frame);
        conn.send(
            id,
            &frame,
            Slot::Once {
                sent: false,
                deliver,
            },
        )?;
        Ok(Submitted { conn, id })
    }

    /// Proves `credentials` on a new connection: a challenge, then its proof.
    /// A server older than authentication (it does not know the challenge's
    /// api key) takes the connection as it is.
    fn authenticate(
        &self,
        conn: &Arc<Conn>,
        credentials: &crate::config::Credentials,
    ) -> Result<(), ClientError> {
        let nonce = match self.call_on(conn, &ops::AuthChallenge) {
            Ok(nonce) => nonce,
            Err(ClientError::Server(e))
                if e.code == riffle_protocol::ErrorCode::InvalidArgument
                    && e.message.contains("unknown api key") =>
            {
                tracing::debug!("the server does not authenticate native connections");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let proof = riffle_protocol::native::auth::proof(
            &credentials.secret_access_key,
            &nonce,
            &credentials.access_key_id,
        );
        self.call_on(
            conn,
            &ops::Authenticate {
                access_key_id: &credentials.access_key_id,
                proof,
            },
        )
        .map(|principal| tracing::debug!(%principal, "riffle connection authenticated"))
    }

    /// One operation on `conn` (not whichever connection is current).
    fn call_on<O: Op>(&self, conn: &Arc<Conn>, op: &O) -> Result<O::Output, ClientError> {
        op.check(&self.shared.config.limits)?;
        self.wait_on(conn.clone(), op)
    }

    /// Runs an operation: resent when its request certainly was not sent, and,
    /// for idempotent operations, when the connection broke before the reply.
    pub(crate) fn call<O: Op>(&self, op: &O) -> Result<O::Output, ClientError> {
        let mut retries = 0;
        loop {
            match self.call_once(op) {
                Err(ClientError::ConnectionLost {
                    request_sent,
                    reason,
                }) if (!request_sent || O::IDEMPOTENT)
                    && retries < self.shared.config.idempotent_retries_max =>
                {
                    tracing::debug!(%reason, request_sent, "riffle call retried");
                    retries += 1;
                }
                result => return result,
            }
        }
    }

    fn call_once<O: Op>(&self, op: &O) -> Result<O::Output, ClientError> {
        op.check(&self.shared.config.limits)?;
        let conn = self.connection()?;
        self.wait_on(conn, op)
    }

    /// Sends checked `op` on `conn` and waits for its reply (the request
    /// timeout; a late reply is dropped).
    fn wait_on<O: Op>(&self, conn: Arc<Conn>, op: &O) -> Result<O::Output, ClientError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let submitted = self.submit_on(
            conn,
            op,
            Box::new(move |reply| {
                let _ = tx.try_send(reply);
            }),
        )?;
        let timeout = self.shared.config.request_timeout;
        let reply = match rx.recv_timeout(timeout) {
            Ok(reply) => reply,
            Err(RecvTimeoutError::Timeout) => {
                submitted.conn.cancel(submitted.id);
                // The reply may have slipped in before the cancel.
                rx.try_recv().unwrap_or(Err(ClientError::Timeout(timeout)))
            }
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::ConnectionLost {
                request_sent: true,
                reason: submitted.conn.reason(),
            }),
        };
        self.decode(op, reply?)
    }

    /// Decodes a reply. A bad frame concerns its request only: the connection
    /// goes on (docs/protocol.md; only a frame size out of bounds loses the stream).
    fn decode<O: Op>(&self, op: &O, frame: Frame) -> Result<O::Output, ClientError> {
        ops::decode(op, &frame, &self.shared.config.limits)
    }

    /// Round trip of one ping.
    pub fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        self.call(&ops::Ping {
            nonce: self.next_id(),
        })?;
        Ok(start.elapsed())
    }

    pub fn create_stream(&self, stream: &str, shard_count: u32) -> Result<(), ClientError> {
        self.call(&ops::CreateStream {
            stream,
            shard_count,
        })
    }

    pub fn delete_stream(&self, stream: &str) -> Result<(), ClientError> {
        self.forget_routing(stream);
        self.call(&ops::DeleteStream { stream })
    }

    pub fn describe_stream(&self, stream: &str) -> Result<StreamDescription, ClientError> {
        self.call(&ops::DescribeStream { stream })
    }

    pub fn list_streams(&self) -> Result<Vec<String>, ClientError> {
        self.call(&ops::ListStreams)
    }

    pub fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, ClientError> {
        Ok(self.call(&ops::ListShards { stream })?.1)
    }

    /// The stream's routing table, from a cache filled by ListShards.
    pub fn routing_table(&self, stream: &str) -> Result<Arc<RoutingTable>, ClientError> {
        if let Some(table) = lock(&self.shared.routing).get(stream) {
            return Ok(table.clone());
        }
        let (stream_id, shards) = self.call(&ops::ListShards { stream })?;
        let table = Arc::new(RoutingTable::new(stream_id, &shards)?);
        lock(&self.shared.routing).insert(stream.to_owned(), table.clone());
        Ok(table)
    }

    /// Drops the cached routing table of `stream` (the next put fetches it again).
    pub fn forget_routing(&self, stream: &str) {
        lock(&self.shared.routing).remove(stream);
    }

    /// Puts one record; the server routes it.
    pub fn put_record(
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
            &self.shared.config.limits,
        )?;
        self.call(&op)
    }

    /// Puts up to `put_records_count_max` records, routed here with the cached
    /// shard list, one batch per shard. Each record gets its own result, in input
    /// order; records of one shard succeed or fail together.
    pub fn put_records(
        &self,
        stream: &str,
        entries: &[PutRecordsEntry<'_>],
    ) -> Result<PutRecordsResults, ClientError> {
        let table = self.routing_table(stream)?;
        let op = ops::PutRecords::new(stream, &table, entries, &self.shared.config.limits)?;
        let mut result = self.call(&op);
        if result
            .as_ref()
            .is_err_and(|e| e.code() == Some(ErrorCode::ResourceNotFound))
        {
            // The stream may have been deleted and created again since the table
            // was listed: the server refused the whole request before appending
            // anything, so routing again with a fresh table and resending is safe.
            self.forget_routing(stream);
            if let Ok(fresh) = self.routing_table(stream)
                && fresh.stream_id() != table.stream_id()
            {
                let op = ops::PutRecords::new(stream, &fresh, entries, &self.shared.config.limits)?;
                result = self.call(&op);
            }
        }
        if ops::routing_is_stale(&result) {
            self.forget_routing(stream);
        }
        result
    }

    pub fn get_shard_iterator(
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
    }

    /// Reads from an iterator: at most `limit` records (None: the server's
    /// default and maximum).
    pub fn get_records(
        &self,
        iterator: &str,
        limit: Option<u32>,
    ) -> Result<GetRecordsOutput, ClientError> {
        self.call(&ops::GetRecords { iterator, limit })
    }

    /// Subscribes to a shard from `position`: the server pushes record batches
    /// until the subscription ends or is dropped. Resent on a broken connection
    /// (a subscription dies with its connection).
    pub fn subscribe(
        &self,
        stream: &str,
        shard_index: u32,
        position: StartPosition,
    ) -> Result<Subscription, ClientError> {
        let op = ops::Subscribe {
            stream,
            shard_index,
            position,
        };
        op.check(&self.shared.config.limits)?;
        let mut retries = 0;
        loop {
            match self.subscribe_once(&op) {
                Err(ClientError::ConnectionLost { .. })
                    if retries < self.shared.config.idempotent_retries_max =>
                {
                    retries += 1
                }
                result => return result,
            }
        }
    }

    fn subscribe_once(&self, op: &ops::Subscribe<'_>) -> Result<Subscription, ClientError> {
        let config = &self.shared.config;
        let conn = self.connection()?;
        let id = self.next_id();
        let mut frame = Vec::new();
        ops::encode(op, id, &mut frame);
        let (tx, rx) = mpsc::sync_channel(config.subscription_frames_max.max(1));
        conn.send(id, &frame, Slot::Stream { tx })?;
        let mut subscription = Subscription {
            client: self.clone(),
            conn: conn.clone(),
            id,
            rx: Some(rx),
            first: None,
            ended: false,
        };
        let first = match subscription
            .rx
            .as_ref()
            .map(|rx| rx.recv_timeout(config.request_timeout))
        {
            Some(Ok(frame)) => frame,
            Some(Err(RecvTimeoutError::Timeout)) => {
                // Dropping the subscription unsubscribes in case the server
                // confirms it later.
                return Err(ClientError::Timeout(config.request_timeout));
            }
            _ => {
                subscription.ended = true;
                return Err(ClientError::ConnectionLost {
                    request_sent: true,
                    reason: conn.reason(),
                });
            }
        };
        if first.header.flags & flags::PUSH != 0 {
            // Pushes are meant to follow the confirmation; take one early as one.
            subscription.first = Some(first);
            return Ok(subscription);
        }
        if first.header.flags & flags::ERROR != 0 {
            subscription.ended = true;
        }
        self.decode(op, first)?;
        Ok(subscription)
    }
}

/// A live subscription (blocking). Yields push events in order until the end
/// frame; dropping it unsubscribes without waiting. Its push frames wait in a
/// queue of `subscription_frames_max`; when that is full the connection's reader
/// waits too, which stalls every other reply on the connection: give a busy
/// subscription a client of its own.
pub struct Subscription {
    client: Client,
    conn: Arc<Conn>,
    id: u64,
    rx: Option<Receiver<Frame>>,
    /// A push that arrived before the confirmation.
    first: Option<Frame>,
    ended: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Subscription {
    /// The subscription id (the Subscribe request's id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the last frame was seen (or the subscription failed): `recv`
    /// returns `Closed` from then on.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next event, waiting as long as it takes.
    pub fn recv(&mut self) -> Result<SubscriptionEvent, ClientError> {
        loop {
            if let Some(event) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(event);
            }
        }
    }

    /// The next event, or `None` when none arrived within `wait`.
    pub fn recv_timeout(
        &mut self,
        wait: Duration,
    ) -> Result<Option<SubscriptionEvent>, ClientError> {
        if self.ended {
            return Err(ClientError::Closed);
        }
        let frame = match self.first.take() {
            Some(frame) => frame,
            None => {
                let Some(rx) = self.rx.as_ref() else {
                    return Err(ClientError::Closed);
                };
                match rx.recv_timeout(wait) {
                    Ok(frame) => frame,
                    Err(RecvTimeoutError::Timeout) => return Ok(None),
                    Err(RecvTimeoutError::Disconnected) => {
                        self.ended = true;
                        return Err(ClientError::ConnectionLost {
                            request_sent: true,
                            reason: self.conn.reason(),
                        });
                    }
                }
            }
        };
        let event = ops::decode_push(&frame, &self.client.shared.config.limits);
        match &event {
            Ok(e) if !e.end => {}
            // A push was lost: the subscription cannot go on without a gap.
            Err(ClientError::Protocol(_)) => self.abandon(),
            _ => self.ended = true,
        }
        event.map(Some)
    }

    /// Ends the subscription and waits for the server to confirm.
    pub fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.close();
        if self.ended || self.conn.is_dead() {
            self.ended = true;
            return Ok(());
        }
        self.ended = true;
        let (tx, rx) = mpsc::sync_channel(1);
        let op = ops::Unsubscribe {
            subscription_id: self.id,
        };
        let id = self.client.next_id();
        let mut frame = Vec::new();
        ops::encode(&op, id, &mut frame);
        let deliver: Deliver = Box::new(move |r| {
            let _ = tx.try_send(r);
        });
        let sent = self.conn.send(
            id,
            &frame,
            Slot::Once {
                sent: false,
                deliver,
            },
        );
        if sent.is_err() {
            // The connection is gone, and the subscription with it.
            return Ok(());
        }
        let timeout = self.client.shared.config.request_timeout;
        match rx.recv_timeout(timeout) {
            Ok(Ok(frame)) => self.client.decode(&op, frame),
            Ok(Err(ClientError::ConnectionLost { .. })) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.conn.cancel(id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// Ends the subscription without waiting: stops receiving and, unless the
    /// server already ended it, sends an Unsubscribe whose answer nobody awaits.
    fn abandon(&mut self) {
        let was_ended = self.ended;
        self.ended = true;
        self.close();
        if was_ended || self.conn.is_dead() {
            return;
        }
        let op = ops::Unsubscribe {
            subscription_id: self.id,
        };
        let id = self.client.next_id();
        let mut frame = Vec::new();
        ops::encode(&op, id, &mut frame);
        let slot = Slot::Once {
            sent: false,
            deliver: Box::new(|_| {}),
        };
        let _ = self.conn.send(id, &frame, slot);
    }

    /// Stops receiving: the reader no longer queues (or waits) for this id.
    fn close(&mut self) {
        self.rx = None;
        self.first = None;
        self.conn.cancel(self.id);
    }
}

impl Iterator for Subscription {
    type Item = Result<SubscriptionEvent, ClientError>;

    /// Events until the end frame or the first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        Some(self.recv())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.abandon();
    }
}
