//! The `riffle` CLI over the native protocol: `stream create|list|describe|delete`,
//! `put`, `get`. Human tables by default, `--json` (one JSON document, or one
//! JSON object per record) for scripts. Exit codes: 0 success, 1 the request
//! failed (the server's error is printed), 2 usage error, 3 the server cannot be
//! reached.

use std::io::{BufRead, Write};

use anyhow::anyhow;
use base64::Engine as _;
use riffle_client::{
    Client, ClientConfig, ClientError, Producer, ProducerConfig, Put, PutRecordsEntry, Record,
};
use riffle_protocol::native::StartPosition;
use riffle_protocol::time::{format_rfc3339_ms as format_ms, parse_rfc3339_ms};
use riffle_protocol::{routing, seqno};
use serde_json::json;

pub const DEFAULT_SERVER: &str = "127.0.0.1:4600";

/// Options every CLI command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// The server's native protocol address.
    #[arg(long, global = true, env = "RIFFLE_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    pub json: bool,
    /// The access key to authenticate with (a server started with `--auth
    /// sigv4` requires one). Default: AWS's own sources, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, else AWS_PROFILE's in ~/.aws/credentials.
    #[arg(long, global = true)]
    pub access_key_id: Option<String>,
    /// The access key's secret (with --access-key-id).
    #[arg(long, global = true)]
    pub secret_access_key: Option<String>,
    /// TLS to the server (one started with --native-tls-cert), trusting the
    /// certificates of this file (PEM: the server's, or its CA).
    #[arg(long, global = true, env = "RIFFLE_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Mutual TLS: this client certificate (PEM), with --tls-key.
    #[arg(long, global = true, requires = "tls_key", requires = "tls_ca")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry [default: --server's host].
    #[arg(long, global = true)]
    pub tls_server_name: Option<String>,
}

impl Common {
    /// The credentials given, else the ones AWS's tools would find.
    pub fn credentials(&self) -> Result<Option<riffle_client::Credentials>, Failure> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Ok(Some(riffle_client::Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            })),
            (None, None) => Ok(riffle_client::Credentials::from_env()),
            _ => Err(Failure {
                code: 2,
                message: "--access-key-id and --secret-access-key go together".into(),
            }),
        }
    }

    /// The native client's settings: few reconnects (a command, not a
    /// service), these credentials.
    pub fn client_config(&self) -> Result<ClientConfig, Failure> {
        let tls = match &self.tls_ca {
            None => None,
            Some(ca) => {
                let host = self.tls_server_name.clone().unwrap_or_else(|| {
                    let host = self
                        .server
                        .rsplit_once(':')
                        .map_or(self.server.as_str(), |(h, _)| h);
                    host.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                });
                let client = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
                Some(
                    riffle_client::ClientTls::from_files(ca, client, &host).map_err(|e| {
                        Failure {
                            code: 2,
                            message: format!("TLS: {e}"),
                        }
                    })?,
                )
            }
        };
        Ok(ClientConfig {
            reconnect_attempts_max: 2,
            credentials: self.credentials()?,
            tls,
            ..ClientConfig::default()
        })
    }
}

