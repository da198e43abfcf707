//! Transactions: appends inside the caller's transaction, and transactional handlers whose
//! read-model writes and bookmark commit together (each event applied exactly once). The
//! handlers' page loop, options and hooks are evtstore-core's; this is their MariaDB part.

use std::sync::Arc;

use evtstore_core::provider::{AggregateKey, Savepoint, TxProvider, expectations, now_millis};
use evtstore_core::{EventMeta, NewEvent, Position, Result, StoredEvent};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Executor, MySql, MySqlConnection, Transaction};

use crate::MysqlProvider;
use crate::read::set_position;

/// Declares a [`TxHandler`]; get one from [`MysqlProvider::tx_handler`].
pub type TxHandlerBuilder<D> = evtstore_core::provider::TxHandlerBuilder<MysqlProvider, D>;

/// A MariaDB handler whose callbacks write in the same transaction as its bookmark: see
/// [`evtstore_core::provider::TxHandler`]. A read model may implement
/// [`TxHandles`](evtstore_core::TxHandles):
///
/// ```no_run
/// # use evtstore_core::conformance::domain::{Post, PostEvent, Tests};
/// use evtstore_core::{BoxError, EventMeta, TxHandles};
/// use evtstore_mysql::MysqlProvider;
/// use sqlx::MySqlConnection;
///
/// struct PostsPerUser;
///
/// impl TxHandles<Post, MysqlProvider> for PostsPerUser {
///     async fn handle(&self, conn: &mut MySqlConnection, event: &PostEvent, _: &EventMeta)
///         -> Result<(), BoxError> {
///         if let PostEvent::PostCreated { user_id, .. } = event {
///             let sql = "UPDATE authors SET posts = posts + 1 WHERE id = ?";
///             sqlx::query(sql).bind(user_id).execute(conn).await?;
///         }
///         Ok(())
///     }
/// }
/// # async fn run(provider: std::sync::Arc<MysqlProvider>) -> evtstore_core::Result<()> {
/// let handler = provider.tx_handler::<Tests>("posts-per-user").on::<Post, _>(PostsPerUser);
/// handler.build()?.start();
/// # Ok(()) }
/// ```
pub type TxHandler = evtstore_core::provider::TxHandler<MysqlProvider>;

impl MysqlProvider {
    /// Appends inside the caller's own transaction (`&mut *tx` of a `sqlx::Transaction`, on
    /// any connection to the same database): the events commit or roll back with it.
    ///
    /// Each aggregate's version is checked with a plain read, so the transaction takes no lock
    /// on existing events. The events get their positions after the caller commits: call
    /// [`sequence`](Self::sequence) then, which also wakes this process's handlers (else the
    /// sequencer of any running provider gives them within its `sequence_interval`); the
    /// envelopes returned here carry position 0. Pair it with `Domain::batch` to execute
    /// commands inside the transaction.
    ///
    /// The command ids of the events, if any, are recorded in the transaction too (an id that
    /// another open transaction recorded is waited for), after a savepoint
    /// (`evtstore_append`) that a failure rolls back to: the caller's transaction goes on
    /// without any of this append. It has no time limit of its own (`statement_timeout`):
    /// one that cut it short would skip that rollback; bound your transaction as a whole.
    ///
    /// # Errors
    /// As [`Provider::append`](evtstore_core::Provider::append).
    pub async fn append_in(
        &self,
        conn: &mut MySqlConnection,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventMeta>> {
        let expected = expectations(&events)?;
        let timestamp = now_millis();
        if events.iter().all(|e| e.command_id.is_none()) {
            self.insert_in(conn, &events, &expected, timestamp).await?;
        } else {
            let fail = |e| self.fail("savepoint", e);
            conn.execute("SAVEPOINT evtstore_append")
                .await
                .map_err(fail)?;
            let written = async {
                self.record_commands(conn, &events).await?;
                self.insert_in(conn, &events, &expected, timestamp).await
            };
            if let Err(error) = written.await {
                // Fails only when the transaction is gone (a deadlock rolled it all back).
                let _ = conn.execute("ROLLBACK TO SAVEPOINT evtstore_append").await;
                return Err(error);
            }
        }
        Ok(events.iter().map(|e| e.meta(0, timestamp)).collect())
    }

    /// Starts declaring a transactional handler over aggregate kinds of domain `D`: each page
    /// is one transaction, whose connection the callbacks get, and in which the bookmark is
    /// saved.
    ///
    /// ```no_run
    /// # use evtstore_core::conformance::domain::{Post, PostEvent, Tests};
    /// # async fn run(provider: std::sync::Arc<evtstore_mysql::MysqlProvider>) -> evtstore_core::Result<()> {
    /// let titles = provider
    ///     .tx_handler::<Tests>("post-titles")
    ///     .continue_on_error(true) // a failing event's writes are undone, the page goes on
    ///     .tail_stream(true) // a new bookmark starts at the end of history
    ///     .after_run(|read, handled| async move { println!("{handled} of {read}") })
    ///     .handle::<Post, _>(|conn, event, meta| {
    ///         Box::pin(async move {
    ///             if let PostEvent::PostCreated { content, .. } = event {
    ///                 let sql = "INSERT INTO titles (id, title) VALUES (?, ?)";
    ///                 sqlx::query(sql).bind(meta.aggregate_id.as_str()).bind(content).execute(conn).await?;
    ///             }
    ///             Ok(())
    ///         })
    ///     })
    ///     .build()?;
    /// titles.run_once().await?;
    /// # Ok(()) }
    /// ```
    pub fn tx_handler<D>(self: &Arc<Self>, name: &str) -> TxHandlerBuilder<D> {
        TxHandlerBuilder::new(self.clone(), name)
    }
}

/// Each page: a transaction on one pooled connection that locks the handler's bookmark row
/// (created beforehand, outside it, when missing), the page read on the same connection.
impl TxProvider for MysqlProvider {
    type Conn = PoolConnection<MySql>;
    type Tx<'c> = Transaction<'c, MySql>;
    type Arg<'a> = &'a mut MySqlConnection;

