//! Group commit: concurrent appends of one process share one call of the append procedure
//! (one transaction, one sequencing); each caller still gets exactly its own answer: its own
//! positions, its own conflict, never a neighbour's.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use evtstore_core::{Error, EventMeta, NewEvent, Provider};

const CALLERS: usize = 24;

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counters", id, version, r#"{"type":"Added","by":1}"#)
}

/// Runs the appends at once; returns each caller's answer, in caller order.
async fn at_once(
    provider: &Arc<impl Provider>,
    appends: Vec<Vec<NewEvent>>,
) -> Vec<evtstore_core::Result<Vec<EventMeta>>> {
    let tasks = appends.into_iter().map(|events| {
        let provider = provider.clone();
        tokio::spawn(async move { provider.append(events).await })
    });
    let mut answers = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_all_land_with_their_own_positions() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    let mut versions = [0u64; CALLERS];
    let mut returned = BTreeMap::new();
    for _round in 0..3 {
        // Caller n appends n % 3 + 1 events to its own aggregate.
        let appends = (0..CALLERS).map(|n| {
            let first = versions[n] + 1;
            let last = versions[n] + (n % 3) as u64 + 1;
            (first..=last)
                .map(|v| event(&format!("g-{n}"), v))
                .collect()
        });
        let answers = at_once(&provider, appends.collect()).await;
        for (n, answer) in answers.into_iter().enumerate() {
            let metas = answer.unwrap_or_else(|e| panic!("caller {n}: {e}"));
            assert_eq!(metas.len(), n % 3 + 1, "caller {n}: its own events");
            for meta in metas {
                assert_eq!(meta.aggregate_id, format!("g-{n}"));
                let key = (meta.aggregate_id.to_string(), meta.version);
                assert!(
                    returned.insert(meta.position, key).is_none(),
                    "a position given twice"
                );
            }
            versions[n] += (n % 3) as u64 + 1;
        }
    }
    let stored = provider.events(&["counters".into()], 0, 10_000).await;
    let stored: BTreeMap<u64, (String, u64)> = stored
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.meta.position,
                (e.meta.aggregate_id.to_string(), e.meta.version),
            )
        })
        .collect();
    assert_eq!(
        stored, returned,
        "each caller was told the stored positions"
    );
    let positions: Vec<u64> = stored.keys().copied().collect();
    let expected: Vec<u64> = (1..=positions.len() as u64).collect();
    assert_eq!(positions, expected, "positions 1..N, no gap");
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for (id, version) in stored.values() {
        let before = seen.insert(id.as_str(), *version).unwrap_or(0);
        assert_eq!(*version, before + 1, "{id}: versions in position order");
    }
}

/// Caller 0 conflicts (its version is taken), caller 1 skips versions (its aggregate is at 0,
/// not 2), caller 2 sends a body that is not JSON, caller 3 no aggregate id: each gets its own
/// error, and every other caller's append is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_appends_in_a_group_fail_only_their_callers() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    provider.append(vec![event("taken", 1)]).await.unwrap();
    for round in 0..5 {
        let appends = (0..CALLERS).map(|n| {
            let mut new = event(&format!("free-{round}-{n}"), 1);
            match n {
                0 => new.aggregate_id = "taken".into(),
                1 => new.version = 3,
                2 => new.data = "not json".into(),
                3 => new.aggregate_id = "".into(),
                _ => {}
            }
            vec![new]
        });
        let answers = at_once(&provider, appends.collect()).await;
        for (n, answer) in answers.into_iter().enumerate() {
            match (n, answer) {
                (0, Err(Error::VersionConflict { actual: 1, .. })) => {}
                (1, Err(Error::VersionConflict { actual: 0, .. })) => {}
                (2, Err(error)) => assert!(error.to_string().contains("not JSON"), "{error}"),
                (3, Err(Error::InvalidName { .. })) => {}
                (n @ 0..=3, outcome) => panic!("caller {n} must fail alone, got {outcome:?}"),
                (n, Err(error)) => panic!("caller {n} failed for a neighbour's error: {error}"),
                (_, Ok(metas)) => assert!(metas.len() == 1 && metas[0].position > 0),
            }
        }
    }
    let stored = provider.events(&["counters".into()], 0, 10_000).await;
    assert_eq!(
        stored.unwrap().len(),
        1 + 5 * (CALLERS - 4),
        "every good append stored, no bad one"
    );
}

