//! Connections that a caller polling for its answer polls itself.
//!
//! On Tokio's multi-threaded runtime a request and its answer each go through another
//! thread: the client wakes the connection's task, which a worker (woken for it, and waking
//! another to look for work) runs to write the request; the answer wakes the worker asleep in
//! the I/O driver, which runs the task again, which wakes the caller. A caller polling for its
//! answer alone (core's `Waiting`) instead drives the pool's connections ([`Drivers`]): it
//! polls them on its own thread, their sockets read what has arrived without waiting for the
//! I/O driver to have seen it ([`DirectRead`]), and their wakes during its rounds of polling are
//! left to it ([`Driven::wake`]). Each connection keeps its task, which polls it whenever no
//! caller does.
//!
//! Only a connection to a single TCP host is made here. Any other (a Unix socket, several
//! hosts, `hostaddr`, `target_session_attrs`, `load_balance_hosts`), and one whose TCP
//! connection or TLS set-up cannot start, is made by tokio-postgres itself, with its own
//! errors, and only its task polls it. (The client of a connection made here cannot cancel a
//! running query: tokio-postgres knows no address for it. Nothing here cancels one.)

use std::future::{Future, poll_fn};
use std::io::{self, Read};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};

use deadpool_postgres::{ConfigConnectImpl, Connect};
use evtstore_core::provider::Drive;
use futures_util::future::BoxFuture;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The pool's way to connect: driven connections where it can, deadpool's own otherwise.
pub(crate) struct DrivenConnect {
    pub(crate) tls: MakeRustlsConnect,
    pub(crate) drivers: Drivers,
}

impl Connect for DrivenConnect {
    fn connect(&self, config: &Config) -> BoxFuture<'_, Result<(Client, JoinHandle<()>), Error>> {
        let config = config.clone();
        Box::pin(async move {
            if let Some(driven) = self.driven(&config).await {
                return driven;
            }
            let tls = self.tls.clone();
            ConfigConnectImpl { tls }.connect(&config).await
        })
    }
}

type Error = tokio_postgres::Error;

impl DrivenConnect {
    /// A driven connection, or its error; none when the settings name anything but one TCP
    /// host, or when the TCP connection or TLS set-up could not start (tokio-postgres then
    /// tries itself, through deadpool's own `ConfigConnectImpl`, and gives its own error).
    async fn driven(&self, config: &Config) -> Option<Result<(Client, JoinHandle<()>), Error>> {
        let host = single_tcp_host(config)?;
        let tcp = connect_tcp(config, host).await.ok()?;
        let stream = DirectRead {
            tcp,
            awaiting: false,
            answered: false,
        };
        let mut tls = self.tls.clone();
        let tls = MakeTlsConnect::<DirectRead>::make_tls_connect(&mut tls, host).ok()?;
        Some(
            config
                .connect_raw(stream, tls)
                .await
                .map(|(client, connection)| {
                    let driven = self.drivers.add(Box::pin(connection));
                    (client, tokio::spawn(run(driven)))
                }),
        )
    }
}

/// The host of settings that name one TCP host and nothing a raw connection would ignore.
fn single_tcp_host(config: &Config) -> Option<&str> {
    let plain = config.get_hostaddrs().is_empty()
        && config.get_ports().len() <= 1
        && config.get_target_session_attrs() == TargetSessionAttrs::Any
        && config.get_load_balance_hosts() == LoadBalanceHosts::Disable;
    match config.get_hosts() {
        [Host::Tcp(host)] if plain => Some(host),
        _ => None,
    }
}

/// Connects as the driver does: within `connect_timeout`, no delay, keepalives and
/// `tcp_user_timeout` as configured.
async fn connect_tcp(config: &Config, host: &str) -> io::Result<TcpStream> {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let connect = TcpStream::connect((host, port));
    let tcp = match config.get_connect_timeout() {
        Some(limit) => tokio::time::timeout(*limit, connect).await??,
        None => connect.await?,
    };
    tcp.set_nodelay(true)?;
    let socket = SockRef::from(&tcp);
    #[cfg(target_os = "linux")]
    if let Some(limit) = config.get_tcp_user_timeout() {
        socket.set_tcp_user_timeout(Some(*limit))?;
    }
    if config.get_keepalives() {
        let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
        if let Some(interval) = config.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = config.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
        socket.set_tcp_keepalive(&keepalive)?;
    }
    Ok(tcp)
}

