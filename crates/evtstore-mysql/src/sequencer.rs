//! The post-commit sequencer: positions given to committed events, in one order, with no gap.
//!
//! # Why
//! `AUTO_INCREMENT` values are taken at insert time, so insert order is not commit order: a
//! transaction that inserted id 1 and commits after another's id 2 would be passed by a reader
//! that trusts `id > bookmark`. MariaDB has no snapshot horizon an ordinary user can read.
//!
//! # How
//! Writers insert events with `position` NULL (`id` gives insert order). A pass (the stored
//! procedure `<events>_pass`, one round trip) locks the one-row counter `<events>_seq` with
//! `SELECT … FOR UPDATE`, finds committed rows without a position with consistent,
//! non-locking reads in `id` order (a locking read would wait for open transactions' rows),
//! gives them positions `last + 1…` and commits. Passes are serialised by the counter lock,
//! so the positions a reader sees are gap-free and only ever grow: a reader reading
//! `position > bookmark` misses nothing. An aggregate's version `n + 1` is inserted only after
//! its version `n` is committed (the append checks it), so it has a larger id and a larger
//! position.
//!
//! A pass runs right after each append, which waits for its positions (concurrent appends of
//! one process share passes), and every `sequence_interval` in every process, so events of a
//! process that died after committing, or of `append_in`, get positions too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use evtstore_core::{Position, Result};
use sqlx::MySqlPool;
use tokio::sync::{Mutex, watch};

use crate::errors::fail;
use crate::schema::PASS_ROWS;

/// Runs passes for one provider; concurrent requests share them.
pub(crate) struct Sequencer {
    pool: MySqlPool,
    call: String,
    server: Arc<str>,
    /// The positions the last pass gave, by event id.
    given: std::sync::Mutex<HashMap<u64, Position>>,
    /// How many appends asked for a pass, each after its insert committed.
    requested: AtomicU64,
    /// The count of `requested` that the last finished pass covers.
    covered: Mutex<u64>,
    appended: watch::Sender<Position>,
}

impl Sequencer {
    pub(crate) fn new(pool: MySqlPool, pass: &str, server: Arc<str>) -> Self {
        Sequencer {
            pool,
            call: format!("CALL {pass}()"),
            server,
            given: std::sync::Mutex::default(),
            requested: AtomicU64::new(0),
            covered: Mutex::new(0),
            appended: watch::channel(0).0,
        }
    }

    /// Gives positions to every committed event, at least to those committed before the call:
    /// runs a pass, or waits for one that started after the call.
    pub(crate) async fn sequence(&self) -> Result<Position> {
        self.sequence_for(None).await
    }

    /// [`sequence`](Self::sequence) for an append of one event with this `id`: no pass is
    /// needed once the last pass has given it a position (the pass that was running when it
    /// committed may have).
    pub(crate) async fn sequence_for(&self, id: Option<u64>) -> Result<Position> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut covered = self.covered.lock().await;
        let given = id.and_then(|id| self.position_of(id)).is_some();
        if *covered >= ticket || given {
            return Ok(*self.appended.borrow());
        }
        let start = self.requested.load(Ordering::SeqCst);
        let last = self.pass().await?;
        *covered = start;
        Ok(last)
    }

    /// The position the last pass of this process gave the event with this `id`, if it did.
    pub(crate) fn position_of(&self, id: u64) -> Option<Position> {
        let given = self.given.lock().unwrap_or_else(|e| e.into_inner());
        given.get(&id).copied()
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

    /// One pass; wakes this process's handlers when the last position moved. Returns the last
    /// position and how many events it numbered.
    async fn pass_once(&self) -> Result<(Position, usize)> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(&self.call)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| fail(&self.server, "sequencer pass", e))?;
        let last = rows.first().map_or(0, |&(_, last)| last as Position);
        let given = rows
            .iter()
            .skip(1)
            .map(|&(id, p)| (id as u64, p as Position));
        *self.given.lock().unwrap_or_else(|e| e.into_inner()) = given.collect();
        self.appended.send_if_modified(|seen| {
            let moved = last > *seen;
            *seen = last.max(*seen);
            moved
        });
        Ok((last, rows.len().saturating_sub(1)))
    }

    /// Signals new positions: this process's and, within the interval, other processes'.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Position> {
        self.appended.subscribe()
    }

    /// Wakes this process's handlers though no position moved: a lease was released.
    pub(crate) fn wake(&self) {
        self.appended.send_modify(|_| {});
    }

    /// Runs a pass every `interval` until the provider is dropped.
    pub(crate) async fn run_every(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = self.sequence().await {
                tracing::warn!(%error, "MariaDB sequencer pass failed; retrying");
            }
        }
    }
}
