//! Deleting and archiving aggregates, and their keys.

use evtstore_core::provider::SharedNames;
use evtstore_core::provider::{AggregateKey, Retire};
use evtstore_core::{EventMeta, NewEvent, Result, StoredEvent};
use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::PgProvider;
use crate::read::event_from_row;
use crate::sql::EVENT_COLUMNS;
use crate::tables::Tables;

/// The statements of retiring and keys, for one table set.
pub(crate) struct RetireSql {
    /// Copies the events below a version into the archive.
    archive: String,
    /// Deletes the archived events, key and snapshot of an aggregate (`$3` unused).
    forget_all: [String; 3],
    /// Deletes the events below a version.
    delete_events: String,
    archived: String,
    create_key: String,
    key: String,
    /// Deletes the key and snapshot of an aggregate.
    forget_key: [String; 2],
}

impl RetireSql {
    pub(crate) fn new(t: &Tables) -> Self {
        let below = "WHERE stream = $1 AND aggregate_id = $2 AND version < $3";
        let of = "WHERE stream = $1 AND aggregate_id = $2";
        let keys = &t.keys;
        RetireSql {
            archive: format!(
                "INSERT INTO {} SELECT * FROM {} {below}",
                t.archive, t.events
            ),
            forget_all: [&t.archive, keys, &t.snapshots]
                .map(|table| format!("DELETE FROM {table} {of} AND $3::bigint IS NOT NULL")),
            delete_events: format!("DELETE FROM {} {below}", t.events),
            archived: format!(
                "SELECT {EVENT_COLUMNS} FROM {} {of} AND version > $3 AND version < $4
                 ORDER BY version",
                t.archive
            ),
            create_key: format!(
                "INSERT INTO {keys} VALUES ($1, $2, $3, $4)
                 ON CONFLICT (stream, aggregate_id) DO NOTHING"
            ),
            key: format!("SELECT key_id, secret FROM {keys} {of}"),
            forget_key: [keys, &t.snapshots].map(|table| format!("DELETE FROM {table} {of}")),
        }
    }
}

impl PgProvider {
    /// Appends the marker and deletes or archives the aggregate's events below it, in one
    /// transaction.
    pub(crate) async fn retire_aggregate(
        &self,
        marker: NewEvent,
        how: Retire,
    ) -> Result<EventMeta> {
        let what = format!("retire {}/{}", marker.stream, marker.aggregate_id);
        let mut client = self.client().await?;
        let tx = self.run(&what, client.transaction()).await?;
        let events = std::slice::from_ref(&marker);
        let appended = self.append_on(&*tx, self.sql.append.as_str(), events);
        let meta = self.within(&what, appended).await?.remove(0);
        let version = marker.version as i64;
        let below: [&(dyn ToSql + Sync); 3] = [
            &marker.stream.as_str(),
            &marker.aggregate_id.as_str(),
            &version,
        ];
        let sql = &self.sql.retire;
        let first = match how {
            Retire::Archive => std::slice::from_ref(&sql.archive),
            Retire::Delete => &sql.forget_all[..],
        };
        for statement in first.iter().chain([&sql.delete_events]) {
            self.run(&what, tx.execute(statement, &below)).await?;
        }
        self.run(&what, tx.commit()).await?;
        self.notify_appended();
        Ok(meta)
    }

    /// An aggregate's archived events between two versions.
    pub(crate) async fn read_archived(
        &self,
        (stream, id): (&str, &str),
        after: u64,
        before: u64,
    ) -> Result<Vec<StoredEvent>> {
        let what = format!("read archived events of {stream}/{id}");
        let sql = &self.sql.retire.archived;
        let bounds = (
            after.min(i64::MAX as u64) as i64,
            before.min(i64::MAX as u64) as i64,
        );
        let params: [&(dyn ToSql + Sync); 4] = [&stream, &id, &bounds.0, &bounds.1];
        let client = self.client().await?;
        let rows = self.run(&what, client.query(sql, &params)).await?;
        let mut names = SharedNames::new(&[stream]);
        Ok(rows
            .iter()
            .map(|row| event_from_row(&mut names, row))
            .collect())
    }

    /// An aggregate's key, stored first when it has none and `create` is set.
    pub(crate) async fn read_key(
        &self,
        stream: &str,
        id: &str,
        create: bool,
    ) -> Result<Option<AggregateKey>> {
        let what = format!("read the key of {stream}/{id}");
        let client = self.client().await?;
        let sql = &self.sql.retire;
        if create {
            let key = AggregateKey::generate();
            let params: [&(dyn ToSql + Sync); 4] = [&stream, &id, &key.id, &key.secret];
            self.run(&what, client.execute(&sql.create_key, &params))
                .await?;
        }
        self.stored_key(&**client, stream, id).await
    }

    /// An aggregate's stored key, read with `client` (a connection, or a transaction).
    pub(crate) async fn stored_key(
        &self,
        client: &impl GenericClient,
        stream: &str,
        id: &str,
    ) -> Result<Option<AggregateKey>> {
        let what = format!("read the key of {stream}/{id}");
        let sql = &self.sql.retire.key;
        let params: [&(dyn ToSql + Sync); 2] = [&stream, &id];
        let row = self.run(&what, client.query_opt(sql, &params)).await?;
        Ok(row.map(|row| AggregateKey {
            id: row.get(0),
            secret: row.get(1),
        }))
    }

    /// Deletes an aggregate's key and snapshot.
    pub(crate) async fn delete_key(&self, stream: &str, id: &str) -> Result<()> {
        let what = format!("forget the key of {stream}/{id}");
        let mut client = self.client().await?;
        let tx = self.run(&what, client.transaction()).await?;
        for sql in &self.sql.retire.forget_key {
            self.run(&what, tx.execute(sql, &[&stream, &id])).await?;
        }
        self.run(&what, tx.commit()).await
    }
}
