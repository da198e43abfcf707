#![doc = concat!(
    include_str!("lib.md"),
    "```rust,no_run\n",
    include_str!("../examples/quickstart.rs"),
    "\n```\n"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Aggregates and domains.
pub use evtstore_core::{Aggregate, Contains, Domain, Loaded, UnknownEvents, Upcasters, domain};

// Commands.
pub use evtstore_core::{
    Batch, Command, CommandError, CommandMeta, Decision, Events, Executed, Rejection,
};

// Event handlers.
pub use evtstore_core::{Handler, HandlerBuilder, HandlerFailure, Handles, Partitioned, TxHandles};

// Events and errors.
pub use evtstore_core::{
    BoxError, CommandRecord, Error, ErrorKind, EventMeta, Lease, Position, Result, SharedStr, Uuid,
};

// Providers: the trait, the in-memory one, what they read and write, and (for provider
// authors) the checks and helpers in `provider`.
pub use evtstore_core::{MemoryProvider, NewEvent, Provider, Snapshot, StoredEvent, provider};

// Testing commands and handlers given earlier events.
pub use evtstore_core::testing;

// Moving a store between providers: JSON Lines export and import.
pub use evtstore_core::jsonl;

/// The SQLite provider, the embedded default (feature `sqlite`, on by default).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use evtstore_sqlite as sqlite;

#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use evtstore_sqlite::SqliteProvider;

/// The PostgreSQL provider, the production default (feature `postgres`).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use evtstore_postgres as postgres;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use evtstore_postgres::PgProvider;

/// The MariaDB provider, with a post-commit sequencer (feature `mysql`).
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use evtstore_mysql as mysql;

#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub use evtstore_mysql::MysqlProvider;
