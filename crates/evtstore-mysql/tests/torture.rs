//! No event is ever skipped, under 16 writers committing out of order (random delays between
//! insert and commit, one transaction in ten rolled back), whose events get positions only
//! from two other processes' sequencers, while 4 more writers append through two providers
//! (each append numbers its own events, in one statement or in the procedure's transaction;
//! concurrent ones of a provider share it; the two race for positions), then those 4 alone
//! (their appends one statement each, as no event waits for a position), read
//! by two handlers: each handler sees exactly the committed events, once each, in order, at
//! positions 1..N with no gap.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evtstore_core::{Aggregate, Domain, EventMeta, NewEvent, Provider};
use evtstore_mysql::{MysqlOptions, MysqlProvider};
use serde::{Deserialize, Serialize};

const WRITERS: usize = 16;
const DIRECT_WRITERS: usize = 4;
const TRANSACTIONS_PER_WRITER: usize = 100;
const CHILD: &str = "EVTSTORE_MYSQL_SEQUENCER_CHILD_DB";
const NAME: &str = "handlers_see_every_committed_event_once_in_order";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Tick {
    Tick,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Clock;

impl Aggregate for Clock {
    const STREAM: &'static str = "clock";
    type Event = Tick;
    fn fold(&mut self, _: &Tick, _: &EventMeta) {}
}

evtstore_core::domain!(Clocks { Clock });

/// (position, aggregate, version) as a handler saw them.
type Seen = Arc<Mutex<Vec<(u64, String, u64)>>>;

/// A small xorshift, so the test needs no random crate.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A child process, killed (SIGKILL) when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Another process whose provider runs a sequencer pass every 5 ms until killed.
fn sequencer_process(database: &str) -> KillOnDrop {
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, database)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.any(|line| line.is_ok_and(|l| l.contains("sequencer ready")));
    assert!(ready, "the sequencer process did not start");
    KillOnDrop(child)
}

