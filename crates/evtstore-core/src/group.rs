//! Group commit for provider authors: appends from concurrent callers of one process share one
//! database append (one statement or transaction, one durable commit).
//!
//! Whoever finds no group in flight commits the queue (its own append and every one queued
//! meanwhile); the others wait. The queue is split, in order, into groups whose aggregates
//! differ, so each group is one valid append. When the database refuses a group's append (a
//! version conflict), each append of the group is tried alone, so one caller's conflict never
//! fails another's. Appends that break the rules are answered before any group is formed.
//! Cancellation-safe: a committer dropped before sending puts what it claimed back in the queue.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::error::{Error, Result};
use crate::event::{EventMeta, NewEvent};
use crate::provider::expectations;
use crate::shared_str::SharedStr;

/// A provider's side of group commit: how a group is appended, and what a failure means.
pub trait GroupAppend: Send + Sync {
    /// The backend's name for messages: `"PostgreSQL"`.
    const BACKEND: &'static str;

    /// Appends atomically, with the contract of [`Provider::append`](crate::Provider::append):
    /// one caller's events, or a group's (its callers' events one after the other, each
    /// aggregate in one caller's only). Returns the envelopes in order.
    fn append_group(
        &self,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<Vec<EventMeta>>> + Send;

    /// True when the database refused the append: nothing of it was stored, so each caller's
    /// append may be tried again alone. False when it may or may not be stored (a connection
    /// lost on the way): every caller of the group gets the error, as retrying could store
    /// twice.
    fn refused(&self, error: &Error) -> bool;

    /// Called once a committer's groups are done, when any of them stored events: wake
    /// handlers here.
    fn stored(&self);
}

/// An append waiting for a commit, and where its answer goes.
type Job = (Vec<NewEvent>, oneshot::Sender<Result<Vec<EventMeta>>>);

/// Appends waiting to be committed; one per provider.
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<QueueState>,
    batch_done: Notify,
    queued: Notify,
    /// How long a caller that finds fewer appends queued than were lately in flight waits
    /// for them (zero: not at all).
    linger: Duration,
}

#[derive(Default)]
struct QueueState {
    jobs: Vec<Job>,
    committing: bool,
    /// Appends in the group being committed.
    in_flight: usize,
    /// The most appends queued or in flight at once since the last claim.
    seen: usize,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("GroupCommit")
            .field("queued", &state.jobs.len())
            .field("committing", &state.committing)
            .finish()
    }
}

impl GroupCommit {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty queue on which a caller that finds no group in flight, but fewer appends
    /// queued than were queued or in flight at once since the last group was claimed, waits
    /// up to `linger` for them, so that callers who take turns come back into one group
    /// rather than two that alternate. A lone caller never waits.
    pub fn with_linger(linger: Duration) -> Self {
        GroupCommit {
            linger,
            ..Self::default()
        }
    }

    /// Waits, up to `linger`, while no group is in flight and fewer appends are queued than
    /// were lately queued or in flight at once. False when there was nothing to wait for.
    async fn gather(&self) -> bool {
        if self.linger.is_zero() || !self.short() {
            return false;
        }
        let deadline = tokio::time::Instant::now() + self.linger;
        loop {
            let queued = self.queued.notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            if !self.short() || tokio::time::timeout_at(deadline, queued).await.is_err() {
                return true;
            }
        }
    }

    /// True when no group is in flight and fewer appends are queued than lately.
    fn short(&self) -> bool {
        let state = self.lock();
        !state.committing && state.jobs.len() < state.seen
    }

