//! What C epmd does with one decoded request (`do_request` in `erts/epmd/src/epmd_srv.c`): one
//! `match`, each arm validates, answers, done. No I/O: the server writes [`Outcome::reply`] and
//! then acts on [`Outcome::after`].

use super::registry::{ConnId, Registry};
use super::request::Request;
use super::response::{self, NodeEntry, REFUSED_CREATION};

/// Server-wide settings a request can depend on.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Port reported in `NAMES_RESP` / `DUMP_RESP` headers (C's `g->port`).
    pub port: u16,
    /// `-relaxed_command_check` / `ERL_EPMD_RELAXED_COMMAND_CHECK`: allow KILL with live nodes
    /// and STOP at all.
    pub relaxed: bool,
}

/// The connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Loopback, or the peer's address equals ours (C's `conn_local_peer_check`).
    pub local: bool,
    /// The socket's descriptor, for `DUMP_RESP`.
    pub fd: i32,
    /// Identity for the registration table.
    pub conn: ConnId,
}

/// What the connection does once the reply is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Close it (every request but ALIVE2).
    Close,
    /// Keep it open without a timeout; its close or any byte on it unregisters.
    Keep,
    /// Close it and terminate the daemon (`KILL_REQ` answered `OK`).
    Kill,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes to write (may be empty: C then closes without a word).
    pub reply: Vec<u8>,
    /// What happens next.
    pub after: After,
    /// A registration connection `STOP_REQ` closed.
    pub close_conn: Option<ConnId>,
    /// One line for the log when the request was refused or ignored.
    pub note: Option<&'static str>,
}

impl Outcome {
    fn close(reply: Vec<u8>) -> Self {
        Self {
            reply,
            after: After::Close,
            close_conn: None,
            note: None,
        }
    }

    fn ignored(note: &'static str) -> Self {
        Self {
            reply: Vec::new(),
            after: After::Close,
            close_conn: None,
            note: Some(note),
        }
    }
}

/// Whether `req` needs the table for writing.
pub fn mutates(req: &Request) -> bool {
    matches!(
        req,
        Request::Alive2(_) | Request::Alive2Refused { .. } | Request::Stop(_) | Request::Kill
    )
}

/// Answer a request that only reads the table (`PORT_PLEASE2`, `NAMES`, `DUMP`); `None` for the
/// others, which go to [`handle`].
pub fn query(reg: &Registry, settings: &Settings, peer: &Peer, req: &Request) -> Option<Outcome> {
    let outcome = match req {
        Request::PortPlease2(name) => Outcome::close(match reg.lookup(name) {
            Some(node) => {
                let mut out = Vec::with_capacity(16 + node.req.name.len() + node.req.extra.len());
                response::encode_port2_found(&entry(&node.req), &mut out);
                out
            }
            None => response::PORT2_NOT_FOUND.to_vec(),
        }),
        Request::Names => {
            let mut out = Vec::with_capacity(4 + 32 * reg.live_count());
            response::encode_port_header(settings.port, &mut out);
            for node in reg.live() {
                response::encode_names_line(&node.req.name, node.req.port, &mut out);
            }
            Outcome::close(out)
        }
        Request::Dump if !peer.local => Outcome::ignored("DUMP_REQ from non local address"),
        Request::Dump => {
            let mut out = Vec::new();
            response::encode_port_header(settings.port, &mut out);
            for node in reg.live() {
                response::encode_dump_active(&node.req.name, node.req.port, node.fd, &mut out);
            }
            for node in reg.unused() {
                response::encode_dump_unused(&node.req.name, node.req.port, node.fd, &mut out);
            }
            Outcome::close(out)
        }
        _ => return None,
    };
    Some(outcome)
}

