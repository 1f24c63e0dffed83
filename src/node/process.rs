//! What a process body gets: its pid, its mailbox, and the BEAM built-ins that act on "self"
//! (`send`, `register`, `link`, `monitor`, `process_flag(trap_exit)`, `alias`, gen calls).
use std::time::Duration;

use super::mailbox::Mailbox;
use super::runtime::Node;
use super::signal::{MonitorTarget, Outgoing, RemoteSignal};
use super::table::RegisterError;
use crate::dist::etf::{Atom, Pid, Reference, Term};

/// Where a message goes (`Dest ! Msg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// A pid, local or remote.
    Pid(Pid),
    /// A name registered on this node.
    Name(Atom),
    /// `{Name, Node}`; `Node` may be this node.
    NameAt(Atom, Atom),
    /// An alias (a reference made by `alias/0` or a monitor with the alias option).
    Alias(Reference),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Dest {
        Dest::Pid(p)
    }
}

/// Why a gen_server-style call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No reply in time.
    #[error("timeout")]
    Timeout,
    /// The server is gone (the monitor's DOWN reason: `noproc`, `noconnection`, ...).
    #[error("server down: {0:?}")]
    Down(Term),
}

/// A running process, owned by its task.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    node: Node,
    mailbox: Mailbox,
}

impl Process {
    pub(super) fn new(pid: Pid, node: Node, mailbox: Mailbox) -> Process {
        Process { pid, node, mailbox }
    }

