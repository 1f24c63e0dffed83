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
    /// Run a node: Erlang distribution (ekka or epmd port mode) and, later, the MQTT broker.
    Start(StartArgs),
    /// Add, update or delete a user in an MQTT password file (as mosquitto_passwd):
    /// `beamq passwd [-c] [-I N] FILE USER [PASSWORD]`, `beamq passwd -D FILE USER`.
    Passwd {
        /// Arguments as mosquitto_passwd takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// MQTT load generator in the spirit of emqtt-bench: `beamq bench pub|sub|conn -h HOST -p
    /// PORT -c CLIENTS ...`.
    Bench {
        #[command(subcommand)]
        cmd: beamq::bench::BenchCommand,
    },
    /// Manage a running node, as `emqx_ctl` (EMQX 4): `beamq ctl [--node N@H] [--cookie C]
    /// cluster join NODE | leave | force-leave NODE | status [--json]`.
    Ctl(CtlArgs),
}

/// `beamq ctl` flags.
#[derive(clap::Args)]
struct CtlArgs {
    /// The node to manage; env EMQX_NODE_NAME; default beamq@127.0.0.1.
    #[arg(long)]
    node: Option<String>,
    /// Magic cookie; env EMQX_NODE_COOKIE; default ~/.erlang.cookie.
    #[arg(long)]
    cookie: Option<String>,
    #[command(subcommand)]
    cmd: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Cluster membership.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Join the cluster of NODE (leaving the current one first).
    Join { node: String },
    /// Leave the cluster.
    Leave,
    /// Remove NODE from the cluster; it stays out until it joins again.
    ForceLeave { node: String },
    /// Running and stopped members.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn ctl(args: CtlArgs) -> ExitCode {
    use beamq::cluster::ctl::{run, ClusterCmd};
    let target = args
        .node
        .or_else(|| {
            std::env::var("EMQX_NODE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| beamq::node::config::DEFAULT_NODE_NAME.to_string());
    let cookie = args.cookie.or_else(|| {
        std::env::var("EMQX_NODE_COOKIE")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let cookie = match beamq::dist::cookie::Cookie::resolve(cookie.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beamq ctl: cookie: {e}");
            return ExitCode::from(2);
        }
    };
    let mode = if std::env::var("WITH_EPMD").is_ok_and(|v| v == "1") {
        beamq::dist::listener::PortMode::Epmd {
            epmd_port: beamq::epmd::client::epmd_port(),
            listen_min: 0,
            listen_max: 0,
        }
    } else {
        beamq::dist::listener::PortMode::Ekka
    };
    let CtlCommand::Cluster { cmd } = args.cmd;
    let cmd = match cmd {
        ClusterCommand::Join { node } => ClusterCmd::Join(node),
        ClusterCommand::Leave => ClusterCmd::Leave,
        ClusterCommand::ForceLeave { node } => ClusterCmd::ForceLeave(node),
        ClusterCommand::Status { json } => ClusterCmd::Status { json },
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beamq ctl: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(&target, cookie, mode, cmd)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `beamq start` flags (DESIGN.md section 6). Flags win over the environment.
#[derive(clap::Args)]
struct StartArgs {
    /// Long node name NAME@HOST (HOST an IP or FQDN); env EMQX_NODE_NAME.
    #[arg(long, conflicts_with = "sname")]
    name: Option<String>,
    /// Short node name NAME (or NAME@SHORTHOST).
    #[arg(long)]
    sname: Option<String>,
    /// Magic cookie; env EMQX_NODE_COOKIE; default ~/.erlang.cookie (created when missing).
    #[arg(long)]
    cookie: Option<String>,
    /// net_ticktime in seconds.
    #[arg(long, default_value_t = 60)]
    net_ticktime: u64,
    /// Data directory.
    #[arg(long, default_value = "data")]
    data_dir: std::path::PathBuf,
    /// MQTT listener port (default 1883 + port offset).
    #[arg(long)]
    mqtt_port: Option<u16>,
    /// Shift of every listener port not derived from the node name (1883 -> 1883 + K).
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Lowest dist port in epmd mode (node.dist_listen_min).
    #[arg(long, default_value_t = beamq::node::config::DEFAULT_DIST_LISTEN_PORT)]
    dist_listen_min: u16,
    /// Highest dist port in epmd mode (node.dist_listen_max).
    #[arg(long, default_value_t = beamq::node::config::DEFAULT_DIST_LISTEN_PORT)]
    dist_listen_max: u16,
    /// Configuration file (keys are overridden by flags).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn start(args: StartArgs) -> ExitCode {
    use beamq::node::config::{node_config, StartOptions};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if let Some(c) = &args.config {
        if let Err(e) = std::fs::metadata(c) {
            eprintln!("beamq start: --config {}: {e}", c.display());
            return ExitCode::from(2);
        }
    }
    let opts = StartOptions {
        name: args.name,
        sname: args.sname,
        env_name: std::env::var("EMQX_NODE_NAME")
            .ok()
            .filter(|s| !s.is_empty()),
        cookie: args.cookie,
        net_ticktime: args.net_ticktime,
        with_epmd: std::env::var("WITH_EPMD").is_ok_and(|v| v == "1"),
        epmd_port: beamq::epmd::client::epmd_port(),
        dist_listen_min: args.dist_listen_min,
        dist_listen_max: args.dist_listen_max,
        data_dir: args.data_dir.clone(),
    };
    let cfg = match node_config(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("beamq start: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beamq start: {e}");
            return ExitCode::from(1);
        }
    };
    let server_opts = beamq::api::server::ServerOptions {
        node: cfg,
        data_dir: args.data_dir,
        mqtt_port: args.mqtt_port,
        port_offset: args.port_offset,
    };
    rt.block_on(async move {
        let server = match beamq::api::server::start(server_opts).await {
            Ok(s) => s,
            Err(e @ beamq::api::server::ServerError::PortOffset(_)) => {
                eprintln!("beamq start: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("beamq start: {e}");
                return ExitCode::from(1);
            }
        };
        println!(
            "beamq node {} started, dist port {}",
            server.node.node.name().as_str(),
            server.node.port
        );
        println!("beamq mqtt listening on port {}", server.mqtt_addr.port());
        wait_for_signal().await;
        drop(server);
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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
        Command::Start(args) => start(args),
        Command::Passwd { args } => exit(beamq::mqtt::auth::cli::main(args)),
        Command::Bench { cmd } => exit(beamq::bench::main(cmd)),
        Command::Ctl(args) => ctl(args),
    }
}
