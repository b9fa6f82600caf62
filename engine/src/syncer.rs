//! A shard's fdatasyncs, coalesced.
//!
//! The pump writes a group, then [`Syncer::request`]s a sync covering it and
//! goes on with the next group without waiting. At most `syncs_in_flight_max`
//! syncs run at once; a group written while they are all busy is covered by the
//! next sync, started as soon as one completes, which covers every group written
//! before it (one fdatasync per busy period instead of one per group: on a
//! virtualized disk each sync is two device round trips and two io_uring
//! worker wake-ups). With `durability = none` acknowledgements do not wait for
//! syncs, so a sync starts only once `eager_bytes` are unsynced or after
//! `lazy_delay` (bounding the recovery window in bytes and in time).
//!
//! The pump bounds the bytes written but not yet durable by waiting on
//! [`Syncer::done`] (see `pump`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use riffle_store::StorageFile;

use crate::notify::Notify;
use crate::rt;

/// What a completed sync reports: `Ok(covered)` (every record below `covered`
/// is durable) or why it failed.
pub type SyncOutcome = Result<u64, String>;

pub struct Syncer<F> {
    in_flight_max: usize,
    in_flight: Cell<usize>,
    /// The newest written data no sync has been started for.
    wanted: RefCell<Option<(Rc<F>, u64)>>,
    /// A delayed sync is scheduled (`durability = none`).
    timer: Cell<bool>,
    /// The wanted sync was asked for as urgent: start it as soon as a slot frees,
    /// even when syncs are lazy (the pump may be waiting for it).
    urgent: Cell<bool>,
    lazy_delay: Option<Duration>,
    /// Bumped when a sync completes (or fails).
    pub done: Notify,
    on_done: Box<dyn Fn(SyncOutcome)>,
    /// The log's durable offset: a wanted sync it already covers (a segment
    /// roll synced the data meanwhile) is dropped instead of started.
    durable: Box<dyn Fn() -> u64>,
}

impl<F: StorageFile> Syncer<F> {
    /// `lazy_delay`: `None` syncs as soon as a slot is free (acks wait for
    /// syncs); `Some(d)` waits up to `d` unless [`Syncer::request`] is urgent.
    pub fn new(
        in_flight_max: usize,
        lazy_delay: Option<Duration>,
        durable: impl Fn() -> u64 + 'static,
        on_done: impl Fn(SyncOutcome) + 'static,
    ) -> Rc<Syncer<F>> {
        Rc::new(Syncer {
            in_flight_max: in_flight_max.max(1),
            in_flight: Cell::new(0),
            wanted: RefCell::new(None),
            timer: Cell::new(false),
            urgent: Cell::new(false),
            lazy_delay,
            done: Notify::new(),
            on_done: Box::new(on_done),
            durable: Box::new(durable),
        })
    }

    /// Asks for a sync of `file` covering every record below `covered` (written
    /// to `file` or to earlier segments, which their roll synced). `urgent`
    /// starts it now even when syncs are lazy.
    pub fn request(self: &Rc<Self>, file: Rc<F>, covered: u64, urgent: bool) {
        *self.wanted.borrow_mut() = Some((file, covered));
        if urgent {
            self.urgent.set(true);
        }
        match self.lazy_delay {
            Some(delay) if !urgent => {
                if !self.timer.replace(true) {
                    let this = self.clone();
                    rt::spawn(async move {
                        rt::sleep(delay).await;
                        this.timer.set(false);
                        this.start();
                    });
                }
            }
            _ => self.start(),
        }
    }

    /// Syncs in flight or asked for.
    pub fn busy(&self) -> bool {
        self.in_flight.get() > 0 || self.wanted.borrow().is_some()
    }

    /// Starts the wanted sync if a slot is free.
    fn start(self: &Rc<Self>) {
        if self.in_flight.get() >= self.in_flight_max {
            return;
        }
        let Some((file, covered)) = self.wanted.borrow_mut().take() else {
            return;
        };
        self.urgent.set(false);
        if (self.durable)() >= covered {
            return;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        let this = self.clone();
        rt::spawn(async move {
            let started = std::time::Instant::now();
            let result = file.sync().await;
            if let Some(m) = crate::engine_metrics::current() {
                m.fsync.observe_us(started.elapsed().as_micros() as u64);
            }
            this.in_flight.set(this.in_flight.get() - 1);
            (this.on_done)(result.map(|()| covered).map_err(|e| e.to_string()));
            this.done.notify();
            // What was written meanwhile goes in the next sync: now, unless
            // syncs are lazy and nothing urgent waits (the timer starts it).
            if this.lazy_delay.is_none() || this.urgent.get() {
                this.start();
            }
        });
    }

    /// Starts whatever is wanted now and waits until no sync is in flight.
    pub async fn drain(self: &Rc<Self>) {
        loop {
            let seen = self.done.version();
            self.start();
            if !self.busy() {
                return;
            }
            self.done.changed(seen).await;
        }
    }
}
