//! Faults and bad input: each error says what was wrong, and whether to retry; a sequencer
//! connection killed mid-pass loses and duplicates nothing.

mod support;

use std::str::FromStr;
use std::time::{Duration, Instant};

use evtstore_core::{Domain, Error, ErrorKind, NewEvent, Provider};
use evtstore_mysql::{MysqlOptions, MysqlProvider};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{Connection, Executor};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("users", id, version, r#"{"type":"created","name":"x"}"#)
}

#[tokio::test]
async fn bad_table_names_are_refused_before_connecting() {
    let options = MysqlOptions {
        events_table: "events`; DROP TABLE x; --".into(),
        ..MysqlOptions::default()
    };
    let url = "mysql://nobody@127.0.0.1:1/none";
    let error = MysqlProvider::connect_with(url, options)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, Error::InvalidName { what: "table", .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_down_server_is_unavailable_and_named() {
    let error = MysqlProvider::connect("mysql://root@127.0.0.1:1/test").await;
    let error = error.err().unwrap();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("127.0.0.1:1/test"), "{error}");
}

#[tokio::test]
async fn wrong_credentials_say_access_denied() {
    let Some(url) = support::url() else { return };
    let config = MySqlConnectOptions::from_str(&url)
        .unwrap()
        .username("evtstore_nobody")
        .password("wrong");
    let error = MysqlProvider::connect_config(config, MysqlOptions::default()).await;
    let message = error.err().unwrap().to_string();
    assert!(message.contains("Access denied"), "{message}");
    assert!(message.contains("connect"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_row_that_does_not_decode_names_the_event() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    provider.append(vec![event("u1", 1)]).await.unwrap();
    let mut conn = db.connection().await;
    conn.execute("UPDATE events SET data = 'not json'")
        .await
        .unwrap();
    let domain = Domain::<evtstore_core::conformance::domain::Tests>::with_provider(provider);
    let error = domain
        .load::<evtstore_core::conformance::domain::User>("u1")
        .await;
    let error = error.err().unwrap();
    assert!(matches!(error, Error::Decode { version: 1, .. }), "{error}");
    assert!(error.to_string().contains("users/u1 version 1"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_timeout_is_contention() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let (mut first, mut second) = (db.connection().await, db.connection().await);
    let mut open = first.begin().await.unwrap();
    provider
        .append_in(&mut open, vec![event("u1", 1)])
        .await
        .unwrap();
    second
        .execute("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let mut waiting = second.begin().await.unwrap();
    let error = provider.append_in(&mut waiting, vec![event("u1", 1)]).await;
    let error = error.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict, "{error}");
    assert!(
        error.is_retryable() && error.to_string().contains("append"),
        "{error}"
    );
}

/// Commits `n` events without positions (this provider's timer never runs).
async fn unsequenced(db: &support::TestDb, n: u64) -> std::sync::Arc<MysqlProvider> {
    let options = MysqlOptions {
        sequence_interval: Duration::from_secs(3600),
        ..MysqlOptions::default()
    };
    let provider = db.provider(options).await;
    let mut conn = db.connection().await;
    for v in 1..=n {
        let mut tx = conn.begin().await.unwrap();
        provider
            .append_in(&mut tx, vec![event("u1", v)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    provider
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_pass_midway_loses_and_duplicates_nothing() {
    let Some(url) = support::url() else { return };
    kill_a_pass_midway(&url).await.unwrap();
}

/// `Err` when the pass ended before it could be killed midway.
async fn kill_a_pass_midway(url: &str) -> Result<(), String> {
    let db = support::TestDb::create(url).await;
    let provider = unsequenced(&db, 5).await;
    // Hold event 4, so that the pass stops there, having updated 1 to 3, until killed.
    let mut holder = db.connection().await;
    let mut hold = holder.begin().await.unwrap();
    // By its version, not its id: auto-increment ids may have gaps.
    let held: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT position FROM events WHERE aggregate_id = 'u1' AND version = 4 FOR UPDATE",
    )
    .fetch_optional(&mut *hold)
    .await
    .unwrap();
    assert_eq!(held, Some(None), "event 4 is held, and has no position yet");
    let mut passer = db.connection().await;
    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut passer)
        .await
        .unwrap();
    let pass = tokio::spawn(async move { passer.execute("CALL events_pass()").await.map(drop) });
    let mut admin = db.connection().await;
    let started = Instant::now();
    loop {
        let sql = "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'";
        let waiting: i64 = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        // InnoDB does not always list the wait (seen under load); a pass still running
        // after 2 s waits all the same, on the only lock held: event 4's.
        if waiting > 0 || started.elapsed() > Duration::from_secs(2) {
            break;
        }
        if pass.is_finished() {
            let outcome = pass.await.map(|done| done.map_err(|e| e.to_string()));
            return Err(format!(
                "the pass ended without waiting on event 4: {outcome:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .execute(format!("KILL CONNECTION {id}").as_str())
        .await
        .unwrap();
    assert!(pass.await.unwrap().is_err(), "the pass was killed");
    hold.commit().await.unwrap();

    assert_eq!(provider.sequence().await.unwrap(), 5);
    let stored = provider.events(&["users".into()], 0, 100).await.unwrap();
    let got: Vec<(u64, u64)> = stored
        .iter()
        .map(|e| (e.meta.position, e.meta.version))
        .collect();
    assert_eq!(got, [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_contention() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let (mut first, mut second) = (db.connection().await, db.connection().await);
    let mut one = first.begin().await.unwrap();
    let mut two = second.begin().await.unwrap();
    provider
        .append_in(&mut one, vec![event("a", 1)])
        .await
        .unwrap();
    provider
        .append_in(&mut two, vec![event("b", 1)])
        .await
        .unwrap();
    // Each then waits for the other's uncommitted event: the server rolls one back.
    let crossed = provider.append_in(&mut one, vec![event("b", 1)]);
    let late = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        provider.append_in(&mut two, vec![event("a", 1)]).await
    };
    let (left, right) = tokio::join!(crossed, late);
    let errors: Vec<Error> = [left, right].into_iter().filter_map(Result::err).collect();
    assert_eq!(errors.len(), 1, "one victim: {errors:?}");
    let error = &errors[0];
    assert!(matches!(error, Error::Contention { .. }), "{error}");
    assert!(
        error.is_retryable() && error.to_string().contains("Deadlock"),
        "{error}"
    );
}
