//! The benchmark's MariaDB/MySQL store: database `evtbench`, dropped and created by each run,
//! and W1's raw ceiling through the same driver.

use std::str::FromStr;
use std::time::Instant;

use evtstore::mysql::{MysqlOptions, MysqlProvider};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, MySqlConnection};

use crate::report::Reporter;

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

/// W1's ceiling: one transaction per event (read the aggregate's last version, insert one
/// row, commit) on a table of its own in `evtbench`, through sqlx like the provider.
pub(crate) async fn single_inserts(n: usize, out: &Reporter) -> Result<(), String> {
    let mut conn = options()?
        .database(DATABASE)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    conn.execute(
        "CREATE OR REPLACE TABLE raw_events (id BIGINT AUTO_INCREMENT PRIMARY KEY,
         stream VARBINARY(200) NOT NULL, aggregate_id VARBINARY(255) NOT NULL,
         version BIGINT NOT NULL, timestamp_ms BIGINT NOT NULL, data LONGTEXT NOT NULL,
         UNIQUE (stream, aggregate_id, version))",
    )
    .await
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    for i in 0..n {
        one_insert(&mut conn, &format!("s-{}", i % 1000))
            .await
            .map_err(|e| e.to_string())?;
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    out.rate("W1_raw_single_insert_tx", n, ms);
    Ok(())
}

async fn one_insert(conn: &mut MySqlConnection, id: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let version: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(version) FROM raw_events WHERE stream = 'counter' AND aggregate_id = ?",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO raw_events (stream, aggregate_id, version, timestamp_ms, data)
         VALUES ('counter', ?, ?, 0, '{\"type\":\"one\",\"one\":1}')",
    )
    .bind(id)
    .bind(version.unwrap_or(0) + 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
