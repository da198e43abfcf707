//! The statements, written once per table set.
//!
//! # Positions: why no event is ever skipped
//! A sequence value is visible before its row commits, so a reader trusting
//! `position > bookmark` can pass an event that commits late. Here an event's position is its
//! transaction's id shifted left by 20 bits, plus its index within the transaction. Readers
//! return only events of transactions below `pg_snapshot_xmin(pg_current_snapshot())`, the
//! oldest transaction still running: every transaction below it has committed or rolled back,
//! and every later one has a larger id, so no event can ever appear below a position a reader
//! has passed. No lock orders the appends, and no gap is skipped after a timeout. Positions are
//! sparse: they grow, but not by one.
//!
//! Transaction ids are the server's, so a store moved to another server (a restore from a
//! dump, a logical-replication upgrade) would take lower ones. Each store keeps an offset,
//! added to every transaction id, that `positions` raises when a connection finds the
//! server's counter behind the highest stored position: positions never go backwards.
//!
//! An aggregate's events take increasing positions too. An append in a transaction of its own
//! takes its id after every committed event it saw; an append inside a caller's transaction
//! that took its id earlier is refused when the aggregate's last event lies above it
//! ([`Error::StaleTransaction`](evtstore_core::Error::StaleTransaction)).
//!
//! A page that comes back short while committed events wait beyond the horizon (behind a
//! transaction still running) is read again after a short wait, so a run started after a
//! commit handles it. The page's statement itself tells (a second statement would see a later
//! horizon, below which the held-back event may already be: the reader would stop without it).

use std::borrow::Cow;

use evtstore_core::provider::check_stream;

use crate::lease::LeaseSql;
use crate::retire::RetireSql;
use crate::tables::Tables;

/// The SQL of one table set.
pub(crate) struct Sql {
    pub(crate) append: String,
    pub(crate) append_one: String,
    pub(crate) append_in: String,
    pub(crate) current_version: String,
    pub(crate) aggregate_events: String,
    pub(crate) aggregates_events: String,
    pub(crate) last_aggregate_event: String,
    pub(crate) streams: String,
    pub(crate) bookmark: String,
    pub(crate) set_bookmark: String,
    pub(crate) lock_handler: String,
    pub(crate) try_lock_handler: String,
    pub(crate) snapshot: String,
    pub(crate) record_commands: String,
    pub(crate) command: String,
    pub(crate) save_snapshot: String,
    pub(crate) stale: String,
    pub(crate) clock: String,
    pub(crate) raise_offset: String,
    pub(crate) lease: LeaseSql,
    pub(crate) retire: RetireSql,
    /// A page of streams given as `$3` (see [`Sql::page`]).
    events_listed: String,
    /// The last event, and the last visible one, of streams given as `$1` (see [`Sql::last`]).
    last_listed: [String; 2],
    /// The events table, and the horizon's expression, for [`Sql::page`].
    events: String,
    horizon: String,
}

/// Columns of a stored event, in the order `read::event_from_row` takes them.
pub(crate) const EVENT_COLUMNS: &str =
    "stream, aggregate_id, version, position, timestamp_ms, data::text,
    event_id, correlation_id, causation_id, metadata, revision";

/// The store's offset, added to every transaction id (see the module docs).
fn offset(t: &Tables) -> String {
    format!(
        "(SELECT xid_offset FROM {} WHERE events_table = '{}')",
        t.migrations, t.events
    )
}