/// A failure to connect: the server's refusal (a key it does not take) as
/// it is, anything else as unreachable.
pub(crate) fn connect_failure(common: &Common, e: ClientError) -> Failure {
    match e {
        ClientError::Server(e) => Failure {
            code: 1,
            message: format!("{}: {}", e.code.aws_name(), e.message),
        },
        e => Failure {
            code: 3,
            message: format!("cannot reach the server at {}: {e}", common.server),
        },
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum StreamCommand {
    /// Create a stream.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        shards: u32,
    },
    /// List the streams.
    List,
    /// Show a stream and its shards.
    Describe { name: String },
    /// Delete a stream and its data.
    Delete { name: String },
}

#[derive(clap::Args, Debug)]
pub struct PutArgs {
    pub stream: String,
    #[arg(long)]
    pub partition_key: String,
    /// Route by this 128-bit hash key (decimal) instead of the partition key's MD5.
    #[arg(long)]
    pub explicit_hash_key: Option<String>,
    /// The record's data; without it, every line of stdin is one record.
    pub data: Option<String>,
    /// Pack the records into aggregated records (the KPL's format) with the
    /// producer: many lines per Kinesis record. Each line's result names its
    /// aggregated record and its sub-sequence number; a lone record is put
    /// plain, as the KPL does.
    #[arg(long)]
    pub aggregate: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    pub stream: String,
    /// shardId-000000000000, or just its number.
    #[arg(long)]
    pub shard: String,
    /// trim-horizon | latest | at:SEQ | after:SEQ | at-time:RFC3339
    #[arg(long, default_value = "trim-horizon")]
    pub from: String,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<u64>,
    /// After catching up, keep printing records as they arrive (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Show records as stored: aggregated records (KPL format) are not split
    /// into their user records.
    #[arg(long)]
    pub raw: bool,
}

/// A CLI failure with its exit code.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        let code = match e {
            ClientError::Io(_) | ClientError::ConnectionLost { .. } => 3,
            _ => 1,
        };
        let message = match e {
            ClientError::Server(e) => format!("{}: {}", e.code.aws_name(), e.message),
            other => other.to_string(),
        };
        Failure { code, message }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure {
            code: 1,
            message: format!("{e:#}"),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

pub(crate) fn connect(common: &Common) -> Result<Client, Failure> {
    let config = common.client_config()?;
    let client =
        Client::connect(common.server.as_str(), config).map_err(|e| connect_failure(common, e))?;
    // Connection problems surface here, with the address in the message.
    client.ping().map_err(|e| Failure {
        code: 3,
        message: format!("cannot reach the server at {}: {e}", common.server),
    })?;
    Ok(client)
}

fn print_json(value: serde_json::Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &value).map_err(|e| anyhow!(e))?;
    writeln!(out)?;
    Ok(())
}

pub fn stream(common: &Common, command: StreamCommand) -> Result<(), Failure> {
    let client = connect(common)?;
    match command {
        StreamCommand::Create { name, shards } => {
            client.create_stream(&name, shards)?;
            if common.json {
                print_json(json!({"stream": name, "shards": shards}))
            } else {
                println!("created stream {name} with {shards} shard(s)");
                Ok(())
            }
        }
        StreamCommand::Delete { name } => {
            client.delete_stream(&name)?;
            if common.json {
                print_json(json!({"deleted": name}))
            } else {
                println!("deleted stream {name}");
                Ok(())
            }
        }
        StreamCommand::List => {
            let names = client.list_streams()?;
            if common.json {
                return print_json(json!({ "streams": names }));
            }
            if names.is_empty() {
                println!("no streams");
            }
            for n in names {
                println!("{n}");
            }
            Ok(())
        }
        StreamCommand::Describe { name } => {
            let d = client.describe_stream(&name)?;
            let shards: Vec<_> = d
                .shards
                .iter()
                .map(|s| {
                    json!({
                        "shard_id": routing::shard_id(s.shard_index),
                        "hash_key_start": s.hash_key_start.to_string(),
                        "hash_key_end": s.hash_key_end.to_string(),
                        "starting_sequence_number": seqno::to_string(seqno::encode(s.shard_index, 0)),
                    })
                })
                .collect();
            if common.json {
                return print_json(json!({
                    "stream": d.name,
                    "status": d.status,
                    "retention_hours": d.retention_hours,
                    "created_ms": d.created_ms,
                    "shards": shards,
                }));
            }
            println!("stream     {}", d.name);
            println!("status     {}", d.status);
            println!("retention  {} h", d.retention_hours);
            println!("created    {}", format_ms(d.created_ms));
            println!("shards     {}", d.shards.len());
            println!();
            println!(
                "{:<22} {:>40} {:>40}",
                "SHARD", "HASH KEY START", "HASH KEY END"
            );
            for s in &d.shards {
                println!(
                    "{:<22} {:>40} {:>40}",
                    routing::shard_id(s.shard_index),
                    s.hash_key_start,
                    s.hash_key_end
                );
            }
            Ok(())
        }
    }
}

