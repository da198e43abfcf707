//! The one error type of evtstore.

use crate::event::Position;

/// An error from any part of a handler callback or provider, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A shorthand for results of evtstore calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in evtstore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another writer appended to the aggregate first; nothing of this append was written.
    #[error(
        "version conflict on {stream}/{aggregate_id}: expected version {expected}, found {actual}"
    )]
    VersionConflict {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
        /// The version the append expected the aggregate to be at.
        expected: u64,
        /// The version the aggregate is at (or, when unknown, the version that already exists).
        actual: u64,
    },
    /// An append carried a command id that an earlier append recorded: nothing of it was
    /// written. [`Domain::execute_with`](crate::Domain::execute_with) answers a retry with the
    /// first execution's result instead.
    #[error("command {command_id} was executed already")]
    DuplicateCommand {
        /// The command's id.
        command_id: uuid::Uuid,
    },
    /// A command id given again with a command on another aggregate.
    #[error(
        "command id {command_id} was used on {stream}/{aggregate_id}, not on {given_stream}/{given_id}"
    )]
    CommandIdReused {
        /// The command's id.
        command_id: uuid::Uuid,
        /// The aggregate kind the id was first used on.
        stream: String,
        /// The aggregate the id was first used on.
        aggregate_id: String,
        /// The aggregate kind given now.
        given_stream: String,
        /// The aggregate given now.
        given_id: String,
    },
    /// The aggregate was deleted: its events are gone, and it takes no more.
    #[error("{stream}/{aggregate_id} was deleted")]
    Deleted {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
    },
    /// A command's handler rejected the command: its own error, boxed (see
    /// [`CommandError`](crate::CommandError) for the typed one).
    #[error("command rejected: {source}")]
    Rejected {
        /// The command's error.
        source: BoxError,
    },
    /// A name or id given to evtstore is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// What kind of name: "stream", "aggregate id", "bookmark", "table".
        what: &'static str,
        /// The name as given.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An append that breaks the rules: nothing of it was written.
    #[error("invalid append to {stream}/{aggregate_id} at version {version}: {reason}")]
    InvalidAppend {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
        /// The offending event's version.
        version: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A line of a JSON Lines import ([`jsonl::import`](crate::jsonl::import)) that is not an
    /// event, or an event that cannot take its place in the store: the lines before it were
    /// imported, none from it on.
    #[error("line {line} of the import: {reason}")]
    Import {
        /// The line's number, from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot was asked of an aggregate kind that keeps none: it sets no
    /// [`SNAPSHOT`](crate::Aggregate::SNAPSHOT) schema, or it is
    /// [`ENCRYPTED`](crate::Aggregate::ENCRYPTED). Nothing was stored.
    #[error(
        "cannot snapshot {stream}/{aggregate_id}: aggregate kind {stream:?} keeps no snapshots \
         (it sets no Aggregate::SNAPSHOT schema, or it is ENCRYPTED)"
    )]
    NotSnapshotted {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
    },
    /// A stored event no longer deserialises into its type.
    #[error(
        "cannot decode event {stream}/{aggregate_id} version {version} at position {position}: {source}"
    )]
    Decode {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
        /// The event's version.
        version: u64,
        /// The event's position.
        position: Position,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A stored event has a `type` this build's event enum does not know: a newer build wrote
    /// it. Deploy the newer build, or let the aggregate or handler skip unknown types.
    #[error(
        "unknown event type {event_type:?} in {stream}/{aggregate_id} version {version} at \
         position {position}{}: a newer build may have written it",
        if *skipped { " (skipped)" } else { "" }
    )]
    UnknownEventType {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
        /// The event's version.
        version: u64,
        /// The event's position.
        position: Position,
        /// The type as stored.
        event_type: String,
        /// True when it was skipped and is only being reported.
        skipped: bool,
    },
    /// An event or aggregate could not be serialised.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An event handler's callback failed or panicked on an event.
    #[error(
        "handler {handler:?} failed on {stream}/{aggregate_id} at position {position}: {source}"
    )]
    Handler {
        /// The handler's name.
        handler: String,
        /// The event's stream.
        stream: String,
        /// The event's aggregate.
        aggregate_id: String,
        /// The event's version.
        version: u64,
        /// The event's position.
        position: Position,
        /// What the callback returned.
        #[source]
        source: BoxError,
    },
    /// An append inside a caller's transaction that began writing before the aggregate's last
    /// event was committed: its events would come before that event in position order. Nothing
    /// was written; retry in a new transaction.
    #[error(
        "append to {stream}/{aggregate_id} refused: this transaction began writing before the \
         aggregate's last event was committed, so its events would be ordered before it; \
         retry in a new transaction"
    )]
    StaleTransaction {
        /// The aggregate kind.
        stream: String,
        /// The aggregate.
        aggregate_id: String,
    },
    /// A handler's lease expired or passed to another process: its bookmark was not saved.
    /// The handler stops and waits to take the lease again.
    #[error("lease {name:?} of {owner:?} is not held any more: the bookmark was not saved")]
    LeaseLost {
        /// The lease's (and bookmark's) name.
        name: String,
        /// The owner that lost it.
        owner: String,
    },
    /// Another process runs this handler: it holds the handler's lease.
    #[error("handler {name:?} runs in another process, which holds its lease")]
    LeaseHeld {
        /// The handler's (and lease's) name.
        name: String,
    },
    /// Writers got in each other's way (a deadlock, a busy database): nothing was written, and
    /// the same work may succeed when retried.
    #[error("{context}: {source}")]
    Contention {
        /// What evtstore was doing, and on what.
        context: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// The store could not be reached or did not answer in time: the connection was lost, the
    /// server is down, a time limit passed. Worth retrying later.
    #[error("{context}: {source}")]
    Unavailable {
        /// What evtstore was doing, and on what.
        context: String,
        /// The cause: the driver's error, or the limit that passed.
        #[source]
        source: BoxError,
    },
    /// The storage backend refused for another reason: a permission, a full disk, a schema.
    #[error("{context}: {source}")]
    Backend {
        /// What evtstore was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

/// What kind of failure an [`Error`] is, so a caller can react without reading its text.
///
/// ```
/// use evtstore_core::{Error, ErrorKind};
/// let error = Error::unavailable("PostgreSQL 127.0.0.1:5432/test: append", "connection lost");
/// assert_eq!(error.kind(), ErrorKind::Unavailable);
/// assert!(error.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command handler refused the command.
    Rejected,
    /// Another writer got there first, or writers got in each other's way: reload and retry.
    Conflict,
    /// The input breaks a rule (a name, an event, an append): the same input fails the same way.
    InvalidInput,
    /// The store could not be reached or did not answer in time: retry later.
    Unavailable,
    /// Stored data cannot be read back: an event that no longer decodes.
    Corrupt,
    /// A stored event has a type this build does not know (a newer build wrote it).
    UnknownEvent,
    /// An event handler's callback failed.
    Handler,
    /// The store refused for another reason (a permission, a full disk, a schema).
    Backend,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::VersionConflict { .. }
            | Error::StaleTransaction { .. }
            | Error::LeaseLost { .. }
            | Error::LeaseHeld { .. }
            | Error::Contention { .. }
            | Error::DuplicateCommand { .. } => ErrorKind::Conflict,
            Error::Rejected { .. } => ErrorKind::Rejected,
            Error::InvalidName { .. }
            | Error::InvalidAppend { .. }
            | Error::Encode { .. }
            | Error::CommandIdReused { .. }
            | Error::Import { .. }
            | Error::NotSnapshotted { .. }
            | Error::Deleted { .. } => ErrorKind::InvalidInput,
            Error::Decode { .. } => ErrorKind::Corrupt,
            Error::UnknownEventType { .. } => ErrorKind::UnknownEvent,
            Error::Handler { .. } => ErrorKind::Handler,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Backend { .. } => ErrorKind::Backend,
        }
    }

    /// True when the same call may succeed if made again: a conflict (after reloading) or an
    /// unavailable store (after a wait).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Conflict | ErrorKind::Unavailable)
    }

    /// Wraps a failure to reach the store, or a time limit that passed, with what was being done.
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Wraps a deadlock or busy store, with what was being done.
    pub fn contention(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Contention {
            context: context.into(),
            source: source.into(),
        }
    }

    /// Wraps a backend error with what was being done.
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// True when another writer got to the aggregate first, or this append came too late in
    /// a transaction that must be retried: reload the aggregate and try again.
    pub fn is_version_conflict(&self) -> bool {
        matches!(
            self,
            Error::VersionConflict { .. } | Error::StaleTransaction { .. }
        )
    }
}
