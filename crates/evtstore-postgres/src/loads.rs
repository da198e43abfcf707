//! Grouped reads: aggregate loads from concurrent callers in this process share one query
//! ([`LoadQueue`]); a load alone uses the plain statement, and a fold alone streams its rows.

use std::pin::pin;

use deadpool_postgres::Object;
use evtstore_core::provider::{Load, LoadMany, LoadQueue, SharedNames, Visitor, WaitLimit};
use evtstore_core::{Error, Result, StoredEvent};
use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;

use crate::read::{AFTER_EVENT, event_from_row, meta_from_row};
use crate::{PgProvider, failure};

/// Loads waiting to be read.
pub(crate) type Loads = LoadQueue;

impl LoadMany for PgProvider {
    const BACKEND: &'static str = "PostgreSQL";

    async fn load_one(&self, load: &Load) -> Result<Vec<StoredEvent>> {
        let Load {
            stream,
            aggregate_id,
            after,
        } = load;
        self.read(|| self.read_aggregate(stream, aggregate_id, *after))
            .await
    }

    /// Streams the rows: an aggregate of a million events is folded as it arrives, never held
    /// whole. A connection the server dropped part way is read again after the last event
    /// folded, once.
    async fn visit_one(&self, load: &Load, visit: &mut Visitor<'_>) -> Result<()> {
        let mut folded = None;
        match self.stream_aggregate(load, visit, &mut folded).await {
            Err(error) if failure::connection_lost(&error) => {
                tracing::debug!(%error, "PostgreSQL read resumed on a fresh connection");
                self.stream_aggregate(load, visit, &mut folded).await
            }
            done => done,
        }
    }

    async fn load_many(&self, loads: &[Load]) -> Result<Vec<Vec<StoredEvent>>> {
        let streams: Vec<&str> = loads.iter().map(|l| l.stream.as_str()).collect();
        let ids: Vec<&str> = loads.iter().map(|l| l.aggregate_id.as_str()).collect();
        let afters: Vec<i64> = loads.iter().map(|l| l.after as i64).collect();
        let rows = self.read(|| async {
            let what = "read aggregates";
            let client = self.client().await?;
            let statement = self.run(what, client.prepare_cached(&self.sql.aggregates_events));
            let statement = statement.await?;
            let params: [&(dyn ToSql + Sync); 3] = [&streams, &ids, &afters];
            self.run(what, client.query(&statement, &params)).await
        });
        let rows = rows.await?;
        let mut events: Vec<Vec<StoredEvent>> = loads.iter().map(|_| Vec::new()).collect();
        let mut names = SharedNames::default();
        for row in &rows {
            let index = row.get::<_, i64>(AFTER_EVENT) as usize - 1;
            events[index].push(event_from_row(&mut names, row));
        }
        Ok(events)
    }
}

impl PgProvider {
    /// Gives `visit` each event of the load after `folded` (the version of the last event
    /// folded, if any) as its row arrives, setting `folded`. The waits for rows are bounded by
    /// `statement_timeout`, the folds not. A fold that stops part way leaves its connection
    /// drained, or closed.
    async fn stream_aggregate(
        &self,
        load: &Load,
        visit: &mut Visitor<'_>,
        folded: &mut Option<u64>,
    ) -> Result<()> {
        let Load {
            stream,
            aggregate_id,
            after,
        } = load;
        let what = format!("read aggregate {stream}/{aggregate_id}");
        let fail = |e| self.fail(&what, e);
        let limit = pin!(tokio::time::sleep(self.limits.statement));
        let mut waits = WaitLimit::new(limit);
        let started = waits.wait(async {
            let client = self.client().await?;
            let statement = client.prepare_cached(&self.sql.aggregate_events).await;
            let after = folded.unwrap_or(*after) as i64;
            let params: [&(dyn ToSql + Sync); 3] = [stream, aggregate_id, &after];
            let rows = client.query_raw(&statement.map_err(fail)?, params).await;
            Ok::<_, Error>((client, rows.map_err(fail)?))
        });
        let (client, rows) = started.await.ok_or_else(|| self.late(&what))??;
        let mut rows = pin!(rows);
        let mut names = SharedNames::new(&[stream]);
        loop {
            let next = waits.wait(rows.try_next()).await;
            let Some(row) = next.ok_or_else(|| self.late(&what))?.map_err(fail)? else {
                return Ok(());
            };
            let meta = meta_from_row(&mut names, &row);
            let version = meta.version;
            if let Err(stopped) = waits.fold(|| visit(&meta, row.get(5))) {
                if !waits.drain(rows).await {
                    drop(Object::take(client)); // closes it: the server may still be sending
                }
                return Err(stopped);
            }
            *folded = Some(version);
        }
    }
}
