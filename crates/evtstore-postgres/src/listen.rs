//! Push delivery. After each append commits, the provider wakes this process's handlers and
//! sends a NOTIFY (one at a time, bursts coalesced) for other processes; a connection LISTENs
//! for those and reconnects by itself. Handlers also poll, so a lost notification only delays
//! them.
//!
//! The NOTIFY is sent after the commit, not from a trigger inside the appending transaction:
//! PostgreSQL serialises the commits of notifying transactions, which would undo group commit
//! for concurrent appends.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::Position;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_postgres::{AsyncMessage, Connection};

use crate::connect::Target;
use crate::failure::Limits;

/// Least time between two notifications from this process.
const NOTIFY_PAUSE: Duration = Duration::from_millis(5);

/// Shortest and longest wait between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// After this much silence (or `statement_timeout`, if shorter), the listening connection
/// asks the server for an answer within `statement_timeout`: a server that stopped answering
/// is noticed, and the connection made again.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Listens on `channel` and wakes `appended`, reconnecting, until the provider drops the task.
pub(crate) async fn listen(
    target: Target,
    channel: String,
    appended: Arc<watch::Sender<Position>>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Err(error) = listen_once(&target, &channel, &appended, &mut backoff).await {
            tracing::warn!(%error, server = %target.server, "postgres notification connection failed; reconnecting");
        }
        // Events may have been appended while no one listened: wake the handlers.
        appended.send_modify(|n| *n += 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: LISTEN, then forward notifications until it breaks or stops answering.
/// Once listening, the next reconnection starts again from the shortest wait.
async fn listen_once(
    target: &Target,
    channel: &str,
    appended: &watch::Sender<Position>,
    backoff: &mut Duration,
) -> Result<(), String> {
    let Limits { connect, statement } = target.limits;
    let connecting = timeout(connect, target.config.connect(target.tls.clone()));
    let (client, connection) = connecting
        .await
        .map_err(|_| target.limits.connect_timed_out().to_string())?
        .map_err(|e| e.to_string())?;
    let (driver, mut received) = drive(connection);
    let outcome = async {
        let listen = format!("LISTEN \"{channel}\"");
        let listening = timeout(statement, client.batch_execute(&listen));
        answered(listening.await, target.limits)?;
        *backoff = MIN_BACKOFF;
        appended.send_modify(|n| *n += 1);
        loop {
            match timeout(HEARTBEAT.min(statement), received.recv()).await {
                Ok(Some(Ok(()))) => appended.send_modify(|n| *n += 1),
                Ok(Some(Err(error))) => return Err(error),
                Ok(None) => return Ok(()),
                Err(_) => {
                    // LISTEN again: a no-op that needs an answer.
                    let heartbeat = timeout(statement, client.batch_execute(&listen));
                    answered(heartbeat.await, target.limits)?;
                }
            }
        }
    };
    let outcome = outcome.await;
    driver.abort();
    outcome
}

/// Drives a connection in a task of its own, sending on each notification, and the error
/// that ends the connection.
fn drive<S, T>(mut connection: Connection<S, T>) -> (JoinHandle<()>, Notifications)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (messages, received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = messages.send(Ok(()));
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = messages.send(Err(error.to_string()));
                    return;
                }
            }
        }
    });
    (driver, received)
}

/// Notifications as they arrive, then the error that ended the connection, if any.
type Notifications = mpsc::UnboundedReceiver<Result<(), String>>;

/// The outcome of a call made within `statement_timeout`, as a message when it failed.
fn answered<T>(
    call: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    limits: Limits,
) -> Result<(), String> {
    match call {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(limits.statement_timed_out().to_string()),
    }
}

/// Sends a NOTIFY when `pending` is woken, at most one per `NOTIFY_PAUSE`: bursts of appends
/// cost one notification, and other processes hear of them within a few milliseconds.
pub(crate) async fn notify(
    pool: deadpool_postgres::Pool,
    channel: String,
    pending: Arc<tokio::sync::Notify>,
    limits: Limits,
) {
    // A NOTIFY commits a transaction of its own; it need not wait for the disk (a notification
    // lost in a crash only delays handlers until they poll), so it costs no fsync. The channel
    // is made of checked names only.
    let statement =
        format!("BEGIN; SET LOCAL synchronous_commit TO off; NOTIFY \"{channel}\"; COMMIT;");
    loop {
        pending.notified().await;
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let sending = timeout(limits.statement, client.batch_execute(&statement));
            answered(sending.await, limits)
        };
        if let Err(error) = sent.await {
            tracing::debug!(%error, "NOTIFY not sent; other processes will poll");
        }
        // Appends during the pause share the next notification.
        tokio::time::sleep(NOTIFY_PAUSE).await;
    }
}
