//! `Notify`: a single-threaded "something changed" signal with a version number,
//! runtime-free. A shard pump bumps its shard's `Notify` when the visible offset
//! advances (tailing reads and subscriptions wait on it); the network server uses
//! one per core for shutdown.
//!
//! Lives on one core; `!Send`. Waiting never misses a signal: a waiter remembers
//! the version it saw and resolves as soon as the version differs.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn new() -> Notify {
        Notify::default()
    }

    /// The current version: pass it to [`Notify::changed`].
    pub fn version(&self) -> u64 {
        self.version.get()
    }

    /// Bumps the version and wakes every waiter.
    pub fn notify(&self) {
        self.version.set(self.version.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once the version is no longer `seen`.
    pub fn changed(&self, seen: u64) -> Changed<'_> {
        Changed { notify: self, seen }
    }
}

pub struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.version.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.notify.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn a_change_before_waiting_is_not_missed() {
        let n = Notify::new();
        let seen = n.version();
        n.notify();
        future::block_on(n.changed(seen));
    }

    #[test]
    fn waiters_wake_on_notify() {
        let n = Notify::new();
        let seen = n.version();
        let mut waiting = Box::pin(n.changed(seen));
        assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
        n.notify();
        assert!(future::block_on(future::poll_once(&mut waiting)).is_some());
    }
}
