//! Aggregates: state folded from an aggregate's events.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::event::{EventMeta, Position, StoredEvent};

/// An aggregate kind: its stream, its event enum, its state and its fold.
///
/// The state starts as `Default::default()`. Events are serialised as JSON objects with a
/// `type` field, so declare the event enum with `#[serde(tag = "type")]`.
///
/// ```
/// use evtstore_core::{Aggregate, EventMeta};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// #[serde(tag = "type", rename_all = "camelCase")]
/// enum CounterEvent { Added { by: i64 } }
///
/// #[derive(Debug, Clone, Default, Serialize, Deserialize)]
/// struct Counter { total: i64 }
///
/// impl Aggregate for Counter {
///     const STREAM: &'static str = "counters";
///     type Event = CounterEvent;
///     fn fold(&mut self, event: &CounterEvent, _meta: &EventMeta) {
///         match event { CounterEvent::Added { by } => self.total += by }
///     }
/// }
/// ```
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The stream that holds this kind's events, e.g. `"users"`.
    const STREAM: &'static str;

    /// Aggregate persistence: when set, every command executed (or append made) through the
    /// domain stores the folded state beside the events, and loads start from it while this
    /// version string is unchanged. Change the string whenever `fold` changes, and stored
    /// copies are ignored until rewritten. (`Batch` and appends inside your own transaction
    /// store no copy; the next command does.)
    const PERSIST: Option<&'static str> = None;

    /// The event enum of this kind.
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Folds one event into the state.
    fn fold(&mut self, event: &Self::Event, meta: &EventMeta);
}

/// An aggregate as loaded: its id, version and position, and its state in `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The aggregate's id.
    pub id: String,
    /// How many events it has: 0 when it has none.
    pub version: u64,
    /// The position of its last event (0 when it has none).
    pub position: Position,
    /// The folded state.
    pub state: A,
}

impl<A: Aggregate> Loaded<A> {
    /// An aggregate with no events.
    pub fn new(id: impl Into<String>) -> Self {
        Loaded {
            id: id.into(),
            version: 0,
            position: 0,
            state: A::default(),
        }
    }

    /// Folds an event in and moves the version and position to its own.
    pub fn apply(&mut self, event: &A::Event, meta: &EventMeta) {
        self.state.fold(event, meta);
        self.version = meta.version;
        self.position = meta.position;
    }
}

/// Decodes a stored event's body; the error names the event's place.
pub fn decode_event<E: DeserializeOwned>(stored: &StoredEvent) -> Result<E> {
    decode_data(&stored.meta, &stored.data)
}

/// Decodes an event body; the error names the event's place.
pub fn decode_data<E: DeserializeOwned>(meta: &EventMeta, data: &str) -> Result<E> {
    serde_json::from_str(data).map_err(|source| Error::Decode {
        stream: meta.stream.clone(),
        aggregate_id: meta.aggregate_id.clone(),
        version: meta.version,
        position: meta.position,
        source,
    })
}
