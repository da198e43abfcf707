//! Growth: W3 and W4 on a store holding as many events as W1 to W2 leave (fifteen on each of
//! `1000 × scale` aggregates), appended directly in batches so that large scales take
//! seconds, not hours. Per-event costs at `--scale 1`, `10` and `100` should stay flat.

use evtstore::{Domain, NewEvent, Result};

use crate::counter::Bench;
use crate::report::Reporter;
use crate::workloads::{self, Sizes};

/// Aggregates per append while filling.
const BATCH: usize = 10;
/// Events per aggregate: the five rounds each of W1, W1_cached_commands and W2.
const EVENTS: u64 = 15;

/// Fills the store, then runs W3 and W4.
pub(crate) async fn run(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    let ids: Vec<String> = (0..sizes.aggregates).map(|a| format!("g-{a}")).collect();
    for chunk in ids.chunks(BATCH) {
        let events = chunk.iter().flat_map(|id| {
            (1..=EVENTS)
                .map(move |v| NewEvent::new("counter", id.as_str(), v, r#"{"type":"one","one":1}"#))
        });
        domain.provider().append(events.collect()).await?;
    }
    workloads::hydrate(domain, sizes, out).await?;
    workloads::catch_up(domain, sizes, out).await
}
