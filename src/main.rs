//! The `beamq` command line. Only argument handling lives here; every job is in the library.
use clap::{Parser, Subcommand};

/// One binary for Erlang/OTP and EMQX-style clusters: epmd, a distribution node, an MQTT broker.
#[derive(Parser)]
#[command(name = "beamq", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() {
    let cli = Cli::parse();
    match cli.command {}
}
