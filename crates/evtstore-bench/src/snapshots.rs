//! The snapshot workloads (`--snapshots`): W1 on counters without snapshots and on persisted
//! counters under two snapshot policies, and W3 on one counter of 100,000 events loaded
//! without and with a snapshot. Each compares kinds in one run, their rounds (or loads)
//! interleaved so that the machine's drift falls alike on each.

use std::future::Future;
use std::time::Instant;

use evtstore::{Contains, Domain, Result};

use crate::allocs;
use crate::counter::{Bench, Counter, DoOne, Persisted, PersistedOne};
use crate::report::Reporter;
use crate::workloads::{self, LOADS, Loads, ROUNDS, Sizes, millis};

/// The events of the W3 snapshot workloads' counter.
const BIG: usize = 100_000;

/// Runs them all.
pub(crate) async fn run(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    sequential(domain, sizes, out).await?;
    hydrate_big(domain, out).await
}

/// Time and allocations spent on one kind's rounds.
#[derive(Default, Clone, Copy)]
struct Spent {
    ms: f64,
    allocations: u64,
}

/// W1 three ways, five rounds each, the three rotating within each round:
/// `W1_sequential_commands` on counters `s-0…` without snapshots (as in the default run), and
/// `W1_snapshot_every_<N>` on persisted counters `p<N>-0…`, a snapshot stored whenever a
/// version crosses a multiple of N, for N = 1 (every command) and 100.
async fn sequential(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    let n = sizes.aggregates;
    let mut spent = [Spent::default(); 3];
    for round in 0..ROUNDS {
        for turn in 0..3 {
            let kind = (round + turn) % 3;
            let spent = &mut spent[kind];
            match kind {
                0 => timed(spent, plain_round(domain, n)).await?,
                1 => timed(spent, persisted_round::<1>(domain, n)).await?,
                _ => timed(spent, persisted_round::<100>(domain, n)).await?,
            }
        }
    }
    let names = [
        "W1_sequential_commands",
        "W1_snapshot_every_1",
        "W1_snapshot_every_100",
    ];
    for (name, spent) in names.into_iter().zip(spent) {
        out.rate_allocating(name, ROUNDS * n, spent.ms, spent.allocations);
    }
    Ok(())
}

/// Adds the time and allocations of `work` to `spent`.
async fn timed(spent: &mut Spent, work: impl Future<Output = Result<()>>) -> Result<()> {
    let (start, allocated) = (Instant::now(), allocs::count());
    work.await?;
    spent.ms += millis(start);
    spent.allocations += allocs::count() - allocated;
    Ok(())
}

/// One command on each of counters `s-0…s-<n-1>`.
async fn plain_round(domain: &Domain<Bench>, n: usize) -> Result<()> {
    for a in 0..n {
        domain.execute(&format!("s-{a}"), DoOne { one: 1 }).await?;
    }
    Ok(())
}

/// One command on each of persisted counters `p<EVERY>-0…p<EVERY>-<n-1>`.
async fn persisted_round<const EVERY: u64>(domain: &Domain<Bench>, n: usize) -> Result<()>
where
    Bench: Contains<Persisted<EVERY>>,
{
    for a in 0..n {
        domain
            .execute(&format!("p{EVERY}-{a}"), PersistedOne::<EVERY>)
            .await?;
    }
    Ok(())
}

/// W3 on counter `big-100k` of 100,000 events, appended with no snapshot, then its snapshot
/// saved: five loads as the counter without snapshots (`W3_100k_no_snapshot`, folding every
/// event) alternate with five as the persisted counter (`W3_100k_snapshot`, from the
/// snapshot); the medians.
async fn hydrate_big(domain: &Domain<Bench>, out: &Reporter) -> Result<()> {
    let id = "big-100k";
    workloads::fill(domain, id, BIG).await?;
    domain.save_snapshot::<Persisted<100>>(id).await?;
    let (mut plain, mut persisted) = (Loads::default(), Loads::default());
    for _ in 0..LOADS {
        plain.time::<Counter>(domain, id, BIG).await?;
        persisted.time::<Persisted<100>>(domain, id, BIG).await?;
    }
    out.load(
        "W3_100k_no_snapshot",
        BIG,
        plain.median(),
        plain.allocations(),
    );
    out.load(
        "W3_100k_snapshot",
        BIG,
        persisted.median(),
        persisted.allocations(),
    );
    Ok(())
}
