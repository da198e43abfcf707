//! The benchmark's domain: one aggregate kind `counter`, as WORKLOAD.md defines it, and the
//! same kind with snapshots for the snapshot workloads.

use std::borrow::Borrow;

use evtstore::{Aggregate, Command, Decision, Domain, EventMeta, Loaded};
use serde::{Deserialize, Serialize};

/// The only event: `{ "type": "one", "one": n }`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum CounterEvent {
    One { one: i64 },
}

/// State `{ one, count }`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Counter {
    pub(crate) one: i64,
    pub(crate) count: u64,
}

impl Aggregate for Counter {
    const STREAM: &'static str = "counter";
    type Event = CounterEvent;

    fn fold(&mut self, event: &CounterEvent, _meta: &EventMeta) {
        let CounterEvent::One { one } = event;
        self.one += one;
        self.count += 1;
    }
}

/// `DoOne { one }`: always one event.
pub(crate) struct DoOne {
    pub(crate) one: i64,
}

impl<D> Command<D> for DoOne {
    type Aggregate = Counter;
    type Error = std::convert::Infallible;

    async fn handle(self, _: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![CounterEvent::One { one: self.one }])
    }
}

/// The counter with snapshots (schema `"v1"`), one stored when its version crosses a multiple
/// of `EVERY`: same stream, events and state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Persisted<const EVERY: u64>(pub(crate) Counter);

impl<const EVERY: u64> Aggregate for Persisted<EVERY> {
    const STREAM: &'static str = "counter";
    const SNAPSHOT: Option<&'static str> = Some("v1");
    const SNAPSHOT_EVERY: u64 = EVERY;
    type Event = CounterEvent;

    fn fold(&mut self, event: &CounterEvent, meta: &EventMeta) {
        self.0.fold(event, meta);
    }
}

impl<const EVERY: u64> Borrow<Counter> for Persisted<EVERY> {
    fn borrow(&self) -> &Counter {
        &self.0
    }
}

/// `DoOne { one: 1 }` on a persisted counter.
pub(crate) struct PersistedOne<const EVERY: u64>;

impl<D, const EVERY: u64> Command<D> for PersistedOne<EVERY> {
    type Aggregate = Persisted<EVERY>;
    type Error = std::convert::Infallible;

    async fn handle(self, _: &Loaded<Persisted<EVERY>>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![CounterEvent::One { one: 1 }])
    }
}

evtstore::domain!(pub(crate) Bench {
    Counter,
    Persisted<1>,
    Persisted<100>,
    crate::upcast::CounterV2,
});
