//! The one error type of evtstore.

use crate::event::Position;

/// An error from any part of a handler callback or provider, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A shorthand for results of evtstore calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A command handler refused the command: a message for people and an optional code for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("command rejected: {message}")]
pub struct CommandError {
    /// What was wrong, for people.
    pub message: String,
    /// A stable code, for programs.
    pub code: Option<String>,
}

impl CommandError {
    /// A rejection with a message.
    pub fn new(message: impl Into<String>) -> Self {
        CommandError {
            message: message.into(),
            code: None,
        }
    }

    /// A rejection with a message and a code.
    pub fn with_code(message: impl Into<String>, code: impl Into<String>) -> Self {
        CommandError {
            message: message.into(),
            code: Some(code.into()),
        }
    }
}

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
    /// The command handler rejected the command.
    #[error(transparent)]
    Command(#[from] CommandError),
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
        /// The event's position.
        position: Position,
        /// What the callback returned.
        #[source]
        source: BoxError,
    },
    /// The storage backend failed: unreachable, down, refused a statement.
    #[error("{context}: {source}")]
    Backend {
        /// What evtstore was doing.
        context: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// Wraps a backend error with what was being done.
    pub fn backend(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            context: context.into(),
            source: source.into(),
        }
    }

    /// True when another writer got to the aggregate first.
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, Error::VersionConflict { .. })
    }

    /// The command handler's rejection, when that is what this is.
    pub fn as_command_error(&self) -> Option<&CommandError> {
        match self {
            Error::Command(err) => Some(err),
            _ => None,
        }
    }
}