impl Sql {
    pub(crate) fn new(t: &Tables) -> Self {
        let events = &t.events;
        let offset = offset(t);
        // The highest position readers may see: below the oldest running transaction.
        let horizon =
            format!("((pg_snapshot_xmin(pg_current_snapshot())::text::bigint + {offset}) << 20)");
        let next_xid = "pg_snapshot_xmax(pg_current_snapshot())::text::bigint";
        Sql {
            append: append(t, &offset, true),
            append_one: append_one(t, &offset),
            append_in: append(t, &offset, false),
            current_version: format!(
                "SELECT COALESCE(MAX(version), 0) FROM {events} WHERE stream = $1 AND aggregate_id = $2"
            ),
            aggregate_events: format!(
                "SELECT {EVENT_COLUMNS} FROM {events}
                 WHERE stream = $1 AND aggregate_id = $2 AND version > $3 ORDER BY version"
            ),
            // Several aggregates at once; `n` says which request each row answers. Each
            // aggregate's events come from the version index (LATERAL): with a plain join, a
            // statement prepared while the table was small kept a hash join over a scan of
            // every event (41 ms a read at 300,000 events, against 0.1 ms).
            aggregates_events: format!(
                "SELECT e.*, x.n
                 FROM unnest($1::text[], $2::text[], $3::bigint[])
                    WITH ORDINALITY AS x(stream, aggregate_id, after, n),
                 LATERAL (SELECT {EVENT_COLUMNS} FROM {events}
                    WHERE stream = x.stream AND aggregate_id = x.aggregate_id
                        AND version > x.after
                    ORDER BY version OFFSET 0) AS e
                 ORDER BY x.n, e.version"
            ),
            last_aggregate_event: format!(
                "SELECT {EVENT_COLUMNS} FROM {events}
                 WHERE aggregate_id = $2 AND stream = ANY($1) ORDER BY position DESC LIMIT 1"
            ),
            streams: format!("SELECT DISTINCT stream FROM {events} ORDER BY stream"),
            bookmark: format!("SELECT position FROM {} WHERE name = $1", t.bookmarks),
            set_bookmark: format!(
                "INSERT INTO {} (name, position) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                t.bookmarks
            ),
            lock_handler: format!(
                "SELECT pg_advisory_xact_lock(hashtext('{}'), hashtext($1))",
                t.bookmarks
            ),
            try_lock_handler: format!(
                "SELECT pg_try_advisory_xact_lock(hashtext('{}'), hashtext($1))",
                t.bookmarks
            ),
            record_commands: format!(
                "INSERT INTO {} (command_id, stream, aggregate_id, version)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[])",
                t.commands
            ),
            command: format!(
                "SELECT stream, aggregate_id, version FROM {} WHERE command_id = $1",
                t.commands
            ),
            snapshot: format!(
                "SELECT tag, version, position, state FROM {}
                 WHERE stream = $1 AND aggregate_id = $2",
                t.snapshots
            ),
            save_snapshot: format!(
                "INSERT INTO {s} AS kept (stream, aggregate_id, tag, version, position, state)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (stream, aggregate_id) DO UPDATE SET
                   tag = excluded.tag, version = excluded.version,
                   position = excluded.position, state = excluded.state
                 WHERE excluded.tag <> kept.tag OR excluded.version >= kept.version",
                s = t.snapshots
            ),
            // Whether an aggregate's last event lies above this transaction's positions.
            stale: format!(
                "SELECT position > (pg_current_xact_id()::text::bigint + {offset}) << 20
                 FROM {events} WHERE stream = $1 AND aggregate_id = $2
                 ORDER BY version DESC LIMIT 1"
            ),
            // The last stored transaction, and the next one this server gives, both offset.
            clock: format!(
                "SELECT COALESCE((SELECT MAX(position) FROM {events}), 0) >> 20, {next_xid} + {offset}"
            ),
            raise_offset: format!(
                "UPDATE {m} SET xid_offset = GREATEST(xid_offset,
                    (COALESCE((SELECT MAX(position) FROM {events}), 0) >> 20) + 1 - {next_xid})
                 WHERE events_table = '{events}' RETURNING xid_offset",
                m = t.migrations
            ),
            lease: LeaseSql::new(t),
            retire: RetireSql::new(t),
            events_listed: format!(
                "SELECT e.*, e.position < h.below AS visible
                 FROM unnest($3::text[]) AS s(stream), (SELECT {horizon} AS below) AS h,
                 LATERAL (SELECT {EVENT_COLUMNS} FROM {events}
                    WHERE stream = s.stream AND position > $1
                    ORDER BY position LIMIT $2) AS e
                 ORDER BY e.position LIMIT $2"
            ),
            last_listed: [false, true].map(|visible_only| {
                let below = if visible_only {
                    " AND position < h.below"
                } else {
                    ""
                };
                format!(
                    "SELECT e.*, e.position < h.below AS visible
                     FROM unnest($1::text[]) AS s(stream), (SELECT {horizon} AS below) AS h,
                     LATERAL (SELECT {EVENT_COLUMNS} FROM {events}
                        WHERE stream = s.stream{below} ORDER BY position DESC LIMIT 1) AS e
                     ORDER BY e.position DESC LIMIT 1"
                )
            }),
            events: events.clone(),
            horizon,
        }
    }
}

/// Most streams a statement names (see [`Sql::page`]); more are given as a parameter.
const NAMED_STREAMS: usize = 32;

/// A read of streams: its statement, and whether it takes the streams as its last parameter
/// (else it names them).
pub(crate) struct StreamsSql<'a> {
    pub(crate) sql: Cow<'a, str>,
    pub(crate) lists_streams: bool,
}

