//! The command of a scenario and what it should do.

use std::fmt::Debug;

use super::Scenario;
use super::diff::{bodies, events_diff};
use crate::aggregate::{Aggregate, Loaded, decode_event};
use crate::command::{Command, CommandError};
use crate::domain::{Contains, Domain};
use crate::error::{Error, ErrorKind};
use crate::event::StoredEvent;

/// The event type of command `C`'s aggregate kind.
type EventOf<C, D> = <<C as Command<D>>::Aggregate as Aggregate>::Event;

/// A [`Scenario`] with its command, from [`Scenario::when`]: finish it with one of the `then…`
/// assertions, and `.await` it. Each `then…` stores the given events, executes the command
/// with [`Domain::execute`] and checks what it returned and wrote.
pub struct CommandScenario<D, C> {
    scenario: Scenario<D>,
    id: String,
    command: C,
}

/// What the command did: its result and the events it wrote.
struct Outcome<C: Command<D>, D> {
    result: Result<Loaded<C::Aggregate>, CommandError<C::Error>>,
    written: Vec<StoredEvent>,
    /// `stream/id` of the command's aggregate, for messages.
    place: String,
}

impl<D, C> CommandScenario<D, C>
where
    D: Contains<C::Aggregate> + 'static,
    C: Command<D>,
{
    pub(super) fn new(scenario: Scenario<D>, id: &str, command: C) -> Self {
        CommandScenario {
            scenario,
            id: id.to_owned(),
            command,
        }
    }

    /// Asserts that the command succeeds with exactly these events, in order (none for an
    /// empty list), as stored and read back; returns the aggregate the command returned.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let counter = Scenario::<Tests>::new()
    ///     .when("c1", Bump { by: vec![2, 3] })
    ///     .then([
    ///         CounterEvent::Added { by: 2, seen_version: 0 },
    ///         CounterEvent::Added { by: 3, seen_version: 0 },
    ///     ])
    ///     .await;
    /// assert_eq!(counter.state.total, 5);
    /// # }
    /// ```
    ///
    /// # Panics
    /// When the command fails or its events differ. The message lists the events, `-` for an
    /// expected one, `+` for the actual one in its place:
    ///
    /// ```text
    /// the command on counters/c1 gave other events than expected (- expected, + actual):
    ///     [0] Added { by: 2, seen_version: 0 }
    ///   - [1] Added { by: 4, seen_version: 0 }
    ///   + [1] Added { by: 3, seen_version: 0 }
    /// ```
    pub async fn then(
        self,
        expected: impl IntoIterator<Item = EventOf<C, D>>,
    ) -> Loaded<C::Aggregate>
    where
        EventOf<C, D>: PartialEq + Debug,
    {
        let expected: Vec<EventOf<C, D>> = expected.into_iter().collect();
        let outcome = self.run().await;
        let aggregate = match outcome.result {
            Ok(aggregate) => aggregate,
            Err(error) => panic!(
                "expected the command on {} to give {expected:?}, but it failed: {error} ({error:?})",
                outcome.place
            ),
        };
        let decode = |stored: &StoredEvent| {
            decode_event(stored).unwrap_or_else(|e| panic!("a written event: {e}"))
        };
        let actual: Vec<EventOf<C, D>> = outcome.written.iter().map(decode).collect();
        if let Some(diff) = events_diff(&expected, &actual) {
            panic!("the command on {} {diff}", outcome.place);
        }
        aggregate
    }

    /// Asserts that the command is rejected with this error of its own, compared with
    /// `PartialEq`, and writes nothing.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// Scenario::<Tests>::new()
    ///     .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
    ///     .when("ada", CreateUser { name: "Ada".into() })
    ///     .then_rejected(Refused::Exists)
    ///     .await;
    /// # }
    /// ```
    ///
    /// # Panics
    /// When the command succeeds or fails otherwise.
    pub async fn then_rejected(self, expected: C::Error)
    where
        C::Error: PartialEq,
    {
        let rejection = self.then_rejected_with(|_| true).await;
        assert!(
            rejection == expected,
            "the command was rejected with {rejection:?} ({rejection}), expected {expected:?}"
        );
    }

    /// Asserts that the command is rejected with an error of its own for which `check` holds
    /// (say, `|e| matches!(e, MyError::TooLate { .. })`), and writes nothing; returns the error.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let refused = Scenario::<Tests>::new()
    ///     .when("p1", CreatePost { user_id: "bob".into(), content: "hi".into() })
    ///     .then_rejected_with(|e| matches!(e, Refused::Unauthorized))
    ///     .await;
    /// assert_eq!(refused.to_string(), "no such user");
    /// # }
    /// ```
    ///
    /// # Panics
    /// When the command succeeds or fails otherwise, or `check` returns false.
    pub async fn then_rejected_with(self, check: impl FnOnce(&C::Error) -> bool) -> C::Error {
        let outcome = self.run().await;
        let place = outcome.place;
        let rejection = match outcome.result {
            Err(CommandError::Rejected(rejection)) => rejection,
            Err(error) => panic!("expected the command on {place} to be rejected, but: {error:?}"),
            Ok(_) => panic!(
                "expected the command on {place} to be rejected, but it succeeded with {}",
                bodies(&outcome.written)
            ),
        };
        assert!(
            check(&rejection),
            "the command on {place} was rejected with {rejection:?} ({rejection}), which the check refuses"
        );
        rejection
    }

    /// Asserts that the command fails with a conflict or a store error of this kind (see
    /// [`ErrorKind`]); returns the error.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # use evtstore_core::ErrorKind;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let error = Scenario::<Tests>::new()
    ///     .when("", DisableUser)
    ///     .then_error(ErrorKind::InvalidInput)
    ///     .await;
    /// assert!(error.to_string().starts_with("invalid aggregate id"));
    /// # }
    /// ```
    ///
    /// # Panics
    /// When the command succeeds, is rejected, or fails with another kind.
    pub async fn then_error(self, kind: ErrorKind) -> Error {
        let outcome = self.run().await;
        let place = outcome.place;
        let error = match outcome.result {
            Err(CommandError::Conflict(error) | CommandError::Store(error)) => error,
            Err(rejected) => panic!("expected a {kind:?} error from {place}, but: {rejected:?}"),
            Ok(_) => panic!(
                "expected a {kind:?} error from {place}, but the command succeeded with {}",
                bodies(&outcome.written)
            ),
        };
        assert_eq!(
            error.kind(),
            kind,
            "the command on {place} failed otherwise: {error}"
        );
        error
    }

    /// Stores the given events, executes the command with [`Domain::execute`], and reads back
    /// the aggregate's new events; a rejected command that wrote any panics.
    async fn run(self) -> Outcome<C, D> {
        let domain = self.scenario.store_given().await;
        let place = format!("{}/{}", C::Aggregate::STREAM, self.id);
        // A load that fails fails the command the same way, before it can write.
        let before = domain
            .load::<C::Aggregate>(&self.id)
            .await
            .map(|a| a.version);
        let result = domain.execute(&self.id, self.command).await;
        let written = match before {
            Ok(version) => written_after(&domain, C::Aggregate::STREAM, &self.id, version).await,
            Err(_) => Vec::new(),
        };
        if let (Err(CommandError::Rejected(error)), false) = (&result, written.is_empty()) {
            panic!(
                "the command on {place} was rejected ({error}) but wrote {}",
                bodies(&written)
            );
        }
        Outcome {
            result,
            written,
            place,
        }
    }
}

/// The events of aggregate `stream/id` after `version`.
async fn written_after<D>(
    domain: &Domain<D>,
    stream: &str,
    id: &str,
    version: u64,
) -> Vec<StoredEvent> {
    let read = domain.provider().aggregate_events(stream, id, version);
    read.await
        .unwrap_or_else(|e| panic!("reading back the events of {stream}/{id}: {e}"))
}
