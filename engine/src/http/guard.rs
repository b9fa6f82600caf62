//! What bounds one core's HTTP connections, so slow or abusive clients cannot
//! exhaust memory or tasks: a cap on connections (further ones are closed on
//! accept), a byte budget for the request bodies being read and handled at
//! once (a request waits for its share before its body is read; the client is
//! held back by TCP meanwhile), and an idle timeout (a connection that moves no
//! byte either way for `HttpConfig::idle_ms` is closed: a silent client, one
//! that stalls mid-request, or a dead peer). Streamed request bodies (long
//! uploads) are counted apart: at most `HttpConfig::streamed_bodies_per_core_max`
//! at once, so they cannot take the budget whole-body requests wait for.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

use crate::rt;

/// One core's HTTP bounds.
pub struct CoreGuard {
    connections: Cell<usize>,
    connections_max: usize,
    /// Units: bytes of request bodies.
    pub bodies: rt::Semaphore,
    bodies_max: u64,
    /// Units: streamed request bodies.
    streams: rt::Semaphore,
}

impl CoreGuard {
    pub fn new(connections_max: usize, bodies_max: u64, streams_max: u64) -> Rc<CoreGuard> {
        Rc::new(CoreGuard {
            connections: Cell::new(0),
            connections_max,
            bodies: rt::Semaphore::new(bodies_max),
            bodies_max,
            streams: rt::Semaphore::new(streams_max.max(1)),
        })
    }

    /// Waits for room for one more streamed request body.
    pub async fn stream_permit(&self) -> Option<rt::Permit> {
        self.streams.acquire(1).await
    }

    /// Counts a new connection, or `None` when the core has its maximum.
    pub fn admit(self: &Rc<Self>) -> Option<Admitted> {
        if self.connections.get() >= self.connections_max {
            return None;
        }
        self.connections.set(self.connections.get() + 1);
        Some(Admitted(self.clone()))
    }

    /// Waits for the budget of a body of up to `bytes` (a larger claim than the
    /// whole budget takes all of it).
    pub async fn body_permit(&self, bytes: u64) -> Option<rt::Permit> {
        self.bodies.acquire(bytes.clamp(1, self.bodies_max)).await
    }
}

/// A connection counted by its core; uncounted on drop.
pub struct Admitted(Rc<CoreGuard>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
    }
}

/// A connection that notes when it last moved a byte.
pub struct Watched<S> {
    inner: S,
    last: Rc<Cell<Instant>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S) -> (Watched<S>, Rc<Cell<Instant>>) {
        let last = Rc::new(Cell::new(Instant::now()));
        (
            Watched {
                inner,
                last: last.clone(),
            },
            last,
        )
    }
}

/// Notes the time when `poll` moved bytes.
fn note(last: &Cell<Instant>, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
    if let Poll::Ready(Ok(n)) = &poll
        && *n > 0
    {
        last.set(Instant::now());
    }
    poll
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        note(&self.last, poll)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        note(&self.last, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Resolves once the connection has moved no byte for `idle`.
pub async fn idle(last: Rc<Cell<Instant>>, idle: Duration) {
    loop {
        let quiet = last.get().elapsed();
        if quiet >= idle {
            return;
        }
        rt::sleep(idle - quiet).await;
    }
}
