//! Domains: aggregate kinds bound to one provider, with load, execute and handlers.

use std::marker::PhantomData;
use std::sync::Arc;

use tracing::Instrument;

use crate::aggregate::{Aggregate, Loaded};
use crate::cache::AggregateCache;
use crate::command::{Command, CommandError};
use crate::envelope::CommandMeta;
use crate::error::{Error, Result};
use crate::event::NewEvent;
use crate::fold::fold_events;
use crate::names::{check_aggregate_id, shared_stream};
use crate::provider::Provider;

/// Says that aggregate kind `A` belongs to a domain. Declare it with [`domain!`](crate::domain!).
#[diagnostic::on_unimplemented(
    message = "aggregate `{A}` is not part of domain `{Self}`",
    note = "list it in the `evtstore::domain!` declaration of `{Self}`"
)]
pub trait Contains<A: Aggregate> {}

/// What [`Domain::execute`] returns: the aggregate with its new events, or why not.
pub type Executed<C, D> =
    Result<Loaded<<C as Command<D>>::Aggregate>, CommandError<<C as Command<D>>::Error>>;

/// Declares a domain: a marker type listing its aggregate kinds.
///
/// ```
/// # use evtstore_core::conformance::domain::{User, Post};
/// use evtstore_core::{Domain, MemoryProvider};
///
/// evtstore_core::domain!(pub Blog { User, Post });
/// let blog: Domain<Blog> = Domain::new(MemoryProvider::new());
/// ```
///
/// The compiler refuses to load, execute on or handle an aggregate kind the domain does not list:
///
/// ```compile_fail
/// # use evtstore_core::conformance::domain::{User, Post};
/// # use evtstore_core::{Domain, MemoryProvider};
/// evtstore_core::domain!(Users { User });
/// # async fn run() {
/// let users: Domain<Users> = Domain::new(MemoryProvider::new());
/// let post = users.load::<Post>("p1").await; // error: `Post` is not part of domain `Users`
/// # }
/// ```
///
/// ```compile_fail
/// # use evtstore_core::conformance::domain::{User, Post};
/// # use evtstore_core::{Domain, MemoryProvider};
/// evtstore_core::domain!(Users { User });
/// let users: Domain<Users> = Domain::new(MemoryProvider::new());
/// // error: `Post` is not part of domain `Users`
/// let handler = users.handler("h").handle::<Post, _>(|_, _, _| async { Ok(()) });
/// ```
#[macro_export]
macro_rules! domain {
    ($vis:vis $name:ident { $($aggregate:ty),+ $(,)? }) => {
        /// A domain declared with `evtstore::domain!`.
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        $(impl $crate::Contains<$aggregate> for $name {})+
    };
}

/// A set of aggregate kinds (`D`, declared with [`domain!`](crate::domain!)) on one provider.
///
/// Cheap to clone; clones share the provider and the aggregate cache.
pub struct Domain<D> {
    provider: Arc<dyn Provider>,
    cache: Option<Arc<AggregateCache>>,
    kinds: PhantomData<fn() -> D>,
}

impl<D> Clone for Domain<D> {
    fn clone(&self) -> Self {
        Domain {
            provider: self.provider.clone(),
            cache: self.cache.clone(),
            kinds: PhantomData,
        }
    }
}

impl<D> Domain<D> {
    /// A domain on a provider.
    pub fn new(provider: impl Provider) -> Self {
        Self::with_provider(Arc::new(provider))
    }

    /// A domain on a shared provider.
    pub fn with_provider(provider: Arc<dyn Provider>) -> Self {
        Domain {
            provider,
            cache: None,
            kinds: PhantomData,
        }
    }

