//! Transactions: appends inside the caller's own transaction, atomic batches over several
//! aggregates, and transactional handlers whose read-model writes commit with their bookmark
//! (each event applied exactly once; a failed page is rolled back as a whole).

mod counters;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use counters::{Add, Counter, Counters, add, admin, applied, connect, create_model, model_handler};
use evtstore_core::{Domain, Error, Provider};
use evtstore_postgres::{PgOptions, PgProvider, TxHandler, TxHandlerBuilder};

#[tokio::test]
async fn append_in_commits_and_rolls_back_with_the_callers_transaction() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let p = connect(&url, &schema, 4).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let mut client = p.pool().get().await.unwrap();
    let notes = format!("\"{schema}\".notes");
    client
        .batch_execute(&format!("CREATE TABLE {notes} (note TEXT)"))
        .await
        .unwrap();
    let insert = format!("INSERT INTO {notes} VALUES ($1)");
    let count = format!("SELECT count(*) FROM {notes}");
    let streams = ["counters".to_owned()];

    for commit in [false, true] {
        let tx = client.transaction().await.unwrap();
        tx.execute(&insert, &[&"mine"]).await.unwrap();
        let mut batch = domain.batch();
        batch.execute("a", Add(1)).await.unwrap();
        batch.execute("b", Add(2)).await.unwrap();
        let metas = p.append_in(&tx, batch.into_events()).await.unwrap();
        assert_eq!(metas.len(), 2);
        let outside = p.events(&streams, 0, 10).await.unwrap();
        assert!(
            outside.is_empty(),
            "others see the events only after the commit"
        );
        if commit {
            tx.commit().await.unwrap()
        } else {
            tx.rollback().await.unwrap()
        }
        let notes: i64 = client.query_one(&count, &[]).await.unwrap().get(0);
        let events = p.events(&streams, 0, 10).await.unwrap();
        let (a, b) = (
            domain.load::<Counter>("a").await.unwrap(),
            domain.load::<Counter>("b").await.unwrap(),
        );
        if commit {
            assert_eq!(
                (notes, events.len()),
                (1, 2),
                "commit: the row and both events"
            );
            assert_eq!(
                (a.version, a.state.total, b.version, b.state.total),
                (1, 1, 1, 2)
            );
            let positions: Vec<u64> = events.iter().map(|e| e.meta.position).collect();
            assert_eq!(
                positions,
                metas.iter().map(|m| m.position).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(
                (notes, events.len()),
                (0, 0),
                "rollback: neither the row nor the events"
            );
            assert_eq!((a.version, b.version), (0, 0));
        }
    }
}

#[tokio::test]
async fn batch_commits_two_aggregates_atomically_or_neither() {
    let Some(url) = support::url() else { return };
    let p = connect(&url, &support::unique_schema(), 4).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    add(&domain, &["a", "b"]).await;

    let mut batch = domain.batch();
    batch.execute("a", Add(10)).await.unwrap();
    batch.execute("b", Add(20)).await.unwrap();
    domain.execute("b", Add(100)).await.unwrap(); // b moves between load and commit
    match batch.commit().await {
        Err(Error::VersionConflict {
            aggregate_id,
            expected: 1,
            actual: 2,
            ..
        }) => assert_eq!(aggregate_id, "b"),
        other => panic!("expected a version conflict on b, got {other:?}"),
    }
    let a = domain.load::<Counter>("a").await.unwrap();
    let b = domain.load::<Counter>("b").await.unwrap();
    assert_eq!(
        (a.version, a.state.total),
        (1, 1),
        "a's staged event was not written"
    );
    assert_eq!(
        (b.version, b.state.total),
        (2, 101),
        "only the other writer's event on b"
    );

    let mut batch = domain.batch();
    batch.execute("a", Add(10)).await.unwrap();
    batch.execute("b", Add(20)).await.unwrap();
    let metas = batch.commit().await.unwrap();
    assert_eq!(
        metas
            .iter()
            .map(|m| (m.aggregate_id.as_str(), m.version))
            .collect::<Vec<_>>(),
        [("a", 2), ("b", 3)]
    );
    let a = domain.load::<Counter>("a").await.unwrap();
    let b = domain.load::<Counter>("b").await.unwrap();
    assert_eq!((a.state.total, b.state.total), (11, 121));
}

