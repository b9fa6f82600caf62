//! `riffle-bench s3-put`: an S3-compatible server's own ceiling for what
//! Firehose's S3 delivery does (engine/firehose/src/s3.rs): objects of
//! `--object-size` bytes written by `--concurrency` writers for `--duration`
//! seconds, each object a PutObject, or with `--multipart` the same sequence
//! Firehose sends for objects of 10 MiB or more (ListMultipartUploads of the
//! key, CreateMultipartUpload, parts of a quarter of the object but at least
//! 5 MiB, four at a time, CompleteMultipartUpload).
//!
//! The client costs little CPU on purpose: blocking threads on
//! `crate::s3_client` (std's `TcpStream`, one connection per request as
//! Firehose does, SigV4 with an unsigned payload), and every body a
//! slice of one buffer made before the clock starts: bytes nothing
//! compresses, or with `--compressible` hex digits (as the firehose
//! scenario's records; a store may compress what it is given). The bucket is the run's
//! own; its objects are deleted and the bucket removed afterwards.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use riffle_aws::sign::{encode_key, encode_query};
use serde_json::json;

use crate::Args;
use crate::machine::{Machine, own_cpu_seconds, process_cpu_seconds};
use crate::report::{Percentiles, histogram};
use crate::s3_client::{S3, credential, xml_field};

/// Objects this large or larger go up in parts (Firehose's `MULTIPART_MIN`).
const MULTIPART_MIN: usize = 10 << 20;
/// S3's smallest part but the last.
const PART_BYTES_MIN: usize = 5 << 20;
/// The largest part Firehose sends.
const PART_BYTES_MAX: usize = 64 << 20;
/// Parts Firehose uploads at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Distinct keys a writer cycles through (objects are overwritten, so a long
/// run does not keep every object).
const KEYS_PER_WRITER: usize = 2;

/// Runs the s3-put scenario and prints its result.
pub fn run(args: &Args, machine: Machine) -> anyhow::Result<()> {
    let endpoint = args
        .s3_endpoint
        .as_deref()
        .context("s3-put needs --s3-endpoint http://HOST:PORT")?;
    let key_of = |flag: &Option<String>, env: &str, name: &str| {
        credential(flag, env).with_context(|| format!("s3-put needs --{name} (or {env})"))
    };
    let s3 = S3::new(
        endpoint,
        &key_of(&args.s3_access_key, "AWS_ACCESS_KEY_ID", "s3-access-key")?,
        &key_of(
            &args.s3_secret_key,
            "AWS_SECRET_ACCESS_KEY",
            "s3-secret-key",
        )?,
    )?;
    if args.object_size == 0 || args.concurrency == 0 {
        bail!("--object-size and --concurrency must be at least 1");
    }
    if args.multipart && args.object_size < MULTIPART_MIN {
        bail!(
            "--multipart needs --object-size of at least {MULTIPART_MIN} (Firehose sends smaller objects whole)"
        );
    }
    let bucket = format!("s3put-{}", std::process::id());
    s3.create_bucket(&bucket)?;
    let mut body = pseudo_random(args.object_size);
    if args.compressible {
        for b in &mut body {
            *b = b"0123456789abcdef"[(*b & 15) as usize];
        }
    }
    let result = measure(&s3, &bucket, &body, args);
    let cleanup = remove_bucket(&s3, &bucket, args.concurrency);
    let result = result?;
    cleanup?;
    let mb_s = result.bytes as f64 / result.seconds / 1e6;
    let latency = Percentiles::of(&result.latency).unwrap_or_default();
    let server_cpu = result.server_cpu;
    if args.json {
        println!(
            "{}",
            json!({
                "scenario": "s3-put",
                "endpoint": endpoint,
                "multipart": args.multipart,
                "compressible": args.compressible,
                "object_size": args.object_size,
                "concurrency": args.concurrency,
                "objects": result.objects,
                "seconds": result.seconds,
                "mb_per_s": mb_s,
                "object_latency_us": latency,
                "client_cpu_s": result.client_cpu,
                "server_cpu_s": server_cpu,
                "machine": machine,
            })
        );
    } else {
        let mode = if args.multipart {
            "multipart (Firehose's sequence)"
        } else {
            "PutObject"
        };
        let data = if args.compressible {
            "hex digits"
        } else {
            "incompressible"
        };
        println!(
            "s3-put to {endpoint}: {mode}, {} B objects ({data}), {} writers",
            args.object_size, args.concurrency
        );
        println!("  machine: {}", machine.describe());
        println!(
            "  {} objects, {:.1} MB in {:.2} s: {mb_s:.1} MB/s",
            result.objects,
            result.bytes as f64 / 1e6,
            result.seconds
        );
        println!(
            "  object latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            latency.p50 as f64 / 1e3,
            latency.p90 as f64 / 1e3,
            latency.p99 as f64 / 1e3,
            latency.max as f64 / 1e3
        );
        let server = server_cpu.map_or("n/a (--server-pid)".to_string(), |s| format!("{s:.2} s"));
        println!(
            "  CPU: client {:.2} s, S3 server {server}, of {:.1} s wall",
            result.client_cpu, result.seconds
        );
    }
    Ok(())
}