/// Answer any request; `now` is seconds since the epoch, for creations.
pub fn handle(
    reg: &mut Registry,
    settings: &Settings,
    peer: &Peer,
    req: Request,
    now: u32,
) -> Outcome {
    if let Some(outcome) = query(reg, settings, peer, &req) {
        return outcome;
    }
    match req {
        Request::Alive2(_) | Request::Alive2Refused { .. } if !peer.local => {
            Outcome::ignored("ALIVE2_REQ from non local address")
        }
        Request::Alive2(alive) => {
            let highvsn = alive.highvsn;
            let (ok, creation, note) = match reg.register(alive, peer.conn, peer.fd, now) {
                Ok(creation) => (true, creation, None),
                Err(_) => (false, REFUSED_CREATION, Some("node name already occupied")),
            };
            let mut reply = Vec::with_capacity(6);
            response::encode_alive2(highvsn, ok, creation, &mut reply);
            Outcome {
                reply,
                after: After::Keep,
                close_conn: None,
                note,
            }
        }
        Request::Alive2Refused { highvsn, .. } => {
            let mut reply = Vec::with_capacity(6);
            response::encode_alive2(highvsn, false, REFUSED_CREATION, &mut reply);
            Outcome {
                reply,
                after: After::Keep,
                close_conn: None,
                note: Some("invalid node name or extra"),
            }
        }
        Request::Kill if !peer.local => Outcome::ignored("KILL_REQ from non local address"),
        Request::Kill if !settings.relaxed && reg.live_count() > 0 => Outcome {
            reply: b"NO".to_vec(),
            after: After::Close,
            close_conn: None,
            note: Some("Disallowed KILL_REQ, live nodes"),
        },
        Request::Kill => Outcome {
            reply: b"OK".to_vec(),
            after: After::Kill,
            close_conn: None,
            note: None,
        },
        Request::Stop(_) if !peer.local => Outcome::ignored("STOP_REQ from non local address"),
        Request::Stop(_) if !settings.relaxed => {
            Outcome::ignored("Disallowed STOP_REQ, no relaxed_command_check")
        }
        Request::Stop(name) => match reg.unregister_name(&name) {
            // C writes NOEXIST and then, falling through, STOPPED as well.
            None => Outcome::close(b"NOEXISTSTOPPED".to_vec()),
            Some(conn) => Outcome {
                reply: b"STOPPED".to_vec(),
                after: After::Close,
                close_conn: Some(conn),
                note: None,
            },
        },
        Request::PortPlease2(_) | Request::Names | Request::Dump => {
            Outcome::ignored("query answered above")
        }
    }
}

