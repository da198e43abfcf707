//! Transactions: appends inside the caller's transaction, and transactional handlers whose
//! read-model writes and bookmark commit together (each event applied exactly once). The
//! handlers' page loop, options and hooks are evtstore-core's; this is their PostgreSQL part.

use std::sync::Arc;

use deadpool_postgres::Object;
use evtstore_core::provider::{AggregateKey, Savepoint, TxProvider, append_to};
use evtstore_core::{EventMeta, NewEvent, Position, Result, StoredEvent};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Transaction};

use crate::PgProvider;

/// Declares a [`TxHandler`]; get one from [`PgProvider::tx_handler`].
pub type TxHandlerBuilder<D> = evtstore_core::provider::TxHandlerBuilder<PgProvider, D>;

/// A PostgreSQL handler whose callbacks write in the same transaction as its bookmark: see
/// [`evtstore_core::provider::TxHandler`]. A read model may implement
/// [`TxHandles`](evtstore_core::TxHandles):
///
/// ```no_run
/// # use evtstore_core::conformance::domain::{Post, PostEvent, Tests};
/// use evtstore_core::{BoxError, EventMeta, TxHandles};
/// use evtstore_postgres::PgProvider;
/// use tokio_postgres::Transaction;
///
/// struct PostsPerUser;
///
/// impl TxHandles<Post, PgProvider> for PostsPerUser {
///     async fn handle(&self, tx: &Transaction<'_>, event: &PostEvent, _: &EventMeta)
///         -> Result<(), BoxError> {
///         if let PostEvent::PostCreated { user_id, .. } = event {
///             let sql = "UPDATE authors SET posts = posts + 1 WHERE id = $1";
///             tx.execute(sql, &[user_id]).await?;
///         }
///         Ok(())
///     }
/// }
/// # async fn run(provider: std::sync::Arc<PgProvider>) -> evtstore_core::Result<()> {
/// let handler = provider.tx_handler::<Tests>("posts-per-user").on::<Post, _>(PostsPerUser);
/// handler.build()?.start();
/// # Ok(()) }
/// ```
pub type TxHandler = evtstore_core::provider::TxHandler<PgProvider>;

impl PgProvider {
    /// Appends inside the caller's own transaction: the events commit or roll back with it.
    ///
    /// Pair it with `Domain::batch` to execute commands inside the transaction.
    /// Other readers see the events once the transaction commits.
    ///
    /// # Errors
    /// As [`Provider::append`](evtstore_core::Provider::append), and
    /// [`Error::StaleTransaction`](evtstore_core::Error::StaleTransaction) (see `sql`).
    pub async fn append_in(
        &self,
        tx: &Transaction<'_>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventMeta>> {
        let append = self.append_on(tx, self.sql.append_in.as_str(), &events);
        self.within(&append_to(&events), append).await
    }

    /// Starts declaring a transactional handler over aggregate kinds of domain `D`: each page
    /// is one transaction, in which the callbacks get `&Transaction` and the bookmark is saved.
    /// With `continue_on_error` each event runs in a savepoint, a subtransaction: past 64
    /// events that write, a page overflows the server's subtransaction cache, and while it is
    /// open other sessions' visibility checks read `pg_subtrans`. Keep such pages small.
    ///
    /// ```no_run
    /// # use evtstore_core::conformance::domain::{Post, PostEvent, Tests};
    /// # async fn run(provider: std::sync::Arc<evtstore_postgres::PgProvider>) -> evtstore_core::Result<()> {
    /// let titles = provider
    ///     .tx_handler::<Tests>("post-titles")
    ///     .continue_on_error(true) // a failing event's writes are undone, the page goes on
    ///     .tail_stream(true) // a new bookmark starts at the end of history
    ///     .on_error(|failure| {
    ///         eprintln!("{}: {}", failure.handler, failure.error);
    ///         async {}
    ///     })
    ///     .handle::<Post, _>(|tx, event, meta| {
    ///         Box::pin(async move {
    ///             if let PostEvent::PostCreated { content, .. } = event {
    ///                 let sql = "INSERT INTO titles (id, title) VALUES ($1, $2)";
    ///                 tx.execute(sql, &[&meta.aggregate_id.as_str(), content]).await?;
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

/// Each page: a READ COMMITTED transaction on one pooled connection, an advisory lock named
/// after the handler, the page read on the same connection.
impl TxProvider for PgProvider {
    type Conn = Object;
    type Tx<'c> = deadpool_postgres::Transaction<'c>;
    type Arg<'a> = &'a Transaction<'a>;

    fn arg<'a, 'c>(tx: &'a mut Self::Tx<'c>) -> &'a Transaction<'a> {
        tx
    }

    fn acquire(&self) -> BoxFuture<'_, Result<Object>> {
        self.client().boxed()
    }

    /// An advisory lock, not a row lock: a row lock would give the transaction an id before the
    /// page is read, and the page would then wait for the transaction's own end (see `sql`).
    fn begin<'c>(
        &'c self,
        conn: &'c mut Object,
        name: &'c str,
        waiting: &'c (dyn Fn() + Sync),
    ) -> BoxFuture<'c, Result<(Self::Tx<'c>, Option<Position>)>> {
        async move {
            let begin = conn.build_transaction();
            let begin = begin.isolation_level(IsolationLevel::ReadCommitted).start();
            let tx = self.run("begin", begin).await?;
            let (sql, what) = (&self.sql, "lock bookmark");
            let name: [&(dyn ToSql + Sync); 1] = [&name];
            let try_lock = tx.query_one(&sql.try_lock_handler, &name);
            let locked: bool = self.run(what, try_lock).await?.get(0);
            if !locked {
                waiting();
                self.run(what, tx.execute(&sql.lock_handler, &name)).await?;
            }
            let row = self.run(what, tx.query_opt(&sql.bookmark, &name)).await?;
            let bookmark = row.map(|row| row.get::<_, i64>(0) as u64);
            Ok((tx, bookmark))
        }
        .boxed()
    }

    fn tail<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Position>> {
        let last = self.read_last_on(&*tx, streams);
        async move { Ok(last.await?.map_or(0, |event| event.meta.position)) }.boxed()
    }

    fn read_page<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        self.read_page_on(&*tx, streams, after, limit).boxed()
    }

    fn savepoint<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        step: Savepoint,
    ) -> BoxFuture<'a, Result<()>> {
        self.run("savepoint", tx.batch_execute(step.sql())).boxed()
    }

    fn save_bookmark<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        name: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let params: [&(dyn ToSql + Sync); 2] = [&name, &(position as i64)];
            let save = tx.execute(&self.sql.set_bookmark, &params);
            self.run("save bookmark", save).await.map(drop)
        }
        .boxed()
    }

    fn commit<'c>(&'c self, tx: Self::Tx<'c>) -> BoxFuture<'c, Result<()>> {
        self.run("commit", tx.commit()).boxed()
    }

    fn key_in<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        self.stored_key(&**tx, stream, aggregate_id).boxed()
    }
}
