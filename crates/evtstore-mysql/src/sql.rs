//! The statements, written once per provider with its checked table names.

use crate::lease::LeaseSql;
use crate::procedures::{INSERTED, json_events, json_expected};
use crate::tables::Tables;

/// The columns every event read returns, in `read::event_from_row` order.
const COLUMNS: &str = "stream, aggregate_id, version, COALESCE(position, 0), timestamp_ms, data, \
    event_id, correlation_id, causation_id, metadata, revision";

pub(crate) struct Sql {
    events: String,
    /// Calls the procedure that appends and numbers events (see `procedures`).
    pub(crate) add: String,
    /// Appends one event at the next position in one statement, when no committed event
    /// waits for a position and its aggregate is at the version expected; returns the
    /// position, or no row (the procedure decides then). Parameters: the event's ten columns
    /// (`procedures::INSERTED`), then `(current version, stream, aggregate id, current
    /// version)`.
    ///
    /// Its reads of events (in subqueries) are consistent (READ COMMITTED): the position
    /// follows the last committed event's, and `by_position` is unique, so a position is only
    /// ever taken after the one before it committed: readers never see a gap close behind
    /// them. It reads the counter's row in share mode (`LOCK IN SHARE MODE` locks the
    /// outer `FROM` only), held to its commit: one-statement appends run side by side, but
    /// never while a numbering (a procedure's, a pass's) holds the counter, and a numbering
    /// waits for those running, so it numbers after them; one that committed after this
    /// statement's read view was taken (before its lock on the counter) left the counter at
    /// its last event, so this one numbers after the larger of the counter and the last event
    /// it sees. Selecting from the counter, not from the events table, spares the temporary
    /// table an `INSERT … SELECT` from its own table takes. It never waits for a lock
    /// (`innodb_lock_wait_timeout = 0`): where a numbering holds the counter, or another
    /// writer holds its position or its version uncommitted, it fails at once (error 1205)
    /// and the procedure appends; a position another one-statement append committed first
    /// (1062) is tried again, a few times, before the procedure. Waiting here would hold a
    /// gap lock of the unique check that stops other aggregates' inserts (the procedure waits
    /// in a locking read first). The counter is left as it is (a statement that inserts
    /// cannot also update it); the procedures number after the larger of it and the last
    /// event's position too, and a deletion of the last events (a retirement) leaves the
    /// counter past them. It declines while a committed event waits for a position (of
    /// `append_in`, for a pass): the procedure numbers those first, so that an event follows
    /// every event its caller could have seen committed.
    pub(crate) append_one: String,
    /// [`append_one`](Self::append_one) for several events, as JSON (`procedures::json_events`,
    /// `procedures::json_expected`): all inserted, at consecutive positions in their order,
    /// or none. Parameters: the timestamp of events without their own, the aggregates'
    /// expected versions, the events. The last position, the look for waiting
    /// events and the versions are read in derived tables, each materialized first as one row
    /// (and read before the events): a subquery of the events table in the
    /// `SELECT` itself makes MariaDB collect the inserted rows in a temporary table first, on
    /// disk as they hold `LONGTEXT` (16 events: 630–700 µs a statement against 490–540 µs
    /// without, this project's machine).
    pub(crate) append_rows: String,
    pub(crate) version: String,
    pub(crate) positions: String,
    pub(crate) aggregate_events: String,
    /// Several aggregates at once (`[[stream, id, after], …]` as JSON); `n` says which load
    /// each row answers. Unordered: an `ORDER BY` sorts the rows in a temporary table on disk
    /// (they hold `LONGTEXT`), 1.2–1.6 ms for 16 aggregates of 5 events against 0.7–0.9 ms
    /// without; the caller puts each aggregate's events in version order.
    pub(crate) aggregates_events: String,
    pub(crate) bookmark: String,
    pub(crate) lock_bookmark: String,
    pub(crate) try_lock_bookmark: String,
    pub(crate) create_bookmark: String,
    pub(crate) set_bookmark: String,
    /// Calls the procedure that applies an ask to move a leased bookmark.
    pub(crate) apply_ask: String,
    pub(crate) snapshot: String,
    pub(crate) save_snapshot: String,
    /// What an append recorded of a command id.
    pub(crate) command: String,
    pub(crate) streams: String,
    commands: String,
    /// Copies an aggregate's events below a version to the archive.
    pub(crate) archive_events: String,
    /// Deletes an aggregate's events below a version.
    pub(crate) retire_events: String,
    /// Deletes an aggregate's archived events.
    pub(crate) delete_archived: String,
    pub(crate) delete_snapshot: String,
    /// An aggregate's archived events between two versions.
    pub(crate) archived: String,
    pub(crate) key: String,
    pub(crate) create_key: String,
    pub(crate) delete_key: String,
    pub(crate) lease: LeaseSql,
}

