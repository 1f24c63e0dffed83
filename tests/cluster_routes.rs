//! Routes across a cluster end to end (issue 6): three `beamq start` nodes joined with
//! `beamq ctl`, and one stock `erl` node with nothing but `pg:start(beamq_route)` and a plain
//! process in the groups `t/#`, `t/+`, `t/a`. MQTT clients are mosquitto_sub/mosquitto_pub.
//! The test inspects every node through its own hidden node calling `rpc` (the
//! `beamq_routes` functions on beamq nodes, plain BIFs on the erl node).
mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use beamq::dist::cookie::Cookie;
use beamq::dist::etf::{Atom, Term};
use beamq::dist::listener::PortMode;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::node::boot::{self, NodeConfig, RunningNode};
use common::ports::{free_listen_port, free_suffixes};

const BIN: &str = env!("CARGO_BIN_EXE_beamq");
const COOKIE: &str = "cluster_routes_test";
/// How long a waited-for event may take: only reached on failure, so roomy for a loaded 2-core CI.
const LIMIT: Duration = Duration::from_secs(60);

/// A child process killed by pid when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Removes the test's directory.
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `beamq start` node: name, MQTT port, data dir.
struct Beamq {
    name: String,
    mqtt: u16,
    dir: PathBuf,
    proc: Proc,
}

impl Beamq {
    fn start(name: &str, mqtt: u16, dir: &Path) -> Beamq {
        let child = Command::new(BIN)
            .args(["start", "--name", name, "--cookie", COOKIE, "--mqtt-port"])
            .arg(mqtt.to_string())
            .args(["--ws-port", "off"])
            .arg("--data-dir")
            .arg(dir)
            .env_remove("WITH_EPMD")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Beamq {
            name: name.to_string(),
            mqtt,
            dir: dir.to_path_buf(),
            proc: Proc(Some(child)),
        }
    }

    fn restart(&mut self) {
        self.proc.kill();
        *self = Beamq::start(&self.name, self.mqtt, &self.dir);
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ctl(node: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--node", node, "--cookie", COOKIE])
        .args(args)
        .env_remove("WITH_EPMD")
        .output()
        .unwrap()
}

fn ctl_ok(node: &str, args: &[&str]) -> String {
    let out = ctl(node, args);
    assert!(
        out.status.success(),
        "{node} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// The test's own hidden node, to call `rpc` on every node.
struct Inspector {
    rt: tokio::runtime::Runtime,
    node: RunningNode,
}

impl Inspector {
    fn start(name: &str) -> Inspector {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let node = rt
            .block_on(boot::start(NodeConfig {
                name: NodeName::parse(name, NameKind::Long).unwrap(),
                cookie: Cookie::new(COOKIE).unwrap(),
                net_ticktime: Duration::from_secs(60),
                mode: PortMode::Ekka,
                bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
                hidden: true,
            }))
            .unwrap();
        Inspector { rt, node }
    }

    fn rpc(&self, node: &str, m: &str, f: &str, args: Vec<Term>) -> Term {
        let n = self.node.node.clone();
        let target = Atom::new(node);
        self.rt.block_on(async move {
            n.rpc_call(target, m, f, args, Some(Duration::from_secs(5)))
                .await
        })
    }

    fn routes(&self, node: &str) -> Term {
        self.rpc(node, "beamq_routes", "list", vec![])
    }

    fn stat(&self, node: &str, key: &str) -> i64 {
        let s = self.rpc(node, "beamq_routes", "stats", vec![]);
        s.map_get(&Term::atom(key))
            .and_then(Term::as_int)
            .unwrap_or_else(|| panic!("stats of {node}: {s:?}"))
    }

    /// Waits until `beamq_routes:list()` is `want` on every node of `nodes`.
    fn routes_everywhere(&self, nodes: &[&str], want: &Term) {
        for n in nodes {
            wait_until(&format!("routes on {n} = {want:?}"), || {
                self.routes(n) == *want
            });
        }
    }
}

/// `[{Filter, [Node]}]` with nodes sorted as the functions sort them.
fn routes(entries: &[(&str, &[&str])]) -> Term {
    Term::list(
        entries
            .iter()
            .map(|(f, nodes)| {
                let mut nodes = nodes.to_vec();
                nodes.sort_unstable();
                Term::tuple(vec![
                    Term::binary(f.as_bytes()),
                    Term::list(nodes.iter().map(|n| Term::atom(n)).collect::<Vec<_>>()),
                ])
            })
            .collect::<Vec<_>>(),
    )
}

/// mosquitto_sub on `port` to `filters`, its `topic payload` lines on a channel.
fn subscribe(port: u16, id: &str, filters: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-i",
        id,
        "-q",
        "1",
        "-v",
    ]);
    for f in filters {
        cmd.args(["-t", f]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Proc(Some(child)), rx)
}

fn publish(port: u16, topic: &str, payload: &str) {
    let st = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .status()
        .unwrap();
    assert!(st.success(), "mosquitto_pub {topic}");
}

/// Waits for `line` on `rx`.
fn expect_line(rx: &mpsc::Receiver<String>, line: &str) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l == line => return,
            Ok(_) => {}
            Err(e) => panic!("no line {line:?}: {e}"),
        }
    }
}

