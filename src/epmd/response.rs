//! epmd responses: written byte for byte as `do_request` in `erts/epmd/src/epmd_srv.c` writes them,
//! and parsed as `lib/kernel/src/erl_epmd.erl` parses them.

use super::wire::{self, get_u16};

/// The creation C epmd sends with a refused registration.
pub const REFUSED_CREATION: u32 = 99;

/// A registered node as `PORT2_RESP` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Distribution listen port.
    pub port: u16,
    /// 77 normal, 72 hidden.
    pub node_type: u8,
    /// 0 for TCP/IPv4.
    pub protocol: u8,
    /// Highest distribution version.
    pub highvsn: u16,
    /// Lowest distribution version.
    pub lowvsn: u16,
    /// The registered name.
    pub name: String,
    /// Extra data given at registration.
    pub extra: Vec<u8>,
}

/// Why a response could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Fewer bytes than the response needs.
    #[error("truncated epmd response")]
    Truncated,
    /// The first byte is not the expected response code.
    #[error("unexpected epmd response code {0}")]
    UnexpectedCode(u8),
    /// A name in the response is not UTF-8.
    #[error("epmd response holds a name that is not UTF-8")]
    BadName,
    /// A `NAMES_RESP` line is not `name X at port N`.
    #[error("malformed NAMES line: {0:?}")]
    BadNamesLine(String),
}

/// `ALIVE2_X_RESP` (`v Result:8 Creation:32`) for highvsn >= 6, else `ALIVE2_RESP`
/// (`y Result:8 Creation:16`).
pub fn encode_alive2(highvsn: u16, ok: bool, creation: u32, out: &mut Vec<u8>) {
    if highvsn >= 6 {
        out.push(wire::ALIVE2_X_RESP);
        out.push(u8::from(!ok));
        out.extend_from_slice(&creation.to_be_bytes());
    } else {
        out.push(wire::ALIVE2_RESP);
        out.push(u8::from(!ok));
        out.extend_from_slice(&(creation as u16).to_be_bytes());
    }
}

/// Result of a registration as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive2Resp {
    /// 0 on success.
    pub result: u8,
    /// The node's creation (99 on failure).
    pub creation: u32,
}

/// Parse either registration answer; `None` while more bytes are needed.
pub fn decode_alive2(buf: &[u8]) -> Result<Option<Alive2Resp>, ResponseError> {
    let Some(&code) = buf.first() else {
        return Ok(None);
    };
    let len = match code {
        wire::ALIVE2_X_RESP => 6,
        wire::ALIVE2_RESP => 4,
        other => return Err(ResponseError::UnexpectedCode(other)),
    };
    if buf.len() < len {
        return Ok(None);
    }
    let creation = if len == 6 {
        u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]])
    } else {
        u32::from(u16::from_be_bytes([buf[2], buf[3]]))
    };
    Ok(Some(Alive2Resp {
        result: buf[1],
        creation,
    }))
}

/// `PORT2_RESP` for a found node: `w 0 Port:16 Type Proto High:16 Low:16 NLen:16 Name ELen:16 Extra`.
pub fn encode_port2_found(node: &NodeEntry, out: &mut Vec<u8>) {
    out.push(wire::PORT2_RESP);
    out.push(0);
    out.extend_from_slice(&node.port.to_be_bytes());
    out.push(node.node_type);
    out.push(node.protocol);
    out.extend_from_slice(&node.highvsn.to_be_bytes());
    out.extend_from_slice(&node.lowvsn.to_be_bytes());
    out.extend_from_slice(&(node.name.len() as u16).to_be_bytes());
    out.extend_from_slice(node.name.as_bytes());
    out.extend_from_slice(&(node.extra.len() as u16).to_be_bytes());
    out.extend_from_slice(&node.extra);
}

/// `PORT2_RESP` for an unknown name: `w 1`.
pub const PORT2_NOT_FOUND: [u8; 2] = [wire::PORT2_RESP, 1];

/// Parse a complete `PORT2_RESP` (the server closes after it, so `buf` is all of it).
pub fn decode_port2(buf: &[u8]) -> Result<Option<NodeEntry>, ResponseError> {
    let (&code, rest) = buf.split_first().ok_or(ResponseError::Truncated)?;
    if code != wire::PORT2_RESP {
        return Err(ResponseError::UnexpectedCode(code));
    }
    match rest.first() {
        None => return Err(ResponseError::Truncated),
        Some(0) => {}
        Some(_) => return Ok(None),
    }
    let u16_at = |at| get_u16(buf, at).ok_or(ResponseError::Truncated);
    let port = u16_at(2)?;
    let node_type = *buf.get(4).ok_or(ResponseError::Truncated)?;
    let protocol = *buf.get(5).ok_or(ResponseError::Truncated)?;
    let highvsn = u16_at(6)?;
    let lowvsn = u16_at(8)?;
    let nlen = usize::from(u16_at(10)?);
    let name = buf.get(12..12 + nlen).ok_or(ResponseError::Truncated)?;
    let name = std::str::from_utf8(name)
        .map_err(|_| ResponseError::BadName)?
        .to_owned();
    let elen = usize::from(u16_at(12 + nlen)?);
    let extra = buf
        .get(14 + nlen..14 + nlen + elen)
        .ok_or(ResponseError::Truncated)?
        .to_vec();
    Ok(Some(NodeEntry {
        port,
        node_type,
        protocol,
        highvsn,
        lowvsn,
        name,
        extra,
    }))
}

/// The 4-byte header of `NAMES_RESP` and `DUMP_RESP`: epmd's own port as a 32-bit integer.
pub fn encode_port_header(port: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&u32::from(port).to_be_bytes());
}

