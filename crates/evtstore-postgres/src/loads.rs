//! Grouped reads: aggregate loads from concurrent callers in this process share one query.
//! Whoever finds no read in flight runs the queued loads (its own and any queued meanwhile);
//! a load alone uses the plain statement. Reads are idempotent, so a load whose reader was
//! cancelled is simply queued again.

use std::sync::{Mutex, MutexGuard};

use evtstore_core::{Result, StoredEvent};
use tokio::sync::{Notify, oneshot};
use tokio_postgres::types::ToSql;

use crate::PgProvider;
use crate::failure::echo;
use crate::read::{AFTER_EVENT, event_from_row};
use evtstore_core::provider::SharedNames;

/// One aggregate to read: stream, id, the version to read after, and where the events go.
type Load = (
    String,
    String,
    u64,
    oneshot::Sender<Result<Vec<StoredEvent>>>,
);

/// Loads waiting to be read.
#[derive(Default)]
pub(crate) struct LoadQueue {
    state: Mutex<(Vec<Load>, bool)>,
    batch_done: Notify,
}

impl LoadQueue {
    fn lock(&self) -> MutexGuard<'_, (Vec<Load>, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Ends a claim, even when the reading caller is cancelled, and wakes the waiters.
struct Reading<'a>(&'a LoadQueue);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.lock().1 = false;
        self.0.batch_done.notify_waiters();
    }
}

impl PgProvider {
    /// An aggregate's events after a version, read together with concurrent loads.
    pub(crate) async fn read_aggregate_grouped(
        &self,
        stream: &str,
        id: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>> {
        loop {
            let (reply, mut answer) = oneshot::channel();
            self.loads
                .lock()
                .0
                .push((stream.to_owned(), id.to_owned(), after, reply));
            loop {
                let batch_done = self.loads.batch_done.notified();
                tokio::pin!(batch_done);
                batch_done.as_mut().enable();
                match answer.try_recv() {
                    Ok(result) => return result,
                    Err(oneshot::error::TryRecvError::Closed) => break, // reader cancelled: again
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                let claimed = {
                    let mut state = self.loads.lock();
                    let free = !state.1 && !state.0.is_empty();
                    state.1 |= free;
                    free.then(|| std::mem::take(&mut state.0))
                };
                match claimed {
                    Some(loads) => {
                        let _reading = Reading(&self.loads);
                        self.read_loads(loads).await;
                    }
                    None => batch_done.await,
                }
            }
        }
    }

    async fn read_loads(&self, mut loads: Vec<Load>) {
        if loads.len() == 1 {
            let (stream, id, after, reply) = loads.remove(0);
            let events = self.read(|| self.read_aggregate(&stream, &id, after));
            let _ = reply.send(events.await);
            return;
        }
        let streams: Vec<&str> = loads.iter().map(|l| l.0.as_str()).collect();
        let ids: Vec<&str> = loads.iter().map(|l| l.1.as_str()).collect();
        let afters: Vec<i64> = loads.iter().map(|l| l.2 as i64).collect();
        let rows = self.read(|| async {
            let what = "read aggregates";
            let client = self.client().await?;
            let statement = self.run(what, client.prepare_cached(&self.sql.aggregates_events));
            let statement = statement.await?;
            let params: [&(dyn ToSql + Sync); 3] = [&streams, &ids, &afters];
            self.run(what, client.query(&statement, &params)).await
        });
        let mut events: Vec<Vec<StoredEvent>> = loads.iter().map(|_| Vec::new()).collect();
        match rows.await {
            Ok(rows) => {
                let mut names = SharedNames::default();
                for row in &rows {
                    let index = row.get::<_, i64>(AFTER_EVENT) as usize - 1;
                    events[index].push(event_from_row(&mut names, row));
                }
                for (load, events) in loads.into_iter().zip(events) {
                    let _ = load.3.send(Ok(events));
                }
            }
            Err(error) => {
                for load in loads {
                    let _ = load.3.send(Err(echo(&error)));
                }
            }
        }
    }
}
