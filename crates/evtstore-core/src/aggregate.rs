//! Aggregates: state folded from an aggregate's events.

use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};
use crate::event::{EventMeta, Position, StoredEvent};
use crate::shared_str::SharedStr;
use crate::upcast::Upcasters;

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

    /// Snapshots: when set, the domain stores a snapshot of the folded state beside the events
    /// (every [`SNAPSHOT_EVERY`](Self::SNAPSHOT_EVERY) events, or on demand with
    /// [`Domain::save_snapshot`](crate::Domain::save_snapshot)), and loads start from it while
    /// this schema string is unchanged, folding only newer events. Change the string whenever
    /// `fold` or the state changes: snapshots of another schema are ignored until rewritten.
    /// A load reads the snapshot first, one more read of the store: worth it for aggregates
    /// that grow long, not for those of a few events.
    const SNAPSHOT: Option<&'static str> = None;

    /// When a snapshotted aggregate stores its snapshot: when an append through the domain (a
    /// command, or [`Domain::append`](crate::Domain::append)) takes its version across a
    /// multiple of this number, so a command appending several events never skips its turn.
    /// 1 stores one with every append; 0 only on demand
    /// ([`Domain::save_snapshot`](crate::Domain::save_snapshot)). `Batch` and appends inside
    /// your own transaction store none; the next append through the domain that crosses a
    /// multiple does.
    ///
    /// The default, 100, writes one snapshot per hundred events instead of one per append
    /// (which doubles a command's writes), while a load still folds at most about a hundred
    /// events after the snapshot: one read, and far less work than a round trip to the store.
    /// Lower it when folding an event is costly.
    const SNAPSHOT_EVERY: u64 = 100;

    /// What a load does with an event whose type this build does not know (a newer build
    /// wrote it during a rolling deploy): fail, naming it (the default), or skip it.
    const UNKNOWN_EVENTS: UnknownEvents = UnknownEvents::Fail;

    /// Crypto-shredding: when set, each event body of this kind is sealed with a key of its
    /// aggregate, and [`Domain::shred`](crate::Domain::shred) forgets the key. The event's
    /// `type` stays readable. An encrypted kind keeps no snapshots (their state would be
    /// plain text), whatever [`SNAPSHOT`](Self::SNAPSHOT) says.
    const ENCRYPTED: bool = false;

    /// The revision of this kind's event shapes, stored with each event it appends. Raise it
    /// when an event changes shape, and upcast the older shapes (see `upcasters`).
    const REVISION: u32 = 1;

    /// The event enum of this kind.
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Folds one event into the state.
    fn fold(&mut self, event: &Self::Event, meta: &EventMeta);

    /// Called by loads, in place of [`fold`](Self::fold), for an event whose key was
    /// shredded. Does nothing by default.
    fn shredded(&mut self, _meta: &EventMeta) {}

    /// The upcasters from the older shapes of this kind's events (stored at a revision below
    /// [`REVISION`](Self::REVISION)) to the current ones: see [`Upcasters`]. None by default.
    fn upcasters() -> Upcasters {
        Upcasters::new()
    }
}

/// An aggregate as loaded: its id, version and position, and its state in `state`.
///
/// ```
/// # use evtstore_core::conformance::domain::{CreateUser, Tests, User};
/// # use evtstore_core::{Domain, MemoryProvider};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
/// let user = domain.execute("u1", CreateUser { name: "ada".into() }).await?;
/// assert_eq!((user.id.as_str(), user.version, user.state.name.as_str()), ("u1", 1, "ada"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The aggregate's id, shared with the envelopes of the events it appends.
    pub id: SharedStr,
    /// How many events it has: 0 when it has none.
    pub version: u64,
    /// The position of its last event (0 when it has none).
    pub position: Position,
    /// The folded state.
    pub state: A,
}

