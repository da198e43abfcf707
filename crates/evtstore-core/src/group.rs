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
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

use crate::error::{Error, Result};
use crate::event::{EventMeta, NewEvent};
use crate::provider::expectations;

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
}

#[derive(Default)]
struct QueueState {
    jobs: Vec<Job>,
    committing: bool,
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
        self.lock().jobs.push((events, reply));
        loop {
            let batch_done = self.batch_done.notified();
            tokio::pin!(batch_done);
            batch_done.as_mut().enable();
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    let cause = "the commit was interrupted: the events may or may not be stored";
                    return Err(Error::backend(format!("{}: append", P::BACKEND), cause));
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if let Some(jobs) = self.claim() {
                let mut untried = disjoint_groups(valid_only(jobs));
                untried.reverse();
                let claim = Claim {
                    queue: self,
                    untried,
                };
                claim.commit(provider).await;
                continue;
            }
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
    let mut seen: HashSet<(String, String)> = HashSet::new();
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
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::provider::Expectation;

    /// Aggregates' versions in memory; each append takes 5 ms, so concurrent callers queue.
    #[derive(Default)]
    struct Fake {
        versions: Mutex<HashMap<String, u64>>,
        /// The number of events of each append, in order.
        calls: Mutex<Vec<usize>>,
        /// Fails every append of more than one caller as if the connection was lost.
        lose_groups: bool,
    }

    impl GroupAppend for Fake {
        const BACKEND: &'static str = "Fake";

        async fn append_group(&self, events: Vec<NewEvent>) -> Result<Vec<EventMeta>> {
            self.calls.lock().unwrap().push(events.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
            if self.lose_groups && events.len() > 1 {
                return Err(Error::unavailable("Fake: append", "connection lost"));
            }
            let expected = expectations(&events)?;
            let mut versions = self.versions.lock().unwrap();
            if let Some(x) = expected.iter().find(|x| current(&versions, x) != x.current) {
                return Err(Error::VersionConflict {
                    stream: x.stream.to_owned(),
                    aggregate_id: x.aggregate_id.to_owned(),
                    expected: x.current,
                    actual: current(&versions, x),
                });
            }
            let metas = events.iter().map(|e| EventMeta {
                stream: e.stream.clone(),
                aggregate_id: e.aggregate_id.clone(),
                version: e.version,
                position: 0,
                timestamp: 0,
            });
            let metas: Vec<_> = metas.collect();
            for meta in &metas {
                versions.insert(meta.aggregate_id.clone(), meta.version);
            }
            Ok(metas)
        }

        fn refused(&self, error: &Error) -> bool {
            error.is_version_conflict()
        }

        fn stored(&self) {}
    }

    fn current(versions: &HashMap<String, u64>, x: &Expectation<'_>) -> u64 {
        versions.get(x.aggregate_id).copied().unwrap_or(0)
    }

    fn event(id: &str, version: u64) -> NewEvent {
        NewEvent {
            stream: "s".into(),
            aggregate_id: id.into(),
            version,
            data: "{}".into(),
        }
    }

    /// Runs `appends` at once; returns each caller's answer, in order, and the appends made.
    async fn run(
        fake: Fake,
        appends: Vec<Vec<NewEvent>>,
    ) -> (Vec<Result<Vec<EventMeta>>>, Vec<usize>) {
        let (fake, queue) = (Arc::new(fake), Arc::new(GroupCommit::new()));
        let tasks = appends.into_iter().map(|events| {
            let (fake, queue) = (fake.clone(), queue.clone());
            tokio::spawn(async move { queue.append(&*fake, events).await })
        });
        let mut answers = Vec::new();
        for task in tasks.collect::<Vec<_>>() {
            answers.push(task.await.unwrap());
        }
        let calls = fake.calls.lock().unwrap().clone();
        (answers, calls)
    }

    #[tokio::test]
    async fn concurrent_appends_share_an_append_and_each_gets_its_own_events() {
        let appends = (0..10).map(|n| vec![event(&format!("a{n}"), 1)]).collect();
        let (answers, calls) = run(Fake::default(), appends).await;
        assert_eq!(
            calls,
            [1, 9],
            "the first alone, the nine queued behind it together"
        );
        for (n, answer) in answers.into_iter().enumerate() {
            let metas = answer.unwrap();
            assert_eq!(metas.len(), 1);
            assert_eq!(metas[0].aggregate_id, format!("a{n}"));
        }
    }

    #[tokio::test]
    async fn a_conflict_or_bad_append_in_a_group_fails_alone() {
        let fake = Fake::default();
        fake.versions.lock().unwrap().insert("taken".into(), 1);
        let appends = vec![
            vec![event("first", 1)],
            vec![event("a", 1)],
            vec![event("taken", 1)],
            vec![event("b", 0)],
            vec![event("a", 2), event("a", 3)],
        ];
        let (answers, calls) = run(fake, appends).await;
        // `first` alone; then `a`, `taken` (refused: each alone again); then `a` again.
        assert_eq!(calls, [1, 2, 1, 1, 2]);
        assert!(answers[0].is_ok() && answers[1].is_ok() && answers[4].is_ok());
        assert!(answers[2].as_ref().unwrap_err().is_version_conflict());
        assert!(matches!(answers[3], Err(Error::InvalidAppend { .. })));
    }

    #[tokio::test]
    async fn a_group_lost_on_the_way_fails_every_caller_without_a_retry() {
        let fake = Fake {
            lose_groups: true,
            ..Fake::default()
        };
        let appends = (0..3).map(|n| vec![event(&format!("a{n}"), 1)]).collect();
        let (answers, calls) = run(fake, appends).await;
        assert_eq!(calls, [1, 2]);
        assert!(answers[0].is_ok());
        for answer in &answers[1..] {
            let error = answer.as_ref().unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::Unavailable, "{error}");
        }
    }

    #[tokio::test]
    async fn a_cancelled_committer_leaves_the_queue_usable() {
        let (fake, queue) = (Fake::default(), GroupCommit::new());
        let cancelled = queue.append(&fake, vec![event("a", 1)]);
        let timed_out = tokio::time::timeout(Duration::from_millis(1), cancelled).await;
        assert!(timed_out.is_err(), "cancelled mid-append");
        let next = queue.append(&fake, vec![event("b", 1)]).await.unwrap();
        assert_eq!(next[0].aggregate_id, "b");
    }
}
