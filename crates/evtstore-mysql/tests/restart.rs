//! MariaDB restarted while commands and a handler run: nothing committed is lost, and the
//! handler resumes by itself, seeing every event once, in order, at positions 1..N.

mod support;

use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use evtstore_core::conformance::domain::{Tests, User};
use evtstore_core::{Domain, ErrorKind, NewEvent, Provider};
use evtstore_mysql::{MysqlOptions, MysqlProvider};

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
    NewEvent {
        stream: "users".into(),
        aggregate_id: "w".into(),
        version,
        data: r#"{"type":"created","name":"x"}"#.into(),
    }
}

/// Appends version after version until `until`, retrying through the outage; returns how
/// many appends failed as unavailable.
async fn writer(provider: Arc<MysqlProvider>, until: Instant) -> usize {
    let (mut version, mut unavailable) = (0, 0);
    while Instant::now() < until {
        match provider.append(vec![created(version + 1)]).await {
            Ok(_) => version += 1,
            Err(error) => {
                unavailable += usize::from(error.kind() == ErrorKind::Unavailable);
                tokio::time::sleep(Duration::from_millis(50)).await;
                // An append may have committed before its connection was lost.
                if let Ok(events) = provider.aggregate_events("users", "w", version).await {
                    version += events.len() as u64;
                }
            }
        }
    }
    unavailable
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_nothing_and_handlers_resume() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let options = MysqlOptions {
        pool_size: 4,
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let handler = Domain::<Tests>::with_provider(provider.clone())
        .handler("model")
        .poll_interval(Duration::from_millis(100))
        .retry_delay(Duration::from_millis(100))
        .handle::<User, _, _>(move |_, _, meta| {
            recorded.lock().unwrap().push((meta.position, meta.version));
            async { Ok(()) }
        })
        .build()
        .unwrap();
    handler.start();

    let until = Instant::now() + Duration::from_secs(6);
    let writing = tokio::spawn(writer(provider.clone(), until));
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(restart_server).await.unwrap();
    let at_restart = stored_count(&provider).await;
    let unavailable = writing.await.unwrap();
    assert!(
        unavailable > 0,
        "the outage was not seen: the test proves nothing"
    );

    let stored = provider
        .events(&["users".into()], 0, 100_000)
        .await
        .unwrap();
    assert!(
        stored.len() > at_restart,
        "commands went on after the restart"
    );
    let expected: Vec<(u64, u64)> = (1..=stored.len() as u64).map(|n| (n, n)).collect();
    let got: Vec<(u64, u64)> = stored
        .iter()
        .map(|e| (e.meta.position, e.meta.version))
        .collect();
    assert_eq!(got, expected, "versions 1..N at positions 1..N");
    let caught_up = async {
        while seen.lock().unwrap().len() < expected.len() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let waited = tokio::time::timeout(Duration::from_secs(20), caught_up).await;
    assert!(waited.is_ok(), "the handler did not resume");
    handler.stop().await;
    assert_eq!(*seen.lock().unwrap(), expected, "each event once, in order");
}
