//! W3 with one upcaster in the chain: the `counter` stream read as [`CounterV2`], whose `one`
//! event was renamed at revision 2 (`one` to `amount`), so every event W3 stored (revision 1)
//! is upcast as it loads. Loads of the plain and the upcast aggregate alternate, and each
//! prints its median.

use std::time::Instant;

use evtstore::{Aggregate, Domain, EventMeta, Result, Upcasters};
use serde::{Deserialize, Serialize};

use crate::counter::{Bench, Counter};
use crate::report::Reporter;
use crate::workloads::Sizes;

const LOADS: usize = 5;

/// The counter's event at revision 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum CounterV2Event {
    One { amount: i64 },
}

/// `one` at revision 1.
#[derive(Deserialize)]
struct OneV1 {
    one: i64,
}

/// The counter at revision 2.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CounterV2 {
    amount: i64,
    count: u64,
}

impl Aggregate for CounterV2 {
    const STREAM: &'static str = "counter";
    const REVISION: u32 = 2;
    type Event = CounterV2Event;

    fn fold(&mut self, event: &CounterV2Event, _meta: &EventMeta) {
        let CounterV2Event::One { amount } = event;
        self.amount += amount;
        self.count += 1;
    }

    fn upcasters() -> Upcasters {
        Upcasters::new().add("one", 1, |v1: OneV1| CounterV2Event::One { amount: v1.one })
    }
}

/// W3 (run first: it stores `big`) again beside W3 through the upcaster, loads alternating.
pub(crate) async fn hydrate(domain: &Domain<Bench>, sizes: &Sizes, out: &Reporter) -> Result<()> {
    let (mut plain, mut upcast) = (Vec::new(), Vec::new());
    for _ in 0..LOADS {
        let start = Instant::now();
        let loaded = domain.load::<Counter>("big").await?;
        plain.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(loaded.state.count as usize, sizes.hydrate_events);
        let start = Instant::now();
        let loaded = domain.load::<CounterV2>("big").await?;
        upcast.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(loaded.state.count as usize, sizes.hydrate_events);
        assert_eq!(
            loaded.state.amount, sizes.hydrate_events as i64,
            "upcast amounts"
        );
    }
    out.rate(
        "W3_hydrate_beside_upcast",
        sizes.hydrate_events,
        median(plain),
    );
    out.rate("W3_hydrate_upcast", sizes.hydrate_events, median(upcast));
    Ok(())
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
