//! Positions that never go backwards when a store moves to another server.
//!
//! A position is built from a transaction id (see `sql`), and another server's counter may be
//! lower: after a restore from a dump, a logical-replication upgrade, any move to another
//! cluster. Every new connection compares the server's next transaction id, offset, with the
//! highest stored position; when it is behind, it raises the store's offset so that every new
//! position lies above every stored one. Where the offset cannot be raised, the connection is
//! refused with an error that says why, so nothing is written below a handler's bookmark.

use tokio_postgres::Client;

use crate::sql::Sql;

/// Raises the store's offset when the server's transaction counter is behind its positions.
pub(crate) async fn ensure_ahead(client: &Client, sql: &Sql) -> Result<(), String> {
    let row = client.query_one(&sql.clock, &[]).await.map_err(refused)?;
    let (last, next): (i64, i64) = (row.get(0), row.get(1));
    if next > last {
        return Ok(());
    }
    let raised = client.query_one(&sql.raise_offset, &[]).await;
    let offset: i64 = raised.map_err(refused)?.get(0);
    tracing::warn!(
        last_transaction = last,
        server_transaction = next,
        offset,
        "the server's transaction counter is behind the stored positions (a restore or a move \
         to another server?): positions continue above them"
    );
    Ok(())
}

fn refused(cause: tokio_postgres::Error) -> String {
    let cause = cause
        .as_db_error()
        .map_or(cause.to_string(), ToString::to_string);
    format!(
        "cannot check that new positions lie above the stored ones (needed after a restore or \
         a move to another server; the role needs UPDATE on the evtstore_migrations table): \
         {cause}"
    )
}
