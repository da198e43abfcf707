//! Push delivery: a started handler learns of events appended by another provider (another
//! process, as far as it can tell) through LISTEN/NOTIFY, not by polling (its poll interval is
//! a minute), and keeps doing so after its connections are terminated. A lease released
//! through another provider wakes subscribers at once too.

mod counters;
mod support;

use std::time::{Duration, Instant};

use counters::{Add, Counter, Counters, admin, connect, terminate, with_application_name};
use evtstore_core::{Domain, Handler, Provider};
use tokio::sync::mpsc;

/// What polling cannot explain: a started handler polls once a minute.
const POLL: Duration = Duration::from_secs(60);

async fn domain(url: &str, schema: &str) -> Domain<Counters> {
    Domain::with_provider(connect(url, schema, 4).await)
}

/// The backends of `application_name` whose last statement was a LISTEN.
async fn listeners(admin: &tokio_postgres::Client, application_name: &str) -> Vec<i32> {
    let sql =
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'";
    let rows = admin.query(sql, &[&application_name]).await.unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// Waits (at most `within`) for a listening backend that is not one of `old`.
async fn new_listener(
    admin: &tokio_postgres::Client,
    application_name: &str,
    old: &[i32],
    within: Duration,
) -> Vec<i32> {
    let started = Instant::now();
    loop {
        let now = listeners(admin, application_name).await;
        if now.iter().any(|pid| !old.contains(pid)) {
            // Let the handler's runs woken by the (re)connection itself finish first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return now;
        }
        let waited = started.elapsed();
        assert!(waited < within, "no LISTEN connection after {waited:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A started handler on `domain` that sends each aggregate id it handles.
fn started(domain: &Domain<Counters>) -> (Handler, mpsc::UnboundedReceiver<String>) {
    let (sender, received) = mpsc::unbounded_channel();
    let handler = domain
        .handler("push")
        .poll_interval(POLL)
        .retry_delay(Duration::from_millis(100))
        .handle::<Counter, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            let _ = sender.send(id);
            Ok(())
        })
        .build()
        .unwrap();
    handler.start();
    (handler, received)
}

/// Appends through `writer` and expects the handler to get the event within `within`. An
/// event handled again after a terminated connection (delivery is at least once: a bookmark
/// save the termination cut off is redone) is passed over; any other event fails the test.
async fn ping_and_expect(
    writer: &Domain<Counters>,
    id: &str,
    received: &mut mpsc::UnboundedReceiver<String>,
    within: Duration,
) {
    writer.execute(id, Add(1)).await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let got = tokio::time::timeout_at(deadline, received.recv()).await;
        let got = got.ok().flatten();
        match got.as_deref() {
            Some(seen) if seen == id => return,
            Some(seen) if is_earlier(seen, id) => continue, // handled again: at least once
            other => panic!("no push for {id} within {within:?}: got {other:?}"),
        }
    }
}

/// True when `seen` is a ping sent before `id` in the termination test's order.
fn is_earlier(seen: &str, id: &str) -> bool {
    let round = |ping: &str| -> Option<(u32, bool)> {
        let (kind, n) = ping.rsplit_once('-')?;
        Some((n.parse().ok()?, kind == "after-reconnection"))
    };
    matches!((round(seen), round(id)), (Some(a), Some(b)) if a < b)
}

#[tokio::test]
async fn handler_gets_events_appended_through_another_provider_at_once() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let application_name = format!("evt_push_{schema}");
    let handled = domain(&with_application_name(&url, &application_name), &schema).await;
    let writer = domain(&url, &schema).await;
    let admin = admin(&url).await;
    let (handler, mut received) = started(&handled);
    new_listener(&admin, &application_name, &[], Duration::from_secs(10)).await;

    for n in 0..3 {
        ping_and_expect(
            &writer,
            &format!("ping-{n}"),
            &mut received,
            Duration::from_secs(2),
        )
        .await;
    }
    handler.stop().await;
    assert!(received.try_recv().is_err(), "each event handled once");
}

#[tokio::test]
async fn handler_gets_events_after_its_connections_are_terminated() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let application_name = format!("evt_push_{schema}");
    let handled = domain(&with_application_name(&url, &application_name), &schema).await;
    let writer = domain(&url, &schema).await;
    let admin = admin(&url).await;
    let (handler, mut received) = started(&handled);
    let mut listening = new_listener(&admin, &application_name, &[], Duration::from_secs(10)).await;

    for round in 0..6 {
        let terminated = terminate(&admin, &application_name).await;
        assert!(terminated >= 1, "the LISTEN connection was terminated");
        // Appended while no one listens: the reconnection itself must wake the handler.
        let lost = format!("during-outage-{round}");
        ping_and_expect(&writer, &lost, &mut received, Duration::from_secs(5)).await;
        // Appended once a new connection listens: only its notification can explain it.
        // Back at once, however many outages came before.
        let within = Duration::from_secs(1);
        listening = new_listener(&admin, &application_name, &listening, within).await;
        let after = format!("after-reconnection-{round}");
        ping_and_expect(&writer, &after, &mut received, Duration::from_secs(2)).await;
    }
    handler.stop().await;
}

#[tokio::test]
async fn a_release_through_another_provider_wakes_subscribers() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let application_name = format!("evt_push_{schema}");
    let waiting = connect(&with_application_name(&url, &application_name), &schema, 2).await;
    let releasing = connect(&url, &schema, 2).await;
    let mut signal = waiting.subscribe();
    new_listener(
        &admin(&url).await,
        &application_name,
        &[],
        Duration::from_secs(10),
    )
    .await;
    let lease = releasing
        .acquire_lease("push", "other", POLL)
        .await
        .unwrap();
    signal.borrow_and_update();
    releasing.release_lease(&lease.unwrap()).await.unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(2), signal.changed()).await;
    assert!(woken.is_ok(), "no wake-up after another provider's release");
}
