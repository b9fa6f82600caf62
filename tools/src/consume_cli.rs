//! `riffle consume STREAM --group NAME [--exec CMD]`: a consumer group worker
//! (`riffle_client::ConsumerGroup`) from the command line, so that programs in
//! any language can share a stream's shards through Riffle's leases.
//!
//! Each record (user records of aggregated records) is one JSON line, as
//! `riffle get --json` prints it plus `shard_id`. Without `--exec`, the lines
//! go to stdout, and a batch is checkpointed once written. With `--exec CMD`,
//! the worker runs `sh -c CMD` for each shard it holds (environment:
//! `RIFFLE_STREAM`, `RIFFLE_GROUP`, `RIFFLE_SHARD_ID`), writes the shard's
//! records to its stdin, and reads one line from its stdout per record it has
//! processed (any text): records are checkpointed once acknowledged, so a
//! command that dies loses nothing (the next holder starts after the last
//! acknowledged record). A command that exits or closes its stdout early makes
//! the worker stop (exit 1) without checkpointing further; another worker takes
//! over. A command still working on a batch when the lease's deadline comes is
//! killed and the worker stops the same way (another worker may hold the shard
//! by then); commands must print
//! exactly one line per record. Checkpoints are made at most once a second per
//! shard (each is an fsync on the server) and when a shard is handed back.
//! SIGINT/SIGTERM: the worker checkpoints, hands its shards back and leaves the
//! group (exit 0).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use riffle_client::{
    Checkpointer, ConsumerConfig, ConsumerGroup, GroupConfig, InitialPosition, Record,
    RecordProcessor, ShardStart,
};
use riffle_protocol::routing;

use crate::cli::{Common, Failure, record_json};

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    pub stream: String,
    /// The consumer group.
    #[arg(long)]
    pub group: String,
    /// This worker's id in the group (default: host name and pid).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// Where a new group starts: trim-horizon or latest.
    #[arg(long, default_value = "latest")]
    pub initial: String,
    /// A worker silent this long loses its shards to the others.
    #[arg(long, default_value_t = 10_000)]
    pub failover_ms: u64,
    /// Read with GetRecords instead of taking pushes at the tip.
    #[arg(long)]
    pub polling: bool,
    /// Run this command (sh -c) for each shard held: records on its stdin,
    /// one acknowledgement line per processed record on its stdout.
    #[arg(long)]
    pub exec: Option<String>,
}

pub fn run(common: &Common, args: ConsumeArgs) -> Result<(), Failure> {
    let initial = match args.initial.as_str() {
        "trim-horizon" => InitialPosition::TrimHorizon,
        "latest" => InitialPosition::Latest,
        other => {
            return Err(Failure {
                code: 2,
                message: format!("invalid --initial {other:?}: expected trim-horizon or latest"),
            });
        }
    };
    let signals = crate::server::block_signals();
    let client = crate::cli::connect(common)?;
    let mut config = GroupConfig::new(&args.group);
    if let Some(id) = &args.worker_id {
        config.worker_id = id.clone();
    }
    config.failover = Duration::from_millis(args.failover_ms);
    config.initial = initial;
    config.consumer = ConsumerConfig {
        follow: !args.polling,
        ..ConsumerConfig::default()
    };
    // Small batches: each must be processed well within the failover time.
    config.batch_max = BATCH_MAX;
    let (stream, group, exec) = (args.stream.clone(), args.group.clone(), args.exec.clone());
    let worker = ConsumerGroup::start(client, &args.stream, config, move |shard| {
        let sink = match &exec {
            Some(cmd) => Sink::Command {
                cmd: cmd.clone(),
                env: [
                    ("RIFFLE_STREAM", stream.clone()),
                    ("RIFFLE_GROUP", group.clone()),
                    ("RIFFLE_SHARD_ID", routing::shard_id(shard)),
                ],
                child: None,
            },
            None => Sink::Stdout,
        };
        Box::new(LineProcessor {
            shard,
            sink,
            checkpointed_at: None,
        }) as Box<dyn RecordProcessor>
    })?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(crate::server::wait_for_signal(&signals));
    });
    loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() || worker.is_finished() {
            break;
        }
    }
    worker.shutdown()?;
    Ok(())
}

enum Sink {
    Stdout,
    Command {
        cmd: String,
        env: [(&'static str, String); 3],
        child: Option<Running>,
    },
}

struct Running {
    child: Child,
    stdin: ChildStdin,
    /// One item per acknowledgement line; disconnected at the command's EOF.
    acks: Receiver<()>,
}

/// Records handed to a command at once.
const BATCH_MAX: usize = 1000;
/// Checkpoints of a shard at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long a command may take to exit after its input ends.
const EXIT_WAIT: Duration = Duration::from_secs(10);

struct LineProcessor {
    shard: u32,
    sink: Sink,
    /// When the last checkpoint was made.
    checkpointed_at: Option<Instant>,
}

/// The worker cannot go on: the command broke its contract, or stdout is gone.
fn fail(message: String) -> ! {
    eprintln!("riffle: {message}");
    std::process::exit(1);
}

impl LineProcessor {
    fn start_command(cmd: &str, env: &[(&'static str, String); 3]) -> Running {
        let parent = std::process::id();
        let mut command = Command::new("sh");
        command
            .args(["-c", cmd])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        // The command dies with the thread that runs it (the shard's), so a
        // worker killed outright leaves no command processing its shard while
        // another worker takes the lease over.
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // The worker died before prctl: do not start at all.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| fail(format!("cannot run {cmd:?}: {e}")));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            fail(format!("{cmd:?} has no pipes"));
        };
        let (tx, acks) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line.is_err() || tx.send(()).is_err() {
                    break;
                }
            }
        });
        Running { child, stdin, acks }
    }

