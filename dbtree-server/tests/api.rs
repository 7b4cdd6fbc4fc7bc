//! The HTTP API walked end to end over the production router: every endpoint, its success and
//! its documented errors, on the embedded default (SQLite) and on production storage
//! (PostgreSQL + Redis).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api {
    pub(crate) mod helpers;

    pub(crate) mod accounts;
    pub(crate) mod figures;
    pub(crate) mod first_hour;
    pub(crate) mod instances;
    pub(crate) mod live;
    pub(crate) mod openapi;
    pub(crate) mod ops;
    pub(crate) mod race;
    pub(crate) mod tree;
    pub(crate) mod validation;
}

macro_rules! walk {
    ($backend:ident; $($module:ident :: $test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                let app = crate::api::helpers::spawn_app(crate::api::helpers::Backend::$backend).await;
                crate::api::$module::$test(&app).await;
                app.finish().await;
            }
        )+
    };
    ($backend:ident) => {
        walk!($backend;
            accounts::sign_in_profile_and_logout,
            accounts::five_wrong_codes_lock_the_code,
            accounts::resend_within_a_minute_is_429_with_retry_after,
            accounts::bad_addresses_and_codes_are_refused_by_name,
            accounts::sessions_per_device_and_logout_everywhere,
            accounts::deleting_the_account_keeps_the_bonus_spent,
            tree::the_tree_is_ripe_and_a_lemon_can_be_won,
            tree::clicks_outside_the_circle_or_after_five_seconds_are_refused,
            tree::quiz_rules_and_bad_input,
            race::two_hundred_harvests_one_winner,
            instances::the_catalogue_and_quotes_match_what_creation_charges,
            instances::create_inspect_stop_start_rotate_delete,
            instances::limits_balance_capacity_and_strangers,
            validation::bad_bodies_are_400_with_the_field_named,
            figures::figures_history_and_leaderboard,
            figures::support_is_stored_mailed_and_rate_limited,
            figures::the_quiz_bank_is_for_administrators,
            ops::operations_endpoints,
            live::a_harvest_reaches_watchers_within_a_second,
            first_hour::the_quiz_lock_is_released_at_once,
            first_hour::a_click_within_the_lag_allowance_wins,
            first_hour::no_spec_costs_less_than_a_preset_it_contains,
            first_hour::the_runway_and_its_warning,
            first_hour::usage_comes_from_the_engine,
        );
    };
}

mod sqlite {
    walk!(Sqlite);

    #[tokio::test]
    async fn the_committed_spec_is_up_to_date() {
        let app = crate::api::helpers::spawn_app(crate::api::helpers::Backend::Sqlite).await;
        crate::api::openapi::the_committed_spec_is_up_to_date(&app).await;
        app.finish().await;
    }
}

mod postgres {
    walk!(Postgres);
}
