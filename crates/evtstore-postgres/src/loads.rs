//! Grouped reads: aggregate loads from concurrent callers in this process share one query
//! ([`LoadQueue`]); a load alone uses the plain statement.

use evtstore_core::provider::{Load, LoadMany, LoadQueue, SharedNames};
use evtstore_core::{Result, StoredEvent};
use tokio_postgres::types::ToSql;

use crate::PgProvider;
use crate::read::{AFTER_EVENT, event_from_row};

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