    fn arg<'a, 'c>(tx: &'a mut Self::Tx<'c>) -> &'a mut MySqlConnection {
        tx
    }

    fn acquire(&self) -> BoxFuture<'_, Result<Self::Conn>> {
        self.conn().boxed()
    }

    fn begin<'c>(
        &'c self,
        conn: &'c mut Self::Conn,
        name: &'c str,
        waiting: &'c (dyn Fn() + Sync),
    ) -> BoxFuture<'c, Result<(Self::Tx<'c>, Option<Position>)>> {
        let begin = async move {
            let fail = |what: &'static str| move |e| self.fail(what, e);
            // Created outside any page, so that handlers starting together do not deadlock;
            // looked for first, as an insert would wait for another page's lock on the row.
            // An insert that found the row made by another process (and may have waited for
            // its page) counts as a wait.
            let lookup = sqlx::query_scalar::<_, i64>(&self.sql.bookmark).bind(name);
            let found = lookup.fetch_optional(&mut **conn).await;
            if found.map_err(fail("read bookmark"))?.is_none() {
                let create = sqlx::query(&self.sql.create_bookmark).bind(name);
                let created = create.execute(&mut **conn).await;
                if created.map_err(fail("create bookmark"))?.rows_affected() == 0 {
                    waiting();
                }
            }
            let mut tx = conn.begin().await.map_err(fail("begin"))?;
            let lock = |sql: &'c str| sqlx::query_scalar::<_, i64>(sql).bind(name);
            // The row exists: no row back means another page holds its lock.
            let locked = lock(&self.sql.try_lock_bookmark)
                .fetch_optional(&mut *tx)
                .await;
            let position = match locked.map_err(fail("lock bookmark"))? {
                Some(position) => position,
                None => {
                    waiting();
                    let position = lock(&self.sql.lock_bookmark).fetch_one(&mut *tx).await;
                    position.map_err(fail("lock bookmark"))?
                }
            };
            let bookmark = set_position(Some(position));
            Ok((tx, bookmark))
        };
        self.within("begin a handler's page", begin).boxed()
    }

    fn tail<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Position>> {
        let last = self.read_last(tx, streams, None);
        let tail = async move { Ok(last.await?.map_or(0, |event| event.meta.position)) };
        self.within("read last event", tail).boxed()
    }

    fn read_page<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        let page = self.read_page_on(tx, streams, after, limit);
        self.within("read events", page).boxed()
    }

    fn savepoint<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        step: Savepoint,
    ) -> BoxFuture<'a, Result<()>> {
        let run = tx.execute(step.sql());
        let savepoint = async move { run.await.map(drop).map_err(|e| self.fail("savepoint", e)) };
        self.within("savepoint", savepoint).boxed()
    }

    fn save_bookmark<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        name: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        let save = self.write_bookmark(tx, name, position);
        self.within("save bookmark", save).boxed()
    }

    fn commit<'c>(&'c self, tx: Self::Tx<'c>) -> BoxFuture<'c, Result<()>> {
        let commit = async move { tx.commit().await.map_err(|e| self.fail("commit", e)) };
        self.within("commit", commit).boxed()
    }

    fn key_in<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        let key = self.stored_key(&mut **tx, stream, aggregate_id);
        self.within("read aggregate key", key).boxed()
    }
}
