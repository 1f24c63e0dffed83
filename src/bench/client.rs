//! One bench client's connection: TCP from a chosen source address, CONNECT, CONNACK, and
//! helpers to encode packets into a write buffer. Built on our codec and tokio only.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpSocket, TcpStream};

use crate::mqtt::codec::{Connect, MqttString, Packet, ProtocolVersion, ReasonCode};
use crate::mqtt::transport::{read_packet, ReadError};

/// Largest packet a bench client accepts.
pub const MAX_PACKET: usize = 1 << 20;
/// Deadline for TCP connect + CONNACK.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client stopped.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Reading or decoding failed.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The broker refused the CONNECT.
    #[error("CONNACK {0:?}")]
    Refused(ReasonCode),
    /// Something other than CONNACK came first.
    #[error("expected CONNACK, got {0:?}")]
    NoConnAck(crate::mqtt::codec::PacketType),
    /// The broker closed the connection.
    #[error("closed by the broker")]
    Closed,
    /// Connect or CONNACK took too long.
    #[error("connect timed out")]
    Timeout,
    /// A string option is not a valid MQTT string.
    #[error("invalid client id, user name or topic")]
    BadString,
}

/// What a client needs to connect.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    /// Broker address.
    pub broker: SocketAddr,
    /// Source address to bind, if any.
    pub source: Option<IpAddr>,
    /// Protocol.
    pub version: ProtocolVersion,
    /// Client id.
    pub client_id: String,
    /// Keep alive (s).
    pub keepalive: u16,
    /// Clean session / start.
    pub clean: bool,
    /// Credentials.
    pub username: Option<String>,
    /// Credentials.
    pub password: Option<String>,
}

/// A connected client: the stream and its read buffer.
#[derive(Debug)]
pub struct Client {
    /// Socket.
    pub stream: TcpStream,
    /// Bytes read but not yet decoded.
    pub rbuf: BytesMut,
    /// Protocol.
    pub version: ProtocolVersion,
    /// The broker's Receive Maximum from CONNACK (v5; 65,535 when absent): how many QoS 1/2
    /// publishes it accepts unacknowledged (MQTT 5.0 §3.2.2.3.3).
    pub receive_maximum: u16,
}

fn mqtt_str(s: &str) -> Result<MqttString, ClientError> {
    MqttString::try_from(s).map_err(|_| ClientError::BadString)
}

impl Client {
    /// Connects and completes CONNECT/CONNACK; returns the client and the time it took.
    pub async fn connect(spec: &ConnectSpec) -> Result<(Client, Duration), ClientError> {
        let start = Instant::now();
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_inner(spec))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map(|c| (c, start.elapsed()))
    }

    async fn connect_inner(spec: &ConnectSpec) -> Result<Client, ClientError> {
        let socket = if spec.broker.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = spec.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(spec.broker).await?;
        stream.set_nodelay(true)?;
        let connect = Connect {
            protocol: spec.version,
            clean_start: spec.clean,
            keep_alive: spec.keepalive,
            properties: Default::default(),
            client_id: mqtt_str(&spec.client_id)?,
            will: None,
            username: spec.username.as_deref().map(mqtt_str).transpose()?,
            password: spec
                .password
                .as_ref()
                .map(|p| Bytes::copy_from_slice(p.as_bytes())),
        };
        let mut c = Client {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            version: spec.version,
            receive_maximum: u16::MAX,
        };
        let mut out = BytesMut::new();
        encode(&Packet::Connect(Box::new(connect)), spec.version, &mut out);
        c.stream.write_all(&out).await?;
        match c.next_packet().await? {
            Packet::ConnAck(ack) if ack.reason == ReasonCode::Success => {
                c.receive_maximum = ack.properties.receive_maximum.unwrap_or(u16::MAX);
                Ok(c)
            }
            Packet::ConnAck(ack) => Err(ClientError::Refused(ack.reason)),
            p => Err(ClientError::NoConnAck(p.packet_type())),
        }
    }

    /// Reads the next packet; EOF is [`ClientError::Closed`].
    pub async fn next_packet(&mut self) -> Result<Packet, ClientError> {
        read_packet(&mut self.stream, &mut self.rbuf, self.version, MAX_PACKET)
            .await?
            .ok_or(ClientError::Closed)
    }

    /// Decodes a packet already in the read buffer, without reading.
    pub fn buffered_packet(&mut self) -> Result<Option<Packet>, ClientError> {
        Packet::decode(&mut self.rbuf, self.version, MAX_PACKET)
            .map_err(|e| ClientError::Read(ReadError::Codec(e)))
    }
}

/// Appends `p` to `out`. Packets built here from valid parts always encode; a failure would be a
/// bench bug, reported and skipped rather than panicking.
pub fn encode(p: &Packet, v: ProtocolVersion, out: &mut BytesMut) {
    if let Err(e) = p.write(v, out) {
        tracing::error!("bench: cannot encode {:?}: {e}", p.packet_type());
    }
}

/// Microseconds since the Unix epoch: what publishers put in the first 8 payload bytes.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The latency a received payload carries, if it starts with a plausible timestamp.
pub fn payload_latency(payload: &[u8], now: u64) -> Option<u64> {
    let ts = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    // Anything from the future or older than an hour is not one of our timestamps.
    (ts <= now && now - ts < 3_600_000_000).then(|| now - ts)
}
