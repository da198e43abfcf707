//! Read-ahead for handlers catching up: after a full page, the next pages are read in the
//! background while the handler works through this one, and handed over if the handler asks
//! for exactly one of them.
//!
//! Only a full page read ahead is handed over: its positions were committed and numbered when
//! it was read, and positions never change, so it is what a read now would return. A short
//! page may lack events committed since, so it is dropped and the page is read again.
//!
//! The next page starts after the last position of this one. The page after it is guessed to
//! start `limit` positions further, and read ahead only when this page's positions follow each
//! other with no other stream's in between (a handler of every stream, or of the only one),
//! so the guess is right unless another stream's events come next; a wrong guess is one
//! page read in vain.

use std::sync::{Arc, Mutex};

use evtstore_core::{Position, Result, StoredEvent};
use sqlx::MySqlPool;
use tokio::task::JoinHandle;

use crate::errors;
use crate::read::read_page;
use crate::sql::Sql;

/// A page being read ahead, and which page it is.
struct Ahead {
    streams: Vec<String>,
    after: Position,
    limit: usize,
    page: JoinHandle<Result<Vec<StoredEvent>>>,
}

/// Pages read ahead after the last full page a reader got (another reader's request
/// replaces them).
pub(crate) struct ReadAhead {
    pool: MySqlPool,
    sql: Arc<Sql>,
    server: Arc<str>,
    ahead: Mutex<Vec<Ahead>>,
}

/// How many pages are read ahead at most.
const DEPTH: usize = 2;

impl ReadAhead {
    pub(crate) fn new(pool: MySqlPool, sql: Arc<Sql>, server: Arc<str>) -> Self {
        ReadAhead {
            pool,
            sql,
            server,
            ahead: Mutex::default(),
        }
    }

    /// At most `limit` events of `streams` after `after`, in position order: the page read
    /// ahead if it is this one and full, else read now. After a full page, starts reading
    /// the next ones.
    pub(crate) async fn page(
        &self,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let page = match self.take(streams, after, limit) {
            Some(ahead) => match ahead.await {
                Ok(Ok(page)) if page.len() == limit => page,
                _ => self.read(streams, after, limit).await?,
            },
            None => self.read(streams, after, limit).await?,
        };
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            let (first, last) = (first.meta.position, last.meta.position);
            if page.len() == limit {
                self.start(streams, last, limit);
                if last - first + 1 == limit as Position {
                    self.start(streams, last + limit as Position, limit);
                }
            }
        }
        Ok(page)
    }

    /// The page read ahead, if it is this one; forgets pages read ahead before it, or for
    /// other requests.
    fn take(
        &self,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Option<JoinHandle<Result<Vec<StoredEvent>>>> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        ahead.retain(|a| a.after >= after && a.limit == limit && a.streams == streams);
        let at = ahead.iter().position(|a| a.after == after)?;
        Some(ahead.remove(at).page)
    }

    /// Reads the page after `after` in the background, unless it is being read already.
    fn start(&self, streams: &[String], after: Position, limit: usize) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        if ahead.iter().any(|a| a.after == after) {
            return;
        }
        let (pool, sql, server) = (self.pool.clone(), self.sql.clone(), self.server.clone());
        let owned = streams.to_vec();
        let page = tokio::spawn(async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| errors::fail(&server, "connect", e))?;
            read_page(&mut conn, &sql, &server, &owned, after, limit).await
        });
        // Pages read ahead and forgotten are dropped, not aborted: each finishes its query
        // and returns its connection to the pool.
        if ahead.len() == DEPTH {
            ahead.remove(0);
        }
        let streams = streams.to_vec();
        ahead.push(Ahead {
            streams,
            after,
            limit,
            page,
        });
    }

    async fn read(
        &self,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| errors::fail(&self.server, "connect", e))?;
        read_page(&mut conn, &self.sql, &self.server, streams, after, limit).await
    }
}
