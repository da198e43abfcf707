//! Reads: aggregates, pages of events (waiting for the horizon), bookmarks, snapshots.

use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use evtstore_core::provider::SharedNames;
use evtstore_core::{EventMeta, Position, Result, SharedStr, Snapshot, StoredEvent};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::PgProvider;

/// How long a short page waits for transactions that hold committed events beyond the horizon.
const HORIZON_WAIT: Duration = Duration::from_secs(2);

/// The index of the first column after an event's (`sql::EVENT_COLUMNS`).
pub(crate) const AFTER_EVENT: usize = 11;

/// An event of a row, its names shared with the read's other events.
pub(crate) fn event_from_row(names: &mut SharedNames, row: &Row) -> StoredEvent {
    StoredEvent {
        meta: meta_from_row(names, row),
        data: row.get(5),
    }
}

/// The envelope of an event's row (its body is column 5).
pub(crate) fn meta_from_row(names: &mut SharedNames, row: &Row) -> EventMeta {
    EventMeta {
        stream: names.stream(row.get(0)),
        aggregate_id: names.aggregate_id(row.get(1)),
        version: row.get::<_, i64>(2) as u64,
        position: row.get::<_, i64>(3) as u64,
        timestamp: row.get(4),
        event_id: row.get(6),
        correlation_id: row.get(7),
        causation_id: row.get(8),
        metadata: row.get::<_, Option<&str>>(9).map(SharedStr::from),
        revision: row.get::<_, i32>(10) as u32,
    }
}

impl PgProvider {
    pub(crate) async fn read_aggregate(
        &self,
        stream: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>> {
        let what = format!("read aggregate {stream}/{id}");
        let client = self.client().await?;
        let statement = client.prepare_cached(&self.sql.aggregate_events);
        let statement = self.run(&what, statement).await?;
        let params: [&(dyn ToSql + Sync); 3] = [&stream, &id, &(after as i64)];
        let rows = self.run(&what, client.query(&statement, &params)).await?;
        let mut names = SharedNames::new(&[stream]);
        Ok(rows
            .iter()
            .map(|row| event_from_row(&mut names, row))
            .collect())
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
        let what = "read events";
        let mut wait = HorizonWait::new();
        let page = self.sql.page(streams);
        let events = self.run(what, client.prepare_cached(&page.sql)).await?;
        loop {
            let listed: [&(dyn ToSql + Sync); 3] = [&(after as i64), &(limit as i64), &streams];
            let params = if page.lists_streams {
                &listed[..]
            } else {
                &listed[..2]
            };
            let rows = self.run(what, client.query(&events, params)).await?;
            // Visible events come first; the others are committed but held back.
            let visible = rows
                .iter()
                .take_while(|row| row.get::<_, bool>(AFTER_EVENT))
                .count();
            let mut names = SharedNames::new(streams);
            let page = rows[..visible].iter();
            let page = page.map(|row| event_from_row(&mut names, row)).collect();
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
        let Some(id) = id else {
            return self.read_last_on(&client, streams).await;
        };
        let sql = &self.sql.last_aggregate_event;
        let params: [&(dyn ToSql + Sync); 2] = [&streams, &id];
        let row = self.run("read last event", client.query_opt(sql, &params));
        let mut names = SharedNames::new(streams);
        Ok(row.await?.map(|row| event_from_row(&mut names, &row)))
    }

    /// The end of history, on a given connection or transaction: the last committed event,
    /// once nothing older can still appear.
    pub(crate) async fn read_last_on<C: GenericClient>(
        &self,
        client: &C,
        streams: &[String],
    ) -> Result<Option<StoredEvent>> {
        let what = "read last event";
        let mut wait = HorizonWait::new();
        let listed: [&(dyn ToSql + Sync); 1] = [&streams];
        let last = |visible_only| {
            let last = self.sql.last(streams, visible_only);
            let params = if last.lists_streams { &listed[..] } else { &[] };
            async move { self.run(what, client.query_opt(&*last.sql, params)).await }
        };
        loop {
            match last(false).await? {
                None => return Ok(None),
                Some(row) if row.get::<_, bool>(AFTER_EVENT) => {
                    return Ok(Some(event_from_row(&mut SharedNames::new(streams), &row)));
                }
                Some(_) if wait.again().await => {}
                Some(_) => {
                    let row = last(true).await?;
                    let mut names = SharedNames::new(streams);
                    return Ok(row.map(|row| event_from_row(&mut names, &row)));
                }
            }
        }
    }

    pub(crate) async fn read_streams(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client.query(&self.sql.streams, &[]);
        let rows = self.run("list streams", rows).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    pub(crate) async fn read_bookmark(&self, name: &str) -> Result<Option<Position>> {
        let client = self.client().await?;
        let what = format!("read bookmark {name}");
        let sql = &self.sql.bookmark;
        let row = self.run(&what, client.query_opt(sql, &[&name])).await?;
        Ok(row.map(|r| r.get::<_, i64>(0) as u64))
    }

    pub(crate) async fn write_bookmark(&self, name: &str, position: Position) -> Result<()> {
        let client = self.client().await?;
        let what = format!("save bookmark {name}");
        let statement = self.run(&what, client.prepare_cached(&self.sql.set_bookmark));
        let statement = statement.await?;
        let params: [&(dyn ToSql + Sync); 2] = [&name, &(position as i64)];
        self.run(&what, client.execute(&statement, &params)).await?;
        self.pending_notify.notify_one(); // callers waiting to read their writes look again
        Ok(())
    }

    pub(crate) async fn read_snapshot(&self, stream: &str, id: &str) -> Result<Option<Snapshot>> {
        let client = self.client().await?;
        let what = format!("read snapshot {stream}/{id}");
        let sql = &self.sql.snapshot;
        let row = self
            .run(&what, client.query_opt(sql, &[&stream, &id]))
            .await?;
        Ok(row.map(|r| Snapshot {
            stream: stream.to_owned(),
            aggregate_id: id.to_owned(),
            schema: r.get(0),
            version: r.get::<_, i64>(1) as u64,
            position: r.get::<_, i64>(2) as u64,
            state: r.get(3),
        }))
    }

    pub(crate) async fn write_snapshot(&self, s: &Snapshot) -> Result<()> {
        let client = self.client().await?;
        let row: [&(dyn ToSql + Sync); 6] = [
            &s.stream,
            &s.aggregate_id,
            &s.schema,
            &(s.version as i64),
            &(s.position as i64),
            &s.state,
        ];
        let what = format!("save snapshot {}/{}", s.stream, s.aggregate_id);
        self.run(&what, client.execute(&self.sql.save_snapshot, &row))
            .await?;
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
