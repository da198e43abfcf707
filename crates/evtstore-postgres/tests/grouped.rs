//! Concurrent appends and loads in one process share statements: each caller still gets
//! exactly its own answer (its own events, its own conflict), never a neighbour's.

mod counters;
mod support;

use std::sync::Arc;

use counters::{Add, Counter, Counters};
use evtstore_core::{Domain, Error, NewEvent, Provider};

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
                loaded.state.total,
                (n * (n + 1)) as i64,
                "g-{n}: folded in order, no stranger's"
            );
        }
    }
}

/// Caller 0 conflicts, caller 1 sends a body that is not JSON (refused before the server sees
/// it, as every provider does), caller 2 no aggregate id: each
/// gets its own error, and every other caller's append is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_appends_in_a_group_fail_only_their_callers() {
    let Some(url) = support::url() else { return };
    let provider = support::fresh(&url).await;
    provider.append(vec![event("taken", 1)]).await.unwrap();
    for round in 0..5 {
        let appends = (0..CALLERS).map(|n| {
            let provider: Arc<dyn Provider> = provider.clone();
            tokio::spawn(async move {
                let mut new = event(&format!("free-{round}-{n}"), 1);
                match n {
                    0 => new.aggregate_id = "taken".into(),
                    1 => new.data = "not json".into(),
                    2 => new.aggregate_id = "".into(),
                    _ => {}
                }
                (n, provider.append(vec![new]).await)
            })
        });
        for append in appends.collect::<Vec<_>>() {
            match append.await.unwrap() {
                (0, Err(error)) => assert!(error.is_version_conflict(), "{error}"),
                (1, Err(error)) => assert!(error.to_string().contains("not JSON"), "{error}"),
                (2, Err(Error::InvalidName { .. })) => {}
                (n @ 0..=2, outcome) => panic!("caller {n} must fail alone, got {outcome:?}"),
                (n, Err(error)) => panic!("caller {n} failed for a neighbour's error: {error}"),
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
        1 + 5 * (CALLERS - 3),
        "every good append stored, no bad one"
    );
}

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counters", id, version, r#"{"type":"Added","by":1}"#)
}
