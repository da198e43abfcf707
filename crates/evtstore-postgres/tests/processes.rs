//! Real processes on one schema: leases, read-your-writes and partitions across processes
//! (see `evtstore_core::process_tests!`).

mod support;

use std::any::Any;
use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_postgres::{PgOptions, PgProvider};

async fn open(schema: &str) -> Arc<dyn Provider> {
    let url = std::env::var("EVTSTORE_PG_URL").expect("the parent had it");
    let options = PgOptions {
        schema: schema.to_owned(),
        ..PgOptions::default()
    };
    Arc::new(PgProvider::connect_with(&url, options).await.unwrap())
}

async fn fresh() -> Option<(Arc<dyn Provider>, String, Box<dyn Any + Send>)> {
    support::url()?;
    let schema = support::unique_schema();
    Some((open(&schema).await, schema, Box::new(())))
}

evtstore_core::process_tests!(open, fresh);
