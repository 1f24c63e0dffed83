//! The `beamq` command line. Only argument handling lives here; every job is in the library.
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// One binary for Erlang/OTP and EMQX-style clusters: epmd, a distribution node, an MQTT broker.
#[derive(Parser)]
#[command(name = "beamq", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The Erlang port mapper daemon, flags as OTP's epmd (`-port P`, `-names`, `-daemon`, ...).
    Epmd {
        /// Arguments exactly as C epmd takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    // Invoked through a symlink named `epmd`, or as `beamq epmd ...`: C epmd's single-dash flags,
    // which clap does not parse, go to the hand-written parser.
    let invoked_as_epmd = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "epmd");
    if invoked_as_epmd {
        return exit(beamq::epmd::cli::main(args.split_off(1)));
    }
    if args.get(1).is_some_and(|a| a == "epmd") {
        return exit(beamq::epmd::cli::main(args.split_off(2)));
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Epmd { args } => exit(beamq::epmd::cli::main(args)),
    }
}
