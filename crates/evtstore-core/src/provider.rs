//! For provider authors: the storage backend trait, and the checks and helpers every
//! backend uses. It moves serialised events; typing lives in the domain. Applications only
//! need [`Provider`] itself, re-exported at the crate root.

pub use crate::aggregate::{decode_data, decode_event, decode_known, decode_known_data};
pub use crate::body::{check as check_body, encode as encode_body};
pub use crate::event::now_millis;
pub use crate::group::{GroupAppend, GroupCommit, echo};
pub use crate::group_load::{Load, LoadMany, LoadQueue};
pub use crate::handler::{
    Hooks, Runner, Savepoint, Timing, TxHandler, TxHandlerBuilder, TxProvider, check_routes,
};
pub use crate::lease::ttl_millis;
pub use crate::names::{
    MAX_ID_LEN, MAX_NAME_LEN, append_to, check_above_zero, check_aggregate_id, check_bookmark,
    check_option, check_server_options, check_stream, check_table, shorten, stream_of,
};
pub use crate::retire::Retire;
pub use crate::seal::AggregateKey;
pub use crate::shared_str::SharedNames;
pub use crate::timed_out::{TimedOut, WaitLimit};
pub use crate::upcast::decode_stored;
pub use crate::waiting::{Drive, Waiting};

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::{CommandRecord, EventMeta, NewEvent, Position, Snapshot, StoredEvent};
use crate::lease::Lease;
use crate::shared_str::SharedStr;

/// A storage backend.
///
/// Methods return boxed futures so that a domain can hold any provider as `Arc<dyn Provider>`,
/// and user types never carry a provider parameter. Implement them with `Box::pin(async move {…})`.
/// Every provider passes the conformance suite (`evtstore_core::conformance`, feature `testkit`).
pub trait Provider: Send + Sync + 'static {
    /// A short name for messages and benchmarks: `"memory"`, `"sqlite"`, `"postgres"`.
    fn name(&self) -> &'static str;

    /// Appends the events of one or more aggregates atomically, or nothing.
    ///
    /// Each aggregate's first event must take its current version plus one (see
    /// [`expectations`]); otherwise the whole append fails with [`Error::VersionConflict`].
    /// Events with a [`command_id`](NewEvent::command_id) record it in the same transaction
    /// (see [`command_records`]), and an id recorded already fails the whole append with
    /// [`Error::DuplicateCommand`]. Returns the envelopes of the appended events, in order.
    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>>;

    /// What an append recorded of the command with this id, if any.
    fn command(&self, command_id: Uuid) -> BoxFuture<'_, Result<Option<CommandRecord>>>;

    /// In one transaction, appends `marker` (revision 0, at its aggregate's next version, as
    /// an append would) and deletes or archives the aggregate's events below it: see
    /// [`Retire`]. Deleting also deletes the aggregate's archived events, snapshot and key.
    /// Returns the marker's envelope.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    fn retire(&self, marker: NewEvent, how: Retire) -> BoxFuture<'_, Result<EventMeta>>;

    /// An aggregate's archived events with a version above `after` and below `before`, in
    /// version order.
    fn archived_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after: u64,
        before: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>>;

    /// The key of an aggregate; when it has none and `create` is set, a new one
    /// ([`AggregateKey::generate`]) stored first (racing creators all get the one stored).
    fn aggregate_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>>;

    /// Deletes the key of an aggregate, and its snapshot.
    fn forget_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<()>>;

    /// One aggregate's events with a version above `after_version`, in version order.
    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>>;

    /// Calls `visit` with each of an aggregate's events above `after_version`, in version order,
    /// without collecting them: how aggregates are loaded. The default reads them with
    /// [`aggregate_events`](Self::aggregate_events); a provider may stream them instead, and
    /// give envelopes that share the names it is given.
    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a SharedStr,
        aggregate_id: &'a SharedStr,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let events = self.aggregate_events(stream, aggregate_id, after_version);
            for event in events.await? {
                visit(&event.meta, &event.data)?;
            }
            Ok(())
        })
    }

    /// At most `limit` events of the given streams after `after`, in position order.
    ///
    /// No event may ever appear later at a position at or below one already returned: a reader
    /// that resumes after the last position it saw misses nothing.
    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>>;

    /// The names of the streams that hold events, sorted: what an export of a whole store
    /// reads (see [`jsonl::export`](crate::jsonl::export)).
    fn streams(&self) -> BoxFuture<'_, Result<Vec<String>>>;

    /// The last event of the streams, or of one aggregate in them.
    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>>;

    /// A named bookmark; `None` when it was never set (read it as the start).
    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>>;

    /// Saves a named bookmark.
    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>>;

    /// The snapshot of an aggregate's state, if any.
    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>>;

    /// Stores a snapshot of an aggregate's state, unless one of a later version with the same
    /// schema is stored.
    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>>;

    /// Takes the lease of `name` for `owner` until `ttl` from now, by the store's clock, when it
    /// is free, expired or already this owner's (a renewal); `None` while another owner holds
    /// it. Follows [`Lease::granted`].
    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>>;

    /// Ends a lease at once, if it is still this one, so that another process may take it
    /// without waiting for it to expire; signals [`subscribe`](Self::subscribe)rs.
    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>>;

    /// Saves the bookmark of the lease's name only while the lease is held (same owner and
    /// token, not expired), atomically with that check.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when it is not held any more; nothing is written.
    fn set_bookmark_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
    ) -> BoxFuture<'a, Result<()>>;

    /// Applies another process's ask to move the lease's bookmark: saves the bookmark at
    /// `position` and deletes bookmark `ask` if it still holds `asked` (a newer ask stays), in
    /// one transaction, only while the lease is held. Applied once: if either write fails,
    /// neither is kept.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when the lease is not held any more; nothing is written.
    fn apply_ask_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
        ask: &'a str,
        asked: Position,
    ) -> BoxFuture<'a, Result<()>>;

    /// The unexpired leases whose names start with `prefix`.
    fn leases<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Lease>>>;

    /// Signals new events: the value changes after each append that this process can see
    /// (and is re-sent when a lease is released, so that waiting handlers try to take it).
    ///
    /// Handlers wait on it and poll as a fallback for writers this signal does not reach.
    fn subscribe(&self) -> watch::Receiver<Position>;

    /// True when [`subscribe`](Self::subscribe) also signals bookmark saves made by other
    /// processes; without it, [`Domain::wait_for_bookmark`](crate::Domain::wait_for_bookmark)
    /// looks again every 100 ms instead of every second.
    fn signals_other_processes_bookmarks(&self) -> bool {
        true
    }
}

