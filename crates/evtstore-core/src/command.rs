//! Commands: intents against one aggregate, turned into events by their handler.

use std::future::Future;

use crate::aggregate::{Aggregate, Loaded};
use crate::domain::Domain;
use crate::error::{Error, ErrorKind};

/// The events a command produces for its aggregate kind.
pub type Events<A> = Vec<<A as Aggregate>::Event>;

/// What a command's handler returns: its events, or why not.
pub type Decision<C, D> =
    Result<Events<<C as Command<D>>::Aggregate>, CommandError<<C as Command<D>>::Error>>;

/// A command against one aggregate kind of domain `D`.
///
/// The handler gets the command, the current aggregate, and the domain (to read other
/// aggregates with `?`), and returns no event, one or several, or an error: its own
/// [`Error`](Self::Error) type, rejected with `Err(MyError::…)?`, or a store failure.
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
/// use evtstore_core::{Command, Decision, Domain, Loaded, Rejection};
///
/// #[derive(Debug, thiserror::Error)]
/// enum CounterError {
///     #[error("the total would pass {limit}")]
///     TooMuch { limit: i64 },
/// }
/// impl Rejection for CounterError {}
///
/// struct Add { by: i64 }
///
/// impl<D> Command<D> for Add {
///     type Aggregate = Counter;
///     type Error = CounterError;
///
///     async fn handle(self, counter: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
///         if counter.state.total + self.by > 100 {
///             Err(CounterError::TooMuch { limit: 100 })?;
///         }
///         Ok(vec![CounterEvent::Added { by: self.by }])
///     }
/// }
/// ```
pub trait Command<D>: Send + Sized {
    /// The aggregate kind the command acts on.
    type Aggregate: Aggregate;

    /// Why the command may be refused: your own error type. Use
    /// [`Infallible`](std::convert::Infallible) for a command that always succeeds.
    type Error: Rejection;

    /// Decides the events.
    fn handle(
        self,
        aggregate: &Loaded<Self::Aggregate>,
        domain: &Domain<D>,
    ) -> impl Future<Output = Decision<Self, D>> + Send;
}

/// Marks an error type as a command's rejection, so that `?` turns it into
/// [`CommandError::Rejected`]: `impl evtstore::Rejection for MyError {}`.
pub trait Rejection: std::error::Error + Send + Sync + 'static {}

impl Rejection for std::convert::Infallible {}

/// Why a command did not append: its own rejection, a conflict with another writer, or a
/// store failure. `?` converts both the command's error type and [`enum@Error`] into it.
///
/// ```
/// # use evtstore_core::{CommandError, Error, ErrorKind};
/// # fn status<E: evtstore_core::Rejection>(outcome: CommandError<E>) -> u16 {
/// match outcome {
///     CommandError::Rejected(_) => 422,
///     CommandError::Conflict(_) => 409,
///     CommandError::Store(_) => 503,
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The command's handler refused it: nothing was written.
    #[error("command rejected: {0}")]
    Rejected(E),
    /// Another writer appended to the aggregate first (or got in the way): nothing was
    /// written; reload and retry, or use [`Domain::execute_retrying`].
    #[error(transparent)]
    Conflict(Error),
    /// The store failed, or the input broke a rule: see the error's [`kind`](Error::kind).
    #[error(transparent)]
    Store(Error),
}

impl<E> CommandError<E> {
    /// What kind of failure this is: [`ErrorKind::Rejected`] for the command's own error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommandError::Rejected(_) => ErrorKind::Rejected,
            CommandError::Conflict(error) | CommandError::Store(error) => error.kind(),
        }
    }

    /// The command's own error, when it was rejected.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            CommandError::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// True when another writer got in the way: the same command may succeed after a reload.
    pub fn is_conflict(&self) -> bool {
        matches!(self, CommandError::Conflict(_))
    }
}

impl<E: Rejection> From<E> for CommandError<E> {
    fn from(rejection: E) -> Self {
        CommandError::Rejected(rejection)
    }
}

impl<E> From<Error> for CommandError<E> {
    fn from(error: Error) -> Self {
        if error.kind() == ErrorKind::Conflict {
            CommandError::Conflict(error)
        } else {
            CommandError::Store(error)
        }
    }
}

impl<E: Rejection> From<CommandError<E>> for Error {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Rejected(rejection) => Error::Rejected {
                source: Box::new(rejection),
            },
            CommandError::Conflict(error) | CommandError::Store(error) => error,
        }
    }
}
