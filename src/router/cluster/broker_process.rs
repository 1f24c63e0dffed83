//! `beamq_broker`: the registered process other nodes forward to (DESIGN.md section 3, rule 5
//! of ROUTE-PROTOCOL.md) and this node's member of its route groups. It takes
//! `{dispatch, Topic, {delivery, Sender, Message}}` (EMQX 4 `emqx_broker:dispatch/2`) and hands
//! it to the local subscribers; anything else is logged and dropped. It never exits on input: a
//! pg scope crashes on a message it does not expect, this process must not.
//!
//! The process owns the node's [`Inbound`] (its deliveries in progress) and drives it between
//! dispatches: a dispatch goes at once to every subscriber with room; one whose channel is full
//! gets it parked behind its earlier parked deliveries (order per (publisher, subscriber) is
//! kept), drained as it makes room, under the broker's slow-consumer policy. The process waits
//! on one subscriber only when that subscriber's parked deliveries reach their bound; later
//! dispatches then wait in its mailbox (bounded by its cap).
use std::sync::{Arc, OnceLock};

use super::forward::ForwardStats;
use super::message::Dispatch;
use super::{Inbound, LocalSink, BROKER_NAME};
use crate::dist::etf::{Atom, Pid, Term};
use crate::node::table::RegisterError;
use crate::node::{Node, SpawnOpts};

/// Spawns and registers the process.
pub(super) fn spawn(
    node: &Node,
    sink: Arc<OnceLock<Arc<dyn LocalSink>>>,
    stats: Arc<ForwardStats>,
) -> Result<Pid, RegisterError> {
    let opts = SpawnOpts {
        name: Some(Atom::new(BROKER_NAME)),
        ..Default::default()
    };
    node.spawn_opt(opts, move |mut p| async move {
        let mut inbound: Option<Box<dyn Inbound>> = None;
        loop {
            let msg = tokio::select! {
                biased;
                () = progress(&mut inbound) => continue,
                m = p.recv() => m,
            };
            let Some(msg) = msg else { break };
            if inbound.is_none() {
                inbound = sink.get().map(|s| s.inbound());
            }
            handle(&msg, inbound.as_deref_mut(), &stats).await;
        }
        Term::atom("normal")
    })
}

/// Parked deliveries moving on; never completes before the broker is up.
async fn progress(inbound: &mut Option<Box<dyn Inbound>>) {
    match inbound {
        Some(i) => i.progress().await,
        None => std::future::pending().await,
    }
}

async fn handle(msg: &Term, inbound: Option<&mut dyn Inbound>, stats: &ForwardStats) {
    match Dispatch::from_term(msg) {
        Ok(d) => {
            stats.received();
            match inbound {
                Some(i) => i.deliver(d).await,
                None => tracing::debug!("dispatch before the broker is up; dropped"),
            }
        }
        Err(e) => tracing::warn!(error = %e, "malformed message to beamq_broker; dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::cluster::message::{ClusterMessage, Flags, Headers, Publisher};
    use bytes::Bytes;
    use std::sync::Mutex;
    use std::time::Duration;

    struct Collect(Arc<Mutex<Vec<Dispatch>>>);
    impl LocalSink for Collect {
        fn inbound(&self) -> Box<dyn Inbound> {
            Box::new(Collect(self.0.clone()))
        }
    }
    impl Inbound for Collect {
        fn deliver(&mut self, d: Dispatch) -> futures_util::future::BoxFuture<'_, ()> {
            self.0.lock().unwrap().push(d);
            Box::pin(async {})
        }
        fn progress(&mut self) -> futures_util::future::BoxFuture<'_, ()> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn delivers_dispatches_and_survives_garbage() {
        let node = Node::new(Atom::new("bp@127.0.0.1"), 1);
        let collect = Arc::new(Collect(Arc::new(Mutex::new(Vec::new()))));
        let sink: Arc<OnceLock<Arc<dyn LocalSink>>> = Arc::new(OnceLock::new());
        let _ = sink.set(collect.clone());
        let stats = Arc::new(ForwardStats::default());
        let pid = spawn(&node, sink, stats.clone()).unwrap();
        assert_eq!(node.whereis(Atom::new(BROKER_NAME)), Some(pid));
        let m = ClusterMessage {
            id: Bytes::new(),
            qos: 1,
            from: Publisher::Client(Bytes::from_static(b"c")),
            flags: Flags::default(),
            headers: Headers::default(),
            topic: Bytes::from_static(b"t/a"),
            payload: Bytes::from_static(b"p"),
            timestamp: 1,
        };
        let garbage = [
            Term::atom("hello"),
            Term::tuple(vec![Term::atom("dispatch"), Term::Nil, Term::Nil]),
            Term::tuple(vec![Term::atom("$gen_call"), Term::Nil, Term::atom("x")]),
        ];
        for g in garbage {
            node.send_from(None, crate::node::Dest::Pid(pid), g);
        }
        let good = Dispatch::term(&m.topic, pid, &m);
        node.send_from(None, crate::node::Dest::Name(Atom::new(BROKER_NAME)), good);
        for _ in 0..100 {
            if !collect.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = collect.0.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, m);
        assert!(node.is_alive(&pid));
        assert_eq!(stats.snapshot().forward_received, 1);
    }
}