/// Receives one stored event: its envelope and its JSON body.
pub type Visitor<'v> = dyn FnMut(&EventMeta, &str) -> Result<()> + Send + 'v;

/// The commands an append records: each command id with the aggregate and the version of its
/// last event.
pub fn command_records(events: &[NewEvent]) -> Vec<(Uuid, CommandRecord)> {
    let mut records: Vec<(Uuid, CommandRecord)> = Vec::new();
    for event in events {
        let Some(id) = event.command_id else { continue };
        match records.iter_mut().find(|(known, _)| *known == id) {
            Some((_, record)) => record.version = record.version.max(event.version),
            None => records.push((
                id,
                CommandRecord {
                    stream: event.stream.to_string(),
                    aggregate_id: event.aggregate_id.to_string(),
                    version: event.version,
                },
            )),
        }
    }
    records
}

/// What an append expects of one aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation<'a> {
    /// The aggregate kind.
    pub stream: &'a str,
    /// The aggregate.
    pub aggregate_id: &'a str,
    /// The version the aggregate must be at now.
    pub current: u64,
    /// The indexes of the events that belong to it: `events[range.0..range.1]`.
    pub range: (usize, usize),
}

/// Checks an append's names and versions, and says which version each aggregate must be at now.
///
/// Each aggregate's events must be adjacent and consecutive. Providers call this first.
///
/// # Errors
/// [`Error::InvalidName`] for a bad stream or aggregate id; [`Error::InvalidAppend`] for a body
/// that is not a JSON object or versions that do not follow each other.
pub fn expectations(events: &[NewEvent]) -> Result<Expectations<'_>> {
    let mut found = Expectations::Many(Vec::new());
    for (index, event) in events.iter().enumerate() {
        check_stream(&event.stream)?;
        check_aggregate_id(&event.aggregate_id)?;
        crate::body::check(&event.data).map_err(|reason| invalid(event, reason))?;
        match found.last_mut() {
            Some(last) if same_aggregate(last, event) => {
                if event.version != last.current + 1 + (index - last.range.0) as u64 {
                    return Err(invalid(event, "versions must follow each other"));
                }
                last.range.1 = index + 1;
            }
            _ => {
                if event.version == 0 {
                    return Err(invalid(event, "versions start at 1"));
                }
                if found.iter().any(|e| same_aggregate(e, event)) {
                    return Err(invalid(event, "an aggregate's events must be adjacent"));
                }
                found.push(Expectation {
                    stream: &event.stream,
                    aggregate_id: &event.aggregate_id,
                    current: event.version - 1,
                    range: (index, index + 1),
                });
            }
        }
    }
    Ok(found)
}

