//! The stored procedures: the sequencer's pass (`<events>_pass`), the append that inserts
//! and numbers its events in one transaction (`<events>_add`), and a holder's application of
//! another process's ask to move its bookmark (`evtstore_ask_…`, named after the bookmarks
//! and leases tables it uses). Each is one round trip.
//!
//! Both number waiting events the same way (see `sequencer`), and `_add` so numbers its own
//! when any wait (else it inserts them at their positions): under the counter's row lock,
//! committed rows without a position (and, in `_add`, the transaction's own rows) are found with a
//! consistent (non-locking) read in READ COMMITTED, so rows of open transactions are neither
//! seen nor waited for; they are numbered in `id` order into a temporary table of the session,
//! and then updated through their primary key (`STRAIGHT_JOIN` from that table), which locks
//! those rows only. (`SELECT … INTO`, not `IF EXISTS (SELECT …)`: in a routine, a subquery of
//! an expression is a locking read, and would wait for open writers' rows.)
//!
//! An error of that multi-table `UPDATE` (checked on MariaDB 10.11 with a duplicate
//! position, error 1062) runs no handler of the routine: the transaction stays open, holding
//! the counter's lock, until its connection ends. So a connection whose call failed is
//! closed, never given back to the pool.
//!
//! A migration that changes a procedure replaces it in one statement (`CREATE OR REPLACE`,
//! MariaDB's): other processes' calls meanwhile find the old one or the new one, never none
//! (a `DROP` then a `CREATE` failed their appends in between: "PROCEDURE does not exist").

use crate::tables::Tables;

/// The columns an insert of events sets, in this order.
pub(crate) const INSERTED: &str = "stream, aggregate_id, version, timestamp_ms, data, event_id, \
    correlation_id, causation_id, metadata, revision";

/// Most events one pass numbers (its session table is in memory); a pass that numbers this
/// many is followed by another.
pub(crate) const PASS_ROWS: usize = 50_000;

/// The sequencer pass: returns one row, `(events numbered, last position)`.
pub(crate) fn pass_procedure(t: &Tables) -> String {
    format!(
        "CREATE OR REPLACE PROCEDURE {pass}()
        BEGIN
          DECLARE last_pos BIGINT;
          DECLARE numbered BIGINT DEFAULT 0;
          DECLARE waiting BIGINT DEFAULT NULL;
          DECLARE top_pos BIGINT;
          DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
          {session_table}
          SELECT id INTO waiting FROM {events} WHERE position IS NULL LIMIT 1;
          IF waiting IS NOT NULL THEN
            SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
            START TRANSACTION;
            {last_pos}
            {number}
            UPDATE {seq} SET last = last_pos + numbered WHERE id = 1;
            COMMIT;
          END IF;
          SELECT COALESCE(MAX(position), 0) INTO top_pos FROM {events};
          SELECT numbered, GREATEST(last, top_pos) FROM {seq} WHERE id = 1;
        END",
        pass = t.pass,
        events = t.events,
        seq = t.sequence,
        last_pos = last_position(t),
        session_table = session_table(t),
        number = number(t),
    )
}

