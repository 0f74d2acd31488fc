//! The store conformance suite: the rules of the inbox ([`foreman::store::Inbox`]), of the job store
//! ([`foreman::store::JobStore`]) and of the report records ([`foreman::store::Reports`]) as tests generic over the backend. A backend proves itself by
//! instantiating the whole suite with [`store_conformance!`] and a function that opens it in a directory
//! (`tests/store_sled.rs` does so for sled); the same directory opened again must hold what was durable.

#![allow(dead_code)]

pub mod inbox;
pub mod jobs_crash;
pub mod jobs_history;
pub mod jobs_props;
pub mod jobs_rules;
pub mod pushes;
pub mod recent;
pub mod reports;

/// Opens (or reopens) the backend under test in a directory. Panics when it cannot; may wait a moment
/// for a previous handle on the same directory to let go.
pub type Open<S> = fn(&std::path::Path) -> S;

/// Expands to one `#[test]` per rule of the suite, each calling the generic test with `$open`. Use it
/// once, at the root of a test crate that declares `mod store_conformance;` (the crash test starts the
/// test binary again and runs `child_claims_and_hangs` by its exact name).
#[macro_export]
macro_rules! store_conformance {
    ($open:path) => {
        $crate::store_conformance!(@sync $open; jobs_rules::{
            one_job_per_issue_and_a_redelivery_has_no_second_effect,
            runnable_jobs_run_by_priority_then_phase_then_failures_then_age,
            a_queued_job_is_re_placed_when_its_title_or_labels_change,
            fewer_failures_run_first_within_the_same_priority_and_phase,
            concurrency_limits_global_per_repository_and_per_installation,
            jobs_of_a_refused_installation_are_skipped_and_keep_their_place,
            a_repositorys_constitution_sets_its_own_concurrency,
            heartbeats_renew_and_an_expired_claim_is_reclaimable_as_an_infrastructure_failure,
            three_agent_or_validation_failures_make_a_job_stuck_and_retry_resets,
            rate_limits_never_count_and_wait_until_the_reported_reset,
            backoff_is_exponential_with_jitter_and_capped_at_five_minutes,
            dependencies_wait_until_closed_and_cycles_are_reported,
            every_transition_is_in_the_audit_trail,
            positions_and_status_show_the_queue,
            a_restart_requeues_jobs_of_the_process_that_died_and_reconciles_claims,
            two_schedulers_racing_on_threads_never_share_a_job,
        });
        $crate::store_conformance!(@sync $open; jobs_props::{invariants_hold_under_random_interleavings});
        $crate::store_conformance!(@sync $open; jobs_history::{
            a_jobs_sessions_and_failures_are_kept_oldest_first_across_a_retry_and_a_reopen,
        });
        $crate::store_conformance!(@sync $open; jobs_crash::{
            a_killed_process_loses_no_job_and_its_claims_return_to_the_queue,
        });
        $crate::store_conformance!(@async $open; inbox::{
            concurrent_puts_share_flushes_and_each_id_is_stored_once,
            inbox_survives_reopening_and_pruning_keeps_pending_and_recent,
            the_inbox_floor_stops_below_a_delivery_left_pending_and_survives_a_restart,
            the_delivery_log_position_is_durable_and_survives_a_reopen,
        });
        $crate::store_conformance!(@async $open; pushes::{a_push_intent_survives_a_reopen_for_its_run_until_settled});
        $crate::store_conformance!(@async $open; recent::{
            recent_deliveries_come_newest_first_a_page_at_a_time_whatever_their_state,
        });
        $crate::store_conformance!(@sync $open; recent::{recent_sessions_are_the_ended_ones_newest_first});
        $crate::store_conformance!(@async $open; reports::{
            a_jobs_reports_are_kept_with_the_version_applied_and_survive_a_reopen,
        });

        #[tokio::test]
        #[ignore = "run by a_killed_process_loses_no_job_and_its_claims_return_to_the_queue as its child"]
        async fn child_claims_and_hangs() {
            store_conformance::jobs_crash::child_claims_and_hangs($open).await
        }
    };
    (@sync $open:path; $module:ident::{$($test:ident),* $(,)?}) => {
        $(
            #[test]
            fn $test() {
                store_conformance::$module::$test($open)
            }
        )*
    };
    (@async $open:path; $module:ident::{$($test:ident),* $(,)?}) => {
        $(
            #[tokio::test]
            async fn $test() {
                store_conformance::$module::$test($open).await
            }
        )*
    };
}
