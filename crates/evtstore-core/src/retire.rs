//! Deleting, archiving and shredding aggregates. A deleted or archived aggregate's events are
//! replaced by one marker event at its next version (revision 0): handlers see the marker in
//! store order, and loads know what happened.

use crate::aggregate::{Aggregate, event_type};
use crate::domain::{Contains, Domain};
use crate::error::{Error, Result};
use crate::event::{EventMeta, NewEvent};
use crate::seal::SHREDDED;

/// The body of the marker left by [`Domain::delete`].
pub(crate) const DELETED: &str = r#"{"type":"$deleted"}"#;
/// The body of the marker left by [`Domain::archive`].
pub(crate) const ARCHIVED: &str = r#"{"type":"$archived"}"#;

/// What [`Provider::retire`](crate::Provider::retire) does with an aggregate's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// Delete them (and the aggregate's archived events, snapshot and key).
    Delete,
    /// Move them to the archive, from which
    /// [`archived_events`](crate::Provider::archived_events) reads them.
    Archive,
}

/// What a marker event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Deleted,
    Archived,
    Shredded,
}

/// The marker an event is, if it is one (revision 0).
pub(crate) fn marker(meta: &EventMeta, data: &str) -> Option<Marker> {
    if meta.revision != 0 {
        return None;
    }
    let kind = event_type(data)?;
    let is = |body: &str| event_type(body).is_some_and(|t| t == kind);
    [
        (DELETED, Marker::Deleted),
        (ARCHIVED, Marker::Archived),
        (SHREDDED, Marker::Shredded),
    ]
    .into_iter()
    .find_map(|(body, marker)| is(body).then_some(marker))
}

impl<D> Domain<D> {
    /// Deletes an aggregate's events, snapshot and key, leaving a tombstone at its next
    /// version: handlers get it in store order (their
    /// [`deleted`](crate::Handles::deleted) callback), and loads and commands fail with
    /// [`Error::Deleted`]. `None` when it has no events.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{CreateUser, Tests, User};
    /// # use evtstore_core::{Domain, ErrorKind, MemoryProvider};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// domain.execute("u1", CreateUser { name: "ada".into() }).await?;
    /// domain.delete::<User>("u1").await?;
    /// let gone = domain.load::<User>("u1").await.unwrap_err();
    /// assert_eq!(gone.kind(), ErrorKind::InvalidInput);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::VersionConflict`] when another writer appended meanwhile (nothing changed:
    /// call it again); a store failure.
    pub async fn delete<A: Aggregate>(&self, id: &str) -> Result<Option<EventMeta>>
    where
        D: Contains<A>,
    {
        self.retire::<A>(id, Retire::Delete, DELETED).await
    }

    /// Moves an aggregate's events out of the hot table into the archive, leaving a marker at
    /// its next version; loads read them back from the archive on demand, and commands go on
    /// as before. Handlers started later do not see the archived events (they skip the
    /// marker): archive aggregates every handler has passed. `None` when it has no events.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn archive<A: Aggregate>(&self, id: &str) -> Result<Option<EventMeta>>
    where
        D: Contains<A>,
    {
        self.retire::<A>(id, Retire::Archive, ARCHIVED).await
    }

    /// Forgets the key of an aggregate of an [`ENCRYPTED`](crate::Aggregate::ENCRYPTED) kind,
    /// and its snapshot: every event sealed with it becomes unreadable at once, everywhere.
    /// Loads then pass them to [`Aggregate::shredded`], handlers to their
    /// [`shredded`](crate::Handles::shredded) callback. A marker at the aggregate's next
    /// version tells handlers that have read the events already (their `shredded` callback
    /// gets it too), and makes aggregate caches in every process fold the aggregate afresh.
    /// Events appended later take a new key.
    ///
    /// # Errors
    /// A store failure; [`Error::Deleted`] for a deleted aggregate.
    pub async fn shred<A: Aggregate>(&self, id: &str) -> Result<()>
    where
        D: Contains<A>,
    {
        crate::names::check_aggregate_id(id)?;
        self.forget::<A>(id);
        self.provider().forget_key(A::STREAM, id).await?;
        let mut conflicts = 0;
        loop {
            match self.mark::<A>(id, SHREDDED).await {
                Err(error) if error.is_version_conflict() && conflicts < 3 => conflicts += 1,
                marked => return marked.map(|_| ()),
            }
        }
    }

    /// Appends a marker at the aggregate's next version, unless it has no events.
    async fn mark<A: Aggregate>(&self, id: &str, body: &str) -> Result<Option<EventMeta>> {
        let Some(mut event) = self.marker_after_last::<A>(id, body).await? else {
            return Ok(None);
        };
        event.revision = 0;
        Ok(self.provider().append(vec![event]).await?.pop())
    }

    /// A marker event at the aggregate's next version; `None` when it has no events.
    async fn marker_after_last<A: Aggregate>(
        &self,
        id: &str,
        body: &str,
    ) -> Result<Option<NewEvent>> {
        let streams = [A::STREAM.to_owned()];
        let last = self.provider().last_event(&streams, Some(id)).await?;
        let Some(last) = last else { return Ok(None) };
        if let Some(Marker::Deleted) = marker(&last.meta, &last.data) {
            return Err(deleted(&last.meta));
        }
        let mut event = NewEvent::new(A::STREAM, id, last.meta.version + 1, body);
        event.revision = 0;
        Ok(Some(event))
    }

    async fn retire<A: Aggregate>(
        &self,
        id: &str,
        how: Retire,
        body: &str,
    ) -> Result<Option<EventMeta>> {
        crate::names::check_aggregate_id(id)?;
        let Some(event) = self.marker_after_last::<A>(id, body).await? else {
            return Ok(None);
        };
        self.forget::<A>(id);
        self.provider().retire(event, how).await.map(Some)
    }
}

/// The error of a load or command on a deleted aggregate.
pub(crate) fn deleted(meta: &EventMeta) -> Error {
    Error::Deleted {
        stream: meta.stream.to_string(),
        aggregate_id: meta.aggregate_id.to_string(),
    }
}
