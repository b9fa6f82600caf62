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

/// Why a record failed: AWS-style error code and message.
pub type Failed = (&'static str, String);

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
        match &p.deaggregation {
            None => out.push(r),
            Some(SubRecords::Json) => split_json(&r, out)?,
            Some(SubRecords::Delimited(d)) => split_delimited(&r, d, out),
        }
        if out.len() - start > SUB_RECORDS_MAX {
            out.truncate(start);
            return Err((
                "DeAggregation.TooManySubRecords",
                format!("the record splits into more than {SUB_RECORDS_MAX} records"),
            ));
        }
    }
    Ok(())
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
