//! Servers that stop answering, for providers' time-limit tests: a listener that never says a
//! word, and a TCP proxy that forwards until it is stalled, then holds every byte.
//!
//! ```no_run
//! # async fn run() {
//! use evtstore_core::conformance::stalls::Proxy;
//! let proxy = Proxy::start("127.0.0.1:5432").await;
//! // connect the provider to 127.0.0.1:{proxy.port}, use it, then:
//! proxy.stall();
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::{Error, ErrorKind, Result};

/// A listener on a free port of 127.0.0.1 that accepts connections, keeps them, and never
/// says a word; gives its port.
pub async fn silent_server() -> u16 {
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

/// Runs `call`, panicking if it succeeds or takes `bound` or more; it must fail as
/// `Unavailable` and retryable. Gives its error.
pub async fn fails_in_time<T>(
    what: &str,
    bound: Duration,
    call: impl Future<Output = Result<T>>,
) -> Error {
    let started = Instant::now();
    let outcome = tokio::time::timeout(bound * 4, call).await;
    let waited = started.elapsed();
    let error = match outcome {
        Ok(Err(error)) => error,
        Ok(Ok(_)) => panic!("{what}: succeeded against a server that does not answer"),
        Err(_) => panic!("{what}: still waiting after {waited:?}"),
    };
    eprintln!("{what}: failed after {waited:?}: {error}");
    assert!(
        waited < bound,
        "{what}: failed only after {waited:?}: {error}"
    );
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{what}: {error}");
    assert!(error.is_retryable(), "{what}: {error}");
    error
}

/// Panics unless the error's message names each of `parts` (the limit, the server, …).
pub fn assert_names(error: &Error, parts: &[&str]) {
    let message = error.to_string();
    for part in parts {
        assert!(message.contains(part), "does not name {part:?}: {message}");
    }
}

/// Panics unless `outcome` is an [`Error::InvalidName`] naming the option `named`
/// (`"pool_size = 0"`).
pub fn assert_invalid_option<T>(named: &str, outcome: Result<T>) {
    let error = outcome.err().unwrap_or_else(|| panic!("{named}: accepted"));
    assert!(
        matches!(error, Error::InvalidName { .. }),
        "{named}: {error}"
    );
    assert_names(&error, &[named]);
}

/// A TCP proxy on a free port of 127.0.0.1 to a server, forwarding until it is stalled.
pub struct Proxy {
    /// The port to connect to.
    pub port: u16,
    stalled: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stalled, accepted) = (Arc::new(AtomicBool::new(false)), Arc::default());
        let forwarding = forward(
            listener,
            target.to_owned(),
            stalled.clone(),
            Arc::clone(&accepted),
        );
        tokio::spawn(forwarding);
        Proxy {
            port,
            stalled,
            accepted,
        }
    }

    /// From now on, nothing more is forwarded either way; connections stay open.
    pub fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
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
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, stalled: Arc<AtomicBool>) {
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
