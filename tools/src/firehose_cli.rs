//! `riffle firehose create|list|describe|delete|put`: Firehose's operations
//! from the command line, through the server's AWS HTTP API (Firehose has no
//! native-protocol operations yet). Human output by default, `--json` for
//! scripts; exit codes as the other commands (1: the request failed, 3: the
//! server cannot be reached).

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::cli::{Common, Failure};

/// The HTTP API's default address (as `riffle server --http`).
pub const DEFAULT_HTTP: &str = "127.0.0.1:4567";

/// Records per PutRecordBatch (AWS's limit).
const BATCH_RECORDS_MAX: usize = 500;

#[derive(clap::Args, Debug)]
pub struct FirehoseArgs {
    /// The server's HTTP API address.
    #[arg(long, global = true, env = "RIFFLE_HTTP", default_value = DEFAULT_HTTP)]
    pub http: String,
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
fn call(http: &str, operation: &str, input: &Value) -> Result<Value, Failure> {
    let unreachable = |e: std::io::Error| Failure {
        code: 3,
        message: format!("cannot reach the HTTP API at {http}: {e} (--http, RIFFLE_HTTP)"),
    };
    let mut conn = TcpStream::connect(http).map_err(unreachable)?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(unreachable)?;
    let body = input.to_string();
    write!(
        conn,
        "POST / HTTP/1.1\r\nHost: {http}\r\nX-Amz-Target: Firehose_20150804.{operation}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(unreachable)?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).map_err(unreachable)?;
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| failed(format!("{http} did not answer in HTTP")))?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let parsed: Value = serde_json::from_slice(&answer[end + 4..]).unwrap_or(Value::Null);
    if status == 200 {
        return Ok(parsed);
    }
    let kind = parsed["__type"].as_str().unwrap_or("error");
    let message = parsed["message"]
        .as_str()
        .or(parsed["Message"].as_str())
        .unwrap_or("");
    Err(failed(format!("{kind}: {message}")))
}

pub fn run(common: &Common, args: FirehoseArgs) -> Result<(), Failure> {
    let http = args.http.as_str();
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
                http,
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
                let out = call(http, "ListDeliveryStreams", &input)?;
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
            let out = call(
                http,
                "DescribeDeliveryStream",
                &json!({ "DeliveryStreamName": name }),
            )?;
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
                http,
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
            for batch in records.chunks(BATCH_RECORDS_MAX) {
                let out = call(
                    http,
                    "PutRecordBatch",
                    &json!({
                        "DeliveryStreamName": name,
                        "Records": batch.iter().map(|r| json!({"Data": BASE64.encode(r)})).collect::<Vec<_>>(),
                    }),
                )?;
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
