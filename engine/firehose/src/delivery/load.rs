//! Loading a delivered batch into PostgreSQL: the Redshift destination's
//! second stage. The batch was just written to the intermediate bucket; its
//! records (uncompressed) are loaded with `COPY ... FROM STDIN` in one
//! transaction (`riffle_postgres`), on the core's own runtime. A failed load
//! is reported and retried with backoff until `RetryOptions` runs out; then
//! the batch is skipped and its manifest written under `errors/manifests/`
//! in the intermediate bucket, as AWS does. A load that committed just before
//! a crash is done again when the batch is rebuilt: like AWS's Redshift
//! delivery, this stage is at least once.

use std::time::Duration;

use riffle_engine::rt;

use crate::service::Side;
use riffle_postgres::Client;

use super::Task;
use crate::http_client::HttpUrl;
use crate::redshift::{self, RedshiftDestination};
use crate::workers::Workers;

/// Retries of a failed load back off from this to `LOAD_RETRY_MAX`.
const LOAD_RETRY_FIRST: Duration = Duration::from_secs(1);
const LOAD_RETRY_MAX: Duration = Duration::from_secs(60);
/// The longest one load may take: this, plus a second per 8 MiB.
const LOAD_TIMEOUT_BASE: Duration = Duration::from_secs(60);

impl Task {
    /// Loads `data` (the object `key`'s records, uncompressed) into the
    /// destination's table, retrying until `RetryOptions` runs out or the
    /// delivery stream is gone; a batch given up on leaves its manifest.
    pub(super) async fn load_redshift(
        &self,
        rs: &RedshiftDestination,
        bucket: &str,
        key: &str,
        data: &[u8],
    ) {
        let deadline = rt::now_ms().saturating_add(rs.retry_ms as i64);
        let data = bytes::Bytes::copy_from_slice(data);
        let mut wait = LOAD_RETRY_FIRST;
        loop {
            let timeout = LOAD_TIMEOUT_BASE + Duration::from_secs((data.len() >> 23) as u64);
            let expired = async {
                rt::sleep(timeout).await;
                Err(format!("the load did not finish within {timeout:?}"))
            };
            let attempt = load(rs, data.clone(), &self.shared.workers);
            let loaded = futures_lite::future::or(attempt, expired).await;
            self.metrics.delivery.attempt(loaded.is_ok());
            match loaded {
                Ok(rows) => {
                    self.metrics.delivery.delivered(rows as usize, data.len());
                    self.shared
                        .recovered(&self.name, self.id, self.shard, Side::Write);
                    return;
                }
                Err(e) => {
                    let table = match &rs.plan.table.schema {
                        Some(schema) => format!("{schema}.{}", rs.plan.table.name),
                        None => rs.plan.table.name.clone(),
                    };
                    self.fail(
                        "Redshift.LoadFailed",
                        format!(
                            "COPY into {table} at {}:{} failed: {e}",
                            rs.target.host, rs.target.port
                        ),
                    );
                    if self.stream().is_none() {
                        return;
                    }
                    if rt::now_ms() >= deadline {
                        let manifest = bytes::Bytes::from(redshift::manifest(bucket, key));
                        self.put(bucket, &rs.manifest_key(key), manifest, None)
                            .await;
                        return;
                    }
                }
            }
            rt::sleep(wait).await;
            wait = (wait * 2).min(LOAD_RETRY_MAX);
        }
    }
}

/// One attempt: connect, authenticate (with the methods the URL's
/// `require_auth` allows), then in one transaction read the table's columns,
/// turn the batch into PostgreSQL CSV on a worker thread (a batch can be
/// 128 MiB: not on the core), and COPY it; the rows loaded.
async fn load(
    rs: &RedshiftDestination,
    data: bytes::Bytes,
    workers: &Workers,
) -> Result<u64, String> {
    let url = HttpUrl::parse(&format!("http://{}:{}", rs.target.host, rs.target.port))?;
    let addr = url.resolve().await?;
    let conn = rt::net::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut client = Client::connect_with(
        conn,
        &rs.target.database,
        &rs.user,
        &rs.password,
        rs.target.require_auth,
    )
    .await
    .map_err(|e| e.to_string())?;
    let columns = client
        .begin_load(&rs.plan)
        .await
        .map_err(|e| e.to_string())?;
    let plan = rs.plan.clone();
    let prepared = workers
        .run("converting a batch for COPY", move || {
            plan.prepare(&data, &columns)
        })
        .await;
    let batch = match prepared {
        Ok(Ok(batch)) => batch,
        Ok(Err(e)) => {
            let _ = client.abort_load().await;
            return Err(riffle_postgres::PgError::Data(e).to_string());
        }
        Err(e) => {
            let _ = client.abort_load().await;
            return Err(e.message);
        }
    };
    let rows = client
        .finish_load(&batch)
        .await
        .map_err(|e| e.to_string())?;
    let _ = client.close().await;
    Ok(rows)
}
