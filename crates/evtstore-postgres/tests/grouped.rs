//! Concurrent appends and loads in one process share statements: each caller still gets
//! exactly its own answer (its own events, its own conflict), never a neighbour's.

mod counters;
mod support;

use std::sync::Arc;

use counters::{Add, Counter, Counters};
use evtstore_core::{Domain, NewEvent, Provider};

const CALLERS: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_loads_each_get_their_own_events() {
    let Some(url) = support::url() else { return };
    let provider = support::fresh(&url).await;
    let domain = Domain::<Counters>::with_provider(provider.clone());
    // Aggregate g-n gets n + 1 events adding n each.
    for n in 0..CALLERS {
        for _ in 0..=n {
            domain
                .execute(&format!("g-{n}"), Add(n as i64))
                .await
                .unwrap();
        }
    }
    for _round in 0..5 {
        let loads = (0..CALLERS).map(|n| {
            let domain = domain.clone();
            tokio::spawn(async move { (n, domain.load::<Counter>(&format!("g-{n}")).await) })
        });
        for load in loads.collect::<Vec<_>>() {
            let (n, loaded) = load.await.unwrap();
            let loaded = loaded.unwrap();
            assert_eq!(
                loaded.version,
                n as u64 + 1,
                "g-{n}: its own events, all of them"
            );
            assert_eq!(
                loaded.total,
                (n * (n + 1)) as i64,
                "g-{n}: folded in order, no stranger's"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_conflict_in_a_group_fails_only_its_caller() {
    let Some(url) = support::url() else { return };
    let provider = support::fresh(&url).await;
    provider.append(vec![event("taken", 1)]).await.unwrap();
    for _round in 0..5 {
        let appends = (0..CALLERS).map(|n| {
            let provider: Arc<dyn Provider> = provider.clone();
            tokio::spawn(async move {
                // Caller 0 appends at a version that exists; the others at new aggregates.
                let (id, version) = if n == 0 {
                    ("taken".to_owned(), 1)
                } else {
                    (format!("free-{n}-{}", rand_suffix()), 1)
                };
                (n, provider.append(vec![event(&id, version)]).await)
            })
        });
        for append in appends.collect::<Vec<_>>() {
            let (n, result) = append.await.unwrap();
            match (n, result) {
                (0, Err(error)) => assert!(error.is_version_conflict(), "{error}"),
                (0, Ok(_)) => panic!("appending at an existing version must conflict"),
                (n, Err(error)) => panic!("caller {n} failed for a neighbour's conflict: {error}"),
                (_, Ok(metas)) => assert_eq!(metas.len(), 1),
            }
        }
    }
    let stored = provider
        .events(&["counters".to_owned()], 0, 10_000)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        1 + 5 * (CALLERS - 1),
        "every free append stored, the conflict not"
    );
}

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent {
        stream: "counters".into(),
        aggregate_id: id.into(),
        version,
        data: r#"{"type":"Added","by":1}"#.into(),
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
