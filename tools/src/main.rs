//! `riffle`: the Riffle command. `riffle server` runs the server; the other
//! subcommands are a CLI over the native protocol (see `cli.rs`).

mod server;

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
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (native protocol on --listen, data in --data-dir).
    Server(server::ServerArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Server(args) => server::run(args),
    };
    if let Err(e) = result {
        eprintln!("riffle: {e:#}");
        std::process::exit(1);
    }
}
