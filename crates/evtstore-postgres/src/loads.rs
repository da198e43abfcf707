//! Grouped reads: aggregate loads from concurrent callers in this process share one query
//! ([`LoadQueue`]); a load alone uses the plain statement, and a fold alone streams its rows.

use std::pin::pin;

use evtstore_core::provider::{Load, LoadMany, LoadQueue, SharedNames, Visitor};
use evtstore_core::{Result, StoredEvent};
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
    /// whole. A connection the server dropped before the first row is tried once more.
    async fn visit_one(&self, load: &Load, visit: &mut Visitor<'_>) -> Result<()> {
        let mut visited = false;
        match self.stream_aggregate(load, visit, &mut visited).await {
            Err(error) if !visited && failure::connection_lost(&error) => {
                tracing::debug!(%error, "PostgreSQL read retried on a fresh connection");
                self.stream_aggregate(load, visit, &mut visited).await
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
    /// Gives `visit` each event of the load as its row arrives; `visited` tells whether any
    /// was given.
    async fn stream_aggregate(
        &self,
        load: &Load,
        visit: &mut Visitor<'_>,
        visited: &mut bool,
    ) -> Result<()> {
        let Load {
            stream,
            aggregate_id,
            after,
        } = load;
        let what = format!("read aggregate {stream}/{aggregate_id}");
        let fail = |e| self.fail(&what, e);
        let read = async {
            let client = self.client().await?;
            let statement = client.prepare_cached(&self.sql.aggregate_events).await;
            let params: [&(dyn ToSql + Sync); 3] = [stream, aggregate_id, &(*after as i64)];
            let rows = client.query_raw(&statement.map_err(fail)?, params).await;
            let mut rows = pin!(rows.map_err(fail)?);
            let mut names = SharedNames::new(&[stream]);
            while let Some(row) = rows.try_next().await.map_err(fail)? {
                *visited = true;
                visit(&meta_from_row(&mut names, &row), row.get(5))?;
            }
            Ok(())
        };
        self.within(&what, read).await
    }
}
