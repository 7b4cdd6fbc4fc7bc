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
    pub(crate) mod limits;
    pub(crate) mod live;
    pub(crate) mod openapi;
    pub(crate) mod ops;
    pub(crate) mod outage;
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
    (own $backend:ident; $($module:ident :: $test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                crate::api::$module::$test(crate::api::helpers::Backend::$backend).await;
            }
        )+
    };
    ($backend:ident) => {
        walk!(own $backend;
            accounts::a_stranger_cannot_lock_a_user_out_and_an_office_can_sign_in,
        );
        walk!($backend;
            accounts::sign_in_profile_and_logout,
            accounts::five_wrong_codes_lock_the_code,
            accounts::resend_within_a_minute_is_429_with_retry_after,
            accounts::bad_addresses_and_codes_are_refused_by_name,
            accounts::sessions_per_device_and_logout_everywhere,
            accounts::deleting_the_account_keeps_the_bonus_spent,
            accounts::the_welcome_bonus_is_paid_once_per_mailbox,
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

    /// The HTTP limits do not depend on storage: one server under tight limits.
    macro_rules! limited {
        ($($test:ident),+ $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    use crate::api::helpers::*;
                    let app = spawn_app_opts(
                        Backend::Sqlite,
                        Options {
                            limits: crate::api::limits::tight(),
                            ..Options::default()
                        },
                    )
                    .await;
                    crate::api::limits::$test(&app).await;
                    app.finish().await;
                }
            )+
        };
    }

    limited!(
        bodies_over_the_limit_are_413_before_they_are_sent,
        the_token_is_checked_before_the_body,
        a_stalled_body_is_408,
        slow_and_silent_connections_are_closed,
        event_streams_are_capped,
        no_cors_headers_without_configured_origins,
    );

    #[tokio::test]
    async fn cors_headers_only_for_configured_origins() {
        use crate::api::helpers::*;
        let app = spawn_app_opts(
            Backend::Sqlite,
            Options {
                cors_origins: vec!["https://app.example.org".into()],
                ..Options::default()
            },
        )
        .await;
        crate::api::limits::cors_headers_only_for_configured_origins(&app).await;
        app.finish().await;
    }

    #[tokio::test]
    async fn the_committed_spec_is_up_to_date() {
        let app = crate::api::helpers::spawn_app(crate::api::helpers::Backend::Sqlite).await;
        crate::api::openapi::the_committed_spec_is_up_to_date(&app).await;
        app.finish().await;
    }
}

mod postgres {
    walk!(Postgres);

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_down_is_503_and_back() {
        crate::api::outage::redis_down_is_503_and_back().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_down_is_503_and_back() {
        crate::api::outage::postgres_down_is_503_and_back().await;
    }
}
