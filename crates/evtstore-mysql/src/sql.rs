//! The statements, written once per provider with its checked table names.

use crate::lease::LeaseSql;
use crate::procedures::INSERTED;
use crate::tables::Tables;

/// The columns every event read returns, in `read::event_from_row` order.
const COLUMNS: &str = "stream, aggregate_id, version, COALESCE(position, 0), timestamp_ms, data, \
    event_id, correlation_id, causation_id, metadata, revision";

pub(crate) struct Sql {
    events: String,
    /// Calls the procedure that appends and numbers events (see `procedures`).
    pub(crate) add: String,
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
        Sql {
            add: format!("CALL {}(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", t.add),
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
    pub(crate) fn page(&self, streams: usize) -> String {
        format!(
            "SELECT {COLUMNS} FROM {} WHERE position > ? AND stream IN ({})
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
