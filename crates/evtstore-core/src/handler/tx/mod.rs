//! Transactional handlers: each page is one database transaction that locks the handler,
//! reads the page, runs the callbacks with the transaction, saves the bookmark and commits, so
//! a read model in the same database sees each event exactly once.
//!
//! The page loop, the options and the hooks are here; a provider supplies its database part by
//! implementing [`TxProvider`].

mod builder;
mod run;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

pub use builder::TxHandlerBuilder;

use super::{CallbackResult, Hooks, Options, Runner};
use crate::aggregate::Aggregate;
use crate::error::Result;
use crate::event::{EventMeta, Position, StoredEvent};
use crate::provider::{AggregateKey, Provider};

/// The database part of a transactional handler ([`TxHandler`]), which a provider implements.
///
/// A page runs `acquire`, `begin`, maybe `tail`, `read_page`, the callbacks (each between
/// `savepoint` steps with `continue_on_error`), `save_bookmark` and `commit`; dropping the
/// transaction rolls it back.
pub trait TxProvider: Provider {
    /// A connection, taken for one page.
    type Conn: Send;
    /// A transaction open on a connection.
    type Tx<'c>: Send;
    /// What callbacks get: the transaction, as the database's client uses it.
    type Arg<'a>: Send;

    /// The transaction as callbacks get it.
    fn arg<'a, 'c>(tx: &'a mut Self::Tx<'c>) -> Self::Arg<'a>;

    /// Takes a connection for a page.
    fn acquire(&self) -> BoxFuture<'_, Result<Self::Conn>>;

    /// Begins a transaction that holds the handler's lock until it ends (so one process at a
    /// time runs the handler), and reads its bookmark: `None` when it was never set. Calls
    /// `waiting` before it waits for
    /// the lock another page (another process's, most often) holds, even if that wait fails.
    fn begin<'c>(
        &'c self,
        conn: &'c mut Self::Conn,
        name: &'c str,
        waiting: &'c (dyn Fn() + Sync),
    ) -> BoxFuture<'c, Result<(Self::Tx<'c>, Option<Position>)>>;

    /// The position of the last event of the streams (0 when none), read on the transaction.
    fn tail<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
    ) -> BoxFuture<'a, Result<Position>>;

    /// At most `limit` events of the streams after `after`, in position order, read on the
    /// transaction (see [`Provider::events`]).
    fn read_page<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>>;

    /// Runs a savepoint statement (see [`Savepoint::sql`]) on the transaction.
    fn savepoint<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        step: Savepoint,
    ) -> BoxFuture<'a, Result<()>>;

    /// Saves the handler's bookmark in the transaction.
    fn save_bookmark<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        name: &'a str,
        position: Position,
    ) -> BoxFuture<'a, Result<()>>;

    /// Commits the transaction.
    fn commit<'c>(&'c self, tx: Self::Tx<'c>) -> BoxFuture<'c, Result<()>>;

    /// An aggregate's key (see [`Provider::aggregate_key`]), to open the page's sealed
    /// events. Read on the transaction where the provider can: the default takes a
    /// connection of its own, which waits while running handlers hold every connection.
    fn key_in<'a>(
        &'a self,
        tx: &'a mut Self::Tx<'_>,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<AggregateKey>>> {
        let _ = tx;
        self.aggregate_key(stream, aggregate_id, false)
    }
}

/// A step of the savepoint around each event's callback with `continue_on_error`: a failed
/// event's writes are rolled back to it, and the page goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Savepoint {
    /// Sets the savepoint, before the callback.
    Set,
    /// Forgets it, after the callback (and after a rollback to it).
    Release,
    /// Undoes a failed callback's writes (and, in PostgreSQL, the error state of the
    /// transaction).
    RollBack,
}

impl Savepoint {
    /// The statement, the same in PostgreSQL, MariaDB, MySQL and SQLite.
    pub fn sql(self) -> &'static str {
        match self {
            Savepoint::Set => "SAVEPOINT evtstore_event",
            Savepoint::Release => "RELEASE SAVEPOINT evtstore_event",
            Savepoint::RollBack => "ROLLBACK TO SAVEPOINT evtstore_event",
        }
    }
}

/// Handles the events of aggregate kind `A` in the transaction of a [`TxHandler`] over
/// provider `P`: implement it on a read model and register it with
/// [`TxHandlerBuilder::on`]. Its state is the database's; the value itself is shared (`&self`),
/// since a page that rolls back would not undo changes to it.
pub trait TxHandles<A: Aggregate, P: TxProvider>: Send + Sync + 'static {
    /// Handles one event, writing with `tx`. An error (or a panic) fails the event: see
    /// [`continue_on_error`](TxHandlerBuilder::continue_on_error).
    fn handle<'a>(
        &self,
        tx: P::Arg<'a>,
        event: &'a A::Event,
        meta: &'a EventMeta,
    ) -> impl Future<Output = CallbackResult> + Send;
}

/// Decodes an event and starts its callback with the transaction; `Ok(None)` when the event is
/// of a type the code does not know and the handler skips those.
type TxRoute<P> = Arc<
    dyn for<'a, 'c> Fn(
            &'a mut <P as TxProvider>::Tx<'c>,
            &'a StoredEvent,
        ) -> Result<Option<BoxFuture<'a, CallbackResult>>>
        + Send
        + Sync,
>;

/// A handler whose callbacks write in the same transaction as its bookmark: a read model in
/// the same database sees each event exactly once, even when the process dies mid-page.
///
/// Each page is one transaction that first takes a lock named after the handler, so one process
/// at a time runs the handler. A failing event rolls the page back (the bookmark stays before
/// it and the next run retries it), or with `continue_on_error` only its own writes. Get one
/// from the provider (`PgProvider::tx_handler`, `MysqlProvider::tx_handler`). Cheap to clone.
pub struct TxHandler<P: TxProvider> {
    inner: Arc<Inner<P>>,
}

impl<P: TxProvider> Clone for TxHandler<P> {
    fn clone(&self) -> Self {
        TxHandler {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<P: TxProvider> {
    provider: Arc<P>,
    name: String,
    streams: Vec<String>,
    routes: HashMap<String, TxRoute<P>>,
    options: Options,
    hooks: Hooks,
    runner: Runner,
    /// Where a tailing page starts, read and changed under one lock.
    tail: Mutex<Tail>,
}

/// A tailing page's start.
#[derive(Default)]
struct Tail {
    /// With `always_tail_stream`: the next page starts at the end of history.
    next: bool,
    /// The end of history a page started from, until a page from it commits: a page that
    /// failed there is tried again from the same place, not from a later end.
    kept: Option<Position>,
}

impl<P: TxProvider> TxHandler<P> {
    /// The handler's (and its bookmark's) name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The streams it reads.
    pub fn streams(&self) -> &[String] {
        &self.inner.streams
    }

    /// The position the handler has committed (0 before its first page).
    ///
    /// # Errors
    /// When the bookmark cannot be read.
    pub async fn position(&self) -> Result<Position> {
        let inner = &self.inner;
        Ok(inner.provider.bookmark(&inner.name).await?.unwrap_or(0))
    }
}
