//! A handler's hooks: async callbacks around each page and on each failure.

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::error::Error;
use crate::event::EventMeta;

/// A failure reported to a handler's [`on_error`](super::HandlerBuilder::on_error) hook.
#[derive(Debug, Clone, Copy)]
pub struct HandlerFailure<'a> {
    /// The handler's name.
    pub handler: &'a str,
    /// The event that failed (its stream, aggregate id, version and position), or `None` when a
    /// whole run failed (the store was unreachable, say).
    pub event: Option<&'a EventMeta>,
    /// What went wrong.
    pub error: &'a Error,
}

type Hook<A> = Option<Arc<dyn Fn(A) -> BoxFuture<'static, ()> + Send + Sync>>;

type FailureHook = Arc<dyn Fn(&HandlerFailure<'_>) -> BoxFuture<'static, ()> + Send + Sync>;

/// The hooks of a handler, each optional. Shared by every kind of handler, providers' too.
#[derive(Default, Clone)]
pub struct Hooks {
    on_error: Option<FailureHook>,
    before_run: Hook<()>,
    after_run: Hook<(usize, usize)>,
}

impl Hooks {
    /// Sets the failure hook.
    pub fn set_on_error<F, Fut>(&mut self, hook: F)
    where
        F: Fn(&HandlerFailure<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_error = Some(Arc::new(move |failure| hook(failure).boxed()));
    }

    /// Sets the hook called before each page.
    pub fn set_before_run<F, Fut>(&mut self, hook: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.before_run = Some(Arc::new(move |()| hook().boxed()));
    }

    /// Sets the hook called after each page with (events read, events handled).
    pub fn set_after_run<F, Fut>(&mut self, hook: F)
    where
        F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_run = Some(Arc::new(move |(read, handled)| hook(read, handled).boxed()));
    }

    /// Reports a failure: to the log, and to the hook if there is one.
    pub async fn failed(&self, failure: HandlerFailure<'_>) {
        crate::telemetry::failed(failure.handler);
        let error = failure.error;
        match failure.event {
            Some(meta) => tracing::warn!(
                handler = failure.handler, stream = %meta.stream, id = %meta.aggregate_id,
                version = meta.version, position = meta.position, %error, "event failed"
            ),
            None => tracing::warn!(handler = failure.handler, %error, "handler run failed"),
        }
        if let Some(hook) = &self.on_error {
            hook(&failure).await;
        }
    }

    /// Calls the before-run hook.
    pub async fn before_run(&self) {
        if let Some(hook) = &self.before_run {
            hook(()).await;
        }
    }

    /// Calls the after-run hook.
    pub async fn after_run(&self, read: usize, handled: usize) {
        if let Some(hook) = &self.after_run {
            hook((read, handled)).await;
        }
    }
}
