//! The contract suite: one behavioural suite for the boundary traits, compiled once per backend.
//! Store tests run on memory, SQLite and PostgreSQL; coordination tests on memory and Redis.
//! PostgreSQL and Redis come from `dbtree-testkit` (throwaway servers); nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod contract {
    pub(crate) mod backends;
    pub(crate) mod checker;
    pub(crate) mod coordination;
    pub(crate) mod fixtures;
    pub(crate) mod random;
    pub(crate) mod store {
        pub(crate) mod accounts;
        pub(crate) mod instances;
        pub(crate) mod ports;
        pub(crate) mod tree;
    }
}

/// Calls `$mac!` with every store test: `module::function` pairs.
macro_rules! store_tests {
    ($mac:ident, $env:ident) => {
        $mac!($env;
            accounts::posting_moves_balance_and_ledger_together,
            accounts::a_retried_key_changes_nothing,
            accounts::a_replay_keeps_the_original_amount_and_time,
            accounts::debits_refuse_a_short_balance_and_earnings_clip_at_the_cap,
            accounts::concurrent_debits_never_overdraw,
            accounts::history_pages_newest_first_and_filters,
            accounts::daily_harvests_group_by_utc_day,
            accounts::registration_pays_the_welcome_bonus_once_per_email_ever,
            accounts::concurrent_registrations_make_one_account,
            accounts::codes_follow_the_resend_rules_and_verdicts,
            accounts::sessions_are_per_device_and_end_cleanly,
            accounts::leaderboards_and_inquiries,
            accounts::low_balance_warnings_are_set_once_and_cleared,
            tree::planting_is_idempotent_with_distinct_quizzes,
            tree::the_quiz_bank_refuses_duplicates_and_retires,
            tree::planting_from_an_empty_bank_is_refused,
            tree::attempts_need_a_ripe_lemon_and_take_the_first_answer,
            tree::an_abandoned_attempt_is_never_answered_and_an_answered_one_never_abandoned,
            tree::a_claim_pays_once_and_replays_its_receipt,
            tree::claims_are_refused_in_cooldown_and_at_the_cap,
            tree::concurrent_claims_of_one_lemon_have_one_winner,
            tree::a_claim_answers_by_the_attempts_harvest_state,
            tree::lemons_regrow_once_with_a_quiz_not_on_the_tree,
            tree::quiz_masters_count_correct_on_time_answers_per_day,
            instances::creation_debits_and_reserves_the_lowest_port,
            instances::creation_refuses_in_precedence_order,
            instances::concurrent_creates_keep_the_limit_and_the_capacity,
            instances::events_follow_the_state_machine_and_refund_once,
            instances::teardown_releases_the_port_and_hides_the_instance,
            instances::starting_rechecks_balance_and_capacity,
            instances::each_hour_is_charged_once_whatever_the_concurrency,
            instances::pausing_and_resuming_are_paid_and_bounded_by_capacity,
            instances::refused_events_and_short_resumes_keep_the_pause,
            instances::billing_an_unknown_instance_is_an_outcome,
            instances::node_ports_are_unique_idempotent_and_cleanly_exhausted,
            ports::two_thousand_reservations_from_32_tasks_then_exhausted,
        );
    };
}

macro_rules! instantiate_store {
    ($env:ident; $($module:ident :: $test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let env = crate::contract::backends::StoreEnv::$env().await;
                crate::contract::store::$module::$test(&env).await;
                env.cleanup().await;
            }
        )+
    };
}

mod memory {
    store_tests!(instantiate_store, memory);
}

mod sqlite {
    store_tests!(instantiate_store, sqlite);

    #[tokio::test]
    async fn corruption_is_caught() {
        let env = crate::contract::backends::StoreEnv::sqlite().await;
        crate::contract::checker::corruption_is_caught(&env).await;
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_mixed_operations_leave_no_violations() {
        let env = crate::contract::backends::StoreEnv::sqlite().await;
        crate::contract::random::ten_thousand_mixed_operations_leave_no_violations(&env).await;
        env.cleanup().await;
    }
}

mod postgres {
    store_tests!(instantiate_store, postgres);

    #[tokio::test]
    async fn corruption_is_caught() {
        let env = crate::contract::backends::StoreEnv::postgres().await;
        crate::contract::checker::corruption_is_caught(&env).await;
        env.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_mixed_operations_leave_no_violations() {
        let env = crate::contract::backends::StoreEnv::postgres().await;
        crate::contract::random::ten_thousand_mixed_operations_leave_no_violations(&env).await;
        env.cleanup().await;
    }
}

macro_rules! instantiate_coordination {
    ($env:ident) => {
        instantiate_coordination!($env;
            the_lock_is_exclusive_and_released_only_by_its_holder,
            the_lock_expires_after_its_lifetime,
            the_holder_is_known_while_the_lock_lives,
            concurrent_acquires_have_one_winner,
            the_rate_limit_window_slides,
            concurrent_hits_never_exceed_the_limit,
        );
    };
    ($env:ident; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let env = crate::contract::backends::CoordinationEnv::$env().await;
                crate::contract::coordination::$test(&env).await;
            }
        )+
    };
}

mod memory_coordination {
    instantiate_coordination!(memory);
}

mod redis_coordination {
    instantiate_coordination!(redis);
}
