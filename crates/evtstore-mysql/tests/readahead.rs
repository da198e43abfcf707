//! Read-ahead: after a full page the next is read in the background; a reader gets exactly
//! what a fresh read would return, never a stale short page.

mod support;

use evtstore_core::{NewEvent, Provider};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("pages", id, version, r#"{"type":"Paged"}"#)
}

/// (position, version) of every event of stream `pages`, read in pages of 3; after the page
/// that ends at `interrupt`, another reader asks for another page.
async fn read_all(provider: &impl Provider, interrupt: Option<u64>) -> Vec<(u64, u64)> {
    let streams = ["pages".to_owned()];
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let page = provider.events(&streams, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.meta.position;
        seen.extend(page.iter().map(|e| (e.meta.position, e.meta.version)));
        if Some(after) == interrupt {
            provider.events(&streams, 0, 5).await.unwrap();
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_read_ahead_short_is_read_again() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    let streams = ["pages".to_owned()];
    provider
        .append(vec![event("a", 1), event("a", 2)])
        .await
        .unwrap();
    let full = provider.events(&streams, 0, 2).await.unwrap();
    assert_eq!(
        full.len(),
        2,
        "a full page: the next is read ahead, and is empty"
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    provider.append(vec![event("a", 3)]).await.unwrap();
    let next = provider.events(&streams, 2, 2).await.unwrap();
    let positions: Vec<u64> = next.iter().map(|e| e.meta.position).collect();
    assert_eq!(positions, [3], "the event appended since the read ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_read_ahead_give_every_event_once_in_order() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    for v in 1..=10 {
        provider.append(vec![event("b", v)]).await.unwrap();
    }
    // Another reader's request in between replaces the pages read ahead.
    let seen = read_all(&*provider, Some(4)).await;
    assert_eq!(seen, (1..=10).map(|v| (v, v)).collect::<Vec<_>>());
}

/// A page of one stream followed by another stream's events: the page guessed to come next
/// is read in vain, never handed over for another page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_guess_of_the_next_page_is_never_handed_over() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    for (stream, id, versions) in [
        ("pages", "a", 1..=3),
        ("others", "o", 1..=3),
        ("pages", "a", 4..=7),
    ] {
        for v in versions {
            let mut new = event(id, v);
            new.stream = stream.into();
            provider.append(vec![new]).await.unwrap();
        }
    }
    let seen = read_all(&*provider, None).await;
    let expected = [(1, 1), (2, 2), (3, 3), (7, 4), (8, 5), (9, 6), (10, 7)];
    assert_eq!(seen, expected);
}
