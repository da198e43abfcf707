//! The provider conformance suite: what every storage backend must do, written once.
//!
//! Each case is an async function taking a fresh, empty provider and the page size its
//! handlers read with; it panics with a message saying what went wrong. The cases cover the
//! parity checklist of the original evtstore (items 1–17), optimistic concurrency under racing
//! commands, atomic appends, failing, panicking and undecodable events, invalid names, pushed
//! handlers, bookmarks, positions, hooks, snapshots and their policy, and the aggregate cache.
//! [`domain`] holds the aggregates they use.
//!
//! # Running it for a backend
//!
//! [`conformance_tests!`](crate::conformance_tests) writes one test per case and page size
//! (modules `page_default`, page 1,000, and `page_one`, page 1). Give it the path of an async
//! function that returns a fresh, empty store on each call (tests run in parallel, so each
//! needs its own file, schema or table prefix, which must live as long as the provider); it
//! must be nameable from a child module of where the macro is called (a function of that
//! module, or a `crate::` path).
//! The backend crate needs, as dev-dependencies, `evtstore-core` with feature `testkit` and
//! `tokio` with features `macros` and `rt-multi-thread`. In `tests/conformance.rs`:
//!
//! ```
//! use std::sync::Arc;
//!
//! use evtstore_core::{MemoryProvider, Provider};
//!
//! async fn make() -> Arc<dyn Provider> {
//!     Arc::new(MemoryProvider::new())
//! }
//!
//! evtstore_core::conformance_tests!(make);
//! # fn main() {}
//! ```
//!
//! To run it twice in one test crate (say, for two configurations), call it inside two modules.

mod cache;
mod children;
mod commands;
mod conflicts;
pub mod domain;
mod envelope;
mod errors;
mod handler_control;
mod handler_errors;
mod handler_leases;
mod handlers;
mod leases;
mod migrated;
mod pages;
pub mod partitions_across;
mod people;
pub mod processes;
mod provider_reads;
mod retire;
mod secrets;
mod slow_pages;
mod snapshots;
pub mod stalls;
mod stopping;
pub mod streaming;
mod support;
pub mod tx;
mod unknown;
mod upcasting;

pub use cache::*;
pub use commands::*;
pub use conflicts::*;
pub use envelope::*;
pub use errors::*;
pub use handler_control::*;
pub use handler_errors::*;
pub use handler_leases::*;
pub use handlers::*;
pub use leases::*;
pub use migrated::assert_migrated_envelopes;
pub use pages::*;
pub use provider_reads::*;
pub use retire::*;
pub use slow_pages::*;
pub use snapshots::*;
pub use stopping::*;
pub use unknown::*;
pub use upcasting::*;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long one case may take before it fails as hung.
pub const CASE_TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs one case, failing it when it takes longer than [`CASE_TIME_LIMIT`] (a provider call that
/// never returns, a lock that is never released). Called by the tests `conformance_tests!` writes.
pub async fn within_time_limit(case: &str, run: impl Future<Output = ()>) {
    if tokio::time::timeout(CASE_TIME_LIMIT, run).await.is_err() {
        panic!("{case} took longer than {CASE_TIME_LIMIT:?}: some call hangs");
    }
}

/// What a backend's `make` function returns: a store, or `None` when the test must skip
/// (a server-backed provider whose URL is not set). A store may come with something to keep
/// until the test ends, `(store, keep)`: a temporary directory deleted when dropped, say.
pub trait Store {
    /// The store, if there is one, and what to keep alive with it.
    fn into_store(self) -> Option<(Arc<dyn crate::Provider>, Box<dyn std::any::Any + Send>)>;
}

impl Store for Arc<dyn crate::Provider> {
    fn into_store(self) -> Option<(Arc<dyn crate::Provider>, Box<dyn std::any::Any + Send>)> {
        Some((self, Box::new(())))
    }
}

impl<S: Store> Store for Option<S> {
    fn into_store(self) -> Option<(Arc<dyn crate::Provider>, Box<dyn std::any::Any + Send>)> {
        self.and_then(Store::into_store)
    }
}

impl<K: Send + 'static> Store for (Arc<dyn crate::Provider>, K) {
    fn into_store(self) -> Option<(Arc<dyn crate::Provider>, Box<dyn std::any::Any + Send>)> {
        Some((self.0, Box::new(self.1)))
    }
}