/// A TCP stream whose reads first ask the socket itself. Tokio's own read returns at once
/// when the driver last found the socket empty, until the driver sees it readable again:
/// which a driver asleep on another thread learns only once that thread wakes.
struct DirectRead {
    tcp: TcpStream,
    /// Set when a request is written, cleared once its answer has come, or once a read after
    /// some of it found nothing more: whether reads ask the socket itself. Only a hint: a read
    /// that does not goes through Tokio's.
    awaiting: bool,
    /// Whether something was read since the last request.
    answered: bool,
}

/// Most bytes one raw read takes: what it reads into is zeroed first.
const READ_AT_MOST: usize = 64 * 1024;

/// Whether bytes read end with the server's ReadyForQuery message, the end of an answer
/// (`Z`, length 5, then the transaction's status: idle, in a transaction, or failed).
fn ends_an_answer(read: &[u8]) -> bool {
    matches!(read, [.., b'Z', 0, 0, 0, 5, b'I' | b'T' | b'E'])
}

impl AsyncRead for DirectRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.awaiting {
            return Pin::new(&mut self.tcp).poll_read(cx, buf); // no answer awaited
        }
        let start = buf.filled().len();
        let room = buf.remaining().min(READ_AT_MOST);
        match (&*SockRef::from(&self.tcp)).read(buf.initialize_unfilled_to(room)) {
            Ok(read) => {
                buf.advance(read);
                self.answered = true;
                self.awaiting = !ends_an_answer(&buf.filled()[start..]);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::mem::take(&mut self.answered) {
                    self.awaiting = false; // all that came is read (under TLS, no `Z` shows)
                }
                Pin::new(&mut self.tcp).poll_read(cx, buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                Pin::new(&mut self.tcp).poll_read(cx, buf)
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for DirectRead {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            (self.awaiting, self.answered) = (true, false);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

type Connection = Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>;

/// A connection that its task and driving callers both poll, one at a time.
struct Driven {
    /// None once it has ended.
    connection: Mutex<Option<Connection>>,
    /// The connection's task's waker.
    task: Mutex<Option<Waker>>,
    /// What the connection is polled with, whoever polls it ([`Forward`]).
    waker: Waker,
    /// Callers in a round of driving the pool's connections (see core's `Drive`): meanwhile
    /// the connection's wakes (a request queued, an answer arrived) are left to them.
    driving: Arc<AtomicUsize>,
    /// A wake left to driving callers: the last to end its round wakes the task.
    deferred: AtomicBool,
    /// Set by the task when a caller was polling the connection: that caller wakes it after.
    missed: AtomicBool,
}

impl Driven {
    fn new(connection: Connection, driving: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new_cyclic(|driven| Driven {
            connection: Mutex::new(Some(connection)),
            task: Mutex::new(None),
            waker: Waker::from(Arc::new(Forward(driven.clone()))),
            driving,
            deferred: AtomicBool::new(false),
            missed: AtomicBool::new(false),
        })
    }

    /// Polls the connection; ready once it has ended. A panic in tokio-postgres ends it too,
    /// on whichever thread polled it, as it would have ended its task alone.
    fn poll(&self, connection: &mut Option<Connection>) -> Poll<()> {
        let Some(running) = connection.as_mut() else {
            return Poll::Ready(());
        };
        let mut cx = Context::from_waker(&self.waker);
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => {}
            Ok(Poll::Ready(Err(error))) => tracing::debug!(%error, "PostgreSQL connection ended"),
            Err(panic) => {
                let text = panic.downcast_ref::<&str>().copied();
                let text = text.or(panic.downcast_ref::<String>().map(String::as_str));
                tracing::warn!(
                    panic = text,
                    "PostgreSQL connection ended: tokio-postgres panicked"
                );
            }
        }
        *connection = None;
        Poll::Ready(())
    }

    /// Polls the connection from a driving caller's thread, unless its task is polling it;
    /// true if it did.
    fn drive(&self) -> bool {
        let Ok(mut connection) = self.connection.try_lock() else {
            return false;
        };
        let running = connection.is_some();
        self.deferred.store(false, Ordering::SeqCst); // this poll sees what it was for
        let ended = running && self.poll(&mut connection).is_ready();
        drop(connection);
        // Released: a task that found it taken meanwhile set `missed`, and is woken now.
        fence(Ordering::SeqCst);
        if ended || self.missed.swap(false, Ordering::SeqCst) {
            self.wake_task(); // the task ends too, or polls what it was woken for
        }
        running
    }

    /// The task's poll. It never waits for a caller polling the connection: it leaves that
    /// caller to wake it again once done.
    fn poll_task(&self, waker: &Waker) -> Poll<()> {
        let mut task = lock(&self.task);
        if !task.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *task = Some(waker.clone());
        }
        drop(task);
        if let Ok(mut connection) = self.connection.try_lock() {
            return self.poll(&mut connection);
        }
        self.missed.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        match self.connection.try_lock() {
            Ok(mut connection) => {
                self.missed.store(false, Ordering::SeqCst);
                self.poll(&mut connection)
            }
            Err(_) => Poll::Pending, // the caller holding it wakes the task once done
        }
    }

    /// A wake of the connection: left to driving callers while there are any.
    fn wake(&self) {
        if self.driving.load(Ordering::SeqCst) > 0 {
            self.deferred.store(true, Ordering::SeqCst);
            if self.driving.load(Ordering::SeqCst) > 0 {
                return; // the last to end its round wakes the task
            }
            if !self.deferred.swap(false, Ordering::SeqCst) {
                return; // it has
            }
        }
        self.wake_task();
    }

    fn wake_task(&self) {
        if let Some(task) = lock(&self.task).clone() {
            task.wake();
        }
    }
}

/// The waker a connection is polled with.
struct Forward(Weak<Driven>);

impl Wake for Forward {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(driven) = self.0.upgrade() {
            driven.wake();
        }
    }
}

/// The connection's task.
async fn run(driven: Arc<Driven>) {
    poll_fn(|cx| driven.poll_task(cx.waker())).await
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool's driven connections.
#[derive(Clone, Default)]
pub(crate) struct Drivers {
    all: Arc<Mutex<Vec<Weak<Driven>>>>,
    driving: Arc<AtomicUsize>,
}

impl Drivers {
    fn add(&self, connection: Connection) -> Arc<Driven> {
        let driven = Driven::new(connection, self.driving.clone());
        let mut all = lock(&self.all);
        all.retain(|d| d.strong_count() > 0);
        all.push(Arc::downgrade(&driven));
        driven
    }

    /// Runs `what` on each connection still open. (A connection being made meanwhile waits
    /// for the list: taking the list first instead cost an allocation a round.)
    fn each(&self, mut what: impl FnMut(&Driven)) {
        let all = lock(&self.all);
        all.iter().filter_map(Weak::upgrade).for_each(|d| what(&d));
    }
}

impl Drive for Drivers {
    fn start(&self) {
        self.driving.fetch_add(1, Ordering::SeqCst);
    }

    /// Polls every connection that its task is not polling now.
    fn drive(&self) -> bool {
        let mut polled = false;
        self.each(|driven| polled |= driven.drive());
        polled
    }

    /// The last caller to end its round wakes the tasks of the connections whose wakes were
    /// left to it.
    fn stop(&self) {
        if self.driving.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.each(|driven| {
                if driven.deferred.swap(false, Ordering::SeqCst) {
                    driven.wake_task();
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::PgOptions;
    use crate::connect::{Target, parse_url};

    /// The pool's way to connect to the server of `EVTSTORE_PG_URL`, with its settings.
    fn connect_to_test_server() -> Option<(DrivenConnect, Config)> {
        let Ok(url) = std::env::var("EVTSTORE_PG_URL") else {
            eprintln!("skipped: EVTSTORE_PG_URL is not set");
            return None;
        };
        let (config, tls) = parse_url(&url).unwrap();
        let target = Target::new(config, tls, &PgOptions::default()).unwrap();
        let connect = DrivenConnect {
            tls: target.tls,
            drivers: Drivers::default(),
        };
        Some((connect, target.config))
    }

    fn driven_count(drivers: &Drivers) -> usize {
        lock(&drivers.all)
            .iter()
            .filter(|d| d.strong_count() > 0)
            .count()
    }

    #[test]
    fn an_answer_ends_with_ready_for_query() {
        assert!(ends_an_answer(b"C\0\0\0\x0dINSERT 0 1\0Z\0\0\0\x05I"));
        assert!(ends_an_answer(b"Z\0\0\0\x05T"));
        assert!(!ends_an_answer(b"D\0\0\0\x0b\0\x01\0\0\0\x01Z"));
        assert!(!ends_an_answer(b""));
    }

    #[test]
    fn only_settings_naming_one_tcp_host_are_driven() {
        let host = |s: &str| single_tcp_host(&s.parse().unwrap()).map(str::to_owned);
        assert_eq!(host("host=db port=6432"), Some("db".into()));
        assert_eq!(host("host=db,db2"), None);
        assert_eq!(host("host=/var/run/postgresql"), None);
        assert_eq!(host("host=db hostaddr=127.0.0.1"), None);
        assert_eq!(host("host=db target_session_attrs=read-write"), None);
    }

    /// The answer comes though the connection's task never runs: the runtime has one thread,
    /// and the test never yields it while it waits.
    #[tokio::test]
    async fn a_polling_caller_moves_its_connection_on_by_itself() {
        let Some((connect, config)) = connect_to_test_server() else {
            return;
        };
        let (client, _task) = connect.connect(&config).await.unwrap();
        assert_eq!(
            driven_count(&connect.drivers),
            1,
            "the connection is driven"
        );
        tokio::task::yield_now().await; // the task's first poll
        let mut query = std::pin::pin!(client.query_one("SELECT 41 + 1", &[]));
        let mut cx = Context::from_waker(Waker::noop());
        let until = Instant::now() + Duration::from_secs(10);
        let row = loop {
            if let Poll::Ready(row) = query.as_mut().poll(&mut cx) {
                break row.unwrap();
            }
            assert!(Instant::now() < until, "no answer without the task");
            connect.drivers.start();
            connect.drivers.drive();
            connect.drivers.stop();
        };
        assert_eq!(row.get::<_, i32>(0), 42);
    }

    /// A connection that keeps the waker of its last poll, and its task's waker, which
    /// counts its wakes.
    struct Fake {
        drivers: Drivers,
        _driven: Arc<Driven>,
        polled_with: Arc<Mutex<Option<Waker>>>,
        task: Arc<Counting>,
    }

    fn fake_connection() -> Fake {
        let polled_with = Arc::new(Mutex::new(None::<Waker>));
        let keep = polled_with.clone();
        let connection = Box::pin(poll_fn(move |cx| {
            *lock(&keep) = Some(cx.waker().clone());
            Poll::<Result<(), Error>>::Pending
        }));
        let drivers = Drivers::default();
        let driven = drivers.add(connection);
        let task = Arc::new(Counting::default());
        let _ = driven.poll_task(&Waker::from(task.clone()));
        Fake {
            drivers,
            _driven: driven,
            polled_with,
            task,
        }
    }

    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_connections_wakes_are_left_to_driving_callers_until_the_last_stops() {
        let Fake {
            drivers,
            _driven: _kept,
            polled_with,
            task,
        } = fake_connection();
        let wake = || lock(&polled_with).clone().unwrap().wake();
        let wakes = || task.0.load(Ordering::SeqCst);
        wake();
        assert_eq!(wakes(), 1, "no caller drives: the task is woken");
        drivers.start();
        drivers.start();
        wake();
        drivers.stop();
        assert_eq!(wakes(), 1, "a caller still drives the connection");
        drivers.stop();
        assert_eq!(wakes(), 2, "the last caller to stop wakes the task");
        drivers.start();
        wake();
        drivers.drive();
        drivers.stop();
        assert_eq!(
            wakes(),
            2,
            "the caller's own poll saw what the wake was for"
        );
    }

    #[test]
    fn a_connection_whose_driver_panics_ends_without_failing_the_caller_driving_it() {
        let drivers = Drivers::default();
        let panics = poll_fn(|_| -> Poll<Result<(), Error>> { panic!("a driver bug") });
        let driven = drivers.add(Box::pin(panics));
        drivers.start();
        drivers.drive();
        drivers.stop();
        assert!(lock(&driven.connection).is_none(), "the connection ended");
        let task = Waker::from(Arc::new(Counting::default()));
        assert!(driven.poll_task(&task).is_ready(), "its task ends");
    }

    #[tokio::test]
    async fn other_settings_connect_through_the_driver_alone() {
        let Some((connect, mut config)) = connect_to_test_server() else {
            return;
        };
        config.hostaddr("127.0.0.1".parse().unwrap());
        let (client, _task) = connect.connect(&config).await.unwrap();
        assert_eq!(driven_count(&connect.drivers), 0);
        let row = client.query_one("SELECT 41 + 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
    }

    #[tokio::test]
    async fn a_connection_whose_task_ended_is_no_longer_driven() {
        let Some((connect, config)) = connect_to_test_server() else {
            return;
        };
        let (client, task) = connect.connect(&config).await.unwrap();
        task.abort();
        let _ = task.await;
        drop(client);
        assert_eq!(driven_count(&connect.drivers), 0);
        connect.drivers.drive();
    }
}
