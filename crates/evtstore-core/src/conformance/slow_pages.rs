//! A page that takes longer than the handler's lease: the lease is renewed between its events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::*;
use super::support::{bookmark, domain, run};
use crate::{BoxError, EventMeta, Handles, Position, Provider};

/// How long each event takes to handle: 25 of them outlast a lease of 1 s by half.
const PER_EVENT: Duration = Duration::from_millis(60);

/// A read model that takes its time over each event, and notes its position.
#[derive(Default)]
struct Slow(Arc<Mutex<Vec<Position>>>);

impl Handles<Counter> for Slow {
    async fn handle(&mut self, _: &CounterEvent, meta: &EventMeta) -> Result<(), BoxError> {
        tokio::time::sleep(PER_EVENT).await;
        self.0.lock().unwrap().push(meta.position);
        Ok(())
    }
}

/// One page of 25 events at 60 ms each (1.5 s) under a lease of 1 s: the handler keeps its
/// lease through the page, saves its bookmark after it and handles each event once. (Renewed
/// only before a page, the lease expired during it, and the save was refused every time.)
pub async fn a_page_longer_than_its_lease_keeps_the_lease(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let domain = domain(&provider);
    let mut positions = Vec::new();
    for _ in 0..25 {
        let bumped = domain.execute("c1", Bump { by: vec![1] }).await;
        positions.push(bumped.expect("bumping").position);
    }
    let seen = Slow::default();
    let handled = seen.0.clone();
    let slow = domain
        .handler_with("slow", seen)
        .page_size(100)
        .lease_time(Duration::from_secs(1))
        .on::<Counter>()
        .build()
        .expect("building");
    assert_eq!(run(&slow).await, 25, "one page of every event");
    assert_eq!(*handled.lock().unwrap(), positions, "each once, in order");
    assert_eq!(bookmark(&provider, "slow").await, positions.last().copied());
}
