//! The benchmark's domain: one aggregate kind `counter`, as WORKLOAD.md defines it.

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

evtstore::domain!(pub(crate) Bench { Counter, crate::upcast::CounterV2 });
