//! The benchmark's PostgreSQL store: database `evtbench`, dropped and created by each run.

use std::time::Instant;

use evtstore::postgres::{PgOptions, PgProvider};
use tokio_postgres::NoTls;

use crate::report::Reporter;

/// Plain TCP, as the original library's node-postgres connects (the test server also offers TLS).
const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/postgres?sslmode=disable";
const DATABASE: &str = "evtbench";

fn config() -> Result<(String, tokio_postgres::Config), String> {
    let url = std::env::var("EVTSTORE_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let config = url.parse().map_err(|e| format!("EVTSTORE_PG_URL: {e}"))?;
    Ok((url, config))
}

/// A provider on the `evtbench` database another run made.
pub(crate) async fn existing_database() -> Result<PgProvider, String> {
    let (_, mut config) = config()?;
    config.dbname(DATABASE);
    PgProvider::connect_config(config, PgOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// A provider on a new, empty `evtbench` database of the server of `EVTSTORE_PG_URL`.
pub(crate) async fn fresh_database() -> Result<PgProvider, String> {
    let (url, config) = config()?;
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let driver = tokio::spawn(connection);
    for statement in [
        format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        let done = client.batch_execute(&statement).await;
        done.map_err(|e| {
            format!(
                "{statement}: {}",
                e.as_db_error().map_or(e.to_string(), |d| d.to_string())
            )
        })?;
    }
    drop(client);
    let _ = driver.await;
    let mut bench = config.clone();
    bench.dbname(DATABASE);
    PgProvider::connect_config(bench, PgOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// W1's ceilings through the same driver, on a table of its own in `evtbench`: a transaction
/// of one insert, committed alone (one round trip: what a command costs at best), and the
/// same with the aggregate's last version read first (the two round trips of a command that
/// reads before it appends).
pub(crate) async fn single_inserts(n: usize, out: &Reporter) -> Result<(), String> {
    let (_, mut config) = config()?;
    config.dbname(DATABASE);
    let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let fail = |e: tokio_postgres::Error| e.to_string();
    client
        .batch_execute(
            "DROP TABLE IF EXISTS raw_events;
             CREATE TABLE raw_events (position BIGSERIAL PRIMARY KEY, stream TEXT NOT NULL,
             aggregate_id TEXT NOT NULL, version BIGINT NOT NULL, data JSONB NOT NULL,
             UNIQUE (stream, aggregate_id, version))",
        )
        .await
        .map_err(fail)?;
    let insert = client
        .prepare(
            "INSERT INTO raw_events (stream, aggregate_id, version, data)
             VALUES ('counter', $1, $2, '{\"type\":\"one\",\"one\":1}')",
        )
        .await
        .map_err(fail)?;
    let last = client
        .prepare("SELECT COALESCE(MAX(version), 0) FROM raw_events WHERE stream = 'counter' AND aggregate_id = $1")
        .await
        .map_err(fail)?;
    for read_first in [false, true] {
        let start = Instant::now();
        for i in 0..n {
            let id = format!("{}-{}", if read_first { "r" } else { "s" }, i % 1000);
            let version: i64 = match read_first {
                true => client.query_one(&last, &[&id]).await.map_err(fail)?.get(0),
                false => (i / 1000) as i64,
            };
            client
                .execute(&insert, &[&id, &(version + 1)])
                .await
                .map_err(fail)?;
        }
        let workload = match read_first {
            false => "W1_raw_single_insert",
            true => "W1_raw_read_then_insert",
        };
        out.rate(workload, n, start.elapsed().as_secs_f64() * 1000.0);
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// W3's and W4's ceilings through the same driver: the rows they read (every column a read
/// takes), scanned in order with one plain query each, on the store W3 and W4 ran on.
pub(crate) async fn raw_scans(out: &Reporter) -> Result<(), String> {
    let (_, mut config) = config()?;
    config.dbname(DATABASE);
    let (client, connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    let columns = "stream, aggregate_id, version, position, timestamp_ms, data::text, event_id,
        correlation_id, causation_id, metadata, revision";
    let scans = [
        (
            "W3_raw_scan",
            format!(
                "SELECT {columns} FROM events WHERE stream = 'counter' AND aggregate_id = 'big' ORDER BY version"
            ),
        ),
        (
            "W4_raw_scan",
            format!("SELECT {columns} FROM events WHERE stream = 'counter' ORDER BY position"),
        ),
    ];
    for (workload, sql) in scans {
        let statement = client.prepare(&sql).await.map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        let mut n = 0;
        for _ in 0..5 {
            let start = Instant::now();
            let rows = client
                .query(&statement, &[])
                .await
                .map_err(|e| e.to_string())?;
            n = rows.iter().map(read_row).count();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        out.rate(workload, n, times[2]);
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Reads every column of a row into its Rust type, as a provider read does.
fn read_row(row: &tokio_postgres::Row) -> usize {
    let (stream, id, data): (&str, &str, String) = (row.get(0), row.get(1), row.get(5));
    let numbers: (i64, i64, i64, i32) = (row.get(2), row.get(3), row.get(4), row.get(10));
    let ids: (uuid::Uuid, Option<uuid::Uuid>, Option<uuid::Uuid>) =
        (row.get(6), row.get(7), row.get(8));
    let metadata: Option<&str> = row.get(9);
    std::hint::black_box((stream, id, data, numbers, ids, metadata));
    1
}
