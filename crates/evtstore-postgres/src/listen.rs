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
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// Least time between two notifications from this process.
const NOTIFY_PAUSE: Duration = Duration::from_millis(5);

/// Shortest and longest wait between reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens on `channel` and wakes `appended`, reconnecting, until the provider drops the task.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    appended: Arc<watch::Sender<Position>>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if let Err(error) = listen_once(&config, &channel, &appended, &mut backoff).await {
            tracing::warn!(%error, "postgres notification connection failed; reconnecting");
        }
        // Events may have been appended while no one listened: wake the handlers.
        appended.send_modify(|n| *n += 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: LISTEN, then forward notifications until it breaks. Once listening, the
/// next reconnection starts again from the shortest wait.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    appended: &watch::Sender<Position>,
    backoff: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = messages.send(Ok(()));
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = messages.send(Err(error));
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await?;
    *backoff = MIN_BACKOFF;
    appended.send_modify(|n| *n += 1);
    let outcome = loop {
        match received.recv().await {
            Some(Ok(())) => appended.send_modify(|n| *n += 1),
            Some(Err(error)) => break Err(error),
            None => break Ok(()),
        }
    };
    driver.abort();
    outcome
}

/// Sends a NOTIFY when `pending` is woken, at most one per `NOTIFY_PAUSE`: bursts of appends
/// cost one notification, and other processes hear of them within a few milliseconds.
pub(crate) async fn notify(
    pool: deadpool_postgres::Pool,
    channel: String,
    pending: Arc<tokio::sync::Notify>,
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
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(error) = sent.await {
            tracing::debug!(%error, "NOTIFY not sent; other processes will poll");
        }
        // Appends during the pause share the next notification.
        tokio::time::sleep(NOTIFY_PAUSE).await;
    }
}
