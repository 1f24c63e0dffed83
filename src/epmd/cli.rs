//! `beamq epmd` (or the binary invoked as `epmd`): C epmd's command line, parsed by hand because
//! its flags are single-dash words (`erts/epmd/src/epmd.c`, `main`), and its client modes printing
//! what `erts/epmd/src/epmd_cli.c` prints.
//!
//! As in C, flags are taken left to right and a client flag (`-names`, `-kill`, `-stop N`,
//! `-dump`, `-started`) acts at once with the port given so far, and must be the last argument.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::daemon;
use super::listen::{self, Bound};
use super::request::Request;
use super::server::{Config, Server, DEFAULT_PACKET_TIMEOUT};
use super::wire::DEFAULT_PORT;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the daemon.
    Serve(ServeOptions),
    /// `-names` (`silent` for `-started`, which only sets the exit status).
    Names {
        /// Port of the epmd to ask.
        port: u16,
        /// Print nothing.
        silent: bool,
    },
    /// `-dump`.
    Dump {
        /// Port of the epmd to ask.
        port: u16,
    },
    /// `-kill`.
    Kill {
        /// Port of the epmd to ask.
        port: u16,
    },
    /// `-stop NAME`.
    Stop {
        /// Port of the epmd to ask.
        port: u16,
        /// Name to unregister.
        name: String,
    },
    /// Bad arguments: print the usage text, exit 1.
    Usage,
}

/// Daemon settings from flags and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// `-port` / `ERL_EPMD_PORT`.
    pub port: u16,
    /// `-address` / `ERL_EPMD_ADDRESS`.
    pub addresses: Option<String>,
    /// `-daemon`.
    pub daemon: bool,
    /// `-relaxed_command_check` / `ERL_EPMD_RELAXED_COMMAND_CHECK`.
    pub relaxed: bool,
    /// Number of `-d` / `-debug`.
    pub debug: u8,
    /// `-packet_timeout` seconds.
    pub packet_timeout: u64,
    /// `-delay_accept` seconds.
    pub delay_accept: u64,
    /// `-delay_write` seconds.
    pub delay_write: u64,
    /// `-systemd`: take the listening sockets from systemd.
    pub systemd: bool,
}

/// The environment C epmd reads.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `ERL_EPMD_PORT`.
    pub port: Option<String>,
    /// `ERL_EPMD_ADDRESS`.
    pub address: Option<String>,
    /// Whether `ERL_EPMD_RELAXED_COMMAND_CHECK` is set (to anything).
    pub relaxed: bool,
}

impl Env {
    /// Read the process environment.
    pub fn from_process() -> Self {
        Self {
            port: std::env::var("ERL_EPMD_PORT").ok(),
            address: std::env::var("ERL_EPMD_ADDRESS").ok(),
            relaxed: std::env::var_os("ERL_EPMD_RELAXED_COMMAND_CHECK").is_some(),
        }
    }
}

/// C's `atoi`: optional blanks and sign, then digits; anything else ends the number.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// Parse the arguments after `epmd` as C epmd's `main` does.
pub fn parse(args: &[String], env: &Env) -> Action {
    let mut opts = ServeOptions {
        port: env.port.as_deref().map_or(DEFAULT_PORT, |p| atoi(p) as u16),
        addresses: env.address.clone(),
        daemon: false,
        relaxed: env.relaxed,
        debug: 0,
        packet_timeout: DEFAULT_PACKET_TIMEOUT.as_secs(),
        delay_accept: 0,
        delay_write: 0,
        systemd: false,
    };
    let mut i = 0;
    while i < args.len() {
        let last = i + 1 == args.len();
        let value = args.get(i + 1).map(|v| atoi(v));
        let positive = |v: Option<i64>| v.filter(|&n| n != 0);
        match args[i].as_str() {
            "-d" | "-debug" => opts.debug = opts.debug.saturating_add(1),
            "-daemon" => opts.daemon = true,
            "-relaxed_command_check" => opts.relaxed = true,
            "-systemd" => opts.systemd = true,
            "-packet_timeout" | "-delay_accept" | "-delay_write" => {
                let Some(n) = positive(value) else {
                    return Action::Usage;
                };
                let secs = n.max(0) as u64;
                match args[i].as_str() {
                    "-packet_timeout" => opts.packet_timeout = secs,
                    "-delay_accept" => opts.delay_accept = secs,
                    _ => opts.delay_write = secs,
                }
                i += 1;
            }
            "-port" => {
                let Some(n) = positive(value) else {
                    return Action::Usage;
                };
                opts.port = n as u16;
                i += 1;
            }
            "-address" => {
                let Some(list) = args.get(i + 1) else {
                    return Action::Usage;
                };
                opts.addresses = Some(list.clone());
                i += 1;
            }
            "-names" | "-started" if last => {
                return Action::Names {
                    port: opts.port,
                    silent: args[i] == "-started",
                }
            }
            "-dump" if last => return Action::Dump { port: opts.port },
            "-kill" if last => return Action::Kill { port: opts.port },
            "-stop" if i + 2 == args.len() => {
                return Action::Stop {
                    port: opts.port,
                    name: args[i + 1].clone(),
                }
            }
            _ => return Action::Usage,
        }
        i += 1;
    }
    Action::Serve(opts)
}

