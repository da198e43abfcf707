//! Event bodies another tool stored as a BLOB, or as text that is not UTF-8: each is an
//! event that fails to decode, named, and skipped by a handler that continues on errors.

use std::sync::{Arc, Mutex};

use evtstore_core::conformance::domain::{CreateUser, Tests, User};
use evtstore_core::{Domain, Error, ErrorKind, Position};
use evtstore_sqlite::SqliteProvider;

/// The decode error's place: (aggregate id, version, position).
fn place(error: &Error) -> (String, u64, Position) {
    match error {
        Error::Decode {
            stream,
            aggregate_id,
            version,
            position,
            ..
        } if stream == "users" => (aggregate_id.clone(), *version, *position),
        other => panic!("expected Error::Decode on users, got {other:?}"),
    }
}

/// Writes u2's first event as a BLOB and u3's as text that is not UTF-8, as another tool
/// might; returns their positions.
fn write_bad_rows(path: &std::path::Path) -> (Position, Position) {
    let other = rusqlite::Connection::open(path).unwrap();
    let insert = "INSERT INTO events (stream, aggregate_id, version, timestamp, data)
                  VALUES ('users', ?1, 1, 0, ?2)";
    let blob = br#"{"type":"disabled"}"#.to_vec();
    other.execute(insert, ("u2", blob)).unwrap();
    let blob_at = other.last_insert_rowid() as Position;
    let not_utf8 = "INSERT INTO events (stream, aggregate_id, version, timestamp, data)
                    VALUES ('users', 'u3', 1, 0, CAST(X'7B22FF22' AS TEXT))";
    other.execute(not_utf8, ()).unwrap();
    (blob_at, other.last_insert_rowid() as Position)
}

#[tokio::test]
async fn bodies_that_are_not_text_fail_to_decode_and_can_be_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let domain: Domain<Tests> = Domain::new(SqliteProvider::open(&path).unwrap());
    let created = CreateUser { name: "ada".into() };
    let u1 = domain.execute("u1", created).await.unwrap().position;
    let (blob_at, not_utf8_at) = write_bad_rows(&path);
    let created = CreateUser { name: "bob".into() };
    let u4 = domain.execute("u4", created).await.unwrap().position;

    let error = domain.load::<User>("u2").await.unwrap_err();
    assert_eq!(place(&error), ("u2".into(), 1, blob_at), "{error}");
    assert_eq!(error.kind(), ErrorKind::Corrupt);

    let handled = Arc::new(Mutex::new(Vec::new()));
    let reported = Arc::new(Mutex::new(Vec::new()));
    let (seen, failures) = (handled.clone(), reported.clone());
    let strict = domain
        .handler("strict")
        .handle::<User, _>(|_, _, _| Ok(()))
        .build()
        .unwrap();
    let error = strict.run_once().await.unwrap_err();
    assert_eq!(place(&error), ("u2".into(), 1, blob_at), "{error}");

    let lenient = domain
        .handler("lenient")
        .continue_on_error(true)
        .on_error(move |failure| {
            failures.lock().unwrap().push(place(failure.error));
            async {}
        })
        .handle::<User, _>(move |_, _, meta| {
            seen.lock().unwrap().push(meta.position);
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(lenient.run_once().await.unwrap(), 2);
    assert_eq!(*handled.lock().unwrap(), [u1, u4]);
    let expected = [("u2".into(), 1, blob_at), ("u3".into(), 1, not_utf8_at)];
    assert_eq!(*reported.lock().unwrap(), expected);
}
