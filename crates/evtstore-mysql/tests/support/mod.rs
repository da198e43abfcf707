//! A fresh database per test on the server named by `EVTSTORE_MYSQL_URL`, dropped afterwards.

#![allow(dead_code, unreachable_pub)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evtstore_mysql::{MysqlOptions, MysqlProvider};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Executor};

/// The server's URL, or `None` (and a note that the test skipped) when it is not set.
pub fn url() -> Option<String> {
    let url = std::env::var("EVTSTORE_MYSQL_URL").ok();
    if url.is_none() {
        eprintln!("skipped: EVTSTORE_MYSQL_URL is not set");
    }
    url
}

/// A database name no other test uses.
pub fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("evt_t_{}_{n}_{nanos}", std::process::id())
}

/// The URL's connection settings on another database.
pub fn connect_options(url: &str, database: &str) -> MySqlConnectOptions {
    MySqlConnectOptions::from_str(url)
        .unwrap()
        .database(database)
}

/// A database of its own, dropped (with everything in it) when this is dropped.
pub struct TestDb {
    pub url: String,
    pub name: String,
}

impl TestDb {
    pub async fn create(url: &str) -> Self {
        let name = unique_name();
        let mut admin = MySqlConnectOptions::from_str(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        TestDb {
            url: url.to_owned(),
            name,
        }
    }

    /// A provider on this database.
    pub async fn provider(&self, options: MysqlOptions) -> Arc<MysqlProvider> {
        let config = connect_options(&self.url, &self.name);
        let provider = MysqlProvider::connect_config(config, options).await;
        Arc::new(provider.expect("connect to MariaDB"))
    }

    /// A plain connection to this database.
    pub async fn connection(&self) -> sqlx::MySqlConnection {
        connect_options(&self.url, &self.name)
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            runtime.unwrap().block_on(async move {
                let mut admin = MySqlConnectOptions::from_str(&url)
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                admin
                    .execute(format!("DROP DATABASE {name}").as_str())
                    .await
                    .ok()
            })
        });
        let _ = dropped.join();
    }
}

/// A provider on a fresh database, and the database (keep it until the test ends).
pub async fn fresh(url: &str) -> (Arc<MysqlProvider>, TestDb) {
    let db = TestDb::create(url).await;
    let options = MysqlOptions {
        pool_size: 4,
        ..MysqlOptions::default()
    };
    (db.provider(options).await, db)
}