impl Sql {
    /// A page of the events of `streams` after position `$1`, at most `$2`, in position order,
    /// each marked whether it lies below the horizon; `$3` holds the streams when the statement
    /// lists them. Events at or beyond the horizon come too: the reader stops before them, and
    /// knows from this same snapshot that committed events wait.
    ///
    /// Up to [`NAMED_STREAMS`] streams whose names are names (letters, digits, `_`, `-`, `.`)
    /// are written into the statement, so that the plan a connection keeps for it is made for
    /// them: with the name a parameter, a plan made where another stream holds most events
    /// walked the primary key and filtered out the other streams' later events (a rare
    /// stream's page of 300 events read 300,000 rows, 34 ms against 0.5 ms). Each stream's
    /// page comes in order from the (stream, position) index; several are merged (`UNION ALL`
    /// under `ORDER BY`: a merge, no sort). Other lists (a whole store's streams, or a name
    /// that no append could have stored) go as a parameter, one statement for all.
    pub(crate) fn page(&self, streams: &[String]) -> StreamsSql<'_> {
        let Some(names) = named(streams) else {
            return listed(&self.events_listed);
        };
        let (events, horizon) = (&self.events, &self.horizon);
        let sql = match names.as_slice() {
            [one] => format!(
                "SELECT {EVENT_COLUMNS}, position < h.below AS visible
                 FROM (SELECT {horizon} AS below) AS h, {events}
                 WHERE stream = '{one}' AND position > $1 ORDER BY position LIMIT $2"
            ),
            several => format!(
                "SELECT e.*, e.position < h.below AS visible
                 FROM (SELECT {horizon} AS below) AS h, ({}) AS e
                 ORDER BY e.position LIMIT $2",
                each(several, |name| format!(
                    "SELECT {EVENT_COLUMNS} FROM {events}
                     WHERE stream = '{name}' AND position > $1 ORDER BY position LIMIT $2"
                ))
            ),
        };
        StreamsSql {
            sql: Cow::Owned(sql),
            lists_streams: false,
        }
    }

    /// The last committed event of `streams` (of those below the horizon when
    /// `visible_only`), marked whether it lies below the horizon; `$1` holds the streams when
    /// the statement lists them. Named as in [`Sql::page`], and for the same reason: from the
    /// end of the primary key, a rare stream's last event is found only after every later event
    /// of the others.
    pub(crate) fn last(&self, streams: &[String], visible_only: bool) -> StreamsSql<'_> {
        let Some(names) = named(streams) else {
            return listed(&self.last_listed[usize::from(visible_only)]);
        };
        let (events, horizon) = (&self.events, &self.horizon);
        let below = if visible_only {
            " AND position < h.below"
        } else {
            ""
        };
        let sql = format!(
            "SELECT e.*, e.position < h.below AS visible
             FROM (SELECT {horizon} AS below) AS h, LATERAL ({}) AS e
             ORDER BY e.position DESC LIMIT 1",
            each(&names, |name| format!(
                "SELECT {EVENT_COLUMNS} FROM {events}
                 WHERE stream = '{name}'{below} ORDER BY position DESC LIMIT 1"
            ))
        );
        StreamsSql {
            sql: Cow::Owned(sql),
            lists_streams: false,
        }
    }
}

/// The streams a statement may name: sorted, without repeats, at most [`NAMED_STREAMS`], each
/// a name; none when the statement must take them as a parameter.
fn named(streams: &[String]) -> Option<Vec<&str>> {
    let mut names: Vec<&str> = streams.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let fits = !names.is_empty() && names.len() <= NAMED_STREAMS;
    (fits && names.iter().all(|name| check_stream(name).is_ok())).then_some(names)
}

/// The statement that lists its streams.
fn listed(sql: &str) -> StreamsSql<'_> {
    StreamsSql {
        sql: Cow::Borrowed(sql),
        lists_streams: true,
    }
}

/// Each name's query, in brackets, joined by `UNION ALL`.
fn each(names: &[&str], query: impl Fn(&str) -> String) -> String {
    let queries: Vec<String> = names
        .iter()
        .map(|name| format!("({})", query(name)))
        .collect();
    queries.join(" UNION ALL ")
}

