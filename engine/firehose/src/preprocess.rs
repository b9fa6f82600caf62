//! The processors that run before the function, on one record at a time:
//! `Decompression`, `CloudWatchLogProcessing`, `RecordDeAggregation` (and, for
//! Direct PUT with de-aggregation on, KPL aggregated records). Pure: a record
//! in, its records out, or why it failed (AWS's error code and a message for
//! its `processing-failed` line).

use std::io::Read as _;

use riffle_protocol::kpl;
use serde::Deserialize;

use crate::processing::{Processing, SubRecords};

/// AWS's cap on the parts one record is split into.
pub const SUB_RECORDS_MAX: usize = 500;
/// A record decompresses to at most this (a larger one fails: no record is
/// allowed to grow memory without bound).
pub const DECOMPRESSED_BYTES_MAX: usize = 64 * 1024 * 1024;
/// A batch's records decompress to at most this in all; the records past it
/// fail (a few kilobytes of gzip can hold many megabytes).
pub const BATCH_DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Why a record failed: AWS-style error code and message.
pub type Failed = (&'static str, String);

/// What a batch became: each record with the index of its source record, and
/// the failures as (source index, code, message).
pub type Batch = (Vec<(Vec<u8>, usize)>, Vec<(usize, &'static str, String)>);

/// Whether `p` has a processor that runs here.
pub fn any(p: &Processing, kpl: bool) -> bool {
    p.decompress || p.cloudwatch_logs.is_some() || p.deaggregation.is_some() || kpl
}

/// Runs the processors on `record`, appending the records it becomes to
/// `out`; `kpl`: KPL aggregated records are split first.
pub fn run(p: &Processing, record: &[u8], kpl: bool, out: &mut Vec<Vec<u8>>) -> Result<(), Failed> {
    let decompressed;
    let data = if p.decompress {
        decompressed = gunzip(record)?;
        &decompressed[..]
    } else {
        record
    };
    let mut records: Vec<Vec<u8>> = match p.cloudwatch_logs {
        Some(extract) => cloudwatch_logs(data, extract)?,
        None => vec![data.to_vec()],
    };
    if kpl {
        records = records
            .into_iter()
            .flat_map(|r| match kpl::deaggregate(&r) {
                Some(users) => users.into_iter().map(|u| u.data.to_vec()).collect(),
                None => vec![r],
            })
            .collect();
    }
    let start = out.len();
    for r in records {
        let before = out.len();
        let split = match &p.deaggregation {
            None => {
                out.push(r);
                Ok(())
            }
            Some(SubRecords::Json) => split_json(&r, out),
            Some(SubRecords::Delimited(d)) => {
                split_delimited(&r, d, out);
                Ok(())
            }
        };
        // AWS's cap is on what de-aggregation makes of one record.
        let failed = split.err().or_else(|| {
            (out.len() - before > SUB_RECORDS_MAX).then(|| {
                (
                    "DeAggregation.TooManySubRecords",
                    format!("the record splits into more than {SUB_RECORDS_MAX} records"),
                )
            })
        });
        if let Some(f) = failed {
            out.truncate(start);
            return Err(f);
        }
    }
    Ok(())
}

/// The processors over a batch: each record it becomes with the index of
/// its source record, and the failures as (source index, code, message).
/// The batch becomes at most `bytes_max` (`BATCH_DECOMPRESSED_BYTES_MAX`):
/// records past it fail.
pub fn run_batch<'a>(
    p: &Processing,
    kpl: bool,
    records: impl Iterator<Item = &'a [u8]>,
    bytes_max: usize,
) -> Batch {
    let (mut made, mut failed) = (Vec::new(), Vec::new());
    let mut parts = Vec::new();
    let mut bytes = 0usize;
    for (i, record) in records.enumerate() {
        if bytes > bytes_max {
            failed.push((
                i,
                "Decompression.TooLarge",
                format!("the batch's records decompress to more than {bytes_max} bytes"),
            ));
            continue;
        }
        parts.clear();
        // A record that makes a decoder panic fails alone.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(p, record, kpl, &mut parts)
        }))
        .unwrap_or_else(|_| {
            parts.clear();
            Err((
                "Processing.Failed",
                "processing this record failed".to_string(),
            ))
        });
        match ran {
            Ok(()) => {
                bytes += parts.iter().map(Vec::len).sum::<usize>();
                made.extend(parts.drain(..).map(|d| (d, i)));
            }
            Err((code, message)) => failed.push((i, code, message)),
        }
    }
    (made, failed)
}

