//! MariaDB restarted while commands and handlers run: nothing committed is lost, positions stay
//! 1..N, and the handlers resume by themselves: a transactional one applies every event exactly
//! once; a plain one may see again the page whose bookmark it could not save, never skips.

mod support;

use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore_core::conformance::domain::{Tests, User};
use evtstore_core::{Domain, ErrorKind, Handler, NewEvent, Provider};
use evtstore_mysql::{MysqlOptions, MysqlProvider, TxHandler};
use sqlx::Executor;

const DAEMON: &str = "/usr/sbin/mariadbd";

/// Starts MariaDB again when dropped (also when the test fails), and waits until it answers.
struct Restarted;

impl Drop for Restarted {
    fn drop(&mut self) {
        let start = ["--start", "--oknodo", "--background", "--exec", DAEMON];
        let _ = Process::new("start-stop-daemon").args(start).status();
        for _ in 0..120 {
            let ping = Process::new("mariadb-admin")
                .args(["-uroot", "ping"])
                .output();
            if ping.is_ok_and(|out| out.status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn restart_server() {
    let _started = Restarted;
    let stop = ["--stop", "--retry", "60", "--exec", DAEMON];
    let stopped = Process::new("start-stop-daemon")
        .args(stop)
        .status()
        .unwrap();
    assert!(stopped.success(), "could not stop MariaDB");
}

fn created(version: u64) -> NewEvent {
    NewEvent::new("users", "w", version, r#"{"type":"created","name":"x"}"#)
}

/// Appends version after version until `until`, retrying through the outage; returns the
/// errors' kinds.
async fn writer(provider: Arc<MysqlProvider>, until: Instant) -> Vec<ErrorKind> {
    let (mut version, mut kinds) = (0, Vec::new());
    while Instant::now() < until {
        match provider.append(vec![created(version + 1)]).await {
            Ok(_) => version += 1,
            Err(error) => {
                eprintln!("append failed: {error}");
                kinds.push(error.kind());
                tokio::time::sleep(Duration::from_millis(50)).await;
                // An append may have committed before its connection was lost.
                if let Ok(events) = provider.aggregate_events("users", "w", version).await {
                    version += events.len() as u64;
                }
            }
        }
    }
    kinds
}

/// How many events are stored, once the server answers again.
async fn stored_count(provider: &MysqlProvider) -> usize {
    loop {
        if let Ok(events) = provider.events(&["users".into()], 0, 100_000).await {
            return events.len();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A transactional handler counting each position it applies in table `applied`.
fn exact_handler(provider: &Arc<MysqlProvider>) -> TxHandler {
    provider
        .tx_handler::<Tests>("exact")
        .poll_interval(Duration::from_millis(100))
        .retry_delay(Duration::from_millis(100))
        .handle::<User, _>(|conn, _, meta| {
            Box::pin(async move {
                let sql = "INSERT INTO applied VALUES (?, 1) ON DUPLICATE KEY UPDATE n = n + 1";
                let position = meta.position as i64;
                sqlx::query(sql).bind(position).execute(conn).await?;
                Ok(())
            })
        })
        .build()
        .unwrap()
}

/// A plain handler recording each position it is called with, redeliveries included.
fn plain_handler(provider: &Arc<MysqlProvider>, seen: Arc<Mutex<Vec<u64>>>) -> Handler {
    Domain::<Tests>::with_provider(provider.clone())
        .handler("plain")
        .poll_interval(Duration::from_millis(100))
        .retry_delay(Duration::from_millis(100))
        .handle::<User, _>(move |_, _, meta| {
            seen.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .unwrap()
}

async fn applied(db: &support::TestDb) -> Vec<(i64, i64)> {
    let mut conn = db.connection().await;
    let sql = "SELECT position, n FROM applied ORDER BY position";
    sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing_and_handlers_resume() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let create = "CREATE TABLE applied (position BIGINT PRIMARY KEY, n INT NOT NULL)";
    db.connection().await.execute(create).await.unwrap();
    let options = MysqlOptions {
        pool_size: 4,
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (exact, plain) = (
        exact_handler(&provider),
        plain_handler(&provider, seen.clone()),
    );
    exact.start();
    plain.start();

    let until = Instant::now() + Duration::from_secs(6);
    let writing = tokio::spawn(writer(provider.clone(), until));
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(restart_server).await.unwrap();
    let at_restart = stored_count(&provider).await;
    let kinds = writing.await.unwrap();
    let uptime = "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
                  WHERE VARIABLE_NAME = 'UPTIME'";
    let uptime: String = sqlx::query_scalar(uptime)
        .fetch_one(provider.pool())
        .await
        .unwrap();
    assert!(
        uptime.parse::<u64>().unwrap() < 60,
        "the server was restarted"
    );
    // Commands wait for a connection through a short outage (up to the pool's 10 s), or fail.
    // A conflict follows an append that committed before its connection was lost.
    let expected_kinds = [ErrorKind::Unavailable, ErrorKind::Conflict];
    let unavailable = kinds.iter().all(|kind| expected_kinds.contains(kind));
    assert!(unavailable, "a server going away is Unavailable: {kinds:?}");

    let stored = provider
        .events(&["users".into()], 0, 100_000)
        .await
        .unwrap();
    assert!(
        stored.len() > at_restart,
        "commands went on after the restart"
    );
    let n = stored.len() as u64;
    let got: Vec<(u64, u64)> = stored
        .iter()
        .map(|e| (e.meta.position, e.meta.version))
        .collect();
    let expected: Vec<(u64, u64)> = (1..=n).map(|i| (i, i)).collect();
    assert_eq!(got, expected, "versions 1..N at positions 1..N");
    let caught_up = async {
        while exact.position().await.ok() != Some(n) || seen.lock().unwrap().last() != Some(&n) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(20), caught_up).await;
    assert!(waited.is_ok(), "the handlers did not resume");
    exact.stop().await;
    plain.stop().await;
    let once: Vec<(i64, i64)> = (1..=n as i64).map(|p| (p, 1)).collect();
    assert_eq!(
        applied(&db).await,
        once,
        "transactional: each event exactly once"
    );
    // A plain handler redelivers a page whose bookmark it could not save, never skips one.
    let seen = seen.lock().unwrap();
    let mut highest = 0;
    for &position in seen.iter() {
        assert!(
            position <= highest + 1,
            "skipped to {position} after {highest}"
        );
        highest = highest.max(position);
    }
}
