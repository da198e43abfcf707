//! The MariaDB provider for evtstore: a post-commit sequencer, so no handler ever skips
//! an event that commits late.
//!
//! ```no_run
//! # async fn run() -> evtstore_core::Result<()> {
//! use evtstore_mysql::MysqlProvider;
//! let provider = MysqlProvider::connect("mysql://root@127.0.0.1:3306/test").await?;
//! # Ok(()) }
//! ```
//!
//! The server must be MariaDB 10.6 or later (`JSON_TABLE`, and `CREATE OR REPLACE PROCEDURE`,
//! which replaces a procedure while other processes call it); it is tested on 10.11.
//!
//! # Positions
//! Insert order is not commit order in MariaDB, so a position is only ever given after the
//! one before it committed. An append (of this process's concurrent callers together), when
//! no committed event waits for a position, is one statement that takes the positions after
//! the last committed event's
//! (`by_position` is unique), holding the counter's row in share mode so that no numbering
//! runs beside it. Otherwise positions are given under a lock on a counter, held until
//! commit: an append through the provider locks it and inserts its events at their positions
//! (or, when committed events wait for positions, inserts its own without one and numbers
//! them all); events of `append_in` are inserted without a position and numbered by a
//! sequencer pass once committed: read `sequencer`'s docs. So a command returns the position
//! it wrote; concurrent appends of a process share one transaction (group commit).
//!
//! # Driver
//! sqlx's MySQL driver (0.8) with its pool, chosen over `mysql_async` (0.37) by measuring on
//! this project's machine against the same MariaDB 10.11, one transaction per insert (read the
//! aggregate's last version, insert a row, commit), 2,000 each, three rounds, median:
//!
//! | driver | sequential | 16 concurrent |
//! | --- | --- | --- |
//! | sqlx 0.8 (`MySqlPool`, 16 connections) | 1,813/s | 7,310/s |
//! | mysql_async 0.37 (default pool) | 1,677/s | 5,273/s |
//! | mysql_async 0.37 (no reset on return, 16 connections) | 811/s | 2,588/s |
//!
//! The append and the pass are stored procedures: one round trip each instead of a dozen.
//! Measured with `mariadb-slap`, 500 × (one insert, one pass) in a row: 0.38–0.47 s through
//! the procedure, 0.80–1.03 s with the same statements sent one by one.
//!
//! # Cost
//! An append makes one round trip and one durable commit (a group of concurrent appends
//! shares them), where a store that trusts insert order makes the same, minus the numbering:
//! in the one statement, a read of the last position, a look for events waiting for a
//! position and a check of each aggregate's version, under the counter's row in share mode;
//! when it declines, a stored procedure's statements that lock the counter. Loads and appends run on connections the provider keeps (`kept`),
//! and concurrent loads share one query (`loads`).
//! An append or a load that is the provider's only call polls for the answer for up to
//! [`MysqlOptions::poll_alone`] (1 ms) before its thread sleeps (core's `provider::Waiting`):
//! W1 1,620–1,726/s → 2,049–2,088/s single-threaded and 1,533–1,564/s → 1,801–1,895/s
//! multi-threaded in interleaved runs, W2 unchanged within the noise.
//! Against the original TypeScript library (which trusts insert order: a read, then an
//! insert committed alone) on the same server in the same minutes, the sixth machine's
//! `compare.sh` run (2026-11-28) gave, against the original's 1,037/s for sequential commands
//! (W1), 1,305/s multi-threaded and 1,521/s single-threaded (1.26×, 1.47×), with the same read
//! and insert done raw through sqlx at 2,257–2,336/s and in one transaction at 1,317–1,643/s;
//! against its 3,493/s for 16 concurrent callers (W2), 9,878/s and 11,488/s (2.83×, 3.29×),
//! with 16 raw connections at 8,353–8,680/s. Three more rounds: W1 1.39–1.68× multi-threaded
//! and 1.38–1.71× single-threaded, W2 2.19–3.12× and 2.88–3.23×. Earlier runs, on five other
//! machines: W1 0.96–2.35×, W2 1.98–4.01×; the original's own W1 moved by 60% between two runs
//! minutes apart, and ran 1,037–1,272/s on that machine against 513–821/s on the two before.
//! On a seventh machine (README, footnote ³ of "Figures") W1 ran 1.37× single-threaded and 1.33×
//! multi-threaded, W2 4.13× and 2.73×.
//! Since schema version 10 an append is first one statement (`sql::Sql::append_one`, and
//! `append_rows` for several events) before it is the procedure's eight: timed by `mariadb-slap` with
//! the log flushed once a second (the CPU's share alone), 0.52 ms a call against the
//! procedure's 0.72–0.78 ms and a bare insert's 0.30 ms; in six interleaved pairs of bench
//! runs (the eleventh machine, 2026-11-28) W1 ran 1,045–1,384/s against 946–1,150/s (the
//! new run above the old in all six, by 5–44%) and W1_cached 1,384–1,800/s against
//! 1,348–1,565/s (above in five, by 3–29%; 10% below in one). A group as one statement
//! (`append_rows`): W2 5,685–7,589/s before and 6,948–9,196/s after in four pairs with the
//! new binary second, 6,068–7,889/s and 5,902–6,872/s in two with it first (README).
//! Since then a one-statement append numbers after the larger of the last event and the
//! counter (it declined when the counter was ahead), and a group's statement reads the last
//! position, the look for waiting events and the versions in derived tables, which spares
//! the server a temporary table on disk (W2 17,932–20,311/s against 14,977–16,048/s, six
//! pairs, the thirteenth machine: README, footnote ³ of "Figures").
//! Since schema version 8 the append's plain checks and its look for waiting events are one
//! statement (they were two or three) and events placed at their positions are inserted
//! unsorted; grouped loads are unsorted by the server too (`sql::aggregates_events`). Three
//! interleaved pairs of runs: W1 +6–10%, W2 5,409–5,920/s against 4,402–4,969/s.
//! Before the append inserted its events at their positions (schema version 7) it inserted
//! them without one and then numbered them: W1 983/s, W2 5,690/s in one run against the
//! original's 1,406/s and 4,877/s.
//! Concurrent appends share a call, and a caller waits up to 1 ms for the last group's
//! callers to come back (`append::LINGER`), so 16 callers that each load and append share
//! each call. The README has the figures.
//!
//! Catching-up handlers read two pages ahead (core's handler does, for every provider; this
//! provider read two pages ahead by itself before, which with core's two thrashed: W4 on a
//! store of 15,000 events, medians of nine runs, 40.0 ms with this provider's two and core's
//! one, 44.5 ms with core's two alone, 63.9 ms with both). In the run above a handler caught
//! up on 25,000 events (W4) at 0.33 M events/s multi-threaded and 0.26 M single-threaded,
//! 146× and 116× the original, whose handler commits its bookmark after every event (earlier
//! runs: 0.15–0.33 M, 96–137×).
//!
//! # Envelope and command ids
//! Each event row holds its envelope: `event_id`, `correlation_id` and `causation_id` as
//! `BINARY(16)`, `metadata` (JSON text) and `revision`; an imported event keeps its own
//! timestamp. Schema version 5 added them, giving each event stored before a UUID v7 made of
//! its timestamp. An append whose events carry a command id records the id in the
//! `<events>_commands` table in the same transaction, a transaction of its own rather than a
//! call of the procedure, and not grouped with others: it costs a few more round trips, and
//! its events are numbered by a sequencer pass after it commits. Appends without one keep the
//! grouped, one-round-trip procedure.
//!
//! # Deleting, archiving, keys
//! Schema version 6 added `<events>_archive` (every column of the events table, keyed by
//! stream, aggregate and version) and `<events>_keys` (each aggregate's key id and secret, for
//! encrypted aggregate kinds). A deletion or an archiving is one transaction that appends its
//! marker as [`append_in`](MysqlProvider::append_in) does, then deletes the aggregate's events
//! below it (copied to the archive first, positions kept, when archiving; a deletion also
//! deletes the aggregate's archived events, snapshot and key); the marker is then numbered by
//! a sequencer pass, like an append with a command id. Archived events stay out of handlers'
//! reads; loads read them back from the archive. Shredding deletes the key and the snapshot
//! in one transaction.
//!
//! # Leases
//! Leases follow the server's clock. A release wakes this process's handlers at once; MariaDB
//! has no push across processes, so handlers of other processes try to take it at their next
//! poll.
//!
//! # Layout
//! - `tables`: configurable, validated table names ([`MysqlOptions`]).
//! - `schema`: versioned migrations under `GET_LOCK`; `procedures`: the append and the pass.
//! - `sequencer`: how positions are given, and why no event is ever skipped.
//! - `append`: appends, grouped ([`GroupCommit`](evtstore_core::provider::GroupCommit));
//!   `read`, `loads`: reads; `errors`: driver errors as evtstore errors;
//!   `kept`: the connections loads and appends keep out of the pool.
//! - `lease`: leases, each change one statement or one transaction that locks the lease row.
//! - `transaction`: appends inside your own transaction, and transactional handlers.
//! - `retire`: deleting and archiving aggregates, archived events, aggregates' keys.