#[tokio::test]
async fn tx_handler_applies_each_event_once_and_rolls_back_a_failed_page() {
    let Some(url) = support::url() else { return };
    let (schema, admin) = (support::unique_schema(), admin(&url).await);
    let p = connect(&url, &schema, 4).await;
    create_model(&admin, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let fail = Arc::new(AtomicBool::new(false));
    let handler = model_handler(&p, &schema, 3, fail.clone(), None);

    add(&domain, &["a", "b", "a", "c"]).await;
    assert_eq!(handler.run_once().await.unwrap(), 4);
    add(&domain, &["b", "d"]).await;
    assert_eq!(handler.run_once().await.unwrap(), 2);
    assert_eq!(handler.run_once().await.unwrap(), 0);
    let model = applied(&admin, &schema).await;
    assert!(
        model.len() == 6 && model.iter().all(|&(_, n)| n == 1),
        "{model:?}"
    );
    let before = handler.position().await.unwrap();
    assert_eq!(before, model[5].0);

    // One page of three: "bad" is second, so the page's first event was written, then undone.
    add(&domain, &["e", "bad", "f"]).await;
    fail.store(true, Ordering::SeqCst);
    let bad = p.aggregate_events("counters", "bad", 0).await.unwrap()[0]
        .meta
        .position;
    match handler.run_once().await {
        Err(Error::Handler { position, .. }) => assert_eq!(position, bad),
        other => panic!("expected the callback's failure, got {other:?}"),
    }
    assert_eq!(
        handler.position().await.unwrap(),
        before,
        "the bookmark stays before the page"
    );
    let model = applied(&admin, &schema).await;
    assert!(model[..6].iter().all(|&(_, n)| n == 1), "{model:?}");
    assert!(
        model[6..].iter().all(|&(_, n)| n == 0),
        "none of the page's rows: {model:?}"
    );

    fail.store(false, Ordering::SeqCst);
    assert_eq!(handler.run_once().await.unwrap(), 3);
    let model = applied(&admin, &schema).await;
    assert!(
        model.len() == 9 && model.iter().all(|&(_, n)| n == 1),
        "{model:?}"
    );
}

#[tokio::test]
async fn tx_handler_needs_one_connection_and_does_not_wait_for_itself() {
    let Some(url) = support::url() else { return };
    let (schema, admin) = (support::unique_schema(), admin(&url).await);
    let p = connect(&url, &schema, 1).await;
    create_model(&admin, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let handler = model_handler(&p, &schema, 1000, Arc::default(), None);
    add(&domain, &["a", "b"]).await;
    let run = tokio::time::timeout(Duration::from_secs(10), handler.run_once()).await;
    assert_eq!(run.expect("a pool of one connection is enough").unwrap(), 2);

    // Appends committed while a page's transaction is open must not hold that page back.
    let writer = Domain::<Counters>::with_provider(connect(&url, &schema, 2).await);
    let writing = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            writer.execute("w", Add(1)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await; // small pages, short runs
        }
    });
    let mut slowest = Duration::ZERO;
    while !writing.is_finished() {
        let started = Instant::now();
        handler.run_once().await.unwrap();
        slowest = slowest.max(started.elapsed());
    }
    writing.await.unwrap();
    handler.run_once().await.unwrap();
    assert!(
        slowest < Duration::from_millis(1500),
        "a run took {slowest:?}"
    );
    let model = applied(&admin, &schema).await;
    assert!(
        model.len() > 2 && model.iter().all(|&(_, n)| n == 1),
        "{model:?}"
    );
}