    /// `self()`.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The next message (`receive M -> M end`); `None` only if the node is going away.
    pub async fn recv(&mut self) -> Option<Term> {
        self.mailbox.recv().await
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Term> {
        self.mailbox.recv_timeout(timeout).await
    }

    /// The oldest message matching `pred`, others stay queued (selective receive).
    pub async fn recv_match<F>(&mut self, pred: F, timeout: Option<Duration>) -> Option<Term>
    where
        F: FnMut(&Term) -> bool,
    {
        self.mailbox.recv_match(pred, timeout).await
    }

    /// Messages waiting (`process_info(self(), message_queue_len)`).
    pub fn queue_len(&self) -> usize {
        self.mailbox.len()
    }

    /// `Dest ! Msg`: never fails, as on BEAM (a dead destination drops the message). A send
    /// to an unconnected node connects first, as BEAM's auto-connect does.
    pub fn send(&self, to: impl Into<Dest>, msg: Term) {
        self.node.send_from(Some(self.pid), to.into(), msg);
    }

    /// `register(Name, self())`.
    pub fn register(&self, name: Atom) -> Result<(), RegisterError> {
        self.node.register(name, &self.pid)
    }

    /// `unregister(Name)` of this process's own name.
    pub fn unregister(&self, name: Atom) -> bool {
        let mut t = self.node.table();
        if t.whereis(name) == Some(self.pid) {
            t.unregister(name)
        } else {
            false
        }
    }

    /// `process_flag(trap_exit, On)`; returns the old value.
    pub fn trap_exit(&self, on: bool) -> bool {
        self.node.table().set_trap_exit(&self.pid, on)
    }

    /// `link(Pid)`. Linking to a dead local process sends this process an exit signal
    /// `noproc`; to a dead remote one, the peer answers with `EXIT noproc`.
    pub fn link(&self, to: &Pid) {
        let out = self.node.table().link(&self.pid, to).unwrap_or_default();
        self.node.route_all(out);
    }

    /// `unlink(Pid)`.
    pub fn unlink(&self, to: &Pid) {
        let id = u64::from(self.node.make_ref().ids()[0]);
        let out = self.node.table().unlink(&self.pid, to, id);
        self.node.route_all(out);
    }

    /// `erlang:monitor(process, Target)`: the DOWN arrives as
    /// `{'DOWN', Ref, process, Object, Reason}`.
    pub fn monitor(&self, target: MonitorTarget) -> Reference {
        let r = self.node.make_ref();
        let target = match target {
            MonitorTarget::Pid(p) if p.node == self.node.name() && !self.node.is_local(&p) => {
                let down = super::monitors::down_message(&r, &target, Term::atom("noproc"));
                let _ = self.node.table().deliver(&self.pid, down);
                return r;
            }
            t => t,
        };
        let out = self.node.table().monitor(&self.pid, target, r);
        self.node.route_all(out);
        r
    }

    /// `erlang:demonitor(Ref, [flush])`: removes the monitor and any DOWN already queued.
    pub async fn demonitor(&mut self, reference: Reference) {
        let (_, out) = self.node.table().demonitor(&self.pid, &reference);
        self.node.route_all(out);
        let is_down = |m: &Term| {
            m.as_tuple().is_some_and(|t| {
                t.len() == 5 && t[0].is_atom("DOWN") && t[1].as_ref() == Some(reference)
            })
        };
        while self
            .mailbox
            .recv_match(is_down, Some(Duration::ZERO))
            .await
            .is_some()
        {}
    }

    /// `erlang:monitor_node(Node, Flag)`. Monitoring a node with no connection tries to
    /// connect; if that fails, `{nodedown, Node}` arrives.
    pub fn monitor_node(&self, node: Atom, on: bool) {
        if !on {
            self.node.table().demonitor_node(&self.pid, node);
            return;
        }
        if node == self.node.name() {
            self.node.table().monitor_node(&self.pid, node);
            return;
        }
        self.node.table().monitor_node(&self.pid, node);
        self.node.ensure_connected(node);
    }

    /// `net_kernel:monitor_nodes(Flag)`: `{nodeup, N}` / `{nodedown, N}` messages.
    pub fn monitor_nodes(&self, on: bool) {
        self.node.table().subscribe_nodes(&self.pid, on);
    }

    /// `erlang:alias()`: a reference that delivers to this process until `unalias`.
    pub fn alias(&self) -> Reference {
        let r = self.node.make_ref();
        self.node.table().add_alias(&self.pid, r);
        r
    }

    /// `erlang:unalias(Alias)`.
    pub fn unalias(&self, alias: &Reference) -> bool {
        self.node.table().remove_alias(&self.pid, alias)
    }

    /// `exit(Pid, Reason)`.
    pub fn exit(&self, to: &Pid, reason: Term) {
        self.node.exit(&self.pid, to, reason);
    }

    /// `gen_server:call(Dest, Request, Timeout)`: monitors the server, sends
    /// `{'$gen_call', {self(), Ref}, Request}`, waits for `{Ref, Reply}` or the DOWN
    /// (`lib/stdlib/src/gen.erl` `do_call/4`).
    pub async fn call(
        &mut self,
        to: Dest,
        request: Term,
        timeout: Option<Duration>,
    ) -> Result<Term, CallError> {
        let target = match to {
            Dest::Pid(p) => MonitorTarget::Pid(p),
            Dest::Name(n) => MonitorTarget::Name(n, self.node.name()),
            Dest::NameAt(n, node) => MonitorTarget::Name(n, node),
            Dest::Alias(_) => {
                return Err(CallError::Down(Term::atom("badarg")));
            }
        };
        let mref = self.monitor(target);
        let from = Term::tuple(vec![Term::Pid(self.pid), Term::Ref(mref)]);
        self.send(
            to,
            Term::tuple(vec![Term::atom("$gen_call"), from, request]),
        );
        let matches = |m: &Term| match m.as_tuple() {
            Some([tag, _]) => tag.as_ref() == Some(mref),
            Some([down, r, _, _, _]) => down.is_atom("DOWN") && r.as_ref() == Some(mref),
            _ => false,
        };
        let got = self.mailbox.recv_match(matches, timeout).await;
        let result = match got.as_ref().and_then(|m| m.as_tuple()) {
            Some([_, reply]) => Ok(reply.clone()),
            Some([_, _, _, _, reason]) => return Err(CallError::Down(reason.clone())),
            _ => Err(CallError::Timeout),
        };
        self.demonitor(mref).await;
        result
    }
}

impl Process {
    /// `rpc:call(Node, M, F, Args, Timeout)` through the peer's `rex` (the gen_server form
    /// every OTP release serves): the value, or rpc's `{badrpc, Reason}` shapes
    /// (`{badrpc, nodedown}`, `{badrpc, timeout}`, `{badrpc, {'EXIT', ...}}`).
    pub async fn rpc_call(
        &mut self,
        node: Atom,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Option<Duration>,
    ) -> Term {
        let gl = self.node.whereis(Atom::new("user")).unwrap_or(self.pid);
        let req = Term::tuple(vec![
            Term::atom("call"),
            Term::atom(module),
            Term::atom(function),
            Term::list(args),
            Term::Pid(gl),
        ]);
        let badrpc = |r: Term| Term::tuple(vec![Term::atom("badrpc"), r]);
        match self
            .call(Dest::NameAt(Atom::new("rex"), node), req, timeout)
            .await
        {
            Ok(v) => v,
            Err(CallError::Timeout) => badrpc(Term::atom("timeout")),
            Err(CallError::Down(r)) if r.is_atom("noconnection") => badrpc(Term::atom("nodedown")),
            Err(CallError::Down(r)) => badrpc(Term::tuple(vec![Term::atom("EXIT"), r])),
        }
    }
}

impl Node {
    /// [`Process::rpc_call`] from Rust code that is not a process (a temporary one is made).
    pub async fn rpc_call(
        &self,
        node: Atom,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: Option<Duration>,
    ) -> Term {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (m, f) = (module.to_string(), function.to_string());
        self.spawn(move |mut p| async move {
            let r = p.rpc_call(node, &m, &f, args, timeout).await;
            let _ = tx.send(r);
            Term::atom("normal")
        });
        rx.await
            .unwrap_or_else(|_| Term::tuple(vec![Term::atom("badrpc"), Term::atom("nodedown")]))
    }

