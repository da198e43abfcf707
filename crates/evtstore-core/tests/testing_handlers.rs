//! The test kit's handler scenarios, and scenarios on a provider of the test's.

use std::sync::Arc;

use evtstore_core::conformance::domain::*;
use evtstore_core::testing::Scenario;
use evtstore_core::{BoxError, EventMeta, Handles, MemoryProvider, Provider};

#[tokio::test]
async fn a_scenario_on_a_provider_follows_its_events() {
    let store: Arc<dyn Provider> = Arc::new(MemoryProvider::new());
    Scenario::<Tests>::on(store.clone())
        .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
        .when("ada", DisableUser)
        .then([UserEvent::Disabled])
        .await;
    let given_again =
        Scenario::<Tests>::on(store.clone()).given::<User>("ada", [UserEvent::Enabled]);
    let user = given_again
        .when("ada", DisableUser)
        .then([UserEvent::Disabled])
        .await;
    assert_eq!(
        user.version, 4,
        "each scenario follows the events stored before it"
    );
    let stored = store
        .aggregate_events("users", "ada", 0)
        .await
        .expect("reading ada");
    assert_eq!(stored.len(), 4);
}

/// The aggregates a handler saw, as `stream/id`, in order.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn record(&mut self, meta: &EventMeta) -> Result<(), BoxError> {
        self.0
            .push(format!("{}/{}", meta.stream, meta.aggregate_id));
        Ok(())
    }
}

impl Handles<User> for Seen {
    async fn handle(&mut self, _: &UserEvent, meta: &EventMeta) -> Result<(), BoxError> {
        self.record(meta)
    }
}

impl Handles<Post> for Seen {
    async fn handle(&mut self, _: &PostEvent, meta: &EventMeta) -> Result<(), BoxError> {
        self.record(meta)
    }
}

#[tokio::test]
async fn run_handler_feeds_the_given_events_in_order() {
    let archived = [PostEvent::PostArchived];
    let seen = Scenario::<Tests>::new()
        .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
        .given::<Post>("p1", archived.clone())
        .given::<Group>("g1", [GroupEvent::Created { title: "G".into() }])
        .given::<User>("ada", [UserEvent::Disabled])
        .run_handler(|tests| {
            tests
                .handler_with("seen", Seen::default())
                .on::<User>()
                .on::<Post>()
                .build()
        })
        .await;
    assert_eq!(seen.state().await.0, ["users/ada", "posts/p1", "users/ada"]);
    assert_eq!(
        seen.position().await.expect("its position"),
        4,
        "it read every event"
    );
}

#[tokio::test]
#[should_panic(
    expected = "handler \"picky\" failed on the given events: handler \"picky\" failed \
                           on users/ada at position 1: no thanks"
)]
async fn run_handler_fails_when_the_handler_does() {
    let scenario = Scenario::<Tests>::new().given::<User>("ada", [UserEvent::Disabled]);
    scenario
        .run_handler(|tests| {
            tests
                .handler("picky")
                .handle::<User, _>(|_, _, _| Err("no thanks".into()))
                .build()
        })
        .await;
}

#[tokio::test]
#[should_panic(expected = "the handler did not build: invalid handler \"idle\"")]
async fn run_handler_fails_when_the_handler_does_not_build() {
    Scenario::<Tests>::new()
        .run_handler(|tests| tests.handler("idle").build())
        .await;
}