/// The append, in one transaction: checks the versions, locks the counter, inserts the events
/// at their positions (or numbers them after any committed events still waiting) and commits.
/// Its arguments are `(events, expected, timestamp_ms, stream, aggregate id, version, data,
/// event id, correlation id, causation id, metadata, revision, own timestamp_ms)`: one event
/// is given in the last ten (`events` and `expected` NULL; the ids as 16 bytes); several as
/// JSON arrays, `events` of `[stream, aggregate id, version, data, event id, correlation id,
/// causation id, metadata, revision, own timestamp_ms]` (ids as 32 hex digits; `null` for what
/// is absent) and `expected` of `[stream, aggregate id, current version]` (the last ten NULL).
/// An event without a timestamp of its own takes `timestamp_ms`.
///
/// A first plain (non-locking) read checks that each aggregate expected at a version above 0
/// has that version (else the append would leave a gap) and, with several events, that the
/// next versions are free; it also looks for a committed event waiting for a position. Then
/// a locking read checks that the next version is not taken: a version another open
/// transaction (`append_in`, an append recording command ids) has inserted is waited for
/// there, before the counter is locked, so other processes' appends go on meanwhile. With
/// several events, the plain read comes first so that the locking read, which may wait for one
/// aggregate's row, holds no lock on another's committed row that a numbering would wait for.
/// A writer that takes a version between the check and the insert fails the insert on the
/// unique version (error 1062).
///
/// When that read saw no committed event waiting for a position, the counter is locked and
/// the events are inserted at their positions: no row is written twice, and the look reads
/// only unnumbered rows (rows inserted without a position and then numbered leave
/// delete-marked entries under `position IS NULL` until InnoDB purges them, which it would
/// read through). Otherwise they are inserted without one and numbered with the waiting
/// events, in `id` order. Looking before the counter is locked keeps each aggregate's versions
/// in position order because the look and the version check are one statement, so one read
/// view (READ COMMITTED): a waiting event of the aggregate is committed, so the read that
/// found the version before this append's also found it waiting (split into two statements,
/// the version could commit, waiting, between them). The same holds for any event the caller
/// saw committed before the call. An event that commits waiting after that read was appended
/// concurrently with this one, and is numbered before or after it, as a pass or this append
/// takes the counter first.
///
/// Returns rows `(kind, a, b)`: when an aggregate is not at its expected version,
/// `(1, index in expected, actual version)` for each such, and nothing is written. Else
/// either one row `(3, first position, last position)` when the events took consecutive
/// positions in order, or `(0, index in events, position)` for each event (position 0 if a
/// backlog of more than [`PASS_ROWS`] waiting events left it unnumbered) and
/// `(2, 0, last position)`.
///
/// Events inserted at their positions are inserted with no `ORDER BY`: sorting rows that hold
/// `LONGTEXT` takes a temporary table on disk, 0.2 ms of a group of 16's call. Events numbered
/// later are sorted, as their `id` order is their position order.
///
/// Events are found through `by_version` by force: with one stream in the table, the
/// optimizer would pick `by_stream` for a JSON row's `(stream, aggregate)` and read every
/// event of the stream (20 ms instead of 0.3 ms for twelve aggregates of 3,000 events). And
/// from the JSON rows (`STRAIGHT_JOIN`): on a table of a few rows the optimizer scanned the
/// whole index first, and the locking read then waited for every open transaction's rows,
/// not only those of its aggregates.
pub(crate) fn add_procedure(t: &Tables) -> String {
    let events = &t.events;
    let expected = json_expected("expected");
    let new = json_events("evts");
    let version_of = |s: &str, a: &str| {
        format!(
            "(SELECT COALESCE(MAX(version), 0) FROM {events} e FORCE INDEX (by_version)
              WHERE e.stream = {s} AND e.aggregate_id = {a})"
        )
    };
    format!(
        "CREATE OR REPLACE PROCEDURE {add}(IN evts LONGTEXT CHARACTER SET utf8mb4,
          IN expected LONGTEXT CHARACTER SET utf8mb4, IN ts BIGINT,
          IN one_s VARBINARY(1020), IN one_a VARBINARY(1020), IN one_v BIGINT,
          IN one_d LONGTEXT CHARACTER SET utf8mb4, IN one_i BINARY(16), IN one_co BINARY(16),
          IN one_ca BINARY(16), IN one_m LONGTEXT CHARACTER SET utf8mb4, IN one_r INT UNSIGNED,
          IN one_t BIGINT)
        BEGIN
          DECLARE last_pos BIGINT;
          DECLARE numbered BIGINT DEFAULT 0;
          DECLARE bad BIGINT DEFAULT 0;
          DECLARE first_id BIGINT;
          DECLARE added BIGINT;
          DECLARE waiting BIGINT DEFAULT NULL;
          DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
          SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
          START TRANSACTION;
          IF evts IS NULL THEN
            SELECT one_v > 1 AND NOT EXISTS (SELECT 1 FROM {events} FORCE INDEX (by_version)
                WHERE stream = one_s AND aggregate_id = one_a AND version = one_v - 1),
              ({waiting})
              INTO bad, waiting;
            IF bad = 0 THEN
              SELECT COUNT(*) INTO bad FROM {events} FORCE INDEX (by_version)
                WHERE stream = one_s AND aggregate_id = one_a AND version = one_v
                LOCK IN SHARE MODE;
            END IF;
          ELSE
            SELECT COALESCE(SUM(x.c > 0 AND e.id IS NULL OR f.id IS NOT NULL), 0), ({waiting})
              INTO bad, waiting FROM {expected}
              LEFT JOIN {events} e FORCE INDEX (by_version)
                ON e.stream = x.s AND e.aggregate_id = x.a AND e.version = x.c
              LEFT JOIN {events} f FORCE INDEX (by_version)
                ON f.stream = x.s AND f.aggregate_id = x.a AND f.version = x.c + 1;
            IF bad = 0 THEN
              SELECT COUNT(*) INTO bad FROM {expected}
                STRAIGHT_JOIN {events} e FORCE INDEX (by_version)
                  ON e.stream = x.s AND e.aggregate_id = x.a AND e.version = x.c + 1
                LOCK IN SHARE MODE;
            END IF;
          END IF;
          IF bad > 0 THEN
            ROLLBACK;
            IF evts IS NULL THEN
              SELECT 1, 0, {one_version};
            ELSE
              SELECT 1, CAST(t.n - 1 AS SIGNED), t.actual FROM
                (SELECT x.n, x.c, {x_version} AS actual FROM {expected}) t
              WHERE t.actual <> t.c;
            END IF;
          ELSE
            SET added = COALESCE(JSON_LENGTH(evts), 1);
            {last_pos}
            UPDATE {seq} SET last = last_pos + added WHERE id = 1;
            IF waiting IS NULL THEN
              IF evts IS NULL THEN
                INSERT INTO {events} (position, {INSERTED})
                  VALUES (last_pos + 1, one_s, one_a, one_v, COALESCE(one_t, ts), one_d, one_i,
                    one_co, one_ca, one_m, one_r);
              ELSE
                INSERT INTO {events} (position, {INSERTED})
                  SELECT last_pos + j.n, j.s, j.a, j.v, COALESCE(j.t, ts), j.d, UNHEX(j.i),
                    UNHEX(j.co), UNHEX(j.ca), j.m, j.r FROM {new};
              END IF;
              SELECT 3, last_pos + 1, last_pos + added;
            ELSE
              IF evts IS NULL THEN
                INSERT INTO {events} ({INSERTED})
                  VALUES (one_s, one_a, one_v, COALESCE(one_t, ts), one_d, one_i, one_co,
                    one_ca, one_m, one_r);
              ELSE
                INSERT INTO {events} ({INSERTED})
                  SELECT j.s, j.a, j.v, COALESCE(j.t, ts), j.d, UNHEX(j.i), UNHEX(j.co),
                    UNHEX(j.ca), j.m, j.r FROM {new} ORDER BY j.n;
              END IF;
              SET first_id = LAST_INSERT_ID();
              {session_table}
              {number}
              UPDATE {seq} SET last = last_pos + numbered WHERE id = 1;
              IF evts IS NULL THEN
                SELECT 0, 0, COALESCE(position, 0) FROM {events} WHERE id = first_id
                UNION ALL SELECT 2, 0, last_pos + numbered;
              ELSE
                SELECT 0, CAST(j.n - 1 AS SIGNED), COALESCE(e.position, 0) FROM {new}
                  STRAIGHT_JOIN {events} e FORCE INDEX (by_version)
                    ON e.stream = j.s AND e.aggregate_id = j.a AND e.version = j.v
                UNION ALL SELECT 2, 0, last_pos + numbered;
              END IF;
            END IF;
            COMMIT;
          END IF;
        END",
        add = t.add,
        seq = t.sequence,
        last_pos = last_position(t),
        one_version = version_of("one_s", "one_a"),
        x_version = version_of("x.s", "x.a"),
        session_table = session_table(t),
        number = number(t),
        waiting = format!("SELECT id FROM {events} WHERE position IS NULL LIMIT 1"),
    )
}

