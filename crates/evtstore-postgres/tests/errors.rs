//! Errors a caller can act on: an unknown role and an unknown database are told apart and
//! named, a server that refuses connections is unavailable, a bad URL parameter is named, a refused append names its aggregate, a deadlock is a
//! retryable conflict, and a read whose pooled connection the server killed is retried on a
//! fresh one instead of failing.

mod counters;
mod support;

use std::time::Duration;

use evtstore_core::{ErrorKind, NewEvent, Provider};
use evtstore_postgres::{PgOptions, PgProvider};

/// The server's URL for another user and database.
fn url_for(url: &str, user: &str, database: &str) -> String {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{user}@127.0.0.1:{port}/{database}")
}

#[tokio::test]
async fn an_unknown_role_and_an_unknown_database_are_named() {
    let Some(url) = support::url() else { return };
    let config: tokio_postgres::Config = url.parse().unwrap();
    let user = config.get_user().unwrap();
    let role = PgProvider::connect(&url_for(&url, "evt_no_such_role", "test")).await;
    let database = PgProvider::connect(&url_for(&url, user, "evt_no_such_db")).await;
    let (role, database) = (role.err().unwrap(), database.err().unwrap());
    let (role_says, database_says) = (role.to_string(), database.to_string());
    eprintln!("{role_says}\n{database_says}");
    assert!(
        role_says.contains(r#"role "evt_no_such_role" does not exist"#),
        "{role_says}"
    );
    assert!(
        database_says.contains(r#"database "evt_no_such_db" does not exist"#),
        "{database_says}"
    );
    for error in [role, database] {
        assert_eq!(error.kind(), ErrorKind::Backend, "no retry helps: {error}");
    }
}

#[tokio::test]
async fn a_server_that_refuses_connections_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let url = format!("postgres://root@127.0.0.1:{port}/test");
    let refused = PgProvider::connect(&url).await;
    let error = refused.err().expect("nothing to connect to");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}/test")),
        "{message}"
    );
    assert!(message.contains("refused"), "says why: {message}");
}

#[tokio::test]
async fn a_bad_url_parameter_is_named() {
    let cases = [
        ("connect_timout=1", "connect_timout"),
        ("connect_timeout=soon", "connect_timeout"),
        ("sslmode=verify-everything", "sslmode"),
    ];
    for (parameter, named) in cases {
        let url = format!("postgres://root:s3cret@127.0.0.1:1/test?{parameter}");
        let refused = PgProvider::connect(&url).await;
        let message = refused.err().expect("a bad URL is refused").to_string();
        assert!(message.contains(named), "{parameter}: {message}");
        assert!(!message.contains("s3cret"), "never the password: {message}");
    }
}

fn event(id: &str, version: u64, data: &str) -> NewEvent {
    NewEvent::new("counters", id, version, data)
}

const ADDED: &str = r#"{"type":"Added","by":1}"#;

#[tokio::test]
async fn a_refused_append_names_its_aggregate_and_the_servers_reason() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let options = PgOptions {
        schema: schema.clone(),
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&url, options).await.unwrap();
    // A rule of the user's own that the server enforces (bad bodies never reach the server).
    let rule = format!(
        "ALTER TABLE \"{schema}\".events ADD CONSTRAINT not_odd CHECK (aggregate_id <> 'odd')"
    );
    provider
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&rule)
        .await
        .unwrap();
    let refused = provider.append(vec![event("odd", 1, ADDED)]).await;
    let message = refused.expect_err("the server refuses the row").to_string();
    assert!(message.contains("append to counters/odd"), "{message}");
    assert!(message.contains("violates check constraint"), "{message}");
}

