//! W1 to W5 of WORKLOAD.md, on any domain.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore::{Aggregate, Contains, Domain, Loaded, Result};

use crate::allocs;
use crate::counter::{Bench, Counter, CounterEvent, DoOne};
use crate::report::Reporter;

pub(crate) const ROUNDS: usize = 5;
const WORKERS: usize = 16;
const HYDRATE_BATCH: usize = 100;
/// W3's loads of the big aggregate.
pub(crate) const LOADS: usize = 5;

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

pub(crate) fn millis(since: Instant) -> f64 {
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

/// W1_cached_commands: W1 over `k-0…` on a domain with a trusted aggregate cache, so that a
/// command on a kept aggregate is one round trip (its append). Its events are in the store
/// W4 reads: W4 handles 25,000 events at scale 1, not WORKLOAD.md's 20,000.
pub(crate) async fn sequential_cached(
    domain: &Domain<Bench>,
    sizes: &Sizes,
    out: &Reporter,
) -> Result<()> {
    let domain = domain.clone().with_trusted_cache(sizes.aggregates);
    let (start, allocated) = (Instant::now(), allocs::count());
    for _ in 0..ROUNDS {
        for a in 0..sizes.aggregates {
            domain.execute(&format!("k-{a}"), DoOne { one: 1 }).await?;
        }
    }
    out.rate_allocating(
        "W1_cached_commands",
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
    let events = sizes.hydrate_events;
    fill(domain, "big", events).await?;
    let mut loads = Loads::default();
    for _ in 0..LOADS {
        loads.time::<Counter>(domain, "big", events).await?;
    }
    // The line divides the allocations per load by the events loaded.
    out.rate_allocating("W3_hydrate", events, loads.median(), loads.allocations());
    Ok(())
}

/// Appends `events` events to counter `id` directly, `HYDRATE_BATCH` at a time, storing no
/// snapshot.
pub(crate) async fn fill(domain: &Domain<Bench>, id: &str, events: usize) -> Result<()> {
    let mut big = Loaded::<Counter>::new(id);
    while (big.version as usize) < events {
        let batch = vec![CounterEvent::One { one: 1 }; HYDRATE_BATCH];
        big = domain.append(big, batch).await?;
    }
    Ok(())
}

/// Timed loads of a counter.
#[derive(Default)]
pub(crate) struct Loads {
    times: Vec<f64>,
    allocations: u64,
}

impl Loads {
    /// Loads counter `id` as kind `A`, checking it holds `events` events, and keeps the time.
    pub(crate) async fn time<A>(
        &mut self,
        domain: &Domain<Bench>,
        id: &str,
        events: usize,
    ) -> Result<()>
    where
        A: Aggregate + Borrow<Counter>,
        Bench: Contains<A>,
    {
        let (start, allocated) = (Instant::now(), allocs::count());
        let loaded = domain.load::<A>(id).await?;
        let (ms, allocations) = (millis(start), allocs::count() - allocated);
        self.times.push(ms);
        self.allocations += allocations;
        let count = loaded.state.borrow().count as usize;
        assert_eq!(count, events, "hydrated count of {id}");
        Ok(())
    }

    /// The median time, in ms.
    pub(crate) fn median(&mut self) -> f64 {
        self.times.sort_by(f64::total_cmp);
        self.times[self.times.len() / 2]
    }

    /// The allocations per load.
    pub(crate) fn allocations(&self) -> u64 {
        self.allocations / self.times.len() as u64
    }
}

/// W4: a new handler with a stored bookmark catches up on every event in one `run_once`.
pub(crate) async fn catch_up(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    // W1's, W1_cached_commands' and W2's events, and W3's.
    let total = 3 * ROUNDS * sizes.aggregates + sizes.hydrate_events;
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