    /// Ends the command: stdin closed, then waited for (killed after
    /// [`EXIT_WAIT`]).
    fn finish(&mut self) {
        if let Sink::Command { child, .. } = &mut self.sink
            && let Some(mut r) = child.take()
        {
            drop(r.stdin);
            let deadline = Instant::now() + EXIT_WAIT;
            while matches!(r.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    fn checkpoint(&mut self, checkpointer: &mut Checkpointer, now: bool) {
        if !now
            && self
                .checkpointed_at
                .is_some_and(|t| t.elapsed() < CHECKPOINT_EVERY)
        {
            return;
        }
        self.checkpointed_at = Some(Instant::now());
        if let Err(e) = checkpointer.checkpoint() {
            tracing::warn!(shard = self.shard, error = %e, "checkpoint refused");
        }
    }
}

impl RecordProcessor for LineProcessor {
    fn initialize(&mut self, _start: &ShardStart) {
        if let Sink::Command { cmd, env, child } = &mut self.sink {
            *child = Some(Self::start_command(cmd, env));
        }
    }

    fn process_records(&mut self, records: &[Record], checkpointer: &mut Checkpointer) {
        let mut text = String::new();
        for r in records {
            text.push_str(&record_json(self.shard, r).to_string());
            text.push('\n');
        }
        match &mut self.sink {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    fail("stdout is closed".into());
                }
            }
            Sink::Command { cmd, child, .. } => {
                let Some(r) = child.as_mut() else {
                    fail(format!("{cmd:?} is not running"));
                };
                if r.stdin
                    .write_all(text.as_bytes())
                    .and_then(|()| r.stdin.flush())
                    .is_err()
                {
                    fail(format!("{cmd:?} closed its stdin"));
                }
                for _ in records {
                    let left = checkpointer
                        .lease_deadline()
                        .saturating_duration_since(Instant::now());
                    match r.acks.recv_timeout(left) {
                        Ok(()) => {}
                        Err(RecvTimeoutError::Timeout) => {
                            // Past the lease's deadline another worker may hold
                            // the shard: stop the command and the worker, with
                            // nothing more checkpointed (the next holder starts
                            // after the last acknowledged record).
                            let _ = r.child.kill();
                            let _ = r.child.wait();
                            fail(format!(
                                "{cmd:?} did not acknowledge the records of {} within the lease",
                                routing::shard_id(self.shard)
                            ));
                        }
                        Err(RecvTimeoutError::Disconnected) => fail(format!(
                            "{cmd:?} ended before acknowledging every record of {}",
                            routing::shard_id(self.shard)
                        )),
                    }
                }
            }
        }
        self.checkpoint(checkpointer, false);
    }

    fn lease_lost(&mut self) {
        if let Sink::Command { child, .. } = &mut self.sink
            && let Some(mut r) = child.take()
        {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    fn shard_ended(&mut self, checkpointer: &mut Checkpointer) {
        self.finish();
        if let Err(e) = checkpointer.checkpoint() {
            tracing::warn!(shard = self.shard, error = %e, "SHARD_END refused");
        }
    }

    fn shutdown_requested(&mut self, checkpointer: &mut Checkpointer) {
        // Every record handed out was acknowledged: checkpoint through the
        // last one before handing the shard back.
        self.finish();
        self.checkpoint(checkpointer, true);
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// Show a consumer group's leases (shard, owner, counter, checkpoint,
    /// parents) and its live workers.
    Describe { stream: String, group: String },
}

pub fn group(common: &Common, command: GroupCommand) -> Result<(), Failure> {
    let GroupCommand::Describe { stream, group } = command;
    let client = crate::cli::connect(common)?;
    let d = client.group_describe(&stream, &group)?;
    let checkpoint = |c: &riffle_client::LeaseCheckpoint| match c {
        riffle_client::LeaseCheckpoint::TrimHorizon => "TRIM_HORIZON".to_string(),
        riffle_client::LeaseCheckpoint::Latest => "LATEST".to_string(),
        riffle_client::LeaseCheckpoint::ShardEnd => "SHARD_END".to_string(),
        riffle_client::LeaseCheckpoint::After {
            sequence_number,
            sub_sequence_number,
        } => {
            let seq = riffle_protocol::seqno::to_string(*sequence_number);
            match sub_sequence_number {
                Some(sub) => format!("after {seq}.{sub}"),
                None => format!("after {seq}"),
            }
        }
    };
    if common.json {
        let leases: Vec<serde_json::Value> = d
            .leases
            .iter()
            .map(|l| {
                serde_json::json!({
                    "shard_id": routing::shard_id(l.shard_index),
                    "owner": l.owner,
                    "counter": l.counter,
                    "checkpoint": checkpoint(&l.checkpoint),
                    "parents": l.parents.iter().map(|p| routing::shard_id(*p)).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"leases": leases, "workers": d.workers})
        );
        return Ok(());
    }
    println!("workers: {}", d.workers.join(", "));
    println!(
        "{:<22} {:<24} {:>8}  CHECKPOINT",
        "SHARD", "OWNER", "COUNTER"
    );
    for l in &d.leases {
        println!(
            "{:<22} {:<24} {:>8}  {}",
            routing::shard_id(l.shard_index),
            l.owner.as_deref().unwrap_or("-"),
            l.counter,
            checkpoint(&l.checkpoint)
        );
    }
    Ok(())
}