/// What an append expects, one [`Expectation`] per aggregate: a slice, held without an
/// allocation for an append to one aggregate (the usual command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectations<'a> {
    /// One aggregate.
    One(Expectation<'a>),
    /// None, or several.
    Many(Vec<Expectation<'a>>),
}

impl<'a> Expectations<'a> {
    fn push(&mut self, expectation: Expectation<'a>) {
        *self = match std::mem::replace(self, Expectations::Many(Vec::new())) {
            Expectations::Many(none) if none.is_empty() => Expectations::One(expectation),
            Expectations::One(first) => Expectations::Many(vec![first, expectation]),
            Expectations::Many(mut several) => {
                several.push(expectation);
                Expectations::Many(several)
            }
        }
    }

    fn last_mut(&mut self) -> Option<&mut Expectation<'a>> {
        match self {
            Expectations::One(one) => Some(one),
            Expectations::Many(several) => several.last_mut(),
        }
    }
}

impl<'a> std::ops::Deref for Expectations<'a> {
    type Target = [Expectation<'a>];

    fn deref(&self) -> &Self::Target {
        match self {
            Expectations::One(one) => std::slice::from_ref(one),
            Expectations::Many(several) => several,
        }
    }
}

impl<'a> IntoIterator for Expectations<'a> {
    type Item = Expectation<'a>;
    type IntoIter = std::iter::Chain<
        std::option::IntoIter<Expectation<'a>>,
        std::vec::IntoIter<Expectation<'a>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let (one, several) = match self {
            Expectations::One(one) => (Some(one), Vec::new()),
            Expectations::Many(several) => (None, several),
        };
        one.into_iter().chain(several)
    }
}

impl<'a, 'b> IntoIterator for &'b Expectations<'a> {
    type Item = &'b Expectation<'a>;
    type IntoIter = std::slice::Iter<'b, Expectation<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn same_aggregate(expectation: &Expectation<'_>, event: &NewEvent) -> bool {
    event.stream == expectation.stream && event.aggregate_id == expectation.aggregate_id
}

fn invalid(event: &NewEvent, reason: &'static str) -> Error {
    Error::InvalidAppend {
        stream: event.stream.to_string(),
        aggregate_id: event.aggregate_id.to_string(),
        version: event.version,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, version: u64) -> NewEvent {
        NewEvent::new("s", id, version, "{}")
    }

    #[test]
    fn groups_events_per_aggregate() {
        let events = [event("a", 3), event("a", 4), event("b", 1)];
        let found = expectations(&events).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].current, found[0].range), (2, (0, 2)));
        assert_eq!((found[1].current, found[1].range), (0, (2, 3)));
    }

    #[test]
    fn refuses_gaps_and_split_aggregates() {
        assert!(expectations(&[event("a", 1), event("a", 3)]).is_err());
        assert!(expectations(&[event("a", 1), event("b", 1), event("a", 2)]).is_err());
        let error = expectations(&[event("a", 0)]).unwrap_err().to_string();
        assert_eq!(
            error,
            "invalid append to s/a at version 0: versions start at 1"
        );
        assert!(expectations(&[event("", 1)]).is_err());
    }
}
