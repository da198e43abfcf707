//! Grouped loads for provider authors: aggregate loads from concurrent callers of one process
//! share one query. Whoever finds no read in flight reads the queued loads (its own and any
//! queued meanwhile); a load alone takes the provider's plain read, and a visit alone
//! ([`LoadQueue::visit`]) streams its events to the visitor without collecting them. Reads
//! are idempotent, so a load whose reader was cancelled is simply queued again. A caller
//! yields once between queueing its load and reading, so that callers woken together share
//! the first read (PG W2 +20%: 16 callers' loads went one alone and then fifteen).

use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

use crate::error::Result;
use crate::event::StoredEvent;
use crate::group::echo;
use crate::provider::Visitor;

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

    /// One aggregate's events after a version, given to `visit` in version order. The default
    /// reads them with [`load_one`](Self::load_one); a provider may stream them instead, so
    /// that a large aggregate is never held in memory whole.
    fn visit_one(
        &self,
        load: &Load,
        visit: &mut Visitor<'_>,
    ) -> impl Future<Output = Result<()>> + Send {
        async move { visit_each(self.load_one(load).await?, visit) }
    }
}

/// Gives each event to `visit`, in order.
fn visit_each(events: Vec<StoredEvent>, visit: &mut Visitor<'_>) -> Result<()> {
    events.iter().try_for_each(|e| visit(&e.meta, &e.data))
}

/// A queued load: its ticket (which caller queued it), the load, and where its answer goes.
type Waiting = (u64, Load, oneshot::Sender<Result<Vec<StoredEvent>>>);

/// The queue's state: loads queued, whether a read is in flight, and the next ticket.
#[derive(Default)]
struct State {
    queued: Vec<Waiting>,
    reading: bool,
    tickets: u64,
}

/// Loads waiting to be read; one per provider.
#[derive(Default)]
pub struct LoadQueue {
    state: Mutex<State>,
    batch_done: Notify,
}

impl std::fmt::Debug for LoadQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("LoadQueue")
            .field("queued", &state.queued.len())
            .field("reading", &state.reading)
            .finish()
    }
}

/// Ends a claim, even when the reading caller is cancelled, and wakes the waiters.
struct Reading<'a>(&'a LoadQueue);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.lock().reading = false;
        self.0.batch_done.notify_waiters();
    }
}

impl LoadQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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
        let read = self.read_or_visit(provider, load, None).await?;
        Ok(read.unwrap_or_default())
    }

    /// As [`load`](Self::load), giving the events to `visit` in version order. A load that
    /// is read alone is streamed: [`LoadMany::visit_one`].
    ///
    /// # Errors
    /// The read's error, or the first that `visit` returned (no later event is visited).
    pub async fn visit<P: LoadMany>(
        &self,
        provider: &P,
        stream: &str,
        aggregate_id: &str,
        after: u64,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let load = Load {
            stream: stream.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            after,
        };
        match self
            .read_or_visit(provider, load, Some(&mut *visit))
            .await?
        {
            Some(events) => visit_each(events, visit),
            None => Ok(()),
        }
    }

    /// Queues `load` and waits for its events, reading the queue when no one else is; `None`
    /// when the caller read its own load alone and streamed it to `visit`.
    async fn read_or_visit<P: LoadMany>(
        &self,
        provider: &P,
        load: Load,
        mut visit: Option<&mut Visitor<'_>>,
    ) -> Result<Option<Vec<StoredEvent>>> {
        loop {
            let (reply, mut answer) = oneshot::channel();
            let ticket = self.queue(load.clone(), reply);
            // Callers woken together (by the commit of their last appends) all queue their
            // loads before the first of them reads, rather than one alone and then the rest.
            tokio::task::yield_now().await;
            loop {
                let batch_done = self.batch_done.notified();
                tokio::pin!(batch_done);
                batch_done.as_mut().enable();
                match answer.try_recv() {
                    Ok(events) => return events.map(Some),
                    Err(oneshot::error::TryRecvError::Closed) => break, // its reader was cancelled
                    Err(oneshot::error::TryRecvError::Empty) => {}
                }
                let Some(loads) = self.claim() else {
                    batch_done.await;
                    continue;
                };
                let reading = Reading(self);
                if let (Some(visit), [(own, ..)]) = (visit.as_deref_mut(), &loads[..])
                    && *own == ticket
                {
                    // Its own connection: the queue is free for others while it streams.
                    drop(reading);
                    return provider.visit_one(&load, visit).await.map(|()| None);
                }
                read(provider, loads).await;
                drop(reading);
            }
        }
    }

    /// Queues a load; returns its ticket.
    fn queue(&self, load: Load, reply: oneshot::Sender<Result<Vec<StoredEvent>>>) -> u64 {
        let mut state = self.lock();
        state.tickets += 1;
        let ticket = state.tickets;
        state.queued.push((ticket, load, reply));
        ticket
    }

    /// Takes the queued loads when no read is in flight.
    fn claim(&self) -> Option<Vec<Waiting>> {
        let mut state = self.lock();
        let free = !state.reading && !state.queued.is_empty();
        state.reading |= free;
        free.then(|| std::mem::take(&mut state.queued))
    }
}

/// Reads the loads, alone or together, and answers each.
async fn read<P: LoadMany>(provider: &P, mut waiting: Vec<Waiting>) {
    if waiting.len() == 1 {
        let (_, load, reply) = waiting.remove(0);
        let _ = reply.send(provider.load_one(&load).await);
        return;
    }
    let (loads, replies): (Vec<Load>, Vec<_>) = waiting
        .into_iter()
        .map(|(_, load, reply)| (load, reply))
        .unzip();
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

    /// Records the size of each read (0 for a streamed one); each takes 5 ms, so callers
    /// queue meanwhile.
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

        async fn visit_one(&self, _: &Load, _: &mut Visitor<'_>) -> Result<()> {
            self.read(0).await.map(drop)
        }
    }

    /// The reads of `callers` loads (or visits) that start together, on one thread.
    async fn reads_of(callers: usize, visits: bool) -> Vec<usize> {
        let (queue, fake) = (Arc::new(LoadQueue::new()), Arc::new(Fake::default()));
        let start = Arc::new(Notify::new());
        let tasks: Vec<_> = (0..callers)
            .map(|n| {
                let (queue, fake, start) = (queue.clone(), fake.clone(), start.clone());
                tokio::spawn(async move {
                    start.notified().await;
                    let id = n.to_string();
                    match visits {
                        true => queue.visit(&*fake, "s", &id, 0, &mut |_, _| Ok(())).await,
                        false => queue.load(&*fake, "s", &id, 0).await.map(drop),
                    }
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
        assert_eq!(
            reads_of(8, false).await,
            [8],
            "not one alone and then the rest"
        );
        assert_eq!(reads_of(8, true).await, [8], "visits are grouped too");
    }

    #[tokio::test]
    async fn a_visit_alone_is_streamed_and_a_load_alone_is_read() {
        assert_eq!(reads_of(1, true).await, [0]);
        assert_eq!(reads_of(1, false).await, [1]);
    }
}
