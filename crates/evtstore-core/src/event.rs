//! The stored shape of events: what providers read and write.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::shared_str::SharedStr;

/// A place in the store-wide order of events. `0` is the start, before any event.
pub type Position = u64;

/// The envelope of a stored event: where it sits in its aggregate and in the store.
///
/// Its names are [`SharedStr`]s: the envelopes of one stream, or of one aggregate's events
/// read together, hold the same string, and a clone copies no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// The aggregate kind, e.g. `"users"`.
    pub stream: SharedStr,
    /// The aggregate the event belongs to.
    pub aggregate_id: SharedStr,
    /// 1, 2, 3… within the aggregate.
    pub version: u64,
    /// Store-wide order, strictly increasing in the order readers may see events.
    pub position: Position,
    /// When the event was appended, in milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// An event as read back from a provider: its envelope and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Where the event sits.
    pub meta: EventMeta,
    /// The serialised event, a JSON object with a `type` field.
    pub data: String,
}

/// An event to append: the provider assigns its position and timestamp.
///
/// Its names are shared like [`EventMeta`]'s: `"users".into()` makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The aggregate kind.
    pub stream: SharedStr,
    /// The aggregate.
    pub aggregate_id: SharedStr,
    /// The version this event takes: the aggregate's current version plus one for its first event.
    pub version: u64,
    /// The serialised event.
    pub data: String,
}

impl NewEvent {
    /// Gives this event its place in the store, as a provider does when it commits it.
    pub fn stored(self, position: Position, timestamp: i64) -> StoredEvent {
        StoredEvent {
            meta: self.meta(position, timestamp),
            data: self.data,
        }
    }

    /// The envelope this event gets at its place in the store; it shares the event's names.
    pub fn meta(&self, position: Position, timestamp: i64) -> EventMeta {
        EventMeta {
            stream: self.stream.clone(),
            aggregate_id: self.aggregate_id.clone(),
            version: self.version,
            position,
            timestamp,
        }
    }
}

/// A snapshot: the folded state of an aggregate, stored beside its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The aggregate kind.
    pub stream: String,
    /// The aggregate.
    pub aggregate_id: String,
    /// The aggregate's [`SNAPSHOT`](crate::Aggregate::SNAPSHOT) schema when the state was
    /// folded; another schema invalidates it.
    pub schema: String,
    /// The aggregate version the state includes.
    pub version: u64,
    /// The position of the last event folded in.
    pub position: Position,
    /// The serialised state.
    pub state: String,
}

/// Milliseconds since the Unix epoch, for providers without a clock of their own.
pub fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as i64
}
