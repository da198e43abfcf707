//! A handler's options, and the builder methods every kind of handler shares.

use super::{Hooks, Policy, Timing};
use crate::aggregate::UnknownEvents;

#[derive(Debug, Clone)]
pub(super) struct Options {
    pub(super) tail_stream: bool,
    pub(super) always_tail_stream: bool,
    pub(super) continue_on_error: bool,
    pub(super) in_memory_bookmark: bool,
    pub(super) page_size: usize,
    pub(super) unknown_events: UnknownEvents,
    pub(super) timing: Timing,
    /// How long a plain handler's lease lasts unless renewed; `None`: no lease.
    pub(super) lease: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tail_stream: false,
            always_tail_stream: false,
            continue_on_error: false,
            in_memory_bookmark: false,
            page_size: 1000,
            unknown_events: UnknownEvents::Fail,
            timing: Timing::default(),
            lease: Some(super::leasing::DEFAULT_LEASE),
        }
    }
}

impl Options {
    /// How the handler called `name` treats a failing event.
    pub(super) fn policy<'p>(&self, name: &'p str, hooks: &'p Hooks) -> Policy<'p> {
        Policy {
            name,
            continue_on_error: self.continue_on_error,
            hooks,
        }
    }
}

/// The builder methods of the options and hooks every handler has, for a builder with
/// fields `options: Options` and `hooks: Hooks`.
macro_rules! common_options {
    () => {
        /// What to do with an event whose type this build does not know (a newer build wrote
        /// it): fail on it (the default), or skip it and report it to
        /// [`on_error`](Self::on_error). Applies to the kinds registered after it.
        pub fn unknown_events(mut self, policy: $crate::UnknownEvents) -> Self {
            self.options.unknown_events = policy;
            self
        }

        /// A new bookmark starts at the end of history instead of the start.
        pub fn tail_stream(mut self, yes: bool) -> Self {
            self.options.tail_stream = yes;
            self
        }

        /// The first run, every start, and every `reset` of a plain handler begin at the end
        /// of history. A start that finds another process running the handler stands by (a
        /// plain handler) or waits for the lock of the page it is running (a transactional
        /// one), and when it takes over carries on from the bookmark that process saved.
        pub fn always_tail_stream(mut self, yes: bool) -> Self {
            self.options.always_tail_stream = yes;
            self
        }

        /// A failing event (an error or a panic in its callback, or a body that does not
        /// decode) is reported to [`on_error`](Self::on_error) and skipped. Without it the
        /// handler stops at that event, keeps its bookmark before it, and retries it later.
        pub fn continue_on_error(mut self, yes: bool) -> Self {
            self.options.continue_on_error = yes;
            self
        }

        /// How many events to read per page (default 1,000); the bookmark is saved once per
        /// page.
        pub fn page_size(mut self, events: usize) -> Self {
            self.options.page_size = events.max(1);
            self
        }

        /// How often a running handler checks for events from writers in other processes
        /// (default 1 s); events appended through this process wake it at once.
        pub fn poll_interval(mut self, interval: ::std::time::Duration) -> Self {
            self.options.timing.poll_interval = interval;
            self
        }

        /// How long a running handler waits after a failed run before it retries (default 1 s).
        pub fn retry_delay(mut self, delay: ::std::time::Duration) -> Self {
            self.options.timing.retry_delay = delay;
            self
        }

        /// Called with each event failure (its event, the error and the handler's name) and by
        /// a running handler with each failed run.
        pub fn on_error<F, Fut>(mut self, hook: F) -> Self
        where
            F: Fn(&$crate::HandlerFailure<'_>) -> Fut + Send + Sync + 'static,
            Fut: ::std::future::Future<Output = ()> + Send + 'static,
        {
            self.hooks.set_on_error(hook);
            self
        }

        /// Called before each page is read.
        pub fn before_run<F, Fut>(mut self, hook: F) -> Self
        where
            F: Fn() -> Fut + Send + Sync + 'static,
            Fut: ::std::future::Future<Output = ()> + Send + 'static,
        {
            self.hooks.set_before_run(hook);
            self
        }

        /// Called after each page with (events read, events handled).
        pub fn after_run<F, Fut>(mut self, hook: F) -> Self
        where
            F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
            Fut: ::std::future::Future<Output = ()> + Send + 'static,
        {
            self.hooks.set_after_run(hook);
            self
        }
    };
}

pub(super) use common_options;
