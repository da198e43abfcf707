//! The benchmark's MariaDB store: database `evtbench`, dropped and created by each run,
//! and W1's raw ceiling through the same driver.

use std::str::FromStr;
use std::time::Instant;

use evtstore::mysql::{MysqlOptions, MysqlProvider};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, MySqlConnection};

use crate::report::Reporter;
use crate::workloads::millis;

const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";
const DATABASE: &str = "evtbench";

fn options() -> Result<MySqlConnectOptions, String> {
    let url = std::env::var("EVTSTORE_MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    MySqlConnectOptions::from_str(&url).map_err(|e| format!("EVTSTORE_MYSQL_URL: {e}"))
}

/// A provider on the `evtbench` database another run made.
pub(crate) async fn existing_database() -> Result<MysqlProvider, String> {
    MysqlProvider::connect_config(options()?.database(DATABASE), MysqlOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// A provider on a new, empty `evtbench` database of the server of `EVTSTORE_MYSQL_URL`.
pub(crate) async fn fresh_database() -> Result<MysqlProvider, String> {
    let options = options()?;
    let mut admin = options.connect().await.map_err(|e| e.to_string())?;
    for statement in [
        format!("DROP DATABASE IF EXISTS {DATABASE}"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        let done = admin.execute(statement.as_str()).await;
        done.map_err(|e| format!("{statement}: {e}"))?;
    }
    MysqlProvider::connect_config(options.database(DATABASE), MysqlOptions::default())
        .await
        .map_err(|e| e.to_string())
}

/// The ceilings of W1 and W2 through the same driver, on a table of its own in `evtbench`
/// with no positions: what the server does for a command at the least.
/// - `W1_raw_single_insert_tx`: a transaction that reads the aggregate's version, inserts,
///   commits (four round trips);
/// - `W1_raw_single_insert`: one insert committed alone (one round trip);
/// - `W1_raw_read_then_insert`: a read of the version, then an insert committed alone (two
///   round trips: what the original does per command);
/// - `W2_raw_read_then_insert`: the same from 16 connections at once, as W2's 16 callers.
pub(crate) async fn single_inserts(n: usize, out: &Reporter) -> Result<(), String> {
    let mut conn = connect().await?;
    conn.execute(
        "CREATE OR REPLACE TABLE raw_events (id BIGINT AUTO_INCREMENT PRIMARY KEY,
         stream VARBINARY(200) NOT NULL, aggregate_id VARBINARY(255) NOT NULL,
         version BIGINT NOT NULL, timestamp_ms BIGINT NOT NULL, data LONGTEXT NOT NULL,
         UNIQUE (stream, aggregate_id, version))",
    )
    .await
    .map_err(|e| e.to_string())?;
    let ceilings = [
        "W1_raw_single_insert_tx",
        "W1_raw_single_insert",
        "W1_raw_read_then_insert",
    ];
    for (kind, workload) in ceilings.into_iter().enumerate() {
        let start = Instant::now();
        for i in 0..n {
            let id = format!("{kind}-{}", i % 1000);
            let done = match kind {
                0 => one_insert_tx(&mut conn, &id).await,
                1 => insert(&mut conn, &id, (i / 1000) as i64 + 1).await,
                _ => read_then_insert(&mut conn, &id).await,
            };
            done.map_err(|e| e.to_string())?;
        }
        out.rate(workload, n, millis(start));
    }
    concurrent_inserts(n, out).await
}

/// `W2_raw_read_then_insert`: 16 connections, each reading then inserting for aggregates of
/// its own, `n` in all.
async fn concurrent_inserts(n: usize, out: &Reporter) -> Result<(), String> {
    const CALLERS: usize = 16;
    let mut conns = Vec::new();
    for _ in 0..CALLERS {
        conns.push(connect().await?);
    }
    let start = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for (caller, mut conn) in conns.into_iter().enumerate() {
        callers.spawn(async move {
            for i in (caller..n).step_by(CALLERS) {
                read_then_insert(&mut conn, &format!("c{caller}-{}", i % 1000)).await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done.map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    out.rate("W2_raw_read_then_insert", n, millis(start));
    Ok(())
}

async fn connect() -> Result<MySqlConnection, String> {
    let options = options()?.database(DATABASE);
    options.connect().await.map_err(|e| e.to_string())
}

async fn last_version(conn: &mut MySqlConnection, id: &str) -> Result<i64, sqlx::Error> {
    let version: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(version) FROM raw_events WHERE stream = 'counter' AND aggregate_id = ?",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(version.unwrap_or(0))
}

async fn insert(conn: &mut MySqlConnection, id: &str, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO raw_events (stream, aggregate_id, version, timestamp_ms, data)
         VALUES ('counter', ?, ?, 0, '{\"type\":\"one\",\"one\":1}')",
    )
    .bind(id)
    .bind(version)
    .execute(conn)
    .await
    .map(drop)
}

async fn read_then_insert(conn: &mut MySqlConnection, id: &str) -> Result<(), sqlx::Error> {
    let version = last_version(conn, id).await?;
    insert(conn, id, version + 1).await
}

async fn one_insert_tx(conn: &mut MySqlConnection, id: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let version = last_version(&mut tx, id).await?;
    insert(&mut tx, id, version + 1).await?;
    tx.commit().await
}
