//! CONNECT validation and CONNACK (MQTT 3.1.1 §3.1–3.2, MQTT 5.0 §3.1–3.2).
//!
//! Order of checks, as mosquitto's `handle_connect` and EMQX's `emqx_channel` do them: protocol
//! level (the codec), authentication method (we offer none: 0x8C), client identifier rules, Will
//! topic/QoS/retain, credentials through the [`super::AuthHook`]; then the broker is asked for the
//! session and [`Connection::attach_session`] answers with CONNACK and resumes delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::mqtt::codec::{
    ConnAck, Connect, MqttString, Packet, Properties, ProtocolVersion, QoS, ReasonCode,
};
use crate::router::TopicName;

use super::connection::{Action, ClientLimits, Connection, Phase};
use super::hooks::ClientInfo;
use super::state::{InflightState, SessionExpiry, SessionState};

/// MQTT 3.1 (§3.1 of the IBM spec) limits client identifiers to 23 characters.
const V31_MAX_CLIENT_ID: usize = 23;

impl Connection {
    pub(super) fn handle_connect(&mut self, c: Box<Connect>, now: Instant) {
        self.version = c.protocol;
        let v5 = c.protocol.is_v5();
        if v5 && c.properties.authentication_method.is_some() {
            return self.reject(ReasonCode::BadAuthenticationMethod, now);
        }
        let client_id = match self.check_client_id(&c) {
            Ok(id) => id,
            Err(rc) => return self.reject(rc, now),
        };
        if let Some(w) = &c.will {
            if TopicName::validate(w.topic.as_str()).is_err() {
                return self.reject(ReasonCode::TopicNameInvalid, now);
            }
            if w.qos > self.config.maximum_qos {
                return self.reject(ReasonCode::QosNotSupported, now);
            }
            if w.retain && !self.config.retain_available {
                return self.reject(ReasonCode::RetainNotSupported, now);
            }
        }
        let client = ClientInfo {
            client_id,
            username: c.username.clone(),
            peer: self.peer,
            protocol: c.protocol,
        };
        if let Err(rc) = self.auth.authenticate(&client, c.password.as_ref()) {
            tracing::info!(client = %client.client_id, reason = ?rc, "authentication refused");
            return self.reject(rc, now);
        }
        let p = &c.properties;
        self.requested_expiry = p.session_expiry_interval.unwrap_or(0);
        self.session_expiry = if v5 {
            SessionExpiry::from_interval(self.requested_expiry.min(self.config.max_session_expiry))
        } else if c.clean_start {
            SessionExpiry::Now
        } else {
            SessionExpiry::Never
        };
        self.limits = ClientLimits {
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            maximum_packet_size: p.maximum_packet_size.unwrap_or(u32::MAX),
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
        };
        let keep_alive = match self.config.server_keep_alive {
            Some(ka) if v5 => ka,
            _ => c.keep_alive,
        };
        self.keep_alive = (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive)));
        self.deadline = None;
        self.clean_start = c.clean_start;
        self.will = c.will.clone();
        self.client = Some(client.clone());
        self.phase = Phase::AwaitSession;
        self.actions.push_back(Action::OpenSession {
            client,
            clean_start: c.clean_start,
        });
        self.connect = Some(c);
    }

    /// Client identifier rules (MQTT 3.1.1 §3.1.3.1, MQTT 5.0 §3.1.3.1): an empty id gets one
    /// assigned, except on 3.1 and on 3.1.1 with Clean Session 0, which are refused (0x85).
    fn check_client_id(&self, c: &Connect) -> Result<MqttString, ReasonCode> {
        let id = &c.client_id;
        if id.is_empty() {
            let allowed = match c.protocol {
                ProtocolVersion::V3_1 => false,
                ProtocolVersion::V3_1_1 => c.clean_start,
                ProtocolVersion::V5 => true,
            };
            if !allowed {
                return Err(ReasonCode::ClientIdentifierNotValid);
            }
            let assigned = format!(
                "{}{:016x}",
                self.config.assigned_id_prefix,
                rand::random::<u64>()
            );
            return MqttString::try_from(assigned)
                .map_err(|_| ReasonCode::ClientIdentifierNotValid);
        }
        let max = match c.protocol {
            ProtocolVersion::V3_1 => V31_MAX_CLIENT_ID,
            _ => self.config.max_client_id_len,
        };
        if id.as_str().chars().count() > max {
            return Err(ReasonCode::ClientIdentifierNotValid);
        }
        Ok(id.clone())
    }

    /// Refuses the CONNECT with CONNACK `reason` and closes.
    fn reject(&mut self, reason: ReasonCode, now: Instant) {
        tracing::info!(peer = ?self.peer, ?reason, "CONNECT refused");
        self.send(Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties: Properties::default(),
        }));
        self.close(reason, false, false, now);
    }

    /// The broker's answer to [`Action::OpenSession`]: the client's previous session if it has
    /// one (ignored with Clean Start). Sends CONNACK, re-sends unacknowledged messages with DUP
    /// (MQTT 5.0 §4.4) and starts draining the queue.
    pub fn attach_session(&mut self, existing: Option<SessionState>, now: Instant) {
        if self.phase != Phase::AwaitSession {
            return;
        }
        let Some(client) = self.client.clone() else {
            return;
        };
        let (session, present) = match existing {
            Some(s) if !self.clean_start => (s, true),
            _ => (SessionState::new(client.client_id.clone()), false),
        };
        self.session = Some(session);
        let connack = self.connack_properties();
        self.send(Packet::ConnAck(ConnAck {
            session_present: present,
            reason: ReasonCode::Success,
            properties: connack,
        }));
        self.phase = Phase::Connected;
        self.connect = None;
        self.touch(now);
        self.redeliver(now);
        self.fill_window(now);
        for packet in std::mem::take(&mut self.early) {
            self.handle_packet(packet, now);
        }
    }

    fn connack_properties(&self) -> Properties {
        let mut p = Properties::default();
        let Some(c) = self.connect.as_deref() else {
            return p;
        };
        if !self.version.is_v5() {
            return p;
        }
        let cfg = &self.config;
        if c.client_id.is_empty() {
            p.assigned_client_identifier = self.client.as_ref().map(|c| c.client_id.clone());
        }
        let granted = match self.session_expiry {
            SessionExpiry::Now => 0,
            SessionExpiry::Never => u32::MAX,
            SessionExpiry::After(d) => u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
        };
        if granted != self.requested_expiry {
            p.session_expiry_interval = Some(granted);
        }
        if cfg.receive_maximum != u16::MAX {
            p.receive_maximum = Some(cfg.receive_maximum);
        }
        if cfg.maximum_qos != QoS::ExactlyOnce {
            p.maximum_qos = Some(cfg.maximum_qos.min(QoS::AtLeastOnce));
        }
        if !cfg.retain_available {
            p.retain_available = Some(false);
        }
        p.maximum_packet_size = Some(cfg.max_packet_size);
        if cfg.topic_alias_maximum > 0 {
            p.topic_alias_maximum = Some(cfg.topic_alias_maximum);
        }
        if let Some(ka) = cfg.server_keep_alive {
            p.server_keep_alive = Some(ka);
        }
        if c.properties.request_response_information == Some(true) {
            if let Some(info) = &cfg.response_information {
                p.response_information = MqttString::try_from(info.as_str()).ok();
            }
        }
        p
    }

    /// On resume, every unacknowledged PUBLISH is sent again with DUP set and every PUBREL
    /// again, in the original order (MQTT 3.1.1 §4.4, MQTT 5.0 §4.4).
    fn redeliver(&mut self, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let pending: Vec<_> = session.inflight.iter().cloned().collect();
        for f in pending {
            match f.state {
                InflightState::AwaitAck => {
                    let msg = Arc::clone(&f.message);
                    self.send_publish(&msg, f.qos, f.retain, f.identifier, f.packet_id, true, now);
                }
                InflightState::AwaitComp => {
                    self.send(Packet::PubRel(crate::mqtt::codec::Ack::new(f.packet_id)));
                }
            }
        }
    }
}
