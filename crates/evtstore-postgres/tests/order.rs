//! Handlers see each aggregate's events in version order, whatever path appended them: an
//! `append_in` inside a transaction that took its id before the aggregate's last event
//! committed is refused (a retryable conflict) instead of ordering its event before that one.

mod counters;
mod support;

use std::collections::HashMap;
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use counters::{Add, Counter, Counters, connect};
use evtstore_core::{Domain, Error, Handler};
use evtstore_postgres::PgProvider;

/// Set in the child processes of the stress test: the schema to write to.
const CHILD: &str = "EVTSTORE_ORDER_CHILD";

type Seen = Arc<Mutex<Vec<(String, u64, u64)>>>;

/// A handler recording (aggregate, version, position) of every counter event, in order.
fn recorder(domain: &Domain<Counters>) -> (Handler, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let handler = domain
        .handler("order")
        .handle::<Counter, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            record
                .lock()
                .unwrap()
                .push((id, meta.version, meta.position));
            Ok(())
        })
        .build()
        .unwrap();
    (handler, seen)
}

async fn notes_table(p: &PgProvider, schema: &str) -> String {
    let notes = format!("\"{schema}\".notes");
    let sql = format!("CREATE TABLE IF NOT EXISTS {notes} (note TEXT)");
    p.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&sql)
        .await
        .unwrap();
    format!("INSERT INTO {notes} VALUES ('mine')")
}

#[tokio::test]
async fn append_in_after_an_earlier_write_never_orders_an_event_before_its_predecessor() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let p = connect(&url, &schema, 4).await;
    let insert = notes_table(&p, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let mut client = p.pool().get().await.unwrap();

    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[]).await.unwrap(); // A now has a transaction id
    domain.execute("x", Add(1)).await.unwrap(); // B: x v1, committed
    let mut batch = domain.batch();
    assert_eq!(batch.execute("x", Add(1)).await.unwrap().version, 2);
    let refused = p.append_in(&tx, batch.into_events()).await.unwrap_err();
    assert!(
        matches!(&refused, Error::StaleTransaction { aggregate_id, .. } if aggregate_id == "x"),
        "{refused}"
    );
    assert!(refused.is_version_conflict() && refused.is_retryable());
    tx.rollback().await.unwrap();

    // The retry, in a new transaction, goes through.
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[]).await.unwrap();
    let mut batch = domain.batch();
    batch.execute("x", Add(1)).await.unwrap();
    p.append_in(&tx, batch.into_events()).await.unwrap();
    tx.commit().await.unwrap();

    let (handler, seen) = recorder(&domain);
    assert_eq!(handler.run_once().await.unwrap(), 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [1, 2]);
    assert!(seen[0].2 < seen[1].2, "positions follow versions: {seen:?}");
}

/// A child process: transactions that write first, then stage commands and `append_in`,
/// retrying on conflicts, beside other processes doing the same.
async fn child_writes(url: &str, schema: &str) {
    let p = connect(url, schema, 2).await;
    let insert = notes_table(&p, schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let mut client = p.pool().get().await.unwrap();
    let mut random = std::process::id() as u64 | 1;
    for _ in 0..40 {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let id = format!("agg-{}", random % 4);
        loop {
            let tx = client.transaction().await.unwrap();
            tx.execute(&insert, &[]).await.unwrap();
            tokio::time::sleep(Duration::from_micros(random % 3000)).await;
            let mut batch = domain.batch();
            batch.execute(&id, Add(1)).await.unwrap();
            match p.append_in(&tx, batch.into_events()).await {
                Ok(_) => break tx.commit().await.unwrap(),
                Err(e) if e.is_version_conflict() => tx.rollback().await.unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

struct KillOnDrop(Vec<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_from_several_processes_keeps_every_aggregate_in_version_order() {
    let Some(url) = support::url() else { return };
    if let Ok(schema) = std::env::var(CHILD) {
        return child_writes(&url, &schema).await;
    }
    let schema = support::unique_schema();
    let p = connect(&url, &schema, 4).await;
    notes_table(&p, &schema).await;
    let domain = Domain::<Counters>::with_provider(p.clone());
    let name = "append_in_from_several_processes_keeps_every_aggregate_in_version_order";
    let spawn = || {
        Process::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1"])
            .env(CHILD, &schema)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut children = KillOnDrop((0..4).map(|_| spawn()).collect());
    // Plain commands too, in transactions of their own.
    for n in 0..80 {
        let id = format!("agg-{}", n % 4);
        while let Err(e) = domain.execute(&id, Add(1)).await {
            assert!(e.is_conflict(), "{e}");
        }
    }
    for child in &mut children.0 {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }

    let (handler, seen) = recorder(&domain);
    assert_eq!(handler.run_once().await.unwrap(), 80 + 4 * 40);
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    for (id, version, position) in seen.lock().unwrap().iter() {
        let (previous_version, previous_position) = last.get(id).copied().unwrap_or((0, 0));
        assert_eq!(*version, previous_version + 1, "{id}: versions in order");
        assert!(
            *position > previous_position,
            "{id}: positions follow versions"
        );
        last.insert(id.clone(), (*version, *position));
    }
}