/// [`append`] for one event in a transaction of its own, with plain parameters: no arrays to
/// encode and unnest (0.31 ms of server time against 0.34–0.35 ms, `pgbench -M prepared`).
///
/// `$1..$10`: the event's stream, id, version, body, event id, correlation and causation ids,
/// metadata, revision and timestamp (NULL: now); `$11`: the aggregate's expected version.
fn append_one(t: &Tables, offset: &str) -> String {
    let events = &t.events;
    format!(
        "WITH last AS (
            SELECT version, position FROM {events}
            WHERE stream = $1::text AND aggregate_id = $2::text ORDER BY version DESC LIMIT 1
        ), base AS (SELECT (pg_current_xact_id()::text::bigint + {offset}) << 20 AS position)
        INSERT INTO {events} (position, stream, aggregate_id, version, data, event_id,
            correlation_id, causation_id, metadata, revision, timestamp_ms)
        SELECT base.position + 1, $1, $2, $3::bigint, $4::text::jsonb, $5::uuid, $6::uuid,
            $7::uuid, $8::text, $9::int,
            COALESCE($10::bigint, (extract(epoch FROM now()) * 1000)::bigint)
        FROM base
        WHERE COALESCE((SELECT version FROM last), 0) = $11::bigint
            AND COALESCE((SELECT position FROM last), 0) <= base.position
        RETURNING position, timestamp_ms"
    )
}

/// One statement that checks every aggregate's version and inserts all events, or none.
///
/// `$1..$4`: the events' streams, ids, versions and bodies; `$5..$7`: each aggregate's stream,
/// id and expected current version; `$8..$13`: the events' ids, correlation and causation ids,
/// metadata, revisions and timestamps (NULL: now). Returns the new positions and timestamps, in order; none
/// when a version is not as expected, when an aggregate's last event lies above the new
/// positions, or when the transaction would pass its 2^20 positions.
fn append(t: &Tables, offset: &str, fresh_transaction: bool) -> String {
    let events = &t.events;
    let xid = format!("(pg_current_xact_id()::text::bigint + {offset})");
    // In a transaction of its own the append is the first: its positions start at xid << 20.
    // In a caller's transaction, earlier appends may have taken some already.
    let base = if fresh_transaction {
        format!("SELECT {xid} << 20 AS position")
    } else {
        format!(
            "SELECT COALESCE(MAX(position), {xid} << 20) AS position FROM {events}
             WHERE position > {xid} << 20 AND position < ({xid} + 1) << 20"
        )
    };
    format!(
        "WITH expected AS (
            SELECT x.current, COALESCE(last.version, 0) AS actual, COALESCE(last.position, 0) AS at
            FROM unnest($5::text[], $6::text[], $7::bigint[]) AS x(stream, aggregate_id, current)
            LEFT JOIN LATERAL (SELECT e.version, e.position FROM {events} e
                WHERE e.stream = x.stream AND e.aggregate_id = x.aggregate_id
                ORDER BY e.version DESC LIMIT 1) AS last ON true
        ), base AS ({base}), inserted AS (
            INSERT INTO {events} (position, stream, aggregate_id, version, data, event_id,
                correlation_id, causation_id, metadata, revision, timestamp_ms)
            SELECT base.position + n.ord, n.stream, n.aggregate_id, n.version, n.data::jsonb,
                n.event_id, n.correlation_id, n.causation_id, n.metadata, n.revision,
                COALESCE(n.at, (extract(epoch FROM now()) * 1000)::bigint)
            FROM base, unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $8::uuid[],
                    $9::uuid[], $10::uuid[], $11::text[], $12::int[], $13::bigint[])
                WITH ORDINALITY AS n(stream, aggregate_id, version, data, event_id,
                    correlation_id, causation_id, metadata, revision, at, ord)
            WHERE (SELECT bool_and(current = actual AND at <= base.position) FROM expected)
                AND base.position + cardinality($1::text[]) < ({xid} + 1) << 20
            RETURNING position, timestamp_ms
        )
        SELECT position, timestamp_ms FROM inserted ORDER BY position"
    )
}

#[cfg(test)]
mod tests {
    use tokio_postgres::NoTls;

    use super::*;
    use crate::{PgOptions, PgProvider};

