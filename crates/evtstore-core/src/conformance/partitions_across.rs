//! A partitioned handler across real processes: three children share 8 partitions; one is
//! killed midway. Also measures how many events per second 1, 2 and 3 processes handle.
//!
//! Run by [`process_tests!`](crate::process_tests); [`throughput`] by a provider's own test.

use std::collections::BTreeMap;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::domain::*;
use super::support::{domain, raw};
use crate::{NewEvent, Provider};

const PARTITIONS: u32 = 8;

/// In a child: runs the handler "split" in 8 partitions (1 s leases), each event taking 1 ms
/// of work, printing `handled <aggregate> <version>`. Never returns; the parent kills it.
pub async fn run_partition_child(provider: Arc<dyn Provider>) {
    let split = domain(&provider)
        .handler("split")
        .page_size(100)
        .lease_time(Duration::from_secs(1))
        .handle::<Counter, _>(|_, _, meta| {
            std::thread::sleep(Duration::from_millis(1));
            println!("handled {} {}", meta.aggregate_id, meta.version);
            Ok(())
        })
        .build_partitioned(PARTITIONS)
        .expect("building the partitioned handler");
    split.start();
    std::future::pending::<()>().await;
}

/// (child, aggregate, version) of an event handled.
type Seen = (usize, String, u64);

/// The children, each event they handled [`Seen`].
type Children = super::children::Children<Seen>;

/// A `handled <aggregate> <version>` line of child `n`.
fn parse(n: usize, handled: &str) -> Option<Seen> {
    let (id, version) = handled.split_once(' ')?;
    Some((n, id.to_owned(), version.trim().parse().ok()?))
}

/// `per` events on each of `aggregates` counters, stored at once.
async fn store(provider: &Arc<dyn Provider>, aggregates: usize, from: u64, per: u64) {
    let body = r#"{"type":"added","by":1,"seen_version":0}"#;
    let events: Vec<NewEvent> = (0..aggregates)
        .flat_map(|a| (from..from + per).map(move |v| raw("counters", &format!("c{a}"), v, body)))
        .collect();
    provider.append(events).await.expect("storing events");
}

async fn until(children: &Children, count: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while children.count() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} events handled",
            children.count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three children share 8 partitions; one is killed midway, and more events come once the
/// others have rebalanced. Every event is handled, each
/// aggregate's events in version order (an event may be handled again by the partition's next
/// holder, never skipped), and more than one child does the work.
pub async fn share_and_survive_a_kill(provider: Arc<dyn Provider>, start: &dyn Fn() -> Process) {
    let mut children = Children::start(3, start, parse);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store(&provider, 24, 1, 10).await;
    until(&children, 120, Duration::from_secs(60)).await;
    let _ = children.children[0].kill();
    // Once the killed child's leases expired and the others rebalanced, more events: its
    // partitions' events must now be handled by the others.
    tokio::time::sleep(Duration::from_secs(3)).await;
    store(&provider, 24, 11, 10).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !every_version_seen(&children.records(), 24, 20) {
        if Instant::now() > deadline {
            let seen = children.records();
            let mut top: BTreeMap<&str, u64> = BTreeMap::new();
            for (_, id, v) in seen.iter() {
                let at = top.entry(id.as_str()).or_default();
                *at = (*at).max(*v);
            }
            panic!("not every event handled after the kill: last versions {top:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = children.records();
    let workers: std::collections::BTreeSet<usize> = seen.iter().map(|s| s.0).collect();
    assert!(workers.len() > 1, "the partitions are shared: {workers:?}");
    let mut last: BTreeMap<(usize, &str), u64> = BTreeMap::new();
    for (child, id, version) in &seen {
        let previous = last.insert((*child, id), *version).unwrap_or(0);
        assert!(
            *version > previous,
            "{id} out of order in child {child}: {version} after {previous}"
        );
    }
}

fn every_version_seen(seen: &[Seen], aggregates: usize, versions: u64) -> bool {
    let mut found = std::collections::HashSet::new();
    for (_, id, version) in seen.iter() {
        found.insert((id.clone(), *version));
    }
    (0..aggregates).all(|a| (1..=versions).all(|v| found.contains(&(format!("c{a}"), v))))
}

/// Events per second that `processes` children, started and settled, handle: from storing
/// 2,400 events (1 ms of work each) until the last is handled; printed and returned.
pub async fn throughput(
    provider: Arc<dyn Provider>,
    processes: usize,
    start: &dyn Fn() -> Process,
) -> f64 {
    let children = Children::start(processes, start, parse);
    tokio::time::sleep(Duration::from_secs(2)).await; // they join and share the partitions
    let started = Instant::now();
    store(&provider, 24, 1, 100).await;
    until(&children, 2400, Duration::from_secs(120)).await;
    let rate = 2400.0 / started.elapsed().as_secs_f64();
    println!("partitioned handler, {processes} process(es): {rate:.0} events/s");
    rate
}
