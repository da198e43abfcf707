//! Snapshots (parity item 16), their policy (`SNAPSHOT_EVERY`, `save_snapshot`) and the
//! aggregate cache.

use std::convert::Infallible;
use std::sync::Arc;

use super::domain::*;
use super::support::{Counting, domain, raw};
use crate::{Command, Decision, Domain, Error, ErrorKind, Loaded, Provider, Snapshot};

/// The stored copy of profile `id`.
async fn stored_snapshot(provider: &Arc<dyn Provider>, id: &str) -> Option<Snapshot> {
    let copy = provider.snapshot("profiles", id).await;
    copy.unwrap_or_else(|e| panic!("reading the stored copy of profiles/{id}: {e}"))
}

/// Renames profile `id` (persisted under `"v1"`) to each name in turn.
async fn rename_each(domain: &Domain<Tests>, id: &str, names: &[&str]) -> Loaded<Profile> {
    let mut profile = None;
    for name in names {
        let renamed = domain
            .execute(
                id,
                RenameProfile {
                    name: name.to_string(),
                },
            )
            .await;
        profile = Some(renamed.unwrap_or_else(|e| panic!("renaming {id} to {name}: {e}")));
    }
    profile.expect("at least one name")
}

/// Item 16: an aggregate without a version string stores no copy of its state.
pub async fn aggregate_without_snapshots_stores_none(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    domain
        .execute("u1", DisableUser)
        .await
        .expect("disabling u1");
    let copy = provider
        .snapshot("users", "u1")
        .await
        .expect("reading a stored copy");
    assert_eq!(copy, None, "users are not persisted");
    assert_eq!(
        stored_snapshot(&provider, "u1").await,
        None,
        "nor is a profile that has no events"
    );
}

/// Item 16: an aggregate with a version string and `SNAPSHOT_EVERY = 1` stores a copy of its
/// state with each append, carrying the version string, version and position.
pub async fn snapshotted_aggregate_stores_a_snapshot(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    for (version, name) in [(1, "ada"), (2, "bea")] {
        let profile = rename_each(&domain, "x", &[name]).await;
        let copy = stored_snapshot(&provider, "x")
            .await
            .expect("a stored copy after the append");
        assert_eq!(
            (copy.stream.as_str(), copy.aggregate_id.as_str()),
            ("profiles", "x")
        );
        assert_eq!(
            (copy.schema.as_str(), copy.version),
            ("v1", version),
            "copy {copy:?}"
        );
        assert_eq!(
            copy.position, profile.position,
            "the copy is at the last event"
        );
        let state: serde_json::Value = serde_json::from_str(&copy.state).expect("state is JSON");
        assert_eq!(
            (&state["name"], &state["renames"]),
            (&name.into(), &version.into()),
            "{state}"
        );
    }
    assert_eq!(
        stored_snapshot(&provider, "y").await,
        None,
        "another profile has no copy"
    );
}

/// Item 16: a load uses the stored copy when its version string matches (folding only newer
/// events, here one appended without a copy).
pub async fn matching_snapshot_is_used_on_load(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    let written = rename_each(&domain, "x", &["ada", "bea"]).await;
    let loaded = domain.load::<Profile>("x").await.expect("loading x");
    assert_eq!(
        loaded.state.folded, 0,
        "a load from a matching copy folds no event: {loaded:?}"
    );
    assert_eq!((loaded.version, loaded.position), (2, written.position));
    assert_eq!(
        (loaded.state.name.as_str(), loaded.state.renames),
        ("bea", 2)
    );

    let newer = raw("profiles", "x", 3, r#"{"type":"renamed","name":"cy"}"#);
    provider
        .append(vec![newer])
        .await
        .expect("appending an event without a copy");
    let loaded = domain.load::<Profile>("x").await.expect("loading x again");
    assert_eq!(
        loaded.state.folded, 1,
        "only the event after the copy is folded: {loaded:?}"
    );
    assert_eq!(
        (
            loaded.version,
            loaded.state.name.as_str(),
            loaded.state.renames
        ),
        (3, "cy", 3)
    );
}

/// Item 16: a stored copy with another version string is ignored and the state refolded.
pub async fn mismatched_snapshot_is_refolded(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    rename_each(&domain, "x", &["ada", "bea"]).await;
    let loaded = domain
        .load::<ProfileV2>("x")
        .await
        .expect("loading x as v2");
    assert_eq!(
        loaded.state.folded, 2,
        "a v1 copy is ignored by v2: {loaded:?}"
    );
    assert_eq!(
        (
            loaded.version,
            loaded.state.name.as_str(),
            loaded.state.renames
        ),
        (2, "bea", 2)
    );
}

/// Item 16: after an append under a new version string the stored copy carries it; loads under
/// the new string use it and loads under the old one refold.
pub async fn append_under_new_schema_rewrites_snapshot(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    rename_each(&domain, "x", &["ada", "bea"]).await;
    let renamed = domain
        .execute("x", RenameProfileV2 { name: "cy".into() })
        .await;
    let renamed = renamed.expect("renaming x under v2");
    assert_eq!(
        (renamed.version, renamed.state.folded),
        (3, 3),
        "v2 refolded two events, added one"
    );
    let copy = stored_snapshot(&provider, "x")
        .await
        .expect("a stored copy");
    assert_eq!(
        (copy.schema.as_str(), copy.version),
        ("v2", 3),
        "the copy is rewritten: {copy:?}"
    );
    assert_eq!(copy.position, renamed.position);

    let v2 = domain
        .load::<ProfileV2>("x")
        .await
        .expect("loading x as v2");
    assert_eq!(
        (
            v2.state.folded,
            v2.version,
            v2.state.name.as_str(),
            v2.state.renames
        ),
        (0, 3, "cy", 3)
    );
    let v1 = domain.load::<Profile>("x").await.expect("loading x as v1");
    assert_eq!(
        (
            v1.state.folded,
            v1.version,
            v1.state.name.as_str(),
            v1.state.renames
        ),
        (3, 3, "cy", 3)
    );
}

/// Renames sparse profile `id` once for each version in `versions`, in one command, naming it
/// `n<version>` each time.
struct RenameSparse {
    versions: std::ops::RangeInclusive<u64>,
}

impl<D> Command<D> for RenameSparse {
    type Aggregate = SparseProfile;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<SparseProfile>, _: &Domain<D>) -> Decision<Self, D> {
        let rename = |version| ProfileEvent::Renamed {
            name: format!("n{version}"),
        };
        Ok(self.versions.map(rename).collect())
    }
}

