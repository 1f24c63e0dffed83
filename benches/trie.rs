//! Topic trie: insert and match rates at 10 k, 100 k and 1 M filters (70 % exact, 20 % with a
//! `+`, 10 % ending in `#`, depths 3–6), bytes per filter from a counting allocator, and
//! matching from 1 and 2 threads through the shared table; matching one topic per walk and
//! in batches (`TopicTrie::matches_batch`, 8 topics walked together, as the broker routes the
//! PUBLISHes of one read).
//!
//! Run: `cargo bench --bench trie`; `TRIE_BENCH_SIZES=1000000` runs one size only.

use beamq::router::{ReadMostly, TopicFilter, TopicTrie};
use criterion::{black_box, BenchmarkId, Criterion, SamplingMode, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts live heap bytes, to report what the trie holds per filter.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const VOCAB: [&str; 8] = ["temp", "hum", "status", "cmd", "cfg", "evt", "up", "down"];
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Topics matched per criterion iteration.
const POOL: usize = 1 << 16;

/// A topic as devices publish it: tenant / site / device / 0–3 vocabulary levels.
fn topic_levels(rng: &mut StdRng, devices: usize) -> Vec<String> {
    let depth = rng.gen_range(3..=6);
    let mut v = vec![
        format!("t{}", rng.gen_range(0..20)),
        format!("site{}", rng.gen_range(0..500)),
        format!("dev{}", rng.gen_range(0..devices)),
    ];
    while v.len() < depth {
        v.push(VOCAB[rng.gen_range(0..VOCAB.len())].to_string());
    }
    v
}

/// `n` distinct filters: 70 % exact, 20 % one level replaced by `+`, 10 % cut and ended by `#`.
fn filters(n: usize, rng: &mut StdRng) -> Vec<TopicFilter> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut levels = topic_levels(rng, n);
        let kind = rng.gen_range(0..10);
        if kind == 7 || kind == 8 {
            let i = rng.gen_range(0..levels.len());
            levels[i] = "+".into();
        } else if kind == 9 {
            levels.truncate(rng.gen_range(1..levels.len()));
            levels.push("#".into());
        }
        let s = levels.join("/");
        if seen.insert(s.clone()) {
            out.push(TopicFilter::new(&s).expect("generated filters are valid"));
        }
    }
    out
}

/// Publish topics: half are exact filters (a sure hit), half fresh topics of the same shape.
fn topics(filters: &[TopicFilter], rng: &mut StdRng) -> Vec<String> {
    let exact: Vec<&TopicFilter> = filters.iter().filter(|f| !f.is_wildcard()).collect();
    (0..POOL)
        .map(|i| {
            if i % 2 == 0 {
                exact[rng.gen_range(0..exact.len())].as_str().to_string()
            } else {
                topic_levels(rng, filters.len()).join("/")
            }
        })
        .collect()
}

fn build(filters: &[TopicFilter]) -> TopicTrie<u32> {
    let mut t = TopicTrie::new();
    for (i, f) in filters.iter().enumerate() {
        let _ = t.insert(f, (i % 4) as u32);
    }
    t
}

/// This thread's CPU time: matching rates per CPU-second stay meaningful on a loaded machine.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Matches per wall-second and per CPU-second: the medians of 7 batches of `rounds` passes
/// of the pool each (a median, because other processes share the machine).
fn match_rates(
    t: &TopicTrie<u32>,
    topics: &[String],
    rounds: usize,
    each: fn(&TopicTrie<u32>, &[String]) -> usize,
) -> (f64, f64) {
    let n = (rounds * topics.len()) as f64;
    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..7)
        .map(|_| {
            let (w0, c0) = (Instant::now(), thread_cpu());
            for _ in 0..rounds {
                black_box(each(t, topics));
            }
            (
                n / w0.elapsed().as_secs_f64(),
                n / (thread_cpu() - c0).as_secs_f64(),
            )
        })
        .unzip();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut wall), median(&mut cpu))
}

fn match_all(t: &TopicTrie<u32>, topics: &[String]) -> usize {
    let mut hits = 0;
    for topic in topics {
        t.matches(topic, |_, v| hits += v.len());
    }
    hits
}

/// [`match_all`] through the batch walk.
fn match_all_batch(t: &TopicTrie<u32>, topics: &[String]) -> usize {
    let mut hits = 0;
    t.matches_batch(topics.iter().map(String::as_str), |_, _, v| hits += v.len());
    hits
}