mod append;
mod errors;
mod kept;
mod lease;
mod loads;
mod procedures;
mod read;
mod retire;
mod schema;
mod sequencer;
mod sql;
mod tables;
mod transaction;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::provider::{AggregateKey, Retire, Visitor, Waiting, check_bookmark};
use evtstore_core::{
    CommandRecord, Error, EventMeta, Lease, NewEvent, Position, Provider, Result, SharedStr,
    Snapshot, StoredEvent, Uuid,
};
use futures_util::future::{BoxFuture, FutureExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Executor, MySql, MySqlPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use tables::MysqlOptions;
pub use transaction::{TxHandler, TxHandlerBuilder};

use sequencer::Sequencer;
use sql::Sql;
use tables::Tables;

/// Events in MariaDB. Needs a Tokio runtime.
pub struct MysqlProvider {
    pool: MySqlPool,
    sql: Arc<Sql>,
    sequencer: Arc<Sequencer>,
    queue: append::AppendQueue,
    /// Connections kept for loads and appends.
    kept: kept::Kept,
    loads: loads::Loads,
    waiting: Waiting,
    timer: JoinHandle<()>,
    /// The server, for messages (never the password), and the time limits on it.
    limits: errors::Limits,
}

impl Drop for MysqlProvider {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

impl MysqlProvider {
    /// Connects with the default tables (`events`, …), creating or upgrading them.
    ///
    /// ```no_run
    /// # async fn run() -> evtstore_core::Result<()> {
    /// let store = evtstore_mysql::MysqlProvider::connect("mysql://app@db/app").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached within
    /// [`MysqlOptions::connect_timeout`]; [`Error::Backend`]
    /// for refused credentials, a bad URL or missing privileges to create the tables.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, MysqlOptions::default()).await
    }

    /// Connects with the given tables, creating or upgrading them.
    pub async fn connect_with(url: &str, options: MysqlOptions) -> Result<Self> {
        let config = MySqlConnectOptions::from_str(url)
            .map_err(|e| Error::backend("invalid MariaDB URL", e))?; // may hold a password
        Self::connect_config(config, options).await
    }

    /// Connects with a driver configuration and the given tables.
    pub async fn connect_config(
        config: MySqlConnectOptions,
        options: MysqlOptions,
    ) -> Result<Self> {
        options.check()?;
        let tables = Tables::new(&options)?;
        let limits = errors::Limits {
            server: describe(&config).into(),
            connect: options.connect_timeout,
            statement: options.statement_timeout,
        };
        let lock_wait = Arc::new(limits.lock_wait());
        let pool = MySqlPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(options.connect_timeout)
            // No ping before each use (a round trip per statement); a dead connection fails
            // its statement, and the pool drops it.
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                let lock_wait = lock_wait.clone();
                Box::pin(async move {
                    let level = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";
                    conn.execute(level).await?;
                    conn.execute(lock_wait.as_str()).await.map(drop)
                })
            })
            .connect_with(config)
            .await
            .map_err(|e| limits.connect_failed(e))?;
        let mut conn = pool.acquire().await.map_err(|e| limits.connect_failed(e))?;
        schema::migrate(&mut conn, &tables)
            .await
            .map_err(|e| errors::fail(&limits.server, "migrate the schema", e))?;
        drop(conn);
        let sequencer = Arc::new(Sequencer::new(pool.clone(), &tables.pass, limits.clone()));
        // Numbers what crashed processes left, before anyone reads; then on the timer.
        if let Err(error) = sequencer.sequence().await {
            tracing::warn!(%error, "MariaDB sequencer pass at connect failed; the timer retries");
        }
        let timer = tokio::spawn(sequencer.clone().run_every(options.sequence_interval));
        let sql = Arc::new(Sql::new(&tables));
        Ok(MysqlProvider {
            kept: kept::Kept::new(pool.clone(), options.pool_size),
            pool,
            sql,
            sequencer,
            queue: append::AppendQueue::with_linger(append::LINGER),
            loads: loads::Loads::default(),
            waiting: Waiting::new(options.poll_alone),
            timer,
            limits,
        })
    }

    /// Gives positions to every committed event that has none, and wakes this process's
    /// handlers; returns the last position given. Call it after committing a transaction that
    /// used [`append_in`](Self::append_in), so its events get positions at once, rather than
    /// within `sequence_interval`.
    pub async fn sequence(&self) -> Result<Position> {
        self.sequencer.sequence().await
    }

    /// The pool, for the caller's own transactions. Its connections are READ COMMITTED, with
    /// `innodb_lock_wait_timeout` at half of `statement_timeout`. Up
    /// to a quarter of them stay with the provider for loads and appends: closing the pool
    /// waits for those until the provider is dropped or its next load or append.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self) -> Result<PoolConnection<MySql>> {
        let acquired = self.pool.acquire().await;
        acquired.map_err(|e| self.limits.connect_failed(e))
    }

    /// Work that must be done within `statement_timeout`.
    pub(crate) async fn within<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.limits.within(what, work).await
    }

    /// An error saying what failed on which server.
    pub(crate) fn fail(&self, what: &str, cause: sqlx::Error) -> Error {
        errors::fail(&self.limits.server, what, cause)
    }
}