    /// A send with an explicit sender (`None` for Rust code that is not a process).
    pub fn send_from(&self, from: Option<Pid>, to: Dest, msg: Term) {
        let me = self.name();
        match to {
            Dest::Pid(p) if p.node == me => {
                if self.is_local(&p) {
                    let _ = self.table().deliver(&p, msg);
                }
            }
            Dest::Pid(p) => self.route(Outgoing {
                node: p.node,
                signal: RemoteSignal::Send { from, to: p, msg },
            }),
            Dest::Name(n) => {
                let _ = self.table().deliver_named(n, msg);
            }
            Dest::NameAt(n, node) if node == me => {
                let _ = self.table().deliver_named(n, msg);
            }
            Dest::NameAt(name, node) => match from {
                Some(from) => self.route(Outgoing {
                    node,
                    signal: RemoteSignal::RegSend { from, name, msg },
                }),
                None => tracing::warn!(
                    name = name.as_str(),
                    node = node.as_str(),
                    "a REG_SEND needs a sending pid; dropped"
                ),
            },
            Dest::Alias(a) if a.node == me => {
                let _ = self.table().deliver_alias(&a, msg);
            }
            Dest::Alias(alias) => match from {
                Some(from) => self.route(Outgoing {
                    node: alias.node,
                    signal: RemoteSignal::AliasSend { from, alias, msg },
                }),
                None => tracing::warn!("an ALIAS_SEND needs a sending pid; dropped"),
            },
        }
    }

    /// `gen_server:reply(From, Reply)`: `From` is `{Pid, Tag}`, the tag (a ref, `[alias|Ref]`
    /// or `{Ref, Node}`) is echoed untouched, and the reply goes to the pid as OTP 25 does
    /// (reference/otp25-traces.md §5).
    pub fn reply(&self, sender: Option<Pid>, from: &Term, reply: Term) {
        match from.as_tuple() {
            Some([Term::Pid(p), tag]) => {
                self.send_from(sender, Dest::Pid(*p), Term::tuple(vec![tag.clone(), reply]));
            }
            _ => tracing::debug!(?from, "gen reply to a malformed From; dropped"),
        }
    }
}
