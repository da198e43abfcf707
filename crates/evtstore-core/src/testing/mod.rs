//! Given/when/then tests for commands and handlers, with no store to set up.
//!
//! A [`Scenario`] starts from a fresh [`MemoryProvider`] (or [`Scenario::on`] a provider of
//! yours), is [given](Scenario::given) earlier events of any aggregates of the domain, and then
//! either runs a command ([`when`](Scenario::when), finished by a `then…` assertion on a
//! [`CommandScenario`]) or builds and runs a handler ([`run_handler`](Scenario::run_handler)).
//! Assertions panic with a message that shows what was expected and what happened.
//!
//! ```
//! # use evtstore_core::conformance::domain::*;
//! use evtstore_core::testing::Scenario;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // A post may be written by a user who exists: the command reads the user.
//! Scenario::<Tests>::new()
//!     .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
//!     .when("p1", CreatePost { user_id: "ada".into(), content: "hi".into() })
//!     .then([PostEvent::PostCreated { user_id: "ada".into(), content: "hi".into() }])
//!     .await;
//!
//! // Not by one who does not: the command's own error, compared with `PartialEq`.
//! Scenario::<Tests>::new()
//!     .when("p1", CreatePost { user_id: "bob".into(), content: "hi".into() })
//!     .then_rejected(Refused::Unauthorized)
//!     .await;
//! # }
//! ```
//!
//! The events a `then` expects are those of the command's aggregate kind: anything else does
//! not compile.
//!
//! ```compile_fail
//! # use evtstore_core::conformance::domain::*;
//! # use evtstore_core::testing::Scenario;
//! # async fn wrong_kind() {
//! Scenario::<Tests>::new()
//!     .when("u1", CreateUser { name: "Ada".into() })
//!     .then([PostEvent::PostArchived]) // error: a post event for a user command
//!     .await;
//! # }
//! ```

mod diff;
mod when;

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use when::CommandScenario;

use crate::aggregate::Aggregate;
use crate::command::Command;
use crate::domain::{Contains, Domain};
use crate::error::Result;
use crate::handler::Handler;
use crate::memory::MemoryProvider;
use crate::provider::Provider;

/// Appends one `given` step's events.
type GivenStep<D> = Box<dyn FnOnce(Domain<D>) -> BoxFuture<'static, ()> + Send>;

/// A test of domain `D`: earlier events, then a command or a handler.
///
/// ```
/// # use evtstore_core::conformance::domain::*;
/// # use evtstore_core::testing::Scenario;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let user = Scenario::<Tests>::new()
///     .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
///     .when("ada", DisableUser)
///     .then([UserEvent::Disabled])
///     .await;
/// assert_eq!((user.version, user.state.enabled), (2, false));
/// # }
/// ```
pub struct Scenario<D> {
    domain: Domain<D>,
    given: Vec<GivenStep<D>>,
}

impl<D: 'static> Default for Scenario<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: 'static> Scenario<D> {
    /// A scenario on a fresh, empty [`MemoryProvider`]: `Scenario::<MyDomain>::new()`.
    pub fn new() -> Self {
        Self::on(Arc::new(MemoryProvider::new()))
    }

    /// A scenario on a provider of yours, to run the same test on every backend. The given
    /// events follow whatever the store holds already, and a `then` looks only at the
    /// command's new events.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::{MemoryProvider, Provider};
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store: Arc<dyn Provider> = Arc::new(MemoryProvider::new());
    /// Scenario::<Tests>::on(store.clone())
    ///     .when("c1", Bump { by: vec![2] })
    ///     .then([CounterEvent::Added { by: 2, seen_version: 0 }])
    ///     .await;
    /// Scenario::<Tests>::on(store)
    ///     .when("c1", Bump { by: vec![3] })
    ///     .then([CounterEvent::Added { by: 3, seen_version: 1 }])
    ///     .await;
    /// # }
    /// ```
    pub fn on(provider: Arc<dyn Provider>) -> Self {
        Scenario {
            domain: Domain::with_provider(provider),
            given: Vec::new(),
        }
    }

    /// Earlier events of aggregate `id` of kind `A`, appended in the order of the `given`
    /// calls: of the command's aggregate, of others it reads, or for a handler.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// Scenario::<Tests>::new()
    ///     .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
    ///     .given::<Post>("p1", [PostEvent::PostCreated { user_id: "ada".into(), content: "hi".into() }])
    ///     .when("p1", ArchivePost { user_id: "ada".into() })
    ///     .then([PostEvent::PostArchived])
    ///     .await;
    /// # }
    /// ```
    ///
    /// The kind must belong to the domain:
    ///
    /// ```compile_fail
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// evtstore_core::domain!(Users { User });
    /// // error: `Post` is not part of domain `Users`
    /// let scenario = Scenario::<Users>::new().given::<Post>("p1", [PostEvent::PostArchived]);
    /// ```
    pub fn given<A>(mut self, id: &str, events: impl IntoIterator<Item = A::Event>) -> Self
    where
        A: Aggregate,
        D: Contains<A>,
    {
        let id = id.to_owned();
        let events: Vec<A::Event> = events.into_iter().collect();
        self.given.push(Box::new(move |domain| {
            Box::pin(async move {
                let loaded = domain.load::<A>(&id).await;
                let appended = match loaded {
                    Ok(aggregate) => domain.append(aggregate, events).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = appended {
                    panic!(
                        "the given events of {}/{id} were not stored: {error}",
                        A::STREAM
                    );
                }
            })
        }));
        self
    }

    /// The command to test, on aggregate `id`; finish with a `then…` of [`CommandScenario`].
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let create = CreateUser { name: "Ada".into() };
    /// Scenario::<Tests>::new()
    ///     .when("ada", create)
    ///     .then([UserEvent::Created { name: "Ada".into() }])
    ///     .await;
    /// # }
    /// ```
    pub fn when<C>(self, id: &str, command: C) -> CommandScenario<D, C>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        CommandScenario::new(self, id, command)
    }

    /// Stores the given events, builds a handler on the scenario's domain with `build`, runs
    /// it once over every event and returns it, to assert on its state.
    ///
    /// # Panics
    /// When the handler does not build or fails on an event.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::*;
    /// # use evtstore_core::testing::Scenario;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let names = Scenario::<Tests>::new()
    ///     .given::<User>("ada", [UserEvent::Created { name: "Ada".into() }])
    ///     .given::<Group>("g1", [GroupEvent::Created { title: "Admins".into() }])
    ///     .run_handler(|tests| {
    ///         tests
    ///             .handler_with("names", Vec::<String>::new())
    ///             .handle::<User, _>(|names, _, meta| {
    ///                 names.push(meta.aggregate_id.to_string());
    ///                 Ok(())
    ///             })
    ///             .build()
    ///     })
    ///     .await;
    /// assert_eq!(*names.state().await, ["ada"]);
    /// # }
    /// ```
    pub async fn run_handler<S, F>(self, build: F) -> Handler<S>
    where
        S: Send + 'static,
        F: FnOnce(&Domain<D>) -> Result<Handler<S>>,
    {
        let domain = self.store_given().await;
        let handler = build(&domain).unwrap_or_else(|e| panic!("the handler did not build: {e}"));
        if let Err(error) = handler.run_once().await {
            panic!(
                "handler {:?} failed on the given events: {error}",
                handler.name()
            );
        }
        handler
    }

    /// Appends the given events, in order, and hands back the domain.
    async fn store_given(self) -> Domain<D> {
        for step in self.given {
            step(self.domain.clone()).await;
        }
        self.domain
    }
}
