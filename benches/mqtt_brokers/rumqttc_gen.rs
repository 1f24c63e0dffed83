//! Generator 2, independent of beamq's code: a small load driver on rumqttc 0.24 (the Rust
//! client most Rust MQTT users run; its `mqttbytes` codec and event loop share nothing with
//! beamq). One `AsyncClient` + `EventLoop` per MQTT client, all in this process's tokio
//! runtime. Payloads carry the send time (nanoseconds since a process-wide epoch) in their first
//! 8 bytes, so subscribers measure end-to-end latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::task::JoinSet;

use crate::case::{Case, Outcome};

/// Distinct client ids per run: a broker must not see a reconnect of an earlier run's client.
fn run_tag() -> String {
    static RUN: AtomicU64 = AtomicU64::new(0);
    format!("{}_{}", std::process::id(), RUN.fetch_add(1, Relaxed))
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn options(id: String, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_inflight(100);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

#[derive(Default)]
struct Counters {
    subscribed: AtomicU64,
    received: AtomicU64,
    measuring: AtomicBool,
    latencies_us: Mutex<Vec<u64>>,
}

async fn subscriber(port: u16, id: String, topic: String, q: u8, c: Arc<Counters>) {
    let (client, mut el) = AsyncClient::new(options(id, port), 64);
    if client.subscribe(topic, qos(q)).await.is_err() {
        return;
    }
    let mut local = Vec::new();
    let mut n = 0u64;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                n += 1;
                if c.measuring.load(Relaxed) && p.payload.len() >= 8 {
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&p.payload[..8]);
                    let sent = u64::from_le_bytes(ts);
                    local.push(now_ns().saturating_sub(sent) / 1000);
                }
                if n % 16 == 0 {
                    c.received.fetch_add(n, Relaxed);
                    n = 0;
                    if local.len() >= 256 {
                        if let Ok(mut v) = c.latencies_us.lock() {
                            v.append(&mut local);
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                c.subscribed.fetch_add(1, Relaxed);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

async fn drive(mut el: EventLoop) {
    while el.poll().await.is_ok() {}
}

async fn publisher(port: u16, id: String, topic: String, case: Case) {
    let (client, el) = AsyncClient::new(options(id, port), 256);
    let driver = tokio::spawn(drive(el));
    let mut payload = vec![0u8; case.size.max(8)];
    let mut tick = (case.interval_ms > 0)
        .then(|| tokio::time::interval(Duration::from_millis(case.interval_ms)));
    loop {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        payload[..8].copy_from_slice(&now_ns().to_le_bytes());
        if client
            .publish(topic.clone(), qos(case.qos), false, payload.clone())
            .await
            .is_err()
        {
            break;
        }
    }
    driver.abort();
}

fn expand(t: &str, i: usize) -> String {
    t.replace("%i", &i.to_string())
}

/// Runs one message case against the broker on `port`.
pub async fn run_messages(port: u16, case: &Case, seconds: u64) -> Result<Outcome, String> {
    let c = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    let tag = run_tag();
    for i in 0..case.subs {
        tasks.spawn(subscriber(
            port,
            format!("rs_{tag}_{i}"),
            expand(case.sub_topic, i),
            case.qos,
            c.clone(),
        ));
    }
    let until = Instant::now() + Duration::from_secs(20);
    while c.subscribed.load(Relaxed) < case.subs as u64 {
        if Instant::now() > until {
            return Err("rumqttc: subscribers did not all subscribe".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..case.pubs {
        tasks.spawn(publisher(
            port,
            format!("rp_{tag}_{i}"),
            expand(case.pub_topic, i),
            case.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.measuring.store(true, Relaxed);
    let (t0, n0) = (Instant::now(), c.received.load(Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (t1, n1) = (Instant::now(), c.received.load(Relaxed));
    c.measuring.store(false, Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let rate = (n1 - n0) as f64 / t1.duration_since(t0).as_secs_f64();
    let mut lat = c.latencies_us.lock().map(|v| v.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |q: f64| (!lat.is_empty()).then(|| lat[((lat.len() - 1) as f64 * q) as usize] as f64);
    Ok(Outcome {
        rate,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    })
}

/// Opens `n` connections, at most 64 in progress at once, and holds them until all are up;
/// connections per second.
pub async fn run_connect(port: u16, n: usize) -> Result<f64, String> {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let up = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let tag = run_tag();
    let start = Instant::now();
    for i in 0..n {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let up = up.clone();
        let id = format!("rc_{tag}_{i}");
        tasks.spawn(async move {
            let (_client, mut el) = AsyncClient::new(options(id, port), 4);
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            up.fetch_add(1, Relaxed);
            drop(permit);
            // Hold the connection (as `beamq bench conn` does) until the run is over.
            std::future::pending::<()>().await;
            drop(_client);
        });
    }
    let until = Instant::now() + Duration::from_secs(120);
    while up.load(Relaxed) < n as u64 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let got = up.load(Relaxed);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    if got < n as u64 {
        return Err(format!("rumqttc conn: {got}/{n} connected"));
    }
    Ok(n as f64 / secs)
}
