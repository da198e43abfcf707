//! Retiring an aggregate (its events below a marker deleted, or moved to the archive table),
//! its archived events, and its key (encrypted aggregate kinds).
//!
//! A retirement is one transaction on one connection: the marker is appended as `append_in`
//! appends (its version checked: a conflict fails it all), then the aggregate's events below
//! the marker are copied to the archive (`INSERT … SELECT`, every column, positions kept) and
//! deleted; a deletion also deletes the aggregate's archived events, snapshot and key. After
//! the commit the marker is numbered as an append with a command id is (a sequencer pass,
//! which also wakes this process's handlers), so it takes a store position like any event.

use evtstore_core::provider::{AggregateKey, Retire, SharedNames, expectations, shorten};
use evtstore_core::{Error, EventMeta, NewEvent, Result, StoredEvent, Uuid};
use sqlx::{Connection, Row};

use crate::MysqlProvider;
use crate::append::deadlocked;
use crate::read::events_from;

impl MysqlProvider {
    /// See [`Provider::retire`](evtstore_core::Provider::retire). A deadlock (InnoDB rolled
    /// the whole transaction back) is tried again, up to twice.
    pub(crate) async fn retire_now(&self, marker: NewEvent, how: Retire) -> Result<EventMeta> {
        let marker = std::slice::from_ref(&marker);
        let expected = expectations(marker)?;
        if how == Retire::Archive {
            // Archived events keep their positions: number every committed event first. (An
            // aggregate's events below a marker the domain wrote are numbered already: it
            // reads the marker's version from the last numbered event.)
            self.sequencer.sequence().await?;
        }
        let (stream, id) = (&marker[0].stream, shorten(&marker[0].aggregate_id));
        let what = format!("retire {stream}/{id}");
        let mut tries = 0;
        let appended = loop {
            match self
                .within(&what, self.commit_retire(&marker[0], how))
                .await
            {
                Err(error) if tries < 2 && deadlocked(&error) => tries += 1,
                done => break done?,
            }
        };
        let placed = self.positioned_later(marker, &expected, appended.timestamp);
        let mut placed = placed.await?;
        match placed.pop() {
            Some(meta) if meta.position > 0 => Ok(meta),
            _ => Err(Error::backend(
                format!("MariaDB {}: retire", self.limits.server),
                "the marker was committed, but its position could not be read",
            )),
        }
    }

    /// The retirement's transaction; returns the marker's envelope without its position.
    async fn commit_retire(&self, marker: &NewEvent, how: Retire) -> Result<EventMeta> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(|e| self.fail("begin", e))?;
        let appended = self.append_in(&mut tx, vec![marker.clone()]).await?;
        let (stream, id) = (marker.stream.as_str(), marker.aggregate_id.as_str());
        let below = marker.version as i64;
        let fail = |what: &'static str| move |e| self.fail(what, e);
        if how == Retire::Archive {
            let archive = sqlx::query(&self.sql.archive_events).bind(stream).bind(id);
            let archive = archive.bind(below).execute(&mut *tx).await;
            archive.map_err(fail("archive events"))?;
        }
        let retire = sqlx::query(&self.sql.retire_events).bind(stream).bind(id);
        let retire = retire.bind(below).execute(&mut *tx).await;
        retire.map_err(fail("delete retired events"))?;
        if how == Retire::Delete {
            for sql in [
                &self.sql.delete_archived,
                &self.sql.delete_snapshot,
                &self.sql.delete_key,
            ] {
                let deleted = sqlx::query(sql).bind(stream).bind(id).execute(&mut *tx);
                deleted
                    .await
                    .map_err(fail("delete a deleted aggregate's data"))?;
            }
        }
        tx.commit().await.map_err(fail("commit"))?;
        Ok(appended.into_iter().next().expect("one marker"))
    }

    /// An aggregate's archived events with `after < version < before`, in version order.
    pub(crate) async fn read_archived(
        &self,
        stream: &str,
        id: &str,
        after: u64,
        before: u64,
    ) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(&self.sql.archived)
            .bind(stream)
            .bind(id)
            .bind(after.min(i64::MAX as u64) as i64)
            .bind(before.min(i64::MAX as u64) as i64)
            .fetch_all(&self.pool)
            .await;
        let events = rows.and_then(|rows| events_from(SharedNames::new(&[stream]), &rows));
        events.map_err(|e| self.fail("read archived events", e))
    }

    /// An aggregate's key; when it has none and `create` is set, a new one inserted unless
    /// another creator's is there (`INSERT IGNORE`), and the one stored read back.
    pub(crate) async fn read_key(
        &self,
        stream: &str,
        id: &str,
        create: bool,
    ) -> Result<Option<AggregateKey>> {
        let found = self.stored_key(&self.pool, stream, id).await?;
        if found.is_some() || !create {
            return Ok(found);
        }
        let new = AggregateKey::generate();
        sqlx::query(&self.sql.create_key)
            .bind(stream)
            .bind(id)
            .bind(new.id.as_bytes().as_slice())
            .bind(new.secret.as_slice())
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail("create aggregate key", e))?;
        // None only when a shredding deleted it since: what is sealed with the new key now
        // is as shredded as what was sealed before.
        let stored = self.stored_key(&self.pool, stream, id).await?;
        Ok(Some(stored.unwrap_or(new)))
    }

    /// An aggregate's stored key, read with `on` (the pool, or a transaction).
    pub(crate) async fn stored_key<'e>(
        &self,
        on: impl sqlx::MySqlExecutor<'e>,
        stream: &str,
        id: &str,
    ) -> Result<Option<AggregateKey>> {
        let fail = |e| self.fail("read aggregate key", e);
        let row = sqlx::query(&self.sql.key)
            .bind(stream)
            .bind(id)
            .fetch_optional(on)
            .await
            .map_err(fail)?;
        let Some(row) = row else { return Ok(None) };
        let key = || -> Result<AggregateKey, sqlx::Error> {
            let key_id: &[u8] = row.try_get(0)?;
            Ok(AggregateKey {
                id: Uuid::from_slice(key_id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                secret: row.try_get(1)?,
            })
        };
        key().map(Some).map_err(fail)
    }

    /// Deletes an aggregate's key and its snapshot, together.
    pub(crate) async fn delete_key(&self, stream: &str, id: &str) -> Result<()> {
        let fail = |what: &'static str| move |e| self.fail(what, e);
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(fail("begin"))?;
        for sql in [&self.sql.delete_key, &self.sql.delete_snapshot] {
            let deleted = sqlx::query(sql).bind(stream).bind(id).execute(&mut *tx);
            deleted.await.map_err(fail("forget aggregate key"))?;
        }
        tx.commit().await.map_err(fail("commit"))
    }
}
