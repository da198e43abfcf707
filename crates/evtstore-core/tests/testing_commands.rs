//! The test kit's command scenarios: what they accept, and how they fail.

use evtstore_core::conformance::domain::*;
use evtstore_core::testing::Scenario;

fn ada() -> UserEvent {
    UserEvent::Created { name: "Ada".into() }
}

fn post(id: &str) -> CreatePost {
    CreatePost {
        user_id: id.into(),
        content: "hi".into(),
    }
}

fn created(id: &str) -> PostEvent {
    PostEvent::PostCreated {
        user_id: id.into(),
        content: "hi".into(),
    }
}

#[tokio::test]
async fn then_returns_the_aggregate_after_the_expected_events() {
    let post = Scenario::<Tests>::new()
        .given::<User>("ada", [ada()])
        .when("p1", post("ada"))
        .then([created("ada")])
        .await;
    assert_eq!((post.version, post.state.user_id.as_str()), (1, "ada"));
}

#[tokio::test]
#[should_panic(expected = "the command on posts/p1 gave other events than expected \
                           (- expected, + actual):\n  \
                           - [0] PostCreated { user_id: \"ada\", content: \"bye\" }\n  \
                           + [0] PostCreated { user_id: \"ada\", content: \"hi\" }")]
async fn then_shows_events_that_differ() {
    let bye = PostEvent::PostCreated {
        user_id: "ada".into(),
        content: "bye".into(),
    };
    let scenario = Scenario::<Tests>::new().given::<User>("ada", [ada()]);
    scenario.when("p1", post("ada")).then([bye]).await;
}

/// The message shown in the documentation of `then`.
#[tokio::test]
#[should_panic(
    expected = "the command on counters/c1 gave other events than expected \
                           (- expected, + actual):\n    \
                           [0] Added { by: 2, seen_version: 0 }\n  \
                           - [1] Added { by: 4, seen_version: 0 }\n  \
                           + [1] Added { by: 3, seen_version: 0 }"
)]
async fn then_shows_the_documented_message() {
    let expected =
        [(2, 0), (4, 0)].map(|(by, seen_version)| CounterEvent::Added { by, seen_version });
    let scenario = Scenario::<Tests>::new().when("c1", Bump { by: vec![2, 3] });
    scenario.then(expected).await;
}

#[tokio::test]
#[should_panic(
    expected = "the command on counters/c1 gave 2 events where 1 were expected \
                           (- expected, + actual):\n    \
                           [0] Added { by: 1, seen_version: 0 }\n  \
                           + [1] Added { by: 2, seen_version: 0 }"
)]
async fn then_shows_extra_events() {
    let one = CounterEvent::Added {
        by: 1,
        seen_version: 0,
    };
    let scenario = Scenario::<Tests>::new().when("c1", Bump { by: vec![1, 2] });
    scenario.then([one]).await;
}

#[tokio::test]
#[should_panic(expected = "but it failed: command rejected: no such user (Rejected(Unauthorized))")]
async fn then_fails_on_a_rejection() {
    Scenario::<Tests>::new()
        .when("p1", post("bob"))
        .then([created("bob")])
        .await;
}

#[tokio::test]
async fn then_rejected_compares_the_error() {
    let scenario = Scenario::<Tests>::new().given::<User>("ada", [ada()]);
    scenario
        .when("ada", CreateUser { name: "Ada".into() })
        .then_rejected(Refused::Exists)
        .await;
}

#[tokio::test]
#[should_panic(expected = "rejected with Exists (already exists), expected Unauthorized")]
async fn then_rejected_fails_on_another_rejection() {
    let scenario = Scenario::<Tests>::new().given::<User>("ada", [ada()]);
    let create = CreateUser { name: "Ada".into() };
    scenario
        .when("ada", create)
        .then_rejected(Refused::Unauthorized)
        .await;
}

#[tokio::test]
#[should_panic(
    expected = "expected the command on users/ada to be rejected, but it succeeded \
                           with 1 event: [{\"type\":\"created\",\"name\":\"Ada\"}]"
)]
async fn then_rejected_fails_on_success() {
    let create = CreateUser { name: "Ada".into() };
    Scenario::<Tests>::new()
        .when("ada", create)
        .then_rejected(Refused::Exists)
        .await;
}

#[tokio::test]
async fn then_rejected_with_checks_with_a_closure() {
    let archive = ArchivePost {
        user_id: "bob".into(),
    };
    let scenario = Scenario::<Tests>::new().given::<Post>("p1", [created("ada")]);
    let refused = scenario
        .when("p1", archive)
        .then_rejected_with(|e| matches!(e, Refused::NotAllowed))
        .await;
    assert_eq!(refused.to_string(), "not the author");
}

#[tokio::test]
#[should_panic(
    expected = "posts/p1 was rejected with Unauthorized (no such user), which the \
                           check refuses"
)]
async fn then_rejected_with_fails_when_the_check_does() {
    let scenario = Scenario::<Tests>::new().when("p1", post("bob"));
    scenario.then_rejected_with(|e| *e == Refused::Exists).await;
}