/// Renames sparse profile `id` to versions `from + 1 ..= to` in one command.
async fn rename_sparse(
    domain: &Domain<Tests>,
    id: &str,
    from: u64,
    to: u64,
) -> Loaded<SparseProfile> {
    let renamed = domain
        .execute(
            id,
            RenameSparse {
                versions: from + 1..=to,
            },
        )
        .await;
    let renamed =
        renamed.unwrap_or_else(|e| panic!("renaming {id} from version {from} to {to}: {e}"));
    assert_eq!(renamed.version, to, "{renamed:?}");
    renamed
}

/// The version of sparse profile `id`'s stored copy, if any, checking that the copy holds the
/// state folded up to that version.
async fn sparse_copy(provider: &Arc<dyn Provider>, id: &str) -> Option<u64> {
    let read = provider.snapshot("sparse-profiles", id).await;
    let copy =
        read.unwrap_or_else(|e| panic!("reading the stored copy of sparse-profiles/{id}: {e}"))?;
    let state: serde_json::Value = serde_json::from_str(&copy.state).expect("state is JSON");
    let folded_to = (&state["renames"], &state["name"]);
    let expected = (&copy.version.into(), &format!("n{}", copy.version).into());
    assert_eq!(folded_to, expected, "copy {copy:?}");
    assert_eq!(copy.schema, "v1", "copy {copy:?}");
    Some(copy.version)
}

/// A load of sparse profile `id` gives its state at `version`, folding only the events after
/// the stored copy at `copy` (every event without one).
async fn assert_sparse_load(domain: &Domain<Tests>, id: &str, version: u64, copy: Option<u64>) {
    let loaded = domain.load::<SparseProfile>(id).await;
    let loaded = loaded.unwrap_or_else(|e| panic!("loading {id}: {e}"));
    let state = (
        loaded.version,
        loaded.state.renames,
        loaded.state.name.clone(),
    );
    assert_eq!(
        state,
        (version, version, format!("n{version}")),
        "{loaded:?}"
    );
    let after_copy = version - copy.unwrap_or(0);
    assert_eq!(
        loaded.state.folded, after_copy,
        "events folded after the copy: {loaded:?}"
    );
}

/// Snapshot policy: a kind snapshotted every 3 events stores a copy when a command takes its
/// version to 3 and to 6, and none in between; loads fold only the events after the copy.
pub async fn snapshots_are_stored_at_multiples_of_snapshot_every(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let domain = domain(&provider);
    let copies = [None, None, Some(3), Some(3), Some(3), Some(6), Some(6)];
    for (version, copy) in (1..).zip(copies) {
        rename_sparse(&domain, "x", version - 1, version).await;
        assert_eq!(
            sparse_copy(&provider, "x").await,
            copy,
            "after version {version}"
        );
        assert_sparse_load(&domain, "x", version, copy).await;
    }
}

