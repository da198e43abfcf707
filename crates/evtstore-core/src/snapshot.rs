//! Snapshots: when the domain stores an aggregate's folded state, and how loads start from it.

use crate::aggregate::{Aggregate, Loaded};
use crate::domain::{Contains, Domain};
use crate::error::{Error, Result};
use crate::event::Snapshot;

impl<D> Domain<D> {
    /// Stores a snapshot of aggregate `id` now, whatever [`Aggregate::SNAPSHOT_EVERY`] says, and
    /// returns the aggregate as loaded. An aggregate with no events stores none.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{Profile, RenameProfile, Tests};
    /// # use evtstore_core::{Domain, MemoryProvider};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// domain.execute("p1", RenameProfile { name: "ada".into() }).await?;
    /// let profile = domain.save_snapshot::<Profile>("p1").await?;
    /// assert_eq!(profile.version, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::NotSnapshotted`] when `A` has no [`Aggregate::SNAPSHOT`] schema; as
    /// [`load`](Self::load); a store failure while saving it.
    pub async fn save_snapshot<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>>
    where
        D: Contains<A>,
    {
        if schema::<A>().is_none() {
            let (stream, aggregate_id) = (A::STREAM.to_owned(), id.to_owned());
            return Err(Error::NotSnapshotted {
                stream,
                aggregate_id,
            });
        }
        let aggregate = self.load::<A>(id).await?;
        if aggregate.version > 0 {
            let snapshot = snapshot_of(&aggregate)?;
            self.provider().save_snapshot(snapshot).await?;
        }
        Ok(aggregate)
    }

    /// After an append from version `from`: stores the folded aggregate when the policy says
    /// so. The events are committed already, so a failure here only costs later loads a longer
    /// fold: it is logged, not returned.
    pub(crate) async fn snapshot_after_append<A: Aggregate>(
        &self,
        from: u64,
        aggregate: &Loaded<A>,
    ) {
        if !snapshot_due::<A>(from, aggregate.version) {
            return;
        }
        let saved = match snapshot_of(aggregate) {
            Ok(snapshot) => self.provider().save_snapshot(snapshot).await,
            Err(error) => Err(error),
        };
        if let Err(error) = saved {
            tracing::warn!(stream = A::STREAM, id = %aggregate.id, %error, "snapshot not stored");
        }
    }

    /// The stored snapshot of aggregate `id` under `A`'s schema, or the aggregate with no
    /// events when there is none (or `A` has no schema).
    pub(crate) async fn start_from_snapshot<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>> {
        let Some(schema) = schema::<A>() else {
            return Ok(Loaded::new(id));
        };
        let stored = self.provider().snapshot(A::STREAM, id).await?;
        let decoded = stored
            .filter(|s| s.schema == schema)
            .map(decode_snapshot::<A>);
        match decoded {
            Some(Ok(aggregate)) => Ok(aggregate),
            Some(Err(error)) => {
                // Only a cache: refold from the events rather than fail the load.
                tracing::warn!(stream = A::STREAM, id, %error, "snapshot does not decode; refolding");
                Ok(Loaded::new(id))
            }
            None => Ok(Loaded::new(id)),
        }
    }
}

/// True when `A` is snapshotted and an append from version `from` to `to` crosses a multiple
/// of its [`Aggregate::SNAPSHOT_EVERY`].
fn snapshot_due<A: Aggregate>(from: u64, to: u64) -> bool {
    schema::<A>().is_some() && crosses_multiple(from, to, A::SNAPSHOT_EVERY)
}

/// True when a multiple of `every` lies in `from + 1 ..= to`; never when `every` is 0.
fn crosses_multiple(from: u64, to: u64, every: u64) -> bool {
    from.checked_div(every) != to.checked_div(every)
}

/// The snapshot of a folded aggregate.
fn snapshot_of<A: Aggregate>(aggregate: &Loaded<A>) -> Result<Snapshot> {
    let state = serde_json::to_string(&aggregate.state).map_err(|source| Error::Encode {
        what: format!("aggregate {}/{}", A::STREAM, aggregate.id),
        source,
    })?;
    Ok(Snapshot {
        stream: A::STREAM.to_owned(),
        aggregate_id: aggregate.id.to_string(),
        schema: schema::<A>().unwrap_or_default().to_owned(),
        version: aggregate.version,
        position: aggregate.position,
        state,
    })
}

fn decode_snapshot<A: Aggregate>(snapshot: Snapshot) -> serde_json::Result<Loaded<A>> {
    let state = serde_json::from_str(&snapshot.state)?;
    Ok(Loaded {
        id: snapshot.aggregate_id.into(),
        version: snapshot.version,
        position: snapshot.position,
        state,
    })
}

/// The snapshot schema of `A`: none for an [`ENCRYPTED`](Aggregate::ENCRYPTED) kind, whose
/// folded state would be stored in plain text, out of reach of shredding.
fn schema<A: Aggregate>() -> Option<&'static str> {
    A::SNAPSHOT.filter(|_| !A::ENCRYPTED)
}

#[cfg(test)]
mod tests {
    use super::crosses_multiple as due;

    #[test]
    fn a_snapshot_is_due_when_an_append_crosses_a_multiple() {
        assert!(!due(0, 1, 3) && !due(1, 2, 3), "below the first multiple");
        assert!(due(2, 3, 3), "landing on it");
        assert!(due(2, 4, 3) && due(0, 7, 3), "passing it in one append");
        assert!(!due(3, 5, 3), "between multiples");
        assert!(due(0, 1, 1) && due(41, 42, 1), "every append when 1");
        assert!(!due(0, 1_000, 0), "never when 0");
    }
}
