//! The in-memory provider: for tests and experiments, with the same semantics as the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{
    CommandRecord, EventMeta, NewEvent, Position, Snapshot, StoredEvent, now_millis,
};
use crate::lease::Lease;
use crate::names::check_bookmark;
use crate::provider::{Provider, Visitor, command_records, expectations};
use crate::retire::Retire;
use crate::seal::AggregateKey as Key;
use crate::shared_str::SharedStr;

type AggregateKey = (String, String);

/// Keeps everything in this process; gone when it ends. The same semantics as the other
/// providers (it passes the same conformance suite), for tests and experiments.
///
/// ```
/// # use evtstore_core::conformance::domain::Tests;
/// use evtstore_core::{Domain, MemoryProvider};
/// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
/// ```
pub struct MemoryProvider {
    state: Mutex<State>,
    appended: watch::Sender<Position>,
}

#[derive(Default)]
struct State {
    /// Event at position p is `events[p - 1]`.
    events: Vec<StoredEvent>,
    /// Positions of each aggregate's events, in version order, by stream and id.
    aggregates: HashMap<SharedStr, HashMap<SharedStr, Vec<Position>>>,
    bookmarks: HashMap<String, Position>,
    leases: HashMap<String, Lease>,
    snapshots: HashMap<AggregateKey, Snapshot>,
    commands: HashMap<Uuid, CommandRecord>,
    /// Positions of deleted or archived events.
    gone: HashSet<Position>,
    archived: HashMap<AggregateKey, Vec<StoredEvent>>,
    keys: HashMap<AggregateKey, Key>,
}

