//! The metrics a domain and its handlers export through the `metrics` facade, read back with
//! a recorder installed for this test binary.

use std::collections::HashMap;

use evtstore_core::conformance::domain::{Bump, Contend, Counter, Tests};
use evtstore_core::{Domain, MemoryProvider};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[tokio::test]
async fn appends_conflicts_pages_errors_and_lag_are_exported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    domain.execute("c1", Bump { by: vec![1, 2] }).await.unwrap();
    domain.execute("c2", Bump { by: vec![13] }).await.unwrap();
    let stale = domain.load::<Counter>("c1").await.unwrap();
    domain.execute("c1", Bump { by: vec![3] }).await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(1));
    let conflict = domain.execute_on(stale, Contend { by: 4, barrier }).await;
    assert!(conflict.is_err_and(|e| e.is_conflict()));

    let handler = domain
        .handler("model")
        .page_size(2)
        .continue_on_error(true)
        .handle::<Counter, _>(
            |_, event, _| match serde_json::to_value(event)?["by"].as_i64() {
                Some(13) => Err("thirteen".into()),
                _ => Ok(()),
            },
        )
        .build()
        .unwrap();
    handler.run_once().await.unwrap();
    let mut batch = domain.batch();
    batch.execute("c3", Bump { by: vec![5] }).await.unwrap();
    batch.commit().await.unwrap(); // counted too

    let values: HashMap<(String, String), DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let label = key
                .labels()
                .next()
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            ((key.name().to_owned(), label), value)
        })
        .collect();
    let value = |name: &str, label: &str| values.get(&(name.to_owned(), label.to_owned()));
    assert_eq!(
        value("evtstore_events_appended_total", "counters"),
        Some(&DebugValue::Counter(5))
    );
    assert_eq!(
        value("evtstore_conflicts_total", "counters"),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value("evtstore_handler_pages_total", "model"),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        value("evtstore_handler_events_total", "model"),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(
        value("evtstore_handler_errors_total", "model"),
        Some(&DebugValue::Counter(1))
    );
    let caught_up = Some(&DebugValue::Gauge(0.0.into()));
    assert_eq!(
        value("evtstore_handler_lag_events", "model"),
        caught_up,
        "caught up"
    );
    assert_eq!(value("evtstore_handler_lag_seconds", "model"), caught_up);
}