/// A stock erl node (ekka-mode port mapping by interop/beamq_epmd.erl) with `route_sink`, a
/// plain process in `t/#`, `t/+` and `t/a` that keeps every message it gets in its mailbox. It
/// also joins two groups that are not topic filters (an atom, `bad/#/x`): beamq ignores them.
fn start_erl(name: &str, beamq: &[&str], dir: &Path) -> Proc {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/beamq_epmd.erl");
    let st = Command::new("erlc")
        .arg("-o")
        .arg(dir)
        .arg(src)
        .status()
        .unwrap();
    assert!(st.success(), "erlc beamq_epmd");
    let nodes = beamq
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",");
    let eval = format!(
        "pg:start(beamq_route), \
         register(route_sink, spawn(fun() -> \
             [pg:join(beamq_route, G, self()) || G <- [<<\"t/#\">>, <<\"t/+\">>, <<\"t/a\">>, \
                                                      not_a_filter, <<\"bad/#/x\">>]], \
             receive stop -> ok end end)), \
         [net_kernel:connect_node(N) || N <- [{nodes}]]."
    );
    let child = Command::new("erl")
        .args([
            "-noshell",
            "-start_epmd",
            "false",
            "-epmd_module",
            "beamq_epmd",
        ])
        .arg("-pa")
        .arg(dir)
        .args(["-name", name, "-setcookie", COOKIE, "-eval", &eval])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc(Some(child))
}

