//! ETF and distribution-message throughput: the small message `{t, <<"a/b">>, <<64 bytes>>}`
//! and a 64 KiB binary, as bare terms (`term_to_binary` form) and as whole REG_SEND frames with
//! the atom cache (`cargo bench --bench etf`).
//!
//! Measured in CPU time of the benchmark thread, not wall time: the build machine is shared, and
//! wall time under load measures the neighbours.
use bytes::{Bytes, BytesMut};
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

use beamq::dist::control::ControlMessage;
use beamq::dist::etf::{decode, encode, Atom, Pid, Term};
use beamq::dist::message::{DistMessage, Inbound, Outbound};

fn small() -> Term {
    Term::tuple([
        Term::atom("t"),
        Term::binary(b"a/b"),
        Term::binary([7u8; 64]),
    ])
}

fn big() -> Term {
    Term::binary(vec![7u8; 64 * 1024])
}

fn reg_send(payload: Term) -> DistMessage {
    let from = Pid {
        node: Atom::new("bench@127.0.0.1"),
        id: 77,
        serial: 0,
        creation: 3,
    };
    DistMessage::with_payload(
        ControlMessage::RegSend {
            from,
            to_name: Atom::new("sink"),
        },
        payload,
    )
}

/// CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
pub struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns() - i
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns"
    }
    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let bytes = match t {
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => *b as f64,
            Throughput::Elements(e) => *e as f64,
        };
        for v in values {
            *v = bytes * 1e9 / *v / (1024.0 * 1024.0);
        }
        "MiB/s"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

type C = Criterion<ThreadCpu>;

fn terms(c: &mut C) {
    for (name, t) in [("small", small()), ("64k", big())] {
        let bytes = beamq::dist::etf::term_to_binary(&t);
        let mut g = c.benchmark_group(format!("term_{name}"));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function("decode", |b| b.iter(|| decode(black_box(&bytes)).unwrap()));
        // The eetf crate on the same bytes, for scale.
        g.bench_function("eetf_decode", |b| {
            b.iter(|| eetf::Term::decode(black_box(&bytes[..])).unwrap())
        });
        let mut out = BytesMut::with_capacity(bytes.len() * 2);
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                encode(black_box(&t), &mut out);
            })
        });
        g.finish();
    }
}

fn messages(c: &mut C) {
    for (name, t) in [("small", small()), ("64k", big())] {
        let msg = reg_send(t);
        let mut tx = Outbound::default();
        let mut warm = BytesMut::new();
        tx.encode(&msg, &mut warm); // first frame carries atom texts; later ones hit the cache
        let mut out = BytesMut::new();
        tx.encode(&msg, &mut out);
        let frames = split(out.freeze());
        let total: usize = frames.iter().map(|f| f.len() + 4).sum();
        let mut g = c.benchmark_group(format!("reg_send_{name}"));
        g.throughput(Throughput::Bytes(total as u64));
        let mut buf = BytesMut::with_capacity(total * 2);
        g.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                tx.encode(black_box(&msg), &mut buf);
            })
        });
        let mut rx = Inbound::default();
        for f in split(warm.freeze()) {
            rx.receive(f).unwrap();
        }
        g.bench_function("decode", |b| {
            b.iter(|| {
                let mut last = None;
                for f in &frames {
                    last = rx.receive(f.clone()).unwrap();
                }
                last.unwrap()
            })
        });
        g.finish();
    }
}

fn split(mut b: Bytes) -> Vec<Bytes> {
    let mut v = Vec::new();
    while b.len() >= 4 {
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let _ = b.split_to(4);
        v.push(b.split_to(n));
    }
    v
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = terms, messages
}
criterion_main!(benches);
