//! Process monitors, by pid and by registered name, local and across nodes.
//!
//! Wire behaviour from reference/otp25-traces.md §0.1 and §5: a `MONITOR_P` on a name nobody
//! has is answered at once with `MONITOR_P_EXIT` carrying the *atom* and reason `noproc`, and
//! the watcher's DOWN names `{Name, Node}`.
use super::signal::{MonitorTarget, Outgoing, PidOrName, RemoteSignal};
use super::table::{Entry, Monitor, Table};
use crate::dist::etf::{Pid, Reference, Term};

impl Table {
    /// `erlang:monitor(process, Target)` by local `watcher` with the fresh `reference`.
    /// An unknown local target gets an immediate DOWN `noproc`.
    pub fn monitor(
        &mut self,
        watcher: &Pid,
        target: MonitorTarget,
        reference: Reference,
    ) -> Vec<Outgoing> {
        if !self.procs.contains_key(watcher) {
            return Vec::new();
        }
        if target.node() != self.node {
            let to = match &target {
                MonitorTarget::Pid(p) => PidOrName::Pid(*p),
                MonitorTarget::Name(n, _) => PidOrName::Name(*n),
            };
            let node = target.node();
            self.add_monitor(reference, *watcher, target, None);
            return vec![Outgoing {
                node,
                signal: RemoteSignal::Monitor {
                    from: *watcher,
                    to,
                    reference,
                },
            }];
        }
        match self.resolve(&target) {
            Some(pid) => self.add_monitor(reference, *watcher, target, Some(pid)),
            None => {
                let down = down_message(&reference, &target, Term::atom("noproc"));
                let _ = self.deliver(watcher, down);
            }
        }
        Vec::new()
    }

    /// `erlang:demonitor(Ref)` by local `watcher`; false when it held no such monitor.
    pub fn demonitor(&mut self, watcher: &Pid, reference: &Reference) -> (bool, Vec<Outgoing>) {
        match self.monitors.get(reference) {
            Some(m) if &m.watcher == watcher => {}
            _ => return (false, Vec::new()),
        }
        let Some(m) = self.monitors.remove(reference) else {
            return (false, Vec::new());
        };
        if let Some(e) = self.procs.get_mut(watcher) {
            e.monitors_out.remove(reference);
        }
        if let Some(target) = &m.resolved {
            if let Some(e) = self.procs.get_mut(target) {
                e.monitors_in.remove(reference);
            }
            return (true, Vec::new());
        }
        let to = match &m.target {
            MonitorTarget::Pid(p) => PidOrName::Pid(*p),
            MonitorTarget::Name(n, _) => PidOrName::Name(*n),
        };
        let out = vec![Outgoing {
            node: m.target.node(),
            signal: RemoteSignal::Demonitor {
                from: *watcher,
                to,
                reference: *reference,
            },
        }];
        (true, out)
    }

    /// A peer's `MONITOR_P` from remote `watcher` on a local pid or name.
    pub fn remote_monitor(
        &mut self,
        watcher: &Pid,
        target: PidOrName,
        reference: Reference,
    ) -> Vec<Outgoing> {
        let mt = match &target {
            PidOrName::Pid(p) => MonitorTarget::Pid(*p),
            PidOrName::Name(n) => MonitorTarget::Name(*n, self.node),
        };
        match self.resolve(&mt) {
            Some(pid) => {
                self.add_monitor(reference, *watcher, mt, Some(pid));
                Vec::new()
            }
            None => vec![Outgoing {
                node: watcher.node,
                signal: RemoteSignal::MonitorExit {
                    from: target,
                    to: *watcher,
                    reference,
                    reason: Term::atom("noproc"),
                },
            }],
        }
    }

    /// A peer's `DEMONITOR_P`.
    pub fn remote_demonitor(&mut self, watcher: &Pid, reference: &Reference) {
        if let Some(m) = self.monitors.get(reference) {
            if &m.watcher != watcher {
                return;
            }
        }
        if let Some(m) = self.monitors.remove(reference) {
            if let Some(e) = m.resolved.as_ref().and_then(|t| self.procs.get_mut(t)) {
                e.monitors_in.remove(reference);
            }
        }
    }