/// The rows of `source`, JSON of each aggregate's `[stream, aggregate id, current version]`,
/// as table `x` (`n`, `s`, `a`, `c`).
pub(crate) fn json_expected(source: &str) -> String {
    format!(
        "JSON_TABLE({source}, '$[*]' COLUMNS (n FOR ORDINALITY,
        s VARBINARY(1020) PATH '$[0]', a VARBINARY(1020) PATH '$[1]', c BIGINT PATH '$[2]')) x"
    )
}

/// The rows of `source`, JSON of each event's `[stream, aggregate id, version, data, event id,
/// correlation id, causation id, metadata, revision, own timestamp]` (ids as 32 hex digits), as
/// table `j` (`n`, `s`, `a`, `v`, `d`, `i`, `co`, `ca`, `m`, `r`, `t`).
pub(crate) fn json_events(source: &str) -> String {
    format!(
        "JSON_TABLE({source}, '$[*]' COLUMNS (n FOR ORDINALITY,
        s VARBINARY(1020) PATH '$[0]', a VARBINARY(1020) PATH '$[1]', v BIGINT PATH '$[2]',
        d LONGTEXT CHARACTER SET utf8mb4 PATH '$[3]', i CHAR(32) PATH '$[4]',
        co CHAR(32) PATH '$[5]', ca CHAR(32) PATH '$[6]',
        m LONGTEXT CHARACTER SET utf8mb4 PATH '$[7]', r INT UNSIGNED PATH '$[8]',
        t BIGINT PATH '$[9]')) j"
    )
}

