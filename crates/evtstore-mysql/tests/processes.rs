//! Real processes on one database: leases, read-your-writes and partitions across processes
//! (see `evtstore_core::process_tests!`).

mod support;

use std::any::Any;
use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_mysql::{MysqlOptions, MysqlProvider};

async fn open(database: &str) -> Arc<dyn Provider> {
    let url = std::env::var("EVTSTORE_MYSQL_URL").expect("the parent had it");
    let config = support::connect_options(&url, database);
    let provider = MysqlProvider::connect_config(config, MysqlOptions::default()).await;
    Arc::new(provider.expect("connect to MariaDB"))
}

async fn fresh() -> Option<(Arc<dyn Provider>, String, Box<dyn Any + Send>)> {
    let url = support::url()?;
    let db = support::TestDb::create(&url).await;
    let name = db.name.clone();
    Some((open(&name).await, name, Box::new(db)))
}

evtstore_core::process_tests!(open, fresh);
