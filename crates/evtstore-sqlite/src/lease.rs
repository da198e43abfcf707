//! Leases: the writer thread runs each change in its transaction, which holds SQLite's write
//! lock, so the stored lease is read, judged by [`Lease::granted`] or [`Lease::is_held`] and
//! written with no other writer in between, in this process or another. Time is this
//! machine's clock, which every process on the file shares.

use std::time::Duration;

use evtstore_core::{Error, Lease, Position, Result};
use rusqlite::{Connection, Row};

use crate::append::{clear_bookmark, set_bookmark};
use crate::config::Config;

/// A lease change for the writer thread. Each answers the lease granted, if any.
pub(crate) enum LeaseJob {
    Acquire {
        name: String,
        owner: String,
        ttl: Duration,
    },
    Release(Lease),
    /// Saves the lease's bookmark while it is held, and clears an ask (a bookmark) that still
    /// holds the value given.
    Bookmark(Lease, Position, Option<(String, Position)>),
}

impl LeaseJob {
    /// Runs the change inside the writer's transaction, at `now` (milliseconds).
    pub(crate) fn apply(
        self,
        conn: &Connection,
        config: &Config,
        now: i64,
    ) -> Result<Option<Lease>> {
        match self {
            LeaseJob::Acquire { name, owner, ttl } => {
                acquire(conn, &name, &owner, ttl, now).map_err(|e| config.error("acquire lease", e))
            }
            LeaseJob::Release(lease) => release(conn, &lease, now)
                .map(|()| None)
                .map_err(|e| config.error("release lease", e)),
            LeaseJob::Bookmark(lease, position, ask) => {
                let held = stored(conn, &lease.name).map_err(|e| config.error("read lease", e))?;
                if !lease.is_held(held.as_ref(), now) {
                    let (name, owner) = (lease.name, lease.owner);
                    return Err(Error::LeaseLost { name, owner });
                }
                let saved = set_bookmark(conn, &lease.name, position).and_then(|()| match ask {
                    Some((ask, asked)) => clear_bookmark(conn, &ask, asked),
                    None => Ok(()),
                });
                saved
                    .map(|()| None)
                    .map_err(|e| config.error("save bookmark", e))
            }
        }
    }
}

fn acquire(
    conn: &Connection,
    name: &str,
    owner: &str,
    ttl: Duration,
    now: i64,
) -> rusqlite::Result<Option<Lease>> {
    let held = stored(conn, name)?;
    let Some(lease) = Lease::granted(held.as_ref(), name, owner, ttl, now) else {
        return Ok(None);
    };
    let mut upsert = conn.prepare_cached(
        "INSERT INTO leases (name, owner, token, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET
           owner = excluded.owner, token = excluded.token, expires_at = excluded.expires_at",
    )?;
    upsert.execute((name, owner, lease.token, lease.expires_at))?;
    Ok(Some(lease))
}

/// Ends the lease now if it is still this one and unexpired; keeps its token.
fn release(conn: &Connection, lease: &Lease, now: i64) -> rusqlite::Result<()> {
    let mut update = conn.prepare_cached(
        "UPDATE leases SET expires_at = ?4
         WHERE name = ?1 AND owner = ?2 AND token = ?3 AND expires_at > ?4",
    )?;
    update
        .execute((&lease.name, &lease.owner, lease.token, now))
        .map(drop)
}

fn stored(conn: &Connection, name: &str) -> rusqlite::Result<Option<Lease>> {
    let mut select =
        conn.prepare_cached("SELECT name, owner, token, expires_at FROM leases WHERE name = ?1")?;
    let mut rows = select.query_map([name], lease_from_row)?;
    rows.next().transpose()
}

/// The leases unexpired at `now` whose names start with `prefix`, by name.
pub(crate) fn live(conn: &Connection, prefix: &str, now: i64) -> rusqlite::Result<Vec<Lease>> {
    let mut select = conn.prepare_cached(
        "SELECT name, owner, token, expires_at FROM leases
         WHERE substr(name, 1, length(?1)) = ?1 AND expires_at > ?2 ORDER BY name",
    )?;
    let rows = select.query_map((prefix, now), lease_from_row)?;
    rows.collect()
}

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        name: row.get(0)?,
        owner: row.get(1)?,
        token: row.get(2)?,
        expires_at: row.get(3)?,
    })
}
