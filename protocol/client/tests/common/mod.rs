//! Test servers for the client tests, on std threads and 127.0.0.1 sockets:
//!
//! - [`Script`]: a server the test drives step by step: accept, read a request,
//!   answer (in any order), push, send garbage, close. For pipelining, timeout,
//!   reconnect and protocol-violation tests.
//! - [`Spin`]: a non-blocking socket as a futures-io stream, for the async client.
//! - [`Fake`]: an in-memory Kinesis that answers every operation, checks that
//!   client-routed batches reached the right shard, pushes to subscribers, and
//!   injects faults (batch errors per shard, killed connections, refused connects).

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use riffle_protocol::batch::{self, BatchView};
use riffle_protocol::native::{
    Api, BatchResult, FRAME_HEADER_SIZE, FrameHeader, Records, Request, Response, ShardInfo, Span,
    StartPosition, StreamInfo, decode_request, encode_error, encode_push, encode_response,
    request_frame_size_max,
};
use riffle_protocol::routing;
use riffle_protocol::{Error, ErrorCode, Limits};
use rkyv::util::AlignedVec;

/// Longest any test step may block before the test fails instead of hanging.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one request frame; `None` on a clean EOF.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; FRAME_HEADER_SIZE];
    let mut have = 0;
    while have < FRAME_HEADER_SIZE {
        match stream.read(&mut header[have..]) {
            Ok(0) => return None,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let h = FrameHeader::parse(&header, request_frame_size_max(&Limits::default())).ok()?;
    let mut frame = header.to_vec();
    frame.resize(h.frame_size as usize, 0);
    stream.read_exact(&mut frame[FRAME_HEADER_SIZE..]).ok()?;
    Some(frame)
}

/// A request as the server received it.
pub struct Received {
    pub frame: Vec<u8>,
}

impl Received {
    pub fn id(&self) -> u64 {
        self.header().request_id
    }
    pub fn header(&self) -> FrameHeader {
        decode_request(&self.frame, &Limits::default())
            .expect("the client sent a valid request")
            .0
    }
    pub fn api(&self) -> Api {
        self.request().api()
    }
    pub fn request(&self) -> Request<'_> {
        decode_request(&self.frame, &Limits::default())
            .expect("the client sent a valid request")
            .1
    }
}

// ---------------------------------------------------------------- async adapter

/// A non-blocking socket as a futures-io stream, with the waker semantics of
/// real reactors (tokio, glommio): a Pending read or write leaves the caller's
/// waker, replacing the one left before, and only that last waker is woken.
/// With no readiness events to wait on, a "reactor" thread wakes it every
/// millisecond; a call whose waker was replaced is never woken by the stream.
pub struct Spin {
    socket: TcpStream,
    registered: std::sync::Arc<std::sync::Mutex<Option<std::task::Waker>>>,
}

