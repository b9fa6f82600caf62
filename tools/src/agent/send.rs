//! Sending records: Kinesis `PutRecords` and Firehose `PutRecordBatch` over
//! the AWS JSON 1.1 protocol, signed when there are credentials, retried
//! with exponential backoff (`retryInitialBackoffMillis` doubling to
//! `retryMaxBackoffMillis`, jittered) on throttling, server errors, refused
//! connections and any other error (a missing stream is logged as an error
//! and retried: the agent never drops what it read). Records a 200 answer
//! reports as failed are sent again, alone. Runs on a sender thread; gives up
//! only when the agent is stopping and its shutdown time is over.
//!
//! Also the agent's partition keys (`tailing/KinesisRecord.java`): RANDOM is
//! Java's `"" + ThreadLocalRandom.current().nextDouble(1000000)`,
//! DETERMINISTIC the MD5 of the record's data in lower-case hex.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use serde_json::Value;

use super::config::PartitionKeyOption;
use super::http::{Client, Endpoint};
use super::json::{java_double, write_string};
use super::sign::{Credentials, sign_post};

/// Where a flow's records go.
#[derive(Debug)]
pub struct Target {
    pub endpoint: Endpoint,
    pub region: String,
    pub credentials: Option<Credentials>,
    /// The stream or delivery stream.
    pub name: String,
    pub firehose: bool,
    pub retry_initial_backoff_ms: u64,
    pub retry_max_backoff_ms: u64,
    pub connect_timeout: Duration,
    pub socket_timeout: Duration,
}

/// A record to send (the partition key is empty for Firehose).
#[derive(Debug)]
pub struct OutRecord {
    pub data: Vec<u8>,
    pub partition_key: String,
}

/// When the agent stops: set, and the time (ms since the epoch) after which
/// senders give up.
#[derive(Debug, Default)]
pub struct Stopping {
    pub stop: AtomicBool,
    pub give_up_at_ms: AtomicU64,
}

