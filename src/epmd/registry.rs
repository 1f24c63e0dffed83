//! The node table of C epmd (`node_reg2`, `node_unreg`, `node_unreg_sock` in
//! `erts/epmd/src/epmd_srv.c`), without I/O: time and connection identities are inputs.
//!
//! Live names are listed newest first (C prepends to `nodes.reg`). Unregistered names are kept
//! in a FIFO so a name that comes back gets a bumped creation; a new name steals the oldest
//! remembered slot, creation counter and all, once more than 1000 (5 with `-d`) are remembered.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::request::{Alive2Req, Refusal};

/// `MAX_UNREG_COUNT` in `epmd_int.h`.
pub const MAX_UNREG_COUNT: usize = 1000;
/// `DEBUG_MAX_UNREG_COUNT` in `epmd_int.h`, used with `-d`.
pub const DEBUG_MAX_UNREG_COUNT: usize = 5;

/// Identity of the TCP connection a registration lives on (C uses the fd).
pub type ConnId = u64;

/// A registered or remembered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What the node registered.
    pub req: Alive2Req,
    /// C's `cr_counter`: seeded from the clock, bumped on each return of the name.
    pub cr_counter: u32,
    /// The registering connection's file descriptor, shown by `DUMP_RESP`.
    pub fd: i32,
    /// The registering connection.
    pub conn: ConnId,
    seq: u64,
}

impl Node {
    /// Creation as C's `get_creation` reports it: 32 bits for highvsn >= 6, else 1..=3.
    pub fn creation(&self) -> u32 {
        if self.req.highvsn >= 6 {
            self.cr_counter
        } else {
            self.cr_counter % 3 + 1
        }
    }
}

/// Live registrations and remembered names.
#[derive(Debug)]
pub struct Registry {
    live: HashMap<String, Node>,
    by_conn: HashMap<ConnId, String>,
    order: BTreeMap<u64, String>,
    unused: VecDeque<Node>,
    max_unused: usize,
    next_seq: u64,
}

/// C's `bump_creation`: creations 0..=3 are reserved, so the counter never goes below 4.
fn bump(counter: u32) -> u32 {
    counter.wrapping_add(1).max(4)
}

impl Registry {
    /// An empty table; `debug` selects the short FIFO of `-d`.
    pub fn new(debug: bool) -> Self {
        Self {
            live: HashMap::new(),
            by_conn: HashMap::new(),
            order: BTreeMap::new(),
            unused: VecDeque::new(),
            max_unused: if debug {
                DEBUG_MAX_UNREG_COUNT
            } else {
                MAX_UNREG_COUNT
            },
            next_seq: 0,
        }
    }

    /// Register `req` for connection `conn`; `now` is seconds since the epoch (C's `time()`).
    /// Returns the creation to report.
    pub fn register(
        &mut self,
        req: Alive2Req,
        conn: ConnId,
        fd: i32,
        now: u32,
    ) -> Result<u32, Refusal> {
        if self.live.contains_key(&req.name) {
            return Err(Refusal::NameInUse);
        }
        let cr_counter = if let Some(at) = self.unused.iter().position(|n| n.req.name == req.name) {
            self.unused
                .remove(at)
                .map_or(bump(now), |old| bump(old.cr_counter))
        } else if self.unused.len() > self.max_unused {
            self.unused
                .pop_front()
                .map_or(bump(now), |stolen| stolen.cr_counter)
        } else {
            bump(now)
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let node = Node {
            req,
            cr_counter,
            fd,
            conn,
            seq,
        };
        let creation = node.creation();
        let name = node.req.name.clone();
        self.order.insert(seq, name.clone());
        self.by_conn.insert(conn, name.clone());
        self.live.insert(name, node);
        Ok(creation)
    }

    /// The connection closed or misbehaved: forget its node (C's `node_unreg_sock`).
    pub fn unregister_conn(&mut self, conn: ConnId) -> Option<&Node> {
        let name = self.by_conn.remove(&conn)?;
        self.retire(&name)
    }

    /// `STOP_REQ`: forget the node registered under `name` (C's `node_unreg`), returning its
    /// connection so the caller can close it.
    pub fn unregister_name(&mut self, name: &[u8]) -> Option<ConnId> {
        let name = std::str::from_utf8(name).ok()?;
        let conn = self.live.get(name)?.conn;
        self.by_conn.remove(&conn);
        self.retire(name).map(|n| n.conn)
    }

    fn retire(&mut self, name: &str) -> Option<&Node> {
        let node = self.live.remove(name)?;
        self.order.remove(&node.seq);
        self.unused.push_back(node);
        self.unused.back()
    }

    /// The live node registered under `name`.
    pub fn lookup(&self, name: &str) -> Option<&Node> {
        self.live.get(name)
    }

    /// Live nodes, newest first, as `NAMES_RESP` and `DUMP_RESP` list them.
    pub fn live(&self) -> impl Iterator<Item = &Node> {
        self.order
            .values()
            .rev()
            .filter_map(|name| self.live.get(name))
    }

    /// Remembered names, oldest first.
    pub fn unused(&self) -> impl Iterator<Item = &Node> {
        self.unused.iter()
    }

    /// Number of live registrations.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str, highvsn: u16) -> Alive2Req {
        Alive2Req {
            port: 6000,
            node_type: 77,
            protocol: 0,
            highvsn,
            lowvsn: 5,
            name: name.into(),
            extra: vec![],
        }
    }

