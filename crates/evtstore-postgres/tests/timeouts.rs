//! Nothing hangs: a server that accepts connections and never answers, and a server that stops
//! answering in the middle of a run (a local proxy that stops forwarding), both give an
//! `Unavailable` error naming the limit that passed, within a wide bound; the LISTEN
//! connection notices such a server by itself and connects again.

mod support;

use std::time::{Duration, Instant};

use evtstore_core::conformance::stalls::{self, Proxy, silent_server};
use evtstore_core::{Error, NewEvent, Provider, Result};
use evtstore_postgres::{PgOptions, PgProvider};

/// Far beyond every limit the tests set (1 or 2 s), far below a hang.
const BOUND: Duration = Duration::from_secs(8);

/// Runs `call`: it must fail as `Unavailable`, retryable, in less than `BOUND`.
async fn fails_in_time<T>(what: &str, call: impl Future<Output = Result<T>>) -> Error {
    stalls::fails_in_time(what, BOUND, call).await
}

/// A proxy to the server of `url`, and the URL through it.
async fn proxy(url: &str) -> (Proxy, String) {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let target = format!("127.0.0.1:{}", config.get_ports().first().unwrap_or(&5432));
    let (user, database) = (config.get_user().unwrap(), config.get_dbname().unwrap());
    let proxy = Proxy::start(&target).await;
    let url = format!("postgres://{user}@127.0.0.1:{}/{database}", proxy.port);
    (proxy, url)
}

#[tokio::test]
async fn connect_to_a_silent_server_fails_within_the_urls_connect_timeout() {
    let port = silent_server().await;
    let url = format!("postgres://root:s3cret@127.0.0.1:{port}/test?connect_timeout=1");
    let error = fails_in_time("connect", PgProvider::connect(&url)).await;
    let message = error.to_string();
    assert!(
        message.contains("connect_timeout"),
        "names the limit: {message}"
    );
    let server = format!("127.0.0.1:{port}/test");
    assert!(message.contains(&server), "names the server: {message}");
    assert!(!message.contains("s3cret"), "never the password: {message}");
}

#[tokio::test]
async fn connect_to_a_silent_server_fails_within_the_options_connect_timeout() {
    let port = silent_server().await;
    let url = format!("postgres://root@127.0.0.1:{port}/test");
    let options = PgOptions {
        connect_timeout: Duration::from_secs(1),
        ..PgOptions::default()
    };
    let error = fails_in_time("connect", PgProvider::connect_with(&url, options)).await;
    assert!(error.to_string().contains("connect_timeout"), "{error}");
}

/// Options out of range are refused before any connection, each naming itself (port 1 has
/// no server: without the check, the error would be a refused connection).
#[tokio::test]
async fn options_out_of_range_are_refused_before_connecting() {
    let zero = Duration::ZERO;
    let bad = [
        (
            "pool_size = 0",
            PgOptions {
                pool_size: 0,
                ..PgOptions::default()
            },
        ),
        (
            "connect_timeout = 0ns",
            PgOptions {
                connect_timeout: zero,
                ..PgOptions::default()
            },
        ),
        (
            "statement_timeout = 0ns",
            PgOptions {
                statement_timeout: zero,
                ..PgOptions::default()
            },
        ),
        (
            "poll_alone = 1s",
            PgOptions {
                poll_alone: Duration::from_secs(1),
                ..PgOptions::default()
            },
        ),
    ];
    for (named, options) in bad {
        let url = "postgres://root@127.0.0.1:1/test";
        stalls::assert_invalid_option(named, PgProvider::connect_with(url, options).await);
    }
}

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counters", id, version, r#"{"type":"Added","by":1}"#)
}

#[tokio::test]
async fn a_server_that_stops_answering_fails_appends_and_loads_in_time() {
    let Some(url) = support::url() else { return };
    let (proxy, proxy_url) = proxy(&url).await;
    let options = PgOptions {
        schema: support::unique_schema(),
        statement_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        pool_size: 2,
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&proxy_url, options).await.unwrap();
    provider.append(vec![event("a", 1)]).await.unwrap();
    assert_eq!(
        provider
            .aggregate_events("counters", "a", 0)
            .await
            .unwrap()
            .len(),
        1
    );

    proxy.stall();
    let error = fails_in_time("append", provider.append(vec![event("a", 2)])).await;
    stalls::assert_names(&error, &["statement_timeout", "counters/a"]);
    // The stalled connection is not reused: the next call connects afresh, and cannot.
    fails_in_time("load", provider.aggregate_events("counters", "a", 0)).await;
    fails_in_time("read a page", provider.events(&["counters".into()], 0, 10)).await;
}

#[tokio::test]
async fn the_listening_connection_is_made_again_when_the_server_stops_answering() {
    let Some(url) = support::url() else { return };
    let (proxy, proxy_url) = proxy(&url).await;
    let options = PgOptions {
        schema: support::unique_schema(),
        statement_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let _provider = PgProvider::connect_with(&proxy_url, options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // the LISTEN connection is made
    let before = proxy.accepted();
    proxy.stall();
    // Nothing is asked of the provider: only its listener, finding no answer, connects again.
    let started = Instant::now();
    while proxy.accepted() == before {
        assert!(
            started.elapsed() < BOUND,
            "the listener still waits on a silent server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("listener reconnected after {:?}", started.elapsed());
}
