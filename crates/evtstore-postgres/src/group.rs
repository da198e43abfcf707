//! Group commit: appends from concurrent callers in this process share one statement and one
//! commit, through [`GroupCommit`] (whoever finds no batch in flight commits the queue; when
//! the shared statement is refused, as for a version conflict, each append of the batch is
//! retried alone, so one caller's conflict never fails another's).

use evtstore_core::provider::{GroupAppend, GroupCommit, append_to};
use evtstore_core::{Error, EventMeta, NewEvent, Result};

use crate::PgProvider;
use crate::append::TooManyEvents;

/// Appends waiting to be committed.
pub(crate) type AppendQueue = GroupCommit;

impl PgProvider {
    /// Appends on a pooled connection, sharing the commit with concurrent appends.
    pub(crate) async fn append_grouped(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        self.queue.append(self, events).await
    }
}

impl GroupAppend for PgProvider {
    const BACKEND: &'static str = "PostgreSQL";

    /// An append on a pooled connection, answered within `statement_timeout`.
    async fn append_group(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let what = append_to(&events);
        self.within(&what, self.append_pooled(events)).await
    }

    fn refused(&self, error: &Error) -> bool {
        refused(error)
    }

    fn stored(&self) {
        self.notify_appended();
    }
}

/// True when PostgreSQL itself refused an append (someone's conflict, a body that is not
/// JSON, a group past one transaction's positions): nothing of it was stored.
fn refused(error: &Error) -> bool {
    match error {
        Error::VersionConflict { .. } | Error::Contention { .. } => true,
        Error::Backend { source, .. } => {
            source.is::<TooManyEvents>()
                || source
                    .downcast_ref::<tokio_postgres::Error>()
                    .is_some_and(|e| e.as_db_error().is_some())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_past_one_transactions_positions_is_refused_and_retried_alone() {
        let error = Error::backend("PostgreSQL: append", TooManyEvents);
        assert!(refused(&error), "{error}");
        assert!(!refused(&Error::backend(
            "PostgreSQL: append",
            "connection lost"
        )));
    }
}
