//! The conformance suite on the MariaDB server of `EVTSTORE_MYSQL_URL`, one database per test.

mod support;

use std::sync::Arc;

use evtstore_core::Provider;

async fn make() -> Option<(Arc<dyn Provider>, support::TestDb)> {
    let url = support::url()?;
    let (provider, db) = support::fresh(&url).await;
    Some((provider as Arc<dyn Provider>, db))
}

evtstore_core::conformance_tests!(make);
