//! Versioned migrations, safe when several processes start at once (an advisory lock).

use deadpool_postgres::Object;

use crate::tables::Tables;

/// Each migration takes the schema from version `index` to `index + 1`.
fn migrations(t: &Tables) -> Vec<String> {
    let first = format!(
        "CREATE TABLE {events} (
            position BIGINT PRIMARY KEY,
            stream TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            version BIGINT NOT NULL,
            timestamp_ms BIGINT NOT NULL DEFAULT (extract(epoch FROM now()) * 1000)::bigint,
            data JSONB NOT NULL,
            UNIQUE (stream, aggregate_id, version)
        );
        CREATE INDEX ON {events} (stream, position);
        CREATE TABLE {bookmarks} (name TEXT PRIMARY KEY, position BIGINT NOT NULL);
        CREATE TABLE {snapshots} (
            stream TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            version BIGINT NOT NULL,
            position BIGINT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (stream, aggregate_id)
        );",
        events = t.events,
        bookmarks = t.bookmarks,
        snapshots = t.snapshots,
    );
    // The offset added to transaction ids, so positions survive a move to another server.
    let offset = format!(
        "ALTER TABLE {} ADD COLUMN IF NOT EXISTS xid_offset BIGINT NOT NULL DEFAULT 0",
        t.migrations
    );
    // Leases of handlers' names; `expires_at` in milliseconds, by the server's clock.
    let leases = format!(
        "CREATE TABLE {} (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            token BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
        t.leases
    );
    // Archived events, and the keys of encrypted aggregates.
    let retired = format!(
        "CREATE TABLE {archive} (LIKE {events} INCLUDING DEFAULTS,
            PRIMARY KEY (stream, aggregate_id, version));
        CREATE TABLE {keys} (
            stream TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            key_id UUID NOT NULL,
            secret BYTEA NOT NULL,
            PRIMARY KEY (stream, aggregate_id)
        );",
        archive = t.archive,
        events = t.events,
        keys = t.keys,
    );
    vec![first, offset, leases, envelope(t), retired]
}

/// The envelope, and the ids of commands appended. Events stored before it get a UUID v7 of
/// their timestamp and random bits; rows inserted without one (by an older build, or by
/// hand) a random UUID.
fn envelope(t: &Tables) -> String {
    format!(
        "ALTER TABLE {events} ADD COLUMN event_id UUID, ADD COLUMN correlation_id UUID,
            ADD COLUMN causation_id UUID, ADD COLUMN metadata TEXT,
            ADD COLUMN revision INT NOT NULL DEFAULT 1;
        UPDATE {events} SET event_id = (lpad(to_hex(timestamp_ms), 12, '0') || '7'
            || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid;
        ALTER TABLE {events} ALTER COLUMN event_id SET NOT NULL,
            ALTER COLUMN event_id SET DEFAULT gen_random_uuid();
        CREATE TABLE {commands} (
            command_id UUID PRIMARY KEY,
            stream TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            version BIGINT NOT NULL
        );",
        events = t.events,
        commands = t.commands,
    )
}

/// Brings the tables up to date.
pub(crate) async fn migrate(
    client: &mut Object,
    tables: &Tables,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&tables.migration_lock],
    )
    .await?;
    let versions = &tables.migrations;
    let exists = "SELECT to_regclass($1) IS NOT NULL";
    if !tx.query_one(exists, &[versions]).await?.get::<_, bool>(0) {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {versions} (events_table TEXT PRIMARY KEY, version INT NOT NULL)",
            schema = tables.schema,
        ))
        .await?;
    }
    let row = tx
        .query_opt(
            &format!("SELECT version FROM {versions} WHERE events_table = $1"),
            &[&tables.events],
        )
        .await?;
    let current = row.map_or(0, |r| r.get::<_, i32>(0)) as usize;
    let all = migrations(tables);
    if current >= all.len() {
        return tx.commit().await; // up to date: a role that may not write the schema connects
    }
    for migration in all.iter().skip(current) {
        tx.batch_execute(migration).await?;
    }
    let upsert = format!(
        "INSERT INTO {versions} VALUES ($1, $2) ON CONFLICT (events_table) DO UPDATE SET version = $2"
    );
    tx.execute(&upsert, &[&tables.events, &(all.len() as i32)])
        .await?;
    tx.commit().await
}