fn gunzip(record: &[u8]) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    let read = flate2::read::MultiGzDecoder::new(record)
        .take(DECOMPRESSED_BYTES_MAX as u64 + 1)
        .read_to_end(&mut out);
    match read {
        Ok(n) if n > DECOMPRESSED_BYTES_MAX => Err((
            "Decompression.TooLarge",
            format!("the record decompresses to more than {DECOMPRESSED_BYTES_MAX} bytes"),
        )),
        Ok(_) => Ok(out),
        Err(e) => Err((
            "Decompression.InvalidData",
            format!("the record is not GZIP data: {e}"),
        )),
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "messageType")]
    message_type: String,
    #[serde(rename = "logEvents", default)]
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    message: String,
}

/// A CloudWatch Logs subscription envelope: nothing for a control message;
/// the envelope, or each log event's message when `extract`.
fn cloudwatch_logs(data: &[u8], extract: bool) -> Result<Vec<Vec<u8>>, Failed> {
    let envelope: Envelope = serde_json::from_slice(data).map_err(|e| {
        (
            "CloudWatchLogs.InvalidMessage",
            format!("the record is not a CloudWatch Logs message: {e}"),
        )
    })?;
    match envelope.message_type.as_str() {
        "CONTROL_MESSAGE" => Ok(Vec::new()),
        "DATA_MESSAGE" if extract => Ok(envelope
            .log_events
            .into_iter()
            .map(|e| e.message.into_bytes())
            .collect()),
        "DATA_MESSAGE" => Ok(vec![data.to_vec()]),
        other => Err((
            "CloudWatchLogs.InvalidMessage",
            format!("messageType {other} is not DATA_MESSAGE or CONTROL_MESSAGE"),
        )),
    }
}

/// Concatenated or newline-separated JSON objects, each as it was written.
fn split_json(record: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), Failed> {
    let mut values =
        serde_json::Deserializer::from_slice(record).into_iter::<serde::de::IgnoredAny>();
    let mut start = 0;
    let before = out.len();
    loop {
        match values.next() {
            None => return Ok(()),
            Some(Ok(_)) => {
                let end = values.byte_offset();
                let part = record[start..end].trim_ascii();
                if part.first() != Some(&b'{') {
                    out.truncate(before);
                    return Err((
                        "DeAggregation.InvalidJson",
                        "the record holds a JSON value that is not an object (arrays of objects are not split)".into(),
                    ));
                }
                out.push(part.to_vec());
                start = end;
                if out.len() - before > SUB_RECORDS_MAX {
                    return Ok(());
                }
            }
            Some(Err(e)) => {
                out.truncate(before);
                return Err((
                    "DeAggregation.InvalidJson",
                    format!("the record is not concatenated JSON objects: {e}"),
                ));
            }
        }
    }
}