#[tokio::test]
async fn a_deadlock_between_two_transactions_is_a_retryable_conflict() {
    let Some(url) = support::url() else { return };
    let provider = support::fresh(&url).await;
    let (mut one, mut two) = (
        provider.pool().get().await.unwrap(),
        provider.pool().get().await.unwrap(),
    );
    let (one, two) = (
        one.transaction().await.unwrap(),
        two.transaction().await.unwrap(),
    );
    provider
        .append_in(&one, vec![event("a", 1, ADDED)])
        .await
        .unwrap();
    provider
        .append_in(&two, vec![event("b", 1, ADDED)])
        .await
        .unwrap();
    // Each now waits for the other's first event: the server breaks the cycle.
    let (crossed_one, crossed_two) = tokio::join!(
        provider.append_in(&one, vec![event("b", 1, ADDED)]),
        provider.append_in(&two, vec![event("a", 1, ADDED)]),
    );
    let (failed, passed) = match (crossed_one, crossed_two) {
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => (error, true),
        (Err(error), Err(_)) => (error, false),
        (Ok(_), Ok(_)) => panic!("both crossed appends succeeded"),
    };
    eprintln!("{failed}");
    assert!(passed, "the other transaction goes on");
    assert_eq!(failed.kind(), ErrorKind::Conflict, "{failed}");
    assert!(failed.is_retryable());
    assert!(failed.to_string().contains("deadlock detected"), "{failed}");
}

/// Terminates every backend of `application_name` and waits until they are gone, blocking
/// this thread: the test's runtime (one thread) gets no chance to notice, so the pool still
/// holds the dead connection as if it were alive.
fn kill_unnoticed(url: &str, application_name: &str) {
    let (url, name) = (url.to_owned(), application_name.to_owned());
    let killer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let admin = counters::admin(&url).await;
            assert!(
                counters::terminate(&admin, &name).await >= 1,
                "a backend was killed"
            );
            let left = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1";
            while admin
                .query_one(left, &[&name])
                .await
                .unwrap()
                .get::<_, i64>(0)
                > 0
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    });
    killer.join().unwrap();
}

#[tokio::test]
async fn reads_on_a_connection_the_server_killed_are_retried_on_a_fresh_one() {
    let Some(url) = support::url() else { return };
    let schema = support::unique_schema();
    let name = format!("evt_kill_{schema}");
    let options = PgOptions {
        schema,
        pool_size: 1,
        ..PgOptions::default()
    };
    let named = counters::with_application_name(&url, &name);
    let provider = PgProvider::connect_with(&named, options).await.unwrap();
    provider.append(vec![event("a", 1, ADDED)]).await.unwrap();
    let streams = ["counters".to_owned()];

    kill_unnoticed(&url, &name);
    let events = provider.aggregate_events("counters", "a", 0).await;
    assert_eq!(events.expect("aggregate read retried").len(), 1);
    kill_unnoticed(&url, &name);
    let page = provider.events(&streams, 0, 10).await;
    assert_eq!(page.expect("page read retried").len(), 1);
    kill_unnoticed(&url, &name);
    let last = provider.last_event(&streams, None).await;
    assert!(last.expect("last event read retried").is_some());
    kill_unnoticed(&url, &name);
    let bookmark = provider.bookmark("never-set").await;
    assert_eq!(bookmark.expect("bookmark read retried"), None);
}

/// An append of two commands whose second id is recorded already names that id.
#[tokio::test]
async fn a_duplicate_command_id_is_named() {
    let Some(url) = support::url() else { return };
    let provider = support::fresh(&url).await;
    let (first, second) = (evtstore_core::Uuid::now_v7(), evtstore_core::Uuid::now_v7());
    let with_id = |id: &str, command: evtstore_core::Uuid| {
        let mut e = event(id, 1, ADDED);
        e.command_id = Some(command);
        e
    };
    provider.append(vec![with_id("c1", second)]).await.unwrap();
    let refused = provider
        .append(vec![with_id("c2", first), with_id("c3", second)])
        .await;
    match refused {
        Err(evtstore_core::Error::DuplicateCommand { command_id }) => {
            assert_eq!(command_id, second, "the id recorded already")
        }
        other => panic!("expected DuplicateCommand, got {other:?}"),
    }
    let c2 = provider
        .aggregate_events("counters", "c2", 0)
        .await
        .unwrap();
    assert!(c2.is_empty(), "nothing of the append was written");
}