/// One `NAMES_RESP` line: `name <Name> at port <Port>\n`.
pub fn encode_names_line(name: &str, port: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(b"name ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" at port ");
    out.extend_from_slice(port.to_string().as_bytes());
    out.push(b'\n');
}

/// One `DUMP_RESP` line for a live node, NUL included: `active name     <N> at port P, fd = F\n\0`.
pub fn encode_dump_active(name: &str, port: u16, fd: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"active name     <");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(format!("> at port {port}, fd = {fd}\n\0").as_bytes());
}

/// One `DUMP_RESP` line for a remembered name: `old/unused name <N>, port = P, fd = F \n\0`.
pub fn encode_dump_unused(name: &str, port: u16, fd: i32, out: &mut Vec<u8>) {
    out.extend_from_slice(b"old/unused name <");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(format!(">, port = {port}, fd = {fd} \n\0").as_bytes());
}

/// Split a complete `NAMES_RESP` into epmd's port and `(name, port)` pairs.
pub fn decode_names(buf: &[u8]) -> Result<(u16, Vec<(String, u16)>), ResponseError> {
    let header = buf.get(..4).ok_or(ResponseError::Truncated)?;
    let epmd_port = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u16;
    let text = std::str::from_utf8(&buf[4..]).map_err(|_| ResponseError::BadName)?;
    let mut names = Vec::new();
    for line in text.split_terminator('\n') {
        let bad = || ResponseError::BadNamesLine(line.to_owned());
        let rest = line.strip_prefix("name ").ok_or_else(bad)?;
        let (name, port) = rest.rsplit_once(" at port ").ok_or_else(bad)?;
        let port = port.parse::<u16>().map_err(|_| bad())?;
        names.push((name.to_owned(), port));
    }
    Ok((epmd_port, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive2_x_resp_for_version_6() {
        let mut out = Vec::new();
        encode_alive2(6, true, 0x0102_0304, &mut out);
        assert_eq!(out, vec![118, 0, 1, 2, 3, 4]);
        assert_eq!(
            decode_alive2(&out),
            Ok(Some(Alive2Resp {
                result: 0,
                creation: 0x0102_0304
            }))
        );
    }

    #[test]
    fn alive2_resp_for_old_versions_truncates_to_16_bits() {
        let mut out = Vec::new();
        encode_alive2(5, true, 3, &mut out);
        assert_eq!(out, vec![121, 0, 0, 3]);
        assert_eq!(decode_alive2(&out[..3]), Ok(None));
    }

    #[test]
    fn alive2_refusal_is_result_1_creation_99() {
        let mut out = Vec::new();
        encode_alive2(6, false, REFUSED_CREATION, &mut out);
        assert_eq!(out, vec![118, 1, 0, 0, 0, 99]);
        let mut out = Vec::new();
        encode_alive2(0, false, REFUSED_CREATION, &mut out);
        assert_eq!(out, vec![121, 1, 0, 99]);
    }

    #[test]
    fn port2_found_layout_and_round_trip() {
        let node = NodeEntry {
            port: 0x1234,
            node_type: 77,
            protocol: 0,
            highvsn: 6,
            lowvsn: 5,
            name: "ab".into(),
            extra: vec![9],
        };
        let mut out = Vec::new();
        encode_port2_found(&node, &mut out);
        assert_eq!(
            out,
            vec![119, 0, 0x12, 0x34, 77, 0, 0, 6, 0, 5, 0, 2, b'a', b'b', 0, 1, 9]
        );
        assert_eq!(decode_port2(&out), Ok(Some(node)));
        assert_eq!(decode_port2(&out[..15]), Err(ResponseError::Truncated));
    }

    #[test]
    fn port2_not_found() {
        assert_eq!(decode_port2(&PORT2_NOT_FOUND), Ok(None));
        assert_eq!(decode_port2(&[119]), Err(ResponseError::Truncated));
        assert_eq!(decode_port2(&[1, 0]), Err(ResponseError::UnexpectedCode(1)));
    }

    #[test]
    fn names_lines_exact_bytes() {
        let mut out = Vec::new();
        encode_port_header(4369, &mut out);
        encode_names_line("a", 6369, &mut out);
        encode_names_line("bé", 7, &mut out);
        assert_eq!(
            out,
            b"\0\0\x11\x11name a at port 6369\nname b\xc3\xa9 at port 7\n".to_vec()
        );
        assert_eq!(
            decode_names(&out),
            Ok((4369, vec![("a".into(), 6369), ("bé".into(), 7)]))
        );
    }

    #[test]
    fn names_with_spaces_in_name_parse() {
        let mut out = Vec::new();
        encode_port_header(1, &mut out);
        encode_names_line("x at port y", 2, &mut out);
        assert_eq!(decode_names(&out), Ok((1, vec![("x at port y".into(), 2)])));
    }

    #[test]
    fn names_garbage_line_is_error() {
        assert!(matches!(
            decode_names(b"\0\0\0\x01hello\n"),
            Err(ResponseError::BadNamesLine(_))
        ));
        assert_eq!(decode_names(b"\0\0"), Err(ResponseError::Truncated));
    }

    #[test]
    fn dump_lines_exact_bytes_with_nul() {
        let mut out = Vec::new();
        encode_dump_active("foo", 6369, 7, &mut out);
        encode_dump_unused("bar", 1, 8, &mut out);
        assert_eq!(
            out,
            b"active name     <foo> at port 6369, fd = 7\n\0old/unused name <bar>, port = 1, fd = 8 \n\0"
                .to_vec()
        );
    }
}
