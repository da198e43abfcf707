//! Event handlers: read models and process managers fed from the store, in position order.
//!
//! A handler reads its bookmark, reads a page of events after it, calls the callback of each
//! event's stream, saves the bookmark once per page, and repeats while pages come full.
//! [`Handler::run_once`] does that until nothing is pending; [`Handler::start`] keeps doing it in
//! the background, woken at once by appends in this process and polling for other writers.

mod builder;
mod run;
mod runner;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use builder::{HandlerBuilder, check_routes};
pub use runner::{Runner, Timing};

use crate::error::{BoxError, Error, Result};
use crate::event::{Position, StoredEvent};
use crate::provider::Provider;

/// Decodes an event and starts its callback.
type Callback =
    Arc<dyn Fn(&StoredEvent) -> Result<BoxFuture<'static, Result<(), BoxError>>> + Send + Sync>;

#[derive(Debug, Clone)]
struct Options {
    tail_stream: bool,
    always_tail_stream: bool,
    continue_on_error: bool,
    in_memory_bookmark: bool,
    page_size: usize,
    timing: Timing,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tail_stream: false,
            always_tail_stream: false,
            continue_on_error: false,
            in_memory_bookmark: false,
            page_size: 1000,
            timing: Timing::default(),
        }
    }
}

type Hook<F> = Option<Box<F>>;

#[derive(Default)]
struct Hooks {
    on_error: Hook<dyn Fn(&Error) + Send + Sync>,
    before_run: Hook<dyn Fn() + Send + Sync>,
    after_run: Hook<dyn Fn(usize, usize) + Send + Sync>,
}

/// Everything a handler is built from.
struct Parts {
    name: String,
    provider: Arc<dyn Provider>,
    streams: Vec<String>,
    routes: HashMap<String, Callback>,
    options: Options,
    hooks: Hooks,
}

/// A running or runnable event handler. Cheap to clone; clones control the same handler.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
}

struct Inner {
    parts: Parts,
    /// The cached position; `None` until read from the bookmark. Held for a page at a time.
    position: tokio::sync::Mutex<Option<Position>>,
    runner: Runner,
}

impl Handler {
    fn new(parts: Parts) -> Self {
        let inner = Inner {
            parts,
            position: tokio::sync::Mutex::new(None),
            runner: Runner::default(),
        };
        Handler {
            inner: Arc::new(inner),
        }
    }

    /// The handler's (and its bookmark's) name.
    pub fn name(&self) -> &str {
        &self.inner.parts.name
    }

    /// The streams it reads.
    pub fn streams(&self) -> &[String] {
        &self.inner.parts.streams
    }

    /// Handles every pending event and returns how many had a callback.
    ///
    /// Without `continue_on_error` a failing event stops the run with its error; the bookmark
    /// stays just before it, so the next run retries it.
    pub async fn run_once(&self) -> Result<usize> {
        self.run_pages(&|| false).await
    }

    /// The position after which the handler reads next.
    pub async fn position(&self) -> Result<Position> {
        let mut cached = self.inner.position.lock().await;
        self.resolve_position(&mut cached).await
    }

    /// Moves the handler (and its bookmark) to a position: 0 replays everything.
    pub async fn set_position(&self, position: Position) -> Result<()> {
        let mut cached = self.inner.position.lock().await;
        self.save_position(position).await?;
        *cached = Some(position);
        Ok(())
    }

    /// Forgets the cached position: the next run reads the bookmark again, or, with
    /// `always_tail_stream`, starts at the end of history.
    pub async fn reset(&self) {
        *self.inner.position.lock().await = None;
    }
}