#[tokio::test]
async fn tx_handler_refuses_two_callbacks_for_one_kind() {
    let Some(url) = support::url() else { return };
    let p = connect(&url, &support::unique_schema(), 1).await;
    let built = p
        .tx_handler::<Counters>("twice")
        .handle::<Counter, _>(|_, _, _| Box::pin(async { Ok(()) }))
        .handle::<Counter, _>(|_, _, _| Box::pin(async { Ok(()) }))
        .build();
    assert!(
        matches!(built, Err(Error::InvalidName { .. })),
        "the first callback would be lost"
    );
}

/// A started transactional handler applies appended events within moments (its poll is a
/// minute away, so only the append signal explains it), each once, and stops on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_tx_handler_applies_appends_at_once_and_stops() {
    let Some(url) = support::url() else { return };
    let (schema, admin) = (support::unique_schema(), admin(&url).await);
    let p = connect(&url, &schema, 4).await;
    create_model(&admin, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let handler = applying(&p, &schema, "started", |b| {
        b.poll_interval(Duration::from_secs(60))
    });
    handler.start();
    for round in 1..=3 {
        add(&domain, &["s"]).await;
        let caught_up = async {
            while applied(&admin, &schema).await.len() < round
                || applied(&admin, &schema).await.iter().any(|&(_, n)| n == 0)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(2), caught_up).await;
        assert!(waited.is_ok(), "event {round} not applied within 2 s");
    }
    handler.stop().await;
    add(&domain, &["s"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let model = applied(&admin, &schema).await;
    assert_eq!(
        model.iter().map(|&(_, n)| n).collect::<Vec<_>>(),
        [1, 1, 1, 0],
        "stopped: the fourth is not applied"
    );
}

/// A transactional handler named `name` that adds a row to `applied` per event, with the
/// options `configure` sets.
fn applying(
    p: &Arc<PgProvider>,
    schema: &str,
    name: &str,
    configure: impl FnOnce(TxHandlerBuilder<Counters>) -> TxHandlerBuilder<Counters>,
) -> TxHandler {
    let sql = format!("INSERT INTO \"{schema}\".applied (position) VALUES ($1)");
    configure(p.tx_handler::<Counters>(name))
        .handle::<Counter, _>(move |tx, _, meta| {
            let sql = sql.clone();
            Box::pin(async move {
                tx.execute(&sql, &[&(meta.position as i64)]).await?;
                Ok(())
            })
        })
        .build()
        .unwrap()
}

/// A transactional handler opens sealed events with keys read on its page's own transaction:
/// with a pool of one connection, which the page holds, a second one would never come.
#[tokio::test]
async fn sealed_events_are_opened_on_the_pages_own_connection() {
    use evtstore_core::conformance::domain::{Note, Secret, SecretEvent, Tests};
    let Some(url) = support::url() else { return };
    let options = PgOptions {
        schema: support::unique_schema(),
        pool_size: 1,
        statement_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let p = Arc::new(PgProvider::connect_with(&url, options).await.unwrap());
    let domain = Domain::<Tests>::with_provider(p.clone());
    domain.execute("s1", Note("kept")).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let handler = p
        .tx_handler::<Tests>("sealed")
        .handle::<Secret, _>(move |_, event, _| {
            let SecretEvent::Noted { text } = event;
            record.lock().unwrap().push(text.clone());
            Box::pin(async { Ok(()) })
        })
        .build()
        .unwrap();
    let handled = handler.run_once().await;
    assert_eq!(handled.unwrap(), 1, "the sealed event was handled");
    assert_eq!(*seen.lock().unwrap(), ["kept"], "and opened");
}

/// A start that waited for another process's first page, which rolled back and saved no
/// bookmark, still begins at the end of history (`always_tail_stream`): it does not replay
/// history. A trigger holds the first bookmark save for a second, then refuses it.
#[tokio::test]
async fn a_start_that_waited_for_a_failed_first_page_still_tails() {
    let Some((_, schema, p, admin, _)) = with_history().await else {
        return;
    };
    let setup = format!("CREATE SEQUENCE \"{schema}\".saves;");
    let check = format!(
        "PERFORM pg_sleep(1);
         IF nextval('\"{schema}\".saves') = 1 THEN
           RAISE EXCEPTION 'the first bookmark save is refused';
         END IF;"
    );
    before_bookmark_saves(&admin, &schema, &setup, &check).await;
    let tailing = |b: TxHandlerBuilder<Counters>| b.always_tail_stream(true);
    let first = applying(&p, &schema, "contended", tailing);
    let second = applying(&p, &schema, "contended", tailing);
    let waiting = async {
        tokio::time::sleep(Duration::from_millis(300)).await; // the first holds the lock
        second.run_once().await
    };
    let (failed, waited) = tokio::join!(first.run_once(), waiting);
    assert!(failed.is_err(), "the first page's save is refused");
    assert_eq!(waited.unwrap(), 0, "history is not replayed");
    assert!(applied(&admin, &schema).await.iter().all(|&(_, n)| n == 0));
}

/// The server's URL and a store with one event ("history") and the `applied` model: its
/// schema, provider, an admin client and a domain. `None` without a server.
type History = (
    String,
    String,
    Arc<PgProvider>,
    tokio_postgres::Client,
    Domain<Counters>,
);

async fn with_history() -> Option<History> {
    let url = support::url()?;
    let schema = support::unique_schema();
    let p = connect(&url, &schema, 4).await;
    let admin = admin(&url).await;
    create_model(&admin, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    add(&domain, &["history"]).await;
    Some((url, schema, p, admin, domain))
}

/// Runs `setup`, then makes every bookmark save of `schema` run the PL/pgSQL `check` first.
async fn before_bookmark_saves(
    admin: &tokio_postgres::Client,
    schema: &str,
    setup: &str,
    check: &str,
) {
    let sql = format!(
        "{setup}
         CREATE FUNCTION \"{schema}\".check_save() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN {check} RETURN NEW; END $$;
         CREATE TRIGGER check_save BEFORE INSERT OR UPDATE ON \"{schema}\".bookmarks
           FOR EACH ROW EXECUTE FUNCTION \"{schema}\".check_save();"
    );
    admin.batch_execute(&sql).await.unwrap();
}

/// A start that began to wait for another process's page, and gave up at its time limit,
/// still carries on from that process's bookmark once it gets the lock (`always_tail_stream`):
/// the events that process had not reached are handled, not passed over. A trigger holds the
/// first bookmark save for two seconds; the standby waits one.
#[tokio::test]
async fn a_start_whose_wait_timed_out_carries_on_from_the_bookmark() {
    let Some((url, schema, p, admin, domain)) = with_history().await else {
        return;
    };
    let setup = format!("CREATE SEQUENCE \"{schema}\".saves;");
    let check = format!("IF nextval('\"{schema}\".saves') = 1 THEN PERFORM pg_sleep(2); END IF;");
    before_bookmark_saves(&admin, &schema, &setup, &check).await;
    let impatient = PgOptions {
        schema: schema.clone(),
        statement_timeout: Duration::from_secs(1),
        ..PgOptions::default()
    };
    let q = Arc::new(PgProvider::connect_with(&url, impatient).await.unwrap());
    let running = applying(&p, &schema, "standby", |b| b);
    let standby = applying(&q, &schema, "standby", |b| b.always_tail_stream(true));
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await; // the first holds the lock
        add(&domain, &["meanwhile"]).await;
        standby.run_once().await
    };
    let (ran, gave_up) = tokio::join!(running.run_once(), meanwhile);
    assert_eq!(ran.unwrap(), 1, "the running process handled the history");
    assert!(gave_up.is_err(), "the standby's wait passed its time limit");
    let handled = standby.run_once().await.unwrap();
    assert_eq!(handled, 1, "the event appended meanwhile is handled");
}
