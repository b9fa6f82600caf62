//! DiscoverInputSchema: samples records from a stream (up to
//! `discover::SAMPLE_RECORDS_MAX`, spread over its shards, from
//! TRIM_HORIZON or, for NOW, those arriving within `NOW_WAIT_MS`; a
//! delivery stream's where it keeps them), through the input preprocessing
//! function when one is given, or takes an object (of the embedded store or
//! the S3-compatible server), and answers the schema `discover` infers from
//! them (docs/analytics-design.md §1.7).

use std::sync::Arc;

use riffle_aws::error::Refusal;
use riffle_aws::input::Input;
use riffle_engine::kinesis::{ArnNames, names_of_arn};
use riffle_store::iterator::IteratorType;
use serde_json::{Value, json};

use crate::discover;
use crate::ops::{Answer, invalid};
use crate::service::Shared;

/// How long a NOW sample waits for records to arrive.
const NOW_WAIT_MS: u64 = 5_000;

pub(crate) async fn discover(s: &Arc<Shared>, input: Input<'_>) -> Answer {
    let processing = match input.object("InputProcessingConfiguration")? {
        Some(p) => match p.object("InputLambdaProcessor")? {
            Some(l) => Some(l.required_str("ResourceARN")?),
            None => {
                return Err(invalid(
                    "InputProcessingConfiguration needs InputLambdaProcessor.",
                ));
            }
        },
        None => None,
    };
    if processing.is_some() && input.get("S3Configuration").is_some() {
        return Err(invalid(
            "InputProcessingConfiguration applies to a stream's records (ResourceARN), not to an object.",
        ));
    }
    let samples = match (input.str("ResourceARN")?, input.object("S3Configuration")?) {
        (Some(arn), None) => {
            if input.get("RoleARN").is_none() {
                return Err(invalid("RoleARN is required with ResourceARN."));
            }
            let position = input
                .object("InputStartingPositionConfiguration")?
                .and_then(|c| c.str("InputStartingPosition").ok().flatten())
                .unwrap_or("NOW");
            // A preprocessor opens KPL aggregates itself, as it does for a
            // running application.
            sample_stream(s, arn, position, processing.is_none()).await?
        }
        (None, Some(c)) => {
            let (bucket_arn, key) = (c.required_str("BucketARN")?, c.required_str("FileKey")?);
            match &s.config.objects {
                Some(reader) => vec![sample_remote(reader, bucket_arn, key).await?],
                None => vec![sample_object(s, bucket_arn, key)?],
            }
        }
        _ => {
            return Err(invalid(
                "Give either ResourceARN (with RoleARN and InputStartingPositionConfiguration) or S3Configuration.",
            ));
        }
    };
    let text = |records: &[Vec<u8>]| -> Vec<Value> {
        (records.iter())
            .map(|r| Value::String(String::from_utf8_lossy(r).into_owned()))
            .collect()
    };
    let raw = text(&samples);
    let processed = match processing {
        Some(function) => {
            let arn = input.str("ResourceARN")?.unwrap_or_default();
            Some(preprocess(s, function, arn, &samples).await?)
        }
        None => None,
    };
    let refs: Vec<&[u8]> = (processed.as_ref().unwrap_or(&samples).iter())
        .map(Vec::as_slice)
        .collect();
    match discover::discover(&refs) {
        Ok(d) => {
            let mut answer = json!({
                "InputSchema": d.schema,
                "ParsedInputRecords": d.parsed,
                "RawInputRecords": raw,
            });
            if let Some(p) = &processed {
                answer["ProcessedInputRecords"] = Value::Array(text(p));
            }
            Ok(answer)
        }
        Err(message) => Err(Refusal::client("UnableToDetectSchemaException", message)),
    }
}

/// How long DiscoverInputSchema gives its preprocessing function.
const PREPROCESS_WAIT_MS: i64 = 30_000;

/// The samples through the preprocessing function `function`: the data of
/// those it answers `Ok` (a sample's recordId is its index; its partition
/// key is not kept by the sampling).
async fn preprocess(
    s: &Arc<Shared>,
    function: &str,
    stream_arn: &str,
    samples: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, Refusal> {
    use crate::run::preprocess::{InRecord, Outcome, Preprocessor};
    let c = &s.config;
    let f = riffle_lambda::function::resolve(function, &c.functions, &c.region, &c.account)
        .map_err(invalid)?;
    let firehose = stream_arn.starts_with("arn:aws:firehose:");
    let pre = Preprocessor::new(
        f.url,
        String::new(),
        stream_arn.into(),
        firehose,
        s.tls.clone(),
    );
    let now = riffle_engine::rt::now_ms();
    let records: Vec<InRecord<'_>> = (samples.iter().enumerate())
        .map(|(i, data)| InRecord {
            id: i.to_string(),
            partition_key: "",
            arrival_ms: now,
            data,
        })
        .collect();
    let deadline = now + PREPROCESS_WAIT_MS;
    let live = || riffle_engine::rt::now_ms() < deadline;
    let shard_id = riffle_protocol::routing::shard_id(0);
    let outcomes = pre
        .process_records(&records, &shard_id, live, "DiscoverInputSchema", &|_, _| {})
        .await
        .ok_or_else(|| {
            Refusal::client(
                "UnableToDetectSchemaException",
                format!(
                    "The preprocessing function {function} did not answer the sampled records as \
                     AWS's contract asks within {} s.",
                    PREPROCESS_WAIT_MS / 1000
                ),
            )
        })?;
    Ok(outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Ok(data) => Some(data),
            Outcome::Dropped | Outcome::Failed => None,
        })
        .collect())
}

