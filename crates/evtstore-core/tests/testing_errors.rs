//! The test kit's store errors, and rejected commands that write.

use evtstore_core::conformance::domain::*;
use evtstore_core::testing::Scenario;
use evtstore_core::{Command, Decision, Domain, Error, ErrorKind, Loaded};

/// Adds one value, after another writer added one to the same counter.
struct Overtaken;

impl Command<Tests> for Overtaken {
    type Aggregate = Counter;
    type Error = std::convert::Infallible;

    async fn handle(
        self,
        counter: &Loaded<Counter>,
        tests: &Domain<Tests>,
    ) -> Decision<Self, Tests> {
        let added = CounterEvent::Added {
            by: 1,
            seen_version: counter.version,
        };
        tests.append(counter.clone(), vec![added.clone()]).await?;
        Ok(vec![added])
    }
}

#[tokio::test]
async fn then_error_gives_a_conflict_or_store_error_of_the_kind() {
    let error = Scenario::<Tests>::new()
        .when("c1", Overtaken)
        .then_error(ErrorKind::Conflict)
        .await;
    assert!(
        matches!(
            error,
            Error::VersionConflict {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{error}"
    );
    let empty_id = Scenario::<Tests>::new().when("", DisableUser);
    let error = empty_id.then_error(ErrorKind::InvalidInput).await;
    assert!(
        error.to_string().starts_with("invalid aggregate id"),
        "{error}"
    );
}

#[tokio::test]
#[should_panic(expected = "the command on users/ failed otherwise: invalid aggregate id")]
async fn then_error_fails_on_another_kind() {
    Scenario::<Tests>::new()
        .when("", DisableUser)
        .then_error(ErrorKind::Conflict)
        .await;
}

#[tokio::test]
#[should_panic(expected = "expected a Conflict error from posts/p1, but: Rejected(Unauthorized)")]
async fn then_error_fails_on_a_rejection() {
    Scenario::<Tests>::new()
        .when(
            "p1",
            CreatePost {
                user_id: "bob".into(),
                content: "hi".into(),
            },
        )
        .then_error(ErrorKind::Conflict)
        .await;
}

#[tokio::test]
#[should_panic(expected = "the given events of users/ were not stored: invalid aggregate id")]
async fn given_events_that_cannot_be_stored_fail_the_scenario() {
    let scenario = Scenario::<Tests>::new().given::<User>("", [UserEvent::Disabled]);
    scenario
        .when("ada", DisableUser)
        .then([UserEvent::Disabled])
        .await;
}

/// Adds one value behind the command's back, then refuses.
struct WritesThenRefuses;

impl Command<Tests> for WritesThenRefuses {
    type Aggregate = User;
    type Error = Refused;

    async fn handle(self, user: &Loaded<User>, tests: &Domain<Tests>) -> Decision<Self, Tests> {
        tests
            .append(user.clone(), vec![UserEvent::Disabled])
            .await?;
        Err(Refused::NotAllowed)?
    }
}

#[tokio::test]
#[should_panic(
    expected = "the command on users/ada was rejected (not the author) but wrote 1 \
                           event: [{\"type\":\"disabled\"}]"
)]
async fn a_rejected_command_that_writes_fails_the_scenario() {
    let scenario = Scenario::<Tests>::new().when("ada", WritesThenRefuses);
    scenario.then_rejected(Refused::NotAllowed).await;
}