/// `host:port/database` of a configuration, without credentials.
fn describe(config: &MySqlConnectOptions) -> String {
    let database = config.get_database().unwrap_or("");
    format!("{}:{}/{database}", config.get_host(), config.get_port())
}

impl Provider for MysqlProvider {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        self.waiting.poll(self.append_now(events)).boxed()
    }

    fn command(&self, command_id: Uuid) -> BoxFuture<'_, Result<Option<CommandRecord>>> {
        self.within("read command", self.read_command(command_id))
            .boxed()
    }

    fn retire(&self, marker: NewEvent, how: Retire) -> BoxFuture<'_, Result<EventMeta>> {
        self.retire_now(marker, how).boxed()
    }

    fn archived_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after: u64,
        before: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let read = self.read_archived(stream, aggregate_id, after, before);
        self.within("read archived events", read).boxed()
    }

    fn aggregate_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        create: bool,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        let read = self.read_key(stream, aggregate_id, create);
        self.within("read key", read).boxed()
    }

    fn forget_key<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let delete = self.delete_key(stream, aggregate_id);
        self.within("forget key", delete).boxed()
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        // Each read within `statement_timeout` (in `loads`).
        let load = self.loads.load(self, stream, aggregate_id, after_version);
        self.waiting.poll(load).boxed()
    }

    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a SharedStr,
        aggregate_id: &'a SharedStr,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        // Each read within `statement_timeout` (in `loads`); the fold not.
        let load = self
            .loads
            .visit(self, stream, aggregate_id, after_version, visit);
        self.waiting.poll(load).boxed()
    }

    fn streams(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        self.within("list streams", self.read_streams()).boxed()
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let page = async move {
            let mut conn = self.conn().await?;
            self.read_page_on(&mut conn, streams, after, limit).await
        };
        self.within("read events", page).boxed()
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        let read = async move {
            let mut conn = self.conn().await?;
            self.read_last(&mut conn, streams, aggregate_id).await
        };
        self.within("read last event", read).boxed()
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        async move {
            check_bookmark(name)?;
            self.within("read bookmark", self.read_bookmark(name)).await
        }
        .boxed()
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        async move {
            check_bookmark(name)?;
            let save = async {
                let mut conn = self.conn().await?;
                self.write_bookmark(&mut conn, name, position).await
            };
            self.within("save bookmark", save).await
        }
        .boxed()
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        let read = self.read_snapshot(stream, aggregate_id);
        self.within("read snapshot", read).boxed()
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        async move {
            let save = self.write_snapshot(&snapshot);
            self.within("save snapshot", save).await
        }
        .boxed()
    }

    fn acquire_lease<'a>(
        &'a self,
        name: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>>> {
        async move {
            check_bookmark(name)?;
            let take = self.take_lease(name, owner, ttl);
            self.within("acquire lease", take).await
        }
        .boxed()
    }

    fn release_lease<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<()>> {
        self.within("release lease", self.end_lease(lease)).boxed()
    }

    fn set_bookmark_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        let save = self.save_bookmark_leased(lease, position);
        self.within("save leased bookmark", save).boxed()
    }

    fn apply_ask_leased<'a>(
        &'a self,
        lease: &'a Lease,
        position: Position,
        ask: &'a str,
        asked: Position,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            check_bookmark(ask)?;
            let apply = self.apply_ask(lease, position, ask, asked);
            self.within("apply an ask", apply).await
        }
        .boxed()
    }

    fn leases<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Lease>>> {
        self.within("read leases", self.live_leases(prefix)).boxed()
    }

    fn signals_other_processes_bookmarks(&self) -> bool {
        false // no push across processes: they poll
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.sequencer.subscribe()
    }
}
