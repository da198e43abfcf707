//! Refusals: undecodable events and snapshots on load, invalid names.

use std::sync::Arc;

use super::domain::*;
use super::support::{all_events, domain, raw};
use crate::{Error, Position, Provider, Snapshot};

/// Asserts a decode error naming a place.
fn assert_decode(error: &Error, stream: &str, id: &str, version: u64, position: Position) {
    let Error::Decode {
        stream: s,
        aggregate_id,
        version: v,
        position: p,
        ..
    } = error
    else {
        panic!("expected Error::Decode, got {error:?}");
    };
    let place = (s.as_str(), aggregate_id.as_str(), *v, *p);
    assert_eq!(
        place,
        (stream, id, version, position),
        "the error names the event: {error}"
    );
}

/// Loading an aggregate whose event no longer decodes fails with `Error::Decode` naming the
/// event; a command on it fails the same way and writes nothing. So does a stored copy that no
/// longer decodes under a matching version string.
pub async fn undecodable_event_fails_load(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let good = domain
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect("bumping c1");
    let bad = provider
        .append(vec![raw(
            "counters",
            "c1",
            2,
            r#"{"type":"added","by":"seven"}"#,
        )])
        .await;
    let bad = bad.expect("appending an event that does not decode")[0].position;
    assert!(bad > good.position);
    let error = domain
        .load::<Counter>("c1")
        .await
        .expect_err("the load must fail");
    assert_decode(&error, "counters", "c1", 2, bad);
    let error = domain
        .execute("c1", Bump { by: vec![1] })
        .await
        .expect_err("the command too");
    assert_decode(&error.into(), "counters", "c1", 2, bad);
    assert_eq!(
        all_events(&provider, &["counters"]).await.len(),
        2,
        "nothing more written"
    );

    let renamed = domain
        .execute("x", RenameProfile { name: "ada".into() })
        .await
        .expect("rename");
    let broken = Snapshot {
        stream: "profiles".into(),
        aggregate_id: "x".into(),
        schema: "v1".into(),
        version: 1,
        position: renamed.position,
        state: "not json".into(),
    };
    provider
        .save_snapshot(broken)
        .await
        .expect("saving a broken copy");
    // A stored copy is a cache: one that no longer decodes is ignored, and the events refold.
    let refolded = domain
        .load::<Profile>("x")
        .await
        .expect("a broken copy is refolded from the events");
    assert_eq!((refolded.version, refolded.state.name.as_str()), (1, "ada"));
    let v2 = domain
        .load::<ProfileV2>("x")
        .await
        .expect("another version string refolds");
    assert_eq!((v2.version, v2.state.name.as_str()), (1, "ada"));
}

/// Asserts that an outcome is `Error::InvalidName` for `what`.
fn assert_invalid<T: std::fmt::Debug>(outcome: crate::Result<T>, what: &str, value: &str) {
    match outcome {
        Err(Error::InvalidName {
            what: w, value: v, ..
        }) => {
            let echoed = crate::names::shorten(value);
            assert_eq!(
                (w, v.as_str()),
                (what, echoed.as_str()),
                "which name was refused"
            );
        }
        other => panic!("{what} {value:?} must be refused with InvalidName, got {other:?}"),
    }
}

/// Invalid aggregate ids and stream names (empty, control characters, too long, not a name) are
/// refused with `Error::InvalidName` by loads, commands, appends and handlers; nothing is written.
pub async fn invalid_names_are_refused(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let long = "x".repeat(256);
    for id in ["", "a\nb", "nul\0", "tab\t", "\u{7f}", long.as_str()] {
        assert_invalid(domain.load::<User>(id).await, "aggregate id", id);
        assert_invalid(
            domain
                .execute(id, CreateUser { name: "x".into() })
                .await
                .map_err(Error::from),
            "aggregate id",
            id,
        );
        let event = raw("users", id, 1, r#"{"type":"disabled"}"#);
        assert_invalid(provider.append(vec![event]).await, "aggregate id", id);
    }
    for stream in ["", "bad stream", "users;drop table events", "a\nb"] {
        let event = raw(stream, "u1", 1, r#"{"type":"disabled"}"#);
        assert_invalid(provider.append(vec![event]).await, "stream", stream);
    }
    let good_then_bad = vec![
        raw("users", "u1", 1, r#"{"type":"created","name":"ada"}"#),
        raw("users", "", 1, r#"{"type":"disabled"}"#),
    ];
    assert_invalid(provider.append(good_then_bad).await, "aggregate id", "");
    assert!(
        all_events(&provider, &["users"]).await.is_empty(),
        "nothing written"
    );

    for name in ["", "a\nb"] {
        let builder = domain.handler(name).handle::<User, _>(|_, _, _| Ok(()));
        assert_invalid(builder.build().map(|_| ()), "bookmark", name);
    }
    let handler = domain.handler("far").handle::<User, _>(|_, _, _| Ok(()));
    let handler = handler.build().expect("a fine name");
    for far in [i64::MAX as u64, u64::MAX] {
        let value = far.to_string();
        assert_invalid(handler.set_position(far).await, "position", &value);
    }
    handler.set_position(7).await.expect("a fine position");
    assert_eq!(handler.position().await.expect("reading it"), 7);
    let fine = "user 42 / ünïcode";
    let user = domain
        .execute(fine, CreateUser { name: "ok".into() })
        .await
        .expect("a fine id");
    assert_eq!(
        domain.load::<User>(fine).await.expect("loading it"),
        user,
        "unicode ids work"
    );
}

/// Every provider refuses the same bad events at append time and stores nothing of them: a
/// body that is not JSON, a body with a NUL character, a float that is NaN or infinite (which
/// JSON cannot hold), each with an error naming the aggregate.
pub async fn bad_bodies_are_refused_at_append(provider: Arc<dyn Provider>, _page: usize) {
    for (body, reason) in [("not json", "not JSON"), (r#"{"a":"x\u0000"}"#, "NUL")] {
        let refused = provider.append(vec![raw("readings", "r1", 1, body)]).await;
        match refused {
            Err(Error::InvalidAppend {
                aggregate_id,
                reason: why,
                ..
            }) => {
                assert_eq!(aggregate_id, "r1");
                assert!(why.contains(reason), "{body}: {why}");
            }
            other => panic!("{body} must be refused with InvalidAppend, got {other:?}"),
        }
    }
    let domain = domain(&provider);
    for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let refused = Error::from(domain.execute("r1", Record(value)).await.unwrap_err());
        assert!(matches!(refused, Error::Encode { .. }), "{refused:?}");
        let message = refused.to_string();
        assert!(
            message.contains("readings/r1") && message.contains("NaN or infinite"),
            "{message}"
        );
    }
    let stored = all_events(&provider, &["readings"]).await;
    assert!(stored.is_empty(), "nothing was stored");
    let good = domain
        .execute("r1", Record(1.5))
        .await
        .expect("a finite value");
    assert_eq!((good.version, good.state.value), (1, 1.5));
}