/// The text C epmd prints for bad arguments.
pub const USAGE: &str = include_str!("usage.txt");

/// Entry point: run `epmd` with these arguments; returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match parse(&args, &Env::from_process()) {
        Action::Usage => {
            eprint!("{USAGE}");
            1
        }
        Action::Names { port, silent } => listing(port, false, silent),
        Action::Dump { port } => listing(port, true, false),
        Action::Kill { port } => kill(port),
        Action::Stop { port, name } => stop(port, &name),
        Action::Serve(opts) => serve(opts),
    }
}

/// `conn_to_epmd`: `::1` first, then `127.0.0.1`.
fn connect(port: u16, silent: bool) -> Option<TcpStream> {
    let addrs = [
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
    ];
    for addr in addrs {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            return Some(s);
        }
    }
    if !silent {
        eprintln!("epmd: Cannot connect to local epmd");
    }
    None
}

fn send(stream: &mut TcpStream, req: &Request) -> bool {
    if stream.write_all(&req.encode()).is_err() {
        println!("epmd: Can't write to epmd");
        return false;
    }
    true
}

/// C's `read_fill`: up to `len` bytes, stopping early at EOF.
fn read_fill(stream: &mut TcpStream, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match stream.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// As `printf("%s")` shows bytes: up to the first NUL.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn listing(port: u16, dump: bool, silent: bool) -> i32 {
    let Some(mut stream) = connect(port, silent) else {
        return 1;
    };
    if !send(
        &mut stream,
        if dump {
            &Request::Dump
        } else {
            &Request::Names
        },
    ) {
        return 1;
    }
    let mut header = [0u8; 4];
    if stream.read_exact(&mut header).is_err() {
        if !silent {
            println!("epmd: no response from local epmd");
        }
        return 1;
    }
    let mut out = std::io::stdout().lock();
    if !silent {
        let _ = write!(
            out,
            "epmd: up and running on port {} with data:\n",
            u32::from_be_bytes(header) as i32
        );
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        if !silent {
            let _ = out.write_all(&buf[..n]);
        }
    }
    let _ = out.flush();
    0
}

fn kill(port: u16) -> i32 {
    let Some(mut stream) = connect(port, false) else {
        return 1;
    };
    if !send(&mut stream, &Request::Kill) {
        return 1;
    }
    match read_fill(&mut stream, 2) {
        Ok(answer) if answer == b"OK" => {
            println!("Killed");
            0
        }
        Ok(answer) if answer.len() == 2 => {
            println!("Killing not allowed - living nodes in database.");
            1
        }
        Ok(answer) => {
            println!("epmd: local epmd responded with <{}>", c_string(&answer));
            1
        }
        Err(_) => {
            println!("epmd: failed to read answer from local epmd");
            1
        }
    }
}

fn stop(port: u16, name: &str) -> i32 {
    if name.len() > 1000 {
        print!("epmd: Name too long!");
        let _ = std::io::stdout().flush();
        return 1;
    }
    let Some(mut stream) = connect(port, false) else {
        return 1;
    };
    if !send(&mut stream, &Request::Stop(name.as_bytes().to_vec())) {
        return 1;
    }
    match read_fill(&mut stream, 7) {
        Ok(answer) if answer.len() == 7 => {
            println!("{}", c_string(&answer));
            0
        }
        Ok(answer) => {
            println!("epmd: local epmd responded with <{}>", c_string(&answer));
            1
        }
        Err(_) => {
            println!("epmd: failed to read answer from local epmd");
            1
        }
    }
}