impl Sql {
    pub(crate) fn new(t: &Tables) -> Self {
        let (events, bookmarks, snapshots) = (&t.events, &t.bookmarks, &t.snapshots);
        let last = format!("SELECT COALESCE(MAX(position), 0) FROM {events}");
        Sql {
            add: format!("CALL {}(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", t.add),
            append_one: format!(
                "SET STATEMENT innodb_lock_wait_timeout = 0 FOR
                 INSERT INTO {events} (position, {INSERTED})
                 SELECT GREATEST(({last}), s.last) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                 FROM {seq} s
                 WHERE s.id = 1
                   AND NOT EXISTS (SELECT 1 FROM {events} WHERE position IS NULL)
                   AND (? = 0 OR EXISTS (SELECT 1 FROM {events} FORCE INDEX (by_version)
                     WHERE stream = ? AND aggregate_id = ? AND version = ?))
                 LOCK IN SHARE MODE
                 RETURNING position",
                seq = t.sequence,
            ),
            append_rows: format!(
                "SET STATEMENT innodb_lock_wait_timeout = 0 FOR
                 INSERT INTO {events} (position, {INSERTED})
                 SELECT GREATEST(l.last, s.last) + j.n, j.s, j.a, j.v, COALESCE(j.t, ?), j.d,
                   UNHEX(j.i), UNHEX(j.co), UNHEX(j.ca), j.m, j.r
                 FROM {seq} s,
                   (SELECT COALESCE(MAX(position), 0) AS last,
                     EXISTS (SELECT 1 FROM {events} WHERE position IS NULL) AS waiting
                     FROM {events}) l,
                   (SELECT COUNT(*) AS missing FROM {expected} WHERE x.c > 0 AND NOT EXISTS (
                     SELECT 1 FROM {events} e FORCE INDEX (by_version)
                     WHERE e.stream = x.s AND e.aggregate_id = x.a AND e.version = x.c)) c,
                   {rows}
                 WHERE s.id = 1 AND l.waiting = 0 AND c.missing = 0
                 LOCK IN SHARE MODE
                 RETURNING position",
                seq = t.sequence,
                rows = json_events("?"),
                expected = json_expected("?"),
            ),
            version: format!(
                "SELECT MAX(version) FROM {events} WHERE stream = ? AND aggregate_id = ?"
            ),
            positions: format!(
                "SELECT position FROM {events} WHERE stream = ? AND aggregate_id = ?
                 AND version > ? AND version <= ? ORDER BY version"
            ),
            aggregate_events: format!(
                "SELECT {COLUMNS} FROM {events} WHERE stream = ? AND aggregate_id = ?
                 AND version > ? ORDER BY version"
            ),
            aggregates_events: format!(
                "SELECT {COLUMNS}, CAST(x.n AS SIGNED) FROM JSON_TABLE(?, '$[*]' COLUMNS (
                    n FOR ORDINALITY, s VARBINARY(1020) PATH '$[0]',
                    a VARBINARY(1020) PATH '$[1]', v BIGINT PATH '$[2]')) x
                 STRAIGHT_JOIN {events} e FORCE INDEX (by_version)
                    ON e.stream = x.s AND e.aggregate_id = x.a AND e.version > x.v"
            ),
            bookmark: format!("SELECT position FROM {bookmarks} WHERE name = ?"),
            lock_bookmark: format!("SELECT position FROM {bookmarks} WHERE name = ? FOR UPDATE"),
            try_lock_bookmark: format!(
                "SELECT position FROM {bookmarks} WHERE name = ? FOR UPDATE SKIP LOCKED"
            ),
            // The row a transactional handler locks; -1 until a page sets it: never set.
            create_bookmark: format!("INSERT IGNORE INTO {bookmarks} VALUES (?, -1)"),
            set_bookmark: format!(
                "INSERT INTO {bookmarks} VALUES (?, ?)
                 ON DUPLICATE KEY UPDATE position = VALUES(position)"
            ),
            apply_ask: format!("CALL {}(?, ?, ?, ?, ?, ?)", t.ask),
            snapshot: format!(
                "SELECT tag, version, position, state FROM {snapshots}
                 WHERE stream = ? AND aggregate_id = ?"
            ),
            save_snapshot: format!(
                "INSERT INTO {snapshots} VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE
                 tag = IF(VALUES(version) >= version, VALUES(tag), tag),
                 position = IF(VALUES(version) >= version, VALUES(position), position),
                 state = IF(VALUES(version) >= version, VALUES(state), state),
                 version = GREATEST(version, VALUES(version))"
            ),
            streams: format!(
                "SELECT DISTINCT stream FROM {} WHERE position IS NOT NULL ORDER BY stream",
                t.events
            ),
            command: format!(
                "SELECT stream, aggregate_id, version FROM {} WHERE command_id = ?",
                t.commands
            ),
            // Through `by_version` by force, as in the append procedure: not `by_stream`.
            archive_events: format!(
                "INSERT INTO {archive} (id, position, {INSERTED})
                 SELECT id, position, {INSERTED} FROM {events} FORCE INDEX (by_version)
                 WHERE stream = ? AND aggregate_id = ? AND version < ?",
                archive = t.archive
            ),
            retire_events: format!(
                "DELETE e FROM {events} e FORCE INDEX (by_version)
                 WHERE e.stream = ? AND e.aggregate_id = ? AND e.version < ?"
            ),
            delete_archived: format!(
                "DELETE FROM {} WHERE stream = ? AND aggregate_id = ?",
                t.archive
            ),
            delete_snapshot: format!(
                "DELETE FROM {snapshots} WHERE stream = ? AND aggregate_id = ?"
            ),
            archived: format!(
                "SELECT {COLUMNS} FROM {} WHERE stream = ? AND aggregate_id = ?
                 AND version > ? AND version < ? ORDER BY version",
                t.archive
            ),
            key: format!(
                "SELECT key_id, secret FROM {} WHERE stream = ? AND aggregate_id = ?",
                t.keys
            ),
            create_key: format!(
                "INSERT IGNORE INTO {} (stream, aggregate_id, key_id, secret) VALUES (?, ?, ?, ?)",
                t.keys
            ),
            delete_key: format!(
                "DELETE FROM {} WHERE stream = ? AND aggregate_id = ?",
                t.keys
            ),
            events: events.clone(),
            commands: t.commands.clone(),
            lease: LeaseSql::new(t),
        }
    }

    /// Inserts `n` events, ten parameters each (`procedures::INSERTED`).
    pub(crate) fn insert(&self, n: usize) -> String {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ");
        format!("INSERT INTO {} ({INSERTED}) VALUES {rows}", self.events)
    }

    /// Records `n` commands: id, stream, aggregate id, version.
    pub(crate) fn record_commands(&self, n: usize) -> String {
        let rows = vec!["(?, ?, ?, ?)"; n].join(", ");
        format!(
            "INSERT INTO {} (command_id, stream, aggregate_id, version) VALUES {rows}",
            self.commands
        )
    }

    /// The ids among `n` that are recorded.
    pub(crate) fn recorded_commands(&self, n: usize) -> String {
        format!(
            "SELECT command_id FROM {} WHERE command_id IN ({})",
            self.commands,
            marks(n)
        )
    }

    /// At most `?` events of `streams` streams after position `?`, in position order.
    ///
    /// One stream's page is read from `by_stream` by force: left to itself, the optimizer
    /// switched the range on `(stream, position)` to a lookup of the stream alone (to skip the
    /// sort), which walks the stream's every event up to the page: 28 ms a page at 125,000
    /// events against 2.8 ms, a catch-up's cost growing with the square of the store.
    pub(crate) fn page(&self, streams: usize) -> String {
        let by_stream = if streams == 1 {
            "FORCE INDEX (by_stream)"
        } else {
            ""
        };
        format!(
            "SELECT {COLUMNS} FROM {} {by_stream} WHERE position > ? AND stream IN ({})
             ORDER BY position LIMIT ?",
            self.events,
            marks(streams)
        )
    }

    /// The last positioned event of `streams` streams, or of the aggregate `?` in them.
    pub(crate) fn last_event(&self, streams: usize, of_aggregate: bool) -> String {
        let aggregate = if of_aggregate {
            "AND aggregate_id = ?"
        } else {
            ""
        };
        format!(
            "SELECT {COLUMNS} FROM {} WHERE position IS NOT NULL AND stream IN ({}) {aggregate}
             ORDER BY position DESC LIMIT 1",
            self.events,
            marks(streams)
        )
    }
}