impl Spin {
    pub fn connect(addr: std::net::SocketAddr) -> Spin {
        let socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        socket.set_nonblocking(true).unwrap();
        let registered = std::sync::Arc::new(std::sync::Mutex::new(None::<std::task::Waker>));
        let weak = std::sync::Arc::downgrade(&registered);
        std::thread::spawn(move || {
            while let Some(registered) = weak.upgrade() {
                if let Some(w) = registered.lock().unwrap().take() {
                    w.wake();
                }
                drop(registered);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Spin { socket, registered }
    }

    fn ready<T>(&self, cx: &mut Context<'_>, r: std::io::Result<T>) -> Poll<std::io::Result<T>> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                *self.registered.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }
}

impl AsyncRead for Spin {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = self.socket.read(buf);
        self.ready(cx, r)
    }
}

impl AsyncWrite for Spin {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = self.socket.write(buf);
        self.ready(cx, r)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.socket.shutdown(std::net::Shutdown::Both))
    }
}

/// Runs `f` on its own thread and fails the test if it hangs.
pub fn within_timeout(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(STEP_TIMEOUT) {
        Ok(()) => worker.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: re-raise its panic.
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the async test hung"),
    }
}

// ---------------------------------------------------------------- Script

pub struct Script {
    listener: TcpListener,
}

impl Script {
    pub fn bind() -> Script {
        Script {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// The next connection (fails the test after `STEP_TIMEOUT`).
    pub fn accept(&self) -> ScriptConn {
        self.listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
                    return ScriptConn { stream };
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection arrived");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Whether a connection is waiting to be accepted right now.
    pub fn has_pending_connection(&self) -> bool {
        self.listener.set_nonblocking(true).unwrap();
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

pub struct ScriptConn {
    pub stream: TcpStream,
}

impl ScriptConn {
    /// The next request (fails the test after `STEP_TIMEOUT` or on EOF).
    pub fn recv(&mut self) -> Received {
        let frame = read_frame(&mut self.stream).expect("the client closed the connection");
        Received { frame }
    }

    /// `n` requests, in arrival order.
    pub fn recv_n(&mut self, n: usize) -> Vec<Received> {
        (0..n).map(|_| self.recv()).collect()
    }

    /// Whether the client closed the connection (waits for EOF).
    pub fn wait_closed(&mut self) -> bool {
        read_frame(&mut self.stream).is_none()
    }

    pub fn reply(&mut self, to: &Received, response: &Response<'_>) {
        let mut out = Vec::new();
        encode_response(&mut out, to.api(), to.id(), response);
        self.stream.write_all(&out).unwrap();
    }

    pub fn error(&mut self, to: &Received, error: Error) {
        let mut out = Vec::new();
        encode_error(&mut out, to.api() as u16, to.id(), &error);
        self.stream.write_all(&out).unwrap();
    }

    pub fn push(&mut self, subscription_id: u64, records: &Records<'_>, end: bool) {
        let mut out = Vec::new();
        encode_push(&mut out, subscription_id, records, end);
        self.stream.write_all(&out).unwrap();
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

// ---------------------------------------------------------------- Fake

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Shard {
    info: ShardInfo,
    /// Sealed batches, in offset order.
    batches: Vec<AlignedVec<16>>,
    next_offset: u64,
}

impl Shard {
    /// Spans serving offsets `from ..` (at most `limit` records).
    fn spans(&self, from: u64, limit: u64) -> (Vec<Span<'_>>, u64) {
        let mut spans = Vec::new();
        let mut next = from;
        for b in &self.batches {
            let view = batch::verify(b).unwrap();
            let (base, count) = (view.header.base_offset, view.header.record_count as u64);
            if base + count <= next || next >= from + limit {
                continue;
            }
            let skip = next - base;
            let take = (count - skip).min(from + limit - next);
            spans.push(Span {
                skip: skip as u32,
                take: take as u32,
                batch: view.bytes(),
            });
            next += take;
        }
        (spans, next)
    }
}

struct Subscriber {
    id: u64,
    conn: u64,
    stream: String,
    shard_index: u32,
    next_offset: u64,
    writer: Arc<Mutex<TcpStream>>,
}

/// Fault injection and observation, shared by the test and the fake.
#[derive(Default)]
pub struct Faults {
    /// Per shard: errors to answer for its next batches, in order.
    pub batch_errors: HashMap<u32, VecDeque<ErrorCode>>,
    /// Requests of these apis get no answer (the client's timeout fires).
    pub mute: Vec<Api>,
    /// Requests left unanswered so far.
    pub muted: usize,
}

#[derive(Default)]
struct FakeState {
    streams: HashMap<String, Vec<Shard>>,
    subscribers: Vec<Subscriber>,
    conns: HashMap<u64, TcpStream>,
    next_conn: u64,
    faults: Faults,
    /// Every PutRecords request: its batches as (shard, record count).
    put_log: Vec<Vec<(u32, u32)>>,
    requests: usize,
}

pub struct Fake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    changed: Arc<Condvar>,
    accepting: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    acceptor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Fake {
    pub fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            state: Arc::default(),
            changed: Arc::default(),
            accepting: Arc::new(AtomicBool::new(true)),
            accepted: Arc::default(),
            acceptor: Mutex::new(None),
        };
        fake.spawn_acceptor(listener);
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn spawn_acceptor(&self, listener: TcpListener) {
        let state = self.state.clone();
        let changed = self.changed.clone();
        let accepting = self.accepting.clone();
        let accepted = self.accepted.clone();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if !accepting.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                let changed = changed.clone();
                std::thread::spawn(move || serve(stream, state, changed));
            }
        });
        *self.acceptor.lock().unwrap() = Some(handle);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn create_stream(&self, name: &str, shard_count: u32) {
        let mut st = self.state.lock().unwrap();
        create(&mut st, name, shard_count).unwrap();
    }

    pub fn faults<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut self.state.lock().unwrap().faults)
    }

    /// The (shard, record count) batches of every PutRecords request so far.
    pub fn put_log(&self) -> Vec<Vec<(u32, u32)>> {
        self.state.lock().unwrap().put_log.clone()
    }

    /// Every stored record of a shard, in offset order: (partition key, data).
    pub fn records(&self, stream: &str, shard_index: u32) -> Vec<(String, Vec<u8>)> {
        let st = self.state.lock().unwrap();
        let shard = &st.streams[stream][shard_index as usize];
        shard
            .batches
            .iter()
            .flat_map(|b| {
                let view: BatchView<'_> = batch::verify(b).unwrap();
                view.records()
                    .iter()
                    .map(|r| (r.partition_key().to_owned(), r.data().to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Appends records to a shard as if a producer had (pushes to subscribers).
    pub fn append(&self, stream: &str, shard_index: u32, records: &[(&str, &[u8])]) {
        let recs: Vec<riffle_protocol::RecordIn<'_>> = records
            .iter()
            .map(|(k, d)| riffle_protocol::RecordIn {
                partition_key: k,
                explicit_hash_key: None,
                data: d,
                arrival_ms: 0,
            })
            .collect();
        let bytes = riffle_protocol::BatchBuilder::new().encode(&recs);
        let mut st = self.state.lock().unwrap();
        append(&mut st, stream, shard_index, bytes).unwrap();
        notify(&mut st, stream, shard_index);
        self.changed.notify_all();
    }

    /// Waits until `pred` holds for the number of subscribers.
    pub fn wait_subscribers(&self, pred: impl Fn(usize) -> bool) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut st = self.state.lock().unwrap();
        while !pred(st.subscribers.len()) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "subscriber count never matched");
            st = self.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Breaks every open connection (the listener keeps accepting).
    pub fn kill_connections(&self) {
        let mut st = self.state.lock().unwrap();
        for (_, c) in st.conns.drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
        st.subscribers.clear();
        self.changed.notify_all();
    }

    /// Stops listening (connects are refused) and breaks every connection.
    pub fn stop_listening(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.acceptor.lock().unwrap().take() {
            h.join().unwrap();
        }
        self.kill_connections();
    }

    /// Listens again on the same address.
    pub fn resume_listening(&self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.accepting.store(true, Ordering::SeqCst);
        self.spawn_acceptor(listener);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

fn create(st: &mut FakeState, name: &str, shard_count: u32) -> Result<(), Error> {
    if st.streams.contains_key(name) {
        return Err(Error::in_use(format!("stream {name} exists")));
    }
    if shard_count == 0 {
        return Err(Error::invalid("shard count must be positive"));
    }
    let shards = routing::even_split(shard_count)
        .into_iter()
        .enumerate()
        .map(|(i, (start, end))| Shard {
            info: ShardInfo {
                shard_index: i as u32,
                hash_key_start: start,
                hash_key_end: end,
            },
            batches: Vec::new(),
            next_offset: 0,
        })
        .collect();
    st.streams.insert(name.to_owned(), shards);
    Ok(())
}

/// Validates, checks routing, seals and stores a batch; returns (base, count).
fn append(
    st: &mut FakeState,
    stream: &str,
    shard_index: u32,
    bytes: AlignedVec<16>,
) -> Result<(u64, u32), Error> {
    let shards = st
        .streams
        .get_mut(stream)
        .ok_or_else(|| Error::not_found(format!("stream {stream}")))?;
    let shard = shards
        .get_mut(shard_index as usize)
        .ok_or_else(|| Error::not_found(format!("shard {shard_index}")))?;
    let mut bytes = batch::ValidBatch::validate(bytes, &Limits::default())
        .map_err(|e| Error::invalid(e.to_string()))?;
    let count = {
        let view = bytes.view();
        for r in view.records() {
            let hash = r
                .explicit_hash_key()
                .unwrap_or_else(|| routing::hash_key_of(r.partition_key()));
            if hash < shard.info.hash_key_start || hash > shard.info.hash_key_end {
                return Err(Error::invalid(format!(
                    "record {} routed to the wrong shard {shard_index}",
                    r.partition_key()
                )));
            }
        }
        view.header.record_count
    };
    let base = shard.next_offset;
    bytes.seal(base, now_ms());
    shard.batches.push(bytes.into_inner());
    shard.next_offset += count as u64;
    Ok((base, count))
}

/// Pushes what subscribers of a shard have not seen yet.
fn notify(st: &mut FakeState, stream: &str, shard_index: u32) {
    let Some(shard) = st
        .streams
        .get(stream)
        .and_then(|s| s.get(shard_index as usize))
    else {
        return;
    };
    for sub in st
        .subscribers
        .iter_mut()
        .filter(|s| s.stream == stream && s.shard_index == shard_index)
    {
        if sub.next_offset >= shard.next_offset {
            continue;
        }
        let (spans, next) = shard.spans(sub.next_offset, u64::MAX / 2);
        let records = Records {
            shard_index,
            millis_behind_latest: 0,
            next_offset: next,
            next_iterator: None,
            spans,
        };
        let mut out = Vec::new();
        encode_push(&mut out, sub.id, &records, false);
        let _ = sub.writer.lock().unwrap().write_all(&out);
        sub.next_offset = next;
    }
}

fn resolve(shard: &Shard, position: StartPosition) -> Result<u64, Error> {
    Ok(match position {
        StartPosition::TrimHorizon => 0,
        StartPosition::Latest => shard.next_offset,
        StartPosition::AtSequenceNumber(s) | StartPosition::AfterSequenceNumber(s) => {
            let (sh, off) = riffle_protocol::seqno::decode(s)?;
            if sh != shard.info.shard_index {
                return Err(Error::invalid("sequence number of another shard"));
            }
            let off = off + matches!(position, StartPosition::AfterSequenceNumber(_)) as u64;
            if off > shard.next_offset {
                return Err(Error::invalid("beyond the end of the shard"));
            }
            off
        }
        StartPosition::AtTimestamp(_) => 0,
    })
}

/// One connection of the fake: answers requests in order.
fn serve(stream: TcpStream, state: Arc<Mutex<FakeState>>, changed: Arc<Condvar>) {
    let _ = stream.set_nodelay(true);
    let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
    let conn_id = {
        let mut st = state.lock().unwrap();
        st.next_conn += 1;
        let id = st.next_conn;
        st.conns.insert(id, stream.try_clone().unwrap());
        id
    };
    let mut reader = stream;
    while let Some(frame) = read_frame(&mut reader) {
        let received = Received { frame };
        let (header, request) = match decode_request(&received.frame, &Limits::default()) {
            Ok(r) => r,
            Err(_) => break,
        };
        let mut out = Vec::new();
        let api = request.api();
        let id = header.request_id;
        let mut st = state.lock().unwrap();
        st.requests += 1;
        if st.faults.mute.contains(&api) {
            st.faults.muted += 1;
            continue;
        }
        let mut notify_shards = Vec::new();
        let result: Result<Response<'_>, Error> = match &request {
            Request::Ping { nonce } => Ok(Response::Pong { nonce: *nonce }),
            Request::CreateStream {
                stream,
                shard_count,
            } => create(&mut st, stream, *shard_count).map(|_| Response::Done),
            Request::DeleteStream { stream } => match st.streams.remove(*stream) {
                Some(_) => Ok(Response::Done),
                None => Err(Error::not_found(format!("stream {stream}"))),
            },
            Request::ListStreams => {
                let mut names: Vec<String> = st.streams.keys().cloned().collect();
                names.sort();
                let mut o = Vec::new();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                encode_response(&mut o, api, id, &Response::StreamNames(refs));
                write(&writer, &o);
                drop(st);
                continue;
            }
            Request::DescribeStream { stream } | Request::ListShards { stream } => {
                match st.streams.get(*stream) {
                    None => Err(Error::not_found(format!("stream {stream}"))),
                    Some(shards) => {
                        let infos: Vec<ShardInfo> = shards.iter().map(|s| s.info).collect();
                        let mut o = Vec::new();
                        let response = if api == Api::ListShards {
                            // The fake never recreates a stream in place: one incarnation.
                            Response::Shards {
                                stream_id: 1,
                                shards: infos,
                            }
                        } else {
                            Response::Stream(StreamInfo {
                                name: stream,
                                status: "ACTIVE",
                                retention_hours: 24,
                                created_ms: 0,
                                shards: infos,
                            })
                        };
                        encode_response(&mut o, api, id, &response);
                        write(&writer, &o);
                        drop(st);
                        continue;
                    }
                }
            }
            Request::PutRecord { stream, batch } => {
                let mut bytes = AlignedVec::<16>::new();
                bytes.extend_from_slice(batch);
                let shard = batch::validate(&bytes, &Limits::default())
                    .map_err(|e| Error::invalid(e.to_string()))
                    .and_then(|view| {
                        let r = &view.records()[0];
                        let hash = r
                            .explicit_hash_key()
                            .unwrap_or_else(|| routing::hash_key_of(r.partition_key()));
                        let shards = st
                            .streams
                            .get(*stream)
                            .ok_or_else(|| Error::not_found(format!("stream {stream}")))?;
                        let ranges: Vec<(u128, u128)> = shards
                            .iter()
                            .map(|s| (s.info.hash_key_start, s.info.hash_key_end))
                            .collect();
                        Ok(routing::route(&ranges, hash) as u32)
                    });
                shard.and_then(|shard| {
                    let (base, _) = append(&mut st, stream, shard, bytes)?;
                    notify_shards.push((stream.to_string(), shard));
                    Ok(Response::Put {
                        shard_index: shard,
                        offset: base,
                    })
                })
            }
            Request::PutRecords {
                stream, batches, ..
            } => {
                let log = batches
                    .iter()
                    .map(|b| {
                        (
                            b.shard_index,
                            riffle_protocol::batch::BatchHeader::parse(b.batch)
                                .unwrap()
                                .record_count,
                        )
                    })
                    .collect();
                st.put_log.push(log);
                let mut results = Vec::new();
                for b in batches {
                    let injected = st
                        .faults
                        .batch_errors
                        .get_mut(&b.shard_index)
                        .and_then(VecDeque::pop_front);
                    let outcome = match injected {
                        Some(code) => Err(Error::new(code, "injected")),
                        None => {
                            let mut bytes = AlignedVec::<16>::new();
                            bytes.extend_from_slice(b.batch);
                            let r = append(&mut st, stream, b.shard_index, bytes);
                            if r.is_ok() {
                                notify_shards.push((stream.to_string(), b.shard_index));
                            }
                            r
                        }
                    };
                    results.push(BatchResult {
                        shard_index: b.shard_index,
                        outcome,
                    });
                }
                Ok(Response::PutBatches(results))
            }
            Request::GetShardIterator {
                stream,
                shard_index,
                position,
            } => match st
                .streams
                .get(*stream)
                .and_then(|s| s.get(*shard_index as usize))
                .ok_or_else(|| Error::not_found("no such shard"))
                .and_then(|shard| resolve(shard, *position))
            {
                Ok(offset) => {
                    let it = format!("{stream}/{shard_index}/{offset}");
                    let mut o = Vec::new();
                    encode_response(&mut o, api, id, &Response::Iterator(&it));
                    write(&writer, &o);
                    drop(st);
                    continue;
                }
                Err(e) => Err(e),
            },
            Request::GetRecords { iterator, limit } => {
                let parts: Vec<&str> = iterator.split('/').collect();
                match (
                    parts.first(),
                    parts.get(1).and_then(|s| s.parse::<u32>().ok()),
                    parts.get(2).and_then(|s| s.parse::<u64>().ok()),
                ) {
                    (Some(stream), Some(shard_index), Some(offset)) => {
                        match st
                            .streams
                            .get(*stream)
                            .and_then(|s| s.get(shard_index as usize))
                        {
                            None => Err(Error::not_found("no such shard")),
                            Some(shard) => {
                                let limit = if *limit == 0 { 10_000 } else { *limit as u64 };
                                let (spans, next) = shard.spans(offset, limit);
                                let it = format!("{stream}/{shard_index}/{next}");
                                let records = Records {
                                    shard_index,
                                    millis_behind_latest: if next < shard.next_offset {
                                        1000
                                    } else {
                                        0
                                    },
                                    next_offset: next,
                                    next_iterator: Some(&it),
                                    spans,
                                };
                                let mut o = Vec::new();
                                encode_response(&mut o, api, id, &Response::Records(records));
                                write(&writer, &o);
                                drop(st);
                                continue;
                            }
                        }
                    }
                    _ => Err(Error::invalid("bad iterator")),
                }
            }
            Request::Subscribe {
                stream,
                shard_index,
                position,
            } => match st
                .streams
                .get(*stream)
                .and_then(|s| s.get(*shard_index as usize))
                .ok_or_else(|| Error::not_found("no such shard"))
                .and_then(|shard| resolve(shard, *position))
            {
                Ok(offset) => {
                    let mut o = Vec::new();
                    encode_response(&mut o, api, id, &Response::Done);
                    write(&writer, &o);
                    st.subscribers.push(Subscriber {
                        id,
                        conn: conn_id,
                        stream: stream.to_string(),
                        shard_index: *shard_index,
                        next_offset: offset,
                        writer: writer.clone(),
                    });
                    notify(&mut st, stream, *shard_index);
                    changed.notify_all();
                    drop(st);
                    continue;
                }
                Err(e) => Err(e),
            },
            Request::Unsubscribe { subscription_id } => {
                st.subscribers
                    .retain(|s| !(s.conn == conn_id && s.id == *subscription_id));
                changed.notify_all();
                Ok(Response::Done)
            }
            // As a server without Firehose's extension answers.
            Request::FirehosePutRecordBatch { .. } | Request::FirehoseDescribe { .. } => Err(
                Error::invalid("the fake Kinesis does not serve Firehose's operations"),
            ),
            // As a server without the consumer groups' extension answers.
            Request::GroupHeartbeat { .. }
            | Request::GroupCheckpoint { .. }
            | Request::GroupDescribe { .. }
            | Request::GroupLeave { .. } => Err(Error::invalid(
                "the fake Kinesis does not serve consumer groups' operations",
            )),
            // As a server that checks no signatures answers.
            Request::AuthChallenge => Ok(Response::Challenge { nonce: [0; 32] }),
            Request::Authenticate { .. } => Ok(Response::Authenticated {
                principal: "anonymous",
            }),
        };
        match result {
            Ok(response) => {
                encode_response(&mut out, api, id, &response);
            }
            Err(e) => {
                encode_error(&mut out, api as u16, id, &e);
            }
        }
        write(&writer, &out);
        for (stream, shard) in notify_shards {
            notify(&mut st, &stream, shard);
        }
        drop(st);
    }
    let mut st = state.lock().unwrap();
    st.conns.remove(&conn_id);
    st.subscribers.retain(|s| s.conn != conn_id);
    changed.notify_all();
}

fn write(writer: &Mutex<TcpStream>, bytes: &[u8]) {
    if !bytes.is_empty() {
        let _ = writer.lock().unwrap().write_all(bytes);
    }
}
