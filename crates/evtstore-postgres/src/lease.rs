//! Leases, by the server's clock (`clock_timestamp()`, in milliseconds), so that processes on
//! several machines agree on when one ends. Each change is one statement that follows
//! [`Lease::granted`]: racing owners meet on the table's primary key (`INSERT … ON CONFLICT`
//! locks the row), and a fenced bookmark save holds the lease row (`FOR SHARE`) until it
//! commits, so no one takes the lease over between the check and the write.

use std::time::Duration;

use evtstore_core::provider::ttl_millis;
use evtstore_core::{Error, Lease, Position, Result};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::PgProvider;
use crate::tables::Tables;

/// Now, by the server's clock, in milliseconds since the Unix epoch.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The lease statements of one table set.
pub(crate) struct LeaseSql {
    acquire: String,
    release: String,
    save_bookmark: String,
    live: String,
}

impl LeaseSql {
    pub(crate) fn new(t: &Tables) -> Self {
        let leases = &t.leases;
        LeaseSql {
            // `$1` name, `$2` owner, `$3` ttl in ms. A row comes back only when granted.
            acquire: format!(
                "WITH now AS (SELECT {NOW_MS} AS ms)
                 INSERT INTO {leases} AS held (name, owner, token, expires_at)
                 SELECT $1, $2, 1, ms + $3 FROM now
                 ON CONFLICT (name) DO UPDATE SET
                   owner = excluded.owner,
                   expires_at = excluded.expires_at,
                   token = CASE WHEN held.expires_at > (SELECT ms FROM now)
                     THEN held.token ELSE held.token + 1 END
                 WHERE held.owner = excluded.owner OR held.expires_at <= (SELECT ms FROM now)
                 RETURNING token, expires_at"
            ),
            // `$1` name, `$2` owner, `$3` token.
            release: format!(
                "UPDATE {leases} SET expires_at = {NOW_MS}
                 WHERE name = $1 AND owner = $2 AND token = $3 AND expires_at > {NOW_MS}"
            ),
            // `$1..$3` the lease, `$4` the position, `$5` an ask to clear (or NULL) if it still
            // holds `$6`. A row comes back only when saved.
            save_bookmark: format!(
                "WITH held AS (
                   SELECT name FROM {leases}
                   WHERE name = $1 AND owner = $2 AND token = $3 AND expires_at > {NOW_MS}
                   FOR SHARE
                 ), cleared AS (
                   DELETE FROM {bookmarks}
                   WHERE name = $5::text AND position = $6::bigint AND EXISTS (SELECT FROM held)
                 )
                 INSERT INTO {bookmarks} (name, position) SELECT name, $4 FROM held
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position
                 RETURNING name",
                bookmarks = t.bookmarks
            ),
            live: format!(
                "SELECT name, owner, token, expires_at FROM {leases}
                 WHERE starts_with(name, $1) AND expires_at > {NOW_MS} ORDER BY name"
            ),
        }
    }
}

impl PgProvider {
    pub(crate) async fn take_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let ttl_ms = ttl_millis(ttl);
        let params: [&(dyn ToSql + Sync); 3] = [&name, &owner, &ttl_ms];
        let what = format!("acquire lease {name}");
        let granted = self
            .lease_query(&what, &self.sql.lease.acquire, &params)
            .await?;
        Ok(granted.first().map(|row| Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            token: row.get::<_, i64>(0) as u64,
            expires_at: row.get(1),
        }))
    }

    /// Ends the lease if it is still this one, and wakes handlers here and, by a NOTIFY, in
    /// other processes.
    pub(crate) async fn end_lease(&self, lease: &Lease) -> Result<()> {
        let token = lease.token as i64;
        let params: [&(dyn ToSql + Sync); 3] = [&lease.name, &lease.owner, &token];
        let what = format!("release lease {}", lease.name);
        self.lease_query(&what, &self.sql.lease.release, &params)
            .await?;
        self.notify_appended();
        Ok(())
    }

    /// Saves the lease's bookmark while it is held and, in the same statement, clears `ask`
    /// if it still holds its value.
    pub(crate) async fn save_bookmark_leased(
        &self,
        lease: &Lease,
        position: Position,
        ask: Option<(&str, Position)>,
    ) -> Result<()> {
        let (token, position) = (lease.token as i64, position as i64);
        let (ask, asked) = (ask.map(|a| a.0), ask.map(|a| a.1 as i64));
        let params: [&(dyn ToSql + Sync); 6] =
            [&lease.name, &lease.owner, &token, &position, &ask, &asked];
        let what = format!("save bookmark {}", lease.name);
        let saved = self.lease_query(&what, &self.sql.lease.save_bookmark, &params);
        if saved.await?.is_empty() {
            let (name, owner) = (lease.name.clone(), lease.owner.clone());
            return Err(Error::LeaseLost { name, owner });
        }
        self.pending_notify.notify_one(); // callers waiting to read their writes look again
        Ok(())
    }

    pub(crate) async fn live_leases(&self, prefix: &str) -> Result<Vec<Lease>> {
        let params: [&(dyn ToSql + Sync); 1] = [&prefix];
        let live = self.lease_query("read leases", &self.sql.lease.live, &params);
        Ok(live.await?.iter().map(lease_from_row).collect())
    }

    /// One statement on a pooled connection, prepared once per connection.
    async fn lease_query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let statement = self.run(what, client.prepare_cached(sql)).await?;
        self.run(what, client.query(&statement, params)).await
    }
}

fn lease_from_row(row: &Row) -> Lease {
    Lease {
        name: row.get(0),
        owner: row.get(1),
        token: row.get::<_, i64>(2) as u64,
        expires_at: row.get(3),
    }
}
