//! IP address ranges for ACL rules (`ip:10.0.0.0/8`, `ip:::1`), as EMQX 4's `esockd_cidr`
//! matches them. An IPv4 peer seen through an IPv6 socket (`::ffff:10.1.2.3`) matches IPv4
//! ranges.

use std::net::IpAddr;
use std::str::FromStr;

/// An address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = &'static str;

    /// `ADDR` (a single host) or `ADDR/PREFIX`.
    fn from_str(s: &str) -> Result<Cidr, &'static str> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| "bad IP address")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| "bad prefix length")?,
            None => max,
        };
        if prefix > max {
            return Err("prefix length too long");
        }
        Ok(Cidr {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn ranges() {
        let Ok(net) = "10.1.0.0/16".parse::<Cidr>() else {
            panic!("parse")
        };
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let Ok(host) = "127.0.0.1".parse::<Cidr>() else {
            panic!("parse")
        };
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        let Ok(all) = "0.0.0.0/0".parse::<Cidr>() else {
            panic!("parse")
        };
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("::1")));
        let Ok(v6) = "fd00::/8".parse::<Cidr>() else {
            panic!("parse")
        };
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        for bad in ["10.0.0.0/33", "x", "::/129", "1.2.3.4/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