impl<A: Aggregate> Loaded<A> {
    /// An aggregate with no events.
    pub fn new(id: impl Into<SharedStr>) -> Self {
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

    /// Moves the version and position past an event without folding it: one of a type this
    /// build does not know, skipped by [`Aggregate::UNKNOWN_EVENTS`].
    pub(crate) fn skip(&mut self, meta: &EventMeta) {
        tracing::warn!(stream = %meta.stream, id = %meta.aggregate_id, version = meta.version, "unknown event type skipped");
        self.pass(meta);
    }

    /// Moves the version and position past an event without folding it.
    pub(crate) fn pass(&mut self, meta: &EventMeta) {
        self.version = meta.version;
        self.position = meta.position;
    }
}

/// What to do with a stored event whose `type` the event enum does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownEvents {
    /// Fail with [`Error::UnknownEventType`] naming the type and the event.
    #[default]
    Fail,
    /// Skip it: a load moves past it without folding it, a handler reports it to its
    /// `on_error` hook (and the log) and moves on.
    Skip,
}

/// Decodes a stored event's body; `Ok(None)` when its type is unknown and the policy skips it.
///
/// # Errors
/// [`Error::Decode`] naming the event's place; [`Error::UnknownEventType`] for a type the enum
/// does not know, unless the policy skips it.
pub fn decode_known<E: DeserializeOwned>(
    stored: &StoredEvent,
    unknown: UnknownEvents,
) -> Result<Option<E>> {
    decode_known_data(&stored.meta, &stored.data, unknown)
}

/// [`decode_known`] on an envelope and a body.
///
/// # Errors
/// As [`decode_known`].
pub fn decode_known_data<E: DeserializeOwned>(
    meta: &EventMeta,
    data: &str,
    unknown: UnknownEvents,
) -> Result<Option<E>> {
    let source = match serde_json::from_str(data) {
        Ok(event) => return Ok(Some(event)),
        Err(source) => source,
    };
    let Some(event_type) = unknown_type(&source, data) else {
        return Err(decode_error(meta, source));
    };
    match unknown {
        UnknownEvents::Skip => Ok(None),
        UnknownEvents::Fail => Err(Error::UnknownEventType {
            stream: meta.stream.to_string(),
            aggregate_id: meta.aggregate_id.to_string(),
            version: meta.version,
            position: meta.position,
            event_type,
            skipped: false,
        }),
    }
}

/// The body's `type` when serde refused it as an unknown variant: the event enum has no such
/// type. Another unknown variant deeper in the body is a plain decode error.
fn unknown_type(error: &serde_json::Error, data: &str) -> Option<String> {
    let message = error.to_string();
    let named = message
        .strip_prefix("unknown variant `")?
        .split('`')
        .next()?;
    let event_type = event_type(data)?;
    (named == event_type).then_some(event_type)
}

/// The `type` field of an event body, if it has one.
pub(crate) fn event_type(data: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        r#type: String,
    }
    serde_json::from_str::<Typed>(data).ok().map(|t| t.r#type)
}

/// Decodes a stored event's body.
///
/// # Errors
/// [`Error::Decode`] or [`Error::UnknownEventType`], naming the event's place.
pub fn decode_event<E: DeserializeOwned>(stored: &StoredEvent) -> Result<E> {
    decode_data(&stored.meta, &stored.data)
}

/// Decodes an event body.
///
/// # Errors
/// As [`decode_event`].
pub fn decode_data<E: DeserializeOwned>(meta: &EventMeta, data: &str) -> Result<E> {
    let decoded = decode_known_data(meta, data, UnknownEvents::Fail)?;
    Ok(decoded.expect("failing on unknown types never skips"))
}

pub(crate) fn decode_error(meta: &EventMeta, source: serde_json::Error) -> Error {
    Error::Decode {
        stream: meta.stream.to_string(),
        aggregate_id: meta.aggregate_id.to_string(),
        version: meta.version,
        position: meta.position,
        source,
    }
}