    /// A peer's `MONITOR_P_EXIT`: the watched remote process is gone; DOWN to local `watcher`.
    pub fn remote_monitor_exit(&mut self, watcher: &Pid, reference: &Reference, reason: Term) {
        match self.monitors.get(reference) {
            Some(m) if &m.watcher == watcher && m.resolved.is_none() => {}
            _ => return,
        }
        if let Some(m) = self.monitors.remove(reference) {
            if let Some(e) = self.procs.get_mut(watcher) {
                e.monitors_out.remove(reference);
            }
            let _ = self.deliver(watcher, down_message(reference, &m.target, reason));
        }
    }

    fn resolve(&self, target: &MonitorTarget) -> Option<Pid> {
        match target {
            MonitorTarget::Pid(p) => self.procs.contains_key(p).then_some(*p),
            MonitorTarget::Name(n, _) => self.names.get(n).cloned(),
        }
    }

    fn add_monitor(
        &mut self,
        reference: Reference,
        watcher: Pid,
        target: MonitorTarget,
        resolved: Option<Pid>,
    ) {
        if let Some(e) = self.procs.get_mut(&watcher) {
            e.monitors_out.insert(reference);
        }
        if let Some(e) = resolved.as_ref().and_then(|t| self.procs.get_mut(t)) {
            e.monitors_in.insert(reference);
        }
        self.monitors.insert(
            reference,
            Monitor {
                watcher,
                target,
                resolved,
            },
        );
    }

    /// Fires and removes the monitors of a process that ended.
    pub(super) fn monitors_of_exited(
        &mut self,
        pid: &Pid,
        entry: &Entry,
        reason: &Term,
        out: &mut Vec<Outgoing>,
    ) {
        for r in &entry.monitors_in {
            let Some(m) = self.monitors.remove(r) else {
                continue;
            };
            if m.watcher.node == self.node {
                if let Some(w) = self.procs.get_mut(&m.watcher) {
                    w.monitors_out.remove(r);
                }
                let _ = self.deliver(&m.watcher, down_message(r, &m.target, reason.clone()));
            } else {
                let from = match &m.target {
                    MonitorTarget::Name(n, _) => PidOrName::Name(*n),
                    MonitorTarget::Pid(_) => PidOrName::Pid(*pid),
                };
                out.push(Outgoing {
                    node: m.watcher.node,
                    signal: RemoteSignal::MonitorExit {
                        from,
                        to: m.watcher,
                        reference: *r,
                        reason: reason.clone(),
                    },
                });
            }
        }
        for r in &entry.monitors_out {
            let Some(m) = self.monitors.remove(r) else {
                continue;
            };
            match &m.resolved {
                Some(t) => {
                    if let Some(e) = self.procs.get_mut(t) {
                        e.monitors_in.remove(r);
                    }
                }
                None => {
                    let to = match &m.target {
                        MonitorTarget::Pid(p) => PidOrName::Pid(*p),
                        MonitorTarget::Name(n, _) => PidOrName::Name(*n),
                    };
                    out.push(Outgoing {
                        node: m.target.node(),
                        signal: RemoteSignal::Demonitor {
                            from: *pid,
                            to,
                            reference: *r,
                        },
                    });
                }
            }
        }
    }
}

/// `{'DOWN', Ref, process, Object, Reason}`, Object being the pid or `{Name, Node}`.
pub fn down_message(reference: &Reference, target: &MonitorTarget, reason: Term) -> Term {
    let object = match target {
        MonitorTarget::Pid(p) => Term::Pid(*p),
        MonitorTarget::Name(n, node) => Term::tuple(vec![Term::Atom(*n), Term::Atom(*node)]),
    };
    Term::tuple(vec![
        Term::atom("DOWN"),
        Term::Ref(*reference),
        Term::atom("process"),
        object,
        reason,
    ])
}
