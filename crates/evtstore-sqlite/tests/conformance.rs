//! The conformance suite on real SQLite files, one fresh file per test.

use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_sqlite::SqliteProvider;

async fn make() -> Arc<dyn Provider> {
    // The directory lives as long as the test process: leak it rather than delete it early.
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    let provider = SqliteProvider::open(dir.join("store.db")).expect("open SQLite file");
    Arc::new(provider)
}

evtstore_core::conformance_tests!(make);
