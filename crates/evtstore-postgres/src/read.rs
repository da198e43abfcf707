//! Reads: aggregates, pages of events (waiting for the horizon), bookmarks, snapshots.

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use evtstore_core::{EventMeta, Position, Result, Snapshot, StoredEvent};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::PgProvider;

/// How long a short page waits for transactions that hold committed events beyond the horizon.
const HORIZON_WAIT: Duration = Duration::from_secs(2);

pub(crate) fn event_from_row(row: &Row) -> StoredEvent {
    let meta = EventMeta {
        stream: row.get(0),
        aggregate_id: row.get(1),
        version: row.get::<_, i64>(2) as u64,
        position: row.get::<_, i64>(3) as u64,
        timestamp: row.get(4),
    };
    StoredEvent {
        meta,
        data: row.get(5),
    }
}

impl PgProvider {
    pub(crate) async fn read_aggregate(
        &self,
        stream: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.aggregate_events)
            .await
            .map_err(|e| self.fail("read aggregate", e))?;
        let rows = client
            .query(&statement, &[&stream, &id, &(after as i64)])
            .await
            .map_err(|e| self.fail("read aggregate", e))?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// A page after `after`; when it is short but committed events wait beyond the horizon,
    /// waits (a little longer each time) for the transactions holding it back.
    pub(crate) async fn read_page(
        &self,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        self.read_page_on(&client, streams, after, limit).await
    }

    /// [`read_page`](Self::read_page) with a given connection or transaction.
    ///
    /// When the wait ends while events are still held back (a long transaction is running),
    /// the page stops before them; the next run or poll reads them.
    pub(crate) async fn read_page_on<C: GenericClient>(
        &self,
        client: &C,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let fail = |e| self.fail("read events", e);
        let mut wait = HorizonWait::new();
        let events = client
            .prepare_cached(&self.sql.events)
            .await
            .map_err(fail)?;
        loop {
            let params: [&(dyn ToSql + Sync); 3] = [&(after as i64), &streams, &(limit as i64)];
            let rows = client.query(&events, &params).await.map_err(fail)?;
            // Visible events come first; the others are committed but held back.
            let visible = rows.iter().take_while(|row| row.get::<_, bool>(6)).count();
            let page = rows[..visible].iter().map(event_from_row).collect();
            if visible == rows.len() || !wait.again().await {
                return Ok(page);
            }
        }
    }

    pub(crate) async fn read_last(
        &self,
        streams: &[String],
        id: Option<&str>,
    ) -> Result<Option<StoredEvent>> {
        let client = self.client().await?;
        let fail = |e| self.fail("read last event", e);
        if let Some(id) = id {
            let sql = &self.sql.last_aggregate_event;
            let row = client
                .query_opt(sql, &[&streams, &id])
                .await
                .map_err(fail)?;
            return Ok(row.as_ref().map(event_from_row));
        }
        // The end of history is the last committed event, once nothing older can still appear.
        let mut wait = HorizonWait::new();
        loop {
            let row = client
                .query_opt(&self.sql.last_event, &[&streams])
                .await
                .map_err(fail)?;
            match row {
                None => return Ok(None),
                Some(row) if row.get::<_, bool>(6) => return Ok(Some(event_from_row(&row))),
                Some(_) if wait.again().await => {}
                Some(_) => {
                    let sql = &self.sql.last_visible_event;
                    let row = client.query_opt(sql, &[&streams]).await.map_err(fail)?;
                    return Ok(row.as_ref().map(event_from_row));
                }
            }
        }
    }

    pub(crate) async fn read_bookmark(&self, name: &str) -> Result<Option<Position>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.bookmark, &[&name])
            .await
            .map_err(|e| self.fail("read bookmark", e))?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    pub(crate) async fn write_bookmark(&self, name: &str, position: Position) -> Result<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.set_bookmark)
            .await
            .map_err(|e| self.fail("save bookmark", e))?;
        client
            .execute(&statement, &[&name, &(position as i64)])
            .await
            .map_err(|e| self.fail("save bookmark", e))?;
        Ok(())
    }

    pub(crate) async fn read_snapshot(&self, stream: &str, id: &str) -> Result<Option<Snapshot>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.snapshot, &[&stream, &id])
            .await
            .map_err(|e| self.fail("read snapshot", e))?;
        Ok(row.map(|r| Snapshot {
            stream: stream.to_owned(),
            aggregate_id: id.to_owned(),
            tag: r.get(0),
            version: r.get::<_, i64>(1) as u64,
            position: r.get::<_, i64>(2) as u64,
            state: r.get(3),
        }))
    }

    pub(crate) async fn write_snapshot(&self, s: &Snapshot) -> Result<()> {
        let client = self.client().await?;
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &s.stream,
            &s.aggregate_id,
            &s.tag,
            &(s.version as i64),
            &(s.position as i64),
            &s.state,
        ];
        client
            .execute(&self.sql.save_snapshot, &row)
            .await
            .map_err(|e| self.fail("save snapshot", e))?;
        Ok(())
    }
}

/// Waits, a little longer each time, for transactions that hold committed events back.
struct HorizonWait {
    deadline: Instant,
    pause: Duration,
}

impl HorizonWait {
    fn new() -> Self {
        HorizonWait {
            deadline: Instant::now() + HORIZON_WAIT,
            pause: Duration::from_millis(1),
        }
    }

    /// Sleeps and returns true; false, at once, when the wait is over.
    async fn again(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(50));
        true
    }
}