pub fn put(common: &Common, args: PutArgs) -> Result<(), Failure> {
    let explicit = args
        .explicit_hash_key
        .as_deref()
        .map(|k| routing::parse_explicit_hash_key(k).map_err(|e| anyhow!("{}", e.message)))
        .transpose()?;
    let client = connect(common)?;
    let report = |put: &Put| -> Result<(), Failure> {
        if common.json {
            let mut out = json!({
                "shard_id": routing::shard_id(put.shard_index),
                "sequence_number": seqno::to_string(put.sequence_number),
            });
            if let Some(sub) = put.sub_sequence_number {
                out["sub_sequence_number"] = json!(sub);
            }
            print_json(out)
        } else {
            println!(
                "{} {}",
                routing::shard_id(put.shard_index),
                record_place(put.sequence_number, put.sub_sequence_number)
            );
            Ok(())
        }
    };
    if args.aggregate {
        return put_aggregated(client, &args, explicit, report);
    }
    if let Some(data) = &args.data {
        let put =
            client.put_record(&args.stream, &args.partition_key, explicit, data.as_bytes())?;
        return report(&put);
    }
    // One record per stdin line, sent in PutRecords of up to 500; all share the
    // partition key, so they land in one shard in line order.
    let count_max = client.config().limits.put_records_count_max as usize;
    let bytes_max = client.config().limits.request_size_max as usize / 2;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut pending: Vec<String> = Vec::new();
    let mut done = false;
    while !done {
        let mut bytes = 0;
        pending.clear();
        while pending.len() < count_max && bytes < bytes_max {
            match lines.next() {
                Some(line) => {
                    let line = line?;
                    bytes += line.len();
                    pending.push(line);
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        let entries: Vec<PutRecordsEntry<'_>> = pending
            .iter()
            .map(|l| PutRecordsEntry {
                partition_key: &args.partition_key,
                explicit_hash_key: explicit,
                data: l.as_bytes(),
            })
            .collect();
        for result in client.put_records(&args.stream, &entries)? {
            let put = result.map_err(ClientError::Server)?;
            report(&put)?;
        }
    }
    Ok(())
}

/// `put --aggregate`: the data or every stdin line through an aggregating
/// producer, each result reported in input order.
fn put_aggregated(
    client: Client,
    args: &PutArgs,
    explicit: Option<u128>,
    report: impl Fn(&Put) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let config = ProducerConfig {
        aggregate: true,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, &args.stream, config)?;
    let mut handles = std::collections::VecDeque::new();
    let mut send = |data: Vec<u8>| -> Result<(), Failure> {
        handles.push_back(producer.send(&args.partition_key, explicit, data)?);
        // Report as results arrive, so memory stays bounded on long input.
        while let Some(h) = handles.front() {
            match h.try_result() {
                Some(r) => {
                    handles.pop_front();
                    report(&r?)?;
                }
                None => break,
            }
        }
        Ok(())
    };
    match &args.data {
        Some(data) => send(data.clone().into_bytes())?,
        None => {
            for line in std::io::stdin().lock().lines() {
                send(line?.into_bytes())?;
            }
        }
    }
    producer.flush()?;
    for h in handles {
        report(&h.wait()?)?;
    }
    producer.close()?;
    Ok(())
}

/// A record's place: its sequence number, and `.N` for user record N of an
/// aggregated record.
fn record_place(seq: u128, sub: Option<u32>) -> String {
    match sub {
        Some(sub) => format!("{}.{sub}", seqno::to_string(seq)),
        None => seqno::to_string(seq),
    }
}

/// Parses `--from`.
pub fn parse_from(from: &str) -> Result<StartPosition, String> {
    let seq = |s: &str| seqno::parse(s).map_err(|e| e.message);
    match from {
        "trim-horizon" => Ok(StartPosition::TrimHorizon),
        "latest" => Ok(StartPosition::Latest),
        _ => {
            if let Some(s) = from.strip_prefix("at:") {
                Ok(StartPosition::AtSequenceNumber(seq(s)?))
            } else if let Some(s) = from.strip_prefix("after:") {
                Ok(StartPosition::AfterSequenceNumber(seq(s)?))
            } else if let Some(t) = from.strip_prefix("at-time:") {
                Ok(StartPosition::AtTimestamp(parse_rfc3339_ms(t)?))
            } else {
                Err(format!(
                    "invalid --from {from:?}: expected trim-horizon, latest, at:SEQ, after:SEQ or at-time:RFC3339"
                ))
            }
        }
    }
}

fn parse_shard(shard: &str) -> Result<u32, String> {
    routing::parse_shard_id(shard)
        .or_else(|| shard.parse().ok())
        .ok_or_else(|| {
            format!("invalid --shard {shard:?}: expected shardId-000000000000 or a number")
        })
}

/// A record as `--json` prints it (and `riffle consume` hands it out).
pub(crate) fn record_json(shard_index: u32, r: &Record) -> serde_json::Value {
    let mut out = json!({
        "shard_id": routing::shard_id(shard_index),
        "sequence_number": seqno::to_string(r.sequence_number),
        "partition_key": r.partition_key,
        "arrival_ms": r.arrival_ms,
        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
    });
    if let Some(sub) = r.sub_sequence_number {
        out["sub_sequence_number"] = json!(sub);
    }
    out
}

fn print_record(common: &Common, shard_index: u32, r: &Record) -> Result<(), Failure> {
    if common.json {
        return print_json(record_json(shard_index, r));
    }
    // Text as is; control characters escaped so one record stays one line.
    let data: String = String::from_utf8_lossy(&r.data)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    println!(
        "{}  {}  {}  {}",
        record_place(r.sequence_number, r.sub_sequence_number),
        format_ms(r.arrival_ms),
        r.partition_key,
        data
    );
    Ok(())
}

pub fn get(common: &Common, args: GetArgs) -> Result<(), Failure> {
    let position = parse_from(&args.from).map_err(|e| anyhow!(e))?;
    let shard_index = parse_shard(&args.shard).map_err(|e| anyhow!(e))?;
    let client = connect(common)?;
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    if limit == 0 {
        return Ok(());
    }
    // The records to show of one stored record: its user records unless --raw.
    let shown = |r: Record| -> Vec<Record> { if args.raw { vec![r] } else { r.user_records() } };
    // Catch up with GetRecords until a read comes back empty at the tip.
    let mut iterator = client.get_shard_iterator(&args.stream, shard_index, position)?;
    let next_offset = loop {
        let want = (limit - printed).min(10_000) as u32;
        let mut out = client.get_records(&iterator, Some(want))?;
        let read_some = !out.records.is_empty();
        for r in std::mem::take(&mut out.records).into_iter().flat_map(shown) {
            print_record(common, shard_index, &r)?;
            printed += 1;
            if printed >= limit {
                return Ok(());
            }
        }
        match out.next_iterator {
            Some(next) if read_some || out.millis_behind_latest > 0 => iterator = next,
            _ => break out.next_offset,
        }
    };
    if !args.follow {
        return Ok(());
    }
    std::io::stdout().flush()?;
    // Then follow the tip: the server pushes records as they commit.
    let start = riffle_client::continuation(shard_index, next_offset);
    let mut sub = client.subscribe(&args.stream, shard_index, start)?;
    loop {
        let event = sub.recv()?;
        for r in event.records.into_iter().flat_map(shown) {
            print_record(common, shard_index, &r)?;
            printed += 1;
            if printed >= limit {
                return Ok(());
            }
        }
        std::io::stdout().flush()?;
        if event.end {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_positions_parse() {
        assert_eq!(parse_from("trim-horizon"), Ok(StartPosition::TrimHorizon));
        assert_eq!(parse_from("latest"), Ok(StartPosition::Latest));
        let seq = seqno::encode(3, 42);
        assert_eq!(
            parse_from(&format!("after:{}", seqno::to_string(seq))),
            Ok(StartPosition::AfterSequenceNumber(seq))
        );
        assert!(parse_from("at:12x").is_err());
        assert!(parse_from("somewhere").is_err());
        assert_eq!(parse_shard("shardId-000000000007"), Ok(7));
        assert_eq!(parse_shard("7"), Ok(7));
        assert!(parse_shard("seven").is_err());
    }
}