impl Default for MemoryProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryProvider {
    /// An empty store.
    pub fn new() -> Self {
        MemoryProvider {
            state: Mutex::new(State::default()),
            appended: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the lease's bookmark while the lease is held, and clears an ask that still holds
    /// its value (see [`Provider::apply_ask_leased`]).
    fn save_leased(
        &self,
        lease: &Lease,
        position: Position,
        ask: Option<(&str, Position)>,
    ) -> Result<()> {
        let mut state = self.lock();
        if !lease.is_held(state.leases.get(&lease.name), now_millis()) {
            let (name, owner) = (lease.name.clone(), lease.owner.clone());
            return Err(Error::LeaseLost { name, owner });
        }
        let bookmarks = &mut state.bookmarks;
        bookmarks.insert(lease.name.clone(), position);
        if let Some((ask, asked)) = ask
            && bookmarks.get(ask) == Some(&asked)
        {
            bookmarks.remove(ask);
        }
        Ok(())
    }

    fn append_now(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let mut state = self.lock();
        for expected in expectations(&events)? {
            let (stream, id) = (expected.stream, expected.aggregate_id);
            let actual = state.positions(stream, id).len() as u64;
            if actual != expected.current {
                return Err(Error::VersionConflict {
                    stream: stream.to_owned(),
                    aggregate_id: id.to_owned(),
                    expected: expected.current,
                    actual,
                });
            }
        }
        let commands = command_records(&events);
        if let Some((id, _)) = commands
            .iter()
            .find(|(id, _)| state.commands.contains_key(id))
        {
            return Err(Error::DuplicateCommand { command_id: *id });
        }
        state.commands.extend(commands);
        let timestamp = now_millis();
        let mut metas = Vec::with_capacity(events.len());
        for event in events {
            let position = state.events.len() as Position + 1;
            let streams = state.aggregates.entry(event.stream.clone()).or_default();
            let aggregate = match streams.get_mut(event.aggregate_id.as_str()) {
                Some(aggregate) => aggregate,
                None => streams.entry(event.aggregate_id.clone()).or_default(),
            };
            aggregate.push(position);
            let stored = event.stored(position, timestamp);
            metas.push(stored.meta.clone());
            state.events.push(stored);
        }
        let last = state.events.len() as Position;
        drop(state);
        self.appended.send_replace(last);
        Ok(metas)
    }

    fn aggregate_events_now(&self, stream: &str, id: &str, after: u64) -> Vec<StoredEvent> {
        let state = self.lock();
        let newer = state.positions(stream, id).iter().skip(after as usize);
        newer.filter_map(|p| state.event(*p).cloned()).collect()
    }

    /// Visits the events in place, under the lock: loading copies nothing.
    fn visit_now(&self, stream: &str, id: &str, after: u64, visit: &mut Visitor<'_>) -> Result<()> {
        let state = self.lock();
        for p in state.positions(stream, id).iter().skip(after as usize) {
            if let Some(event) = state.event(*p) {
                visit(&event.meta, &event.data)?;
            }
        }
        Ok(())
    }

    fn events_now(&self, streams: &[String], after: Position, limit: usize) -> Vec<StoredEvent> {
        let state = self.lock();
        let rest = state.events.iter().skip(after as usize);
        let matching = rest.filter(|e| in_streams(streams, e) && state.kept(e));
        matching.take(limit).cloned().collect()
    }

    fn last_event_now(&self, streams: &[String], id: Option<&str>) -> Option<StoredEvent> {
        let state = self.lock();
        let matches = |e: &&StoredEvent| {
            in_streams(streams, e) && id.is_none_or(|id| e.meta.aggregate_id == id) && state.kept(e)
        };
        state.events.iter().rev().find(matches).cloned()
    }

    fn retire_now(&self, marker: NewEvent, how: Retire) -> Result<EventMeta> {
        let place = (marker.stream.to_string(), marker.aggregate_id.to_string());
        let meta = self.append_now(vec![marker])?.remove(0);
        let mut state = self.lock();
        let positions = state.positions(&place.0, &place.1).to_vec();
        let below = positions.iter().filter(|p| **p < meta.position);
        let retired: Vec<Position> = below.filter(|p| !state.gone.contains(p)).copied().collect();
        state.gone.extend(&retired);
        if how == Retire::Delete {
            state.archived.remove(&place);
            state.snapshots.remove(&place);
            state.keys.remove(&place);
        } else {
            let events: Vec<StoredEvent> = retired
                .iter()
                .map(|p| state.events[*p as usize - 1].clone())
                .collect();
            state.archived.entry(place).or_default().extend(events);
        }
        Ok(meta)
    }
}

impl State {
    /// The event at a position, unless deleted or archived.
    fn event(&self, position: Position) -> Option<&StoredEvent> {
        Some(&self.events[position as usize - 1]).filter(|e| self.kept(e))
    }

    fn kept(&self, event: &StoredEvent) -> bool {
        !self.gone.contains(&event.meta.position)
    }

    /// The positions of an aggregate's events, in version order.
    fn positions(&self, stream: &str, id: &str) -> &[Position] {
        let found = self.aggregates.get(stream).and_then(|ids| ids.get(id));
        found.map_or(&[], Vec::as_slice)
    }
}

fn in_streams(streams: &[String], event: &StoredEvent) -> bool {
    streams.iter().any(|s| event.meta.stream == *s)
}

impl Provider for MemoryProvider {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        let appended = self.append_now(events);
        async move { appended }.boxed()
    }

    fn command(&self, command_id: Uuid) -> BoxFuture<'_, Result<Option<CommandRecord>>> {
        let found = self.lock().commands.get(&command_id).cloned();
        async move { Ok(found) }.boxed()
    }

