//! Our handshake against `erl_dist` 0.8, an independent Rust implementation of the protocol
//! (futures-io, version 6 only): both directions, and a wrong cookie.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use beamq::dist::connection::NodeDown;
use beamq::dist::cookie::Cookie;
use beamq::dist::handshake::HandshakeError;
use beamq::dist::nodename::{NameKind, NodeName};
use beamq::dist::setup::{self, LocalNode, SetupError};
use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus, ServerSideHandshake};
use erl_dist::node::{Creation, LocalNode as ErlDistNode};
use tokio::io::ReadBuf;
use tokio::net::{TcpListener, TcpStream};

/// futures-io view of a tokio stream (erl_dist speaks futures-io).
struct Compat(TcpStream);

impl futures::io::AsyncRead for Compat {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut rb = ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::io::AsyncWrite for Compat {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

fn ours(name: &str, cookie: &str) -> LocalNode {
    let name = NodeName::parse(name, NameKind::Long).unwrap_or_else(|e| panic!("{e}"));
    LocalNode::new(
        name,
        1234,
        Cookie::new(cookie).unwrap_or_else(|e| panic!("{e}")),
    )
}

fn theirs(name: &str) -> ErlDistNode {
    ErlDistNode::new(
        name.parse().unwrap_or_else(|e| panic!("{e:?}")),
        Creation::random(),
    )
}

#[tokio::test]
async fn erl_dist_client_connects_to_our_acceptor() {
    let node = ours("beamq@127.0.0.1", "cookie");
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let client = tokio::spawn(async move {
        let s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut hs = ClientSideHandshake::new(Compat(s), theirs("rs@127.0.0.1"), "cookie");
        let status = hs
            .execute_send_name(6)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, HandshakeStatus::Ok);
        let (conn, peer) = hs
            .execute_rest(true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peer.name.to_string(), "beamq@127.0.0.1");
        assert_eq!(peer.creation.map(|c| c.get()), Some(1234));
        conn
    });
    let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
    let mut conn = setup::accept(s, &node)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.peer.name, "rs@127.0.0.1");
    assert!(
        !conn.peer.flags.is_published(),
        "erl_dist does not publish itself: hidden"
    );
    let stream = client.await.unwrap_or_else(|e| panic!("{e}"));
    drop(stream);
    let down = tokio::time::timeout(Duration::from_secs(5), conn.down.wait())
        .await
        .ok();
    assert_eq!(down, Some(NodeDown::ConnectionClosed));
}

#[tokio::test]
async fn our_initiator_connects_to_erl_dist_server() {
    let node = ours("beamq@127.0.0.1", "cookie");
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let mut hs = ServerSideHandshake::new(Compat(s), theirs("srv@127.0.0.1"), "cookie");
        let name = hs
            .execute_recv_name()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.map(|n| n.to_string()), Some("beamq@127.0.0.1".into()));
        let (conn, peer) = hs
            .execute_rest(HandshakeStatus::Ok)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(peer.creation.map(|c| c.get()), Some(1234));
        conn
    });
    let conn = setup::connect(addr, &node, "srv@127.0.0.1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(conn.peer.name, "srv@127.0.0.1");
    let _stream = server.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(node.pending.is_up("srv@127.0.0.1"));
}

#[tokio::test]
async fn erl_dist_with_another_cookie_is_refused() {
    let node = ours("beamq@127.0.0.1", "cookie");
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let client = tokio::spawn(async move {
        let s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut hs = ClientSideHandshake::new(Compat(s), theirs("rs@127.0.0.1"), "other");
        let _ = hs.execute_send_name(6).await;
        hs.execute_rest(true).await.is_ok()
    });
    let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
    let r = setup::accept(s, &node).await;
    assert!(
        matches!(
            r,
            Err(SetupError::Handshake {
                source: HandshakeError::BadCookie { .. },
                ..
            })
        ),
        "got {r:?}"
    );
    assert_eq!(client.await.ok(), Some(false));
}