fn serve(opts: ServeOptions) -> i32 {
    let filter = match opts.debug {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // Logging must never hurt serving: with stderr gone (a closed pipe), the subscriber's own
    // error report would panic the connection task.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "beamq={filter}"
        )))
        .try_init();
    let budget = daemon::raise_fd_limit();
    daemon::single_malloc_arena();
    let bound = if opts.systemd {
        daemon::systemd_listeners()
            .map(Bound::Listening)
            .map_err(|e| e.to_string())
    } else {
        listen::bind(opts.port, opts.addresses.as_deref()).map_err(|e| e.to_string())
    };
    let listeners = match bound {
        Ok(Bound::Listening(l)) => l,
        Ok(Bound::AlreadyRunning(ip)) => {
            tracing::info!(
                "there is already a epmd running at port {} on ipaddr {ip}",
                opts.port
            );
            return 0;
        }
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("epmd: {e}");
            return 1;
        }
    };
    if opts.daemon {
        if let Err(e) = daemon::detach() {
            eprintln!("epmd: cannot daemonize: {e}");
            return 1;
        }
    }
    let config = Config {
        port: opts.port,
        relaxed: opts.relaxed,
        debug: opts.debug,
        packet_timeout: Duration::from_secs(opts.packet_timeout),
        delay_accept: Duration::from_secs(opts.delay_accept),
        delay_write: Duration::from_secs(opts.delay_write),
        max_connections: budget,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("epmd: cannot start runtime: {e}");
            return 1;
        }
    };
    if opts.systemd {
        daemon::systemd_notify_ready();
    }
    match runtime.block_on(Server::new(listeners, config).run()) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("epmd: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Action {
        parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &Env::default(),
        )
    }

    fn serve_opts(args: &[&str]) -> ServeOptions {
        match p(args) {
            Action::Serve(o) => o,
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    #[test]
    fn no_args_serves_on_4369() {
        let o = serve_opts(&[]);
        assert_eq!(
            (o.port, o.daemon, o.relaxed, o.debug, o.packet_timeout),
            (4369, false, false, 0, 60)
        );
    }

    #[test]
    fn server_flags() {
        let o = serve_opts(&[
            "-d",
            "-debug",
            "-port",
            "4400",
            "-daemon",
            "-relaxed_command_check",
            "-packet_timeout",
            "5",
            "-address",
            "10.0.0.1",
        ]);
        assert_eq!(
            (o.port, o.daemon, o.relaxed, o.debug, o.packet_timeout),
            (4400, true, true, 2, 5)
        );
        assert_eq!(o.addresses.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn client_flags_take_the_port_given_before_them() {
        assert_eq!(
            p(&["-port", "5000", "-names"]),
            Action::Names {
                port: 5000,
                silent: false
            }
        );
        assert_eq!(
            p(&["-names"]),
            Action::Names {
                port: 4369,
                silent: false
            }
        );
        assert_eq!(
            p(&["-started"]),
            Action::Names {
                port: 4369,
                silent: true
            }
        );
        assert_eq!(p(&["-port", "7", "-kill"]), Action::Kill { port: 7 });
        assert_eq!(p(&["-dump"]), Action::Dump { port: 4369 });
        assert_eq!(
            p(&["-stop", "foo"]),
            Action::Stop {
                port: 4369,
                name: "foo".into()
            }
        );
    }

    #[test]
    fn client_flag_must_be_last() {
        assert_eq!(p(&["-names", "-port", "5"]), Action::Usage);
        assert_eq!(p(&["-kill", "x"]), Action::Usage);
        assert_eq!(p(&["-stop"]), Action::Usage);
        assert_eq!(p(&["-stop", "a", "b"]), Action::Usage);
    }

    #[test]
    fn bad_values_and_unknown_flags_are_usage() {
        assert_eq!(p(&["-port"]), Action::Usage);
        assert_eq!(p(&["-port", "0"]), Action::Usage);
        assert_eq!(p(&["-port", "abc"]), Action::Usage);
        assert_eq!(p(&["-packet_timeout", "0"]), Action::Usage);
        assert_eq!(p(&["-address"]), Action::Usage);
        assert_eq!(p(&["--port", "5"]), Action::Usage);
        assert_eq!(p(&["-bogus"]), Action::Usage);
    }

    #[test]
    fn environment_defaults() {
        let env = Env {
            port: Some("4555".into()),
            address: Some("127.0.0.1".into()),
            relaxed: true,
        };
        let Action::Serve(o) = parse(&[], &env) else {
            panic!("expected Serve")
        };
        assert_eq!(
            (o.port, o.relaxed, o.addresses.as_deref()),
            (4555, true, Some("127.0.0.1"))
        );
        let env = Env {
            port: Some("4555".into()),
            ..Env::default()
        };
        assert_eq!(
            parse(&["-names".into()], &env),
            Action::Names {
                port: 4555,
                silent: false
            }
        );
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("  42abc"), 42);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x1"), 0);
        assert_eq!(atoi(""), 0);
    }

    #[test]
    fn stop_output_is_c_string() {
        assert_eq!(c_string(b"NOEXIST"), "NOEXIST");
        assert_eq!(c_string(b"ab\0cd"), "ab");
    }
}
