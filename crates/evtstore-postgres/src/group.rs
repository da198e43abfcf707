//! Group commit: appends from concurrent callers in this process share one statement and one
//! commit. Whoever finds no batch in flight commits the queue (its own append and every one
//! queued meanwhile); the others wait. When the shared statement fails (a version conflict),
//! each append of the batch is retried alone, so one caller's conflict never fails another's.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use evtstore_core::provider::expectations;
use evtstore_core::{Error, EventMeta, NewEvent, Result, SharedStr};
use tokio::sync::{Notify, oneshot};

use crate::PgProvider;
use crate::failure::{append_to, echo};

/// An append waiting for a commit, and where its answer goes.
type Job = (Vec<NewEvent>, oneshot::Sender<Result<Vec<EventMeta>>>);

/// Appends waiting to be committed.
#[derive(Default)]
pub(crate) struct AppendQueue {
    state: Mutex<QueueState>,
    batch_done: Notify,
}

#[derive(Default)]
struct QueueState {
    jobs: Vec<Job>,
    committing: bool,
}

impl AppendQueue {
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
        Some(std::mem::take(&mut state.jobs))
    }
}

/// The groups a caller has claimed and not yet sent. When the caller is cancelled, dropping
/// the claim puts them back in the queue for another caller, and wakes the waiters.
struct Claim<'a> {
    queue: &'a AppendQueue,
    untried: Vec<Vec<Job>>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        let untried = self.untried.drain(..).rev().flatten();
        state.jobs.splice(0..0, untried);
        state.committing = false;
        drop(state);
        self.queue.batch_done.notify_waiters();
    }
}

impl PgProvider {
    /// Appends on a pooled connection, sharing the commit with concurrent appends.
    pub(crate) async fn append_grouped(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let (reply, mut answer) = oneshot::channel();
        self.queue.lock().jobs.push((events, reply));
        loop {
            let batch_done = self.queue.batch_done.notified();
            tokio::pin!(batch_done);
            batch_done.as_mut().enable();
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    let cause = "the commit was interrupted: the events may or may not be stored";
                    return Err(Error::backend("PostgreSQL: append", cause));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if let Some(jobs) = self.queue.claim() {
                let mut untried = disjoint_groups(valid_only(jobs));
                untried.reverse();
                let claim = Claim {
                    queue: &self.queue,
                    untried,
                };
                self.commit_claim(claim).await;
                continue;
            }
            batch_done.await;
        }
    }

    /// Commits the claimed groups of distinct aggregates, one statement per group.
    async fn commit_claim(&self, mut claim: Claim<'_>) {
        let mut any = false;
        while let Some(group) = claim.untried.pop() {
            any |= self.commit_group(group).await;
        }
        if any {
            self.notify_appended();
        }
    }

    /// One statement for the group; alone again for each job if that fails. True if any stored.
    async fn commit_group(&self, mut group: Vec<Job>) -> bool {
        if group.len() == 1 {
            let (events, reply) = group.remove(0);
            let result = self.append_limited(events).await;
            let stored = result.is_ok();
            let _ = reply.send(result);
            return stored;
        }
        let all: Vec<NewEvent> = group
            .iter()
            .flat_map(|(events, _)| events.clone())
            .collect();
        match self.append_limited(all).await {
            Ok(metas) => {
                let mut metas = metas.into_iter();
                for (events, reply) in group {
                    let _ = reply.send(Ok(metas.by_ref().take(events.len()).collect()));
                }
                true
            }
            // The server refused the statement (someone's conflict, a body that is not JSON):
            // nothing was stored, and the others may well succeed alone.
            Err(error) if refused_by_server(&error) => {
                let mut stored = false;
                for (events, reply) in group {
                    let result = self.append_limited(events).await;
                    stored |= result.is_ok();
                    let _ = reply.send(result);
                }
                stored
            }
            // Lost on the way: the events may or may not be stored; retrying could store twice.
            Err(error) => {
                for (_, reply) in group {
                    let _ = reply.send(Err(echo(&error)));
                }
                false
            }
        }
    }

    /// An append on a pooled connection, answered within `statement_timeout`.
    async fn append_limited(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
        let what = append_to(&events);
        self.within(&what, self.append_pooled(events)).await
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

/// True when PostgreSQL itself refused an append: nothing of it was stored.
fn refused_by_server(error: &Error) -> bool {
    match error {
        Error::VersionConflict { .. } | Error::Contention { .. } => true,
        Error::Backend { source, .. } => source
            .downcast_ref::<tokio_postgres::Error>()
            .is_some_and(|e| e.as_db_error().is_some()),
        _ => false,
    }
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
