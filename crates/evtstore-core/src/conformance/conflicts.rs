//! Optimistic concurrency: parity item 6, atomic appends and racing commands.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tokio::sync::Barrier;

use super::domain::*;
use super::support::{all_events, domain, positions, raw, streams};
use crate::{Domain, Error, Loaded, Provider};

/// Asserts a version conflict on an aggregate, expected at `expected` and found at `actual`.
fn assert_conflict(error: Error, id: &str, expected: u64, actual: u64) {
    assert!(
        error.is_version_conflict(),
        "expected a version conflict, got {error}"
    );
    let Error::VersionConflict {
        stream,
        aggregate_id,
        expected: e,
        actual: a,
    } = &error
    else {
        unreachable!()
    };
    assert_eq!(
        (stream.as_str(), aggregate_id.as_str()),
        ("users", id),
        "conflict names {error}"
    );
    assert_eq!(
        (*e, *a),
        (expected, actual),
        "expected and actual versions of {error}"
    );
}

/// Item 6: appending directly at a version that already exists fails with a version conflict,
/// and nothing is written; the next free version is accepted.
pub async fn append_at_existing_version_conflicts(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    let before = all_events(&provider, &["users"]).await;

    let twice = provider
        .append(vec![raw("users", "u1", 1, r#"{"type":"disabled"}"#)])
        .await;
    assert_conflict(twice.expect_err("version 1 exists"), "u1", 0, 1);
    let stale = domain
        .append(Loaded::<User>::new("u1"), vec![UserEvent::Disabled])
        .await;
    assert_conflict(stale.expect_err("a stale aggregate conflicts"), "u1", 0, 1);
    assert_eq!(
        all_events(&provider, &["users"]).await,
        before,
        "a conflict writes nothing"
    );
    let gap = provider
        .append(vec![raw("users", "u1", 3, r#"{"type":"disabled"}"#)])
        .await;
    assert!(
        gap.is_err(),
        "version 3 leaves a gap after version 1 and must fail"
    );
    assert_eq!(
        all_events(&provider, &["users"]).await,
        before,
        "a failed append writes nothing"
    );

    let next = provider
        .append(vec![raw("users", "u1", 2, r#"{"type":"disabled"}"#)])
        .await;
    let next = next.expect("appending at the next version");
    assert_eq!(
        (next.len(), next[0].version),
        (1, 2),
        "the append's envelope: {next:?}"
    );
    assert!(
        next[0].position > before[0].meta.position,
        "a later append has a later position"
    );
    let user = domain.load::<User>("u1").await.expect("loading u1");
    assert_eq!((user.version, user.state.enabled), (2, false));
}

/// An append of several events to several aggregates is atomic: a conflict on any of them
/// writes none; without a conflict all are written, in order.
pub async fn conflicting_multi_event_append_writes_nothing(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect("bumping c1");
    let before = all_events(&provider, &["users", "counters"]).await;

    let batch = vec![
        raw("users", "u2", 1, r#"{"type":"created","name":"bob"}"#),
        raw("users", "u2", 2, r#"{"type":"disabled"}"#),
        raw("users", "u1", 1, r#"{"type":"disabled"}"#),
    ];
    let error = provider
        .append(batch)
        .await
        .expect_err("u1 is at version 1 already");
    assert_conflict(error, "u1", 0, 1);
    let stale = Loaded::<Counter>::new("c1");
    let two = vec![
        CounterEvent::Added {
            by: 2,
            seen_version: 0
        };
        2
    ];
    let error = domain
        .append(stale, two)
        .await
        .expect_err("c1 is at version 1 already");
    assert!(
        error.is_version_conflict(),
        "expected a version conflict, got {error}"
    );
    let after = all_events(&provider, &["users", "counters"]).await;
    assert_eq!(
        after, before,
        "a conflicting append writes none of its events"
    );
    let last = provider
        .last_event(&streams(&["users"]), Some("u2"))
        .await
        .expect("last of u2");
    assert_eq!(last, None, "u2 has no events");

    let batch = vec![
        raw("users", "u2", 1, r#"{"type":"created","name":"bob"}"#),
        raw("users", "u1", 2, r#"{"type":"disabled"}"#),
        raw("users", "u1", 3, r#"{"type":"enabled"}"#),
    ];
    let metas = provider
        .append(batch)
        .await
        .expect("an append without conflict");
    let placed: Vec<(&str, u64)> = metas
        .iter()
        .map(|m| (m.aggregate_id.as_str(), m.version))
        .collect();
    assert_eq!(
        placed,
        [("u2", 1), ("u1", 2), ("u1", 3)],
        "envelopes in order"
    );
    let after = all_events(&provider, &["users", "counters"]).await;
    assert_eq!(after.len(), before.len() + 3, "all three written");
    let new_positions: Vec<_> = metas.iter().map(|m| m.position).collect();
    assert_eq!(
        positions(&after[before.len()..]),
        new_positions,
        "read back in append order"
    );
}

/// Runs `tasks` commands at once on counter `c`, all loaded at version `round - 1`; checks
/// that one wins and the others conflict, and returns the winner's value.
async fn race(domain: &Domain<Tests>, tasks: usize, round: u64) -> i64 {
    let barrier = Arc::new(Barrier::new(tasks));
    let spawned: Vec<_> = (0..tasks)
        .map(|task| {
            let (domain, barrier) = (domain.clone(), barrier.clone());
            let by = (round * 100) as i64 + task as i64;
            tokio::spawn(async move { (by, domain.execute("c", Contend { by, barrier }).await) })
        })
        .collect();
    let mut won = Vec::new();
    for task in spawned {
        let joined = tokio::time::timeout(Duration::from_secs(20), task).await;
        let (by, outcome) = joined
            .expect("a racing command hung")
            .expect("a command panicked");
        match outcome {
            Ok(counter) => {
                assert_eq!(counter.version, round, "the winner of round {round}");
                won.push(by);
            }
            Err(e) => assert!(e.is_conflict(), "a loser must get a conflict, got {e}"),
        }
    }
    assert_eq!(
        won.len(),
        1,
        "exactly one command wins version {round}: {won:?}"
    );
    won[0]
}

/// Concurrent commands on one aggregate: when eight commands load the same version and then
/// append, exactly one wins that version, every other fails with a version conflict, and the
/// stored events are exactly the winners'.
pub async fn concurrent_commands_one_winner_per_version(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let mut winners = Vec::new();
    for round in 1..=3 {
        winners.push(race(&domain, 8, round).await);
    }
    let counter = domain
        .load::<Counter>("c")
        .await
        .expect("loading the counter");
    assert_eq!(
        (counter.version, &counter.state.history),
        (3, &winners),
        "only the winners are stored"
    );
    assert_eq!(
        counter.state.seen_versions,
        [0, 1, 2],
        "each winner saw the version before it"
    );
    assert_eq!(
        all_events(&provider, &["counters"]).await.len(),
        3,
        "no loser's event is stored"
    );
}

/// Appends racing at once, one of them at a version that exists: only that one fails, with a
/// version conflict, and every other is stored with its own positions (providers that commit
/// concurrent appends together must still answer each caller alone).
pub async fn one_conflict_among_concurrent_appends_fails_alone(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    const CALLERS: usize = 12;
    let body = r#"{"type":"disabled"}"#;
    provider
        .append(vec![raw("users", "taken", 1, body)])
        .await
        .expect("first append");
    let start = Arc::new(Barrier::new(CALLERS));
    let appends = (0..CALLERS).map(|n| {
        let (provider, start) = (provider.clone(), start.clone());
        tokio::spawn(async move {
            let id = if n == 0 {
                "taken".to_owned()
            } else {
                format!("free-{n}")
            };
            start.wait().await;
            (n, provider.append(vec![raw("users", &id, 1, body)]).await)
        })
    });
    let mut stored = Vec::new();
    for append in appends.collect::<Vec<_>>() {
        match append.await.expect("append task") {
            (0, Err(error)) => assert_conflict(error, "taken", 0, 1),
            (0, Ok(_)) => panic!("an append at an existing version must conflict"),
            (n, Err(error)) => panic!("append {n} failed for a neighbour's conflict: {error}"),
            (n, Ok(metas)) => {
                assert_eq!(metas.len(), 1, "append {n}: its one event");
                assert_eq!(
                    metas[0].aggregate_id,
                    format!("free-{n}"),
                    "its own aggregate"
                );
                stored.push(metas[0].position);
            }
        }
    }
    let all = all_events(&provider, &["users"]).await;
    assert_eq!(
        all.len(),
        CALLERS,
        "the first event and every free append, nothing else"
    );
    for position in stored {
        assert!(
            positions(&all).contains(&position),
            "reported position {position} is stored"
        );
    }
}

/// `execute_retrying` reloads and re-runs a command that lost a race: four commands load
/// version 0 together, and all four land, at versions 1 to 4, each folded on the version it
/// saw last; with no retries the same race leaves three conflicts.
pub async fn retrying_commands_reload_and_land(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    for (id, retries) in [("retried", 3), ("unretried", 0)] {
        let barrier = Arc::new(Barrier::new(4));
        let spawned: Vec<_> = (1..=4)
            .map(|by| {
                let attempted = Arc::new(AtomicBool::new(false));
                let command = ContendOnce {
                    by,
                    barrier: barrier.clone(),
                    attempted,
                };
                let domain = domain.clone();
                tokio::spawn(async move { domain.execute_retrying(id, command, retries).await })
            })
            .collect();
        let mut conflicts = 0;
        for task in spawned {
            match task.await.expect("a command panicked") {
                Ok(_) => {}
                Err(error) if error.is_conflict() => conflicts += 1,
                Err(error) => panic!("{id}: unexpected {error}"),
            }
        }
        let counter = domain
            .load::<Counter>(id)
            .await
            .expect("loading the counter");
        let expected = if retries > 0 { (0, 4) } else { (3, 1) };
        assert_eq!(
            (conflicts, counter.version),
            expected,
            "{id}: conflicts left and versions written with {retries} retries"
        );
        let mut added = counter.state.history.clone();
        added.sort();
        if retries > 0 {
            assert_eq!(added, [1, 2, 3, 4], "every command landed once");
            assert_eq!(
                counter.state.seen_versions,
                [0, 1, 2, 3],
                "each retry saw the new version"
            );
        }
    }
}
