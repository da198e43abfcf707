//! W1 to W5 of WORKLOAD.md, on any domain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore::{Domain, Loaded, Result};

use crate::allocs;
use crate::counter::{Bench, Counter, CounterEvent, DoOne};
use crate::report::Reporter;

const ROUNDS: usize = 5;
const WORKERS: usize = 16;
const HYDRATE_BATCH: usize = 100;
/// W3's loads of the big aggregate.
const LOADS: usize = 5;

/// Sizes at a scale.
pub(crate) struct Sizes {
    pub(crate) aggregates: usize,
    pub(crate) hydrate_events: usize,
}

impl Sizes {
    pub(crate) fn at(scale: usize) -> Self {
        Sizes {
            aggregates: 1000 * scale,
            hydrate_events: 10_000 * scale,
        }
    }
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// W1: one command at a time over `s-0…`, five rounds.
pub(crate) async fn sequential(
    domain: &Domain<Bench>,
    sizes: &Sizes,
    out: &Reporter,
) -> Result<()> {
    let (start, allocated) = (Instant::now(), allocs::count());
    for _ in 0..ROUNDS {
        for a in 0..sizes.aggregates {
            domain.execute(&format!("s-{a}"), DoOne { one: 1 }).await?;
        }
    }
    out.rate_allocating(
        "W1_sequential_commands",
        ROUNDS * sizes.aggregates,
        millis(start),
        allocs::count() - allocated,
    );
    Ok(())
}

/// W2: sixteen workers, each over its own aggregates, five rounds.
pub(crate) async fn concurrent(
    domain: &Domain<Bench>,
    sizes: &Sizes,
    out: &Reporter,
) -> Result<()> {
    let (start, allocated) = (Instant::now(), allocs::count());
    let workers = (0..WORKERS).map(|w| {
        let (domain, aggregates) = (domain.clone(), sizes.aggregates);
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                for a in (w..aggregates).step_by(WORKERS) {
                    domain.execute(&format!("c-{a}"), DoOne { one: 1 }).await?;
                }
            }
            Ok::<_, evtstore::Error>(())
        })
    });
    for worker in workers.collect::<Vec<_>>() {
        worker.await.expect("worker panicked")?;
    }
    out.rate_allocating(
        "W2_concurrent_commands",
        ROUNDS * sizes.aggregates,
        millis(start),
        allocs::count() - allocated,
    );
    Ok(())
}

/// W3: load an aggregate of many events, five times; the median.
pub(crate) async fn hydrate(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    let mut big = Loaded::<Counter>::new("big");
    while (big.version as usize) < sizes.hydrate_events {
        let batch = vec![CounterEvent::One { one: 1 }; HYDRATE_BATCH];
        big = domain.append(big, batch).await?;
    }
    let mut times = Vec::with_capacity(LOADS);
    let allocated = allocs::count();
    for _ in 0..LOADS {
        let start = Instant::now();
        let loaded = domain.load::<Counter>("big").await?;
        times.push(millis(start));
        assert_eq!(
            loaded.state.count as usize, sizes.hydrate_events,
            "hydrated count"
        );
    }
    // Per event loaded, over all the loads.
    let allocations = (allocs::count() - allocated) / LOADS as u64;
    times.sort_by(f64::total_cmp);
    let median = times[LOADS / 2];
    out.rate_allocating("W3_hydrate", sizes.hydrate_events, median, allocations);
    Ok(())
}

/// W4: a new handler with a stored bookmark catches up on every event in one `run_once`.
pub(crate) async fn catch_up(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    let total = 2 * ROUNDS * sizes.aggregates + sizes.hydrate_events;
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let handler = domain
        .handler("catchup")
        .handle::<Counter, _>(move |_, _, _| {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .build()?;
    let (start, allocated) = (Instant::now(), allocs::count());
    handler.run_once().await?;
    let (ms, allocations) = (millis(start), allocs::count() - allocated);
    assert_eq!(
        seen.load(Ordering::Relaxed),
        total,
        "catch-up saw every event"
    );
    out.rate_allocating("W4_catchup", total, ms, allocations);
    Ok(())
}

/// W5: a running handler; time from before each command to its callback.
pub(crate) async fn latency(domain: &Domain<Bench>, out: &Reporter) -> Result<()> {
    const COMMANDS: usize = 100;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (arrived, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let started = sent.clone();
    let handler = domain
        .handler("live")
        .tail_stream(true)
        .handle::<Counter, _>(move |_, _, meta| {
            if let Some(at) = started.lock().unwrap().get(meta.aggregate_id.as_str()) {
                let _ = arrived.send(millis(*at));
            }
            Ok(())
        })
        .build()?;
    handler.run_once().await?;
    handler.start();
    for i in 0..COMMANDS {
        let id = format!("lat-{i}");
        sent.lock().unwrap().insert(id.clone(), Instant::now());
        domain.execute(&id, DoOne { one: 1 }).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::with_capacity(COMMANDS);
    while samples.len() < COMMANDS {
        let next = tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await;
        samples.push(
            next.expect("W5: an event never reached the handler")
                .expect("handler gone"),
        );
    }
    handler.stop().await;
    out.latency("W5_latency", samples);
    Ok(())
}
