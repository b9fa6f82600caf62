//! One native protocol connection, on the core that accepted it.
//!
//! The reader takes a frame header, checks its size before anything is
//! allocated, waits for an in-flight slot and for the core's byte budget, reads
//! the frame into an aligned buffer and spawns its handler; handlers answer in
//! any order through the writer's bounded queue. The writer coalesces small
//! replies into one write. A frame whose size is out of bounds loses the
//! framing: it is answered with an error and the connection is closed after it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use riffle_protocol::Error;
use riffle_protocol::native::request_frame_size_max;
use riffle_protocol::native::{FRAME_HEADER_SIZE, FrameHeader, encode_error};
use rkyv::util::AlignedVec;

use super::CoreServer;
use super::dispatch;
use crate::rt::{self, Permit};

/// A reply frame and the budgets it holds until it is written.
pub(super) struct Outgoing {
    pub frame: Vec<u8>,
    pub _budget: Option<Permit>,
    pub _queued: Option<Permit>,
}

/// What a connection's handlers share.
pub(super) struct ConnState {
    pub server: Rc<CoreServer>,
    pub out: flume::Sender<Outgoing>,
    /// Bytes queued for the writer (`connection_out_bytes_max`).
    pub queued: rt::Semaphore,
    /// Request ids of open subscriptions.
    pub subscriptions: RefCell<HashSet<u64>>,
    /// Who the connection authenticated as (`auth.rs`).
    pub auth: super::auth::ConnAuth,
    /// The peer's address (IAM's `aws:SourceIp`).
    pub peer: Option<SocketAddr>,
}

impl ConnState {
    /// Queues a reply; waits while the connection's queue is full (a slow
    /// reader stalls here). False when the connection is gone.
    pub async fn send(&self, frame: Vec<u8>, budget: Option<Permit>) -> bool {
        let cap = self.server.config.connection_out_bytes_max;
        let queued = self.queued.acquire((frame.len() as u64).min(cap)).await;
        self.out
            .send_async(Outgoing {
                frame,
                _budget: budget,
                _queued: queued,
            })
            .await
            .is_ok()
    }

    pub async fn send_error(&self, api_key: u16, request_id: u64, error: &Error) -> bool {
        let mut frame = Vec::with_capacity(64 + error.message.len());
        encode_error(&mut frame, api_key, request_id, error);
        self.send(frame, None).await
    }
}

/// Serves a connection until the peer closes it, it breaks the framing, or the
/// server stops; returns after every reply was written.
pub(super) async fn serve<S>(server: Rc<CoreServer>, conn: S, peer: Option<SocketAddr>)
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let (reader, writer) = futures_lite::io::split(conn);
    let (out_tx, out_rx) = flume::bounded(server.config.connection_out_frames_max);
    let state = Rc::new(ConnState {
        server: server.clone(),
        out: out_tx,
        queued: rt::Semaphore::new(server.config.connection_out_bytes_max),
        subscriptions: RefCell::new(HashSet::new()),
        auth: Default::default(),
        peer,
    });
    let inflight = Rc::new(rt::Semaphore::new(server.config.connection_inflight_max));
    let server2 = server.clone();
    rt::spawn(async move {
        write_loop(writer, out_rx).await;
        server2.connections.set(server2.connections.get() - 1);
        server2.closed.notify();
        tracing::debug!(?peer, "connection closed");
    });
    if let Err(why) = read_loop(&state, reader, &inflight).await {
        tracing::debug!(?peer, %why, "connection reader stopped");
    }
    // Handlers still running hold `state` (and so the writer's queue) until
    // their replies are queued; the writer ends when the last one is dropped.
}

async fn read_loop<R: futures_lite::AsyncRead + Unpin>(
    state: &Rc<ConnState>,
    mut reader: R,
    inflight: &Rc<rt::Semaphore>,
) -> Result<(), String> {
    let server = &state.server;
    let frame_size_max = request_frame_size_max(&server.limits);
    loop {
        let mut header = [0u8; FRAME_HEADER_SIZE];
        let seen = server.stop.version();
        if server.stopping.get() {
            return Ok(());
        }
        let read = futures_lite::future::or(
            async { Some(reader.read_exact(&mut header).await) },
            async {
                server.stop.changed(seen).await;
                None
            },
        )
        .await;
        match read {
            None => return Ok(()),
            Some(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(())) => {}
        }
        let parsed = FrameHeader::parse(&header, frame_size_max);
        let h = match parsed {
            Ok(h) => h,
            Err(e) => {
                // The size is untrustworthy, so the next frame cannot be found.
                let api_key = u16::from_le_bytes([header[8], header[9]]);
                let request_id = u64::from_le_bytes(header[16..24].try_into().unwrap());
                let error = Error::invalid(format!("{e}; closing the connection"));
                state.send_error(api_key, request_id, &error).await;
                return Err(e.to_string());
            }
        };
        let size = h.frame_size as usize;
        let Some(slot) = inflight.acquire(1).await else {
            return Ok(());
        };
        let Some(budget) = server.budget.acquire(size as u64).await else {
            return Ok(());
        };
        let mut frame = AlignedVec::<16>::with_capacity(size);
        frame.extend_from_slice(&header);
        frame.resize(size, 0);
        if let Err(e) = reader.read_exact(&mut frame[FRAME_HEADER_SIZE..]).await {
            // The peer went away mid-frame: nothing of it was acted on.
            return Err(format!("connection lost inside a frame: {e}"));
        }
        let state = state.clone();
        rt::spawn(async move { dispatch::handle(&state, frame, budget, slot).await });
    }
}

/// Writes queued replies until every sender is gone, coalescing small frames.
async fn write_loop<W: futures_lite::AsyncWrite + Unpin>(
    mut writer: W,
    rx: flume::Receiver<Outgoing>,
) {
    const COALESCE_BYTES_MAX: usize = 64 * 1024;
    let mut buf: Vec<u8> = Vec::with_capacity(COALESCE_BYTES_MAX);
    while let Ok(first) = rx.recv_async().await {
        let mut next = Some(first);
        while let Some(out) = next.take() {
            if out.frame.len() >= COALESCE_BYTES_MAX {
                if !buf.is_empty() && writer.write_all(&buf).await.is_err() {
                    return;
                }
                buf.clear();
                if writer.write_all(&out.frame).await.is_err() {
                    return;
                }
            } else {
                buf.extend_from_slice(&out.frame);
            }
            drop(out);
            if buf.len() < COALESCE_BYTES_MAX {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() && writer.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        if writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.close().await;
}
