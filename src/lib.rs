#![doc = include_str!("../README.md")]

pub use evtstore_core::*;

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
