//! Grouped reads: aggregate loads from concurrent callers in this process share one query
//! ([`LoadQueue`]); a load alone uses the plain statement, and a fold alone streams its rows.

use std::pin::pin;

use evtstore_core::provider::{
    Load, LoadMany, LoadQueue, SharedNames, Visitor, WaitLimit, shorten,
};
use evtstore_core::{Result, StoredEvent};
use futures_util::TryStreamExt;
use sqlx::Row;

use crate::MysqlProvider;
use crate::read::event_from_row;

/// Loads waiting to be read.
pub(crate) type Loads = LoadQueue;

/// The index of the column after an event's: which load a row answers, from 1.
const LOAD: usize = 11;

impl LoadMany for MysqlProvider {
    const BACKEND: &'static str = "MariaDB";

    async fn load_one(&self, load: &Load) -> Result<Vec<StoredEvent>> {
        let read = self.read_aggregate(&load.stream, &load.aggregate_id, load.after);
        self.within(&what(load), read).await
    }

    /// Streams the rows: an aggregate of a million events is folded as it arrives, never held
    /// whole. The waits for rows are bounded by `statement_timeout`, the folds not. A fold that
    /// stops part way leaves its connection drained, or closes it.
    async fn visit_one(&self, load: &Load, visit: &mut Visitor<'_>) -> Result<()> {
        let what = what(load);
        let fail = |e| self.fail("read aggregate", e);
        let limit = pin!(tokio::time::sleep(self.limits.statement));
        let mut waits = WaitLimit::new(limit);
        let taken = waits.wait(self.kept.take()).await;
        let mut conn = taken
            .ok_or_else(|| self.limits.late(&what))?
            .map_err(fail)?;
        let mut names = SharedNames::new(&[&load.stream]);
        let mut rows = sqlx::query(&self.sql.aggregate_events)
            .bind(&load.stream)
            .bind(&load.aggregate_id)
            .bind(load.after as i64)
            .fetch(&mut *conn);
        loop {
            let next = waits.wait(rows.try_next()).await;
            let Some(row) = next.ok_or_else(|| self.limits.late(&what))?.map_err(fail)? else {
                break;
            };
            let event = event_from_row(&mut names, &row).map_err(fail)?;
            if let Err(stopped) = waits.fold(|| visit(&event.meta, &event.data)) {
                if waits.drain(rows).await {
                    conn.keep();
                }
                return Err(stopped);
            }
        }
        drop(rows);
        conn.keep();
        Ok(())
    }

    async fn load_many(&self, loads: &[Load]) -> Result<Vec<Vec<StoredEvent>>> {
        self.within("read aggregates", self.read_aggregates(loads))
            .await
    }
}

impl MysqlProvider {
    /// Several aggregates' events in one statement, each in version order.
    async fn read_aggregates(&self, loads: &[Load]) -> Result<Vec<Vec<StoredEvent>>> {
        let fail = |e| self.fail("read aggregates", e);
        let list: Vec<(&str, &str, u64)> = loads
            .iter()
            .map(|l| (l.stream.as_str(), l.aggregate_id.as_str(), l.after))
            .collect();
        let list = serde_json::to_string(&list).expect("strings and numbers encode");
        let mut conn = self.kept.take().await.map_err(fail)?;
        let rows = sqlx::query(&self.sql.aggregates_events)
            .bind(list)
            .fetch_all(&mut *conn)
            .await
            .map_err(fail)?;
        conn.keep();
        let mut events: Vec<Vec<StoredEvent>> = loads.iter().map(|_| Vec::new()).collect();
        let mut names = SharedNames::default();
        for row in &rows {
            let index = row.try_get::<i64, _>(LOAD).map_err(fail)? as usize - 1;
            events[index].push(event_from_row(&mut names, row).map_err(fail)?);
        }
        for aggregate in &mut events {
            if !aggregate.is_sorted_by_key(|e| e.meta.version) {
                aggregate.sort_unstable_by_key(|e| e.meta.version);
            }
        }
        Ok(events)
    }
}

/// What a load's time limit names: `load <stream>/<id>`.
fn what(load: &Load) -> String {
    format!("load {}/{}", load.stream, shorten(&load.aggregate_id))
}
