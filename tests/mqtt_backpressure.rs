//! End-to-end: a QoS 1 publisher faster than its subscriber is held back (backpressure), not
//! answered by disconnecting the subscriber, as long as the subscriber catches up within the
//! broker's slow-consumer grace. The broker's delivery channel is made tiny so that it fills
//! as soon as the subscriber stops reading.

use std::net::SocketAddr;
use std::time::Duration;

use beamq::mqtt::broker::{Broker, BrokerConfig};
use beamq::mqtt::session::SessionConfig;
use beamq::mqtt::transport::{ListenerConfig, ListenerKind};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::time::timeout;

const MESSAGES: usize = 3000;
const PAYLOAD: usize = 8 * 1024;

fn options(id: &str, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

#[tokio::test]
async fn qos1_publisher_waits_for_a_paused_subscriber() {
    let b = Broker::new(BrokerConfig {
        session: SessionConfig {
            max_queue_len: 100_000,
            ..SessionConfig::default()
        },
        channel_capacity: 4,
        sys_interval: None,
        ..Default::default()
    });
    let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
    let port = b.listen(&cfg).await.unwrap().port();

    let (sub, mut sub_el) = AsyncClient::new(options("bp-sub", port), 10);
    sub.subscribe("bp/t", QoS::AtLeastOnce).await.unwrap();
    timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = sub_el.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .unwrap();

    let (publ, mut pub_el) = AsyncClient::new(options("bp-pub", port), 10);
    let pub_task = tokio::spawn(async move {
        let payload = vec![7u8; PAYLOAD];
        let sender = tokio::spawn(async move {
            for _ in 0..MESSAGES {
                if publ
                    .publish("bp/t", QoS::AtLeastOnce, false, payload.clone())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            std::future::pending::<()>().await;
        });
        while pub_el.poll().await.is_ok() {}
        sender.abort();
    });

    // The subscriber stops reading while ~24 MB are published: its socket, then the broker's
    // output buffer, then the 4-slot channel fill up.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut received = 0;
    let got = timeout(Duration::from_secs(30), async {
        while received < MESSAGES {
            match sub_el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    assert_eq!(p.payload.len(), PAYLOAD);
                    received += 1;
                }
                Ok(_) => {}
                Err(e) => panic!("subscriber lost its connection after {received}: {e}"),
            }
        }
    })
    .await;
    pub_task.abort();
    assert!(got.is_ok(), "only {received} of {MESSAGES} arrived");
    assert_eq!(received, MESSAGES);
}
