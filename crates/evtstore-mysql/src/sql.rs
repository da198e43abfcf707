//! The statements, written once per provider with its checked table names.

use crate::lease::LeaseSql;
use crate::tables::Tables;

/// The columns every event read returns, in `read::event_from_row` order.
const COLUMNS: &str = "stream, aggregate_id, version, COALESCE(position, 0), timestamp_ms, data";

pub(crate) struct Sql {
    events: String,
    /// Calls the procedure that appends and numbers events (see `procedures`).
    pub(crate) add: String,
    pub(crate) version: String,
    pub(crate) positions: String,
    pub(crate) aggregate_events: String,
    pub(crate) bookmark: String,
    pub(crate) lock_bookmark: String,
    pub(crate) create_bookmark: String,
    pub(crate) set_bookmark: String,
    pub(crate) snapshot: String,
    pub(crate) save_snapshot: String,
    pub(crate) lease: LeaseSql,
}

impl Sql {
    pub(crate) fn new(t: &Tables) -> Self {
        let (events, bookmarks, snapshots) = (&t.events, &t.bookmarks, &t.snapshots);
        Sql {
            add: format!("CALL {}(?, ?, ?, ?, ?, ?, ?)", t.add),
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
            bookmark: format!("SELECT position FROM {bookmarks} WHERE name = ?"),
            lock_bookmark: format!("SELECT position FROM {bookmarks} WHERE name = ? FOR UPDATE"),
            // The row a transactional handler locks; -1 until a page sets it: never set.
            create_bookmark: format!("INSERT IGNORE INTO {bookmarks} VALUES (?, -1)"),
            set_bookmark: format!(
                "INSERT INTO {bookmarks} VALUES (?, ?)
                 ON DUPLICATE KEY UPDATE position = VALUES(position)"
            ),
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
            events: events.clone(),
            lease: LeaseSql::new(t),
        }
    }

    /// Inserts `n` events, five parameters each.
    pub(crate) fn insert(&self, n: usize) -> String {
        let rows = vec!["(?, ?, ?, ?, ?)"; n].join(", ");
        format!(
            "INSERT INTO {} (stream, aggregate_id, version, timestamp_ms, data) VALUES {rows}",
            self.events
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
