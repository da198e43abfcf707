//! Leases, by the server's clock (UTC, in milliseconds), so that processes on several machines
//! agree on when one ends. Each change follows [`Lease::granted`]: racing owners meet on the
//! table's primary key (`INSERT … ON DUPLICATE KEY UPDATE` locks the row), and a fenced
//! bookmark save is one `INSERT … SELECT` from the held lease row, which it locks for the
//! statement, so no one takes the lease over between the check and the write.
//!
//! Every change is a single statement (or a call of a procedure) the server runs to its end:
//! a process paused (or hung) between two statements of a transaction would keep the lease
//! row locked, and no other process could take the lease over.

use std::time::Duration;

use evtstore_core::provider::ttl_millis;
use evtstore_core::{Error, Lease, Position, Result};
use sqlx::Row;
use sqlx::mysql::MySqlRow;

use crate::MysqlProvider;
use crate::read::text;
use crate::tables::Tables;

/// Now, by the server's clock, in milliseconds since the Unix epoch (no time zone involved).
pub(crate) const NOW_MS: &str =
    "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(3)) DIV 1000)";

/// The lease statements of one table set.
pub(crate) struct LeaseSql {
    acquire: String,
    lease: String,
    release: String,
    held: String,
    save_bookmark: String,
    live: String,
}

impl LeaseSql {
    pub(crate) fn new(t: &Tables) -> Self {
        let leases = &t.leases;
        LeaseSql {
            // Name, owner, ttl in ms. The assignments run in order, each seeing the ones
            // before: the owner changes only when the lease expired, and the end moves only
            // when the asking owner holds it (as before, or now).
            acquire: format!(
                "INSERT INTO {leases} (name, owner, token, expires_at) VALUES (?, ?, 1, {NOW_MS} + ?)
                 ON DUPLICATE KEY UPDATE
                   token = IF(expires_at <= {NOW_MS}, token + 1, token),
                   owner = IF(expires_at <= {NOW_MS}, VALUES(owner), owner),
                   expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)"
            ),
            lease: format!("SELECT name, owner, token, expires_at FROM {leases} WHERE name = ?"),
            release: format!(
                "UPDATE {leases} SET expires_at = {NOW_MS}
                 WHERE name = ? AND owner = ? AND token = ? AND expires_at > {NOW_MS}"
            ),
            held: format!(
                "SELECT 1 FROM {leases}
                 WHERE name = ? AND owner = ? AND token = ? AND expires_at > {NOW_MS}"
            ),
            // Position, name, owner, token.
            save_bookmark: format!(
                "INSERT INTO {bookmarks} (name, position)
                 SELECT name, ? FROM {leases}
                 WHERE name = ? AND owner = ? AND token = ? AND expires_at > {NOW_MS}
                 ON DUPLICATE KEY UPDATE position = VALUES(position)",
                bookmarks = t.bookmarks
            ),
            live: format!(
                "SELECT name, owner, token, expires_at FROM {leases}
                 WHERE LEFT(name, LENGTH(?)) = ? AND expires_at > {NOW_MS} ORDER BY name"
            ),
        }
    }
}

impl MysqlProvider {
    /// Takes or renews the lease, then reads it back: it is granted when the asking owner
    /// holds it (had another taken it over in between, the read shows that owner instead).
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let fail = |e| self.fail(&format!("acquire lease {name}"), e);
        let acquire = sqlx::query(&self.sql.lease.acquire)
            .bind(name)
            .bind(owner)
            .bind(ttl_millis(ttl));
        acquire.execute(&self.pool).await.map_err(fail)?;
        let row = sqlx::query(&self.sql.lease.lease).bind(name);
        let stored = row
            .fetch_one(&self.pool)
            .await
            .and_then(|r| lease_from_row(&r));
        let stored = stored.map_err(fail)?;
        Ok(Some(stored).filter(|lease| lease.owner == owner))
    }

    /// Ends the lease if it is still this one, and wakes this process's handlers; those of
    /// other processes try again at their next poll.
    pub(crate) async fn end_lease(&self, lease: &Lease) -> Result<()> {
        sqlx::query(&self.sql.lease.release)
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(lease.token as i64)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail(&format!("release lease {}", lease.name), e))?;
        self.sequencer.wake();
        Ok(())
    }

    pub(crate) async fn save_bookmark_leased(
        &self,
        lease: &Lease,
        position: Position,
    ) -> Result<()> {
        let fail = |e| self.fail(&format!("save bookmark {}", lease.name), e);
        let save = sqlx::query(&self.sql.lease.save_bookmark)
            .bind(position as i64)
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(lease.token as i64);
        if save
            .execute(&self.pool)
            .await
            .map_err(fail)?
            .rows_affected()
            > 0
        {
            return Ok(());
        }
        // No row changed: the lease is not held, or the bookmark was there already.
        let held = sqlx::query(&self.sql.lease.held)
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(lease.token as i64);
        if held
            .fetch_optional(&self.pool)
            .await
            .map_err(fail)?
            .is_some()
        {
            return Ok(());
        }
        let (name, owner) = (lease.name.clone(), lease.owner.clone());
        Err(Error::LeaseLost { name, owner })
    }

    /// Saves the lease's bookmark and clears `ask` if it still holds `asked`, through the
    /// `evtstore_ask_…` procedure of these tables (see `procedures::ask_procedure`).
    pub(crate) async fn apply_ask(
        &self,
        lease: &Lease,
        position: Position,
        ask: &str,
        asked: Position,
    ) -> Result<()> {
        let fail = |e| self.fail(&format!("apply an ask to {}", lease.name), e);
        let held: i64 = sqlx::query_scalar(&self.sql.apply_ask)
            .bind(&lease.name)
            .bind(&lease.owner)
            .bind(lease.token as i64)
            .bind(position as i64)
            .bind(ask)
            .bind(asked as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(fail)?;
        if held == 0 {
            let (name, owner) = (lease.name.clone(), lease.owner.clone());
            return Err(Error::LeaseLost { name, owner });
        }
        Ok(())
    }

    pub(crate) async fn live_leases(&self, prefix: &str) -> Result<Vec<Lease>> {
        let live = sqlx::query(&self.sql.lease.live).bind(prefix).bind(prefix);
        let rows = live.fetch_all(&self.pool).await;
        let leases = rows.and_then(|rows| rows.iter().map(lease_from_row).collect());
        leases.map_err(|e| self.fail("read leases", e))
    }
}

fn lease_from_row(row: &MySqlRow) -> Result<Lease, sqlx::Error> {
    Ok(Lease {
        name: text(row, 0)?.to_owned(),
        owner: text(row, 1)?.to_owned(),
        token: row.try_get::<i64, _>(2)? as u64,
        expires_at: row.try_get(3)?,
    })
}
