//! Listening sockets as C epmd opens them (`run` in `erts/epmd/src/epmd_srv.c`), and its
//! "local peer" rule (`conn_local_peer_check`).
//!
//! Without `-address` / `ERL_EPMD_ADDRESS`: `0.0.0.0` and `::` (IPv6-only, so both can share the
//! port). With a list: loopback (`127.0.0.1`, `::1`, whose failure to bind is not fatal) plus every
//! listed non-loopback address. A port in use anywhere means "an epmd already runs": exit 0.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// `MAX_LISTEN_SOCKETS` in `epmd_int.h`.
pub const MAX_LISTEN_SOCKETS: usize = 16;

/// Why the listeners could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// An `-address` entry is not an IP address.
    #[error("cannot parse IP address \"{0}\"")]
    BadAddress(String),
    /// More than [`MAX_LISTEN_SOCKETS`] addresses.
    #[error("cannot listen on more than {MAX_LISTEN_SOCKETS} IP addresses")]
    TooMany,
    /// A bind or listen that C treats as fatal failed.
    #[error("failed to bind on ipaddr {addr}: {source}")]
    Bind {
        /// The address.
        addr: IpAddr,
        /// The error.
        source: io::Error,
    },
    /// Nothing could be bound.
    #[error("unable to bind any address")]
    NothingBound,
}

/// Result of opening the listeners.
#[derive(Debug)]
pub enum Bound {
    /// Listening on these sockets.
    Listening(Vec<TcpListener>),
    /// The port is taken on this address: another epmd runs (C exits 0).
    AlreadyRunning(IpAddr),
}

/// The addresses C epmd would listen on, and how many leading ones may fail to bind.
pub fn plan(addresses: Option<&str>) -> Result<(Vec<IpAddr>, usize), ListenError> {
    let list = addresses.filter(|a| a.chars().any(|c| c != ' ' && c != ','));
    let Some(list) = list else {
        return Ok((
            vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
            0,
        ));
    };
    let mut addrs: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    let nonfatal = addrs.len();
    for token in list.split([',', ' ']).filter(|t| !t.is_empty()) {
        let ip: IpAddr = token
            .parse()
            .map_err(|_| ListenError::BadAddress(token.to_owned()))?;
        let loopback = match ip {
            IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST,
            IpAddr::V6(v6) => v6.is_loopback(),
        };
        if loopback {
            continue;
        }
        addrs.push(ip);
        if addrs.len() >= MAX_LISTEN_SOCKETS {
            return Err(ListenError::TooMany);
        }
    }
    Ok((addrs, nonfatal))
}

/// Open the listeners for `port` as C epmd does.
pub fn bind(port: u16, addresses: Option<&str>) -> Result<Bound, ListenError> {
    let (addrs, nonfatal) = plan(addresses)?;
    let mut bound = Vec::new();
    for (i, ip) in addrs.into_iter().enumerate() {
        match bind_one(SocketAddr::new(ip, port)) {
            Ok(Some(listener)) => bound.push(listener),
            Ok(None) => continue,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Ok(Bound::AlreadyRunning(ip)),
            Err(e) if i < nonfatal => {
                tracing::warn!("failed to bind on ipaddr {ip}: {e}");
            }
            Err(source) => return Err(ListenError::Bind { addr: ip, source }),
        }
    }
    if bound.is_empty() {
        return Err(ListenError::NothingBound);
    }
    Ok(Bound::Listening(bound))
}

/// One listening socket; `Ok(None)` when the address family is not supported here.
fn bind_one(addr: SocketAddr) -> io::Result<Option<TcpListener>> {
    let socket = match Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(libc::SOMAXCONN)?;
    Ok(Some(socket.into()))
}

/// C's `conn_local_peer_check`: 127.0.0.0/8, `::1`, or a peer whose address is our own.
pub fn is_local_peer(peer: SocketAddr, local: Option<SocketAddr>) -> bool {
    match peer.ip() {
        IpAddr::V4(v4) if v4.octets()[0] == 127 => true,
        IpAddr::V6(v6) if v6.is_loopback() => true,
        ip => local.is_some_and(|l| l.ip() == ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_any_v4_and_v6() {
        let (addrs, nonfatal) = plan(None).unwrap();
        assert_eq!(
            addrs,
            vec![
                IpAddr::from(Ipv4Addr::UNSPECIFIED),
                IpAddr::from(Ipv6Addr::UNSPECIFIED)
            ]
        );
        assert_eq!(nonfatal, 0);
        assert_eq!(plan(Some(" , ")).unwrap().0.len(), 2);
    }

    #[test]
    fn address_list_adds_loopback_and_skips_listed_loopback() {
        let (addrs, nonfatal) = plan(Some("10.1.2.3, 127.0.0.1,::1 fe80::1")).unwrap();
        let want: Vec<IpAddr> = vec![
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
            "10.1.2.3".parse().unwrap(),
            "fe80::1".parse().unwrap(),
        ];
        assert_eq!(addrs, want);
        assert_eq!(nonfatal, 2);
    }

    #[test]
    fn bad_address_is_an_error() {
        assert!(matches!(plan(Some("1.2.3")), Err(ListenError::BadAddress(a)) if a == "1.2.3"));
    }

    #[test]
    fn at_most_16_sockets() {
        let list: Vec<String> = (1..=14).map(|i| format!("10.0.0.{i}")).collect();
        assert!(matches!(
            plan(Some(&list.join(","))),
            Err(ListenError::TooMany)
        ));
        let list: Vec<String> = (1..=13).map(|i| format!("10.0.0.{i}")).collect();
        assert_eq!(plan(Some(&list.join(","))).unwrap().0.len(), 15);
    }

    #[test]
    fn local_peer_rule() {
        let p = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_local_peer(p("127.9.9.9:1"), None));
        assert!(is_local_peer(p("[::1]:1"), None));
        assert!(!is_local_peer(p("10.0.0.2:1"), Some(p("10.0.0.1:4369"))));
        assert!(is_local_peer(p("10.0.0.1:5"), Some(p("10.0.0.1:4369"))));
    }

    #[test]
    fn port_in_use_means_already_running() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        assert!(matches!(
            bind(port, Some("127.0.0.1")),
            Ok(Bound::AlreadyRunning(_))
        ));
    }
}
