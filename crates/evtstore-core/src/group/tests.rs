//! Group commit against an in-memory fake.

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
        let metas = events.iter().map(|e| e.meta(0, 0));
        let metas: Vec<_> = metas.collect();
        for meta in &metas {
            versions.insert(meta.aggregate_id.to_string(), meta.version);
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
    NewEvent::new("s", id, version, "{}")
}

/// Runs `appends` at once; returns each caller's answer, in order, and the appends made.
async fn run(fake: Fake, appends: Vec<Vec<NewEvent>>) -> (Vec<Result<Vec<EventMeta>>>, Vec<usize>) {
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

/// Eight callers, each appending five times with 1 ms between (a load): without
/// lingering they split into groups that take turns; with it they share each group.
#[tokio::test(start_paused = true)]
async fn callers_taking_turns_share_groups_when_the_queue_lingers() {
    for (linger, expected) in [
        (Duration::ZERO, None),
        (Duration::from_millis(2), Some(vec![1, 8, 8, 8, 8, 7])),
    ] {
        let (fake, queue) = (
            Arc::new(Fake::default()),
            Arc::new(GroupCommit::with_linger(linger)),
        );
        let callers = (0..8).map(|n| {
            let (fake, queue) = (fake.clone(), queue.clone());
            tokio::spawn(async move {
                for version in 1..=5 {
                    let events = vec![event(&format!("a{n}"), version)];
                    queue.append(&*fake, events).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        });
        for caller in callers.collect::<Vec<_>>() {
            caller.await.unwrap();
        }
        let calls = fake.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 40);
        match expected {
            Some(expected) => assert_eq!(calls, expected),
            None => assert!(calls.len() > 6, "groups take turns: {calls:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_caller_never_lingers() {
    let (fake, queue) = (
        Fake::default(),
        GroupCommit::with_linger(Duration::from_secs(1)),
    );
    let start = tokio::time::Instant::now();
    for version in 1..=3 {
        queue
            .append(&fake, vec![event("a", version)])
            .await
            .unwrap();
    }
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(15),
        "three appends of 5 ms"
    );
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
