//! `riffle`: the Riffle command. For now `riffle server` starts the engine with
//! a demo workload (one stream, a producer and a consumer) until Ctrl-C; the
//! native protocol issue turns it into a network server.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_lite::future::block_on;
use riffle_engine::{Durability, Engine, EngineConfig, PutRecordsEntry};
use riffle_store::iterator::IteratorType;

#[derive(Parser)]
#[command(name = "riffle", about = "Riffle: a self-hosted, durable Kinesis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the engine (with a demo workload until the network server lands).
    Server {
        #[arg(long, default_value = "./riffle-data", env = "RIFFLE_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long, env = "RIFFLE_CORES")]
        cores: Option<usize>,
        #[arg(long, default_value = "fsync", value_parser = ["fsync", "none"])]
        durability: String,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        seconds: Option<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    match Cli::parse().command {
        Command::Server {
            data_dir,
            cores,
            durability,
            seconds,
        } => {
            let mut config = EngineConfig::new(data_dir);
            if let Some(c) = cores {
                config.cores = c;
            }
            config.durability = if durability == "none" {
                Durability::None
            } else {
                Durability::Fsync
            };
            let engine = Engine::start(config).map_err(|e| anyhow::anyhow!("{e}"))?;
            if !engine.list_streams().contains(&"demo".to_string()) {
                block_on(engine.create_stream("demo", 2)).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            println!("riffle engine running; demo stream 'demo' with 2 shards (Ctrl-C to stop)");
            let mut its = Vec::new();
            for shard in engine
                .list_shards("demo")
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                its.push(
                    block_on(engine.get_shard_iterator(
                        "demo",
                        &shard.shard_id,
                        IteratorType::Latest,
                    ))
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                );
            }
            let start = std::time::Instant::now();
            let mut n = 0u64;
            loop {
                let data = format!("demo record {n}");
                let key = format!("key-{}", n % 10);
                let entry = PutRecordsEntry {
                    partition_key: &key,
                    explicit_hash_key: None,
                    data: data.as_bytes(),
                };
                let results = block_on(engine.put_records("demo", &[entry]))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let seq = results[0]
                    .as_ref()
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .sequence_number
                    .clone();
                let mut read = 0;
                for it in its.iter_mut() {
                    let out = block_on(engine.get_records(it, None))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    read += out.record_count;
                    *it = out.next_shard_iterator.clone().unwrap_or_default();
                }
                println!("put record {n} (sequence number {seq}); consumer read {read}");
                n += 1;
                if seconds.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            engine.shutdown().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        }
    }
}
