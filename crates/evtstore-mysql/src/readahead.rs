//! Read-ahead for handlers catching up: after a full page, the next page is read in the
//! background while the handler works through this one, and handed over if the handler asks
//! for exactly it.
//!
//! Only a full page read ahead is handed over: its positions were committed and numbered when
//! it was read, and positions never change, so it is what a read now would return. A short
//! page may lack events committed since, so it is dropped and the page is read again.

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

/// The page read ahead for the last full page a reader got (one at a time: another reader's
/// request replaces it).
pub(crate) struct ReadAhead {
    pool: MySqlPool,
    sql: Arc<Sql>,
    server: Arc<str>,
    ahead: Mutex<Option<Ahead>>,
}

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
    /// the next.
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
        if let Some(last) = page.last().filter(|_| page.len() == limit) {
            self.start(streams, last.meta.position, limit);
        }
        Ok(page)
    }

    /// The page read ahead, if it is this one.
    fn take(
        &self,
        streams: &[String],
        after: Position,
        limit: usize,
    ) -> Option<JoinHandle<Result<Vec<StoredEvent>>>> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let matches = ahead
            .as_ref()
            .is_some_and(|a| a.after == after && a.limit == limit && a.streams == streams);
        matches.then(|| ahead.take()).flatten().map(|a| a.page)
    }

    fn start(&self, streams: &[String], after: Position, limit: usize) {
        let (pool, sql, server) = (self.pool.clone(), self.sql.clone(), self.server.clone());
        let owned = streams.to_vec();
        let page = tokio::spawn(async move {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| errors::fail(&server, "connect", e))?;
            read_page(&mut conn, &sql, &server, &owned, after, limit).await
        });
        // A page read ahead for another reader is dropped, not aborted: it finishes its
        // query and returns its connection to the pool.
        let ahead = Ahead {
            streams: streams.to_vec(),
            after,
            limit,
            page,
        };
        *self.ahead.lock().unwrap_or_else(|e| e.into_inner()) = Some(ahead);
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
