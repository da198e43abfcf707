//! Versioned migrations, safe when several processes start at once (`GET_LOCK`).

use sqlx::{Connection, MySqlConnection};

use crate::errors::{DUPLICATE_COLUMN, number};
use crate::procedures::{add_procedure, ask_procedure, pass_procedure};
use crate::tables::Tables;

/// How long a process waits for another one's migration, in seconds.
const LOCK_WAIT_S: i64 = 60;

/// Each migration takes the schema from version `index` to `index + 1`; each is a list of
/// statements (MariaDB commits after each DDL statement, so a migration is made to be
/// repeatable: `IF NOT EXISTS` everywhere, and an `ADD COLUMN` that finds its column added
/// already, by a run that stopped part way, is passed over).
/// A stored procedure is created, or replaced, as it is now, by each migration that changed
/// it.
fn migrations(t: &Tables) -> Vec<Vec<String>> {
    let mut tables = events_tables(t);
    tables.extend(other_tables(t));
    let pass = vec![pass_procedure(t)];
    // Appends that number their own events; a pass that returns one row.
    let add = vec![pass_procedure(t), add_procedure(t)];
    // The envelope, and the commands appends record; the append takes the envelope.
    let mut envelope = envelope(t);
    envelope.push(add_procedure(t));
    // The append inserts at their positions the events that no committed event waits before.
    let positioned = vec![add_procedure(t)];
    // The append's plain checks, and its look for waiting events, read in one statement.
    let fewer_statements = vec![add_procedure(t)];
    // The locking read joins from the JSON rows by force.
    let from_the_json_rows = vec![add_procedure(t)];
    // One-statement appends give positions past the counter: the procedures number after
    // the larger of the two, and a deletion keeps the counter past every deleted event.
    let one_statement = vec![pass_procedure(t), add_procedure(t), deleted_trigger(t)];
    vec![
        tables,
        pass,
        vec![leases_table(t)],
        add,
        envelope,
        retirement(t),
        positioned,
        fewer_statements,
        from_the_json_rows,
        one_statement,
    ]
}

/// Before an event is deleted (a retirement), moves the counter to its position if it is
/// behind: one-statement appends (`sql::Sql::append_one`) number after the larger of the
/// last event and the counter, so no position is given twice.
/// The counter is read first without a lock, so a deletion below it (or of an event still
/// waiting for a position) takes no lock on it. Creating the trigger waits for transactions
/// that use the events table, and holds up every statement on it meanwhile: for 10 s at
/// most, then the migration fails, and the next start tries it again.
fn deleted_trigger(t: &Tables) -> String {
    format!(
        "SET STATEMENT lock_wait_timeout = 10 FOR
         CREATE OR REPLACE TRIGGER {deleted} BEFORE DELETE ON {events} FOR EACH ROW
         BEGIN
           DECLARE last_pos BIGINT;
           SELECT last INTO last_pos FROM {seq} WHERE id = 1;
           IF OLD.position > last_pos THEN
             UPDATE {seq} SET last = OLD.position WHERE id = 1 AND last < OLD.position;
           END IF;
         END",
        deleted = t.deleted,
        events = t.events,
        seq = t.sequence,
    )
}

/// The archive (every column of the events table; an aggregate's versions are unique there
/// as in the events table, and read in that order) and the aggregates' keys (a key id and a
/// secret of 32 bytes, at most 64).
fn retirement(t: &Tables) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id BIGINT NOT NULL,
                position BIGINT NULL,
                stream VARBINARY(200) NOT NULL,
                aggregate_id VARBINARY(255) NOT NULL,
                version BIGINT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                data LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
                event_id BINARY(16) NOT NULL,
                correlation_id BINARY(16) NULL,
                causation_id BINARY(16) NULL,
                metadata LONGTEXT CHARACTER SET utf8mb4 NULL,
                revision INT UNSIGNED NOT NULL DEFAULT 1,
                PRIMARY KEY (stream, aggregate_id, version)
            ) ENGINE=InnoDB",
            t.archive
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                stream VARBINARY(200) NOT NULL,
                aggregate_id VARBINARY(255) NOT NULL,
                key_id BINARY(16) NOT NULL,
                secret VARBINARY(64) NOT NULL,
                PRIMARY KEY (stream, aggregate_id)
            ) ENGINE=InnoDB",
            t.keys
        ),
    ]
}

/// Each event's envelope, and the commands table. Events stored before get a UUID v7 made of
/// their `timestamp_ms` and 72 bits of an MD5 of their `id` and `RAND()` (version nibble 7,
/// variant `10`); then `event_id` is made NOT NULL (if a process of the previous version
/// inserts a row without one in between, that fails, and the migration runs again at the
/// next start).
fn envelope(t: &Tables) -> Vec<String> {
    let events = &t.events;
    let add = |column: &str| format!("ALTER TABLE {events} ADD COLUMN {column}");
    vec![
        add("event_id BINARY(16) NULL"),
        add("correlation_id BINARY(16) NULL"),
        add("causation_id BINARY(16) NULL"),
        add("metadata LONGTEXT CHARACTER SET utf8mb4 NULL"),
        add("revision INT UNSIGNED NOT NULL DEFAULT 1"),
        format!(
            "UPDATE {events} SET event_id = UNHEX(CONCAT(
                LPAD(HEX(timestamp_ms), 12, '0'), '7', SUBSTR(MD5(CONCAT(id, '/', RAND())), 1, 3),
                '8', SUBSTR(MD5(CONCAT(id, '.', RAND())), 1, 15)))
             WHERE event_id IS NULL"
        ),
        format!("ALTER TABLE {events} MODIFY event_id BINARY(16) NOT NULL"),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                command_id BINARY(16) PRIMARY KEY,
                stream VARBINARY(200) NOT NULL,
                aggregate_id VARBINARY(255) NOT NULL,
                version BIGINT NOT NULL
            ) ENGINE=InnoDB",
            t.commands
        ),
    ]
}

