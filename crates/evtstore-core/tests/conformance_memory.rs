//! The conformance suite on the in-memory provider.

use std::sync::Arc;

use evtstore_core::{MemoryProvider, Provider};

async fn make() -> Arc<dyn Provider> {
    Arc::new(MemoryProvider::new())
}

evtstore_core::conformance_tests!(make);
