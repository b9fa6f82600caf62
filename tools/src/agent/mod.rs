//! `riffle agent --config agent.json`: a work-alike of the Amazon Kinesis
//! Agent. It reads the agent's own `agent.json`, tails the files of each flow
//! (rotation by rename and by copytruncate followed), frames and converts
//! records as the agent does, and sends them to Kinesis (`PutRecords`) or
//! Firehose (`PutRecordBatch`) through the AWS API: Riffle's, or AWS's.
//! Positions are checkpointed once the destination has acknowledged them
//! (at least once across kill -9 and server restarts). SIGINT or SIGTERM:
//! send what is buffered, checkpoint, exit (a second signal exits at once).
//! `--once`: read every flow's files to their end, send, checkpoint, exit
//! (scripts and the throughput figure). docs/agent.md is the user's page.
//!
//! Modules: `config` (the keys), `json` (Jackson's reading and writing),
//! `files` + `tail` (files, rotation), `framing` (records), `process` +
//! `logformat` (dataProcessingOptions), `checkpoint`, `flow` (threads and
//! batches), `send` + `http` + `sign` (the AWS API).

mod checkpoint;
mod config;
mod files;
mod flow;
mod framing;
mod http;
mod json;
mod logformat;
mod process;
mod send;
mod sign;
mod tail;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::Failure;
use config::{AgentConfig, Destination};
use http::Endpoint;
use send::{Stopping, Target};

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration: the Amazon Kinesis Agent's agent.json.
    #[arg(long, short = 'c', default_value = "/etc/aws-kinesis/agent.json")]
    pub config: PathBuf,
    /// Read every flow's files to their end, send, checkpoint and exit.
    #[arg(long)]
    pub once: bool,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

/// The region: the config's `kinesis.region`, the endpoint's host, the
/// environment (AWS_REGION, AWS_DEFAULT_REGION), else us-east-1.
fn region(configured: Option<&str>, endpoint: Option<&Endpoint>) -> String {
    if let Some(r) = configured {
        return r.to_string();
    }
    if let Some(r) = endpoint.and_then(|e| sign::region_of_host(&e.host)) {
        return r;
    }
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "us-east-1".into())
}

/// Where a flow's records go.
fn target(config: &AgentConfig, flow: &config::FlowConfig) -> Result<Target, String> {
    let (firehose, name, url) = match &flow.destination {
        Destination::Kinesis { stream, .. } => (false, stream, config.kinesis_endpoint.as_deref()),
        Destination::Firehose { delivery_stream } => {
            (true, delivery_stream, config.firehose_endpoint.as_deref())
        }
    };
    let key = if firehose {
        "firehose.endpoint"
    } else {
        "kinesis.endpoint"
    };
    let configured = url
        .map(Endpoint::parse)
        .transpose()
        .map_err(|e| format!("{key}: {e}"))?;
    // kinesis.region names the Kinesis region; Firehose's comes from its endpoint.
    let region = region(
        if firehose {
            None
        } else {
            config.kinesis_region.as_deref()
        },
        configured.as_ref(),
    );
    let endpoint = match configured {
        Some(e) => e,
        None => Endpoint::parse(&format!(
            "https://{}.{region}.amazonaws.com",
            if firehose { "firehose" } else { "kinesis" }
        ))?,
    };
    Ok(Target {
        endpoint,
        region,
        credentials: sign::Credentials::find(
            config.access_key_id.as_deref(),
            config.secret_access_key.as_deref(),
        ),
        name: name.clone(),
        firehose,
        retry_initial_backoff_ms: flow.retry_initial_backoff_ms,
        retry_max_backoff_ms: flow.retry_max_backoff_ms,
        connect_timeout: Duration::from_millis(config.connection_timeout_ms),
        socket_timeout: Duration::from_millis(config.socket_timeout_ms),
    })
}

