//! The conformance suite on real SQLite files, one fresh file per test.

use std::sync::Arc;

use evtstore_core::provider::Visitor;
use evtstore_core::{EventMeta, NewEvent, Position, Provider, Result, Snapshot, StoredEvent};
use evtstore_sqlite::SqliteProvider;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

/// A provider on a file in a temporary directory, deleted when the provider is dropped.
struct InTempDir {
    provider: SqliteProvider,
    _dir: tempfile::TempDir,
}

async fn make() -> Arc<dyn Provider> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let provider = SqliteProvider::open(dir.path().join("store.db")).expect("open SQLite file");
    Arc::new(InTempDir {
        provider,
        _dir: dir,
    })
}

evtstore_core::conformance_tests!(make);

impl Provider for InTempDir {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    fn append(&self, events: Vec<NewEvent>) -> BoxFuture<'_, Result<Vec<EventMeta>>> {
        self.provider.append(events)
    }

    fn aggregate_events<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        self.provider
            .aggregate_events(stream, aggregate_id, after_version)
    }

    fn visit_aggregate<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
        after_version: u64,
        visit: &'a mut Visitor<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        self.provider
            .visit_aggregate(stream, aggregate_id, after_version, visit)
    }

    fn events<'a>(
        &'a self,
        streams: &'a [String],
        after: Position,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredEvent>>> {
        self.provider.events(streams, after, limit)
    }

    fn last_event<'a>(
        &'a self,
        streams: &'a [String],
        aggregate_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<StoredEvent>>> {
        self.provider.last_event(streams, aggregate_id)
    }

    fn bookmark<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Position>>> {
        self.provider.bookmark(name)
    }

    fn set_bookmark<'a>(&'a self, name: &'a str, position: Position) -> BoxFuture<'a, Result<()>> {
        self.provider.set_bookmark(name, position)
    }

    fn snapshot<'a>(
        &'a self,
        stream: &'a str,
        aggregate_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Snapshot>>> {
        self.provider.snapshot(stream, aggregate_id)
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'_, Result<()>> {
        self.provider.save_snapshot(snapshot)
    }

    fn subscribe(&self) -> watch::Receiver<Position> {
        self.provider.subscribe()
    }
}