/// Matches/s with `threads` threads each taking a read guard per publish, for `dur`;
/// `writer` adds a thread subscribing and unsubscribing a filter every 100 µs.
fn threaded(
    shared: &Arc<ReadMostly<TopicTrie<u32>>>,
    topics: &Arc<Vec<String>>,
    threads: usize,
    writer: bool,
) -> f64 {
    let dur = Duration::from_millis(1500);
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let w = writer.then(|| {
        let (shared, stop) = (Arc::clone(shared), Arc::clone(&stop));
        std::thread::spawn(move || {
            let f = TopicFilter::new("t1/site1/+/writer").expect("valid");
            while !stop.load(Ordering::Relaxed) {
                shared.write_batch([true, false], |t, add| {
                    if add {
                        let _ = t.insert(&f, 9);
                    } else {
                        t.remove(f.as_str(), &9);
                    }
                });
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    });
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let (shared, topics, stop, total) = (
                Arc::clone(shared),
                Arc::clone(topics),
                Arc::clone(&stop),
                Arc::clone(&total),
            );
            std::thread::spawn(move || {
                let mut n = 0u64;
                let mut i = k * 7919;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        let t = &topics[i % topics.len()];
                        shared.read().matches(t, |_, v| {
                            black_box(v);
                        });
                        i += 1;
                    }
                    n += 1024;
                }
                total.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(dur);
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    if let Some(w) = w {
        let _ = w.join();
    }
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rng = StdRng::seed_from_u64(42);
    let mut report = Vec::new();
    // `TRIE_BENCH_SIZES=1000000` limits the run (for profiling one size).
    let sizes: Vec<usize> = std::env::var("TRIE_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| SIZES.to_vec());
    for &n in &sizes {
        let fs = filters(n, &mut rng);
        let ts = topics(&fs, &mut rng);
        let before = LIVE.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let trie = build(&fs);
        let build_time = t0.elapsed();
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let hits = match_all(&trie, &ts);
        assert_eq!(
            hits,
            match_all_batch(&trie, &ts),
            "batch and single walks disagree"
        );
        let (wall, cpu) = match_rates(&trie, &ts, 3, match_all);
        // The same shape of topics, but only 1024 distinct ones: the tables' hot paths stay
        // in cache, which separates the cost of the walk from the cost of cache misses.
        let (hot_wall, hot_cpu) = match_rates(&trie, &ts[..1024], 60, match_all);
        let (b_wall, b_cpu) = match_rates(&trie, &ts, 3, match_all_batch);
        let (b_hot_wall, b_hot_cpu) = match_rates(&trie, &ts[..1024], 60, match_all_batch);
        report.push(format!(
            "{n} filters: {:.1} bytes/filter ({} MiB), {} trie nodes, one build {:.0} ms ({:.2} M inserts/s), {:.2} matched filters/publish",
            bytes as f64 / n as f64,
            bytes >> 20,
            trie.node_count(),
            build_time.as_secs_f64() * 1e3,
            n as f64 / build_time.as_secs_f64() / 1e6,
            hits as f64 / ts.len() as f64,
        ));

        report.push(format!(
            "{n} filters, 1 thread, no lock: {:.2} M matches/s wall, {:.2} M per CPU-second; 1024 hot topics: {:.2} M/s wall, {:.2} M per CPU-second",
            wall / 1e6,
            cpu / 1e6,
            hot_wall / 1e6,
            hot_cpu / 1e6,
        ));

        report.push(format!(
            "{n} filters, 1 thread, no lock, batches of 8: {:.2} M matches/s wall, {:.2} M per CPU-second; 1024 hot topics: {:.2} M/s wall, {:.2} M per CPU-second",
            b_wall / 1e6,
            b_cpu / 1e6,
            b_hot_wall / 1e6,
            b_hot_cpu / 1e6,
        ));

        let mut g = c.benchmark_group("trie_insert");
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &fs, |b, fs| {
            b.iter_with_large_drop(|| build(fs))
        });
        g.finish();

        let mut g = c.benchmark_group("trie_match");
        g.throughput(Throughput::Elements(ts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &ts, |b, ts| {
            b.iter(|| match_all(&trie, ts))
        });
        g.finish();

        let mut g = c.benchmark_group("trie_match_batch");
        g.throughput(Throughput::Elements(ts.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &ts, |b, ts| {
            b.iter(|| match_all_batch(&trie, ts))
        });
        g.finish();

        let shared = Arc::new(ReadMostly::new(trie));
        let ts = Arc::new(ts);
        report.push(format!(
            "{n} filters, read guard per match: 1 thread {:.2} M/s, 2 threads {:.2} M/s, 2 threads + writer {:.2} M/s",
            threaded(&shared, &ts, 1, false) / 1e6,
            threaded(&shared, &ts, 2, false) / 1e6,
            threaded(&shared, &ts, 2, true) / 1e6,
        ));
    }
    c.final_summary();
    println!();
    for line in report {
        println!("{line}");
    }
}