/// The events (`position` NULL until the sequencer gives one) and the sequencer's counter.
fn events_tables(t: &Tables) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {events} (
                id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                position BIGINT NULL,
                stream VARBINARY(200) NOT NULL,
                aggregate_id VARBINARY(255) NOT NULL,
                version BIGINT NOT NULL,
                timestamp_ms BIGINT NOT NULL,
                data LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
                UNIQUE KEY by_version (stream, aggregate_id, version),
                UNIQUE KEY by_position (position),
                KEY by_stream (stream, position)
            ) ENGINE=InnoDB",
            events = t.events
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (id TINYINT PRIMARY KEY, last BIGINT NOT NULL) ENGINE=InnoDB",
            t.sequence
        ),
        format!("INSERT IGNORE INTO {} VALUES (1, 0)", t.sequence),
    ]
}

/// Bookmarks and snapshots. Names are `VARBINARY`: compared byte for byte, with
/// no collation folding case or ignoring trailing spaces.
fn other_tables(t: &Tables) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                name VARBINARY(200) PRIMARY KEY, position BIGINT NOT NULL
            ) ENGINE=InnoDB",
            t.bookmarks
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                stream VARBINARY(200) NOT NULL,
                aggregate_id VARBINARY(255) NOT NULL,
                tag LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
                version BIGINT NOT NULL,
                position BIGINT NOT NULL,
                state LONGTEXT CHARACTER SET utf8mb4 NOT NULL,
                PRIMARY KEY (stream, aggregate_id)
            ) ENGINE=InnoDB",
            t.snapshots
        ),
    ]
}

/// Leases of handlers' names; `expires_at` in milliseconds, by the server's clock (UTC).
fn leases_table(t: &Tables) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (
            name VARBINARY(200) PRIMARY KEY,
            owner VARBINARY(255) NOT NULL,
            token BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        ) ENGINE=InnoDB",
        t.leases
    )
}

/// Brings the tables up to date, holding a server-wide lock named after the database and the
/// events table while it does.
pub(crate) async fn migrate(conn: &mut MySqlConnection, t: &Tables) -> Result<(), sqlx::Error> {
    let lock = "SELECT GET_LOCK(CONCAT(?, DATABASE(), '.', ?), ?)";
    let got: Option<i64> = sqlx::query_scalar(lock)
        .bind("evtstore:")
        .bind(&t.events_name)
        .bind(LOCK_WAIT_S)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        return Err(sqlx::Error::Protocol(format!(
            "another process held the migration lock of {} for {LOCK_WAIT_S} s",
            t.migration_lock
        )));
    }
    let migrated = match run_migrations(conn, t).await {
        Ok(()) => ensure_ask_procedure(conn, t).await,
        failed => failed,
    };
    let release = "SELECT RELEASE_LOCK(CONCAT(?, DATABASE(), '.', ?))";
    let released = sqlx::query(release)
        .bind("evtstore:")
        .bind(&t.events_name)
        .execute(&mut *conn)
        .await;
    migrated.and(released.map(drop))
}

/// Makes the procedure that applies asks on these bookmarks and leases tables, if missing: its
/// name says which tables it uses (`tables::ask_procedure_name`), so it is never replaced.
async fn ensure_ask_procedure(conn: &mut MySqlConnection, t: &Tables) -> Result<(), sqlx::Error> {
    let find = "SELECT 1 FROM information_schema.ROUTINES
        WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME = ? AND ROUTINE_TYPE = 'PROCEDURE'";
    let found: Option<i32> = sqlx::query_scalar(find)
        .bind(&t.ask_name)
        .fetch_optional(&mut *conn)
        .await?;
    if found.is_none() {
        sqlx::raw_sql(&ask_procedure(t)).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn run_migrations(conn: &mut MySqlConnection, t: &Tables) -> Result<(), sqlx::Error> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} (events_table VARCHAR(64) PRIMARY KEY, version INT NOT NULL)",
        t.migrations
    );
    sqlx::raw_sql(&create).execute(&mut *conn).await?;
    let current = format!(
        "SELECT version FROM {} WHERE events_table = ?",
        t.migrations
    );
    let current: Option<i32> = sqlx::query_scalar(&current)
        .bind(&t.events_name)
        .fetch_optional(&mut *conn)
        .await?;
    let all = migrations(t);
    for (index, migration) in all.iter().enumerate().skip(current.unwrap_or(0) as usize) {
        for statement in migration {
            match sqlx::raw_sql(statement).execute(&mut *conn).await {
                Err(e) if number(&e) == Some(DUPLICATE_COLUMN) => {} // added by an earlier run
                done => {
                    done?;
                }
            }
        }
        let done = format!(
            "INSERT INTO {} VALUES (?, ?) ON DUPLICATE KEY UPDATE version = VALUES(version)",
            t.migrations
        );
        let mut tx = conn.begin().await?;
        sqlx::query(&done)
            .bind(&t.events_name)
            .bind(index as i32 + 1)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
