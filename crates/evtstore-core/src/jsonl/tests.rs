//! Export and import on the in-memory provider.

use super::*;
use crate::MemoryProvider;

/// The `n`th event of a store: one of three streams, with every envelope field given (or, for
/// some, left out), a body whose keys are not in order, and a timestamp of its own.
fn event(n: u64, versions: &mut std::collections::HashMap<String, u64>) -> NewEvent {
    let stream = ["users", "accounts", "orders"][n as usize % 3];
    let id = format!("a{}", n % 5);
    let version = versions.entry(format!("{stream}/{id}")).or_default();
    *version += 1;
    let data = format!(r#"{{"type":"happened","n":{n},"b":[1,2],"a":"é\"x"}}"#);
    let mut event = NewEvent::new(stream, id, *version, data);
    event.timestamp = Some(1_700_000_000_000 + n as i64);
    event.revision = 1 + (n % 2) as u32;
    if !n.is_multiple_of(4) {
        event.correlation_id = Some(Uuid::now_v7());
        event.causation_id = Some(Uuid::now_v7());
        event.metadata = Some(format!(r#"{{"user":"ann","n":{n}}}"#).into());
    }
    if n == 7 {
        event.metadata = Some("null".into()); // metadata that is JSON null is kept as such
    }
    event
}

/// A store of `count` events, appended a few at a time.
async fn store(count: u64) -> MemoryProvider {
    let store = MemoryProvider::new();
    let mut versions = Default::default();
    for n in 0..count {
        store.append(vec![event(n, &mut versions)]).await.unwrap();
    }
    store
}

/// Every event of a store in store order, its position left out.
async fn events(store: &MemoryProvider) -> Vec<StoredEvent> {
    let streams = store.streams().await.unwrap();
    let mut events = store.events(&streams, 0, usize::MAX).await.unwrap();
    for event in &mut events {
        event.meta.position = 0;
    }
    events
}

async fn export_all(store: &MemoryProvider) -> String {
    let mut file = Vec::new();
    export(store, &[], &mut file, |_| {}).await.unwrap();
    String::from_utf8(file).unwrap()
}

async fn import_into(store: &MemoryProvider, file: &str) -> Result<Progress> {
    import(store, file.as_bytes(), |_| {}).await
}

#[tokio::test]
async fn a_store_moves_with_every_field_but_positions() {
    let source = store(40).await;
    let file = export_all(&source).await;
    assert_eq!(file.lines().count(), 40);
    let first: serde_json::Value = serde_json::from_str(file.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        first["metadata"]["user"], "ann",
        "metadata is JSON, not a string"
    );
    assert_eq!(first["data"]["b"][1], 2, "the body is JSON, not a string");

    let target = MemoryProvider::new();
    let done = import_into(&target, &file).await.unwrap();
    assert_eq!((done.read, done.written, done.skipped), (40, 40, 0));
    assert_eq!(events(&target).await, events(&source).await);
    assert_eq!(export_all(&target).await, file);
}

#[tokio::test]
async fn an_export_of_some_streams_holds_only_theirs() {
    let source = store(12).await;
    let mut file = Vec::new();
    let streams = ["orders".to_owned(), "users".to_owned()];
    let done = export(&source, &streams, &mut file, |_| {}).await.unwrap();
    assert_eq!(done.written, 8);
    let target = MemoryProvider::new();
    import_into(&target, std::str::from_utf8(&file).unwrap())
        .await
        .unwrap();
    assert_eq!(target.streams().await.unwrap(), streams);
}

#[tokio::test]
async fn importing_again_appends_nothing() {
    let source = store(30).await;
    let file = export_all(&source).await;
    let target = MemoryProvider::new();
    import_into(&target, &file).await.unwrap();
    let again = import_into(&target, &file).await.unwrap();
    assert_eq!((again.read, again.written, again.skipped), (30, 0, 30));
    assert_eq!(events(&target).await, events(&source).await);
}

#[tokio::test]
async fn an_overlapping_file_appends_only_what_is_missing() {
    let source = store(30).await;
    let file = export_all(&source).await;
    let lines: Vec<&str> = file.lines().collect();
    let target = MemoryProvider::new();
    // The first 17 lines end in the middle of aggregates.
    import_into(&target, &lines[..17].join("\n")).await.unwrap();
    let rest = import_into(&target, &file).await.unwrap();
    assert_eq!((rest.written, rest.skipped), (13, 17));
    assert_eq!(events(&target).await, events(&source).await);
}

#[tokio::test]
async fn another_event_at_a_version_is_refused_by_name() {
    let source = store(6).await;
    let file = export_all(&source).await;
    let target = MemoryProvider::new();
    // users/a3 version 1 is line 4; the store holds another event there.
    let other = NewEvent::new("users", "a3", 1, r#"{"type":"other"}"#);
    let other_id = other.event_id;
    target.append(vec![other]).await.unwrap();
    let line: Line = serde_json::from_str(file.lines().nth(3).unwrap()).unwrap();
    let error = import_into(&target, &file).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "line 4 of the import: event {} (users/a3 version 1): event {other_id} holds that \
             version in the store",
            line.event_id
        )
    );
    assert_eq!(error.kind(), crate::ErrorKind::InvalidInput);
    assert_eq!(
        events(&target).await.len(),
        1 + 3,
        "the lines before it were imported"
    );
}

#[tokio::test]
async fn an_event_that_would_leave_a_gap_is_refused() {
    let source = store(20).await;
    let file = export_all(&source).await;
    // Without its first line, users/a0 starts at version 2, on line 15.
    let later: Vec<&str> = file.lines().skip(1).collect();
    let target = MemoryProvider::new();
    let error = import_into(&target, &later.join("\n")).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("line 15 of the import: event "),
        "{message}"
    );
    let gap = "(users/a0 version 2): the store does not hold the version before it, so it would \
               leave a gap";
    assert!(message.ends_with(gap), "{message}");
    assert_eq!(
        events(&target).await.len(),
        14,
        "the lines before it were imported"
    );
}

#[tokio::test]
async fn a_malformed_line_is_named_after_importing_the_lines_before_it() {
    let source = store(4).await;
    let file = export_all(&source).await;
    let mut lines: Vec<String> = file.lines().map(str::to_owned).collect();
    let cases = [
        (
            "{\"stream\":",
            "not an event: EOF while parsing a value (at column 10)",
        ),
        (
            &lines[2].replace(r#""revision""#, r#""revisions""#),
            "not an event: unknown field `revisions`, expected one of",
        ),
        (
            &lines[2].replace(r#""event_id""#, r#""id""#),
            "not an event: unknown field `id`",
        ),
        (
            &lines[2].replace(r#""version":1"#, r#""version":0"#),
            "version 0: versions start at 1",
        ),
        (
            &lines[2].replace(r#""stream":"orders""#, r#""stream":"""#),
            "invalid stream \"\"",
        ),
    ];
    for (bad, expected) in cases {
        let mut broken = lines.clone();
        broken.insert(2, String::new()); // a blank line counts, and is skipped
        broken[3] = bad.to_owned();
        let target = MemoryProvider::new();
        let error = import_into(&target, &broken.join("\n")).await.unwrap_err();
        let message = error.to_string();
        let prefix = format!("line 4 of the import: {expected}");
        assert!(message.starts_with(&prefix), "{message}");
        assert_eq!(events(&target).await.len(), 2, "{message}");
    }
    let not_text = [lines[0].as_bytes(), b"\n\xff\n"].concat();
    let error = import(&MemoryProvider::new(), &not_text[..], |_| {}).await;
    let error = error.unwrap_err().to_string();
    assert_eq!(error, "line 2 of the import: not UTF-8 text");
    lines[1] = lines[1].replace(r#""timestamp""#, r#""time""#);
    let error = import_into(&MemoryProvider::new(), &lines.join("\n"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("line 2"), "{error}");
}

#[tokio::test]
async fn a_body_on_several_lines_is_written_on_one() {
    let store = MemoryProvider::new();
    let body = "{\n  \"type\": \"made\",\r\n  \"text\": \"a\\nb\"\n}";
    let event = NewEvent::new("users", "u1", 1, body);
    store.append(vec![event]).await.unwrap();
    let file = export_all(&store).await;
    assert_eq!(file.lines().count(), 1);
    let target = MemoryProvider::new();
    import_into(&target, &file).await.unwrap();
    let data = &events(&target).await[0].data;
    let parsed: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({ "type": "made", "text": "a\nb" })
    );
}

#[tokio::test]
async fn progress_is_reported_every_batch_and_at_the_end() {
    let source = MemoryProvider::new();
    let append = (1..=2_500).map(|v| NewEvent::new("users", "u1", v, r#"{"type":"t"}"#));
    source.append(append.collect()).await.unwrap();
    let mut reports = Vec::new();
    let mut file = Vec::new();
    export(&source, &[], &mut file, |p| reports.push(p))
        .await
        .unwrap();
    let written: Vec<(u64, bool)> = reports.iter().map(|p| (p.written, p.done)).collect();
    assert_eq!(
        written,
        [(1000, false), (2000, false), (2500, false), (2500, true)]
    );

    let mut reports = Vec::new();
    let target = MemoryProvider::new();
    import(&target, &file[..], |p| reports.push(p))
        .await
        .unwrap();
    let written: Vec<(u64, u64, bool)> = reports
        .iter()
        .map(|p| (p.read, p.written, p.done))
        .collect();
    assert_eq!(
        written,
        [
            (1000, 1000, false),
            (2000, 2000, false),
            (2500, 2500, false),
            (2500, 2500, true)
        ]
    );
}

#[tokio::test]
async fn an_empty_store_exports_nothing() {
    let mut file = Vec::new();
    let done = export(&MemoryProvider::new(), &[], &mut file, |_| {})
        .await
        .unwrap();
    assert_eq!((done.written, done.done, file.len()), (0, true, 0));
}

#[tokio::test]
async fn archived_aggregates_move_whole_and_deleted_ones_not_at_all() {
    use crate::conformance::domain::{Bump, Counter, Tests};
    let source: crate::Domain<Tests> = crate::Domain::new(MemoryProvider::new());
    for id in ["kept", "archived", "deleted"] {
        source.execute(id, Bump { by: vec![1, 2] }).await.unwrap();
    }
    source.archive::<Counter>("archived").await.unwrap();
    source
        .execute("archived", Bump { by: vec![3] })
        .await
        .unwrap();
    source.archive::<Counter>("archived").await.unwrap();
    source.delete::<Counter>("deleted").await.unwrap();
    let mut file = Vec::new();
    export(&**source.provider(), &[], &mut file, |_| {})
        .await
        .unwrap();

    let target: crate::Domain<Tests> = crate::Domain::new(MemoryProvider::new());
    let file = String::from_utf8(file).unwrap();
    import(&**target.provider(), file.as_bytes(), |_| {})
        .await
        .unwrap();
    let archived = target.load::<Counter>("archived").await.unwrap();
    assert_eq!(
        (archived.version, archived.state.history),
        (5, vec![1, 2, 3])
    );
    let deleted = target.load::<Counter>("deleted").await.unwrap();
    assert_eq!(deleted.version, 0, "a deleted aggregate is not exported");
    assert_eq!(target.load::<Counter>("kept").await.unwrap().version, 2);
}
