//! `riffle`: the Riffle command. `riffle server` runs the server; the other
//! subcommands are a CLI over the native protocol (see `cli.rs`), and
//! `riffle firehose` over the HTTP API (`firehose_cli.rs`).

mod agent;
mod aws_http;
mod cert;
mod cli;
mod consume_cli;
mod firehose_cli;
mod iam_file;
mod kms_cli;
mod server;
mod stack;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "riffle",
    version,
    about = "Riffle: a self-hosted, durable Kinesis"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: cli::Common,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (native protocol on --listen, data in --data-dir).
    Server(Box<server::ServerArgs>),
    /// Create, list, describe or delete streams.
    #[command(subcommand)]
    Stream(cli::StreamCommand),
    /// Put a record (DATA), or one record per line of stdin.
    Put(cli::PutArgs),
    /// Read records from a shard.
    Get(cli::GetArgs),
    /// Run a consumer group worker: records as JSON lines, to stdout or to a
    /// command per shard (--exec).
    Consume(consume_cli::ConsumeArgs),
    /// Consumer groups: describe one (its leases and live workers).
    #[command(subcommand)]
    Group(consume_cli::GroupCommand),
    /// Write a self-signed certificate and key for local TLS.
    Cert(cert::CertArgs),
    /// Firehose delivery streams: create, list, describe, delete, put (over the HTTP API).
    Firehose(firehose_cli::FirehoseArgs),
    /// Tail log files into Kinesis or Firehose, as the Amazon Kinesis Agent (agent.json).
    Agent(agent::AgentArgs),
    /// The local KMS keyring of encryption at rest: create-key, list, disable, enable.
    Kms(kms_cli::KmsArgs),
    /// Make or change what a stack file (CloudFormation's template shape)
    /// describes, over the HTTP API: `riffle apply -f stack.yaml`.
    Apply(stack::StackArgs),
    /// Show what `apply` would do (create, update, replace, delete).
    Diff(stack::StackArgs),
    /// Delete what a stack file describes (and whatever the stack made earlier).
    Delete(stack::StackArgs),
}

fn main() {
    riffle_engine::rt::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_)) {
        // Like other Unix tools: `riffle get ... | head` ends quietly.
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Server(args) => server::run(*args).map_err(cli::Failure::from),
        Command::Stream(command) => cli::stream(&cli.common, command),
        Command::Put(args) => cli::put(&cli.common, args),
        Command::Get(args) => cli::get(&cli.common, args),
        Command::Consume(args) => consume_cli::run(&cli.common, args),
        Command::Group(command) => consume_cli::group(&cli.common, command),
        Command::Cert(args) => cert::run(args).map_err(cli::Failure::from),
        Command::Firehose(args) => firehose_cli::run(&cli.common, args),
        Command::Agent(args) => agent::run(args),
        Command::Kms(args) => kms_cli::run(args).map_err(cli::Failure::from),
        Command::Apply(args) => stack::run(&cli.common, args, stack::Mode::Apply),
        Command::Diff(args) => stack::run(&cli.common, args, stack::Mode::Diff),
        Command::Delete(args) => stack::run(&cli.common, args, stack::Mode::Delete),
    };
    if let Err(e) = result {
        eprintln!("riffle: {}", e.message);
        std::process::exit(e.code);
    }
}