/// Writes the conformance suite's tests for a provider: see [`conformance`](crate::conformance).
///
/// `conformance_tests!(make)` expands to modules `page_default` and `page_one`, each with one
/// `#[tokio::test]` per case, calling `evtstore_core::conformance::<case>(make().await, page)`
/// within [`CASE_TIME_LIMIT`](crate::conformance::CASE_TIME_LIMIT). `make` may return an
/// `Option` (see [`Store`](crate::conformance::Store)): with `None` each test says it skipped.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        $crate::conformance_tests!(@module page_default, 1000, $make);
        $crate::conformance_tests!(@module page_one, 1, $make);
    };
    (@module $module:ident, $page:literal, $make:path) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::conformance_tests!(@cases $page, $make;
                command_appends_and_returns_version_1,
                second_command_returns_version_2,
                every_command_returns_the_new_aggregate,
                two_events_advance_the_version_by_two,
                loaded_aggregate_chains_commands,
                missing_aggregate_loads_at_version_0,
                command_sees_the_current_version,
                append_at_existing_version_conflicts,
                conflicting_multi_event_append_writes_nothing,
                concurrent_commands_one_winner_per_version,
                one_conflict_among_concurrent_appends_fails_alone,
                one_started_handler_of_a_name_runs_and_a_stop_hands_over,
                set_position_goes_through_the_lease,
                a_position_asked_for_while_another_is_applied_is_kept,
                an_ask_applied_without_an_answer_is_kept,
                a_holders_own_move_overrides_an_earlier_ask,
                a_place_asked_for_is_kept_after_a_lost_lease,
                partitions_are_shared_and_move_when_a_process_leaves,
                a_page_longer_than_its_lease_keeps_the_lease,
                wait_for_reads_your_writes,
                a_read_model_is_rebuilt_under_a_new_name_and_switched_over,
                a_lease_has_one_holder_and_fences_bookmarks,
                an_ask_is_applied_under_the_lease,
                an_expired_lease_passes_on_and_its_holder_is_fenced,
                one_of_racing_owners_gets_a_lease,
                unknown_event_types_fail_or_are_skipped_by_loads,
                unknown_event_types_fail_or_are_skipped_by_handlers,
                retrying_commands_reload_and_land,
                handler_updates_read_model,
                second_aggregate_is_independent,
                unset_bookmark_reads_as_start,
                in_memory_bookmark_handles_each_event_once,
                handler_gets_only_registered_streams,
                one_handler_routes_several_kinds,
                hooks_see_read_and_handled_per_page,
                bookmark_saved_once_per_page,
                a_failed_read_ahead_is_read_again,
                a_page_whose_save_failed_is_handled_again,
                set_position_comes_after_the_runs_save,
                a_run_fails_when_its_last_save_failed_elsewhere,
                tail_stream_starts_at_the_end,
                an_always_tailing_standby_takes_over_from_the_bookmark,
                a_tail_whose_save_failed_is_kept,
                wait_for_knows_the_bookmark_after_a_restart,
                started_handler_is_pushed_and_stops,
                set_position_0_replays,
                reset_rereads_the_bookmark,
                continue_on_error_reports_and_skips,
                failing_event_stops_handler_before_it,
                undecodable_event_fails_handler,
                panicking_callback_is_a_failure,
                aggregate_without_snapshots_stores_none,
                snapshotted_aggregate_stores_a_snapshot,
                matching_snapshot_is_used_on_load,
                mismatched_snapshot_is_refolded,
                append_under_new_schema_rewrites_snapshot,
                snapshots_are_stored_at_multiples_of_snapshot_every,
                multi_event_commands_crossing_a_multiple_store_a_snapshot,
                save_snapshot_stores_one_on_demand,
                aggregate_cache_matches_uncached_loads,
                undecodable_event_fails_load,
                invalid_names_are_refused,
                bad_bodies_are_refused_at_append,
                events_are_read_in_position_order,
                a_fold_stopped_part_way_leaves_the_store_readable,
                last_event_of_streams_and_aggregate,
                bookmarks_round_trip,
                stop_takes_effect_within_a_page,
                set_position_takes_effect_within_a_page,
                events_carry_their_envelope,
                imported_events_keep_their_id_revision_and_timestamp,
                commands_from_handlers_take_the_handled_event_as_cause,
                retried_command_ids_append_once,
                concurrent_first_executions_of_a_command_id_append_once,
                loads_upcast_events_of_older_revisions,
                handlers_get_upcast_events,
                an_old_row_its_upcaster_cannot_read_names_the_event,
                deleted_aggregates_leave_a_tombstone_handlers_see,
                archived_aggregates_load_on_demand,
                retiring_the_newest_events_frees_no_position,
                shredded_events_read_as_shredded_everywhere,
                streams_lists_the_streams_that_hold_events,
                concurrent_loads_get_their_own_events,
                a_trusted_cache_decides_on_its_copy_and_conflicts_when_stale,
                a_lease_of_any_length_is_granted_and_holds,
            );
        }
    };
    (@cases $page:literal, $make:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((provider, _keep)) = $crate::conformance::Store::into_store($make().await) else {
                    eprintln!("skipped: no store (its server URL is not set)");
                    return;
                };
                let run = $crate::conformance::$case(provider, $page);
                $crate::conformance::within_time_limit(stringify!($case), run).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    /// Every public case of every file is listed in `conformance_tests!`, and nothing else is.
    #[test]
    fn the_macro_lists_every_case() {
        let files = [
            include_str!("cache.rs"),
            include_str!("commands.rs"),
            include_str!("conflicts.rs"),
            include_str!("envelope.rs"),
            include_str!("errors.rs"),
            include_str!("handler_control.rs"),
            include_str!("handler_errors.rs"),
            include_str!("handler_leases.rs"),
            include_str!("handlers.rs"),
            include_str!("leases.rs"),
            include_str!("pages.rs"),
            include_str!("snapshots.rs"),
            include_str!("provider_reads.rs"),
            include_str!("retire.rs"),
            include_str!("slow_pages.rs"),
            include_str!("stopping.rs"),
            include_str!("unknown.rs"),
            include_str!("upcasting.rs"),
        ];
        let lines = files.iter().flat_map(|f| f.lines());
        let names = lines.filter_map(|line| line.strip_prefix("pub async fn "));
        let mut cases: Vec<&str> = names.filter_map(|rest| rest.split('(').next()).collect();
        let this = include_str!("mod.rs");
        let list = this
            .split("@cases $page, $make;")
            .nth(1)
            .expect("the macro's case list");
        let list = list.split(");").next().unwrap_or_default();
        let mut listed: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert!(
            cases.len() > 30,
            "found only {} cases: {cases:?}",
            cases.len()
        );
        cases.sort_unstable();
        listed.sort_unstable();
        assert_eq!(cases, listed, "the cases and the macro's list differ");
    }
}
