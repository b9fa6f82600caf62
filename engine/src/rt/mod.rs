//! The runtime seam: the only place in Riffle that names glommio.
//!
//! Everything the engine needs from a runtime is here: start one pinned executor
//! per core, spawn local tasks, sleep, read the clock, and the direct-I/O
//! [`dma::DmaStorage`]. Swapping glommio means rewriting this module only.

pub mod dma;
pub mod net;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Index of an executor thread (a CPU core), 0-based. Never a Kinesis shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub usize);

/// A running executor thread.
pub struct CoreThread {
    handle: glommio::ExecutorJoinHandle<()>,
}

impl CoreThread {
    /// Starts an executor pinned to CPU `cpu` (when `pin`), running `main`.
    pub fn start<G, F>(core: CoreId, cpu: Option<usize>, main: G) -> std::io::Result<CoreThread>
    where
        G: FnOnce() -> F + Send + 'static,
        F: Future<Output = ()> + 'static,
    {
        let placement = match cpu {
            Some(cpu) => glommio::Placement::Fixed(cpu),
            None => glommio::Placement::Unbound,
        };
        let handle = glommio::LocalExecutorBuilder::new(placement)
            .name(&format!("riffle-core-{}", core.0))
            .spawn(main)
            .map_err(|e| std::io::Error::other(format!("cannot start core {}: {e}", core.0)))?;
        Ok(CoreThread { handle })
    }

    pub fn join(self) -> std::io::Result<()> {
        self.handle
            .join()
            .map_err(|e| std::io::Error::other(format!("core thread failed: {e}")))
    }
}

/// Runs the future `main` builds on a fresh executor on its own thread, waits for
/// it and returns its output. For tests and tools that need a runtime context (for
/// [`dma::DmaStorage`]) outside the engine's cores. A panic in `main` is re-raised
/// on the calling thread; an executor that cannot start is an error.
pub fn block_on_local<G, F, T>(main: G) -> std::io::Result<T>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("riffle-local")
        .spawn(main)
        .map_err(|e| std::io::Error::other(format!("cannot start an executor: {e}")))?;
    match handle.join() {
        Ok(out) => Ok(out),
        Err(glommio::GlommioError::BuilderError(glommio::BuilderErrorKind::ThreadPanic(panic))) => {
            std::panic::resume_unwind(panic)
        }
        Err(e) => Err(std::io::Error::other(format!("executor failed: {e}"))),
    }
}

/// Runs `future` as a task on the current core; it runs to completion on its own.
pub fn spawn<T: 'static>(future: impl Future<Output = T> + 'static) {
    glommio::spawn_local(future).detach();
}

/// Lets the core's other task queues run before this task goes on: a task
/// that just asked a task of another queue for something (the core's read
/// of a shard) lets that start now rather than when this queue runs dry or
/// its preempt timer fires (100 ms).
pub async fn yield_queue() {
    glommio::executor().yield_task_queue_now().await
}

/// The background task queue's shares against the default queue's 1000: when
/// a core is busy, background work gets a fifth of it and requests the rest.
pub const BACKGROUND_SHARES: usize = 250;

thread_local! {
    static BACKGROUND: std::cell::OnceCell<glommio::TaskQueueHandle> =
        const { std::cell::OnceCell::new() };
}

/// Runs `future` on the current core's background task queue (made on first
/// use): work that must not slow requests down when the core is busy (Firehose
/// delivery, and later analytics operators, video indexing, retention).
pub fn spawn_background<T: 'static>(future: impl Future<Output = T> + 'static) {
    let queue = BACKGROUND.with(|b| {
        *b.get_or_init(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::Static(BACKGROUND_SHARES),
                glommio::Latency::NotImportant,
                "background",
            )
        })
    });
    // The queue was made on this executor and is never removed: it exists.
    match glommio::spawn_local_into(future, queue) {
        Ok(task) => {
            task.detach();
        }
        Err(e) => panic!("the background task queue is gone: {e}"),
    }
}

pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Wall-clock time in ms since the Unix epoch: the engine's only clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Number of CPUs this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Tells glibc's allocator to keep freed memory for reuse instead of handing
/// it back to the kernel. Requests, replies and batches are buffers of hundreds
/// of KiB to MiBs, allocated and freed on executor threads (whose malloc arenas
/// give freed space back with `MADV_DONTNEED`), so by default most of them come
/// back as fresh pages the kernel zeroes on first touch: in the load generator
/// that was 60% of its CPU. Call once at process start, before any thread.
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; no thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// A counting semaphore for one core (byte budgets, in-flight limits). `!Send`.
pub struct Semaphore {
    inner: std::rc::Rc<glommio::sync::Semaphore>,
}

/// Units taken from a [`Semaphore`]; given back on drop.
pub struct Permit {
    _inner: glommio::sync::StaticPermit,
}

impl Semaphore {
    pub fn new(units: u64) -> Semaphore {
        Semaphore {
            inner: std::rc::Rc::new(glommio::sync::Semaphore::new(units)),
        }
    }

    /// Waits for `units` (FIFO). `None` only if glommio refuses (a closed
    /// semaphore; Riffle never closes one).
    pub async fn acquire(&self, units: u64) -> Option<Permit> {
        let p = self.inner.acquire_static_permit(units).await.ok()?;
        Some(Permit { _inner: p })
    }
}
