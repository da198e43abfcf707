//! The domain the suite exercises: users, posts, counters, groups and snapshotted profiles.
//!
//! - [`User`] (`"users"`: `created`, `disabled`, `enabled`) and [`Post`] (`"posts"`:
//!   `postCreated`, `postArchived`), as in the original README; creating a post reads the user
//!   through the domain.
//! - [`Counter`] (`"counters"`: `added`): [`Bump`] returns as many events as it is given values,
//!   and each event records the version its command saw.
//! - [`Group`] (`"groups"`: `created`) shares the `created` event type with [`User`].
//! - [`Profile`] and [`ProfileV2`] are one stream (`"profiles"`) snapshotted with every
//!   append under schemas `"v1"` and `"v2"`; [`SparseProfile`] (`"sparse-profiles"`) every
//!   third event. Their `folded` field tells how many events a load folded in.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

pub use super::people::{Person, PersonEvent, Rename};
pub use super::secrets::{Note, Secret, SecretEvent, SecretsSeen};
use crate::{
    Aggregate, Command, Contains, Decision, Domain, EventMeta, Loaded, Rejection, UnknownEvents,
};

/// Why the suite's user and post commands refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The aggregate has events already.
    #[error("already exists")]
    Exists,
    /// The post's author does not exist.
    #[error("no such user")]
    Unauthorized,
    /// Only a post's author may archive it.
    #[error("not the author")]
    NotAllowed,
}

impl Rejection for Refused {}

crate::domain!(pub Tests {
    User, TolerantUser, Post, Counter, Group, Profile, ProfileV2, SparseProfile, Reading, Person,
    Secret
});

/// What happens to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserEvent {
    /// The user was created.
    Created {
        /// The user's name.
        name: String,
    },
    /// The user was disabled.
    Disabled,
    /// The user was enabled again.
    Enabled,
}

/// A user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's name.
    pub name: String,
    /// False until created, and while disabled.
    pub enabled: bool,
}

impl Aggregate for User {
    const STREAM: &'static str = "users";
    type Event = UserEvent;

    fn fold(&mut self, event: &UserEvent, _meta: &EventMeta) {
        match event {
            UserEvent::Created { name } => {
                self.name = name.clone();
                self.enabled = true;
            }
            UserEvent::Disabled => self.enabled = false,
            UserEvent::Enabled => self.enabled = true,
        }
    }
}

/// The users stream read by a build that skips event types it does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TolerantUser {
    /// The user's name.
    pub name: String,
    /// How many events were folded in.
    pub folded: u64,
}

impl Aggregate for TolerantUser {
    const STREAM: &'static str = "users";
    const UNKNOWN_EVENTS: UnknownEvents = UnknownEvents::Skip;
    type Event = UserEvent;

    fn fold(&mut self, event: &UserEvent, _meta: &EventMeta) {
        if let UserEvent::Created { name } = event {
            self.name = name.clone();
        }
        self.folded += 1;
    }
}

/// Creates a user; rejected with `Refused::Exists` when the user has events.
pub struct CreateUser {
    /// The user's name.
    pub name: String,
}

impl<D> Command<D> for CreateUser {
    type Aggregate = User;
    type Error = Refused;

    async fn handle(self, user: &Loaded<User>, _: &Domain<D>) -> Decision<Self, D> {
        if user.version != 0 {
            Err(Refused::Exists)?;
        }
        Ok(vec![UserEvent::Created { name: self.name }])
    }
}

/// Disables a user.
pub struct DisableUser;

impl<D> Command<D> for DisableUser {
    type Aggregate = User;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<User>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![UserEvent::Disabled])
    }
}

/// Enables a user.
pub struct EnableUser;

impl<D> Command<D> for EnableUser {
    type Aggregate = User;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<User>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![UserEvent::Enabled])
    }
}

/// What happens to a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum PostEvent {
    /// The post was written.
    PostCreated {
        /// Its author.
        user_id: String,
        /// Its text.
        content: String,
    },
    /// The post was archived.
    PostArchived,
}

/// A post.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// Its author.
    pub user_id: String,
    /// Its text.
    pub content: String,
    /// Whether it was archived.
    pub archived: bool,
}

