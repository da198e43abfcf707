//! The quickstart's commands and read model (`examples/quickstart.rs`), tested with the test kit.

#[allow(dead_code)] // the example's `main` and its steps: only its domain is tested here
#[path = "../examples/quickstart.rs"]
mod quickstart;

use evtstore::testing::Scenario;
use quickstart::{Blog, BlogError, Post, PostCommand, PostEvent, PostsPerUser, User};
use quickstart::{UserCommand, UserEvent};

fn created(name: &str) -> UserEvent {
    UserEvent::Created { name: name.into() }
}

fn create_user(name: &str) -> UserCommand {
    UserCommand::Create { name: name.into() }
}

fn post_by(user_id: &str) -> PostCommand {
    let (user_id, content) = (user_id.into(), "hello".into());
    PostCommand::Create { user_id, content }
}

fn posted_by(user_id: &str) -> PostEvent {
    let (user_id, content) = (user_id.into(), "hello".into());
    PostEvent::PostCreated { user_id, content }
}

fn archive_by(user_id: &str) -> PostCommand {
    PostCommand::Archive {
        user_id: user_id.into(),
    }
}

#[tokio::test]
async fn a_user_is_created_once() {
    let when_new = Scenario::<Blog>::new().when("alice", create_user("Alice"));
    when_new.then([created("Alice")]).await;
    let existing = Scenario::<Blog>::new().given::<User>("alice", [created("Alice")]);
    let again = existing.when("alice", create_user("Alice"));
    again.then_rejected(BlogError::Exists("user")).await;
}

#[tokio::test]
async fn disabling_a_disabled_user_changes_nothing() {
    Scenario::<Blog>::new()
        .given::<User>("alice", [created("Alice"), UserEvent::Disabled])
        .when("alice", UserCommand::Disable)
        .then([])
        .await;
}

#[tokio::test]
async fn a_disabled_user_is_enabled_again() {
    let user = Scenario::<Blog>::new()
        .given::<User>("alice", [created("Alice"), UserEvent::Disabled])
        .when("alice", UserCommand::Enable)
        .then([UserEvent::Enabled])
        .await;
    assert_eq!(user.version, 3);
}

#[tokio::test]
async fn an_enabled_user_writes_a_post() {
    Scenario::<Blog>::new()
        .given::<User>("alice", [created("Alice")])
        .when("post-1", post_by("alice"))
        .then([posted_by("alice")])
        .await;
}

#[tokio::test]
async fn a_disabled_or_unknown_user_may_not_post() {
    Scenario::<Blog>::new()
        .given::<User>("alice", [created("Alice"), UserEvent::Disabled])
        .when("post-1", post_by("alice"))
        .then_rejected(BlogError::Unauthorized("alice".into()))
        .await;
    let by_nobody = Scenario::<Blog>::new().when("post-1", post_by("nobody"));
    by_nobody
        .then_rejected(BlogError::Unauthorized("nobody".into()))
        .await;
}

#[tokio::test]
async fn a_post_id_is_taken_once() {
    Scenario::<Blog>::new()
        .given::<User>("bob", [created("Bob")])
        .given::<Post>("post-1", [posted_by("alice")])
        .when("post-1", post_by("bob"))
        .then_rejected(BlogError::Exists("post"))
        .await;
}

#[tokio::test]
async fn only_the_author_archives_a_post_and_only_once() {
    let written = || Scenario::<Blog>::new().given::<Post>("post-1", [posted_by("alice")]);
    let by_mallory = written().when("post-1", archive_by("mallory"));
    by_mallory.then_rejected(BlogError::Forbidden).await;
    let by_alice = written().when("post-1", archive_by("alice"));
    by_alice.then([PostEvent::PostArchived]).await;
    Scenario::<Blog>::new()
        .given::<Post>("post-1", [posted_by("alice"), PostEvent::PostArchived])
        .when("post-1", archive_by("alice"))
        .then([])
        .await;
}

#[tokio::test]
async fn posts_per_user_lists_live_posts() {
    let model = Scenario::<Blog>::new()
        .given::<Post>("post-1", [posted_by("alice"), PostEvent::PostArchived])
        .given::<Post>("post-2", [posted_by("alice")])
        .given::<Post>("post-3", [posted_by("bob")])
        .run_handler(|blog| {
            blog.handler_with("posts", PostsPerUser::default())
                .on::<Post>()
                .build()
        })
        .await;
    let posts = &model.state().await.0;
    assert_eq!(posts["alice"], ["post-2"]);
    assert_eq!(posts["bob"], ["post-3"]);
}