pub fn run(args: AgentArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| failed(format!("cannot read {}: {e}", args.config.display())))?;
    let config =
        AgentConfig::parse(&text).map_err(|e| failed(format!("{}: {e}", args.config.display())))?;
    if config.flows.is_empty() {
        return Err(failed(format!("{}: no flows", args.config.display())));
    }
    if !config.ignored.is_empty() {
        tracing::info!(keys = %config.ignored.join(", "), "agent.json keys with no effect in Riffle's agent");
    }
    let mut targets = Vec::new();
    for flow in &config.flows {
        let t =
            target(&config, flow).map_err(|e| failed(format!("{}: {e}", args.config.display())))?;
        if t.credentials.is_none() {
            tracing::warn!(flow = %flow.id, "no credentials (awsAccessKeyId/awsSecretAccessKey, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY): requests go unsigned");
        }
        tracing::info!(flow = %flow.id, endpoint = %format!("{}://{}", if t.endpoint.secure { "https" } else { "http" }, t.endpoint.authority()), region = %t.region, "flow");
        targets.push(t);
    }
    let checkpoints = checkpoint::Checkpoints::open(&config.checkpoint_file).map_err(failed)?;
    let stopping = Arc::new(Stopping::default());
    let signals = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal ends the process at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, signals.clone())
            .and_then(|_| signal_hook::flag::register(sig, signals.clone()))
            .map_err(|e| failed(format!("cannot handle signal {sig}: {e}")))?;
    }
    let shared = Arc::new(flow::Shared {
        checkpoints: Mutex::new(checkpoints),
        stopping: stopping.clone(),
        once: args.once,
        sending_threads: config.sending_threads,
        shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
    });
    let started = Instant::now();
    let mut threads = Vec::new();
    let flow_count = config.flows.len();
    for (flow, target) in config.flows.into_iter().zip(targets) {
        let shared = shared.clone();
        let id = flow.id.clone();
        let handle = std::thread::Builder::new()
            .name("agent-flow".into())
            .spawn(move || flow::run(flow, target, shared))
            .map_err(|e| failed(format!("cannot start a flow thread: {e}")))?;
        threads.push((id, handle));
    }
    // Wait for the flows, passing a signal on to them.
    let mut results = Vec::new();
    for (id, handle) in threads {
        while !handle.is_finished() {
            if signals.load(Ordering::Relaxed) && !stopping.stop.load(Ordering::Relaxed) {
                tracing::info!("stopping: sending what is buffered");
                stopping.give_up_at_ms.store(
                    send::now_ms() + shared.shutdown_timeout.as_millis() as u64,
                    Ordering::Relaxed,
                );
                stopping.stop.store(true, Ordering::Relaxed);
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let result = handle
            .join()
            .map_err(|_| failed(format!("{id}: the flow thread panicked")))?;
        results.push((id, result));
    }
    let mut total = flow::FlowStats::default();
    let mut errors = Vec::new();
    for (id, r) in results {
        match r {
            Ok(s) => {
                tracing::info!(flow = %id, read = s.records_read, sent = s.records_sent, skipped = s.records_skipped, truncated = s.records_truncated, conversion_errors = s.conversion_errors, "flow done");
                total.records_read += s.records_read;
                total.records_sent += s.records_sent;
                total.bytes_read += s.bytes_read;
            }
            Err(e) => errors.push(e),
        }
    }
    if args.once {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "riffle agent: {} records ({} bytes) read from {flow_count} flow(s), {} sent, in {secs:.3} s: {:.0} records/s",
            total.records_read,
            total.bytes_read,
            total.records_sent,
            total.records_read as f64 / secs.max(1e-9)
        );
    }
    if !errors.is_empty() {
        return Err(failed(errors.join("; ")));
    }
    Ok(())
}

/// A temporary directory for tests, removed when dropped.
#[cfg(test)]
pub struct TestDir(PathBuf);

#[cfg(test)]
impl TestDir {
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

#[cfg(test)]
impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
pub fn test_dir() -> TestDir {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "riffle-agent-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TestDir(dir)
}
