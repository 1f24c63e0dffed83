//! End-to-end: the broker served on 127.0.0.1 port 0, driven by rumqttc (MQTT 3.1.1 and 5.0).

use std::net::SocketAddr;
use std::time::Duration;

use beamq::mqtt::broker::{Broker, BrokerConfig};
use beamq::mqtt::transport::{ListenerConfig, ListenerKind};
use beamq::router::ShareStrategy;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

/// What a client's event loop reports.
#[derive(Debug)]
enum Ev {
    ConnAck(bool),
    SubAck,
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        qos: QoS,
    },
    Error,
}

struct Client {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Ev>,
    task: JoinHandle<()>,
    session_present: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn broker(strategy: ShareStrategy) -> u16 {
    let b = Broker::new(BrokerConfig {
        share_strategy: strategy,
        sys_interval: None,
        ..Default::default()
    });
    let cfg = ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), ListenerKind::Tcp);
    b.listen(&cfg).await.unwrap().port()
}

async fn connect_with(opts: MqttOptions) -> Client {
    let (client, mut el) = AsyncClient::new(opts, 100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let ev = match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(c))) => Ev::ConnAck(c.session_present),
                Ok(Event::Incoming(Packet::SubAck(_))) => Ev::SubAck,
                Ok(Event::Incoming(Packet::Publish(p))) => Ev::Publish {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                    retain: p.retain,
                    qos: p.qos,
                },
                Ok(_) => continue,
                Err(_) => {
                    let _ = tx.send(Ev::Error);
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    let first = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
    let Ev::ConnAck(session_present) = first else {
        panic!("expected CONNACK, got {first:?}");
    };
    Client {
        client,
        rx,
        task,
        session_present,
    }
}

async fn connect(port: u16, id: &str) -> Client {
    connect_with(MqttOptions::new(id, "127.0.0.1", port)).await
}

impl Client {
    async fn next(&mut self) -> Ev {
        timeout(WAIT, self.rx.recv()).await.unwrap().unwrap()
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            if let Ev::SubAck = self.next().await {
                return;
            }
        }
    }

    async fn publication(&mut self) -> (String, Vec<u8>, bool, QoS) {
        loop {
            if let Ev::Publish {
                topic,
                payload,
                retain,
                qos,
            } = self.next().await
            {
                return (topic, payload, retain, qos);
            }
        }
    }

    /// Nothing published to this client within `d`.
    async fn quiet(&mut self, d: Duration) {
        while let Ok(Some(ev)) = timeout(d, self.rx.recv()).await {
            assert!(!matches!(ev, Ev::Publish { .. }), "unexpected {ev:?}");
        }
    }
}

#[tokio::test]
async fn qos_0_1_2_round_trip() {
    let port = broker(ShareStrategy::Random).await;
    let mut sub = connect(port, "sub").await;
    sub.subscribe("t/#", QoS::ExactlyOnce).await;
    let publisher = connect(port, "pub").await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let topic = format!("t/{i}");
        publisher
            .client
            .publish(&topic, qos, false, vec![i as u8; 3])
            .await
            .unwrap();
        let (t, p, retain, got) = sub.publication().await;
        assert_eq!((t, p, retain, got), (topic, vec![i as u8; 3], false, qos));
    }
}

