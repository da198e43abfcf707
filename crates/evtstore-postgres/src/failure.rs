//! Errors a caller can act on: a lost connection or a passed time limit is
//! [`Unavailable`](evtstore_core::ErrorKind::Unavailable), a deadlock or serialization failure
//! is a retryable conflict, anything else keeps the server's own words.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use evtstore_core::provider::TimedOut;
use evtstore_core::{Error, ErrorKind};

/// A driver error as the error kind a caller acts on, with the server's message (the driver
/// alone says "db error"), or the driver's causes (it alone says "error performing TLS
/// handshake"). `context` says what failed and on which server.
pub(crate) fn classify(context: String, cause: tokio_postgres::Error) -> Error {
    let kind = kind(&cause);
    let context = match cause.as_db_error() {
        Some(said) if kind == ErrorKind::Unavailable => format!("{context} failed: {said}"),
        Some(said) => format!("{context} refused: {said}"),
        None => with_details(context, &cause),
    };
    match kind {
        ErrorKind::Unavailable => Error::unavailable(context, cause),
        ErrorKind::Conflict => Error::contention(context, cause),
        _ => Error::backend(context, cause),
    }
}

/// Unavailable: the connection was lost or the server is going away; Conflict: a deadlock
/// or serialization failure; else Backend.
fn kind(cause: &tokio_postgres::Error) -> ErrorKind {
    match cause.code().map(|code| code.code()) {
        Some("40P01" | "40001") => ErrorKind::Conflict,
        // Connection exceptions, and the server shutting down or terminating the session.
        Some(code) if code.starts_with("08") => ErrorKind::Unavailable,
        Some("57P01" | "57P02" | "57P03") => ErrorKind::Unavailable,
        Some(_) => ErrorKind::Backend,
        None if cause.is_closed() => ErrorKind::Unavailable,
        None if io_failed(cause) && !tls_refused(cause) => ErrorKind::Unavailable,
        None => ErrorKind::Backend,
    }
}

/// A pool error: the driver's own when connecting failed, or the limit that passed.
pub(crate) fn pool_error(server: &str, limits: Limits, cause: PoolError) -> Error {
    let connect = format!("PostgreSQL {server}: connect");
    match cause {
        PoolError::Backend(cause) => classify(connect, cause),
        PoolError::Timeout(TimeoutType::Wait) => {
            let context = format!("PostgreSQL {server}: wait for a pooled connection");
            Error::unavailable(context, limits.statement_timed_out())
        }
        PoolError::Timeout(_) => Error::unavailable(connect, limits.connect_timed_out()),
        other => Error::unavailable(connect, other.to_string()),
    }
}

/// True when the server dropped the connection (not when a time limit passed): a read may be
/// tried again on a fresh connection.
pub(crate) fn connection_lost(error: &Error) -> bool {
    match error {
        Error::Unavailable { source, .. } => source.is::<tokio_postgres::Error>(),
        _ => false,
    }
}

/// The time limits of connections and statements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) connect: Duration,
    pub(crate) statement: Duration,
}

impl Limits {
    pub(crate) fn connect_timed_out(self) -> TimedOut {
        TimedOut {
            limit: "connect_timeout",
            after: self.connect,
        }
    }

    pub(crate) fn statement_timed_out(self) -> TimedOut {
        TimedOut {
            limit: "statement_timeout",
            after: self.statement,
        }
    }
}

/// True when an input/output error lies under the driver's error.
fn io_failed(cause: &tokio_postgres::Error) -> bool {
    sources(cause).any(|e| e.is::<std::io::Error>())
}

/// True when TLS refused the server (its certificate, its protocol): no retry will help.
fn tls_refused(cause: &tokio_postgres::Error) -> bool {
    sources(cause).any(|e| {
        let io = e.downcast_ref::<std::io::Error>();
        e.is::<rustls::Error>()
            || io
                .and_then(|io| io.get_ref())
                .is_some_and(|e| e.is::<rustls::Error>())
    })
}

/// `context (cause: cause…)` when the driver's error has causes of its own.
pub(crate) fn with_details(context: String, cause: &tokio_postgres::Error) -> String {
    let details: Vec<String> = sources(cause).map(ToString::to_string).collect();
    if details.is_empty() {
        return context;
    }
    format!("{context} ({})", details.join(": "))
}

fn sources(
    cause: &tokio_postgres::Error,
) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(cause), |e| e.source())
}
