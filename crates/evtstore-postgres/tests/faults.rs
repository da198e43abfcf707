//! Faults: the server terminates every connection of the test, several times, while commands
//! run in a loop, a started handler (restarted from its bookmark each round) reads, and two
//! transactional handlers of one name compete. Commands fail with a clear error meanwhile and
//! succeed again afterwards; no committed event is lost by either kind of handler, and the
//! transactional read model applies each event exactly once.

mod counters;
mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use counters::{Add, Counter, Counters, admin, connect, terminate, with_application_name};
use evtstore_core::{Domain, ErrorKind, Handler};
use evtstore_postgres::{PgProvider, TxHandler};

const ROUNDS: usize = 3;

type Seen = Arc<Mutex<Vec<u64>>>;

/// A started handler with a persisted bookmark, recording every position it handles.
fn core_handler(domain: &Domain<Counters>, seen: &Seen) -> Handler {
    let seen = seen.clone();
    domain
        .handler("core")
        .page_size(5)
        .poll_interval(Duration::from_millis(100))
        .retry_delay(Duration::from_millis(50))
        .handle::<Counter, _>(move |_, _, meta| {
            seen.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .unwrap()
}

/// A transactional handler counting each application in the read model (no unique key, so a
/// second application shows as n = 2).
fn tx_handler(provider: &Arc<PgProvider>, schema: &str) -> TxHandler {
    let update = format!("UPDATE \"{schema}\".model SET n = n + 1 WHERE position = $1");
    let insert = format!("INSERT INTO \"{schema}\".model (position, n) VALUES ($1, 1)");
    provider
        .tx_handler::<Counters>("model")
        .page_size(5)
        .handle::<Counter, _>(move |tx, _, meta| {
            let (update, insert) = (update.clone(), insert.clone());
            Box::pin(async move {
                let position = meta.position as i64;
                if tx.execute(&update, &[&position]).await? == 0 {
                    tx.execute(&insert, &[&position]).await?;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            })
        })
        .build()
        .unwrap()
}

/// Runs a transactional handler over and over until `stop`, ignoring failed runs.
fn keep_running(handler: TxHandler, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<TxHandler> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let _ = handler.run_once().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        handler
    })
}

/// Commands in a loop until `stop`: the positions of those that succeeded, how many failed,
/// and how many succeeded once `phase` reached `ROUNDS` (after the last fault).
async fn command_loop(
    domain: Domain<Counters>,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, usize, usize) {
    let (mut committed, mut failed, mut after) = (Vec::new(), 0, 0);
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match domain.execute(&format!("c{}", n % 5), Add(1)).await {
            Ok(counter) => {
                committed.push(counter.position);
                after += usize::from(phase.load(Ordering::SeqCst) == ROUNDS);
            }
            // A broken connection is worth retrying, and says so.
            Err(error) if error.kind() == ErrorKind::Unavailable => {
                let message = error.to_string();
                assert!(message.contains("PostgreSQL"), "unclear error: {message}");
                failed += 1;
            }
            Err(other) => panic!("a broken connection gave {other:?}"),
        }
    }
    (committed, failed, after)
}

/// The first success of `attempt`, tried up to 20 times (the pool may hold a dead connection).
async fn retry<T, F: Future<Output = evtstore_core::Result<T>>>(attempt: impl Fn() -> F) -> T {
    for _ in 0..19 {
        if let Ok(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attempt().await.unwrap()
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_handlers_recover_from_terminated_connections() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let application_name = format!("evt_fault_{schema}");
    let provider = connect(&with_application_name(&url, &application_name), &schema, 4).await;
    let domain = Domain::<Counters>::with_provider(provider.clone());
    let admin = admin(&url).await;
    let model = format!("\"{schema}\".model");
    let create = format!(
        "CREATE TABLE {model} (position BIGINT NOT NULL, n INT NOT NULL); CREATE INDEX ON {model} (position)"
    );
    admin.batch_execute(&create).await.unwrap();

    let seen = Seen::default();
    let mut core = core_handler(&domain, &seen);
    core.start();
    let stop = Arc::new(AtomicBool::new(false));
    let tx_runners: Vec<_> = (0..2)
        .map(|_| keep_running(tx_handler(&provider, &schema), stop.clone()))
        .collect();
    let phase = Arc::new(AtomicUsize::new(0));
    let stop_commands = Arc::new(AtomicBool::new(false));
    let commands = tokio::spawn(command_loop(
        domain.clone(),
        phase.clone(),
        stop_commands.clone(),
    ));

    let mut terminated = 0;
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // A fresh handler of the same name: it knows only the bookmark.
        core.stop().await;
        core = core_handler(&domain, &seen);
        let resumed = retry(|| core.position()).await;
        assert!(
            round == 0 || resumed > 0,
            "round {round}: the handler resumed from 0, not its bookmark"
        );
        core.start();
        let burst = Instant::now();
        while burst.elapsed() < Duration::from_millis(300) {
            terminated += terminate(&admin, &application_name).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        phase.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop_commands.store(true, Ordering::SeqCst);
    let (committed, failed, after) = tokio::time::timeout(Duration::from_secs(20), commands)
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "terminated {terminated} backends; commands: {} ok, {failed} failed, {after} ok after the faults",
        committed.len()
    );
    assert!(terminated >= ROUNDS as i64, "backends were terminated");
    assert!(
        failed > 0,
        "no command saw a broken connection: the test proved nothing"
    );
    assert!(
        after >= 10,
        "commands succeed again after the faults ({after})"
    );

    let sql = format!("SELECT position FROM \"{schema}\".events ORDER BY position");
    let all: Vec<u64> = admin
        .query(&sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    let all_set: BTreeSet<u64> = all.iter().copied().collect();
    assert!(
        committed.iter().all(|p| all_set.contains(p)),
        "every successful command is stored"
    );

    let caught_up = || async {
        seen.lock()
            .unwrap()
            .iter()
            .copied()
            .collect::<BTreeSet<u64>>()
            == all_set
    };
    eventually("the started handler sees every committed event", caught_up).await;
    core.stop().await;
    let handled = seen.lock().unwrap().len();
    eprintln!("started handler: {handled} calls for {} events", all.len());
    assert!(
        handled - all.len() < all.len() / 2,
        "too many repeats: it restarted from scratch"
    );

    stop.store(true, Ordering::SeqCst);
    let mut runners = Vec::new();
    for runner in tx_runners {
        runners.push(
            tokio::time::timeout(Duration::from_secs(20), runner)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let finish = || async { runners[0].run_once().await.is_ok() };
    eventually("a transactional run succeeds", finish).await;
    let sql = format!(
        "SELECT e.position, COALESCE(sum(m.n), 0)::bigint, count(m.position)
         FROM \"{schema}\".events e LEFT JOIN {model} m USING (position) GROUP BY e.position ORDER BY 1"
    );
    let rows = admin.query(&sql, &[]).await.unwrap();
    let applied: Vec<(u64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
        .collect();
    let wrong: Vec<_> = applied
        .iter()
        .filter(|&&(_, n, rows)| n != 1 || rows != 1)
        .collect();
    assert_eq!(applied.len(), all.len());
    assert!(
        wrong.is_empty(),
        "events not applied exactly once: {wrong:?}"
    );
    let model_rows: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {model}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        model_rows as usize,
        all.len(),
        "no row for anything but a committed event"
    );
}
