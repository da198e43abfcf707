//! Leases: one holder at a time per name, fenced bookmark saves, expiry and release.

use std::sync::Arc;
use std::time::Duration;

use super::support::{PROMPTLY, bookmark};
use crate::{Error, Lease, Provider};

const LONG: Duration = Duration::from_secs(30);

async fn acquire(
    provider: &Arc<dyn Provider>,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> Option<Lease> {
    let taken = provider.acquire_lease(name, owner, ttl).await;
    taken.unwrap_or_else(|e| panic!("{owner} acquiring lease {name}: {e}"))
}

fn assert_lost(outcome: crate::Result<()>, what: &str) {
    match outcome {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("{what}: expected Error::LeaseLost, got {other:?}"),
    }
}

/// A lease is held by one owner at a time: renewed by its holder with the same token, refused
/// to others while it lasts, passed on after a release with a higher token; a bookmark saved
/// under a lease that is not held any more is refused and not written.
pub async fn a_lease_has_one_holder_and_fences_bookmarks(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let a = acquire(&provider, "h", "a", LONG)
        .await
        .expect("a free lease is granted");
    assert_eq!(
        acquire(&provider, "h", "b", LONG).await,
        None,
        "held by a: refused to b"
    );
    let renewed = acquire(&provider, "h", "a", LONG)
        .await
        .expect("a renews its lease");
    assert_eq!(renewed.token, a.token, "a renewal keeps the token");
    assert!(renewed.expires_at >= a.expires_at, "and moves the end");
    provider
        .set_bookmark_leased(&renewed, 5)
        .await
        .expect("the holder saves its bookmark");
    assert_eq!(bookmark(&provider, "h").await, Some(5));

    provider.release_lease(&renewed).await.expect("releasing");
    let b = acquire(&provider, "h", "b", LONG)
        .await
        .expect("a released lease passes at once");
    assert!(
        b.token > a.token,
        "a new holder gets a higher token: {a:?} then {b:?}"
    );
    assert_lost(
        provider.set_bookmark_leased(&renewed, 9).await,
        "a's save after b took over",
    );
    assert_eq!(
        bookmark(&provider, "h").await,
        Some(5),
        "nothing written by a"
    );
    provider.set_bookmark_leased(&b, 7).await.expect("b saves");
    assert_eq!(bookmark(&provider, "h").await, Some(7));
    let live = provider.leases("h").await.expect("listing leases");
    assert_eq!(live, [b], "the live leases of the name");
    assert_eq!(
        acquire(&provider, "h", "a", LONG).await,
        None,
        "b holds it now"
    );
}

/// An ask applied under the lease saves the bookmark and deletes the ask in one write, unless
/// a newer ask replaced it (kept); after the lease passes on, nothing is written, and the ask
/// stays for the new holder.
pub async fn an_ask_is_applied_under_the_lease(provider: Arc<dyn Provider>, _page: usize) {
    let set = |name: &'static str, position: u64| {
        let provider = provider.clone();
        async move { provider.set_bookmark(name, position).await.expect("asking") }
    };
    let a = acquire(&provider, "k", "a", LONG).await.expect("granted");
    set("k#ask", 5).await;
    let applied = provider.apply_ask_leased(&a, 4, "k#ask", 5).await;
    applied.expect("the holder applies the ask");
    assert_eq!(bookmark(&provider, "k").await, Some(4), "moved as asked");
    assert_eq!(
        bookmark(&provider, "k#ask").await,
        None,
        "and the ask cleared"
    );

    set("k#ask", 8).await;
    let applied = provider.apply_ask_leased(&a, 6, "k#ask", 7).await;
    applied.expect("the holder applies an ask it read before a newer one");
    assert_eq!(bookmark(&provider, "k").await, Some(6));
    assert_eq!(
        bookmark(&provider, "k#ask").await,
        Some(8),
        "the newer ask stays"
    );

    provider.release_lease(&a).await.expect("releasing");
    let b = acquire(&provider, "k", "b", LONG).await.expect("passed on");
    assert_lost(
        provider.apply_ask_leased(&a, 7, "k#ask", 8).await,
        "a's apply after b took over",
    );
    assert_eq!(
        bookmark(&provider, "k").await,
        Some(6),
        "nothing saved by a"
    );
    assert_eq!(
        bookmark(&provider, "k#ask").await,
        Some(8),
        "nor the ask cleared: it is b's to apply"
    );
    let applied = provider.apply_ask_leased(&b, 7, "k#ask", 8).await;
    applied.expect("b applies it");
    assert_eq!(bookmark(&provider, "k#ask").await, None);
}

/// A lease that was not renewed expires: another owner takes it with a higher token, and the
/// old holder, waking up late, can no longer save a bookmark.
pub async fn an_expired_lease_passes_on_and_its_holder_is_fenced(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let short = Duration::from_millis(300);
    let a = acquire(&provider, "e", "a", short).await.expect("granted");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        provider.leases("e").await.expect("listing").is_empty(),
        "expired: not live"
    );
    let b = acquire(&provider, "e", "b", LONG)
        .await
        .expect("an expired lease is granted");
    assert!(b.token > a.token, "with a higher token: {a:?} then {b:?}");
    assert_lost(
        provider.set_bookmark_leased(&a, 3).await,
        "a save after expiry",
    );
    assert_eq!(bookmark(&provider, "e").await, None, "nothing written");
}

/// Of many owners asking for one free lease at once, exactly one gets it; releasing it wakes
/// this process's subscribers, so a waiting handler tries at once.
pub async fn one_of_racing_owners_gets_a_lease(provider: Arc<dyn Provider>, _page: usize) {
    let racers = (0..8).map(|i| {
        let provider = provider.clone();
        tokio::spawn(async move {
            provider
                .acquire_lease("r", &format!("owner-{i}"), LONG)
                .await
        })
    });
    let mut granted = Vec::new();
    for racer in racers.collect::<Vec<_>>() {
        if let Some(lease) = racer.await.expect("a racer panicked").expect("acquiring") {
            granted.push(lease);
        }
    }
    assert_eq!(granted.len(), 1, "exactly one holder: {granted:?}");
    let mut signal = provider.subscribe();
    signal.borrow_and_update();
    provider
        .release_lease(&granted[0])
        .await
        .expect("releasing");
    let woken = tokio::time::timeout(PROMPTLY, signal.changed()).await;
    assert!(woken.is_ok(), "a release wakes this process's subscribers");
}

/// A lease as long as a caller may ask (`Duration::MAX`) is granted and holds: its time is
/// capped, never wrapped into the past.
pub async fn a_lease_of_any_length_is_granted_and_holds(provider: Arc<dyn Provider>, _page: usize) {
    let forever = provider.acquire_lease("forever", "a", Duration::MAX).await;
    let lease = forever.expect("acquiring").expect("granted");
    assert!(
        lease.expires_at > crate::provider::now_millis(),
        "{lease:?}"
    );
    let other = provider
        .acquire_lease("forever", "b", Duration::from_secs(1))
        .await;
    assert_eq!(other.expect("asking"), None, "still held");
}