/// A holder's application of another process's ask (`Provider::apply_ask_leased`), in one
/// transaction the server runs to its end (as every lease change is one statement: a process
/// paused between two statements of its own would keep the lease row locked). Its arguments
/// are `(lease name, owner, token, position, ask, asked)`; it returns one row, 1 when the lease
/// was held (the bookmark saved, and the ask deleted if it still held `asked`), else 0 and
/// nothing written.
pub(crate) fn ask_procedure(t: &Tables) -> String {
    format!(
        "CREATE OR REPLACE PROCEDURE {ask}(IN lease_name VARBINARY(200),
          IN lease_owner VARBINARY(255), IN lease_token BIGINT, IN at BIGINT,
          IN ask_name VARBINARY(200), IN asked BIGINT)
        BEGIN
          DECLARE held BIGINT DEFAULT 0;
          DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;
          START TRANSACTION;
          SELECT COUNT(*) INTO held FROM {leases}
            WHERE name = lease_name AND owner = lease_owner AND token = lease_token
              AND expires_at > {now}
            LOCK IN SHARE MODE;
          IF held > 0 THEN
            INSERT INTO {bookmarks} (name, position) VALUES (lease_name, at)
              ON DUPLICATE KEY UPDATE position = VALUES(position);
            DELETE FROM {bookmarks} WHERE name = ask_name AND position = asked;
          END IF;
          COMMIT;
          SELECT held;
        END",
        ask = t.ask,
        leases = t.leases,
        bookmarks = t.bookmarks,
        now = crate::lease::NOW_MS,
    )
}

/// Sets `last_pos` to the last position given, under the counter's row lock: the counter's,
/// or the last event's when one-statement appends (`sql::Sql::append_one`) went past it. The
/// event's is read without locks (READ COMMITTED) in a statement of its own, once the counter
/// is locked: the one-statement appends that started before hold the counter's row in share
/// mode until they commit, none starts while it is locked, and a statement's read view is
/// taken as it starts (read in the locking statement, it would miss the appends that
/// committed while it waited for the lock).
fn last_position(t: &Tables) -> String {
    format!(
        "SELECT last INTO last_pos FROM {seq} WHERE id = 1 FOR UPDATE;
            SELECT GREATEST(last_pos, COALESCE(MAX(position), 0)) INTO last_pos FROM {events};",
        seq = t.sequence,
        events = t.events,
    )
}

/// The session's table of the events a pass numbers, emptied.
fn session_table(t: &Tables) -> String {
    format!(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {pass} (
            id BIGINT PRIMARY KEY, pos BIGINT NOT NULL
          ) ENGINE=MEMORY;
          DELETE FROM {pass};",
        pass = t.pass
    )
}

/// Numbers the waiting events in `id` order after `last_pos` (read with the counter's row
/// locked), in the caller's transaction, leaving `numbered` set; the caller then moves the
/// counter on by `numbered`.
fn number(t: &Tables) -> String {
    format!(
        "INSERT INTO {pass}
              SELECT id, last_pos + ROW_NUMBER() OVER (ORDER BY id)
              FROM {events} WHERE position IS NULL ORDER BY id LIMIT {PASS_ROWS};
            SET numbered = ROW_COUNT();
            UPDATE {pass} STRAIGHT_JOIN {events} ON {events}.id = {pass}.id
              SET {events}.position = {pass}.pos;",
        pass = t.pass,
        events = t.events,
    )
}
