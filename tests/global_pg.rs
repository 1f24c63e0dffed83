//! global and pg between beamq nodes over real distribution connections (ekka mode on
//! 127.0.0.1): two beamq nodes run global's vsn 8 connect protocol with each other (both
//! lockers are ours), three form a full mesh through `new_nodes`/`in_sync`, and pg groups
//! replicate both ways. Stock-OTP interop is in ct_suites/global_pg_SUITE.erl.
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use beamq::dist::cookie::Cookie;
use beamq::dist::etf::{Atom, Term};
use beamq::dist::listener::PortMode;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::node::boot::{self, NodeConfig, RunningNode};
use beamq::node::global::Global;
use beamq::node::pg::{Membership, Scope, ROUTE_SCOPE};

/// A node name whose ekka dist port (4370 + suffix) is free now.
fn free_name() -> String {
    loop {
        // Below the kernel's client port range (32768..): no client socket takes it meanwhile.
        let n: u16 = 1_000 + rand::random::<u16>() % 27_000;
        if std::net::TcpListener::bind(("127.0.0.1", 4370 + n)).is_ok() {
            return format!("gpt{n}@127.0.0.1");
        }
    }
}

async fn start() -> RunningNode {
    let cfg = NodeConfig {
        name: NodeName::parse(&free_name(), NameKind::Long).unwrap(),
        cookie: Cookie::new("global_pg_test").unwrap(),
        net_ticktime: Duration::from_secs(60),
        mode: PortMode::Ekka,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        hidden: false,
    };
    boot::start(cfg).await.unwrap()
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn scope(n: &RunningNode) -> Scope {
    Scope::lookup(&n.node, Atom::new(ROUTE_SCOPE)).unwrap()
}

fn global(n: &RunningNode) -> Global {
    Global::lookup(&n.node).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_beamq_nodes_sync_global_and_share_pg_groups() {
    let a = start().await;
    let b = start().await;
    assert!(a.node.connect(b.node.name()).await);
    let t = Duration::from_secs(10);
    global(&a).sync(Some(t)).await.unwrap();
    global(&b).sync(Some(t)).await.unwrap();
    assert_eq!(global(&a).synced().await.unwrap(), vec![b.node.name()]);
    assert_eq!(global(&b).synced().await.unwrap(), vec![a.node.name()]);

    // A name registered on a (lock on both nodes, register multi-call) is known on b.
    let named = a.node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    let name = Term::atom("gp_name");
    assert!(global(&a).register_name(name.clone(), named).await.unwrap());
    assert_eq!(global(&b).whereis_name(&name), Some(named));
    assert!(
        !global(&b).register_name(name.clone(), named).await.unwrap(),
        "taken"
    );
    a.node.exit(&named, &named, Term::atom("kill"));
    let gb = global(&b);
    eventually("b to drop the dead process's name", || {
        gb.whereis_name(&name).is_none()
    })
    .await;
    let other = b.node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    assert!(global(&b).register_name(name.clone(), other).await.unwrap());
    assert_eq!(global(&a).whereis_name(&name), Some(other));
    global(&a).unregister_name(name.clone()).await.unwrap();
    assert_eq!(global(&b).whereis_name(&name), None);
    assert!(global(&a).registered_names().is_empty());

    let group = Term::binary(b"t/#");
    let mut sub = scope(&b).subscribe();
    let member = a.node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    scope(&a).join(group.clone(), &[member]).await.unwrap();
    eventually("b to see a's member", || {
        scope(&b).get_members(&group) == vec![member]
    })
    .await;
    assert!(scope(&b).get_local_members(&group).is_empty());
    let joined = tokio::time::timeout(t, sub.events.recv()).await.unwrap();
    assert_eq!(
        joined,
        Some(Membership::Join {
            group: group.clone(),
            pids: beamq::node::pg::PidList::from_slice(&[member])
        })
    );

    let other = b.node.spawn(|mut p| async move {
        p.recv().await;
        Term::atom("normal")
    });
    scope(&b).join(group.clone(), &[other]).await.unwrap();
    eventually("a to see b's member", || {
        scope(&a).get_members(&group).contains(&other)
    })
    .await;

    a.node.exit(&member, &member, Term::atom("kill"));
    eventually("the killed member to leave on b", || {
        scope(&b).get_members(&group) == vec![other]
    })
    .await;
    assert!(scope(&b).leave(group.clone(), &[other]).await.unwrap());
    eventually("the group to be empty on a", || {
        scope(&a).get_members(&group).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_node_joins_the_mesh_through_global() {
    let a = start().await;
    let b = start().await;
    let c = start().await;
    let t = Duration::from_secs(10);
    assert!(a.node.connect(b.node.name()).await);
    global(&a).sync(Some(t)).await.unwrap();
    assert!(c.node.connect(b.node.name()).await);
    global(&c).sync(Some(t)).await.unwrap();
    // b tells a about c (new_nodes) and c about a (resolved): a and c connect and sync.
    let (an, cn) = (a.node.clone(), c.node.clone());
    eventually("a and c to be connected", || {
        an.nodes().0.contains(&cn.name())
    })
    .await;
    for n in [&a, &b, &c] {
        global(n).sync(Some(t)).await.unwrap();
        let mut synced = global(n).synced().await.unwrap();
        synced.sort();
        let mut others: Vec<Atom> = [&a, &b, &c]
            .iter()
            .map(|x| x.node.name())
            .filter(|x| *x != n.node.name())
            .collect();
        others.sort();
        assert_eq!(
            synced,
            others,
            "{:?} is synced with both others",
            n.node.name()
        );
    }
    // a drops c: global takes the overlapping partition apart. Which fully connected
    // partitions remain depends on message timing (BEAM alike); b never stays connected to both.
    assert!(a.node.disconnect(c.node.name()));
    let (an, bn, cn) = (a.node.clone(), b.node.clone(), c.node.clone());
    let overlapping = || {
        let b_nodes = bn.nodes().0;
        an.nodes().0.contains(&cn.name())
            || (b_nodes.contains(&an.name()) && b_nodes.contains(&cn.name()))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while overlapping() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !overlapping(),
        "no overlapping partition: a {:?}, b {:?}, c {:?}",
        an.nodes().0,
        bn.nodes().0,
        cn.nodes().0
    );
}
