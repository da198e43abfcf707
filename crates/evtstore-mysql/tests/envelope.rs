//! The envelope and command ids on paths the conformance suite does not take: appends too
//! large for the procedure, command ids in the caller's transaction (`append_in`), and
//! appends that fail after their command ids were recorded.

mod support;

use evtstore_core::{Error, EventMeta, NewEvent, Provider, Uuid};
use sqlx::{Connection, Executor};

fn event(id: &str, version: u64) -> NewEvent {
    NewEvent::new("notes", id, version, r#"{"type":"noted"}"#)
}

/// An event with every part of the envelope set, and a timestamp of its own.
fn enveloped(id: &str, version: u64) -> NewEvent {
    let mut event = event(id, version);
    event.correlation_id = Some(Uuid::now_v7());
    event.causation_id = Some(Uuid::now_v7());
    event.metadata = Some(format!(r#"{{"n":{version},"who":"zoë"}}"#).into());
    event.revision = 4;
    event.timestamp = Some(1_000 + version as i64);
    event
}

fn with_command(mut event: NewEvent, command_id: Uuid) -> NewEvent {
    event.command_id = Some(command_id);
    event
}

async fn stored(provider: &dyn Provider) -> Vec<EventMeta> {
    let events = provider.events(&["notes".into()], 0, 10_000).await.unwrap();
    events.into_iter().map(|e| e.meta).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_too_large_for_the_procedure_keeps_its_envelopes() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    // More events than one insert statement takes.
    let events: Vec<NewEvent> = (1..=1001).map(|v| enveloped("big", v)).collect();
    let appended = provider.append(events.clone()).await.unwrap();
    assert_eq!(stored(&*provider).await, appended);
    let read = provider.aggregate_events("notes", "big", 0).await.unwrap();
    for (event, given) in read.iter().zip(&events) {
        let m = &event.meta;
        assert_eq!(m.event_id, given.event_id);
        assert_eq!(
            (m.correlation_id, m.causation_id),
            (given.correlation_id, given.causation_id)
        );
        assert_eq!(m.metadata, given.metadata);
        assert_eq!((m.revision, Some(m.timestamp)), (4, given.timestamp));
    }
    // And with a command id, in a transaction of the provider's own.
    let command_id = Uuid::now_v7();
    let events: Vec<NewEvent> = (1..=1001)
        .map(|v| with_command(enveloped("big2", v), command_id))
        .collect();
    let appended = provider.append(events).await.unwrap();
    assert_eq!(&stored(&*provider).await[1001..], appended);
    let record = provider.command(command_id).await.unwrap().unwrap();
    assert_eq!(
        (record.aggregate_id.as_str(), record.version),
        ("big2", 1001)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_in_records_command_ids_with_the_callers_transaction() {
    let Some(url) = support::url() else { return };
    let (provider, db) = support::fresh(&url).await;
    let mut conn = db.connection().await;
    conn.execute("CREATE TABLE notes (n INT)").await.unwrap();
    let first = Uuid::now_v7();

    let mut tx = conn.begin().await.unwrap();
    let batch = vec![with_command(enveloped("a", 1), first)];
    provider.append_in(&mut tx, batch.clone()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(provider.command(first).await.unwrap(), None, "rolled back");

    let mut tx = conn.begin().await.unwrap();
    provider.append_in(&mut tx, batch).await.unwrap();
    tx.commit().await.unwrap();
    provider.sequence().await.unwrap();
    let record = provider.command(first).await.unwrap().expect("committed");
    assert_eq!((record.aggregate_id.as_str(), record.version), ("a", 1));

    // In one transaction: a duplicate id, then a version conflict after a new id was recorded;
    // each undoes its own writes only, and the transaction goes on.
    let second = Uuid::now_v7();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO notes VALUES (1)").await.unwrap();
    let again = vec![with_command(event("b", 1), first)];
    let error = provider.append_in(&mut tx, again).await.unwrap_err();
    assert!(
        matches!(error, Error::DuplicateCommand { command_id } if command_id == first),
        "{error}"
    );
    let stale = vec![with_command(event("c", 1), second), event("a", 1)];
    let error = provider.append_in(&mut tx, stale).await.unwrap_err();
    assert!(error.is_version_conflict(), "{error}");
    provider
        .append_in(&mut tx, vec![event("d", 1)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    provider.sequence().await.unwrap();

    let notes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(notes, 1, "the caller's write committed");
    let ids: Vec<String> = stored(&*provider)
        .await
        .iter()
        .map(|m| m.aggregate_id.to_string())
        .collect();
    assert_eq!(ids, ["a", "d"], "nothing of the failed appends");
    assert_eq!(
        provider.command(second).await.unwrap(),
        None,
        "the id of the append that conflicted is not recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_append_records_no_command_id() {
    let Some(url) = support::url() else { return };
    let (provider, _db) = support::fresh(&url).await;
    provider.append(vec![event("a", 1)]).await.unwrap();
    let id = Uuid::now_v7();
    let stale = vec![with_command(event("a", 1), id)];
    let error = provider.append(stale).await.unwrap_err();
    assert!(error.is_version_conflict(), "{error}");
    assert_eq!(provider.command(id).await.unwrap(), None);
    let appended = provider
        .append(vec![with_command(event("a", 2), id)])
        .await
        .unwrap();
    assert_eq!(appended[0].position, 2);

    // Two ids in one append, one of them recorded: that one is named, nothing is written.
    let other = Uuid::now_v7();
    let both = vec![
        with_command(event("b", 1), other),
        with_command(event("c", 1), id),
    ];
    let error = provider.append(both).await.unwrap_err();
    assert!(
        matches!(error, Error::DuplicateCommand { command_id } if command_id == id),
        "{error}"
    );
    assert_eq!(provider.command(other).await.unwrap(), None);
    assert_eq!(stored(&*provider).await.len(), 2);
}
