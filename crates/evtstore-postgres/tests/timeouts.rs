//! Nothing hangs: a server that accepts connections and never answers, and a server that stops
//! answering in the middle of a run (a local proxy that stops forwarding), both give an
//! `Unavailable` error naming the limit that passed, within a wide bound; the LISTEN
//! connection notices such a server by itself and connects again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evtstore_core::{Error, ErrorKind, NewEvent, Provider, Result};
use evtstore_postgres::{PgOptions, PgProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Far beyond every limit the tests set (1 or 2 s), far below a hang.
const BOUND: Duration = Duration::from_secs(8);

/// A listener on a free port that accepts connections, keeps them, and never says a word.
async fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            kept.push(socket);
        }
    });
    port
}

/// Runs `call`, failing the test if it takes `BOUND` or more; gives its error.
async fn fails_in_time<T>(what: &str, call: impl Future<Output = Result<T>>) -> Error {
    let started = Instant::now();
    let outcome = tokio::time::timeout(BOUND * 4, call).await;
    let waited = started.elapsed();
    let error = match outcome {
        Ok(Err(error)) => error,
        Ok(Ok(_)) => panic!("{what}: succeeded against a server that does not answer"),
        Err(_) => panic!("{what}: still waiting after {waited:?}"),
    };
    eprintln!("{what}: failed after {waited:?}: {error}");
    assert!(
        waited < BOUND,
        "{what}: failed only after {waited:?}: {error}"
    );
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{what}: {error}");
    assert!(error.is_retryable(), "{what}: {error}");
    error
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

/// A TCP proxy to the test server that forwards until it is stalled, then holds every byte.
struct Proxy {
    /// The server's URL through the proxy.
    url: String,
    stalled: Arc<AtomicBool>,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to the server of `url`.
    async fn start(url: &str) -> Proxy {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let target = format!("127.0.0.1:{}", config.get_ports().first().unwrap_or(&5432));
        let (user, database) = (config.get_user().unwrap(), config.get_dbname().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stalled, accepted) = (Arc::new(AtomicBool::new(false)), Arc::default());
        tokio::spawn(forward(
            listener,
            target,
            stalled.clone(),
            Arc::clone(&accepted),
        ));
        let url = format!("postgres://{user}@127.0.0.1:{port}/{database}");
        Proxy {
            url,
            stalled,
            accepted,
        }
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

/// Accepts connections and pumps each to `target` and back.
async fn forward(
    listener: TcpListener,
    target: String,
    stalled: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
) {
    while let Ok((client, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(&target).await else {
            continue;
        };
        let (client_in, client_out) = client.into_split();
        let (server_in, server_out) = server.into_split();
        tokio::spawn(pump(client_in, server_out, stalled.clone()));
        tokio::spawn(pump(server_in, client_out, stalled.clone()));
    }
}

/// Copies bytes one way; once stalled, keeps the connection open and forwards nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        if stalled.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("counters", id, version, r#"{"type":"Added","by":1}"#)
}

#[tokio::test]
async fn a_server_that_stops_answering_fails_appends_and_loads_in_time() {
    let Some(url) = support::url() else { return };
    let proxy = Proxy::start(&url).await;
    let options = PgOptions {
        schema: support::unique_schema(),
        statement_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        pool_size: 2,
        ..PgOptions::default()
    };
    let provider = PgProvider::connect_with(&proxy.url, options).await.unwrap();
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
    let message = error.to_string();
    assert!(
        message.contains("statement_timeout"),
        "names the limit: {message}"
    );
    assert!(
        message.contains("counters/a"),
        "names the aggregate: {message}"
    );
    // The stalled connection is not reused: the next call connects afresh, and cannot.
    fails_in_time("load", provider.aggregate_events("counters", "a", 0)).await;
    fails_in_time("read a page", provider.events(&["counters".into()], 0, 10)).await;
}

#[tokio::test]
async fn the_listening_connection_is_made_again_when_the_server_stops_answering() {
    let Some(url) = support::url() else { return };
    let proxy = Proxy::start(&url).await;
    let options = PgOptions {
        schema: support::unique_schema(),
        statement_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let _provider = PgProvider::connect_with(&proxy.url, options).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // the LISTEN connection is made
    let before = proxy.accepted.load(Ordering::SeqCst);
    proxy.stall();
    // Nothing is asked of the provider: only its listener, finding no answer, connects again.
    let started = Instant::now();
    while proxy.accepted.load(Ordering::SeqCst) == before {
        assert!(
            started.elapsed() < BOUND,
            "the listener still waits on a silent server"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("listener reconnected after {:?}", started.elapsed());
}
