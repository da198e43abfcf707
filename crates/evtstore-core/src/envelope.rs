//! What a command carries beside itself: its id, its correlation and causation ids and
//! metadata, given to each event it appends; and the cause a handler passes on to the
//! commands it executes.

use std::future::Future;

use uuid::Uuid;

use crate::event::{EventMeta, NewEvent};
use crate::shared_str::SharedStr;

/// The envelope of a command, for [`Domain::execute_with`](crate::Domain::execute_with).
///
/// Executed from inside a handler's callback, a command takes the handled event as its cause
/// and its correlation id (or, when it has none, its id), unless they are given here.
///
/// ```
/// use evtstore_core::{CommandMeta, Uuid};
/// let meta = CommandMeta::new()
///     .command_id(Uuid::now_v7()) // retries with this id append nothing more
///     .correlation_id(Uuid::now_v7())
///     .metadata(serde_json::json!({ "user": "alice", "ip": "10.0.0.1" }));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandMeta {
    pub(crate) command_id: Option<Uuid>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) metadata: Option<SharedStr>,
}

impl CommandMeta {
    /// No id, no cause, no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// The command's id: executing a command again with this id (a client's retry) appends
    /// nothing and returns the aggregate as the first execution left it. Its events take it as
    /// their causation id unless one is given.
    pub fn command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// The correlation id of the events.
    pub fn correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// The causation id of the events.
    pub fn causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Free-form metadata stored with each event.
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = Some(metadata.to_string().into());
        self
    }

    /// The command's id, if it has one.
    pub fn id(&self) -> Option<Uuid> {
        self.command_id
    }

    /// Fills what was not given: the cause of the handled event, if any, then the command id.
    pub(crate) fn resolved(mut self) -> Self {
        if let Ok(cause) = HANDLING.try_with(|cause| *cause) {
            self.causation_id = self.causation_id.or(Some(cause.event_id));
            self.correlation_id = self.correlation_id.or(cause.correlation_id);
        }
        self.causation_id = self.causation_id.or(self.command_id);
        self
    }

    /// Writes the envelope onto an event about to be appended.
    pub(crate) fn stamp(&self, event: &mut NewEvent) {
        event.correlation_id = self.correlation_id;
        event.causation_id = self.causation_id;
        event.metadata = self.metadata.clone();
        event.command_id = self.command_id;
    }
}

/// The event a handler's callback is handling.
#[derive(Debug, Clone, Copy)]
struct Cause {
    event_id: Uuid,
    correlation_id: Option<Uuid>,
}

tokio::task_local! {
    static HANDLING: Cause;
}

/// Runs a handler's callback future with `meta` as the cause of the commands it executes.
pub(crate) fn handling<F: Future>(
    meta: &EventMeta,
    callback: F,
) -> impl Future<Output = F::Output> {
    let cause = Cause {
        event_id: meta.event_id,
        correlation_id: meta.correlation_id.or(Some(meta.event_id)),
    };
    HANDLING.scope(cause, callback)
}
