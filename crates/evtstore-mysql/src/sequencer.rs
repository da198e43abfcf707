//! The post-commit sequencer: positions given to committed events, in one order, with no gap.
//!
//! # Why
//! `AUTO_INCREMENT` values are taken at insert time, so insert order is not commit order: a
//! transaction that inserted id 1 and commits after another's id 2 would be passed by a reader
//! that trusts `id > bookmark`. MariaDB has no snapshot horizon an ordinary user can read.
//!
//! # How
//! Writers outside the provider's append (`append_in`, appends that record command ids) insert
//! events with `position` NULL (`id` gives insert order). A pass (the stored
//! procedure `<events>_pass`, one round trip) locks the one-row counter `<events>_seq` with
//! `SELECT … FOR UPDATE`, finds committed rows without a position with consistent,
//! non-locking reads in `id` order (a locking read would wait for open transactions' rows),
//! gives them the positions after the last one given (the counter's, or the last event's
//! when one-statement appends went past it) and commits. Passes are serialised by the counter lock,
//! so the positions a reader sees are gap-free and only ever grow: a reader reading
//! `position > bookmark` misses nothing. An aggregate's version `n + 1` is inserted only after
//! its version `n` is committed (the append checks it), so it has a larger id and a larger
//! position.
//!
//! An append through the provider gives its own events positions as it inserts them. When
//! no committed event waits for a position, it is one statement (`sql::Sql::append_one`,
//! `append_rows`): the positions after the last committed event's (or the counter's, if
//! larger), made unique by `by_position`, without the counter's lock. Otherwise the append
//! takes the counter's lock in its own transaction (`<events>_add`, see `procedures`): it
//! inserts its events at their positions when no committed event waits for one, else numbers
//! them after those this way.
//! Either makes one durable commit and returns its positions. Passes and the procedure number
//! after the larger of the counter and the last event's position. A pass runs every
//! `sequence_interval` in every process, so events of `append_in` and of appends too large for
//! one procedure call get positions too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use evtstore_core::{Position, Result};
use sqlx::MySqlPool;
use tokio::sync::{Mutex, watch};

use crate::errors::{Limits, fail};
use crate::kept::Closing;
use crate::procedures::PASS_ROWS;

/// Runs passes for one provider; concurrent requests share them.
pub(crate) struct Sequencer {
    pool: MySqlPool,
    call: String,
    limits: Limits,
    /// How many callers asked for a pass.
    requested: AtomicU64,
    /// The count of `requested` that the last finished pass covers.
    covered: Mutex<u64>,
    appended: watch::Sender<Position>,
}

impl Sequencer {
    pub(crate) fn new(pool: MySqlPool, pass: &str, limits: Limits) -> Self {
        Sequencer {
            pool,
            call: format!("CALL {pass}()"),
            limits,
            requested: AtomicU64::new(0),
            covered: Mutex::new(0),
            appended: watch::channel(0).0,
        }
    }

    /// Gives positions to every committed event, at least to those committed before the call:
    /// runs a pass, or waits for one that started after the call.
    pub(crate) async fn sequence(&self) -> Result<Position> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        if *covered >= ticket {
            return Ok(*self.appended.borrow());
        }
        let start = self.requested.load(Ordering::SeqCst);
        let last = self.pass().await?;
        *covered = start;
        Ok(last)
    }

    /// Wakes this process's handlers when `last` is past the last position they were told of.
    pub(crate) fn advance(&self, last: Position) {
        self.appended.send_if_modified(|seen| {
            let moved = last > *seen;
            *seen = last.max(*seen);
            moved
        });
    }

    /// Passes until one numbers fewer than [`PASS_ROWS`] events.
    async fn pass(&self) -> Result<Position> {
        loop {
            let (last, numbered) = self.pass_once().await?;
            if numbered < PASS_ROWS {
                return Ok(last);
            }
        }
    }

    /// One pass, within `statement_timeout`; wakes this process's handlers when the last
    /// position moved. Returns the last position and how many events it numbered.
    async fn pass_once(&self) -> Result<(Position, usize)> {
        let what = "sequencer pass";
        let passed = async {
            self.call()
                .await
                .map_err(|e| fail(&self.limits.server, what, e))
        };
        let (numbered, last): (i64, i64) = self.limits.within(what, passed).await?;
        self.advance(last as Position);
        Ok((last as Position, numbered as usize))
    }

    /// One call of the pass procedure. A connection whose call failed, or was dropped part
    /// way (past `statement_timeout`), is closed, not given back: an error in the numbering's
    /// multi-table `UPDATE` escapes the procedure's handler (see `procedures`) and would leave
    /// its transaction open, holding the counter's lock.
    async fn call(&self) -> Result<(i64, i64), sqlx::Error> {
        let mut conn = Closing::new(self.pool.acquire().await?);
        let answer = sqlx::query_as(&self.call).fetch_one(&mut *conn).await?;
        drop(conn.release());
        Ok(answer)
    }

    /// Signals new positions: this process's and, within the interval, other processes'.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }

    /// Wakes this process's handlers though no position moved: a lease was released.
    pub(crate) fn wake(&self) {
        self.appended.send_modify(|_| {});
    }

    /// Runs a pass every `interval`, the first one `interval` from now (the provider runs
    /// one as it connects), until the provider is dropped.
    pub(crate) async fn run_every(self: Arc<Self>, interval: Duration) {
        let first = tokio::time::Instant::now() + interval;
        let mut ticks = tokio::time::interval_at(first, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.sequence().await {
                tracing::warn!(%error, "MariaDB sequencer pass failed; retrying");
            }
        }
    }
}
