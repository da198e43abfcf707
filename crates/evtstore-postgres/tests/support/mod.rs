//! A fresh schema per test on the server named by `EVTSTORE_PG_URL`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evtstore_postgres::{PgOptions, PgProvider};

/// The server's URL, or `None` (and a note that the test skipped) when it is not set.
pub fn url() -> Option<String> {
    let url = std::env::var("EVTSTORE_PG_URL").ok();
    if url.is_none() {
        eprintln!("skipped: EVTSTORE_PG_URL is not set");
    }
    url
}

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("evt_t_{}_{n}_{nanos}", std::process::id())
}

/// A provider on a fresh schema.
pub async fn fresh(url: &str) -> Arc<PgProvider> {
    let options = PgOptions {
        schema: unique_schema(),
        pool_size: 8,
        ..PgOptions::default()
    };
    Arc::new(
        PgProvider::connect_with(url, options)
            .await
            .expect("connect to PostgreSQL"),
    )
}
