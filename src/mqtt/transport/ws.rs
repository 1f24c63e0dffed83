//! MQTT over WebSocket (MQTT 5.0 §6): the server handshake (path, `mqtt` subprotocol) and
//! [`WsStream`], which turns binary WebSocket messages into a plain byte stream. MQTT packets may
//! span messages or share one (§6.0.0), so the codec's frame check runs over the bytes as for
//! TCP. A text message is a protocol error: the connection is closed ([MQTT-6.0.0-1]).
//!
//! Subprotocols accepted: `mqtt` (MQTT 3.1.1 and 5.0) and the older names EMQX 4 accepts
//! (`mqttv3.1`, `mqtt-v3`, `mqtt-v3.1.1`, `mqtt-v5`). Without one the upgrade is refused unless
//! `fail_if_no_subprotocol` is off (EMQX 4's `mqtt.ws.fail_if_no_subprotocol`, default on).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Subprotocol names we answer to, preferred first.
pub const SUBPROTOCOLS: [&str; 5] = ["mqtt", "mqttv3.1", "mqtt-v3", "mqtt-v3.1.1", "mqtt-v5"];

/// WebSocket listener settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct WsConfig {
    /// Upgrade path (EMQX `listener.ws.external.mqtt_path`, `/mqtt`).
    pub path: String,
    /// Refuse clients that name no subprotocol.
    pub fail_if_no_subprotocol: bool,
    /// Largest WebSocket message accepted; MQTT's own maximum packet size is checked above.
    pub max_message_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            path: "/mqtt".to_owned(),
            fail_if_no_subprotocol: true,
            max_message_size: 1 << 20,
        }
    }
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// Picks our answer to the client's `Sec-WebSocket-Protocol` list.
fn choose_subprotocol(req: &Request) -> Option<&'static str> {
    let offered: Vec<&str> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
        .copied()
}

/// Runs the server side of the upgrade on `stream`.
pub async fn accept<S>(stream: S, cfg: &WsConfig) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let callback = |req: &Request, mut resp: Response| {
        if req.uri().path() != cfg.path {
            return Err(refuse(StatusCode::NOT_FOUND, "no MQTT endpoint here"));
        }
        let offered_any = req.headers().contains_key("sec-websocket-protocol");
        match choose_subprotocol(req) {
            Some(p) => {
                resp.headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static(p));
                Ok(resp)
            }
            None if offered_any || cfg.fail_if_no_subprotocol => {
                Err(refuse(StatusCode::BAD_REQUEST, "subprotocol mqtt required"))
            }
            None => Ok(resp),
        }
    };
    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(cfg.max_message_size);
    ws_cfg.max_frame_size = Some(cfg.max_message_size);
    let inner =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_cfg)).await?;
    Ok(WsStream::new(inner))
}

/// A WebSocket connection read and written as bytes: each write is one binary message.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    pending: Bytes,
}

impl<S> WsStream<S> {
    /// Wraps an established WebSocket (either side).
    pub fn new(inner: WebSocketStream<S>) -> Self {
        WsStream {
            inner,
            pending: Bytes::new(),
        }
    }
}

fn to_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket closed")
        }
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = Bytes::from(data),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on an MQTT WebSocket",
                    )))
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let inner = &mut self.get_mut().inner;
        ready!(Pin::new(&mut *inner).poll_ready(cx)).map_err(to_io)?;
        Pin::new(inner)
            .start_send(Message::Binary(buf.to_vec()))
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(to_io)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().inner).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(to_io(e))),
        }
    }
}
