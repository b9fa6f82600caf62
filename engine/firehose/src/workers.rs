//! Work off the cores: a pool of threads of their own for what computes
//! for long (compression: a 128 MiB buffer takes about a second; record
//! format conversion; decompression, de-aggregation and jq queries over a
//! batch), so a core never stalls its shards that long.

use crate::compress;
use crate::destination::Compression;

type Job = Box<dyn FnOnce() + Send>;

/// Work off the cores, on threads of their own: compression (a 128 MiB
/// buffer takes about a second) and record format conversion; a core must
/// not stall its shards that long.
#[derive(Clone)]
pub struct Workers {
    jobs: flume::Sender<Job>,
}

impl Workers {
    /// `threads` working threads.
    pub fn start(threads: usize) -> std::io::Result<Workers> {
        let (jobs, rx) = flume::bounded::<Job>(threads.max(1) * 2);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("riffle-firehose-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })?;
        }
        Ok(Workers { jobs })
    }

    /// Runs `work` on a worker thread; a panic in it fails this call, not
    /// the thread.
    pub async fn run<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, riffle_protocol::Error> {
        let stopped = || riffle_protocol::Error::internal("the worker threads stopped");
        let (reply, answer) = flume::bounded(1);
        let job: Job = Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = reply.send(out);
        });
        self.jobs.send_async(job).await.map_err(|_| stopped())?;
        answer
            .recv_async()
            .await
            .map_err(|_| stopped())?
            .map_err(|_| riffle_protocol::Error::internal(format!("{what} failed")))
    }

    /// The body of an object whose records, concatenated, are `data`
    /// (uncompressed: `data` itself, no copy).
    pub async fn body(
        &self,
        compression: Compression,
        data: bytes::Bytes,
        entry: &str,
    ) -> Result<bytes::Bytes, riffle_protocol::Error> {
        if compression == Compression::Uncompressed {
            return Ok(data);
        }
        let entry = entry.to_string();
        self.run(&format!("compressing with {compression:?}"), move || {
            bytes::Bytes::from(compress::body(compression, &data, &entry))
        })
        .await
    }
}
