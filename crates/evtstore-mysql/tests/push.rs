//! Delivery: this process's handlers are woken by its appends at once; another process's
//! (here, another provider with its own pool and signal) learn of them within its
//! `sequence_interval`, far sooner than their poll interval.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use evtstore_core::conformance::domain::{Tests, User};
use evtstore_core::{Domain, NewEvent, Provider};
use evtstore_mysql::MysqlOptions;
use tokio::sync::mpsc;

fn created(id: &str) -> NewEvent {
    NewEvent::new("users", id, 1, r#"{"type":"created","name":"x"}"#)
}

/// A started handler that polls only every 60 s, sending each aggregate id it handles.
fn started(
    provider: Arc<dyn Provider>,
) -> (evtstore_core::Handler, mpsc::UnboundedReceiver<String>) {
    let (send, receive) = mpsc::unbounded_channel();
    let handler = Domain::<Tests>::with_provider(provider)
        .handler("pushed")
        .in_memory_bookmark()
        .poll_interval(Duration::from_secs(60))
        .handle::<User, _>(move |_, _, meta| {
            let _ = send.send(meta.aggregate_id.to_string());
            Ok(())
        })
        .build()
        .unwrap();
    handler.start();
    (handler, receive)
}

async fn latency(
    writer: &dyn Provider,
    id: &str,
    seen: &mut mpsc::UnboundedReceiver<String>,
) -> Duration {
    let start = Instant::now();
    writer.append(vec![created(id)]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
    assert_eq!(
        got.ok().flatten().as_deref(),
        Some(id),
        "the handler was not woken"
    );
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_are_pushed_in_process_and_across_providers() {
    let Some(url) = support::url() else { return };
    let (here, db) = support::fresh(&url).await;
    let options = MysqlOptions {
        sequence_interval: Duration::from_millis(20),
        ..MysqlOptions::default()
    };
    let there = db.provider(options).await;
    let (local, mut local_seen) = started(here.clone());
    let (remote, mut remote_seen) = started(there.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let took = latency(&*here, "u1", &mut local_seen).await;
    assert!(took < Duration::from_millis(500), "in process: {took:?}");
    let got = tokio::time::timeout(Duration::from_secs(2), remote_seen.recv()).await;
    assert_eq!(
        got.ok().flatten().as_deref(),
        Some("u1"),
        "the other provider was not woken"
    );
    let took = latency(&*here, "u2", &mut remote_seen).await;
    assert!(
        took < Duration::from_millis(500),
        "across providers: {took:?}"
    );
    local.stop().await;
    remote.stop().await;
}