fn entry(req: &super::request::Alive2Req) -> NodeEntry {
    NodeEntry {
        port: req.port,
        node_type: req.node_type,
        protocol: req.protocol,
        highvsn: req.highvsn,
        lowvsn: req.lowvsn,
        name: req.name.clone(),
        extra: req.extra.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epmd::request::Alive2Req;

    const LOCAL: Peer = Peer {
        local: true,
        fd: 9,
        conn: 1,
    };
    const REMOTE: Peer = Peer {
        local: false,
        fd: 10,
        conn: 2,
    };
    const STRICT: Settings = Settings {
        port: 4369,
        relaxed: false,
    };
    const RELAXED: Settings = Settings {
        port: 4369,
        relaxed: true,
    };

    fn alive(name: &str, highvsn: u16) -> Request {
        Request::Alive2(Alive2Req {
            port: 6369,
            node_type: 77,
            protocol: 0,
            highvsn,
            lowvsn: 5,
            name: name.into(),
            extra: vec![],
        })
    }

    fn registered(names: &[&str]) -> Registry {
        let mut reg = Registry::new(false);
        for (i, n) in names.iter().enumerate() {
            let peer = Peer {
                local: true,
                fd: 20 + i as i32,
                conn: 100 + i as u64,
            };
            assert_eq!(
                handle(&mut reg, &STRICT, &peer, alive(n, 6), 1000).after,
                After::Keep
            );
        }
        reg
    }

    #[test]
    fn alive2_x_resp_and_keep() {
        let mut reg = Registry::new(false);
        let o = handle(&mut reg, &STRICT, &LOCAL, alive("a", 6), 1000);
        assert_eq!(o.reply, vec![118, 0, 0, 0, 0x03, 0xe9]);
        assert_eq!(o.after, After::Keep);
    }

    #[test]
    fn alive2_resp_for_old_highvsn() {
        let mut reg = Registry::new(false);
        let o = handle(&mut reg, &STRICT, &LOCAL, alive("a", 5), 1000);
        assert_eq!(o.reply, vec![121, 0, 0, (1001 % 3 + 1) as u8]);
    }

    #[test]
    fn duplicate_answers_1_and_99_and_still_keeps() {
        let mut reg = registered(&["a"]);
        let o = handle(&mut reg, &STRICT, &LOCAL, alive("a", 6), 1000);
        assert_eq!(o.reply, vec![118, 1, 0, 0, 0, 99]);
        assert_eq!(o.after, After::Keep);
    }

    #[test]
    fn alive2_from_remote_is_silent() {
        let mut reg = Registry::new(false);
        let o = handle(&mut reg, &STRICT, &REMOTE, alive("a", 6), 1000);
        assert!(o.reply.is_empty());
        assert_eq!(o.after, After::Close);
        assert_eq!(reg.live_count(), 0);
    }

    #[test]
    fn port_please2_found_and_not_found_also_remote() {
        let mut reg = registered(&["a"]);
        let o = handle(
            &mut reg,
            &STRICT,
            &REMOTE,
            Request::PortPlease2("a".into()),
            0,
        );
        assert_eq!(
            o.reply,
            vec![119, 0, 0x18, 0xe1, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0, 0]
        );
        let o = handle(
            &mut reg,
            &STRICT,
            &REMOTE,
            Request::PortPlease2("b".into()),
            0,
        );
        assert_eq!(o.reply, vec![119, 1]);
    }

    #[test]
    fn names_newest_first() {
        let mut reg = registered(&["a", "b"]);
        let o = handle(&mut reg, &STRICT, &REMOTE, Request::Names, 0);
        assert_eq!(
            o.reply,
            b"\0\0\x11\x11name b at port 6369\nname a at port 6369\n".to_vec()
        );
    }

    #[test]
    fn dump_lists_live_then_unused_with_fds() {
        let mut reg = registered(&["a", "b"]);
        reg.unregister_conn(100);
        let o = handle(&mut reg, &STRICT, &LOCAL, Request::Dump, 0);
        let mut want = b"\0\0\x11\x11".to_vec();
        want.extend_from_slice(b"active name     <b> at port 6369, fd = 21\n\0");
        want.extend_from_slice(b"old/unused name <a>, port = 6369, fd = 20 \n\0");
        assert_eq!(o.reply, want);
        assert!(handle(&mut reg, &STRICT, &REMOTE, Request::Dump, 0)
            .reply
            .is_empty());
    }

    #[test]
    fn kill_refused_with_live_nodes_unless_relaxed() {
        let mut reg = registered(&["a"]);
        let o = handle(&mut reg, &STRICT, &LOCAL, Request::Kill, 0);
        assert_eq!((o.reply.as_slice(), o.after), (&b"NO"[..], After::Close));
        let o = handle(&mut reg, &RELAXED, &LOCAL, Request::Kill, 0);
        assert_eq!((o.reply.as_slice(), o.after), (&b"OK"[..], After::Kill));
        let mut empty = Registry::new(false);
        assert_eq!(
            handle(&mut empty, &STRICT, &LOCAL, Request::Kill, 0).after,
            After::Kill
        );
        assert!(handle(&mut empty, &STRICT, &REMOTE, Request::Kill, 0)
            .reply
            .is_empty());
    }

    #[test]
    fn stop_ignored_unless_relaxed() {
        let mut reg = registered(&["a"]);
        let o = handle(&mut reg, &STRICT, &LOCAL, Request::Stop(b"a".to_vec()), 0);
        assert!(o.reply.is_empty());
        assert_eq!(reg.live_count(), 1);
    }

    #[test]
    fn stop_relaxed_stops_and_closes_registration() {
        let mut reg = registered(&["a"]);
        let o = handle(&mut reg, &RELAXED, &LOCAL, Request::Stop(b"a".to_vec()), 0);
        assert_eq!(o.reply, b"STOPPED".to_vec());
        assert_eq!(o.close_conn, Some(100));
        assert_eq!(reg.live_count(), 0);
    }

    #[test]
    fn stop_unknown_sends_noexist_then_stopped() {
        let mut reg = Registry::new(false);
        let o = handle(&mut reg, &RELAXED, &LOCAL, Request::Stop(b"zz".to_vec()), 0);
        assert_eq!(o.reply, b"NOEXISTSTOPPED".to_vec());
    }
}
