//! Nothing hangs: a server that accepts connections and never answers, and a server that stops
//! answering in the middle of a run (a local proxy that stops forwarding), both give an
//! `Unavailable` error naming the limit that passed, within a wide bound.

mod support;

use std::sync::Arc;
use std::time::Duration;

use evtstore_core::conformance::domain::{Tests, User};
use evtstore_core::conformance::stalls::{self, Proxy, silent_server};
use evtstore_core::{Error, NewEvent, Provider, Result};
use evtstore_mysql::{MysqlOptions, MysqlProvider};

/// Far beyond every limit the tests set (1 or 2 s), far below a hang.
const BOUND: Duration = Duration::from_secs(8);

/// Runs `call`: it must fail as `Unavailable`, retryable, in less than `BOUND`.
async fn fails_in_time<T>(what: &str, call: impl Future<Output = Result<T>>) -> Error {
    stalls::fails_in_time(what, BOUND, call).await
}

fn limited() -> MysqlOptions {
    MysqlOptions {
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(2),
        pool_size: 4,
        ..MysqlOptions::default()
    }
}

#[tokio::test]
async fn connect_to_a_silent_server_fails_within_connect_timeout() {
    let port = silent_server().await;
    let url = format!("mysql://root:s3cret@127.0.0.1:{port}/test");
    let error = fails_in_time("connect", MysqlProvider::connect_with(&url, limited())).await;
    let server = format!("127.0.0.1:{port}/test");
    stalls::assert_names(&error, &["connect_timeout", &server]);
    let message = error.to_string();
    assert!(!message.contains("s3cret"), "never the password: {message}");
}

/// Options out of range are refused before any connection, each naming itself (port 1 has
/// no server: without the check, the error would be a refused connection).
#[tokio::test]
async fn options_out_of_range_are_refused_before_connecting() {
    let zero = Duration::ZERO;
    let bad = [
        (
            "pool_size = 0",
            MysqlOptions {
                pool_size: 0,
                ..limited()
            },
        ),
        (
            "sequence_interval = 0ns",
            MysqlOptions {
                sequence_interval: zero,
                ..limited()
            },
        ),
        (
            "connect_timeout = 0ns",
            MysqlOptions {
                connect_timeout: zero,
                ..limited()
            },
        ),
        (
            "statement_timeout = 0ns",
            MysqlOptions {
                statement_timeout: zero,
                ..limited()
            },
        ),
        (
            "poll_alone = 1s",
            MysqlOptions {
                poll_alone: Duration::from_secs(1),
                ..limited()
            },
        ),
    ];
    for (named, options) in bad {
        let url = "mysql://root@127.0.0.1:1/test";
        stalls::assert_invalid_option(named, MysqlProvider::connect_with(url, options).await);
    }
}

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("users", id, version, r#"{"type":"created","name":"ada"}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_fails_every_call_in_time() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let direct = support::connect_options(&url, &db.name);
    let proxy = Proxy::start(&format!("{}:{}", direct.get_host(), direct.get_port())).await;
    let through = direct.clone().host("127.0.0.1").port(proxy.port);
    let provider = MysqlProvider::connect_config(through, limited()).await;
    let provider = Arc::new(provider.unwrap());
    provider.append(vec![event("a", 1)]).await.unwrap();
    let handler = provider
        .tx_handler::<Tests>("model")
        .handle::<User, _>(|_, _, _| Box::pin(async { Ok(()) }))
        .build()
        .unwrap();
    assert_eq!(handler.run_once().await.unwrap(), 1);

    proxy.stall();
    let error = fails_in_time("append", provider.append(vec![event("a", 2)])).await;
    let server = format!(":{}/", proxy.port);
    stalls::assert_names(&error, &["statement_timeout", "users/a", &server]);
    fails_in_time("load", provider.aggregate_events("users", "a", 0)).await;
    fails_in_time("read a page", provider.events(&["users".into()], 0, 10)).await;
    fails_in_time("save a bookmark", provider.set_bookmark("b", 1)).await;
    fails_in_time("sequencer pass", provider.sequence()).await;
    fails_in_time("transactional handler", handler.run_once()).await;
}
