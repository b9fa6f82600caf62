//! The `lambda` scenario's function: a small HTTP/1.1 server on threads of
//! its own (one per connection, keep-alive honoured) speaking Lambda's
//! invocation contract. It parses each event with serde_json,
//! base64-decodes every record's data, and keeps per shard which offsets
//! (from the sequence numbers, as the Kinesis API shows them) arrived, so
//! every record is checked: count, gaps and duplicates; with stamped data it
//! records put→invoke latencies. It answers `{}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::load::{Shared, micros};
use crate::report::histogram;

/// Shards and offsets the function accepts (anything past is a bad event).
const SHARDS_MAX: usize = 4096;
const OFFSET_MAX: u64 = 1 << 32;

/// What reached the function, checked against the stream.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delivery {
    pub(crate) invocations: u64,
    pub(crate) records: u64,
    pub(crate) distinct: u64,
    pub(crate) duplicates: u64,
    /// Offsets below a shard's tip never delivered.
    pub(crate) missing: u64,
    /// Offsets at or past a shard's tip (not in the stream when counted).
    pub(crate) beyond: u64,
    pub(crate) bad_events: u64,
    pub(crate) first_problem: Option<String>,
    pub(crate) batch_min: u64,
    pub(crate) batch_median: u64,
    pub(crate) batch_max: u64,
    pub(crate) batches_full: u64,
}

/// The bench's function: an HTTP/1.1 server and what it has received.
pub(crate) struct Function {
    addr: SocketAddr,
    pub(crate) handler: Arc<Handler>,
}

/// What the function keeps, under one lock taken once per invocation.
pub(crate) struct Collector {
    /// Per shard index: which offsets arrived (one bit each).
    pub(crate) seen: Vec<Vec<u64>>,
    pub(crate) records: u64,
    pub(crate) duplicates: u64,
    pub(crate) batch_sizes: Vec<u32>,
    /// Arrival of the first and the last invocation, ns since the epoch.
    pub(crate) first_ns: Option<u64>,
    pub(crate) last_ns: u64,
    /// Put→invoke of records sent in the measured window, µs.
    pub(crate) latency: Histogram<u64>,
    pub(crate) bad_events: u64,
    pub(crate) first_problem: Option<String>,
}

impl Collector {
    fn new() -> Collector {
        Collector {
            seen: Vec::new(),
            records: 0,
            duplicates: 0,
            batch_sizes: Vec::new(),
            first_ns: None,
            last_ns: 0,
            latency: histogram(),
            bad_events: 0,
            first_problem: None,
        }
    }

    fn problem(&mut self, what: String) {
        self.bad_events += 1;
        self.first_problem.get_or_insert(what);
    }

    /// Records one event's records (shard, offset); returns how many were new.
    fn add(&mut self, at_ns: u64, records: &[(u32, u64)], latencies: &[u64]) -> u64 {
        self.first_ns.get_or_insert(at_ns);
        self.last_ns = self.last_ns.max(at_ns);
        self.batch_sizes.push(records.len() as u32);
        self.records += records.len() as u64;
        let mut new = 0;
        for &(shard, offset) in records {
            let shard = shard as usize;
            if self.seen.len() <= shard {
                self.seen.resize_with(shard + 1, Vec::new);
            }
            let bits = &mut self.seen[shard];
            let word = (offset / 64) as usize;
            if bits.len() <= word {
                bits.resize((word + 1).next_power_of_two(), 0);
            }
            let mask = 1u64 << (offset % 64);
            if bits[word] & mask == 0 {
                bits[word] |= mask;
                new += 1;
            } else {
                self.duplicates += 1;
            }
        }
        for &us in latencies {
            self.latency.record(us).ok();
        }
        new
    }

    /// The check against the shards' tips.
    pub(crate) fn delivery(&self, tips: &[u64], batch_size: u32) -> Delivery {
        let mut d = Delivery {
            invocations: self.batch_sizes.len() as u64,
            records: self.records,
            duplicates: self.duplicates,
            bad_events: self.bad_events,
            first_problem: self.first_problem.clone(),
            ..Delivery::default()
        };
        let shards = tips.len().max(self.seen.len());
        for shard in 0..shards {
            let tip = tips.get(shard).copied().unwrap_or(0);
            let bits = self.seen.get(shard).map(Vec::as_slice).unwrap_or(&[]);
            let below: u64 = bits
                .iter()
                .enumerate()
                .map(|(w, word)| {
                    let from = w as u64 * 64;
                    let keep = match tip.saturating_sub(from) {
                        0 => 0,
                        n if n >= 64 => u64::MAX,
                        n => (1u64 << n) - 1,
                    };
                    u64::from((word & keep).count_ones())
                })
                .sum();
            let all: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
            d.distinct += all;
            d.missing += tip - below;
            d.beyond += all - below;
        }
        let mut sizes = self.batch_sizes.clone();
        sizes.sort_unstable();
        if let (Some(min), Some(max)) = (sizes.first(), sizes.last()) {
            d.batch_min = u64::from(*min);
            d.batch_max = u64::from(*max);
            d.batch_median = u64::from(sizes[sizes.len() / 2]);
        }
        d.batches_full = sizes.iter().filter(|&&s| s == batch_size).count() as u64;
        d
    }
}