/// Snapshot policy: a command appending several events that passes a multiple of 3 stores a
/// copy at its last version (2 to 4, 5 to 7); one that stays between multiples (4 to 5) none.
pub async fn multi_event_commands_crossing_a_multiple_store_a_snapshot(
    provider: Arc<dyn Provider>,
    _page: usize,
) {
    let domain = domain(&provider);
    let steps = [
        (0, 2, None),
        (2, 4, Some(4)),
        (4, 5, Some(4)),
        (5, 7, Some(7)),
    ];
    let mut last = None;
    for (from, to, copy) in steps {
        last = Some(rename_sparse(&domain, "x", from, to).await);
        assert_eq!(
            sparse_copy(&provider, "x").await,
            copy,
            "after {from} to {to}"
        );
        assert_sparse_load(&domain, "x", to, copy).await;
    }
    let copy = provider.snapshot("sparse-profiles", "x").await;
    let copy = copy.expect("reading the copy").expect("a copy at 7");
    let last = last.expect("some commands ran");
    assert_eq!(
        copy.position, last.position,
        "the copy is at the last event"
    );
}

/// Snapshot policy: `Domain::save_snapshot` stores a copy at the current version between
/// multiples, which loads start from, and the policy goes on after it. It stores none for an
/// aggregate without events and refuses a kind without a schema, naming the aggregate.
pub async fn save_snapshot_stores_one_on_demand(provider: Arc<dyn Provider>, _page: usize) {
    let domain = domain(&provider);
    rename_sparse(&domain, "x", 0, 3).await;
    rename_sparse(&domain, "x", 3, 4).await;
    assert_eq!(sparse_copy(&provider, "x").await, Some(3));
    let saved = domain.save_snapshot::<SparseProfile>("x").await;
    let saved = saved.expect("saving a copy of x");
    assert_eq!((saved.version, saved.state.renames), (4, 4), "{saved:?}");
    assert_eq!(sparse_copy(&provider, "x").await, Some(4), "stored at once");
    assert_sparse_load(&domain, "x", 4, Some(4)).await;
    rename_sparse(&domain, "x", 4, 5).await;
    assert_eq!(
        sparse_copy(&provider, "x").await,
        Some(4),
        "5 crosses no multiple"
    );
    assert_sparse_load(&domain, "x", 5, Some(4)).await;

    let empty = domain.save_snapshot::<SparseProfile>("y").await;
    assert_eq!(empty.expect("saving a copy of y").version, 0);
    assert_eq!(sparse_copy(&provider, "y").await, None, "y has no events");

    domain
        .execute("u1", CreateUser { name: "ada".into() })
        .await
        .expect("creating u1");
    let refused = domain.save_snapshot::<User>("u1").await;
    let refused = refused.expect_err("users have no snapshot schema");
    assert_eq!(refused.kind(), ErrorKind::InvalidInput, "{refused:?}");
    assert!(
        matches!(&refused, Error::NotSnapshotted { stream, aggregate_id }
            if stream == "users" && aggregate_id == "u1"),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("users/u1"), "{refused}");
    let copy = provider.snapshot("users", "u1").await;
    assert_eq!(copy.expect("reading a copy of u1"), None, "nothing stored");
}

/// The aggregate cache gives what uncached loads give, reads only events newer than what it
/// holds, and sees events appended through another domain on the same provider.
pub async fn aggregate_cache_matches_uncached_loads(provider: Arc<dyn Provider>, _page: usize) {
    let counting = Counting::new(provider.clone());
    let cached = Domain::<Tests>::with_provider(counting.clone()).with_aggregate_cache(16);
    let plain = domain(&provider);
    let same = |id: &'static str| {
        let (cached, plain) = (cached.clone(), plain.clone());
        async move {
            let from_cache = cached.load::<Counter>(id).await.expect("a cached load");
            let uncached = plain.load::<Counter>(id).await.expect("an uncached load");
            assert_eq!(
                from_cache, uncached,
                "the cache must give what an uncached load gives"
            );
            from_cache
        }
    };
    cached
        .execute("c1", Bump { by: vec![1, 2] })
        .await
        .expect("bumping c1 via the cache");
    counting.take_aggregate_reads();
    assert_eq!(same("c1").await.version, 2);
    assert_eq!(
        counting.take_aggregate_reads(),
        [2],
        "a cached load reads only newer events"
    );

    plain
        .execute("c1", Bump { by: vec![3] })
        .await
        .expect("bumping c1 via another domain");
    let counter = same("c1").await;
    assert_eq!(
        (counter.version, &counter.state.history[..]),
        (3, &[1, 2, 3][..]),
        "it sees it"
    );
    let direct = raw(
        "counters",
        "c1",
        4,
        r#"{"type":"added","by":4,"seen_version":3}"#,
    );
    provider
        .append(vec![direct])
        .await
        .expect("appending directly");
    let counter = same("c1").await;
    assert_eq!((counter.version, counter.state.total), (4, 10));

    let c2 = cached
        .execute("c2", Bump { by: vec![5] })
        .await
        .expect("bumping c2");
    assert_eq!(same("c2").await, c2, "ids are cached apart");
    assert_eq!(same("c1").await.version, 4);
    assert_eq!(same("none").await, Loaded::new("none"));
}
