//! [`Transport`]: the one byte stream type every listener yields, so the connection loop above
//! is written once for TCP, TLS and WebSocket. An enum, not a `Box<dyn>`: static dispatch on
//! every read and write, and no allocation per connection beyond the TLS/WS state itself.

use std::io::{self, Read as _};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::ws::WsStream;

/// A client connection's byte stream, whatever the listener.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP (`listeners.tcp`, 1883).
    Tcp(TcpStream),
    /// TLS over TCP (`listeners.ssl`, 8883).
    Tls(Box<TlsStream<TcpStream>>),
    /// MQTT over WebSocket binary messages (`listeners.ws`, 8083, path `/mqtt`).
    Ws(Box<WsStream<TcpStream>>),
}

impl Transport {
    /// The protocol name for logs and `$SYS` (`tcp`, `ssl`, `ws`, as EMQX names listeners).
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Tcp(_) => "tcp",
            Transport::Tls(_) => "ssl",
            Transport::Ws(_) => "ws",
        }
    }
}

impl Transport {
    /// Reads what a plain TCP socket already holds, without waiting for readiness: a client
    /// sends CONNECT right behind its TCP handshake, so it is usually in by the time the
    /// connection is accepted, and reading it at once saves the new connection a trip through
    /// the event loop (tokio knows a fresh socket as not readable until epoll reports it).
    /// Reads at most `max` bytes; `Ok(None)` when nothing is there yet, and always for TLS and
    /// WebSocket (their handshake has read already).
    pub fn read_now(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<Option<usize>> {
        let Transport::Tcp(s) = self else {
            return Ok(None);
        };
        let start = buf.len();
        buf.resize(start + max, 0);
        let r = (&*socket2::SockRef::from(&*s)).read(&mut buf[start..]);
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(start);
                return match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                    _ => Err(e),
                };
            }
        };
        buf.truncate(start + n);
        Ok(Some(n))
    }

    /// Reads into `buf`, reserving `reserve` bytes of room only once the socket has data: a
    /// plain TCP connection waits for readiness with no buffer, so an idle connection holds
    /// none (the broker drops an emptied buffer before waiting). TLS and WebSocket streams
    /// buffer inside their own state and read as usual.
    pub async fn read_ready(&mut self, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => loop {
                s.readable().await?;
                if buf.capacity() - buf.len() < reserve {
                    buf.reserve(reserve);
                }
                match s.try_read_buf(buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Readiness was stale (tokio clears it only on `WouldBlock`, so the
                        // first wait after a read returns at once): give the room back before
                        // waiting, or an idle connection would hold `reserve` bytes it never
                        // fills.
                        if buf.is_empty() {
                            *buf = BytesMut::new();
                        }
                        continue;
                    }
                    r => return r,
                }
            },
            _ => {
                if buf.capacity() - buf.len() < reserve {
                    buf.reserve(reserve);
                }
                self.read_buf(buf).await
            }
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Transport::Ws(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
            Transport::Ws(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Ws(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt as _;

    /// What is in the socket is read without waiting; an empty socket is no error.
    #[tokio::test]
    async fn read_now_takes_what_is_there() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let mut t = Transport::Tcp(server);
        let mut buf = BytesMut::new();
        assert!(t.read_now(&mut buf, 512)?.is_none());
        assert!(buf.is_empty());
        client.write_all(&[0x10, 0x00, 0xC0]).await?;
        // Loopback delivers at once, but give the kernel a moment all the same.
        let mut got = None;
        for _ in 0..100 {
            got = t.read_now(&mut buf, 2)?;
            if got.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(got, Some(2));
        assert_eq!(&buf[..], &[0x10, 0x00]);
        assert_eq!(t.read_now(&mut buf, 512)?, Some(1));
        assert_eq!(&buf[..], &[0x10, 0x00, 0xC0]);
        drop(client);
        let mut eof = None;
        for _ in 0..100 {
            eof = t.read_now(&mut buf, 512)?;
            if eof.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(eof, Some(0));
        Ok(())
    }

    /// After a read, tokio still reports the socket readable; the next wait must not keep the
    /// reserved room while it finds nothing and waits (an idle connection holds no buffer).
    #[tokio::test]
    async fn idle_wait_holds_no_read_buffer() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        let mut t = Transport::Tcp(server);
        client.write_all(&[0xC0, 0x00]).await?;
        let mut buf = BytesMut::new();
        assert_eq!(t.read_ready(&mut buf, 8192).await?, 2);
        assert!(buf.capacity() >= 8192);
        buf.clear();
        let waited = tokio::time::timeout(Duration::from_millis(50), t.read_ready(&mut buf, 8192));
        assert!(waited.await.is_err(), "nothing was sent");
        assert_eq!(buf.capacity(), 0);
        client.write_all(&[0xC0, 0x00]).await?;
        assert_eq!(t.read_ready(&mut buf, 8192).await?, 2);
        assert_eq!(&buf[..], &[0xC0, 0x00]);
        Ok(())
    }
}