fn marks(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::mysql::MySqlConnectOptions;
    use sqlx::{ConnectOptions, Connection, Executor};

    use super::*;
    use crate::{MysqlOptions, MysqlProvider};

    /// A page of one stream, deep in a grown store, reads its range of `by_stream` (both key
    /// parts): not the stream's every event from its first, filtered by position.
    #[tokio::test]
    async fn a_page_of_one_stream_reads_only_its_range() {
        let Ok(url) = std::env::var("EVTSTORE_MYSQL_URL") else {
            eprintln!("skipped: EVTSTORE_MYSQL_URL is not set");
            return;
        };
        let database = format!("evt_t_plan_{}", std::process::id());
        let options = MySqlConnectOptions::from_str(&url).unwrap();
        let mut admin = options.connect().await.unwrap();
        admin
            .execute(format!("CREATE OR REPLACE DATABASE {database}").as_str())
            .await
            .unwrap();
        let store = options.clone().database(&database);
        let provider = MysqlProvider::connect_config(store.clone(), MysqlOptions::default());
        drop(provider.await.unwrap()); // the tables
        let sql = Sql::new(&Tables::new(&MysqlOptions::default()).unwrap());
        let mut conn = store.connect().await.unwrap();
        let fill = format!(
            "INSERT INTO {} (position, stream, aggregate_id, version, timestamp_ms, data,
                event_id)
             SELECT seq, 'counter', CONCAT('a', seq % 1000), seq DIV 1000 + 1, 0, '{{}}',
                UNHEX(MD5(seq)) FROM seq_1_to_30000",
            sql.events
        );
        conn.execute(fill.as_str()).await.unwrap();
        let page = sql
            .page(1)
            .replacen('?', "20000", 1)
            .replacen('?', "'counter'", 1);
        let page = page.replacen('?', "1000", 1);
        let analysed = format!("ANALYZE FORMAT=JSON {page}");
        let plan: String = sqlx::query_scalar(&analysed)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let plan: String = plan.split_whitespace().collect();
        conn.close().await.unwrap();
        admin
            .execute(format!("DROP DATABASE {database}").as_str())
            .await
            .unwrap();
        assert!(plan.contains(r#""access_type":"range""#), "{plan}");
        assert!(
            plan.contains(r#""used_key_parts":["stream","position"]"#),
            "{plan}"
        );
    }
}