/// What a run measured.
struct Measured {
    objects: u64,
    bytes: u64,
    /// From the start until the last writer's last object was acknowledged.
    seconds: f64,
    latency: Histogram<u64>,
    client_cpu: f64,
    server_cpu: Option<f64>,
}

/// The writers: each puts objects until the duration has passed; the clock
/// stops when the last object in flight is acknowledged.
fn measure(s3: &S3, bucket: &str, body: &[u8], args: &Args) -> anyhow::Result<Measured> {
    let total = Mutex::new((0u64, histogram()));
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let cpu0 = own_cpu_seconds();
    let server0 = args.server_pid.and_then(process_cpu_seconds);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.duration);
    std::thread::scope(|scope| {
        for writer in 0..args.concurrency {
            let (total, failure) = (&total, &failure);
            scope.spawn(move || {
                let mut latency = histogram();
                let mut objects = 0u64;
                while Instant::now() < deadline && failure.lock().unwrap().is_none() {
                    let key = format!("w{writer}/object-{}", objects as usize % KEYS_PER_WRITER);
                    let t = Instant::now();
                    let put = if args.multipart {
                        put_in_parts(s3, bucket, &key, body)
                    } else {
                        s3.put_object(bucket, &key, body)
                    };
                    if let Err(e) = put {
                        failure.lock().unwrap().get_or_insert(e);
                        return;
                    }
                    latency.saturating_record(t.elapsed().as_micros() as u64);
                    objects += 1;
                }
                let mut total = total.lock().unwrap();
                total.0 += objects;
                let _ = total.1.add(&latency);
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let (objects, latency) = total.into_inner().unwrap();
    let server_cpu = match (server0, args.server_pid.and_then(process_cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    Ok(Measured {
        objects,
        bytes: objects * body.len() as u64,
        seconds,
        latency,
        client_cpu: own_cpu_seconds() - cpu0,
        server_cpu,
    })
}

/// `len` bytes nothing compresses (xorshift64).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Firehose's part size for an object of `len` bytes.
fn part_bytes(len: usize) -> usize {
    len.div_ceil(PARTS_IN_FLIGHT)
        .clamp(PART_BYTES_MIN, PART_BYTES_MAX)
}

/// Deletes the writers' objects, then the bucket.
fn remove_bucket(s3: &S3, bucket: &str, writers: usize) -> anyhow::Result<()> {
    for w in 0..writers {
        for k in 0..KEYS_PER_WRITER {
            s3.delete_object(bucket, &format!("w{w}/object-{k}"))?;
        }
    }
    s3.delete_bucket(bucket)
}

/// Firehose's multipart sequence (engine/firehose/src/s3.rs `put_in_parts`).
fn put_in_parts(s3: &S3, bucket: &str, key: &str, body: &[u8]) -> anyhow::Result<()> {
    let path = format!("/{bucket}/{}", encode_key(key));
    let listed = s3.call(
        "GET",
        &format!("/{bucket}?prefix={}&uploads=", encode_query(key)),
        &[],
    )?;
    listed.ok(&format!("ListMultipartUploads {bucket}"))?;
    let created = s3
        .call("POST", &format!("{path}?uploads="), &[])?
        .ok(&format!("CreateMultipartUpload {path}"))?;
    let id = xml_field(&String::from_utf8_lossy(&created.body), "UploadId")
        .context("CreateMultipartUpload answered no UploadId")?;
    let id = encode_query(&id);
    let size = part_bytes(body.len());
    let parts: Vec<&[u8]> = body.chunks(size).collect();
    let mut etags: Vec<String> = Vec::with_capacity(parts.len());
    for (wave, chunk) in parts.chunks(PARTS_IN_FLIGHT).enumerate() {
        let answers: Vec<anyhow::Result<String>> = std::thread::scope(|scope| {
            let sends: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let number = wave * PARTS_IN_FLIGHT + i + 1;
                    let uri = format!("{path}?partNumber={number}&uploadId={id}");
                    scope.spawn(move || {
                        let answer = s3.call("PUT", &uri, part)?.ok("UploadPart")?;
                        answer
                            .header("etag")
                            .map(str::to_string)
                            .context("UploadPart answered no ETag")
                    })
                })
                .collect();
            sends
                .into_iter()
                .map(|s| {
                    s.join()
                        .unwrap_or_else(|_| bail!("an UploadPart thread panicked"))
                })
                .collect()
        });
        for answer in answers {
            etags.push(answer?);
        }
    }
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            i + 1,
            etag.replace('"', "&quot;")
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    s3.call("POST", &format!("{path}?uploadId={id}"), xml.as_bytes())?
        .ok(&format!("CompleteMultipartUpload {path}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_firehoses() {
        assert_eq!(part_bytes(11_000_000), PART_BYTES_MIN);
        assert_eq!(11_000_000usize.div_ceil(part_bytes(11_000_000)), 3);
        assert_eq!(part_bytes(40 << 20), 10 << 20);
        assert_eq!(part_bytes(1 << 30), PART_BYTES_MAX);
    }

    #[test]
    fn bodies_do_not_repeat() {
        let b = pseudo_random(1 << 16);
        assert_eq!(b.len(), 1 << 16);
        assert_ne!(b[..4096], b[4096..8192]);
    }
}
