//! Upcasting: events stored in an older shape are brought to the current one as they are
//! read. Stored rows are never rewritten.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aggregate::{Aggregate, UnknownEvents, decode_error, decode_known_data};
use crate::error::Result;
use crate::event::EventMeta;

/// A stored body on its way up: as read, or as the last step left it.
enum Body<'a> {
    Stored(&'a str),
    Upcast(Shape),
}

/// An event in the shape a step gave it, typed; written as JSON only when the next reader
/// takes another type.
struct Shape {
    value: Box<dyn Any>,
    to_json: fn(&dyn Any) -> serde_json::Result<Value>,
    event_type: &'static str,
}

impl Shape {
    /// The value as a `T`: itself when it is one, else through JSON (keeping its `type`).
    fn into<T: DeserializeOwned + 'static>(self) -> serde_json::Result<T> {
        match self.value.downcast::<T>() {
            Ok(value) => Ok(*value),
            Err(value) => {
                let mut json = (self.to_json)(&*value)?;
                if let Value::Object(fields) = &mut json {
                    fields
                        .entry("type")
                        .or_insert_with(|| self.event_type.into());
                }
                serde_json::from_value(json)
            }
        }
    }
}

fn json_of<T: Serialize + 'static>(value: &dyn Any) -> serde_json::Result<Value> {
    let value = value
        .downcast_ref::<T>()
        .expect("a shape holds its own type");
    serde_json::to_value(value)
}

type Step = Box<dyn Fn(Body<'_>) -> serde_json::Result<Shape> + Send + Sync>;

/// The upcasters of an aggregate kind: typed functions, each from the shape an event type had
/// at one revision to its shape at the next. Declare them in
/// [`Aggregate::upcasters`](crate::Aggregate::upcasters) and raise
/// [`Aggregate::REVISION`](crate::Aggregate::REVISION).
///
/// An event stored at revision `r` goes through the upcasters of its type from revision `r`
/// on, in order; a type with none there is read as stored. The output keeps the event's
/// `type` unless it sets one.
///
/// ```
/// use evtstore_core::{Aggregate, EventMeta, Upcasters};
/// use serde::{Deserialize, Serialize};
///
/// /// How `created` looked up to revision 1.
/// #[derive(Deserialize)]
/// struct CreatedV1 { name: String }
///
/// #[derive(Debug, Clone, Serialize, Deserialize)]
/// #[serde(tag = "type", rename_all = "camelCase")]
/// enum UserEvent { Created { first: String, last: String } }
///
/// #[derive(Serialize)]
/// struct CreatedV2 { first: String, last: String }
///
/// #[derive(Debug, Clone, Default, Serialize, Deserialize)]
/// struct User { first: String }
///
/// impl Aggregate for User {
///     const STREAM: &'static str = "users";
///     const REVISION: u32 = 2;
///     type Event = UserEvent;
///     fn fold(&mut self, event: &UserEvent, _: &EventMeta) {
///         let UserEvent::Created { first, .. } = event;
///         self.first = first.clone();
///     }
///     fn upcasters() -> Upcasters {
///         Upcasters::new().add("created", 1, |old: CreatedV1| {
///             let (first, last) = old.name.split_once(' ').unwrap_or((&old.name, ""));
///             CreatedV2 { first: first.into(), last: last.into() }
///         })
///     }
/// }
/// ```
#[derive(Default)]
pub struct Upcasters {
    /// By event type: (revision, step), in revision order.
    steps: HashMap<&'static str, Vec<(u32, Step)>>,
}

impl Upcasters {
    /// None: every event is read as stored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Upcasts events of `event_type` from their shape at revision `from` (`Old`) to their
    /// shape at `from + 1` (`New`). The last step may give the aggregate's event type itself,
    /// which saves writing the event as JSON and reading it back (as does a step that takes
    /// the previous step's `New` as its `Old`).
    pub fn add<Old, New>(
        mut self,
        event_type: &'static str,
        from: u32,
        upcast: fn(Old) -> New,
    ) -> Self
    where
        Old: DeserializeOwned + 'static,
        New: Serialize + 'static,
    {
        let step: Step = Box::new(move |body| {
            let old: Old = match body {
                Body::Stored(text) => serde_json::from_str(text)?,
                Body::Upcast(shape) => shape.into()?,
            };
            let to_json = json_of::<New>;
            let value = Box::new(upcast(old));
            Ok(Shape {
                value,
                to_json,
                event_type,
            })
        });
        let steps = self.steps.entry(event_type).or_default();
        steps.push((from, step));
        steps.sort_by_key(|(revision, _)| *revision);
        self
    }

    /// The body brought up to date: `None` when no step applies.
    fn upcast(
        &self,
        meta: &EventMeta,
        data: &str,
        revision: u32,
    ) -> serde_json::Result<Option<Shape>> {
        #[derive(serde::Deserialize)]
        struct Typed<'a> {
            #[serde(borrow)]
            r#type: std::borrow::Cow<'a, str>,
        }
        let Ok(typed) = serde_json::from_str::<Typed<'_>>(data) else {
            return Ok(None);
        };
        let Some(steps) = self.steps.get(typed.r#type.as_ref()) else {
            return Ok(None);
        };
        let mut body = Body::Stored(data);
        let due = |from: &u32| (meta.revision..revision).contains(from);
        for (_, step) in steps.iter().filter(|(from, _)| due(from)) {
            body = Body::Upcast(step(body)?);
        }
        Ok(match body {
            Body::Stored(_) => None,
            Body::Upcast(shape) => Some(shape),
        })
    }
}

/// Decodes a stored event of kind `A`, upcasting it first when it was stored at an older
/// revision; `Ok(None)` when its type is unknown and `unknown` skips it.
///
/// # Errors
/// As [`decode_known_data`]; [`Error::Decode`](crate::Error::Decode) naming the event when an
/// upcaster's input or output does not decode.
pub fn decode_stored<A: Aggregate>(
    meta: &EventMeta,
    data: &str,
    unknown: UnknownEvents,
) -> Result<Option<A::Event>> {
    if meta.revision >= A::REVISION {
        return decode_known_data(meta, data, unknown);
    }
    match upcasters::<A>().upcast(meta, data, A::REVISION) {
        Ok(None) => decode_known_data(meta, data, unknown),
        Ok(Some(shape)) => shape
            .into::<A::Event>()
            .map(Some)
            .map_err(|source| decode_error(meta, source)),
        Err(source) => Err(decode_error(meta, source)),
    }
}

/// The upcasters of `A`, declared once per process.
fn upcasters<A: Aggregate>() -> &'static Upcasters {
    type Registry = RwLock<HashMap<TypeId, &'static (dyn Any + Send + Sync)>>;
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(Default::default);
    let known = registry.read().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = known.get(&TypeId::of::<A>()) {
        return found.downcast_ref().expect("registered by type");
    }
    drop(known);
    let mut all = registry.write().unwrap_or_else(|e| e.into_inner());
    let entry = all
        .entry(TypeId::of::<A>())
        .or_insert_with(|| Box::leak(Box::new(A::upcasters())));
    entry.downcast_ref().expect("registered by type")
}