#[test]
fn routes_replicate_and_publishes_forward_once_per_member() {
    let s: Vec<u16> = (free_suffixes(5)..).take(5).collect();
    let names: Vec<String> = s[..3].iter().map(|n| format!("rt{n}@127.0.0.1")).collect();
    let (n1, n2, n3) = (names[0].as_str(), names[1].as_str(), names[2].as_str());
    let erl = format!("erl{}@127.0.0.1", s[3]);
    let e = erl.as_str();
    let root = std::env::temp_dir().join(format!("beamq_cluster_routes_{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let _dirs = DirGuard(root.clone());
    let ports: Vec<u16> = (0..3).map(|_| free_listen_port()).collect();
    let _b1 = Beamq::start(n1, ports[0], &root.join("1"));
    let _b2 = Beamq::start(n2, ports[1], &root.join("2"));
    let mut b3 = Beamq::start(n3, ports[2], &root.join("3"));
    let insp = Inspector::start(&format!("insp{}@127.0.0.1", s[4]));
    let all = [n1, n2, n3];
    for n in all {
        wait_until(&format!("{n} up"), || insp.routes(n) == Term::Nil);
    }
    assert_eq!(
        ctl_ok(n2, &["cluster", "join", n1]),
        "Join the cluster successfully."
    );
    assert_eq!(
        ctl_ok(n3, &["cluster", "join", n1]),
        "Join the cluster successfully."
    );

    // The stock node's groups reach every beamq node.
    let _erl = start_erl(e, &all, &root);
    let erl_only = routes(&[("t/#", &[e]), ("t/+", &[e]), ("t/a", &[e])]);
    insp.routes_everywhere(&all, &erl_only);

    // An MQTT subscriber on node 3 with two overlapping filters: node 3 joins both groups once.
    let (mut sub3, lines3) = subscribe(ports[2], "sub3", &["t/#", "t/+"]);
    let with_sub3 = routes(&[("t/#", &[e, n3]), ("t/+", &[e, n3]), ("t/a", &[e])]);
    insp.routes_everywhere(&all, &with_sub3);

    // Publishes on node 1: one dispatch per destination member (node 3, the erl process),
    // whatever the number of matching filters there; none to node 2.
    let (f1, r2, r3) = (
        insp.stat(n1, "forward"),
        insp.stat(n2, "forward_received"),
        insp.stat(n3, "forward_received"),
    );
    const K: i64 = 3;
    for i in 0..K {
        publish(ports[0], "t/a", &format!("m{i}"));
    }
    for i in 0..K {
        expect_line(&lines3, &format!("t/a m{i}"));
    }
    let sink_len = || {
        let sink = insp.rpc(e, "erlang", "whereis", vec![Term::atom("route_sink")]);
        let info = insp.rpc(
            e,
            "erlang",
            "process_info",
            vec![sink, Term::atom("message_queue_len")],
        );
        info.as_tuple_n::<2>()
            .and_then(|[_, n]| n.as_int())
            .unwrap_or(-1)
    };
    wait_until("erl route_sink got the dispatches", || sink_len() >= K);
    wait_until("node 3 counted the dispatches", || {
        insp.stat(n3, "forward_received") - r3 >= K
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        sink_len(),
        K,
        "exactly one dispatch per publish to the erl process"
    );
    assert_eq!(
        insp.stat(n3, "forward_received") - r3,
        K,
        "one per publish to node 3"
    );
    assert_eq!(
        insp.stat(n1, "forward") - f1,
        2 * K,
        "one per destination per publish"
    );
    assert_eq!(insp.stat(n1, "forward_dropped"), 0);
    assert_eq!(insp.stat(n2, "forward_received"), r2, "node 2 has no route");
    // What the erl process holds is the dispatch term of the protocol.
    let sink = insp.rpc(e, "erlang", "whereis", vec![Term::atom("route_sink")]);
    let msgs = insp.rpc(
        e,
        "erlang",
        "process_info",
        vec![sink, Term::atom("messages")],
    );
    let first = msgs
        .as_tuple_n::<2>()
        .and_then(|[_, l]| l.as_list())
        .map(|l| l[0].clone());
    let d = beamq::router::cluster::Dispatch::from_term(&first.unwrap()).unwrap();
    assert_eq!(&d.topic[..], b"t/a");
    assert_eq!(&d.message.payload[..], b"m0");
    assert_eq!(d.message.qos, 1);

    // A dispatch sent by the erl node to node 1's beamq_broker reaches node 1's MQTT
    // subscribers, and only them (no re-forward).
    let (mut sub1, lines1) = subscribe(ports[0], "sub1", &["e/+"]);
    let with_sub1 = routes(&[
        ("e/+", &[n1]),
        ("t/#", &[e, n3]),
        ("t/+", &[e, n3]),
        ("t/a", &[e]),
    ]);
    insp.routes_everywhere(&all, &with_sub1);
    let f1 = insp.stat(n1, "forward");
    let message = Term::tuple(vec![
        Term::atom("message"),
        Term::binary([0u8; 16]),
        Term::Int(0),
        Term::atom("beamq_interop"),
        Term::map(vec![]),
        Term::map(vec![]),
        Term::binary(b"e/x"),
        Term::binary(b"from-erl"),
        Term::Int(0),
    ]);
    let dispatch = Term::tuple(vec![
        Term::atom("dispatch"),
        Term::binary(b"e/x"),
        Term::tuple(vec![
            Term::atom("delivery"),
            Term::atom("undefined"),
            message,
        ]),
    ]);
    let dest = Term::tuple(vec![Term::atom("beamq_broker"), Term::atom(n1)]);
    for garbage in [
        Term::atom("hello"),
        Term::tuple(vec![Term::atom("dispatch")]),
    ] {
        insp.rpc(e, "erlang", "send", vec![dest.clone(), garbage]);
    }
    insp.rpc(e, "erlang", "send", vec![dest, dispatch]);
    expect_line(&lines1, "e/x from-erl");
    assert_eq!(
        insp.stat(n1, "forward"),
        f1,
        "a received dispatch is not forwarded"
    );

    // ctl prints emqx_ctl's shape.
    let sorted = |v: &[&str]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.join(",")
    };
    let (en3, ee) = (sorted(&[e, n3]), sorted(&[e]));
    assert_eq!(
        ctl_ok(n2, &["routes", "list"]),
        format!("e/+ -> {n1}\nt/# -> {en3}\nt/+ -> {en3}\nt/a -> {ee}")
    );
    assert_eq!(
        ctl_ok(n2, &["routes", "list", "t/+"]),
        format!("t/+ -> {en3}")
    );
    assert_eq!(ctl_ok(n2, &["routes", "list", "nope"]), "");
    assert_eq!(
        ctl_ok(n1, &["routes", "show", "t/a"]),
        format!("t/# -> {en3}\nt/+ -> {en3}\nt/a -> {ee}")
    );

    // Unsubscribe (the clients go): their routes disappear everywhere.
    sub3.kill();
    sub1.kill();
    insp.routes_everywhere(&all, &erl_only);

    // kill -9 of node 3: its routes vanish on the others; after a restart they come back.
    let (mut sub3, _l) = subscribe(ports[2], "sub3b", &["x/#"]);
    let with_x = routes(&[("t/#", &[e]), ("t/+", &[e]), ("t/a", &[e]), ("x/#", &[n3])]);
    insp.routes_everywhere(&all, &with_x);
    b3.proc.kill();
    sub3.kill();
    insp.routes_everywhere(&[n1, n2], &erl_only);
    b3.restart();
    wait_until("node 3 back in the cluster", || {
        let st = insp.rpc(n1, "beamq_cluster", "status", vec![]);
        st.as_list().is_some_and(|l| l.len() == 1)
    });
    insp.rpc(e, "net_kernel", "connect_node", vec![Term::atom(n3)]);
    let (_sub3, _l) = subscribe(ports[2], "sub3c", &["x/#"]);
    insp.routes_everywhere(&all, &with_x);
}
