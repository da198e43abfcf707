//! Upcasting: events stored at older revisions are read in their current shape by loads and
//! handlers, and the stored rows stay as they were.

use std::sync::{Arc, Mutex};

use super::domain::*;
use super::support::{domain, raw, run};
use crate::{ErrorKind, NewEvent, Provider};

/// Old rows of `p1`: `named` at revisions 1 and 2, `moved` at revision 1.
fn old_rows() -> Vec<NewEvent> {
    let rows = [
        (r#"{"type":"named","name":"Ada Lovelace"}"#, 1),
        (r#"{"type":"moved","city":"London"}"#, 1),
        (r#"{"type":"named","first":"Ada","last":"King"}"#, 2),
    ];
    let event = |(n, (body, revision)): (usize, (&str, u32))| {
        let mut event = raw("people", "p1", n as u64 + 1, body);
        event.revision = revision;
        event
    };
    rows.into_iter().enumerate().map(event).collect()
}

fn named(given: &str, family: &str) -> PersonEvent {
    let (given, family) = (given.into(), family.into());
    PersonEvent::Named { given, family }
}

/// A load upcasts old rows through every step from their revision; events the aggregate
/// appends take its revision and are read as stored; the old rows are not rewritten.
pub async fn loads_upcast_events_of_older_revisions(provider: Arc<dyn Provider>, _page: usize) {
    provider.append(old_rows()).await.expect("old rows");
    let domain = domain(&provider);
    let person = domain.load::<Person>("p1").await.expect("load");
    assert_eq!(
        (person.state.name.as_str(), person.state.city.as_str()),
        ("Ada King", "London")
    );

    let renamed = Rename {
        given: "Augusta".into(),
        family: "Byron".into(),
    };
    let person = domain.execute("p1", renamed).await.expect("rename");
    assert_eq!(person.state.name, "Augusta Byron");
    let reloaded = domain.load::<Person>("p1").await.expect("reload");
    assert_eq!(reloaded.state, person.state);

    let stored = provider
        .aggregate_events("people", "p1", 0)
        .await
        .expect("read");
    let revisions: Vec<u32> = stored.iter().map(|e| e.meta.revision).collect();
    assert_eq!(revisions, [1, 1, 2, 3], "stored revisions");
    let first: serde_json::Value = serde_json::from_str(&stored[0].data).expect("json");
    assert_eq!(
        first,
        serde_json::json!({"type": "named", "name": "Ada Lovelace"}),
        "not rewritten"
    );
}

/// A handler gets old rows in the current shape, in order.
pub async fn handlers_get_upcast_events(provider: Arc<dyn Provider>, page: usize) {
    provider.append(old_rows()).await.expect("old rows");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let handler = domain(&provider)
        .handler("people-seen")
        .handle::<Person, _>(move |_, event, _| {
            record.lock().unwrap().push(event.clone());
            Ok(())
        })
        .page_size(page)
        .build()
        .expect("build");
    assert_eq!(run(&handler).await, 3);
    let moved = PersonEvent::Moved {
        city: "London".into(),
    };
    let expected = [named("Ada", "Lovelace"), moved, named("Ada", "King")];
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// An old row that does not fit its upcaster's input fails the load, naming the event.
pub async fn an_old_row_its_upcaster_cannot_read_names_the_event(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let mut bad = raw("people", "p1", 1, r#"{"type":"named","nom":"Ada"}"#);
    bad.revision = 1;
    provider.append(vec![bad]).await.expect("append");
    let error = domain(&provider)
        .load::<Person>("p1")
        .await
        .expect_err("must fail");
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("people/p1 version 1") && message.contains("name"),
        "{message}"
    );
}