    fn retire(&self, marker: NewEvent, how: Retire) -> BoxFuture<'_, Result<EventMeta>> {
        let retired = self.retire_now(marker, how);
        async move { retired }.boxed()
    }

    fn archived_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after: u64,
        before: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let state = self.lock();
        let archived = state
            .archived
            .get(&(stream.to_owned(), aggregate_id.to_owned()));
        let between = archived.into_iter().flatten();
        let between = between.filter(|e| e.meta.version > after && e.meta.version < before);
        let events: Vec<StoredEvent> = between.cloned().collect();
        async move { Ok(events) }.boxed()
    }

    fn aggregate_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<Key>>> {
        let mut state = self.lock();
        let place = (stream.to_owned(), aggregate_id.to_owned());
        let key = match create {
            true => Some(
                state
                    .keys
                    .entry(place)
                    .or_insert_with(Key::generate)
                    .clone(),
            ),
            false => state.keys.get(&place).cloned(),
        };
        async move { Ok(key) }.boxed()
    }

    fn forget_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let mut state = self.lock();
        let place = (stream.to_owned(), aggregate_id.to_owned());
        state.keys.remove(&place);
        state.snapshots.remove(&place);
        async move { Ok(()) }.boxed()
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let events = self.aggregate_events_now(stream, aggregate_id, after_version);
        async move { Ok(events) }.boxed()
    }

    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a SharedStr,
        aggregate_id: &'a SharedStr,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        let visited = self.visit_now(stream, aggregate_id, after_version, visit);
        async move { visited }.boxed()
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let events = self.events_now(streams, after, limit);
        async move { Ok(events) }.boxed()
    }

    fn streams(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        let state = self.lock();
        let mut streams: Vec<String> = state.aggregates.keys().map(|s| s.to_string()).collect();
        drop(state);
        streams.sort();
        async move { Ok(streams) }.boxed()
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        let last = self.last_event_now(streams, aggregate_id);
        async move { Ok(last) }.boxed()
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        let found = check_bookmark(name).map(|()| self.lock().bookmarks.get(name).copied());
        async move { found }.boxed()
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        let saved = check_bookmark(name).map(|()| {
            self.lock().bookmarks.insert(name.to_owned(), position);
        });
        async move { saved }.boxed()
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        let granted = check_bookmark(name).map(|()| {
            let mut state = self.lock();
            let granted = Lease::granted(state.leases.get(name), name, owner, ttl, now_millis());
            if let Some(lease) = &granted {
                state.leases.insert(name.to_owned(), lease.clone());
            }
            granted
        });
        async move { granted }.boxed()
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>> {
        let now = now_millis();
        let mut state = self.lock();
        if let Some(held) = state
            .leases
            .get_mut(&lease.name)
            .filter(|held| lease.is_held(Some(held), now))
        {
            held.expires_at = now - 1;
        }
        drop(state);
        self.appended.send_modify(|_| {});
        async { Ok(()) }.boxed()
    }

    fn set_bookmark_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        let saved = self.save_leased(lease, position, None);
        async move { saved }.boxed()
    }

    fn apply_ask_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
        ask: &'a str,
        asked: Position,
    ) -> BoxFuture<'a, Result<()>> {
        let saved = check_bookmark(ask)
            .and_then(|()| self.save_leased(lease, position, Some((ask, asked))));
        async move { saved }.boxed()
    }

    fn leases<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Lease>>> {
        let now = now_millis();
        let state = self.lock();
        let live = state
            .leases
            .values()
            .filter(|l| l.name.starts_with(prefix) && l.expires_at > now);
        let mut live: Vec<Lease> = live.cloned().collect();
        live.sort_by(|a, b| a.name.cmp(&b.name));
        async move { Ok(live) }.boxed()
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        let key = (stream.to_owned(), aggregate_id.to_owned());
        let found = self.lock().snapshots.get(&key).cloned();
        async move { Ok(found) }.boxed()
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        let key = (snapshot.stream.clone(), snapshot.aggregate_id.clone());
        let mut state = self.lock();
        let newer_kept = state
            .snapshots
            .get(&key)
            .is_some_and(|kept| kept.schema == snapshot.schema && kept.version > snapshot.version);
        if !newer_kept {
            state.snapshots.insert(key, snapshot);
        }
        async { Ok(()) }.boxed()
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }
}
