//! The benchmark's PostgreSQL store: database `evtbench`, dropped and created by each run.

use evtstore::postgres::{PgOptions, PgProvider};
use tokio_postgres::NoTls;

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
