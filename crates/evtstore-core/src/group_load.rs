//! Grouped loads for provider authors: aggregate loads from concurrent callers of one process
//! share one query. Whoever finds no read in flight reads the queued loads (its own and any
//! queued meanwhile); a load alone takes the provider's plain read. Reads are idempotent, so a
//! load whose reader was cancelled is simply queued again.

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

use crate::error::Result;
use crate::event::StoredEvent;
use crate::group::{await_answer, echo};

/// One aggregate to read: its events after version `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The aggregate's stream.
    pub stream: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The version to read after.
    pub after: u64,
}

/// A provider's side of grouped loads: how one aggregate is read, and how several are.
pub trait LoadMany: Send + Sync {
    /// The backend's name for messages: `"PostgreSQL"`.
    const BACKEND: &'static str;

    /// One aggregate's events after a version, in version order.
    fn load_one(&self, load: &Load) -> impl Future<Output = Result<Vec<StoredEvent>>> + Send;

    /// Several aggregates' events in one read: a list per load, in the loads' order, each in
    /// version order.
    fn load_many(
        &self,
        loads: &[Load],
    ) -> impl Future<Output = Result<Vec<Vec<StoredEvent>>>> + Send;
}

type Waiting = (Load, oneshot::Sender<Result<Vec<StoredEvent>>>);

/// Loads waiting to be read; one per provider.
#[derive(Default)]
pub struct LoadQueue {
    /// The queued loads, and whether a read is in flight.
    state: Mutex<(Vec<Waiting>, bool)>,
    batch_done: Notify,
}

impl std::fmt::Debug for LoadQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("LoadQueue")
            .field("queued", &state.0.len())
            .field("reading", &state.1)
            .finish()
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

impl LoadQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<Waiting>, bool)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An aggregate's events after version `after`, read through `provider` together with
    /// the loads of concurrent callers.
    ///
    /// # Errors
    /// The read's error, given to every load of the group.
    pub async fn load<P: LoadMany>(
        &self,
        provider: &P,
        stream: &str,
        aggregate_id: &str,
        after: u64,
    ) -> Result<Vec<StoredEvent>> {
        let load = Load {
            stream: stream.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            after,
        };
        loop {
            let (reply, mut answer) = oneshot::channel();
            self.lock().0.push((load.clone(), reply));
            let serve = || async {
                let Some(loads) = self.claim() else {
                    return false;
                };
                let _reading = Reading(self);
                read(provider, loads).await;
                true
            };
            if let Some(result) = await_answer(&mut answer, &self.batch_done, serve).await {
                return result;
            }
            // The reader was cancelled: queue the load again.
        }
    }

    /// Takes the queued loads when no read is in flight.
    fn claim(&self) -> Option<Vec<Waiting>> {
        let mut state = self.lock();
        let free = !state.1 && !state.0.is_empty();
        state.1 |= free;
        free.then(|| std::mem::take(&mut state.0))
    }
}

/// Reads the loads, alone or together, and answers each.
async fn read<P: LoadMany>(provider: &P, mut waiting: Vec<Waiting>) {
    if waiting.len() == 1 {
        let (load, reply) = waiting.remove(0);
        let _ = reply.send(provider.load_one(&load).await);
        return;
    }
    let (loads, replies): (Vec<Load>, Vec<_>) = waiting.into_iter().unzip();
    match provider.load_many(&loads).await {
        Ok(events) => {
            for (reply, events) in replies.into_iter().zip(events) {
                let _ = reply.send(Ok(events));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(echo(&error, P::BACKEND)));
            }
        }
    }
}
