//! Configurable, validated table names.

use std::time::Duration;

use evtstore_core::Result;
use evtstore_core::provider::{check_above_zero, check_server_options, check_table};

/// Where the provider keeps its tables, in the URL's database. Every name is checked with
/// [`check_table`](evtstore_core::provider::check_table) before it reaches SQL.
///
/// ```
/// use evtstore_mysql::MysqlOptions;
/// let options = MysqlOptions { events_table: "orders_events".into(), ..MysqlOptions::default() };
/// assert_eq!(options.bookmarks_table, "bookmarks");
/// ```
#[derive(Debug, Clone)]
pub struct MysqlOptions {
    /// The events table (default `events`); its sequencer uses `<events>_seq` beside it, and
    /// the stored procedures `<events>_pass` and `<events>_add`. Each of those names, and
    /// the default commands, archive and keys tables', must fit in 63 characters. (Asks to
    /// move a bookmark go through a procedure named after the bookmarks and leases tables,
    /// `evtstore_ask_` and a hash of their names, made when missing.)
    pub events_table: String,
    /// The bookmarks table (default `bookmarks`).
    pub bookmarks_table: String,
    /// The snapshots table (default `snapshots`).
    pub snapshots_table: String,
    /// The leases table (default `leases`). Stores that share a database need one each, as
    /// they do bookmarks tables.
    pub leases_table: String,
    /// The table of command ids that appends recorded (default `None`: `<events>_commands`,
    /// beside the events table).
    pub commands_table: Option<String>,
    /// The table of archived events (default `None`: `<events>_archive`, beside the events
    /// table).
    pub archive_table: Option<String>,
    /// The table of aggregates' keys, for encrypted aggregate kinds (default `None`:
    /// `<events>_keys`, beside the events table).
    pub keys_table: Option<String>,
    /// Most pooled connections (default 16); up to a quarter of them stay with the provider
    /// for loads and appends.
    pub pool_size: u32,
    /// How often this process gives positions to committed events that have none (events
    /// appended with `append_in`, or by a process that died before its pass), and checks for
    /// positions given by other processes, waking its handlers (default 10 ms: a pass that
    /// finds nothing to number takes about 0.1 ms, locks nothing, and wakes handlers of other
    /// processes 5 ms after an append on average).
    pub sequence_interval: Duration,
    /// How long an append or an aggregate's load that is the provider's only call polls for
    /// the server's answer before its thread sleeps (default 1 ms; zero: never; at most
    /// 10 ms). Waking a sleeping thread costs tens of microseconds on a small machine;
    /// polling costs the CPU of the wait, at most this long per call.
    pub poll_alone: Duration,
    /// How long connecting may take, and waiting for a pooled connection (default 10 s).
    pub connect_timeout: Duration,
    /// How long the server may take to answer a call of the provider: an append, a load, a
    /// page, a sequencer pass, each step of a transactional handler's page (default 30 s).
    /// A server that stops answering (a network that drops packets, a stopped process) gives
    /// [`Error::Unavailable`](evtstore_core::Error::Unavailable) naming this limit, rather
    /// than a wait with no end; an append may then have been stored or not. Lock waits give
    /// up at half of it (the sessions' `innodb_lock_wait_timeout`, in whole seconds, at
    /// least 1) as [`Error::Contention`](evtstore_core::Error::Contention). Not bounded by
    /// it: the migrations a first connection runs (one may rewrite every event), and
    /// `append_in`, which runs in your transaction.
    pub statement_timeout: Duration,
}

