//! Driver errors as evtstore errors: what failed, on which server, and whether to retry.

use std::sync::Arc;
use std::time::Duration;

use evtstore_core::Error;
use evtstore_core::provider::TimedOut;
use sqlx::mysql::MySqlDatabaseError;

/// MariaDB's error numbers that a caller may retry: a deadlock, a lock wait timeout.
pub(crate) const DEADLOCK: u16 = 1213;
const LOCK_WAIT_TIMEOUT: u16 = 1205;
/// The server is shutting down, or killed the connection: it cannot be reached for now.
const SHUTDOWN: u16 = 1053;
const CONNECTION_KILLED: u16 = 1927;
/// A duplicate key: another writer took the version first.
pub(crate) const DUPLICATE_KEY: u16 = 1062;
/// A column added already (a migration run again).
pub(crate) const DUPLICATE_COLUMN: u16 = 1060;

/// The server's error number, when the server refused a statement.
pub(crate) fn number(error: &sqlx::Error) -> Option<u16> {
    let database = error.as_database_error()?;
    Some(database.try_downcast_ref::<MySqlDatabaseError>()?.number())
}

/// True when a one-statement append found its position taken (error 1062 on `by_position`)
/// by another that committed first: nothing was written, and it may run again.
pub(crate) fn position_taken(error: &sqlx::Error) -> bool {
    number(error) == Some(DUPLICATE_KEY)
        && (error.as_database_error())
            .is_some_and(|e| e.message().ends_with("for key 'by_position'"))
}

/// Wraps a driver error with what was being done on which server (`host:port/database`):
/// contention for a deadlock or lock wait timeout, unavailable when the server cannot be
/// reached or is shutting down, a backend error otherwise (with the server's own words, e.g. access denied).
pub(crate) fn fail(server: &str, what: &str, error: sqlx::Error) -> Error {
    let context = format!("MariaDB {server}: {what}");
    match (&error, number(&error)) {
        (_, Some(DEADLOCK | LOCK_WAIT_TIMEOUT)) => Error::contention(context, error),
        (_, Some(SHUTDOWN | CONNECTION_KILLED)) => Error::unavailable(context, error),
        (sqlx::Error::PoolTimedOut, _) => {
            Error::unavailable(context, "no pooled connection within connect_timeout")
        }
        (sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed, _) => {
            Error::unavailable(context, error)
        }
        _ => Error::backend(context, error),
    }
}

/// The time limits on a server: connecting, and its answers.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// `host:port/database`.
    pub(crate) server: Arc<str>,
    pub(crate) connect: Duration,
    pub(crate) statement: Duration,
}

impl Limits {
    /// Work that must be done within `statement_timeout`; past it, `Unavailable` naming it.
    pub(crate) async fn within<T>(
        &self,
        what: &str,
        work: impl Future<Output = evtstore_core::Result<T>>,
    ) -> evtstore_core::Result<T> {
        match tokio::time::timeout(self.statement, work).await {
            Ok(done) => done,
            Err(_) => Err(self.late(what)),
        }
    }

    /// The error of work that passed `statement_timeout`.
    pub(crate) fn late(&self, what: &str) -> Error {
        let late = TimedOut {
            limit: "statement_timeout",
            after: self.statement,
        };
        Error::unavailable(self.context(what), late)
    }

    /// The session setting that makes InnoDB give up a lock wait (error 1205, `Contention`)
    /// well within `statement_timeout`: half of it, in whole seconds, at least 1 (a call
    /// may wait for two locks in turn).
    pub(crate) fn lock_wait(&self) -> String {
        let seconds = (self.statement.as_secs() / 2).max(1);
        format!("SET SESSION innodb_lock_wait_timeout = {seconds}")
    }

    /// A connection that failed: past `connect_timeout` when the pool gave up waiting.
    pub(crate) fn connect_failed(&self, error: sqlx::Error) -> Error {
        match error {
            sqlx::Error::PoolTimedOut => {
                let late = TimedOut {
                    limit: "connect_timeout",
                    after: self.connect,
                };
                Error::unavailable(self.context("connect"), late)
            }
            error => fail(&self.server, "connect", error),
        }
    }

    fn context(&self, what: &str) -> String {
        format!("MariaDB {}: {what}", self.server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evtstore_core::ErrorKind;

    #[test]
    fn a_lost_connection_is_unavailable_and_names_the_server() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = fail("127.0.0.1:3306/test", "append", sqlx::Error::Io(io));
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(
            error
                .to_string()
                .starts_with("MariaDB 127.0.0.1:3306/test: append")
        );
        let other = fail("h", "read", sqlx::Error::RowNotFound);
        assert_eq!(other.kind(), ErrorKind::Backend);
    }
}