/// The members of the event the function reads (the rest is skipped).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<EventRecord<'a>>,
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(borrow)]
    kinesis: KinesisData<'a>,
}

#[derive(Deserialize)]
struct KinesisData<'a> {
    #[serde(rename = "sequenceNumber")]
    sequence_number: &'a str,
    data: &'a str,
}

impl Function {
    /// Listens on a free loopback port; `stamped`: records carry their send
    /// time (latency), measured against `shared`'s clock and window.
    pub(crate) fn start(shared: Arc<Shared>, stamped: bool) -> anyhow::Result<Function> {
        let listener = TcpListener::bind("127.0.0.1:0").context("the function's listener")?;
        let addr = listener.local_addr()?;
        let handler = Arc::new(Handler {
            shared,
            stamped,
            collector: Mutex::new(Collector::new()),
            distinct: AtomicU64::new(0),
        });
        let accepting = handler.clone();
        // The accept loop lives as long as the bench.
        std::thread::Builder::new()
            .name("function-accept".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let handler = accepting.clone();
                    let _ = std::thread::Builder::new()
                        .name("function".into())
                        .spawn(move || handler.serve(conn));
                }
            })?;
        Ok(Function { addr, handler })
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "http://{}/2015-03-31/functions/bench/invocations",
            self.addr
        )
    }
}

pub(crate) struct Handler {
    shared: Arc<Shared>,
    /// Records carry their send time.
    stamped: bool,
    pub(crate) collector: Mutex<Collector>,
    /// Distinct records received.
    pub(crate) distinct: AtomicU64,
}

