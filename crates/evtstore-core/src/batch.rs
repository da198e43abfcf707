//! Batches: commands on several aggregates, appended in one atomic append.

use crate::aggregate::Aggregate;
use crate::command::Command;
use crate::domain::{Contains, Domain, Executed, encode_events};
use crate::envelope::CommandMeta;
use crate::error::{Error, Result};
use crate::event::{EventMeta, NewEvent, now_millis};

/// Commands on several aggregates whose events are appended together, each aggregate checked
/// against its own expected version: all are written, or none.
///
/// [`commit`](Self::commit) appends them; or take [`into_events`](Self::into_events) and append
/// them inside your own database transaction (e.g. `PgProvider::append_in`).
///
/// ```
/// # use evtstore_core::conformance::domain::{Bump, Counter};
/// # use evtstore_core::{Domain, MemoryProvider};
/// # evtstore_core::domain!(Counters { Counter });
/// # async fn run(counters: Domain<Counters>) -> evtstore_core::Result<()> {
/// let mut batch = counters.batch();
/// batch.execute("a", Bump { by: vec![-10] }).await?;
/// batch.execute("b", Bump { by: vec![10] }).await?;
/// batch.commit().await?; // both or neither
/// # Ok(()) }
/// ```
pub struct Batch<D> {
    domain: Domain<D>,
    events: Vec<NewEvent>,
}

impl<D> Domain<D> {
    /// Starts a batch of commands appended atomically.
    pub fn batch(&self) -> Batch<D> {
        Batch {
            domain: self.clone(),
            events: Vec::new(),
        }
    }
}

impl<D> Batch<D> {
    /// Decides a command and stages its events. Returns the aggregate as it will be once the
    /// batch commits (its events' positions are 0 until then). One command per aggregate.
    pub async fn execute<C>(&mut self, id: &str, command: C) -> Executed<C, D>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        let stream = C::Aggregate::STREAM;
        if self
            .events
            .iter()
            .any(|e| e.stream == stream && e.aggregate_id == id)
        {
            let error = Error::InvalidName {
                what: "aggregate",
                value: format!("{stream}/{id}"),
                reason: "already has a command in this batch: one command per aggregate",
            };
            return Err(error.into());
        }
        let mut aggregate = self.domain.load::<C::Aggregate>(id).await?;
        let events = command.handle(&aggregate, &self.domain).await?;
        let mut staged = encode_events(&aggregate, &events, &CommandMeta::new().resolved())?;
        self.domain.seal::<C::Aggregate>(id, &mut staged).await?;
        let timestamp = now_millis();
        for (event, new) in events.iter().zip(&staged) {
            aggregate.apply(event, &new.clone().stored(0, timestamp).meta);
        }
        self.events.extend(staged);
        Ok(aggregate)
    }

    /// The staged events.
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    /// The staged events, to append inside your own transaction.
    pub fn into_events(self) -> Vec<NewEvent> {
        self.events
    }

    /// Appends every staged event atomically.
    ///
    /// # Errors
    /// [`Error::VersionConflict`], writing nothing, when any aggregate moved since it was
    /// loaded; a store failure.
    pub async fn commit(self) -> Result<Vec<EventMeta>> {
        if self.events.is_empty() {
            return Ok(Vec::new());
        }
        let metas = self.domain.provider().append(self.events).await?;
        for stream in metas.chunk_by(|a, b| a.stream == b.stream) {
            crate::telemetry::appended(&stream[0].stream, stream.len());
        }
        Ok(metas)
    }
}