/// Events committed without positions (by `append_in`, with no pass since) are numbered
/// before an append's own, in the append's transaction: versions stay in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_numbers_the_committed_events_waiting_before_it() {
    use sqlx::Connection;
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = evtstore_mysql::MysqlOptions {
        sequence_interval: std::time::Duration::from_secs(3600),
        ..evtstore_mysql::MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let mut conn = db.connection().await;
    // One event, then two: the procedure takes each shape its own way.
    for (waiting, appended) in [(1..=2, 3..=3), (4..=4, 5..=6)] {
        let mut tx = conn.begin().await.unwrap();
        let waiting = waiting.map(|v| event("w", v)).collect();
        provider.append_in(&mut tx, waiting).await.unwrap();
        tx.commit().await.unwrap();
        let appended: Vec<NewEvent> = appended.map(|v| event("w", v)).collect();
        let metas = provider.append(appended.clone()).await.unwrap();
        let positions: Vec<u64> = metas.iter().map(|m| m.position).collect();
        let versions: Vec<u64> = appended.iter().map(|e| e.version).collect();
        assert_eq!(positions, versions, "after the waiting events");
    }
    let stored = provider.events(&["counters".into()], 0, 10).await.unwrap();
    let got: Vec<(u64, u64)> = stored
        .iter()
        .map(|e| (e.meta.position, e.meta.version))
        .collect();
    assert_eq!(got, (1..=6).map(|v| (v, v)).collect::<Vec<_>>());
}

/// An append of a version that another open transaction has inserted waits for that
/// transaction before it locks the counter: another process's appends go on meanwhile, and
/// the waiting append is a version conflict once the transaction commits. One event and
/// two take different paths of the procedure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_waiting_on_an_open_transaction_holds_up_no_other_process() {
    let Some(url) = support::url() else { return };
    for events in [1, 2] {
        let appended = (1..=events).map(|v| event("held", v)).collect();
        waits_alone(&url, appended).await;
    }
}

async fn waits_alone(url: &str, appended: Vec<NewEvent>) {
    use sqlx::Connection;
    use std::time::Duration;
    let db = support::TestDb::create(url).await;
    let waiting = db.provider(evtstore_mysql::MysqlOptions::default()).await;
    let other = db.provider(evtstore_mysql::MysqlOptions::default()).await;
    let mut conn = db.connection().await;
    let count = appended.len() as u64;
    let mut tx = conn.begin().await.unwrap();
    waiting
        .append_in(&mut tx, vec![event("held", 1)])
        .await
        .unwrap();
    let blocked = tokio::spawn({
        let waiting = waiting.clone();
        async move { waiting.append(appended).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !blocked.is_finished(),
        "the append did not wait: {blocked:?}"
    );
    // A wait of seconds (the lock wait timeout is 50 s) is the failure; it takes milliseconds.
    // As many events as the waiting append: one event and several take different statements.
    let free = (1..=count).map(|v| event("free", v)).collect();
    let free = other.append(free);
    let free = tokio::time::timeout(Duration::from_secs(5), free).await;
    let free = free.expect("another process's append waited for the open transaction");
    assert_eq!(free.unwrap()[0].version, 1);
    tx.commit().await.unwrap();
    let answer = blocked.await.unwrap();
    assert!(
        matches!(answer, Err(Error::VersionConflict { .. })),
        "{answer:?}"
    );
}
