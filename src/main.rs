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
    /// Run a node: Erlang distribution (ekka or epmd port mode) and the MQTT broker (TCP, TLS and
    /// WebSocket listeners, password file and ACL; `--config FILE`, docs/config.md).
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
    /// cluster join NODE | leave | force-leave NODE | status [--json]` and
    /// `routes list [FILTER] | show TOPIC`.
    Ctl(CtlArgs),
    /// Pseudo-distributed cluster on one machine: N nodes beamq1@127.0.0.1.. (MQTT 1883, 2883,
    /// ...) as child processes, joined; SIGINT or SIGTERM stops them all.
    ClusterLocal(beamq::api::local::LocalArgs),
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
    /// Cluster routes, as `emqx_ctl routes`.
    Routes {
        #[command(subcommand)]
        cmd: RoutesCommand,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Every route (or only FILTER's): `Filter -> Node1,Node2`.
    List { filter: Option<String> },
    /// The routes of every filter matching TOPIC.
    Show { topic: String },
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
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beamq ctl: {e}");
            return ExitCode::from(1);
        }
    };
    let cmd = match args.cmd {
        CtlCommand::Cluster { cmd } => cmd,
        CtlCommand::Routes { cmd } => {
            use beamq::router::cluster::ctl::{run, RoutesCmd};
            let cmd = match cmd {
                RoutesCommand::List { filter } => RoutesCmd::List(filter),
                RoutesCommand::Show { topic } => RoutesCmd::Show(topic),
            };
            return match rt.block_on(run(&target, cookie, mode, cmd)) {
                Ok(out) => {
                    if !out.is_empty() {
                        println!("{out}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    let cmd = match cmd {
        ClusterCommand::Join { node } => ClusterCmd::Join(node),
        ClusterCommand::Leave => ClusterCmd::Leave,
        ClusterCommand::ForceLeave { node } => ClusterCmd::ForceLeave(node),
        ClusterCommand::Status { json } => ClusterCmd::Status { json },
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

/// `beamq start` flags (DESIGN.md section 6). Flags win over the environment, which wins over
/// the `--config` file, which wins over defaults (every key: docs/config.md).
#[derive(clap::Args)]
struct StartArgs {
    /// Long node name NAME@HOST (HOST an IP or FQDN); env EMQX_NODE_NAME; key node.name.
    #[arg(long, conflicts_with = "sname")]
    name: Option<String>,
    /// Short node name NAME (or NAME@SHORTHOST).
    #[arg(long)]
    sname: Option<String>,
    /// Magic cookie; env EMQX_NODE_COOKIE; key node.cookie; default ~/.erlang.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// net_ticktime in seconds (default 60; key node.dist_net_ticktime).
    #[arg(long)]
    net_ticktime: Option<u64>,
    /// Data directory (default ./data; key node.data_dir).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// MQTT TCP listener port, exact (0: a free port; `off`: no TCP listener). Default 1883 +
    /// port offset.
    #[arg(long, value_name = "PORT|off")]
    mqtt_port: Option<beamq::api::config::PortFlag>,
    /// MQTT over TLS listener port, exact (0: free; `off`: none). Default 8883 + port offset,
    /// on when listeners.ssl.default.ssl_options.certfile and keyfile are configured.
    #[arg(long, value_name = "PORT|off")]
    tls_port: Option<beamq::api::config::PortFlag>,
    /// MQTT over WebSocket listener port, exact (0: free; `off`: none). Default 8083 + port
    /// offset, path /mqtt.
    #[arg(long, value_name = "PORT|off")]
    ws_port: Option<beamq::api::config::PortFlag>,
    /// Shift of every listener port not derived from the node name and not given by a flag
    /// (1883 -> 1883 + K); key node.port_offset.
    #[arg(long)]
    port_offset: Option<u16>,
    /// Lowest dist port in epmd mode (node.dist_listen_min).
    #[arg(long)]
    dist_listen_min: Option<u16>,
    /// Highest dist port in epmd mode (node.dist_listen_max).
    #[arg(long)]
    dist_listen_max: Option<u16>,
    /// Configuration file: EMQX-style `key = value` lines (docs/config.md).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

fn start(args: StartArgs) -> ExitCode {
    use beamq::api::config::{resolve, Flags};
    use beamq::node::config::{node_config, StartOptions};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let flags = Flags {
        cookie: args.cookie,
        net_ticktime: args.net_ticktime,
        data_dir: args.data_dir,
        port_offset: args.port_offset,
        dist_listen_min: args.dist_listen_min,
        dist_listen_max: args.dist_listen_max,
        mqtt_port: args.mqtt_port,
        tls_port: args.tls_port,
        ws_port: args.ws_port,
    };
    let env = |k: &str| std::env::var(k).ok();
    let settings = match resolve(args.config.as_deref(), &env, &flags) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("beamq start: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = StartOptions {
        name: args.name,
        sname: args.sname,
        env_name: settings.node_name.clone(),
        cookie: settings.cookie.clone(),
        net_ticktime: settings.net_ticktime,
        with_epmd: std::env::var("WITH_EPMD").is_ok_and(|v| v == "1"),
        epmd_port: beamq::epmd::client::epmd_port(),
        dist_listen_min: settings.dist_listen_min,
        dist_listen_max: settings.dist_listen_max,
        data_dir: settings.data_dir.clone(),
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
        settings,
    };
    rt.block_on(async move {
        let server = match beamq::api::server::start(server_opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("beamq start: {e}");
                return ExitCode::from(if e.is_usage() { 2 } else { 1 });
            }
        };
        println!(
            "beamq node {} started, dist port {}",
            server.node.node.name().as_str(),
            server.node.port
        );
        for l in &server.listeners {
            // The TCP line's text is what tests and scripts parse: keep it.
            match l.name {
                "tcp" => println!("beamq mqtt listening on port {}", l.addr.port()),
                other => println!("beamq mqtt {other} listening on port {}", l.addr.port()),
            }
        }
        wait_for_signal(&server.auth).await;
        drop(server);
        ExitCode::SUCCESS
    })
}

/// Runs until SIGINT or SIGTERM. SIGHUP re-reads the password and ACL files, as mosquitto does;
/// a file that no longer parses keeps the rules in force.
async fn wait_for_signal(auth: &beamq::mqtt::auth::reload::ReloadableAccess) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => match auth.reload() {
                Ok(()) => tracing::info!("SIGHUP: password and ACL files reloaded"),
                Err(e) => {
                    tracing::error!("SIGHUP: {e}; the previous rules stay in force");
                    eprintln!("beamq start: reload: {e}; the previous rules stay in force");
                }
            },
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
        Command::ClusterLocal(args) => exit(beamq::api::local::main(args)),
    }
}