    #[test]
    fn creation_is_seeded_from_clock_plus_one() {
        let mut r = Registry::new(false);
        assert_eq!(
            r.register(req("a", 6), 1, 7, 1_700_000_000),
            Ok(1_700_000_001)
        );
    }

    #[test]
    fn creation_never_below_4() {
        let mut r = Registry::new(false);
        assert_eq!(r.register(req("a", 6), 1, 7, 1), Ok(4));
    }

    #[test]
    fn old_versions_get_creation_mod_3_plus_1() {
        let mut r = Registry::new(false);
        // counter 1_700_000_001 % 3 == 0 -> 1
        assert_eq!(
            r.register(req("a", 5), 1, 7, 1_700_000_000),
            Ok(1_700_000_001 % 3 + 1)
        );
    }

    #[test]
    fn duplicate_live_name_is_refused() {
        let mut r = Registry::new(false);
        r.register(req("a", 6), 1, 7, 100).unwrap();
        assert_eq!(r.register(req("a", 6), 2, 8, 100), Err(Refusal::NameInUse));
    }

    #[test]
    fn returning_name_bumps_its_creation_not_the_clock() {
        let mut r = Registry::new(false);
        assert_eq!(r.register(req("a", 6), 1, 7, 100), Ok(101));
        r.unregister_conn(1);
        assert_eq!(r.register(req("a", 6), 2, 7, 5000), Ok(102));
    }

    #[test]
    fn unregister_by_name_returns_connection() {
        let mut r = Registry::new(false);
        r.register(req("a", 6), 42, 7, 100).unwrap();
        assert_eq!(r.unregister_name(b"a"), Some(42));
        assert_eq!(r.unregister_name(b"a"), None);
        assert!(r.unregister_conn(42).is_none());
        assert_eq!(r.unused().count(), 1);
    }

    #[test]
    fn live_is_newest_first_unused_oldest_first() {
        let mut r = Registry::new(false);
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            r.register(req(n, 6), i as u64, 7, 100).unwrap();
        }
        let live: Vec<_> = r.live().map(|n| n.req.name.as_str()).collect();
        assert_eq!(live, ["c", "b", "a"]);
        r.unregister_conn(1);
        r.unregister_conn(0);
        let unused: Vec<_> = r.unused().map(|n| n.req.name.as_str()).collect();
        assert_eq!(unused, ["b", "a"]);
    }

    #[test]
    fn fifo_holds_1001_then_new_names_steal_the_oldest_counter() {
        let mut r = Registry::new(false);
        for i in 0..=MAX_UNREG_COUNT as u64 {
            r.register(req(&format!("n{i}"), 6), i, 7, 100 + i as u32)
                .unwrap();
            r.unregister_conn(i);
        }
        assert_eq!(r.unused().count(), MAX_UNREG_COUNT + 1);
        // A new name now takes n0's slot and keeps its counter (101), unbumped.
        assert_eq!(r.register(req("fresh", 6), 9999, 7, 50_000), Ok(101));
        assert_eq!(r.unused().count(), MAX_UNREG_COUNT);
        assert!(r.unused().all(|n| n.req.name != "n0"));
    }

    #[test]
    fn debug_fifo_is_short() {
        let mut r = Registry::new(true);
        for i in 0..=DEBUG_MAX_UNREG_COUNT as u64 {
            r.register(req(&format!("n{i}"), 6), i, 7, 1000).unwrap();
            r.unregister_conn(i);
        }
        assert_eq!(r.register(req("fresh", 6), 99, 7, 50_000), Ok(1001));
        assert_eq!(r.unused().count(), DEBUG_MAX_UNREG_COUNT);
    }
}
