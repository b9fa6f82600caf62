//! `riffle firehose create|list|describe|delete|put`: Firehose's operations
//! from the command line, through the server's AWS HTTP API, or with
//! `--native` put and describe over the native protocol (at `--server`, as
//! the other commands). Human output by default, `--json` for scripts; exit
//! codes as the other commands (1: the request failed, 3: the server cannot
//! be reached).

use std::io::{BufRead, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use riffle_client::Client;
use riffle_protocol::native::firehose::{PUT_RECORD_BATCH_BYTES_MAX, PUT_RECORD_BATCH_COUNT_MAX};
use serde_json::{Value, json};

use crate::aws_http::{Api, Service};
use crate::cli::{Common, Failure};

/// The HTTP API's default address (as `riffle server --http`).
pub const DEFAULT_HTTP: &str = "127.0.0.1:4567";

#[derive(clap::Args, Debug)]
pub struct FirehoseArgs {
    /// The server's HTTP API address.
    #[arg(long, global = true, env = "RIFFLE_HTTP", default_value = DEFAULT_HTTP)]
    pub http: String,
    /// put and describe over the native protocol, at --server (RIFFLE_SERVER),
    /// instead of the HTTP API.
    #[arg(long, global = true)]
    pub native: bool,
    #[command(subcommand)]
    pub command: FirehoseCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum FirehoseCommand {
    /// Create a Direct PUT delivery stream delivering to an S3 bucket.
    Create {
        name: String,
        /// The bucket (the embedded store's directory, or the --s3-endpoint's bucket).
        #[arg(long)]
        bucket: String,
        /// The key prefix (AWS's prefix language).
        #[arg(long)]
        prefix: Option<String>,
        /// The error output prefix (needed when --prefix has expressions).
        #[arg(long)]
        error_prefix: Option<String>,
        /// UNCOMPRESSED, GZIP, ZIP, Snappy or HADOOP_SNAPPY.
        #[arg(long, default_value = "UNCOMPRESSED")]
        compression: String,
        /// Deliver once this much is buffered (MiB, 1-128).
        #[arg(long, default_value_t = 5)]
        buffer_mb: u64,
        /// ... or once the oldest buffered record is this old (seconds, 0-900).
        #[arg(long, default_value_t = 300)]
        buffer_seconds: u64,
    },
    /// List the delivery streams.
    List,
    /// Show a delivery stream.
    Describe { name: String },
    /// Delete a delivery stream (its undelivered records are dropped).
    Delete { name: String },
    /// Put a record (DATA, as it is), or one record per line of stdin (with its newline).
    Put { name: String, data: Option<String> },
}

fn failed(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

/// One Firehose operation: its answer, or AWS's error as a failure.
fn call(api: &Api, operation: &str, input: &Value) -> Result<Value, Failure> {
    api.call(Service::Firehose, operation, input)
        .map_err(|e| Failure {
            code: if e.unreachable { 3 } else { 1 },
            message: e.to_string(),
        })
}

/// A native client at `--server`, its reachability checked with a ping.
fn connect(common: &Common) -> Result<Client, Failure> {
    let unreachable = |e| crate::cli::connect_failure(common, e);
    let config = common.client_config()?;
    let client = Client::connect(common.server.as_str(), config).map_err(unreachable)?;
    client.ping().map_err(unreachable)?;
    Ok(client)
}

/// Consecutive records in calls within PutRecordBatch's limits: at most 500
/// records and 4 MiB each (a record alone over the limit is refused by its call).
fn calls(records: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let full = i - start == PUT_RECORD_BATCH_COUNT_MAX as usize
            || bytes + r.len() > PUT_RECORD_BATCH_BYTES_MAX;
        if full && i > start {
            out.push(&records[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// One PutRecordBatch: AWS's answer (FailedPutCount, RequestResponses).
fn put_batch(
    api: &Api,
    client: Option<&Client>,
    name: &str,
    batch: &[Vec<u8>],
) -> Result<Value, Failure> {
    let Some(client) = client else {
        return call(
            api,
            "PutRecordBatch",
            &json!({
                "DeliveryStreamName": name,
                "Records": batch.iter().map(|r| json!({"Data": BASE64.encode(r)})).collect::<Vec<_>>(),
            }),
        );
    };
    let put = client.firehose_put_record_batch(name, batch)?;
    let responses: Vec<Value> = put
        .records
        .iter()
        .map(|r| match r {
            Ok(id) => json!({ "RecordId": id }),
            Err(e) => json!({"ErrorCode": e.error_code, "ErrorMessage": e.message}),
        })
        .collect();
    Ok(json!({
        "FailedPutCount": put.failed_put_count,
        "Encrypted": put.encrypted,
        "RequestResponses": responses,
    }))
}

pub fn run(common: &Common, args: FirehoseArgs) -> Result<(), Failure> {
    let api = Api::of_command(&args.http, None, common)?;
    let api = &api;
    let client = match args.native {
        true => match args.command {
            FirehoseCommand::Put { .. } | FirehoseCommand::Describe { .. } => {
                Some(connect(common)?)
            }
            _ => {
                return Err(failed(
                    "--native serves put and describe; the other commands use the HTTP API",
                ));
            }
        },
        false => None,
    };
    let print = |v: &Value| {
        println!(
            "{}",
            serde_json::to_string_pretty(v).expect("JSON serializes")
        );
    };
    match args.command {
        FirehoseCommand::Create {
            name,
            bucket,
            prefix,
            error_prefix,
            compression,
            buffer_mb,
            buffer_seconds,
        } => {
            let mut destination = json!({
                "RoleARN": "arn:aws:iam::000000000000:role/riffle",
                "BucketARN": format!("arn:aws:s3:::{bucket}"),
                "CompressionFormat": compression,
                "BufferingHints": {"SizeInMBs": buffer_mb, "IntervalInSeconds": buffer_seconds},
            });
            if let Some(p) = prefix {
                destination["Prefix"] = json!(p);
            }
            if let Some(p) = error_prefix {
                destination["ErrorOutputPrefix"] = json!(p);
            }
            let out = call(
                api,
                "CreateDeliveryStream",
                &json!({"DeliveryStreamName": name, "DeliveryStreamType": "DirectPut",
                        "ExtendedS3DestinationConfiguration": destination}),
            )?;
            match common.json {
                true => print(&out),
                false => println!(
                    "created {}",
                    out["DeliveryStreamARN"].as_str().unwrap_or(&name)
                ),
            }
        }
        FirehoseCommand::List => {
            let mut names = Vec::new();
            let mut start: Option<String> = None;
            loop {
                let mut input = json!({"Limit": 10000});
                if let Some(s) = &start {
                    input["ExclusiveStartDeliveryStreamName"] = json!(s);
                }
                let out = call(api, "ListDeliveryStreams", &input)?;
                let page: Vec<String> = out["DeliveryStreamNames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect();
                start = page.last().cloned();
                names.extend(page);
                if out["HasMoreDeliveryStreams"] != json!(true) || start.is_none() {
                    break;
                }
            }
            match common.json {
                true => print(&json!({ "DeliveryStreamNames": names })),
                false => names.iter().for_each(|n| println!("{n}")),
            }
        }
        FirehoseCommand::Describe { name } => {
            let out = match &client {
                Some(c) => serde_json::from_str(&c.firehose_describe(&name)?.json)
                    .map_err(|e| failed(format!("the server's description is not JSON: {e}")))?,
                None => call(
                    api,
                    "DescribeDeliveryStream",
                    &json!({ "DeliveryStreamName": name }),
                )?,
            };
            let d = &out["DeliveryStreamDescription"];
            if common.json {
                print(d);
            } else {
                println!(
                    "name        {}",
                    d["DeliveryStreamName"].as_str().unwrap_or("")
                );
                println!(
                    "arn         {}",
                    d["DeliveryStreamARN"].as_str().unwrap_or("")
                );
                println!(
                    "status      {}",
                    d["DeliveryStreamStatus"].as_str().unwrap_or("")
                );
                println!(
                    "source      {}",
                    d["DeliveryStreamType"].as_str().unwrap_or("")
                );
                println!("version     {}", d["VersionId"].as_str().unwrap_or(""));
                for dest in d["Destinations"].as_array().into_iter().flatten() {
                    if let Some(s3) = dest.get("ExtendedS3DestinationDescription") {
                        println!("destination s3 {}", s3["BucketARN"].as_str().unwrap_or(""));
                    }
                    if let Some(h) = dest.get("HttpEndpointDestinationDescription") {
                        println!(
                            "destination {}",
                            h["EndpointConfiguration"]["Url"].as_str().unwrap_or("")
                        );
                    }
                }
                if let Some(f) = d.get("FailureDescription") {
                    println!("failure     {}", f["Details"].as_str().unwrap_or(""));
                }
            }
        }
        FirehoseCommand::Delete { name } => {
            call(
                api,
                "DeleteDeliveryStream",
                &json!({ "DeliveryStreamName": name }),
            )?;
            if !common.json {
                println!("deleted {name}");
            }
        }
        FirehoseCommand::Put { name, data } => {
            let records: Vec<Vec<u8>> = match data {
                Some(d) => vec![d.into_bytes()],
                None => std::io::stdin()
                    .lock()
                    .split(b'\n')
                    .map(|line| {
                        line.map(|mut l| {
                            l.push(b'\n');
                            l
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| failed(format!("cannot read stdin: {e}")))?,
            };
            let mut put = 0;
            for batch in calls(&records) {
                let out = put_batch(api, client.as_ref(), &name, batch)?;
                let failures = out["FailedPutCount"].as_u64().unwrap_or(0);
                if failures > 0 {
                    return Err(failed(format!(
                        "{failures} of {} records were not put: {}",
                        batch.len(),
                        out["RequestResponses"]
                    )));
                }
                put += batch.len();
                if common.json {
                    for r in out["RequestResponses"].as_array().into_iter().flatten() {
                        println!("{r}");
                    }
                }
            }
            if !common.json {
                println!("put {put} records into {name}");
            }
        }
    }
    std::io::stdout()
        .flush()
        .map_err(|e| failed(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_respect_both_limits() {
        let check = |sizes: &[usize], expected: &[usize]| {
            let records: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![0; n]).collect();
            let got: Vec<usize> = calls(&records).iter().map(|c| c.len()).collect();
            assert_eq!(got, expected, "{sizes:?}");
        };
        check(&[], &[]);
        check(&[1; 1001], &[500, 500, 1]);
        let mib = 1 << 20;
        check(&[mib, mib, mib, mib, 1], &[4, 1]);
        check(&[mib, mib, mib, mib - 1, 1, 1], &[5, 1]);
        // A record over the limit goes alone; its call is refused.
        check(&[1, 5 * mib, 1], &[1, 1, 1]);
    }
}