#[tokio::test]
async fn retained_set_and_clear() {
    let port = broker(ShareStrategy::Random).await;
    let publisher = connect(port, "rp").await;
    publisher
        .client
        .publish("r/a", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    let mut s1 = connect(port, "rs1").await;
    // The PUBACK may trail the subscribe; wait until the store holds it.
    let mut got = None;
    for _ in 0..50 {
        s1.subscribe("r/+", QoS::AtLeastOnce).await;
        if let Ok(Some(Ev::Publish {
            topic,
            payload,
            retain,
            ..
        })) = timeout(Duration::from_millis(100), s1.rx.recv()).await
        {
            got = Some((topic, payload, retain));
            break;
        }
    }
    assert_eq!(got, Some(("r/a".into(), b"kept".to_vec(), true)));
    publisher
        .client
        .publish("r/a", QoS::AtLeastOnce, true, Vec::<u8>::new())
        .await
        .unwrap();
    // s1 gets the clearing publish live, then a fresh subscriber gets nothing.
    let (t, p, _, _) = s1.publication().await;
    assert_eq!((t.as_str(), p.len()), ("r/a", 0));
    let mut s2 = connect(port, "rs2").await;
    s2.subscribe("r/#", QoS::AtLeastOnce).await;
    s2.quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn will_on_abrupt_disconnect() {
    let port = broker(ShareStrategy::Random).await;
    let mut watcher = connect(port, "watcher").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;
    let mut opts = MqttOptions::new("dying", "127.0.0.1", port);
    opts.set_last_will(LastWill::new("will/dying", "gone", QoS::AtLeastOnce, false));
    let dying = connect_with(opts).await;
    drop(dying); // aborts the event loop: the socket closes without DISCONNECT
    let (t, p, _, _) = watcher.publication().await;
    assert_eq!((t.as_str(), p.as_slice()), ("will/dying", &b"gone"[..]));

    // A clean DISCONNECT sends no Will.
    let mut opts = MqttOptions::new("polite", "127.0.0.1", port);
    opts.set_last_will(LastWill::new(
        "will/polite",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let mut polite = connect_with(opts).await;
    polite.client.disconnect().await.unwrap();
    let _ = polite.next().await;
    watcher.quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn persistent_session_gets_queued_messages() {
    let port = broker(ShareStrategy::Random).await;
    let persistent = || {
        let mut o = MqttOptions::new("keeper", "127.0.0.1", port);
        o.set_clean_session(false);
        o
    };
    let mut k = connect_with(persistent()).await;
    k.subscribe("q/#", QoS::AtLeastOnce).await;
    k.client.disconnect().await.unwrap();
    let _ = k.next().await;
    drop(k);
    let publisher = connect(port, "qp").await;
    for i in 0..3u8 {
        publisher
            .client
            .publish("q/x", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut k = connect_with(persistent()).await;
    assert!(k.session_present);
    for i in 0..3u8 {
        let (t, p, _, _) = k.publication().await;
        assert_eq!((t.as_str(), p), ("q/x", vec![i]));
    }
}

#[tokio::test]
async fn duplicate_client_id_takes_over() {
    let port = broker(ShareStrategy::Random).await;
    let twin = || {
        let mut o = MqttOptions::new("twin", "127.0.0.1", port);
        o.set_clean_session(false);
        o
    };
    let mut first = connect_with(twin()).await;
    first.subscribe("tw/#", QoS::AtLeastOnce).await;
    let mut second = connect_with(twin()).await;
    assert!(second.session_present);
    loop {
        match first.next().await {
            Ev::Error => break,
            Ev::Publish { .. } | Ev::SubAck | Ev::ConnAck(_) => {}
        }
    }
    // The new connection works (and resumed the session: its subscription routes to it).
    let publisher = connect(port, "twp").await;
    publisher
        .client
        .publish("tw/1", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let (t, _, _, _) = second.publication().await;
    assert_eq!(t, "tw/1");
}

#[tokio::test]
async fn shared_subscription_spreads() {
    let port = broker(ShareStrategy::RoundRobin).await;
    let mut a = connect(port, "sa").await;
    let mut b = connect(port, "sb").await;
    a.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    b.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    let publisher = connect(port, "sp").await;
    for i in 0..10u8 {
        publisher
            .client
            .publish("sh/x", QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(a.publication().await.1[0]);
        seen.push(b.publication().await.1[0]);
    }
    a.quiet(Duration::from_millis(200)).await;
    b.quiet(Duration::from_millis(10)).await;
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<u8>>());
}

#[tokio::test]
async fn v5_publish_subscribe() {
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as C5, Event as E5, MqttOptions as O5};
    let port = broker(ShareStrategy::Random).await;
    let (client, mut el) = C5::new(O5::new("v5", "127.0.0.1", port), 10);
    client.subscribe("v5/+", Q5::ExactlyOnce).await.unwrap();
    client
        .publish("v5/a", Q5::AtLeastOnce, false, "five")
        .await
        .unwrap();
    let got = timeout(WAIT, async {
        loop {
            if let E5::Incoming(P5::Publish(p)) = el.poll().await.unwrap() {
                return (p.topic.to_vec(), p.payload.to_vec(), p.qos);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, (b"v5/a".to_vec(), b"five".to_vec(), Q5::AtLeastOnce));
}