impl Stopping {
    fn given_up(&self) -> bool {
        self.stop.load(Ordering::Relaxed) && now_ms() >= self.give_up_at_ms.load(Ordering::Relaxed)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A small xorshift generator (partition keys and jitter need no more).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded() -> Rng {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = t
            ^ (u64::from(std::process::id()) << 32)
            ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1) with 53 random bits, as Java's `nextDouble`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The partition key the agent gives a record.
pub fn partition_key(option: PartitionKeyOption, data: &[u8], rng: &mut Rng) -> String {
    match option {
        PartitionKeyOption::Deterministic => Md5::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        PartitionKeyOption::Random => {
            let x = rng.next_f64() * 1_000_000.0;
            if x >= 1e-3 {
                // Plain notation (Rust's shortest digits are Java's here).
                let mut s = x.to_string();
                if !s.contains('.') {
                    s.push_str(".0");
                }
                s
            } else {
                java_double(x)
            }
        }
    }
}

/// A refused record: its index in the call, AWS's error code and message.
type Refused = (usize, (String, String));

/// Why a send ended without every record acknowledged.
#[derive(Debug, PartialEq, Eq)]
pub struct GaveUp;

/// Sends batches for one flow, on one connection.
pub struct Sender {
    target: Arc<Target>,
    client: Client,
    stopping: Arc<Stopping>,
    rng: Rng,
}

impl Sender {
    pub fn new(target: Arc<Target>, stopping: Arc<Stopping>) -> Result<Sender, String> {
        let client = Client::new(
            target.endpoint.clone(),
            target.connect_timeout,
            target.socket_timeout,
        )?;
        Ok(Sender {
            target,
            client,
            stopping,
            rng: Rng::seeded(),
        })
    }

    /// Sends every record, retrying until each is acknowledged.
    pub fn send_all(&mut self, mut records: Vec<OutRecord>) -> Result<(), GaveUp> {
        let mut backoff_ms = self.target.retry_initial_backoff_ms;
        let mut attempts = 0u32;
        while !records.is_empty() {
            if self.stopping.given_up() {
                return Err(GaveUp);
            }
            attempts += 1;
            match self.put(&records) {
                Ok(failed) if failed.is_empty() => return Ok(()),
                Ok(failed) => {
                    let before = records.len();
                    let (code, message) = failed[0].1.clone();
                    let mut keep = failed.iter().map(|(i, _)| *i).peekable();
                    let mut i = 0;
                    records.retain(|_| {
                        let retained = keep.peek() == Some(&i);
                        if retained {
                            keep.next();
                        }
                        i += 1;
                        retained
                    });
                    tracing::warn!(target = %self.target.name, failed = records.len(), of = before, %code, %message, backoff_ms, "records refused; sending them again");
                }
                Err(e) => {
                    let level_error = e.contains("ResourceNotFoundException")
                        || !e.contains("Exception")
                        || attempts > 3;
                    if level_error {
                        tracing::error!(target = %self.target.name, records = records.len(), error = %e, backoff_ms, "send failed; retrying");
                    } else {
                        tracing::warn!(target = %self.target.name, records = records.len(), error = %e, backoff_ms, "send failed; retrying");
                    }
                }
            }
            self.sleep_backoff(backoff_ms);
            backoff_ms = (backoff_ms.max(1) * 2).min(self.target.retry_max_backoff_ms);
        }
        Ok(())
    }

    /// Sleeps about `ms` (jittered down to half), waking early when the agent gives up.
    fn sleep_backoff(&mut self, ms: u64) {
        let jittered = ms / 2 + self.rng.next_u64() % (ms / 2 + 1);
        let until = Instant::now() + Duration::from_millis(jittered);
        while Instant::now() < until && !self.stopping.given_up() {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
    }

    /// One call: the indices of refused records with their error, or the
    /// call's error.
    fn put(&mut self, records: &[OutRecord]) -> Result<Vec<Refused>, String> {
        let t = &self.target;
        let mut body = String::with_capacity(
            records
                .iter()
                .map(|r| r.data.len() * 4 / 3 + r.partition_key.len() + 40)
                .sum::<usize>()
                + 100,
        );
        let (target_header, service) = if t.firehose {
            body.push_str("{\"DeliveryStreamName\":");
            ("Firehose_20150804.PutRecordBatch", "firehose")
        } else {
            body.push_str("{\"StreamName\":");
            ("Kinesis_20131202.PutRecords", "kinesis")
        };
        write_string(&mut body, &t.name);
        body.push_str(",\"Records\":[");
        for (i, r) in records.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str("{\"Data\":\"");
            BASE64.encode_string(&r.data, &mut body);
            body.push('"');
            if !t.firehose {
                body.push_str(",\"PartitionKey\":");
                write_string(&mut body, &r.partition_key);
            }
            body.push('}');
        }
        body.push_str("]}");
        let content_type = "application/x-amz-json-1.1";
        let mut headers = vec![
            ("Content-Type".to_string(), content_type.to_string()),
            ("X-Amz-Target".to_string(), target_header.to_string()),
        ];
        if let Some(creds) = &t.credentials {
            let host = t.endpoint.authority();
            let signed = sign_post(
                creds,
                &t.region,
                service,
                &[
                    ("host", &host),
                    ("content-type", content_type),
                    ("x-amz-target", target_header),
                ],
                body.as_bytes(),
                SystemTime::now(),
            )?;
            headers.extend(signed);
        }
        let answer = self.client.post(&headers, body.as_bytes())?;
        let parsed: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if answer.status != 200 {
            let kind = parsed["__type"].as_str().unwrap_or("");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = parsed["message"]
                .as_str()
                .or(parsed["Message"].as_str())
                .unwrap_or("");
            return Err(if kind.is_empty() {
                format!(
                    "HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )
            } else {
                format!("{kind}: {message} (HTTP {})", answer.status)
            });
        }
        let (count_key, list_key) = if t.firehose {
            ("FailedPutCount", "RequestResponses")
        } else {
            ("FailedRecordCount", "Records")
        };
        let failed_count = parsed[count_key]
            .as_u64()
            .ok_or_else(|| format!("the answer has no {count_key}"))?;
        if failed_count == 0 {
            return Ok(Vec::new());
        }
        let list = parsed[list_key]
            .as_array()
            .ok_or_else(|| format!("the answer has no {list_key}"))?;
        if list.len() != records.len() {
            return Err(format!(
                "the answer has {} results for {} records",
                list.len(),
                records.len()
            ));
        }
        Ok(list
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let code = r["ErrorCode"].as_str()?;
                Some((
                    i,
                    (
                        code.to_string(),
                        r["ErrorMessage"].as_str().unwrap_or("").to_string(),
                    ),
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_are_the_agents() {
        let mut rng = Rng::seeded();
        // DETERMINISTIC: MD5 of the data, lower-case hex.
        assert_eq!(
            partition_key(PartitionKeyOption::Deterministic, b"hello\n", &mut rng),
            "b1946ac92492d2347c6235b4d2611184"
        );
        // RANDOM: a Java double in [0, 1e6), as Double.toString prints it.
        for _ in 0..1000 {
            let k = partition_key(PartitionKeyOption::Random, b"", &mut rng);
            let x: f64 = k.parse().unwrap();
            assert!((0.0..1e6).contains(&x), "{k}");
            assert!(k.contains('.') && !k.contains('e'), "{k}");
            assert_eq!(java_double(x), k);
        }
    }
}
