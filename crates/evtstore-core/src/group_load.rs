//! Grouped loads for provider authors: aggregate loads from concurrent callers of one process
//! share one query. Whoever finds no read in flight reads the queued loads (its own and any
//! queued meanwhile); a load alone takes the provider's plain read. Reads are idempotent, so a
//! load whose reader was cancelled is simply queued again. A caller yields once between
//! queueing its load and reading, so that callers woken together share the first read (PG W2
//! +20%: 16 callers' loads went one alone and then fifteen).

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
            // Callers woken together (by the commit of their last appends) all queue their
            // loads before the first of them reads, rather than one alone and then the rest.
            tokio::task::yield_now().await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Records the size of each read; each takes 5 ms, so callers queue meanwhile.
    #[derive(Default)]
    struct Fake {
        reads: Mutex<Vec<usize>>,
    }

    impl Fake {
        async fn read(&self, loads: usize) -> Result<Vec<Vec<StoredEvent>>> {
            self.reads.lock().unwrap().push(loads);
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(vec![Vec::new(); loads])
        }
    }

    impl LoadMany for Fake {
        const BACKEND: &'static str = "Fake";

        async fn load_one(&self, _: &Load) -> Result<Vec<StoredEvent>> {
            Ok(self.read(1).await?.remove(0))
        }

        async fn load_many(&self, loads: &[Load]) -> Result<Vec<Vec<StoredEvent>>> {
            self.read(loads.len()).await
        }
    }

    /// The reads of `callers` loads that start together, on one thread.
    async fn reads_of(callers: usize) -> Vec<usize> {
        let (queue, fake) = (Arc::new(LoadQueue::new()), Arc::new(Fake::default()));
        let start = Arc::new(Notify::new());
        let tasks: Vec<_> = (0..callers)
            .map(|n| {
                let (queue, fake, start) = (queue.clone(), fake.clone(), start.clone());
                tokio::spawn(async move {
                    start.notified().await;
                    queue.load(&*fake, "s", &n.to_string(), 0).await
                })
            })
            .collect();
        tokio::task::yield_now().await; // every task waits for the start
        start.notify_waiters();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        fake.reads.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn callers_woken_together_share_one_read() {
        assert_eq!(reads_of(8).await, [8], "not one alone and then the rest");
    }
}