    /// Queues a job, noting how many are queued or in flight.
    fn push(&self, job: Job) {
        let mut state = self.lock();
        state.jobs.push(job);
        state.seen = state.seen.max(state.jobs.len() + state.in_flight);
        drop(state);
        self.queued.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the queued jobs when no one else is committing.
    fn claim(&self) -> Option<Vec<Job>> {
        let mut state = self.lock();
        if state.committing || state.jobs.is_empty() {
            return None;
        }
        state.committing = true;
        state.in_flight = state.jobs.len();
        state.seen = state.in_flight;
        Some(std::mem::take(&mut state.jobs))
    }

    /// Appends `events` through `provider`, sharing the append with concurrent callers.
    ///
    /// # Errors
    /// This append's own error: its version conflict, its invalid names or body, or the
    /// backend's error when its group could not be committed (an `Error::Backend` saying the
    /// commit was interrupted when the committing caller was cancelled mid-append).
    pub async fn append<P: GroupAppend>(
        &self,
        provider: &P,
        events: Vec<NewEvent>,
    ) -> Result<Vec<EventMeta>> {
        let (reply, mut answer) = oneshot::channel();
        self.push((events, reply));
        // Whether this caller lingered for others already (atomic only to keep the future Send).
        let gathered = AtomicBool::new(false);
        let serve = || async {
            if !gathered.load(Ordering::Relaxed) {
                gathered.store(self.gather().await, Ordering::Relaxed);
            }
            let Some(jobs) = self.claim() else {
                return false;
            };
            let mut untried = disjoint_groups(valid_only(jobs));
            untried.reverse();
            let claim = Claim {
                queue: self,
                untried,
            };
            claim.commit(provider).await;
            true
        };
        match await_answer(&mut answer, &self.batch_done, serve).await {
            Some(result) => result,
            None => {
                let cause = "the commit was interrupted: the events may or may not be stored";
                Err(Error::backend(format!("{}: append", P::BACKEND), cause))
            }
        }
    }
}

/// Waits for the answer on `answer` while serving the queue: `serve` serves what is queued,
/// if no one else is, and says whether it did; when it did not, the caller sleeps until `done`
/// says a batch ended. `None` when the answer's sender was dropped unanswered (the caller
/// serving it was cancelled).
pub(crate) async fn await_answer<T, F: Future<Output = bool>>(
    answer: &mut oneshot::Receiver<T>,
    done: &Notify,
    mut serve: impl FnMut() -> F,
) -> Option<T> {
    loop {
        let batch_done = done.notified();
        tokio::pin!(batch_done);
        batch_done.as_mut().enable();
        match answer.try_recv() {
            Ok(value) => return Some(value),
            Err(oneshot::error::TryRecvError::Closed) => return None,
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if !serve().await {
            batch_done.await;
        }
    }
}

/// The groups a caller has claimed and not yet sent. When the caller is cancelled, dropping
/// the claim puts them back in the queue for another caller, and wakes the waiters.
struct Claim<'a> {
    queue: &'a GroupCommit,
    untried: Vec<Vec<Job>>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        let untried = self.untried.drain(..).rev().flatten();
        state.jobs.splice(0..0, untried);
        state.committing = false;
        state.in_flight = 0;
        drop(state);
        self.queue.batch_done.notify_waiters();
    }
}

impl Claim<'_> {
    /// Commits the claimed groups of distinct aggregates, one append per group.
    async fn commit<P: GroupAppend>(mut self, provider: &P) {
        let mut any = false;
        while let Some(group) = self.untried.pop() {
            any |= commit_group(provider, group).await;
        }
        if any {
            provider.stored();
        }
    }
}

/// One append for the group; alone again for each job if it is refused. True if any stored.
async fn commit_group<P: GroupAppend>(provider: &P, mut group: Vec<Job>) -> bool {
    if group.len() == 1 {
        let (events, reply) = group.remove(0);
        let result = provider.append_group(events).await;
        let stored = result.is_ok();
        let _ = reply.send(result);
        return stored;
    }
    let all: Vec<NewEvent> = group
        .iter()
        .flat_map(|(events, _)| events.iter().cloned())
        .collect();
    match provider.append_group(all).await {
        Ok(metas) => {
            let mut metas = metas.into_iter();
            for (events, reply) in group {
                let _ = reply.send(Ok(metas.by_ref().take(events.len()).collect()));
            }
            true
        }
        // Nothing was stored (someone's conflict), and the others may well succeed alone.
        Err(error) if provider.refused(&error) => {
            let mut stored = false;
            for (events, reply) in group {
                let result = provider.append_group(events).await;
                stored |= result.is_ok();
                let _ = reply.send(result);
            }
            stored
        }
        // Lost on the way: the events may or may not be stored; retrying could store twice.
        Err(error) => {
            for (_, reply) in group {
                let _ = reply.send(Err(echo(&error, P::BACKEND)));
            }
            false
        }
    }
}

/// A copy of an error for each caller that shares it (errors are not `Clone`): the same kind
/// and context, the source as text. Kinds other than unavailable, contention and backend become
/// a backend error of `backend` with the error's text.
pub fn echo(error: &Error, backend: &str) -> Error {
    match error {
        Error::Unavailable { context, source } => {
            Error::unavailable(context.clone(), source.to_string())
        }
        Error::Contention { context, source } => {
            Error::contention(context.clone(), source.to_string())
        }
        Error::Backend { context, source } => Error::backend(context.clone(), source.to_string()),
        other => Error::backend(backend.to_owned(), other.to_string()),
    }
}

/// Answers the jobs whose events break the append rules (each with its own error), so one
/// caller's bad input never fails a group; returns the others.
fn valid_only(jobs: Vec<Job>) -> Vec<Job> {
    let mut valid = Vec::with_capacity(jobs.len());
    for (events, reply) in jobs {
        match expectations(&events) {
            Ok(_) => valid.push((events, reply)),
            Err(error) => drop(reply.send(Err(error))),
        }
    }
    valid
}

/// Splits jobs, in order, into runs whose aggregates differ, so each run is one valid append.
fn disjoint_groups(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    let mut seen: HashSet<(SharedStr, SharedStr)> = HashSet::new();
    for job in jobs {
        let keys: Vec<_> = job
            .0
            .iter()
            .map(|e| (e.stream.clone(), e.aggregate_id.clone()))
            .collect();
        let clash = keys.iter().any(|key| seen.contains(key));
        if clash || groups.is_empty() {
            groups.push(Vec::new());
            seen.clear();
        }
        seen.extend(keys);
        groups
            .last_mut()
            .expect("a group was just pushed")
            .push(job);
    }
    groups
}

#[cfg(test)]
mod tests;
