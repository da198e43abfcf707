//! The trusted aggregate cache: one round trip per command on a kept aggregate, and a
//! conflict, never a wrong write, when another writer moved it.

use std::sync::Arc;

use super::domain::*;
use super::support::{Counting, domain};
use crate::{Domain, Provider};

/// A command on a kept aggregate reads nothing first; when another writer moved the
/// aggregate, it conflicts and writes nothing (a command that appends nothing, or is rejected,
/// conflicts too), and the next one loads afresh.
pub async fn a_trusted_cache_decides_on_its_copy_and_conflicts_when_stale(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let counting = Counting::new(provider.clone());
    let trusting = Domain::<Tests>::with_provider(counting.clone()).with_trusted_cache(16);
    trusting
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect("first");
    counting.take_aggregate_reads();
    let second = trusting
        .execute("c1", Bump { by: vec![2] })
        .await
        .expect("second");
    assert_eq!((second.version, second.state.total), (2, 3));
    assert!(
        counting.take_aggregate_reads().is_empty(),
        "no read before a trusted command"
    );

    domain(&provider)
        .execute("c1", Bump { by: vec![10] })
        .await
        .expect("another writer");
    let stale = trusting.execute("c1", Bump { by: vec![100] }).await;
    assert!(stale.expect_err("a stale copy conflicts").is_conflict());
    let fresh = trusting
        .execute("c1", Bump { by: vec![100] })
        .await
        .expect("a fresh load");
    assert_eq!(
        (fresh.version, fresh.state.history),
        (4, vec![1, 2, 10, 100])
    );
    let stored = provider
        .aggregate_events("counters", "c1", 0)
        .await
        .expect("read");
    assert_eq!(stored.len(), 4, "the stale command wrote nothing");

    // A command deciding nothing on a stale copy conflicts too (as would a rejection).
    let other = domain(&provider)
        .execute("c1", Bump { by: vec![1000] })
        .await;
    other.expect("another writer again");
    let noop = trusting.execute("c1", Bump { by: vec![] }).await;
    assert!(noop.expect_err("a no-op on a stale copy").is_conflict());
    let noop = trusting.execute("c1", Bump { by: vec![] }).await;
    assert_eq!(noop.expect("on the fresh copy").state.total, 1113);
}