    /// Keeps up to `capacity` loaded aggregates in memory; a load then reads only newer events.
    pub fn with_aggregate_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(Arc::new(AggregateCache::new(capacity, false)));
        self
    }

    /// Keeps up to `capacity` loaded aggregates in memory, and lets a command on a kept
    /// aggregate decide on the kept state without reading the store first: one round trip per
    /// command, its append. Safe, since the append still checks the version: when another
    /// writer (another process) moved the aggregate meanwhile, the command fails with
    /// [`CommandError::Conflict`], the stale copy is dropped, and
    /// [`execute_retrying`](Self::execute_retrying) (or the caller) runs it again on a fresh
    /// load. For a process that is the main writer of its aggregates. Loads still read newer
    /// events.
    pub fn with_trusted_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(Arc::new(AggregateCache::new(capacity, true)));
        self
    }

    /// The aggregate cache, for tests.
    #[cfg(test)]
    pub(crate) fn aggregate_cache(&self) -> Option<&AggregateCache> {
        self.cache.as_deref()
    }

    /// Waits until the handler named `name`, in this process or another, has saved its
    /// bookmark at or past `position`, or `timeout` passes: read-your-writes across processes
    /// (in this process, [`Handler::wait_for`](crate::Handler::wait_for) is quicker). Woken by
    /// the provider's signal, which bookmark saves in other processes raise on SQLite and
    /// PostgreSQL; on MariaDB, which has no push across processes, it looks again every
    /// 100 ms. True when passed, false on timeout.
    ///
    /// # Errors
    /// When the bookmark cannot be read.
    pub async fn wait_for_bookmark(
        &self,
        name: &str,
        position: crate::Position,
        timeout: std::time::Duration,
    ) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut signal = self.provider.subscribe();
        loop {
            signal.borrow_and_update();
            if self
                .provider
                .bookmark(name)
                .await?
                .is_some_and(|at| at >= position)
            {
                return Ok(true);
            }
            let fallback = match self.provider.signals_other_processes_bookmarks() {
                true => 1_000,
                false => 100,
            };
            let wake =
                tokio::time::timeout(std::time::Duration::from_millis(fallback), signal.changed());
            if tokio::time::timeout_at(deadline, wake).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// The provider, for direct reads and appends.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Loads an aggregate: version 0 and the initial state when it has no events.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{User, Tests};
    /// # use evtstore_core::{Domain, MemoryProvider};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> evtstore_core::Result<()> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// let user = domain.load::<User>("u1").await?;
    /// assert_eq!((user.version, user.state.enabled), (0, false));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`] for an invalid id; [`Error::Decode`] or
    /// [`Error::UnknownEventType`] for a stored event that does not decode (naming it); a
    /// store failure ([`Error::Unavailable`], [`Error::Backend`]).
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>>
    where
        D: Contains<A>,
    {
        let span = tracing::debug_span!("load", stream = A::STREAM, id);
        self.load_unchecked(id).instrument(span).await
    }

    /// Executes a command on the aggregate `id` and returns the aggregate with its new events.
    ///
    /// # Errors
    /// [`CommandError::Rejected`] with the command's own error when its handler refuses it,
    /// [`CommandError::Conflict`] when another writer appended first, and
    /// [`CommandError::Store`] when the store fails; in each case nothing is written.
    pub async fn execute<C>(&self, id: &str, command: C) -> Executed<C, D>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        self.execute_with(id, command, CommandMeta::new()).await
    }

    /// Executes a command like [`execute`](Self::execute), with an envelope: its events take
    /// its correlation and causation ids and metadata. With a
    /// [`command_id`](CommandMeta::command_id), a command executed already (by this process or
    /// another, even concurrently) appends nothing and returns the aggregate as that first
    /// execution left it.
    ///
    /// ```
    /// # use evtstore_core::conformance::domain::{CreateUser, Tests, User};
    /// # use evtstore_core::{CommandMeta, Domain, MemoryProvider, Uuid};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let domain: Domain<Tests> = Domain::new(MemoryProvider::new());
    /// let meta = CommandMeta::new().command_id(Uuid::now_v7());
    /// let first = domain.execute_with("u1", CreateUser { name: "ada".into() }, meta.clone()).await?;
    /// let retried = domain.execute_with("u1", CreateUser { name: "ada".into() }, meta).await?;
    /// assert_eq!((first.version, retried.version), (1, 1)); // appended once
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`execute`](Self::execute); [`Error::CommandIdReused`] when the id was used on
    /// another aggregate.
    pub async fn execute_with<C>(&self, id: &str, command: C, meta: CommandMeta) -> Executed<C, D>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        let span = tracing::debug_span!("command", stream = C::Aggregate::STREAM, id);
        async {
            let meta = meta.resolved();
            if let Some(done) = self.executed_already(id, &meta).await? {
                return Ok(done);
            }
            let (aggregate, trusted) = self.load_to_change(id).await?;
            let outcome = self
                .decide_and_append(aggregate, command, &meta, trusted)
                .await;
            match outcome {
                Err(error) if meta.command_id.is_some() && error.is_conflict() => {
                    match self.executed_already(id, &meta).await? {
                        Some(done) => Ok(done),
                        None => Err(error),
                    }
                }
                outcome => outcome,
            }
        }
        .instrument(span)
        .await
    }

    /// The aggregate as a command with this id left it, when an append recorded the id.
    async fn executed_already<A: Aggregate>(
        &self,
        id: &str,
        meta: &CommandMeta,
    ) -> Result<Option<Loaded<A>>> {
        let Some(command_id) = meta.command_id else {
            return Ok(None);
        };
        let Some(record) = self.provider.command(command_id).await? else {
            return Ok(None);
        };
        if record.stream != A::STREAM || record.aggregate_id != id {
            return Err(Error::CommandIdReused {
                command_id,
                stream: record.stream,
                aggregate_id: record.aggregate_id,
                given_stream: A::STREAM.to_owned(),
                given_id: id.to_owned(),
            });
        }
        self.load_at(id, record.version).await.map(Some)
    }

    /// An aggregate as it was at `version`.
    async fn load_at<A: Aggregate>(&self, id: &str, version: u64) -> Result<Loaded<A>> {
        fold_events(&*self.provider, Loaded::new(id), version).await
    }

    /// Executes a command like [`execute`](Self::execute), and on a conflict reloads the
    /// aggregate and runs the command again, up to `retries` more times.
    ///
    /// # Errors
    /// As [`execute`](Self::execute); a conflict only once the retries are spent.
    pub async fn execute_retrying<C>(&self, id: &str, command: C, retries: u32) -> Executed<C, D>
    where
        C: Command<D> + Clone,
        D: Contains<C::Aggregate>,
    {
        let mut attempt = 0;
        loop {
            match self.execute(id, command.clone()).await {
                Err(error) if error.is_conflict() && attempt < retries => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    /// Executes a command on an aggregate already loaded, expecting it still at its version.
    ///
    /// Chains: `domain.execute_on(domain.execute(id, a).await?, b).await?`.
    ///
    /// # Errors
    /// As [`execute`](Self::execute): a conflict when the aggregate has moved since it was loaded.
    pub async fn execute_on<C>(&self, aggregate: Loaded<C::Aggregate>, command: C) -> Executed<C, D>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        let meta = CommandMeta::new().resolved();
        self.decide_and_append(aggregate, command, &meta, false)
            .await
    }

    async fn decide_and_append<C>(
        &self,
        aggregate: Loaded<C::Aggregate>,
        command: C,
        meta: &CommandMeta,
        trusted: bool,
    ) -> Executed<C, D>
    where
        C: Command<D>,
        D: Contains<C::Aggregate>,
    {
        let decided = command.handle(&aggregate, self).await;
        // A rejection or a no-op decided on a trusted copy stands only if the copy is current.
        let final_without_append = decided.as_ref().map_or(true, Vec::is_empty);
        let aggregate = match trusted && final_without_append {
            true => self.still_current(aggregate).await?,
            false => aggregate,
        };
        let events = match decided {
            Ok(events) => events,
            Err(refused) => {
                self.keep(aggregate); // unchanged: back into the cache
                return Err(refused);
            }
        };
        Ok(self.append_with(aggregate, events, meta).await?)
    }

    /// The trusted copy, when no other writer moved its aggregate; else a conflict (the fresh
    /// state goes into the cache, for the retry).
    async fn still_current<A: Aggregate>(&self, copy: Loaded<A>) -> Result<Loaded<A>> {
        let expected = copy.version;
        let id = copy.id.clone();
        let current = self.catch_up(&id, Some(copy)).await?;
        if current.version == expected {
            return Ok(current);
        }
        let actual = current.version;
        self.keep(current);
        Err(Error::VersionConflict {
            stream: A::STREAM.to_owned(),
            aggregate_id: id.to_string(),
            expected,
            actual,
        })
    }

    /// Appends events to an aggregate at the versions after `aggregate.version`, without a
    /// command, and returns it with the events folded in.
    ///
    /// # Errors
    /// [`Error::VersionConflict`] when another writer appended first (nothing is written);
    /// [`Error::Encode`] for an event that cannot be serialised; a store failure.
    pub async fn append<A: Aggregate>(
        &self,
        aggregate: Loaded<A>,
        events: Vec<A::Event>,
    ) -> Result<Loaded<A>>
    where
        D: Contains<A>,
    {
        let meta = CommandMeta::new().resolved();
        self.append_with(aggregate, events, &meta).await
    }

    async fn append_with<A: Aggregate>(
        &self,
        mut aggregate: Loaded<A>,
        events: Vec<A::Event>,
        meta: &CommandMeta,
    ) -> Result<Loaded<A>> {
        if !events.is_empty() {
            let from = aggregate.version;
            let mut new_events = encode_events::<A>(&aggregate, &events, meta)?;
            self.seal::<A>(&aggregate.id, &mut new_events).await?;
            let appended = self.provider.append(new_events).await;
            let metas = appended.inspect_err(|error| {
                if error.is_version_conflict() {
                    crate::telemetry::conflict(A::STREAM);
                }
            })?;
            crate::telemetry::appended(A::STREAM, metas.len());
            for (event, meta) in events.iter().zip(&metas) {
                aggregate.apply(event, meta);
            }
            self.snapshot_after_append(from, &aggregate).await;
        }
        if self.cache.is_some() {
            self.keep(aggregate.clone());
        }
        Ok(aggregate)
    }

    /// Seals the bodies of an [`ENCRYPTED`](Aggregate::ENCRYPTED) kind with the aggregate's
    /// key, made if it has none.
    pub(crate) async fn seal<A: Aggregate>(&self, id: &str, events: &mut [NewEvent]) -> Result<()> {
        if !A::ENCRYPTED {
            return Ok(());
        }
        let key = self.provider.aggregate_key(A::STREAM, id, true).await?;
        let key = key.ok_or_else(|| {
            let what = format!("seal the events of {}/{id}", A::STREAM);
            Error::backend(what, "no key: it was shredded as it was made; try again")
        })?;
        for event in events {
            let event_type = crate::aggregate::event_type(&event.data).unwrap_or_default();
            event.data = key.seal(&event_type, &event.data)?;
        }
        Ok(())
    }

    /// Puts an aggregate into the cache, if the domain has one.
    fn keep<A: Aggregate>(&self, aggregate: Loaded<A>) {
        if let Some(cache) = &self.cache {
            cache.put(A::STREAM, aggregate);
        }
    }

    /// Loads an aggregate; the cache, if any, keeps a copy.
    async fn load_unchecked<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>> {
        check_aggregate_id(id)?;
        let cached = self.cache.as_ref().and_then(|c| c.get::<A>(A::STREAM, id));
        let kept = cached.as_ref().map(|cached| cached.version);
        let aggregate = self.catch_up(id, cached).await?;
        if self.cache.is_some() && kept != Some(aggregate.version) {
            self.keep(aggregate.clone());
        }
        Ok(aggregate)
    }

    /// Loads an aggregate for a command: the cache, if any, gives up its copy (no clone), and
    /// the command's append puts the new state back.
    /// True beside it when it is a trusted copy, not read from the store.
    async fn load_to_change<A: Aggregate>(&self, id: &str) -> Result<(Loaded<A>, bool)> {
        check_aggregate_id(id)?;
        let taken = self.cache.as_ref().and_then(|c| c.take::<A>(A::STREAM, id));
        match taken {
            Some(kept) if self.cache.as_ref().is_some_and(|c| c.trusted) => Ok((kept, true)),
            taken => Ok((self.catch_up(id, taken).await?, false)),
        }
    }

    /// Folds in the events after the cached aggregate's version, or loads it afresh.
    async fn catch_up<A: Aggregate>(
        &self,
        id: &str,
        cached: Option<Loaded<A>>,
    ) -> Result<Loaded<A>> {
        let aggregate = match cached {
            Some(cached) => cached,
            None => self.start_from_snapshot(id).await?,
        };
        fold_events(&*self.provider, aggregate, u64::MAX).await
    }

    /// Drops an aggregate from the cache, if the domain has one.
    pub(crate) fn forget<A: Aggregate>(&self, id: &str) {
        if let Some(cache) = &self.cache {
            cache.take::<A>(A::STREAM, id);
        }
    }
}

pub(crate) fn encode_events<A: Aggregate>(
    aggregate: &Loaded<A>,
    events: &[A::Event],
    meta: &CommandMeta,
) -> Result<Vec<NewEvent>> {
    let stream = shared_stream::<A>();
    let encode = |(index, event): (usize, &A::Event)| {
        let data = crate::body::encode(event).map_err(|source| Error::Encode {
            what: format!("event for {stream}/{}", aggregate.id),
            source,
        })?;
        const { assert!(A::REVISION >= 1, "Aggregate::REVISION starts at 1") };
        let version = aggregate.version + 1 + index as u64;
        let mut new = NewEvent::new(stream.clone(), aggregate.id.clone(), version, data);
        new.revision = A::REVISION;
        meta.stamp(&mut new);
        Ok(new)
    };
    events.iter().enumerate().map(encode).collect()
}
