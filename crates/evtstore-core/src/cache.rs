//! The aggregate cache: the last loaded state per aggregate, so a load reads only newer events.
//! It keeps at most `capacity` aggregates and evicts the least recently used one.
//!
//! States move in and out: a command takes its aggregate out (no copy) and its append puts the
//! new state in, so a command copies its state once, for the caller; a plain load copies it once.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::aggregate::{Aggregate, Loaded};
use crate::shared_str::SharedStr;

/// A `Loaded<A>` of some aggregate kind `A`.
type Value = Box<dyn Any + Send + Sync>;

/// Loaded aggregates by stream and id, at most `capacity` of them.
pub(crate) struct AggregateCache {
    capacity: usize,
    /// Commands decide on the kept state without reading newer events first (see
    /// `Domain::with_trusted_cache`).
    pub(crate) trusted: bool,
    lru: Mutex<Lru>,
}

impl AggregateCache {
    pub(crate) fn new(capacity: usize, trusted: bool) -> Self {
        AggregateCache {
            capacity,
            trusted,
            lru: Mutex::new(Lru::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the kept aggregate, which becomes the most recently used.
    pub(crate) fn get<A: Aggregate>(&self, stream: &'static str, id: &str) -> Option<Loaded<A>> {
        let mut lru = self.lock();
        let slot = lru.find(stream, id)?;
        lru.touch(slot);
        lru.slots[slot].value.as_ref()?.downcast_ref().cloned()
    }

    /// The kept aggregate, taken out of the cache: for a command, whose append puts it back.
    pub(crate) fn take<A: Aggregate>(&self, stream: &'static str, id: &str) -> Option<Loaded<A>> {
        let mut lru = self.lock();
        let slot = lru.find(stream, id)?;
        let value = lru.remove(slot)?;
        value.downcast().ok().map(|kept| *kept)
    }

    /// Keeps the aggregate, as the most recently used, unless a later version of it is kept;
    /// evicts the least recently used one when full.
    pub(crate) fn put<A: Aggregate>(&self, stream: &'static str, aggregate: Loaded<A>) {
        let mut lru = self.lock();
        if let Some(slot) = lru.find(stream, &aggregate.id) {
            lru.touch(slot);
            let kept = lru.slots[slot].value.as_mut();
            match kept.and_then(|kept| kept.downcast_mut::<Loaded<A>>()) {
                Some(kept) if kept.version > aggregate.version => {}
                Some(kept) => *kept = aggregate,
                None => lru.slots[slot].value = Some(Box::new(aggregate)),
            }
            return;
        }
        if self.capacity == 0 {
            return;
        }
        let mut value = None;
        if lru.len() >= self.capacity {
            value = lru.oldest().and_then(|oldest| lru.remove(oldest));
        }
        let value = match value.map(|evicted| evicted.downcast::<Loaded<A>>()) {
            // The evicted aggregate's box is reused when it holds the same kind.
            Some(Ok(mut reused)) => {
                *reused = aggregate;
                reused
            }
            _ => Box::new(aggregate),
        };
        lru.insert(stream, value);
    }
}

/// Slots in a slab, chained from the most to the least recently used, found by stream and id.
#[derive(Default)]
struct Lru {
    index: HashMap<&'static str, HashMap<SharedStr, usize>>,
    slots: Vec<Slot>,
    /// Slots free for reuse.
    free: Vec<usize>,
    /// The most and the least recently used slots, when any is in use.
    ends: Option<(usize, usize)>,
}

struct Slot {
    stream: &'static str,
    id: SharedStr,
    /// `None` while the slot is free.
    value: Option<Value>,
    newer: Option<usize>,
    older: Option<usize>,
}

impl Lru {
    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn find(&self, stream: &str, id: &str) -> Option<usize> {
        self.index.get(stream)?.get(id).copied()
    }

    fn oldest(&self) -> Option<usize> {
        self.ends.map(|(_, oldest)| oldest)
    }

    /// Makes a slot the most recently used.
    fn touch(&mut self, slot: usize) {
        if self.ends.is_some_and(|(newest, _)| newest == slot) {
            return;
        }
        self.unlink(slot);
        self.link_newest(slot);
    }

    /// Adds a `Loaded` aggregate as the most recently used.
    fn insert<A: Aggregate>(&mut self, stream: &'static str, value: Box<Loaded<A>>) {
        let id = value.id.clone();
        let slot = Slot {
            stream,
            id: id.clone(),
            value: Some(value),
            newer: None,
            older: None,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at] = slot;
                at
            }
            None => {
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.index.entry(stream).or_default().insert(id, at);
        self.link_newest(at);
    }

    /// Frees a slot and gives its value.
    fn remove(&mut self, slot: usize) -> Option<Value> {
        self.unlink(slot);
        let Slot { stream, id, .. } = &self.slots[slot];
        if let Some(ids) = self.index.get_mut(stream) {
            ids.remove(id);
        }
        self.free.push(slot);
        self.slots[slot].value.take()
    }

    fn unlink(&mut self, slot: usize) {
        let Slot { newer, older, .. } = self.slots[slot];
        if let Some(newer) = newer {
            self.slots[newer].older = older;
        }
        if let Some(older) = older {
            self.slots[older].newer = newer;
        }
        if let Some((newest, oldest)) = self.ends {
            let newest = if newest == slot { older } else { Some(newest) };
            let oldest = if oldest == slot { newer } else { Some(oldest) };
            self.ends = newest.zip(oldest);
        }
        (self.slots[slot].newer, self.slots[slot].older) = (None, None);
    }

    fn link_newest(&mut self, slot: usize) {
        match self.ends {
            Some((newest, oldest)) => {
                self.slots[newest].newer = Some(slot);
                self.slots[slot].older = Some(newest);
                self.ends = Some((slot, oldest));
            }
            None => self.ends = Some((slot, slot)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMeta;

    #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Total(i64);

    impl Aggregate for Total {
        const STREAM: &'static str = "totals";
        type Event = i64;
        fn fold(&mut self, event: &i64, _: &EventMeta) {
            self.0 += event;
        }
    }

    fn total(id: &str, version: u64) -> Loaded<Total> {
        Loaded {
            id: id.into(),
            version,
            position: version,
            state: Total(version as i64 * 10),
        }
    }

    fn kept(cache: &AggregateCache, id: &str) -> Option<u64> {
        cache.get::<Total>("totals", id).map(|t| t.version)
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = AggregateCache::new(3, false);
        for id in ["a", "b", "c"] {
            cache.put("totals", total(id, 1));
        }
        assert_eq!(
            kept(&cache, "a"),
            Some(1),
            "a is now the most recently used"
        );
        cache.put("totals", total("b", 2)); // then b
        cache.put("totals", total("d", 1)); // evicts c, the least recently used
        assert_eq!(kept(&cache, "c"), None);
        assert_eq!(
            ["a", "b", "d"].map(|id| kept(&cache, id)),
            [Some(1), Some(2), Some(1)]
        );
        cache.put("totals", total("e", 1)); // evicts a: b, d and e were used since
        assert_eq!(kept(&cache, "a"), None);
        assert_eq!(cache.lock().len(), 3);
    }

    #[test]
    fn gives_what_was_put_and_keeps_the_latest_version() {
        let cache = AggregateCache::new(2, false);
        cache.put("totals", total("a", 3));
        cache.put("totals", total("a", 2)); // older: ignored
        assert_eq!(cache.get::<Total>("totals", "a"), Some(total("a", 3)));
        assert_eq!(cache.get::<Total>("other", "a"), None, "streams apart");
        assert_eq!(cache.take::<Total>("totals", "a"), Some(total("a", 3)));
        assert_eq!(cache.get::<Total>("totals", "a"), None, "taken out");
        cache.put("totals", total("a", 4));
        assert_eq!(cache.get::<Total>("totals", "a"), Some(total("a", 4)));
    }

    /// Through a domain: commands take their aggregate out and put the new state back, loads
    /// copy it, the least recently used goes, and a cached load gives what the store holds.
    #[tokio::test]
    async fn a_domain_keeps_its_recently_used_aggregates() {
        use crate::conformance::domain::{Bump, Counter, CreateUser, Tests, User};
        use crate::{Domain, MemoryProvider, Provider};
        use std::sync::Arc;

        let provider: Arc<dyn Provider> = Arc::new(MemoryProvider::new());
        let cached = Domain::<Tests>::with_provider(provider.clone()).with_aggregate_cache(2);
        let plain = Domain::<Tests>::with_provider(provider);
        let bump = |by| Bump { by: vec![by] };
        cached.execute("a", bump(1)).await.unwrap();
        cached.execute("b", bump(2)).await.unwrap();
        cached.load::<Counter>("a").await.unwrap(); // a is used after b
        cached.execute("c", bump(3)).await.unwrap(); // so b goes
        plain.execute("a", bump(4)).await.unwrap(); // another writer
        let a = cached.load::<Counter>("a").await.unwrap();
        assert_eq!(a, plain.load::<Counter>("a").await.unwrap());
        assert_eq!((a.version, &a.state.history[..]), (2, &[1, 4][..]));

        let cache = cached.aggregate_cache().unwrap();
        let kept = |id| cache.get::<Counter>("counters", id).map(|c| c.state.total);
        assert_eq!([kept("a"), kept("b"), kept("c")], [Some(5), None, Some(3)]);

        let create = |name: &str| CreateUser { name: name.into() };
        cached.execute("u", create("ann")).await.unwrap(); // evicts a
        let refused = cached.execute("u", create("bob")).await;
        assert!(refused.unwrap_err().rejection().is_some());
        let user = cache
            .get::<User>("users", "u")
            .expect("kept after the refusal");
        assert_eq!((user.version, user.state.name.as_str()), (1, "ann"));
        assert_eq!(kept("a"), None);
    }

    #[test]
    fn keeps_nothing_at_capacity_zero() {
        let cache = AggregateCache::new(0, false);
        cache.put("totals", total("a", 1));
        assert_eq!(kept(&cache, "a"), None);
    }
}
