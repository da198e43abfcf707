//! The conformance suite on real SQLite files, one fresh file per test, in a temporary
//! directory deleted when the test ends.

use std::sync::Arc;

use evtstore_core::Provider;
use evtstore_sqlite::SqliteProvider;

async fn make() -> (Arc<dyn Provider>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let provider = SqliteProvider::open(dir.path().join("store.db")).expect("open SQLite file");
    (Arc::new(provider), dir)
}

evtstore_core::conformance_tests!(make);