    /// The reads a pooled connection repeats come through the right index, whether their plan
    /// was made on an empty table that then grew (as a connection's cached statement may be),
    /// or on an analysed table where one stream holds almost every event: a grouped load
    /// through the version index, never a scan of every event; a page of a rare stream from
    /// the stream's index, never the primary key filtered by stream, nor a sort; a page of
    /// several streams merged, not sorted; a rare stream's last event from its index too.
    #[tokio::test]
    async fn reads_use_their_index_on_a_grown_or_skewed_table() {
        let Ok(url) = std::env::var("EVTSTORE_PG_URL") else {
            eprintln!("skipped: EVTSTORE_PG_URL is not set");
            return;
        };
        let named = |sql: &Sql, names: &[&str]| sql.page(&strings(names)).sql.into_owned();
        let last = |sql: &Sql| sql.last(&strings(&["rare"]), false).sql.into_owned();
        let plans = plans_once_grown(&url, |sql| {
            [
                (
                    "grouped",
                    "text[], text[], bigint[]",
                    sql.aggregates_events.clone(),
                ),
                ("page", "bigint, bigint", named(&sql, &["rare"])),
                ("pages", "bigint, bigint", named(&sql, &["rare", "counter"])),
                ("last", "", last(&sql)),
            ]
        })
        .await;
        for [grouped, page, pages, last] in plans {
            assert!(last.contains("events_stream_position_idx"), "{last}");
            assert!(!last.contains("events_pkey"), "{last}");
            assert!(grouped.contains("Index Scan"), "{grouped}");
            assert!(!grouped.contains("Seq Scan"), "{grouped}");
            assert!(page.contains("events_stream_position_idx"), "{page}");
            assert!(
                !page.contains("events_pkey") && !page.contains("Sort"),
                "{page}"
            );
            assert!(pages.contains("Merge Append"), "{pages}");
            assert!(
                !pages.contains("Seq Scan") && !pages.contains("Sort  ("),
                "{pages}"
            );
        }
    }

    /// Only names are written into a read's statement, at most [`NAMED_STREAMS`] of them;
    /// anything else goes as a parameter. The same streams in any order make one statement.
    #[test]
    fn reads_name_only_a_few_streams_that_are_names() {
        let sql = Sql::new(&Tables::new(&PgOptions::default()).unwrap());
        let page = |names: &[&str]| sql.page(&strings(names));
        assert!(!page(&["counter"]).lists_streams);
        let odd = page(&["counter", "x' OR 1=1 --"]);
        assert!(odd.lists_streams && !odd.sql.contains("OR 1=1"));
        let many: Vec<String> = (0..=NAMED_STREAMS).map(|n| format!("s{n}")).collect();
        assert!(sql.page(&many).lists_streams);
        assert!(page(&[]).lists_streams);
        assert_eq!(page(&["b", "a", "b"]).sql, page(&["a", "b"]).sql);
        let last = |names: &[&str]| sql.last(&strings(names), true);
        assert!(!last(&["counter"]).lists_streams && last(&["x' --"]).lists_streams);
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    /// The plans of `statements` (name, parameter types, SQL), each prepared and run once on
    /// an empty store; explained once 50,000 events are in it (one in a thousand of stream
    /// `rare`, the others of `counter`), and again once the table is analysed.
    async fn plans_once_grown<const N: usize>(
        url: &str,
        statements: impl FnOnce(Sql) -> [(&'static str, &'static str, String); N],
    ) -> [[String; N]; 2] {
        let schema = format!("evt_t_plan_{}", std::process::id());
        let options = PgOptions {
            schema: schema.clone(),
            ..PgOptions::default()
        };
        drop(
            PgProvider::connect_with(url, options.clone())
                .await
                .unwrap(),
        ); // the tables
        let tables = Tables::new(&options).unwrap();
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let statements = statements(Sql::new(&tables));
        let args = |types: &str| match types {
            "text[], text[], bigint[]" => "('{counter,counter}', '{a1,a2}', '{0,0}')",
            "" => "",
            _ => "(0, 1000)",
        };
        let mut setup = String::from("SET plan_cache_mode = force_generic_plan;");
        for (name, types, sql) in &statements {
            let args = args(types);
            let types = if types.is_empty() {
                String::new()
            } else {
                format!("({types})")
            };
            setup += &format!("PREPARE {name}{types} AS {sql}; EXECUTE {name}{args};");
        }
        setup += &format!(
            "INSERT INTO {} (position, stream, aggregate_id, version, data)
             SELECT i, CASE WHEN i % 1000 = 0 THEN 'rare' ELSE 'counter' END,
                'a' || (i % 1000), i / 1000 + 1, '{{}}'
             FROM generate_series(1, 50000) i",
            tables.events
        );
        client.batch_execute(&setup).await.unwrap();
        let mut plans = Vec::new();
        for analyse in [false, true] {
            if analyse {
                let analyse = format!("ANALYZE {}", tables.events);
                client.batch_execute(&analyse).await.unwrap();
            }
            for (name, types, _) in &statements {
                let explain = format!("EXPLAIN EXECUTE {name}{}", args(types));
                let rows = client.query(&explain, &[]).await.unwrap();
                let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
                plans.push(plan.join("\n"));
            }
        }
        let drop_schema = format!("DROP SCHEMA \"{schema}\" CASCADE");
        client.batch_execute(&drop_schema).await.unwrap();
        let mut plans = plans.into_iter();
        [(); 2].map(|()| std::array::from_fn(|_| plans.next().unwrap()))
    }
}