async fn sample_stream(
    s: &Shared,
    arn: &str,
    position: &str,
    open_aggregates: bool,
) -> Result<Vec<Vec<u8>>, Refusal> {
    let (region, account) = (&s.config.region, &s.config.account);
    // A delivery stream's records are sampled where they are kept.
    let records = crate::run::records_of_arn(s, arn);
    let stream = match names_of_arn(arn, region, account) {
        Some(ArnNames::Stream(name)) => name,
        _ if arn.starts_with("arn:aws:firehose:") => match &records {
            Some((stream, _)) => stream.as_str(),
            None => {
                return Err(invalid(format!(
                    "Firehose {arn} under account {account} not found."
                )));
            }
        },
        _ => {
            return Err(invalid(format!(
                "{arn} is not a Kinesis data stream ARN of region {region} and account {account}."
            )));
        }
    };
    let (kind, wait_ms) = match position {
        "TRIM_HORIZON" => (IteratorType::TrimHorizon, 0),
        "NOW" => (IteratorType::Latest, NOW_WAIT_MS),
        other => {
            return Err(invalid(format!(
                "InputStartingPosition {other} is not available to DiscoverInputSchema: use NOW or TRIM_HORIZON."
            )));
        }
    };
    let described = s.engine.describe_stream(stream).map_err(|_| {
        invalid(format!(
            "Stream {stream} under account {account} not found."
        ))
    })?;
    let shards: Vec<u32> = described.shards.iter().map(|d| d.shard_index).collect();
    let per_shard = (discover::SAMPLE_RECORDS_MAX / shards.len().max(1)).max(1) as u32;
    let reads = shards.iter().map(|shard| async move {
        let cursor = s.engine.shard_cursor(stream, *shard, kind).await?;
        let out = s.engine.read_at(&cursor, Some(per_shard), wait_ms).await?;
        let mut records = Vec::new();
        for r in out.records() {
            let users = open_aggregates
                .then(|| riffle_protocol::kpl::deaggregate(r.data()))
                .flatten();
            match users {
                Some(users) => records.extend(users.iter().map(|u| u.data.to_vec())),
                None => records.push(r.data().to_vec()),
            }
        }
        Ok::<_, riffle_protocol::Error>(records)
    });
    let mut samples = Vec::new();
    for read in riffle_engine::join_all(reads.collect()).await {
        samples.extend(read?);
    }
    samples.truncate(discover::SAMPLE_RECORDS_MAX);
    Ok(samples)
}

/// The first bytes of an object of the S3-compatible server.
async fn sample_remote(
    reader: &crate::service::ObjectReader,
    bucket_arn: &str,
    key: &str,
) -> Result<Vec<u8>, Refusal> {
    let bucket = crate::objects::bucket_of_arn(bucket_arn).map_err(invalid)?;
    let read = reader(
        bucket.to_string(),
        key.to_string(),
        discover::SAMPLE_RECORD_BYTES_MAX,
        false,
    );
    match read.await {
        Ok(Some(data)) => Ok(data.to_vec()),
        Ok(None) => Err(invalid(format!(
            "Object {key} in bucket {bucket} not found."
        ))),
        Err(e) => Err(invalid(format!(
            "Object {key} in bucket {bucket} cannot be read: {e}"
        ))),
    }
}

/// An object of the embedded store (`<data-dir>/s3/<bucket>/<key>`).
fn sample_object(s: &Shared, bucket_arn: &str, key: &str) -> Result<Vec<u8>, Refusal> {
    let bucket = crate::objects::bucket_of_arn(bucket_arn).map_err(invalid)?;
    let path = crate::objects::object_path(&s.engine.config().data_dir, bucket_arn, key)
        .map_err(invalid)?;
    let mut data = Vec::new();
    let file = std::fs::File::open(&path)
        .map_err(|_| invalid(format!("Object {key} in bucket {bucket} not found.")))?;
    use std::io::Read;
    file.take(discover::SAMPLE_RECORD_BYTES_MAX as u64)
        .read_to_end(&mut data)
        .map_err(|e| {
            invalid(format!(
                "Object {key} in bucket {bucket} cannot be read: {e}"
            ))
        })?;
    Ok(data)
}
