//! Folding an aggregate's stored events into its state: upcast, opened when sealed, and
//! through the markers a deletion or an archiving left (the archived events are read back
//! from the archive where the marker stands).

use crate::aggregate::{Aggregate, Loaded};
use crate::error::{Error, Result};
use crate::event::EventMeta;
use crate::names::shared_stream;
use crate::provider::Provider;
use crate::retire::{Marker, deleted, marker};
use crate::seal::{AggregateKey, SHREDDED, open};
use crate::upcast::decode_stored;

/// Folds into `aggregate` its events after its version, up to version `until`.
pub(crate) async fn fold_events<A: Aggregate>(
    provider: &dyn Provider,
    mut aggregate: Loaded<A>,
    until: u64,
) -> Result<Loaded<A>> {
    let key = match A::ENCRYPTED {
        true => {
            provider
                .aggregate_key(A::STREAM, &aggregate.id, false)
                .await?
        }
        false => None,
    };
    let (stream, id) = (shared_stream::<A>(), aggregate.id.clone());
    // Folded from the first event in this call: a copy (cached, a snapshot) is not.
    let mut from_scratch = aggregate.version == 0;
    loop {
        let (mut archive_ends, mut refold) = (None, false);
        let after = aggregate.version;
        let mut fold = |meta: &EventMeta, data: &str| {
            if meta.revision == 0
                && !from_scratch
                && meta.version <= until
                && let Some(Marker::Shredded) = marker(meta, data)
            {
                refold = true; // the copy may hold what was shredded
                return Err(Error::backend("load", "a shredding comes first"));
            }
            if meta.revision == 0 {
                return fold_marker(&mut aggregate, meta, data, until, &mut archive_ends);
            }
            if meta.version > until {
                return Ok(());
            }
            fold_one(&mut aggregate, meta, data, key.as_ref())
        };
        let visited = provider
            .visit_aggregate(&stream, &id, after, &mut fold)
            .await;
        if refold {
            (aggregate, from_scratch) = (Loaded::new(id.clone()), true);
            continue;
        }
        let Some(marker) = archive_ends else {
            visited?;
            return Ok(aggregate);
        };
        let before = marker.version.min(until.saturating_add(1));
        let archived = provider.archived_events(&stream, &id, aggregate.version, before);
        for event in archived.await? {
            if event.meta.revision == 0 {
                aggregate.pass(&event.meta); // the marker of an earlier archiving
            } else {
                fold_one(&mut aggregate, &event.meta, &event.data, key.as_ref())?;
            }
        }
        if marker.version > until {
            return Ok(aggregate);
        }
        aggregate.pass(&marker);
    }
}

/// Folds one event: opened with the aggregate's key when sealed (a shredded one goes to
/// [`Aggregate::shredded`]), upcast, or passed over when of an unknown type it skips.
fn fold_one<A: Aggregate>(
    aggregate: &mut Loaded<A>,
    meta: &EventMeta,
    data: &str,
    key: Option<&AggregateKey>,
) -> Result<()> {
    let opened = match A::ENCRYPTED {
        true => open(meta, data, key)?,
        false => None,
    };
    if opened.as_deref() == Some(SHREDDED) {
        aggregate.state.shredded(meta);
        aggregate.pass(meta);
        return Ok(());
    }
    let data = opened.as_deref().unwrap_or(data);
    match decode_stored::<A>(meta, data, A::UNKNOWN_EVENTS)? {
        Some(event) => aggregate.apply(&event, meta),
        None => aggregate.skip(meta),
    }
    Ok(())
}

/// A marker: a deletion fails the load (whatever version it is read up to); an archiving
/// stops the visit where archived events must be read first (`archive_ends`), unless there
/// are none to read up to `until`.
fn fold_marker<A: Aggregate>(
    aggregate: &mut Loaded<A>,
    meta: &EventMeta,
    data: &str,
    until: u64,
    archive_ends: &mut Option<EventMeta>,
) -> Result<()> {
    match marker(meta, data) {
        Some(Marker::Deleted) => Err(deleted(meta)),
        Some(Marker::Archived)
            if aggregate.version < until && aggregate.version + 1 < meta.version =>
        {
            *archive_ends = Some(meta.clone());
            Err(Error::backend("load", "archived events come first")) // stops the visit
        }
        Some(_) if meta.version <= until => {
            aggregate.pass(meta);
            Ok(())
        }
        _ => Ok(()),
    }
}
