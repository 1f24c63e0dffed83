//! Links: bidirectional, stored on both local ends; a link to a remote pid is stored on the
//! local end only, and the peer keeps its own half (`erts` `erl_proc_sig_queue.c`,
//! `ERTS_SIG_Q_OP_LINK`/`UNLINK`/`EXIT_LINKED`).
use super::signal::{Outgoing, RemoteSignal};
use super::table::{Entry, Table};
use crate::dist::etf::{Pid, Term};

/// Why a local `link/1` failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// The calling process is not alive.
    #[error("caller not alive")]
    CallerGone,
}

impl Table {
    /// `link(To)` by local `from`. A missing local `to` sends `from` an exit signal `noproc`
    /// (what BEAM does for a trapping caller; a non-trapping caller dies with it).
    pub fn link(&mut self, from: &Pid, to: &Pid) -> Result<Vec<Outgoing>, LinkError> {
        if !self.procs.contains_key(from) {
            return Err(LinkError::CallerGone);
        }
        if from == to {
            return Ok(Vec::new());
        }
        if to.node != self.node {
            if let Some(e) = self.procs.get_mut(from) {
                if e.links.insert(*to) {
                    return Ok(vec![Outgoing {
                        node: to.node,
                        signal: RemoteSignal::Link {
                            from: *from,
                            to: *to,
                        },
                    }]);
                }
            }
            return Ok(Vec::new());
        }
        match self.procs.get_mut(to) {
            Some(e) => {
                e.links.insert(*from);
                if let Some(f) = self.procs.get_mut(from) {
                    f.links.insert(*to);
                }
            }
            None => {
                if let Some(f) = self.procs.get_mut(from) {
                    f.links.insert(*to);
                }
                self.exit_signal(to, from, Term::atom("noproc"), true);
            }
        }
        Ok(Vec::new())
    }

    /// `unlink(To)` by local `from`; `id` numbers the `UNLINK_ID` sent to a remote peer.
    pub fn unlink(&mut self, from: &Pid, to: &Pid, id: u64) -> Vec<Outgoing> {
        let removed = self
            .procs
            .get_mut(from)
            .map(|e| e.links.remove(to))
            .unwrap_or(false);
        if to.node != self.node {
            if removed {
                return vec![Outgoing {
                    node: to.node,
                    signal: RemoteSignal::Unlink {
                        id,
                        from: *from,
                        to: *to,
                    },
                }];
            }
        } else if let Some(e) = self.procs.get_mut(to) {
            e.links.remove(from);
        }
        Vec::new()
    }

    /// A peer's `LINK` from remote `from` to local `to`; a dead `to` answers `EXIT noproc`.
    pub fn remote_link(&mut self, from: &Pid, to: &Pid) -> Vec<Outgoing> {
        match self.procs.get_mut(to) {
            Some(e) => {
                e.links.insert(*from);
                Vec::new()
            }
            None => vec![Outgoing {
                node: from.node,
                signal: RemoteSignal::LinkExit {
                    from: *to,
                    to: *from,
                    reason: Term::atom("noproc"),
                },
            }],
        }
    }

    /// A peer's `UNLINK_ID`: drop the link and acknowledge.
    pub fn remote_unlink(&mut self, id: u64, from: &Pid, to: &Pid) -> Vec<Outgoing> {
        if let Some(e) = self.procs.get_mut(to) {
            e.links.remove(from);
        }
        vec![Outgoing {
            node: from.node,
            signal: RemoteSignal::UnlinkAck {
                id,
                from: *to,
                to: *from,
            },
        }]
    }

    /// Fires the links of a process that ended.
    pub(super) fn links_of_exited(
        &mut self,
        pid: &Pid,
        entry: &Entry,
        reason: &Term,
        out: &mut Vec<Outgoing>,
    ) {
        for other in &entry.links {
            if other.node == self.node {
                self.exit_signal(pid, other, reason.clone(), true);
            } else {
                out.push(Outgoing {
                    node: other.node,
                    signal: RemoteSignal::LinkExit {
                        from: *pid,
                        to: *other,
                        reason: reason.clone(),
                    },
                });
            }
        }
    }

    /// Local processes linked to some process on `node`, with that remote pid.
    pub(super) fn links_to_node(&self, node: crate::dist::etf::Atom) -> Vec<(Pid, Pid)> {
        let mut v = Vec::new();
        for (pid, e) in &self.procs {
            for l in &e.links {
                if l.node == node {
                    v.push((*pid, *l));
                }
            }
        }
        v
    }
}