impl Handler {
    /// Serves one connection's requests until it closes.
    fn serve(&self, conn: TcpStream) {
        let _ = conn.set_nodelay(true);
        let Ok(mut out) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::with_capacity(1 << 16, conn);
        let mut body = Vec::new();
        let mut head = Vec::new();
        loop {
            head.clear();
            let (length, close) = match read_head(&mut reader, &mut head) {
                Ok(Some(h)) => h,
                Ok(None) | Err(_) => return,
            };
            let Some(length) = length else {
                let _ = out.write_all(
                    b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            };
            body.resize(length, 0);
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let at = self.shared.now_ns();
            self.handle(at, &body);
            let answer: &[u8] = if close {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
            };
            if out.write_all(answer).is_err() || close {
                return;
            }
        }
    }

    /// One event received at `at_ns`.
    fn handle(&self, at_ns: u64, body: &[u8]) {
        let (records, latencies) = match self.parse(at_ns, body) {
            Ok(r) => r,
            Err(e) => {
                self.collector.lock().unwrap().problem(e);
                return;
            }
        };
        let new = self
            .collector
            .lock()
            .unwrap()
            .add(at_ns, &records, &latencies);
        self.distinct.fetch_add(new, Ordering::Relaxed);
        self.shared.consumed.fetch_add(new, Ordering::Relaxed);
    }

    /// The event's (shard, offset) pairs and, when stamped, the put→invoke
    /// latencies (µs) of its records sent in the measured window.
    #[allow(clippy::type_complexity)]
    fn parse(&self, at_ns: u64, body: &[u8]) -> Result<(Vec<(u32, u64)>, Vec<u64>), String> {
        let event: Event<'_> = serde_json::from_slice(body)
            .map_err(|e| format!("an event that does not parse: {e}"))?;
        let mut records = Vec::with_capacity(event.records.len());
        let mut latencies = Vec::new();
        let mut data = Vec::new();
        for r in &event.records {
            let k = &r.kinesis;
            // As the Kinesis API shows it.
            let seq = riffle_engine::kinesis::record_of_sequence_number(k.sequence_number)
                .ok_or_else(|| format!("sequenceNumber {} is not a record's", k.sequence_number))?;
            if seq.0 as usize >= SHARDS_MAX || seq.1 >= OFFSET_MAX {
                return Err(format!(
                    "sequenceNumber {} is out of range",
                    k.sequence_number
                ));
            }
            data.clear();
            BASE64
                .decode_vec(k.data, &mut data)
                .map_err(|e| format!("data of {}: {e}", k.sequence_number))?;
            if self.stamped {
                let Some(stamp) = data.get(..8) else {
                    return Err(format!("data of {} is under 8 bytes", k.sequence_number));
                };
                let sent = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                if self.shared.measuring(sent) {
                    latencies.push(micros(at_ns.saturating_sub(sent)));
                }
            }
            records.push(seq);
        }
        Ok((records, latencies))
    }
}

/// Reads a request's head into `head`: (Content-Length, Connection: close),
/// or None at a clean end of the connection.
fn read_head(
    reader: &mut impl BufRead,
    head: &mut Vec<u8>,
) -> std::io::Result<Option<(Option<usize>, bool)>> {
    loop {
        let start = head.len();
        if reader.read_until(b'\n', head)? == 0 {
            return Ok(None);
        }
        if &head[start..] == b"\r\n" || &head[start..] == b"\n" {
            if start == 0 {
                // Stray blank lines between requests.
                head.clear();
                continue;
            }
            break;
        }
        if head.len() > 64 << 10 {
            return Err(std::io::Error::other("request head over 64 KiB"));
        }
    }
    let text = String::from_utf8_lossy(head);
    let (mut length, mut close) = (None, false);
    for line in text.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        }
    }
    if text.starts_with("GET ") || text.starts_with("HEAD ") {
        length = length.or(Some(0));
    }
    Ok(Some((length, close)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn event(records: &[(u32, u64, &[u8])]) -> String {
        let records: Vec<Value> = records
            .iter()
            .map(|(shard, offset, data)| {
                let opened = riffle_engine::ShardOpened {
                    at_ms: 1_796_306_000_000,
                    by_reshard: false,
                };
                let seq = riffle_engine::kinesis::sequence_number(
                    *shard,
                    opened,
                    *offset,
                    1_796_306_000_123,
                );
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": "k \"quoted\"",
                        "sequenceNumber": seq,
                        "data": BASE64.encode(data),
                        "approximateArrivalTimestamp": 1796306000.123,
                    },
                    "eventSource": "aws:kinesis",
                    "eventID": format!("shardId-{shard:012}:{seq}"),
                })
            })
            .collect();
        json!({"Records": records}).to_string()
    }

    fn post(conn: &mut TcpStream, body: &str, close: bool) -> String {
        let close = if close { "Connection: close\r\n" } else { "" };
        write!(
            conn,
            "POST /2015-03-31/functions/bench/invocations HTTP/1.1\r\nHost: x\r\n{close}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = vec![0u8; 256];
        let mut got = 0;
        while !answer[..got].ends_with(b"{}") {
            let n = conn.read(&mut answer[got..]).unwrap();
            assert!(n > 0, "the function closed early");
            got += n;
        }
        String::from_utf8(answer[..got].to_vec()).unwrap()
    }

    #[test]
    fn the_function_checks_every_record_over_keep_alive() {
        let shared = Shared::new();
        shared.measure_from.store(0, Ordering::Relaxed);
        let f = Function::start(shared.clone(), true).unwrap();
        let mut conn = TcpStream::connect(f.addr).unwrap();
        let sent = shared.now_ns().to_le_bytes();
        let data: Vec<u8> = sent.iter().copied().chain(*b"payload").collect();
        // Shard 0: offsets 0, 1, 3 (2 missing), then 1 again; shard 1: 0.
        let first = post(&mut conn, &event(&[(0, 0, &data), (0, 1, &data)]), false);
        assert_eq!(first, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
        post(&mut conn, &event(&[(0, 3, &data), (1, 0, &data)]), false);
        let last = post(&mut conn, &event(&[(0, 1, &data)]), true);
        assert!(last.contains("Connection: close"), "{last}");
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(f.handler.distinct.load(Ordering::Relaxed), 4);
        let c = f.handler.collector.lock().unwrap();
        let d = c.delivery(&[4, 1], 2);
        assert_eq!(
            (
                d.invocations,
                d.records,
                d.distinct,
                d.duplicates,
                d.missing,
                d.beyond
            ),
            (3, 5, 4, 1, 1, 0)
        );
        assert_eq!(
            (d.batch_min, d.batch_median, d.batch_max, d.batches_full),
            (1, 2, 2, 2)
        );
        assert_eq!(c.latency.len(), 5);
        assert_eq!(d.bad_events, 0);
        // A tip below what arrived: the rest is beyond it.
        let d = c.delivery(&[2, 1], 2);
        assert_eq!((d.missing, d.beyond), (0, 1));
    }

    #[test]
    fn bad_events_are_counted_and_answered() {
        let f = Function::start(Shared::new(), true).unwrap();
        let mut conn = TcpStream::connect(f.addr).unwrap();
        post(&mut conn, "{\"Records\":[", false);
        post(&mut conn, &event(&[(0, 0, b"short")]), false);
        let c = f.handler.collector.lock().unwrap();
        assert_eq!(c.bad_events, 2);
        assert!(
            c.first_problem
                .as_deref()
                .unwrap()
                .starts_with("an event that does not parse"),
            "{:?}",
            c.first_problem
        );
        assert_eq!(c.records, 0);
    }
}
