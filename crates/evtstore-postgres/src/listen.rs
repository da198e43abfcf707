//! Push delivery: a connection that LISTENs for appends and wakes handlers, reconnecting by
//! itself. Handlers also poll, so a lost notification only delays them.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use evtstore_core::Position;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Listens on `channel` until `appended` has no receivers left and the provider is dropped.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    appended: Arc<watch::Sender<Position>>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listen_once(&config, &channel, &appended).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(error) => {
                tracing::warn!(%error, "postgres notification connection failed; reconnecting");
            }
        }
        // Events may have been appended while no one listened: wake the handlers.
        appended.send_modify(|n| *n += 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: LISTEN, then forward notifications until it breaks.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    appended: &watch::Sender<Position>,
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