impl Default for MysqlOptions {
    fn default() -> Self {
        MysqlOptions {
            events_table: "events".into(),
            bookmarks_table: "bookmarks".into(),
            snapshots_table: "snapshots".into(),
            leases_table: "leases".into(),
            commands_table: None,
            archive_table: None,
            keys_table: None,
            pool_size: 16,
            sequence_interval: Duration::from_millis(10),
            poll_alone: Duration::from_millis(1),
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// Quoted table names, checked once.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub(crate) events: String,
    pub(crate) bookmarks: String,
    pub(crate) snapshots: String,
    pub(crate) leases: String,
    /// The command ids appends recorded, with the aggregate and version each appended.
    pub(crate) commands: String,
    /// Events moved out of the events table by an archiving, with every column.
    pub(crate) archive: String,
    /// Each aggregate's key, for encrypted aggregate kinds.
    pub(crate) keys: String,
    /// The sequencer's one-row counter of the last position given.
    pub(crate) sequence: String,
    /// The stored procedure that runs a sequencer pass.
    pub(crate) pass: String,
    /// The stored procedure that appends and numbers events in one transaction.
    pub(crate) add: String,
    /// The trigger that keeps the counter at or past the position of every deleted event.
    pub(crate) deleted: String,
    /// The stored procedure that applies an ask to move a leased bookmark (see
    /// [`ask_procedure_name`]), quoted, and as stored.
    pub(crate) ask: String,
    pub(crate) ask_name: String,
    /// The database's table of stores: each events table's schema version.
    pub(crate) migrations: String,
    /// The `GET_LOCK` name that serialises migrations of these tables.
    pub(crate) migration_lock: String,
    /// The events table's name as stored in `migrations`.
    pub(crate) events_name: String,
}

impl MysqlOptions {
    /// Refuses values no store can run with, naming the option.
    pub(crate) fn check(&self) -> Result<()> {
        check_above_zero("sequence_interval", self.sequence_interval)?;
        let pool_size = self.pool_size as usize;
        let (connect, statement) = (self.connect_timeout, self.statement_timeout);
        check_server_options(pool_size, connect, statement, self.poll_alone)
    }
}

impl Tables {
    pub(crate) fn new(options: &MysqlOptions) -> Result<Self> {
        let sequence = format!("{}_seq", options.events_table);
        let pass = format!("{}_pass", options.events_table);
        let add = format!("{}_add", options.events_table);
        let deleted = format!("{}_deleted", options.events_table);
        let ask = ask_procedure_name(&options.bookmarks_table, &options.leases_table);
        let beside = |table: &Option<String>, suffix: &str| {
            (table.clone()).unwrap_or_else(|| format!("{}_{suffix}", options.events_table))
        };
        let commands = beside(&options.commands_table, "commands");
        let archive = beside(&options.archive_table, "archive");
        let keys = beside(&options.keys_table, "keys");
        for name in [
            &options.events_table,
            &options.bookmarks_table,
            &options.snapshots_table,
            &options.leases_table,
            &commands,
            &archive,
            &keys,
            &sequence,
            &pass,
            &add,
            &deleted,
            &ask,
        ] {
            check_table(name)?;
        }
        let quoted = |table: &str| format!("`{table}`");
        Ok(Tables {
            events: quoted(&options.events_table),
            bookmarks: quoted(&options.bookmarks_table),
            snapshots: quoted(&options.snapshots_table),
            leases: quoted(&options.leases_table),
            commands: quoted(&commands),
            archive: quoted(&archive),
            keys: quoted(&keys),
            sequence: quoted(&sequence),
            pass: quoted(&pass),
            add: quoted(&add),
            deleted: quoted(&deleted),
            ask: quoted(&ask),
            ask_name: ask.clone(),
            migrations: quoted("evtstore_migrations"),
            migration_lock: format!("evtstore:{}", options.events_table),
            events_name: options.events_table.clone(),
        })
    }
}

/// The name of the procedure that applies asks (`procedures::ask_procedure`) on these
/// bookmarks and leases tables: `evtstore_ask_` and a hash of their names, so that stores of
/// other tables never share one, and a store whose tables change gets its own.
fn ask_procedure_name(bookmarks: &str, leases: &str) -> String {
    // FNV-1a, 64 bits: stable across Rust releases, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("v1\0{bookmarks}\0{leases}").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("evtstore_ask_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pair_of_bookmarks_and_leases_tables_has_its_own_ask_procedure() {
        let default = ask_procedure_name("bookmarks", "leases");
        let others = [
            ask_procedure_name("bookmarks_b", "leases"),
            ask_procedure_name("bookmarks", "leases_b"),
            ask_procedure_name("bookmarksleases", ""),
        ];
        assert!(others.iter().all(|other| *other != default), "{others:?}");
        assert!(default.len() <= 63 && default.starts_with("evtstore_ask_"));
    }

    #[test]
    fn refuses_bad_names_before_any_sql() {
        let bad = MysqlOptions {
            bookmarks_table: "b`; DROP TABLE x".into(),
            ..MysqlOptions::default()
        };
        let error = Tables::new(&bad).unwrap_err().to_string();
        assert!(error.contains("invalid table"), "{error}");
        let long = MysqlOptions {
            events_table: "e".repeat(60),
            ..MysqlOptions::default()
        };
        assert!(
            Tables::new(&long).is_err(),
            "its `_seq` table would be too long"
        );
        let tables = Tables::new(&MysqlOptions::default()).unwrap();
        assert_eq!(tables.sequence, "`events_seq`");
        assert_eq!(tables.commands, "`events_commands`");
        let bad_commands = MysqlOptions {
            commands_table: Some("c`x".into()),
            ..MysqlOptions::default()
        };
        assert!(Tables::new(&bad_commands).is_err());
        assert_eq!(
            (tables.archive.as_str(), tables.keys.as_str()),
            ("`events_archive`", "`events_keys`")
        );
        for bad in [
            MysqlOptions {
                archive_table: Some("a`x".into()),
                ..MysqlOptions::default()
            },
            MysqlOptions {
                keys_table: Some("k x".into()),
                ..MysqlOptions::default()
            },
        ] {
            assert!(Tables::new(&bad).is_err(), "{bad:?}");
        }
    }
}