async fn run_sequencer(url: &str, database: &str) {
    let config = support::connect_options(url, database);
    let options = MysqlOptions {
        pool_size: 2,
        sequence_interval: Duration::from_millis(5),
        ..MysqlOptions::default()
    };
    let _provider = MysqlProvider::connect_config(config, options)
        .await
        .unwrap();
    println!("sequencer ready");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// One event per transaction, in the caller's transaction; 0–4 ms before committing; one in
/// ten rolls back. Returns the (aggregate, version) pairs committed.
async fn writer(provider: Arc<MysqlProvider>, w: usize) -> BTreeSet<(String, u64)> {
    let (mut committed, mut version) = (BTreeSet::new(), 0);
    let mut random = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
    let id = format!("writer-{w}");
    for _ in 0..TRANSACTIONS_PER_WRITER {
        let mut tx = provider.pool().begin().await.unwrap();
        let event = NewEvent::new("clock", id.as_str(), version + 1, r#"{"type":"Tick"}"#);
        provider.append_in(&mut tx, vec![event]).await.unwrap();
        tokio::time::sleep(Duration::from_micros(next_random(&mut random) % 4000)).await;
        if next_random(&mut random).is_multiple_of(10) {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
            version += 1;
            committed.insert((id.clone(), version));
        }
    }
    committed
}

/// Appends `versions` through the provider, one event at a time with 0–2 ms between;
/// returns the (aggregate, version) pairs appended.
async fn direct_writer(
    provider: Arc<MysqlProvider>,
    w: usize,
    versions: std::ops::RangeInclusive<u64>,
) -> BTreeSet<(String, u64)> {
    let mut random = 0x2545_F491_4F6C_DD1D ^ (w as u64 + *versions.start());
    let id = format!("direct-{w}");
    let mut appended = BTreeSet::new();
    for version in versions {
        let event = NewEvent::new("clock", id.as_str(), version, r#"{"type":"Tick"}"#);
        let metas = Provider::append(&*provider, vec![event]).await.unwrap();
        assert!(metas[0].position > 0, "an append returns its position");
        appended.insert((id.clone(), version));
        tokio::time::sleep(Duration::from_micros(next_random(&mut random) % 2000)).await;
    }
    appended
}

fn recording_handler(domain: &Domain<Clocks>, name: &str, seen: Seen) -> evtstore_core::Handler {
    domain
        .handler(name)
        .in_memory_bookmark()
        .page_size(10)
        .poll_interval(Duration::from_millis(5))
        .handle::<Clock, _>(move |_, _, meta| {
            let id = meta.aggregate_id.to_string();
            seen.lock().unwrap().push((meta.position, id, meta.version));
            Ok(())
        })
        .build()
        .unwrap()
}

async fn wait_for(seen: &Seen, count: usize) {
    let caught_up = async {
        while seen.lock().unwrap().len() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(30), caught_up).await;
    let got = seen.lock().unwrap().len();
    assert!(waited.is_ok(), "a handler saw {got} of {count} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handlers_see_every_committed_event_once_in_order() {
    let Some(url) = support::url() else { return };
    if let Ok(database) = std::env::var(CHILD) {
        return run_sequencer(&url, &database).await;
    }
    let db = support::TestDb::create(&url).await;
    // This process never sequences: positions come from the two others.
    let options = MysqlOptions {
        sequence_interval: Duration::from_secs(3600),
        ..MysqlOptions::default()
    };
    let provider = db.provider(options.clone()).await;
    // Half the direct writers append through a second provider, as another process would:
    // its one-statement appends and procedure calls race this provider's for positions.
    let second = db.provider(options).await;
    let _sequencers = [sequencer_process(&db.name), sequencer_process(&db.name)];
    let domain = Domain::<Clocks>::with_provider(provider.clone());
    let seen: Vec<Seen> = (0..2).map(|_| Seen::default()).collect();
    let handlers: Vec<_> = (0..2)
        .map(|h| recording_handler(&domain, &format!("reader-{h}"), seen[h].clone()))
        .collect();
    handlers.iter().for_each(|h| h.start());

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(provider.clone(), w)))
        .collect();
    let providers = [&provider, &second];
    let direct_round = |versions: std::ops::RangeInclusive<u64>| -> Vec<_> {
        (0..DIRECT_WRITERS)
            .map(|w| {
                let provider = providers[w % 2].clone();
                tokio::spawn(direct_writer(provider, w, versions.clone()))
            })
            .collect()
    };
    let direct = direct_round(1..=TRANSACTIONS_PER_WRITER as u64);
    let mut committed = BTreeSet::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    let total = WRITERS * TRANSACTIONS_PER_WRITER;
    assert!(
        committed.len() > total * 8 / 10 && committed.len() < total,
        "some roll back"
    );
    for w in direct {
        committed.extend(w.await.unwrap());
    }
    // Then the direct writers alone: with no event waiting for a position, their appends
    // take the one-statement path (or, when the two providers' collide, the procedure). A
    // one-statement append leaves the counter behind the last position: seen at least once.
    let more = TRANSACTIONS_PER_WRITER as u64;
    let round = direct_round(more + 1..=more + 50);
    let mut conn = db.connection().await;
    let (mut behind, mut samples) = (0, 0);
    while !round.iter().all(|w| w.is_finished()) {
        let (counter, last): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT last FROM events_seq), (SELECT MAX(position) FROM events)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        behind += usize::from(counter < last);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for w in round {
        committed.extend(w.await.unwrap());
    }
    assert!(behind > 0, "no one-statement append in {samples} samples");
    for seen in &seen {
        wait_for(seen, committed.len()).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for handler in &handlers {
        handler.stop().await;
    }
    for (h, seen) in seen.iter().enumerate() {
        let seen = seen.lock().unwrap();
        let positions: Vec<u64> = seen.iter().map(|s| s.0).collect();
        let gapless: Vec<u64> = (1..=committed.len() as u64).collect();
        assert_eq!(
            positions, gapless,
            "handler {h}: positions 1..N, in order, no gap"
        );
        let events: BTreeSet<(String, u64)> = seen.iter().map(|s| (s.1.clone(), s.2)).collect();
        assert_eq!(
            events, committed,
            "handler {h}: exactly the committed events, once each"
        );
        let writers = (0..WRITERS).map(|w| format!("writer-{w}"));
        for id in writers.chain((0..DIRECT_WRITERS).map(|w| format!("direct-{w}"))) {
            let versions: Vec<u64> = seen.iter().filter(|s| s.1 == id).map(|s| s.2).collect();
            let expected: Vec<u64> = (1..=versions.len() as u64).collect();
            assert_eq!(
                versions, expected,
                "handler {h}: {id}'s events in version order"
            );
        }
    }
}