/// The non-empty parts between delimiters.
fn split_delimited(record: &[u8], delimiter: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut rest = record;
    while let Some(at) = find(rest, delimiter) {
        if at > 0 {
            out.push(rest[..at].to_vec());
        }
        rest = &rest[at + delimiter.len()..];
    }
    if !rest.is_empty() {
        out.push(rest.to_vec());
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn processed(p: &Processing, record: &[u8]) -> Result<Vec<Vec<u8>>, Failed> {
        let mut out = Vec::new();
        run(p, record, false, &mut out).map(|()| out)
    }

    #[test]
    fn json_records_split_into_their_objects() {
        let p = Processing {
            deaggregation: Some(SubRecords::Json),
            ..Processing::default()
        };
        assert_eq!(
            processed(&p, b"{\"a\":1}{\"a\":2}\n {\"b\":{\"c\":3}}\n").unwrap(),
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"a\":2}".to_vec(),
                b"{\"b\":{\"c\":3}}".to_vec()
            ]
        );
        // AWS's incorrect input: an array.
        assert_eq!(
            processed(&p, b"[{\"a\":1},{\"a\":2}]").unwrap_err().0,
            "DeAggregation.InvalidJson"
        );
        assert_eq!(
            processed(&p, b"{\"a\":1}{\"a\"").unwrap_err().0,
            "DeAggregation.InvalidJson"
        );
        let many = "{}".repeat(SUB_RECORDS_MAX + 1);
        assert_eq!(
            processed(&p, many.as_bytes()).unwrap_err().0,
            "DeAggregation.TooManySubRecords"
        );
        assert_eq!(
            processed(&p, "{}".repeat(SUB_RECORDS_MAX).as_bytes())
                .unwrap()
                .len(),
            SUB_RECORDS_MAX
        );
    }

    #[test]
    fn delimited_records_split_on_the_delimiter() {
        let p = Processing {
            deaggregation: Some(SubRecords::Delimited(b"####".to_vec())),
            ..Processing::default()
        };
        assert_eq!(
            processed(&p, b"a####bc########d").unwrap(),
            vec![b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn cloudwatch_logs_payloads_are_decompressed_and_extracted() {
        let data = br#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"g","logStream":"s","subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":1,"message":"first"},{"id":"2","timestamp":2,"message":"second"}]}"#;
        let control = br#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE"}]}"#;
        let extract = Processing {
            decompress: true,
            cloudwatch_logs: Some(true),
            ..Processing::default()
        };
        assert_eq!(
            processed(&extract, &gzip(data)).unwrap(),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        assert!(processed(&extract, &gzip(control)).unwrap().is_empty());
        // The 500 cap is de-aggregation's: 600 log events are 600 records.
        let events: Vec<String> = (0..600)
            .map(|i| format!(r#"{{"id":"{i}","timestamp":1,"message":"m{i}"}}"#))
            .collect();
        let big = format!(
            r#"{{"messageType":"DATA_MESSAGE","logEvents":[{}]}}"#,
            events.join(",")
        );
        assert_eq!(
            processed(&extract, &gzip(big.as_bytes())).unwrap().len(),
            600
        );
        let whole = Processing {
            cloudwatch_logs: Some(false),
            ..extract.clone()
        };
        assert_eq!(processed(&whole, &gzip(data)).unwrap(), vec![data.to_vec()]);
        assert_eq!(
            processed(&extract, b"plain text").unwrap_err().0,
            "Decompression.InvalidData"
        );
        assert_eq!(
            processed(&extract, &gzip(b"{}")).unwrap_err().0,
            "CloudWatchLogs.InvalidMessage"
        );
        let only_gzip = Processing {
            decompress: true,
            ..Processing::default()
        };
        assert_eq!(
            processed(&only_gzip, &gzip(b"x")).unwrap(),
            vec![b"x".to_vec()]
        );
    }

    #[test]
    fn batches_stop_decompressing_past_their_cap() {
        let p = Processing {
            decompress: true,
            ..Processing::default()
        };
        // 256 KiB of zeros gzips to a few hundred bytes.
        let bomb = gzip(&vec![0u8; 256 << 10]);
        let cap = 1 << 20;
        let records: Vec<&[u8]> = (0..8).map(|_| &bomb[..]).collect();
        let (made, failed) = run_batch(&p, false, records.into_iter(), cap);
        // Four fit (1 MiB), the fifth passes the cap, the rest fail.
        assert_eq!(made.len(), 5);
        assert_eq!(made[1].1, 1);
        assert_eq!(
            failed.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert!(failed.iter().all(|f| f.1 == "Decompression.TooLarge"));
    }

    #[test]
    fn kpl_records_split_before_the_parts() {
        use md5::{Digest, Md5};
        // An aggregated record of "x" and "yz".
        let body: Vec<u8> = [
            &[0x0a, 0x01, b'k'][..],
            &[0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, b'x'][..],
            &[0x1a, 0x06, 0x08, 0x00, 0x1a, 0x02, b'y', b'z'][..],
        ]
        .concat();
        let mut agg = kpl::MAGIC.to_vec();
        agg.extend_from_slice(&body);
        agg.extend_from_slice(&Md5::digest(&body));
        let mut out = Vec::new();
        run(&Processing::default(), &agg, true, &mut out).unwrap();
        assert_eq!(out, vec![b"x".to_vec(), b"yz".to_vec()]);
        assert!(any(&Processing::default(), true));
        assert!(!any(&Processing::default(), false));
    }
}
