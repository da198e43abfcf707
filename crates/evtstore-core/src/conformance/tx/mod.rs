//! The transactional-handler cases, for providers that implement
//! [`TxProvider`]: continue on error with each failing event's
//! writes undone, a failed page rolled back, unknown event types, tailing, and hooks.
//!
//! The provider's tests give a fresh store and a [`TxModel`], a read model in the same
//! database; [`tx_conformance_tests!`](crate::tx_conformance_tests) writes one test per case.

mod failures;
mod kit;
mod sealed;
mod tails;

pub use failures::*;
pub use sealed::*;
pub use tails::*;

use futures_util::future::BoxFuture;

use crate::provider::TxProvider;
use crate::{BoxError, Position};

/// A read model in the provider's database, written by the cases' callbacks: one row per
/// write, so an event applied twice (or a write that should have been undone) shows.
pub trait TxModel<P: TxProvider>: Send + Sync + 'static {
    /// Adds a row for `position` in the transaction; with `fail`, then runs a statement the
    /// database refuses (a missing table, say) and returns its error. (An implementation names
    /// the type of `tx` as `<Provider as TxProvider>::Arg<'a>`.)
    fn write<'a>(
        &self,
        tx: P::Arg<'a>,
        position: Position,
        fail: bool,
    ) -> BoxFuture<'a, Result<(), BoxError>>;

    /// The positions of the committed rows, in order.
    fn rows(&self) -> BoxFuture<'_, Vec<Position>>;

    /// While `refuse` holds, the database refuses to save a bookmark's position (a trigger,
    /// say; a provider that makes a handler's bookmark row before its first page may still
    /// make it): a page fails at its end, with nothing of it committed.
    fn refuse_bookmark_saves(&self, refuse: bool) -> BoxFuture<'_, ()>;
}

/// Writes the transactional-handler cases' tests for a provider.
///
/// `tx_conformance_tests!(make)` writes one `#[tokio::test]` per case, calling
/// `evtstore_core::conformance::tx::<case>(provider, model)` with what the async function
/// `make` returns: `Some((Arc<provider>, model))` with a fresh store, or `None` to skip.
#[macro_export]
macro_rules! tx_conformance_tests {
    ($make:path) => {
        $crate::tx_conformance_tests!(@cases $make;
            continue_on_error_undoes_only_the_failing_events,
            failing_event_rolls_back_its_page,
            unknown_event_types_fail_or_are_skipped,
            tail_stream_starts_a_new_bookmark_at_the_end,
            always_tail_stream_starts_each_start_at_the_end,
            an_always_tailing_standby_carries_on_from_the_bookmark,
            a_tail_whose_page_failed_is_kept,
            a_kept_tail_gives_way_to_a_later_bookmark,
            a_start_forgets_a_kept_tail,
            hooks_run_around_each_page,
            sealed_events_are_opened_and_shredded_ones_passed_over,
        );
    };
    (@cases $make:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((provider, model)) = $make().await else {
                    eprintln!("skipped: no store (its server URL is not set)");
                    return;
                };
                let run = $crate::conformance::tx::$case(provider, model);
                $crate::conformance::within_time_limit(stringify!($case), run).await;
            }
        )+
    };
}