impl Aggregate for Post {
    const STREAM: &'static str = "posts";
    type Event = PostEvent;

    fn fold(&mut self, event: &PostEvent, _meta: &EventMeta) {
        match event {
            PostEvent::PostCreated { user_id, content } => {
                self.user_id = user_id.clone();
                self.content = content.clone();
            }
            PostEvent::PostArchived => self.archived = true,
        }
    }
}

/// Writes a post. Reads the author through the domain: rejected with `UNAUTHORIZED` when the
/// user does not exist, and with `EXISTS` when the post does.
pub struct CreatePost {
    /// The author.
    pub user_id: String,
    /// The text.
    pub content: String,
}

impl<D: Contains<User>> Command<D> for CreatePost {
    type Aggregate = Post;
    type Error = Refused;

    async fn handle(self, post: &Loaded<Post>, domain: &Domain<D>) -> Decision<Self, D> {
        if post.version != 0 {
            Err(Refused::Exists)?;
        }
        let user = domain.load::<User>(&self.user_id).await?;
        if user.version == 0 {
            Err(Refused::Unauthorized)?;
        }
        let (user_id, content) = (self.user_id, self.content);
        Ok(vec![PostEvent::PostCreated { user_id, content }])
    }
}

/// Archives a post: rejected with `NOT_ALLOWED` unless by its author; no event when archived.
pub struct ArchivePost {
    /// Who archives it.
    pub user_id: String,
}

impl<D> Command<D> for ArchivePost {
    type Aggregate = Post;
    type Error = Refused;

    async fn handle(self, post: &Loaded<Post>, _: &Domain<D>) -> Decision<Self, D> {
        if self.user_id != post.state.user_id {
            Err(Refused::NotAllowed)?;
        }
        if post.state.archived {
            return Ok(vec![]);
        }
        Ok(vec![PostEvent::PostArchived])
    }
}

/// What happens to a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CounterEvent {
    /// A value was added.
    Added {
        /// The value.
        by: i64,
        /// The counter's version when the command that added it ran.
        seen_version: u64,
    },
}

/// A counter that remembers what was added, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The sum of the values.
    pub total: i64,
    /// The values, in order.
    pub history: Vec<i64>,
    /// The version each adding command saw, in order.
    pub seen_versions: Vec<u64>,
}

impl Aggregate for Counter {
    const STREAM: &'static str = "counters";
    type Event = CounterEvent;

    fn fold(&mut self, event: &CounterEvent, _meta: &EventMeta) {
        let CounterEvent::Added { by, seen_version } = event;
        self.total += by;
        self.history.push(*by);
        self.seen_versions.push(*seen_version);
    }
}

/// Adds each value as its own event: no event, one, or several.
pub struct Bump {
    /// The values.
    pub by: Vec<i64>,
}

impl<D> Command<D> for Bump {
    type Aggregate = Counter;
    type Error = Infallible;

    async fn handle(self, counter: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
        let seen_version = counter.version;
        Ok(self
            .by
            .into_iter()
            .map(|by| CounterEvent::Added { by, seen_version })
            .collect())
    }
}

/// Adds one value after every command sharing its barrier has loaded the counter.
pub struct Contend {
    /// The value.
    pub by: i64,
    /// Waited on between load and append.
    pub barrier: Arc<Barrier>,
}

impl<D> Command<D> for Contend {
    type Aggregate = Counter;
    type Error = Infallible;

    async fn handle(self, counter: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
        self.barrier.wait().await;
        let seen_version = counter.version;
        Ok(vec![CounterEvent::Added {
            by: self.by,
            seen_version,
        }])
    }
}

/// Adds one value; its first attempt waits at the barrier after loading, retries do not.
#[derive(Clone)]
pub struct ContendOnce {
    /// The value.
    pub by: i64,
    /// Waited on between load and append by the first attempt.
    pub barrier: Arc<Barrier>,
    /// Set by the first attempt; shared by clones, so retries see it.
    pub attempted: Arc<AtomicBool>,
}

impl<D> Command<D> for ContendOnce {
    type Aggregate = Counter;
    type Error = Infallible;

