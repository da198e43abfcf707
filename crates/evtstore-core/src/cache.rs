//! The aggregate cache: the last loaded state per aggregate, so a load reads only newer events.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::aggregate::{Aggregate, Loaded};

type Key = (&'static str, String);

/// Loaded aggregates by stream and id, at most `capacity` of them.
pub(crate) struct AggregateCache {
    capacity: usize,
    entries: Mutex<HashMap<Key, Box<dyn Any + Send + Sync>>>,
}

impl AggregateCache {
    pub(crate) fn new(capacity: usize) -> Self {
        AggregateCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get<A: Aggregate>(&self, stream: &'static str, id: &str) -> Option<Loaded<A>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&(stream, id.to_owned()))?;
        entry.downcast_ref::<Loaded<A>>().cloned()
    }

    /// Keeps the aggregate unless a later version of it is already kept.
    pub(crate) fn put<A: Aggregate>(&self, stream: &'static str, aggregate: &Loaded<A>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let key = (stream, aggregate.id.clone());
        let kept_version = entries
            .get(&key)
            .and_then(|e| e.downcast_ref::<Loaded<A>>())
            .map(|kept| kept.version);
        if kept_version.is_some_and(|v| v > aggregate.version) {
            return;
        }
        if kept_version.is_none() && entries.len() >= self.capacity {
            let Some(evicted) = entries.keys().next().cloned() else {
                return; // capacity 0: keep nothing
            };
            entries.remove(&evicted);
        }
        entries.insert(key, Box::new(aggregate.clone()));
    }
}
