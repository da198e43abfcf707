//! The provider's options, and configurable, validated table names.

use std::path::PathBuf;
use std::time::Duration;

use evtstore_core::Result;
use evtstore_core::provider::{check_server_options, check_table};

use crate::PgSslMode;

/// Where the provider keeps its tables, and how it connects. Every name is checked with
/// [`check_table`](evtstore_core::provider::check_table) before it reaches SQL.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The schema holding the tables (default `public`); created when missing.
    pub schema: String,
    /// The events table (default `events`).
    pub events_table: String,
    /// The bookmarks table (default `bookmarks`).
    pub bookmarks_table: String,
    /// The snapshots table (default `snapshots`).
    pub snapshots_table: String,
    /// The leases table (default `leases`). Stores that share a schema need one each, as
    /// they do bookmarks tables.
    pub leases_table: String,
    /// Most pooled connections (default 16).
    pub pool_size: usize,
    /// Longest wait to connect: TCP, TLS and start-up together (default 10 s). A URL's
    /// `connect_timeout` wins.
    pub connect_timeout: Duration,
    /// Longest wait for the server's answer to a statement, and for a free pooled connection
    /// (default 30 s), but for the schema migration at connect, which has no limit. Calls that
    /// pass it fail as [`Unavailable`](evtstore_core::ErrorKind::Unavailable).
    pub statement_timeout: Duration,
    /// TLS; when `None`, the URL's `sslmode` (default prefer).
    pub ssl_mode: Option<PgSslMode>,
    /// The CA certificates (PEM) to trust instead of the system's; when `None`, the URL's
    /// `sslrootcert`.
    pub ssl_root_cert: Option<PathBuf>,
    /// How long an append or an aggregate's load that is the provider's only call polls for
    /// the server's answer before its thread sleeps (default 1 ms; zero: never; at most
    /// 10 ms). Waking a sleeping thread costs tens of microseconds on a small machine;
    /// polling costs the CPU of the wait, at most this long per call.
    pub poll_alone: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "public".into(),
            events_table: "events".into(),
            bookmarks_table: "bookmarks".into(),
            snapshots_table: "snapshots".into(),
            leases_table: "leases".into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            ssl_mode: None,
            ssl_root_cert: None,
            poll_alone: Duration::from_millis(1),
        }
    }
}

/// Quoted, schema-qualified table names, checked once.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) schema: String,
    pub(crate) events: String,
    pub(crate) bookmarks: String,
    pub(crate) snapshots: String,
    pub(crate) leases: String,
    /// The ids of commands appended, `<events>_commands`.
    pub(crate) commands: String,
    /// Archived events, `<events>_archive`.
    pub(crate) archive: String,
    /// The keys of encrypted aggregates, `<events>_keys`.
    pub(crate) keys: String,
    /// The schema's table of stores: each one's schema version and position offset.
    pub(crate) migrations: String,
    /// The LISTEN/NOTIFY channel of the events table.
    pub(crate) channel: String,
    /// The advisory lock key that serialises migrations of these tables.
    pub(crate) migration_lock: String,
}

impl PgOptions {
    /// Refuses values no store can run with, naming the option.
    pub(crate) fn check(&self) -> Result<()> {
        let (connect, statement) = (self.connect_timeout, self.statement_timeout);
        check_server_options(self.pool_size, connect, statement, self.poll_alone)
    }
}

impl Tables {
    pub(crate) fn new(options: &PgOptions) -> Result<Self> {
        for name in [
            &options.schema,
            &options.events_table,
            &options.bookmarks_table,
            &options.snapshots_table,
            &options.leases_table,
        ] {
            check_table(name)?;
        }
        let [commands, archive, keys] =
            ["commands", "archive", "keys"].map(|t| format!("{}_{t}", options.events_table));
        for name in [&commands, &archive, &keys] {
            check_table(name)?;
        }
        let qualified = |table: &str| format!("\"{}\".\"{table}\"", options.schema);
        Ok(Tables {
            schema: format!("\"{}\"", options.schema),
            events: qualified(&options.events_table),
            bookmarks: qualified(&options.bookmarks_table),
            snapshots: qualified(&options.snapshots_table),
            leases: qualified(&options.leases_table),
            commands: qualified(&commands),
            archive: qualified(&archive),
            keys: qualified(&keys),
            migrations: qualified("evtstore_migrations"),
            channel: format!("evtstore_{}_{}", options.schema, options.events_table),
            migration_lock: format!("evtstore:{}.{}", options.schema, options.events_table),
        })
    }
}