    async fn handle(self, counter: &Loaded<Counter>, _: &Domain<D>) -> Decision<Self, D> {
        if !self.attempted.swap(true, Ordering::SeqCst) {
            self.barrier.wait().await;
        }
        let seen_version = counter.version;
        Ok(vec![CounterEvent::Added {
            by: self.by,
            seen_version,
        }])
    }
}

/// What happens to a group: its `created` type is also a user event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum GroupEvent {
    /// The group was created.
    Created {
        /// The group's title.
        title: String,
    },
}

/// A group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The group's title.
    pub title: String,
}

impl Aggregate for Group {
    const STREAM: &'static str = "groups";
    type Event = GroupEvent;

    fn fold(&mut self, event: &GroupEvent, _meta: &EventMeta) {
        let GroupEvent::Created { title } = event;
        self.title = title.clone();
    }
}

/// Creates a group.
pub struct CreateGroup {
    /// The group's title.
    pub title: String,
}

impl<D> Command<D> for CreateGroup {
    type Aggregate = Group;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<Group>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![GroupEvent::Created { title: self.title }])
    }
}

/// A measurement was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ReadingEvent {
    /// A value was measured.
    Recorded {
        /// The value.
        value: f64,
    },
}

/// A sensor's last reading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The last value.
    pub value: f64,
}

impl Aggregate for Reading {
    const STREAM: &'static str = "readings";
    type Event = ReadingEvent;

    fn fold(&mut self, ReadingEvent::Recorded { value }: &ReadingEvent, _meta: &EventMeta) {
        self.value = *value;
    }
}

/// Records a value.
pub struct Record(pub f64);

impl<D> Command<D> for Record {
    type Aggregate = Reading;
    type Error = Infallible;

    async fn handle(self, _: &Loaded<Reading>, _: &Domain<D>) -> Decision<Self, D> {
        Ok(vec![ReadingEvent::Recorded { value: self.0 }])
    }
}

/// What happens to a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ProfileEvent {
    /// The profile was given a name.
    Renamed {
        /// The new name.
        name: String,
    },
}

/// Declares a snapshotted profile kind (stream, schema, snapshot every so many events) and its
/// rename command.
macro_rules! profile_kind {
    (
        $(#[$doc:meta])* $name:ident, $(#[$cmd_doc:meta])* $command:ident,
        $stream:literal, $tag:literal, $every:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            /// The current name.
            pub name: String,
            /// How many times it was renamed.
            pub renames: u64,
            /// Events folded into this value in this process; not stored, so a load from a
            /// stored copy starts at 0 and counts only the newer events.
            #[serde(skip)]
            pub folded: u64,
        }

        impl Aggregate for $name {
            const STREAM: &'static str = $stream;
            const SNAPSHOT: Option<&'static str> = Some($tag);
            const SNAPSHOT_EVERY: u64 = $every;
            type Event = ProfileEvent;

            fn fold(&mut self, event: &ProfileEvent, _meta: &EventMeta) {
                let ProfileEvent::Renamed { name } = event;
                self.name = name.clone();
                self.renames += 1;
                self.folded += 1;
            }
        }

        $(#[$cmd_doc])*
        pub struct $command {
            /// The new name.
            pub name: String,
        }

        impl<D> Command<D> for $command {
            type Aggregate = $name;
            type Error = Infallible;

            async fn handle(self, _: &Loaded<$name>, _: &Domain<D>) -> Decision<Self, D> {
                Ok(vec![ProfileEvent::Renamed { name: self.name }])
            }
        }
    };
}

profile_kind!(
    /// A profile snapshotted with every append under schema `"v1"`.
    Profile,
    /// Renames a [`Profile`].
    RenameProfile,
    "profiles",
    "v1",
    1
);

profile_kind!(
    /// The same stream as [`Profile`], snapshotted with every append under schema `"v2"`.
    ProfileV2,
    /// Renames a [`ProfileV2`].
    RenameProfileV2,
    "profiles",
    "v2",
    1
);

profile_kind!(
    /// A profile of its own stream, snapshotted when its version crosses a multiple of 3.
    SparseProfile,
    /// Renames a [`SparseProfile`].
    RenameSparseProfile,
    "sparse-profiles",
    "v1",
    3
);
