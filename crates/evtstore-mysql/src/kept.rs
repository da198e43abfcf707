//! Connections kept out of the pool for the provider's most frequent statements (an
//! aggregate's load, the append's procedure call). Taking one and giving it back is a `Vec`
//! pop and push; through sqlx's pool, whose release spawns a task, the same call of the
//! append procedure took 0.53 ms against 0.45 ms on one connection (2,000 calls each, this
//! project's machine).
//!
//! A connection goes back only after a statement that succeeded. One that failed, or whose
//! statement was dropped part way (a caller cancelled, `statement_timeout` passed), is closed
//! and leaves the pool, which may open another: given back to the pool, it would be pinged
//! before its next use, with no time limit, holding its place in the pool for as long as a
//! server that stopped answering stays silent. One left unused for a minute, or
//! kept for half an hour, is returned too (before the server's `wait_timeout` can close it
//! under us, as the pool's own idle timeout and lifetime would), and so is every one once
//! the pool is closed.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlConnection, MySqlPool};

/// A kept connection unused for longer goes back to the pool.
const IDLE: Duration = Duration::from_secs(60);

/// A connection kept for longer goes back to the pool.
const LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A kept connection: when it went back last, and when it was first kept.
type Idle = (PoolConnection<MySql>, Instant, Instant);

/// The connections kept out of `pool`.
pub(crate) struct Kept {
    pool: MySqlPool,
    idle: Mutex<Vec<Idle>>,
    /// At most this many are kept: a quarter of the pool, so that the other statements
    /// (transactions, leases, sequencer passes) always find connections in the pool.
    most: usize,
}

impl Kept {
    /// Keeps up to a quarter of `pool`, of `pool_size` connections.
    pub(crate) fn new(pool: MySqlPool, pool_size: u32) -> Self {
        Kept {
            pool,
            idle: Mutex::default(),
            most: pool_size as usize / 4,
        }
    }

    /// A kept connection, or one from the pool when none is free.
    pub(crate) async fn take(&self) -> Result<KeptConn<'_>, sqlx::Error> {
        let (conn, since) = match self.pop() {
            Some(kept) => kept,
            None => (self.pool.acquire().await?, Instant::now()),
        };
        Ok(KeptConn {
            conn: Closing::new(conn),
            since,
            home: self,
        })
    }

    /// The most recently used connection, dropping those idle or kept too long (all of them
    /// once the pool is closed).
    fn pop(&self) -> Option<(PoolConnection<MySql>, Instant)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |(_, used, since): &Idle| {
            !self.pool.is_closed() && used.elapsed() < IDLE && since.elapsed() < LIFETIME
        };
        let (keep, stale): (Vec<Idle>, Vec<Idle>) = idle.drain(..).partition(fresh);
        *idle = keep;
        let popped = idle.pop().map(|(conn, _, since)| (conn, since));
        drop(idle);
        drop(stale);
        popped
    }
}

impl Drop for Kept {
    /// Outside a Tokio runtime a connection cannot go back to the pool (sqlx spawns a task
    /// for that, and panics without a runtime): there, the kept ones are closed instead.
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            let idle = self.idle.get_mut().unwrap_or_else(|e| e.into_inner());
            idle.drain(..).for_each(|(conn, _, _)| drop(conn.detach()));
        }
    }
}

/// A connection taken from [`Kept`]: call [`keep`](Self::keep) once its statement succeeded;
/// dropped without it, it is closed.
pub(crate) struct KeptConn<'k> {
    conn: Closing,
    /// When it was first kept.
    since: Instant,
    home: &'k Kept,
}

impl KeptConn<'_> {
    /// Gives the connection back for the next statement (to the pool when enough are kept,
    /// when it was kept too long, or when the pool is closed).
    pub(crate) fn keep(self) {
        let conn = self.conn.release();
        if self.home.pool.is_closed() || self.since.elapsed() >= LIFETIME {
            return;
        }
        let mut idle = self.home.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.home.most {
            idle.push((conn, Instant::now(), self.since));
        }
    }
}

impl Deref for KeptConn<'_> {
    type Target = MySqlConnection;

    fn deref(&self) -> &MySqlConnection {
        &self.conn
    }
}

impl DerefMut for KeptConn<'_> {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }
}

/// A pooled connection closed when dropped, unless [released](Self::release) first: one whose
/// statement failed or was dropped part way (see the module docs).
pub(crate) struct Closing(Option<PoolConnection<MySql>>);

impl Closing {
    pub(crate) fn new(conn: PoolConnection<MySql>) -> Self {
        Closing(Some(conn))
    }

    /// The connection, no longer to be closed: dropped, it goes back to the pool.
    pub(crate) fn release(mut self) -> PoolConnection<MySql> {
        self.0.take().expect("held until released")
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

impl Deref for Closing {
    type Target = MySqlConnection;

    fn deref(&self) -> &MySqlConnection {
        self.0.as_deref().expect("held until released")
    }
}

impl DerefMut for Closing {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        self.0.as_deref_mut().expect("held until released")
    }
}
