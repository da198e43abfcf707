//! The stored shape of events: what providers read and write.

use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

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
    /// The event's own id, unique in the store: a UUID v7 given when it was first appended,
    /// kept by exports and imports.
    pub event_id: Uuid,
    /// The id shared by everything that followed from one request: given with the command,
    /// or taken from the event a handler was handling when it executed the command.
    pub correlation_id: Option<Uuid>,
    /// The id of what caused this event: given with the command, or the id of the event a
    /// handler was handling when it executed the command.
    pub causation_id: Option<Uuid>,
    /// Free-form metadata given with the command, as JSON text; read it with
    /// [`metadata`](Self::metadata).
    pub metadata: Option<SharedStr>,
    /// The revision of the body's shape when it was written; older ones are upcast on read.
    pub revision: u32,
}

impl EventMeta {
    /// The metadata given with the command, decoded; `None` when there is none.
    ///
    /// # Errors
    /// When it does not decode as `T`.
    pub fn metadata<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<Option<T>> {
        self.metadata
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
    }
}

/// An event as read back from a provider: its envelope and its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Where the event sits.
    pub meta: EventMeta,
    /// The serialised event, a JSON object with a `type` field.
    pub data: String,
}

/// An event to append: the provider assigns its position (and its timestamp, unless it has
/// one already: an imported event keeps its own).
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
    /// As [`EventMeta::event_id`].
    pub event_id: Uuid,
    /// As [`EventMeta::correlation_id`].
    pub correlation_id: Option<Uuid>,
    /// As [`EventMeta::causation_id`].
    pub causation_id: Option<Uuid>,
    /// As [`EventMeta::metadata`].
    pub metadata: Option<SharedStr>,
    /// As [`EventMeta::revision`].
    pub revision: u32,
    /// When it was first appended, for an imported event; `None` takes the store's clock.
    pub timestamp: Option<i64>,
    /// The id of the command that appends it, which the provider records with the append
    /// (see [`Provider::command`](crate::Provider::command)); not part of the envelope.
    pub command_id: Option<Uuid>,
}

impl NewEvent {
    /// An event with a new id, revision 1, and no cause or metadata.
    ///
    /// ```
    /// let event = evtstore_core::NewEvent::new("users", "u1", 1, r#"{"type":"created"}"#);
    /// assert_eq!((event.version, event.revision), (1, 1));
    /// ```
    pub fn new(
        stream: impl Into<SharedStr>,
        aggregate_id: impl Into<SharedStr>,
        version: u64,
        data: impl Into<String>,
    ) -> Self {
        NewEvent {
            stream: stream.into(),
            aggregate_id: aggregate_id.into(),
            version,
            data: data.into(),
            event_id: Uuid::now_v7(),
            correlation_id: None,
            causation_id: None,
            metadata: None,
            revision: 1,
            timestamp: None,
            command_id: None,
        }
    }

    /// Gives this event its place in the store, as a provider does when it commits it.
    pub fn stored(self, position: Position, timestamp: i64) -> StoredEvent {
        StoredEvent {
            meta: self.meta(position, timestamp),
            data: self.data,
        }
    }

    /// The envelope this event gets at its place in the store; it shares the event's names.
    /// `timestamp` is the store's clock, used unless the event has its own.
    pub fn meta(&self, position: Position, timestamp: i64) -> EventMeta {
        EventMeta {
            stream: self.stream.clone(),
            aggregate_id: self.aggregate_id.clone(),
            version: self.version,
            position,
            timestamp: self.timestamp.unwrap_or(timestamp),
            event_id: self.event_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            metadata: self.metadata.clone(),
            revision: self.revision,
        }
    }
}

/// What an append recorded of a command that had an id: the aggregate it appended to, and the
/// version of its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// The aggregate kind.
    pub stream: String,
    /// The aggregate.
    pub aggregate_id: String,
    /// The version its last event took.
    pub version: u64,
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
