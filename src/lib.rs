#![doc = concat!(
    "Type-safe event sourcing and CQRS, on SQLite (the embedded default, feature `sqlite`), ",
    "PostgreSQL (feature `postgres`), MariaDB/MySQL (feature `mysql`) and in memory.\n\n",
    "This crate re-exports [`evtstore_core`] (aggregates, commands, domains, handlers, the ",
    "provider trait, the in-memory provider) and each provider behind its feature. ",
    "The README walks through it; here is the quickstart, `examples/quickstart.rs`:\n\n",
    "```rust,no_run\n",
    include_str!("../examples/quickstart.rs"),
    "\n```\n"
)]

pub use evtstore_core::{
    // Aggregates and domains
    Aggregate,
    // Commands
    Batch,
    // Events and errors
    BoxError,
    Command,
    CommandError,
    Contains,
    Decision,
    Domain,
    Error,
    ErrorKind,
    EventMeta,
    Events,
    Executed,
    // Event handlers
    Handler,
    HandlerBuilder,
    HandlerFailure,
    Handles,
    Loaded,
    // Providers: the trait, the in-memory one, and (for provider authors) the helpers
    MemoryProvider,
    NewEvent,
    Position,
    Provider,
    Rejection,
    Result,
    SharedStr,
    Snapshot,
    StoredEvent,
    UnknownEvents,
    domain,
    provider,
};

/// The SQLite provider, the embedded default (feature `sqlite`, on by default).
#[cfg(feature = "sqlite")]
pub use evtstore_sqlite as sqlite;

#[cfg(feature = "sqlite")]
pub use evtstore_sqlite::SqliteProvider;

/// The PostgreSQL provider, the production default (feature `postgres`).
#[cfg(feature = "postgres")]
pub use evtstore_postgres as postgres;

#[cfg(feature = "postgres")]
pub use evtstore_postgres::PgProvider;

/// The MariaDB/MySQL provider, with a post-commit sequencer (feature `mysql`).
#[cfg(feature = "mysql")]
pub use evtstore_mysql as mysql;

#[cfg(feature = "mysql")]
pub use evtstore_mysql::MysqlProvider;
