//! Rough throughput of `Converter` for a 10-column record (not a benchmark suite):
//! `cargo run --release -p riffle-columnar --example throughput [records] [snappy|gzip|none] [openx|hive]`.
//! Prints records/s and input MB/s for push + finish, and the Parquet size.

use std::time::Instant;

use riffle_columnar::{Converter, Deserializer, ParquetCompression, ParquetOptions, Schema};

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let record_count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let compression = match args.get(2).map(String::as_str) {
        Some("gzip") => ParquetCompression::Gzip,
        Some("none") => ParquetCompression::Uncompressed,
        _ => ParquetCompression::Snappy,
    };
    let deserializer = match args.get(3).map(String::as_str) {
        Some("hive") => Deserializer::Hive {
            timestamp_formats: vec![],
        },
        _ => Deserializer::default(),
    };
    let columns: Vec<(String, String)> = [
        ("event_id", "bigint"),
        ("user_id", "string"),
        ("session", "string"),
        ("kind", "string"),
        ("price", "decimal(10,2)"),
        ("quantity", "int"),
        ("score", "double"),
        ("active", "boolean"),
        ("created", "timestamp"),
        ("tags", "array<string>"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), t.to_string()))
    .collect();
    let schema = Schema::new(&columns)?;
    let kinds = ["click", "view", "purchase", "scroll"];
    let records: Vec<Vec<u8>> = (0..record_count.min(100_000))
        .map(|i| {
            format!(
                r#"{{"event_id":{i},"user_id":"user-{:06}","session":"s-{:08x}","kind":"{}","price":{}.{:02},"quantity":{},"score":{},"active":{},"created":"2024-05-{:02} {:02}:{:02}:{:02}.{:03}","tags":["a{}","b{}"]}}"#,
                i % 50_000,
                i.wrapping_mul(2_654_435_761) % 0xffff_ffff,
                kinds[i % 4],
                i % 1000,
                i % 100,
                i % 17,
                (i as f64) * 0.37,
                i % 3 == 0,
                1 + i % 28,
                i % 24,
                i % 60,
                (i / 60) % 60,
                i % 1000,
                i % 9,
                i % 5
            )
            .into_bytes()
        })
        .collect();
    let mean_len = records.iter().map(Vec::len).sum::<usize>() as f64 / records.len() as f64;
    let options = ParquetOptions {
        compression,
        ..ParquetOptions::default()
    };
    let start = Instant::now();
    let mut converter = Converter::new(&schema, deserializer, options)?;
    let mut input_bytes = 0usize;
    for i in 0..record_count {
        let record = &records[i % records.len()];
        input_bytes += record.len();
        converter.push(record)?;
    }
    let file = converter.finish()?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{record_count} records ({mean_len:.0} B each, {compression:?}): {:.0} records/s, {:.1} MB/s of JSON, {:.2} s; Parquet {} bytes ({:.1}% of input)",
        record_count as f64 / seconds,
        input_bytes as f64 / seconds / 1e6,
        seconds,
        file.len(),
        100.0 * file.len() as f64 / input_bytes as f64
    );
    Ok(())
}
