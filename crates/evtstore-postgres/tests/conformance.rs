//! The conformance suite on the PostgreSQL server of `EVTSTORE_PG_URL`, one schema per test.

mod support;

use std::sync::Arc;

use evtstore_core::Provider;

async fn make() -> Option<Arc<dyn Provider>> {
    let url = support::url()?;
    Some(support::fresh(&url).await as Arc<dyn Provider>)
}

evtstore_core::conformance_tests!(make);
