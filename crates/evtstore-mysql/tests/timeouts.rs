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

/// Runs `call` on a server that stopped answering: it fails in time, naming
/// `statement_timeout` (not a pool that ran out of connections) and `what`.
async fn times_out<T>(what: &str, call: impl Future<Output = Result<T>>) {
    let error = fails_in_time(what, call).await;
    stalls::assert_names(&error, &["statement_timeout", what]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_fails_every_call_in_time() {
    let Some(url) = support::url() else { return };
    let db = support::TestDb::create(&url).await;
    let direct = support::connect_options(&url, &db.name);
    let proxy = Proxy::start(&format!("{}:{}", direct.get_host(), direct.get_port())).await;
    let through = direct.clone().host("127.0.0.1").port(proxy.port);
    // Room in the pool for every call below: a connection whose call timed out in the pool
    // keeps its place while sqlx pings it (see the README's known limits).
    let options = MysqlOptions {
        pool_size: 32,
        sequence_interval: Duration::from_secs(60),
        ..limited()
    };
    let provider = MysqlProvider::connect_config(through, options).await;
    let provider = Arc::new(provider.unwrap());
    provider.append(vec![event("a", 1)]).await.unwrap();
    let handler = provider
        .tx_handler::<Tests>("model")
        .handle::<User, _>(|_, _, _| Box::pin(async { Ok(()) }))
        .build()
        .unwrap();
    assert_eq!(handler.run_once().await.unwrap(), 1);
    // Connections made before the stall, idle in the pool: each call below takes one and
    // sends its statement (a new connection could not be made, failing on connect_timeout).
    let opened = (0..20).map(|_| provider.pool().acquire());
    let opened = futures_util::future::try_join_all(opened).await.unwrap();
    drop(opened);
    while provider.pool().num_idle() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await; // back in the pool once pinged
    }

    proxy.stall();
    let error = fails_in_time("append", provider.append(vec![event("a", 2)])).await;
    let server = format!(":{}/", proxy.port);
    stalls::assert_names(&error, &["statement_timeout", "append to users/a", &server]);
    // The stalled connection was closed, not kept: the next append takes another.
    times_out("append to users/b", provider.append(vec![event("b", 1)])).await;
    times_out("load users/a", provider.aggregate_events("users", "a", 0)).await;
    times_out("read events", provider.events(&["users".into()], 0, 10)).await;
    times_out("save bookmark", provider.set_bookmark("b", 1)).await;
    times_out("acquire lease", provider.acquire_lease("l", "me", BOUND)).await;
    times_out("sequencer pass", provider.sequence()).await;
    times_out("begin a handler's page", handler.run_once()).await;
}
