//! Run: `cargo run --example quickstart` (twice: the second run carries on from the first).
//!
//! The users-and-posts domain of the original evtstore README, on an SQLite file
//! (`quickstart.db` in the current directory), with a read model of posts per user. The domain's
//! items are `pub(crate)` for `tests/quickstart_commands.rs`, which tests its commands.

use std::collections::BTreeMap;

use evtstore::{
    Aggregate, BoxError, Command, Decision, Domain, EventMeta, Handles, Loaded, Rejection,
    SqliteProvider,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum UserEvent {
    Created { name: String },
    Disabled,
    Enabled,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct User {
    name: String,
    enabled: bool,
}

impl Aggregate for User {
    const STREAM: &'static str = "users";
    type Event = UserEvent;

    fn fold(&mut self, event: &UserEvent, _meta: &EventMeta) {
        match event {
            UserEvent::Created { name } => (self.name, self.enabled) = (name.clone(), true),
            UserEvent::Disabled => self.enabled = false,
            UserEvent::Enabled => self.enabled = true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum PostEvent {
    PostCreated { user_id: String, content: String },
    PostArchived,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Post {
    user_id: String,
    content: String,
    archived: bool,
}

impl Aggregate for Post {
    const STREAM: &'static str = "posts";
    type Event = PostEvent;

    fn fold(&mut self, event: &PostEvent, _meta: &EventMeta) {
        match event {
            PostEvent::PostCreated { user_id, content } => {
                (self.user_id, self.content) = (user_id.clone(), content.clone())
            }
            PostEvent::PostArchived => self.archived = true,
        }
    }
}

evtstore::domain!(pub(crate) Blog { User, Post });

/// Why the blog's commands refuse.
#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum BlogError {
    #[error("{0} exists already")]
    Exists(&'static str),
    #[error("unknown or disabled user {0}")]
    Unauthorized(String),
    #[error("only the author may archive a post")]
    Forbidden,
}

impl Rejection for BlogError {}

pub(crate) enum UserCommand {
    Create { name: String },
    Disable,
    Enable,
}

impl Command<Blog> for UserCommand {
    type Aggregate = User;
    type Error = BlogError;

    async fn handle(self, user: &Loaded<User>, _: &Domain<Blog>) -> Decision<Self, Blog> {
        let enabled = user.state.enabled;
        match self {
            UserCommand::Create { .. } if user.version > 0 => Err(BlogError::Exists("user"))?,
            UserCommand::Create { name } => Ok(vec![UserEvent::Created { name }]),
            UserCommand::Disable if !enabled => Ok(vec![]),
            UserCommand::Disable => Ok(vec![UserEvent::Disabled]),
            UserCommand::Enable if enabled => Ok(vec![]),
            UserCommand::Enable => Ok(vec![UserEvent::Enabled]),
        }
    }
}

pub(crate) enum PostCommand {
    Create { user_id: String, content: String },
    Archive { user_id: String },
}

impl Command<Blog> for PostCommand {
    type Aggregate = Post;
    type Error = BlogError;

    async fn handle(self, post: &Loaded<Post>, blog: &Domain<Blog>) -> Decision<Self, Blog> {
        match self {
            PostCommand::Create { user_id, content } => {
                if post.version > 0 {
                    Err(BlogError::Exists("post"))?;
                }
                // A command handler may read other aggregates of its domain: a store
                // failure passes through `?` as a store failure, not as a rejection.
                let user = blog.load::<User>(&user_id).await?;
                if !user.state.enabled {
                    Err(BlogError::Unauthorized(user_id.clone()))?;
                }
                Ok(vec![PostEvent::PostCreated { user_id, content }])
            }
            PostCommand::Archive { user_id } if user_id != post.state.user_id => {
                Err(BlogError::Forbidden)?
            }
            PostCommand::Archive { .. } if post.state.archived => Ok(vec![]),
            PostCommand::Archive { .. } => Ok(vec![PostEvent::PostArchived]),
        }
    }
}

/// The read model: live post ids per user, owned by its handler.
#[derive(Debug, Default)]
pub(crate) struct PostsPerUser(pub(crate) BTreeMap<String, Vec<String>>);

impl Handles<Post> for PostsPerUser {
    async fn handle(&mut self, event: &PostEvent, meta: &EventMeta) -> Result<(), BoxError> {
        let post_id = &meta.aggregate_id;
        match event {
            PostEvent::PostCreated { user_id, .. } => {
                let posts = self.0.entry(user_id.clone()).or_default();
                posts.push(post_id.to_string());
            }
            PostEvent::PostArchived => {
                let posts = self.0.values_mut();
                posts.for_each(|ids| ids.retain(|id| id != post_id));
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let blog: Domain<Blog> = Domain::new(SqliteProvider::open("quickstart.db")?);
    ensure_alice(&blog).await?;
    blog.execute("alice", UserCommand::Disable).await?;
    blog.execute("alice", UserCommand::Enable).await?;
    write_posts(&blog).await?;

    // Rebuilt from the start of history on every run: its bookmark lives in this process only.
    let model = blog
        .handler_with("posts-per-user", PostsPerUser::default())
        .in_memory_bookmark()
        .on::<Post>()
        .build()?;
    let handled = model.run_once().await?;
    let posts = &model.state().await.0;
    println!("read model built from {handled} post events: {posts:?}");
    Ok(())
}

/// Creates user alice on the first run; later runs find her, carried over in the file.
async fn ensure_alice(blog: &Domain<Blog>) -> evtstore::Result<()> {
    let alice = blog.load::<User>("alice").await?;
    if alice.version > 0 {
        let version = alice.version;
        println!("user alice exists already: version {version}, carried on from the last run");
        return Ok(());
    }
    let create = UserCommand::Create {
        name: "Alice".into(),
    };
    blog.execute("alice", create).await?;
    println!("created user alice");
    Ok(())
}

/// Alice writes a post; mallory may not archive it; alice archives her first post.
async fn write_posts(blog: &Domain<Blog>) -> evtstore::Result<()> {
    let post_id = format!("post-{}", blog.load::<User>("alice").await?.version);
    let content = format!("hello from {post_id}");
    let create = PostCommand::Create {
        user_id: "alice".into(),
        content,
    };
    let post = blog.execute(&post_id, create).await?;
    println!("{post_id} created at version {}", post.version);

    let steal = PostCommand::Archive {
        user_id: "mallory".into(),
    };
    let refused = blog.execute(&post_id, steal).await.err();
    let outcome = refused.map_or("allowed?!".into(), |e| e.to_string());
    println!("mallory archiving {post_id}: {outcome}");

    if post_id != "post-3" {
        let archive = PostCommand::Archive {
            user_id: "alice".into(),
        };
        blog.execute("post-3", archive).await?;
        println!("alice archived post-3");
    }
    Ok(())
}
