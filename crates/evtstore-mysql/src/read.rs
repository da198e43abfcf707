//! Reads: aggregates, pages of events, the last event, bookmarks, snapshots.

use evtstore_core::provider::SharedNames;
use evtstore_core::{
    CommandRecord, EventMeta, Position, Result, SharedStr, Snapshot, StoredEvent, Uuid,
};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};

use crate::sql::Sql;
use crate::{MysqlProvider, errors};

/// Text stored as bytes (`VARBINARY` compares exactly, with no collation or padding).
pub(crate) fn text(row: &MySqlRow, index: usize) -> Result<&str, sqlx::Error> {
    let bytes: &[u8] = row.try_get(index)?;
    std::str::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A UUID stored as 16 bytes, or NULL.
pub(crate) fn uuid(row: &MySqlRow, index: usize) -> Result<Option<Uuid>, sqlx::Error> {
    let bytes: Option<&[u8]> = row.try_get(index)?;
    let id = bytes.map(Uuid::from_slice).transpose();
    id.map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// An event of a row, its names shared with the read's other events.
pub(crate) fn event_from_row(
    names: &mut SharedNames,
    row: &MySqlRow,
) -> Result<StoredEvent, sqlx::Error> {
    let meta = EventMeta {
        stream: names.stream(text(row, 0)?),
        aggregate_id: names.aggregate_id(text(row, 1)?),
        version: row.try_get::<i64, _>(2)? as u64,
        position: row.try_get::<i64, _>(3)? as u64,
        timestamp: row.try_get(4)?,
        event_id: uuid(row, 6)?.ok_or_else(|| {
            let null = "an event without an id (a NULL event_id)";
            sqlx::Error::Decode(null.into())
        })?,
        correlation_id: uuid(row, 7)?,
        causation_id: uuid(row, 8)?,
        metadata: row.try_get::<Option<String>, _>(9)?.map(SharedStr::from),
        revision: row.try_get(10)?,
    };
    Ok(StoredEvent {
        meta,
        data: row.try_get(5)?,
    })
}

/// A bookmark's position; `None` when never set: no row, or the row a transactional handler
/// creates to lock, at -1 (see `sql`).
pub(crate) fn set_position(position: Option<i64>) -> Option<Position> {
    position.filter(|&p| p >= 0).map(|p| p as u64)
}

/// At most `limit` positioned events of `streams` after `after`, in position order.
pub(crate) async fn read_page(
    conn: &mut MySqlConnection,
    sql: &Sql,
    server: &str,
    streams: &[String],
    after: Position,
    limit: usize,
) -> Result<Vec<StoredEvent>> {
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |e| errors::fail(server, "read events", e);
    let sql = sql.page(streams.len());
    let mut query = sqlx::query(&sql).bind(after as i64);
    for stream in streams {
        query = query.bind(stream.as_str());
    }
    let rows = query.bind(limit as i64).fetch_all(conn).await;
    let events = rows.and_then(|rows| events_from(SharedNames::new(streams), &rows));
    events.map_err(fail)
}

/// The events of a read's rows, sharing their names.
pub(crate) fn events_from(
    mut names: SharedNames,
    rows: &[MySqlRow],
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    rows.iter()
        .map(|row| event_from_row(&mut names, row))
        .collect()
}

impl MysqlProvider {
    pub(crate) async fn read_aggregate(
        &self,
        stream: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>> {
        let fail = |e| self.fail("read aggregate", e);
        let mut conn = self.kept.take().await.map_err(fail)?;
        let rows = sqlx::query(&self.sql.aggregate_events)
            .bind(stream)
            .bind(id)
            .bind(after as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?;
        conn.keep();
        events_from(SharedNames::new(&[stream]), &rows).map_err(fail)
    }

    /// A page of positioned events after `after`.
    pub(crate) async fn read_page_on(
        &self,
        conn: &mut MySqlConnection,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        read_page(conn, &self.sql, &self.limits.server, streams, after, limit).await
    }

    pub(crate) async fn read_last(
        &self,
        conn: &mut MySqlConnection,
        streams: &[String],
        id: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        if streams.is_empty() {
            return Ok(None);
        }
        let fail = |e| self.fail("read last event", e);
        let sql = self.sql.last_event(streams.len(), id.is_some());
        let mut query = sqlx::query(&sql);
        for stream in streams {
            query = query.bind(stream.as_str());
        }
        if let Some(id) = id {
            query = query.bind(id);
        }
        let row = query.fetch_optional(conn).await.map_err(fail)?;
        let mut names = SharedNames::new(streams);
        let event = row.map(|row| event_from_row(&mut names, &row));
        event.transpose().map_err(fail)
    }

    /// What an append recorded of a command id.
    pub(crate) async fn read_command(&self, id: Uuid) -> Result<Option<CommandRecord>> {
        let fail = |e| self.fail("read command", e);
        let row = sqlx::query(&self.sql.command)
            .bind(id.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(fail)?;
        let Some(row) = row else { return Ok(None) };
        let record = || -> Result<CommandRecord, sqlx::Error> {
            Ok(CommandRecord {
                stream: text(&row, 0)?.to_owned(),
                aggregate_id: text(&row, 1)?.to_owned(),
                version: row.try_get::<i64, _>(2)? as u64,
            })
        };
        record().map(Some).map_err(fail)
    }

    pub(crate) async fn read_streams(&self) -> Result<Vec<String>> {
        let fail = |e| self.fail("list streams", e);
        let rows = sqlx::query(&self.sql.streams).fetch_all(&self.pool).await;
        let rows = rows.map_err(fail)?;
        let names = rows.iter().map(|row| text(row, 0).map(str::to_owned));
        names.collect::<Result<_, sqlx::Error>>().map_err(fail)
    }

    pub(crate) async fn read_bookmark(&self, name: &str) -> Result<Option<Position>> {
        let position: Option<i64> = sqlx::query_scalar(&self.sql.bookmark)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail("read bookmark", e))?;
        Ok(set_position(position))
    }

    pub(crate) async fn write_bookmark(
        &self,
        conn: &mut MySqlConnection,
        name: &str,
        position: Position,
    ) -> Result<()> {
        sqlx::query(&self.sql.set_bookmark)
            .bind(name)
            .bind(position as i64)
            .execute(conn)
            .await
            .map_err(|e| self.fail("save bookmark", e))?;
        Ok(())
    }

    pub(crate) async fn read_snapshot(&self, stream: &str, id: &str) -> Result<Option<Snapshot>> {
        let fail = |e| self.fail("read snapshot", e);
        let row = sqlx::query(&self.sql.snapshot)
            .bind(stream)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(fail)?;
        let Some(row) = row else { return Ok(None) };
        let snapshot = || -> Result<Snapshot, sqlx::Error> {
            Ok(Snapshot {
                stream: stream.to_owned(),
                aggregate_id: id.to_owned(),
                schema: row.try_get(0)?,
                version: row.try_get::<i64, _>(1)? as u64,
                position: row.try_get::<i64, _>(2)? as u64,
                state: row.try_get(3)?,
            })
        };
        snapshot().map(Some).map_err(fail)
    }

    pub(crate) async fn write_snapshot(&self, s: &Snapshot) -> Result<()> {
        sqlx::query(&self.sql.save_snapshot)
            .bind(&s.stream)
            .bind(&s.aggregate_id)
            .bind(&s.schema)
            .bind(s.version as i64)
            .bind(s.position as i64)
            .bind(&s.state)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail("save snapshot", e))?;
        Ok(())
    }
}
