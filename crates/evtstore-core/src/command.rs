//! Commands: intents against one aggregate, turned into events by their handler.

use std::future::Future;

use crate::aggregate::{Aggregate, Loaded};
use crate::domain::Domain;
use crate::error::CommandError;

/// The events a command produces for its aggregate kind.
pub type Events<A> = Vec<<A as Aggregate>::Event>;

/// A command against one aggregate kind of domain `D`.
///
/// The handler gets the command, the current aggregate, and the domain (to read other
/// aggregates), and returns no event, one or several, or a [`CommandError`].
/// Implement it for every domain with `impl<D> Command<D> for …` unless it reads other aggregates.
///
/// ```
/// # use evtstore_core::{Aggregate, EventMeta};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # #[serde(tag = "type")]
/// # enum CounterEvent { Added { by: i64 } }
/// # #[derive(Debug, Clone, Default, Serialize, Deserialize)]
/// # struct Counter { total: i64 }
/// # impl Aggregate for Counter {
/// #     const STREAM: &'static str = "counters";
/// #     type Event = CounterEvent;
/// #     fn fold(&mut self, event: &CounterEvent, _: &EventMeta) {
/// #         match event { CounterEvent::Added { by } => self.total += by }
/// #     }
/// # }
/// use evtstore_core::{Command, CommandError, Domain, Events, Loaded};
///
/// struct Add { by: i64 }
///
/// impl<D> Command<D> for Add {
///     type Aggregate = Counter;
///
///     async fn handle(self, counter: &Loaded<Counter>, _: &Domain<D>) -> Result<Events<Counter>, CommandError> {
///         if counter.total + self.by > 100 {
///             return Err(CommandError::with_code("too much", "LIMIT"));
///         }
///         Ok(vec![CounterEvent::Added { by: self.by }])
///     }
/// }
/// ```
pub trait Command<D>: Send + Sized {
    /// The aggregate kind the command acts on.
    type Aggregate: Aggregate;

    /// Decides the events.
    fn handle(
        self,
        aggregate: &Loaded<Self::Aggregate>,
        domain: &Domain<D>,
    ) -> impl Future<Output = Result<Events<Self::Aggregate>, CommandError>> + Send;
}
