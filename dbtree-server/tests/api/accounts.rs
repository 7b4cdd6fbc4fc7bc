//! Sign-in, sessions, profile, account deletion.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

pub(crate) async fn sign_in_profile_and_logout(app: &TestApp) {
    let sent = app
        .post(
            "/api/v1/auth/code",
            None,
            json!({ "email": " Ann@Example.org " }),
        )
        .await;
    assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
    assert_eq!(
        (
            sent.1["email"].as_str(),
            sent.1["resendAfterSeconds"].as_u64()
        ),
        (Some("ann@example.org"), Some(60))
    );
    let code = app.mailer.last_code_for("ann@example.org").unwrap();
    let session = app
        .post(
            "/api/v1/auth/session",
            None,
            json!({ "email": "ann@example.org", "code": code }),
        )
        .await;
    assert_eq!(session.0, StatusCode::CREATED, "{}", session.1);
    assert_eq!(session.1["isNewUser"], true);
    assert_eq!(session.1["profile"]["balance"], 15);
    let token = session.1["token"].as_str().unwrap();
    let me = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(me.0, StatusCode::OK);
    assert_eq!(
        (
            me.1["balance"].as_u64(),
            me.1["balanceCap"].as_u64(),
            me.1["streakDays"].as_u64()
        ),
        (Some(15), Some(500), Some(0))
    );
    assert_eq!(me.1["email"], "ann@example.org");
    assert!(me.1["cooldownUntil"].is_null());
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            "/api/v1/auth/session",
            Some(token),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &app.get("/api/v1/me", Some(token)).await,
        401,
        "session_invalid",
        None,
    );
    assert_problem(
        &app.get("/api/v1/me", None).await,
        401,
        "unauthenticated",
        None,
    );
    assert_problem(
        &app.get("/api/v1/me", Some("not-a-token")).await,
        401,
        "invalid_token",
        None,
    );
}

pub(crate) async fn five_wrong_codes_lock_the_code(app: &TestApp) {
    app.post(
        "/api/v1/auth/code",
        None,
        json!({ "email": "bob@example.org" }),
    )
    .await;
    let code = app.mailer.last_code_for("bob@example.org").unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for left in (0..5).rev() {
        let got = app
            .post(
                "/api/v1/auth/session",
                None,
                json!({ "email": "bob@example.org", "code": wrong }),
            )
            .await;
        assert_problem(&got, 401, "wrong_code", None);
        assert_eq!(got.1["details"]["attemptsLeft"], left);
    }
    let locked = app
        .post(
            "/api/v1/auth/session",
            None,
            json!({ "email": "bob@example.org", "code": code }),
        )
        .await;
    assert_problem(&locked, 403, "code_locked", None);
}

pub(crate) async fn resend_within_a_minute_is_429_with_retry_after(app: &TestApp) {
    app.post(
        "/api/v1/auth/code",
        None,
        json!({ "email": "cy@example.org" }),
    )
    .await;
    app.clock.advance_ms(20_000);
    let response = app
        .client
        .post(format!("{}/api/v1/auth/code", app.address))
        .json(&json!({ "email": "cy@example.org" }))
        .send()
        .await
        .unwrap();
    let retry_after: u32 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let got = parts(response).await;
    assert_problem(&got, 429, "resend_too_soon", None);
    assert_eq!(retry_after, 40, "seconds until the minute is over");
    assert_eq!(got.1["details"]["retryAfterSeconds"], 40);
}

pub(crate) async fn bad_addresses_and_codes_are_refused_by_name(app: &TestApp) {
    assert_problem(
        &app.post("/api/v1/auth/code", None, json!({ "email": "nope" }))
            .await,
        400,
        "invalid_email",
        Some("email"),
    );
    assert_problem(
        &app.post(
            "/api/v1/auth/code",
            None,
            json!({ "email": "x@mailinator.com" }),
        )
        .await,
        422,
        "disposable_email",
        Some("email"),
    );
    assert_problem(
        &app.post(
            "/api/v1/auth/session",
            None,
            json!({ "email": "x@example.org", "code": "12a456" }),
        )
        .await,
        400,
        "invalid_code",
        Some("code"),
    );
    assert_problem(
        &app.post(
            "/api/v1/auth/session",
            None,
            json!({ "email": "x@example.org", "code": "123456" }),
        )
        .await,
        401,
        "no_pending_code",
        None,
    );
}

pub(crate) async fn sessions_per_device_and_logout_everywhere(app: &TestApp) {
    let phone = app.sign_in("dee@example.org").await;
    app.clock.advance_ms(61_000);
    let laptop = app.sign_in("dee@example.org").await;
    assert_eq!(
        app.get("/api/v1/me", Some(&phone)).await.0,
        StatusCode::OK,
        "a new sign-in keeps other devices"
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            "/api/v1/auth/sessions",
            Some(&laptop),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&phone)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&laptop)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

pub(crate) async fn deleting_the_account_keeps_the_bonus_spent(app: &TestApp) {
    let token = app.sign_in("eve@example.org").await;
    assert_eq!(
        app.delete("/api/v1/me", &token).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance_ms(61_000);
    let again = app.sign_in("eve@example.org").await;
    assert_eq!(
        app.get("/api/v1/me", Some(&again)).await.1["balance"],
        0,
        "no second welcome bonus"
    );
}

pub(crate) async fn the_welcome_bonus_is_paid_once_per_mailbox(app: &TestApp) {
    let first = app.sign_in("m.a.x+promo@gmail.com").await;
    let me = app.get("/api/v1/me", Some(&first)).await;
    assert_eq!(
        (me.1["email"].as_str(), me.1["balance"].as_u64()),
        (Some("m.a.x+promo@gmail.com"), Some(15)),
        "the identity is the address as given"
    );
    for variant in ["max@googlemail.com", "ma.x+other@gmail.com"] {
        let token = app.sign_in(variant).await;
        let me = app.get("/api/v1/me", Some(&token)).await;
        assert_eq!(me.1["email"], variant, "its own account");
        assert_eq!(
            me.1["balance"], 0,
            "{variant}: the same mailbox, no second bonus"
        );
    }
    let other = app.sign_in("m.a.x@example.org").await;
    assert_eq!(app.get("/api/v1/me", Some(&other)).await.1["balance"], 15);
}

/// A client on another loopback address (Linux routes all of 127/8 to lo).
fn from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127, 0, 0, last,
        )))
        .build()
        .unwrap()
}

async fn request_code(app: &TestApp, client: &reqwest::Client, email: &str) -> (StatusCode, Value) {
    parts(
        client
            .post(format!("{}/api/v1/auth/code", app.address))
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The published sign-in limits (§4.5): a stranger asking for someone's codes uses up only
/// their own (email, address) share; thirty people behind one address can all sign in.
pub(crate) async fn a_stranger_cannot_lock_a_user_out_and_an_office_can_sign_in(backend: Backend) {
    let mut policy = dbtree_core::policy::Policy::default();
    policy.auth.code_key = test_policy().auth.code_key;
    let app = spawn_app_with(backend, policy).await;
    let stranger = from(66);
    for _ in 0..5 {
        let sent = request_code(&app, &stranger, "victim@example.org").await;
        assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
        app.clock.advance_ms(61_000);
    }
    let refused = request_code(&app, &stranger, "victim@example.org").await;
    assert_problem(&refused, 429, "too_many_codes", None);
    // the victim, from their own address, signs in
    let sent = request_code(&app, &app.client, "victim@example.org").await;
    assert_eq!(sent.0, StatusCode::ACCEPTED, "{}", sent.1);
    let code = app.mailer.last_code_for("victim@example.org").unwrap();
    let session = app
        .post(
            "/api/v1/auth/session",
            None,
            json!({ "email": "victim@example.org", "code": code }),
        )
        .await;
    assert_eq!(session.0, StatusCode::CREATED, "{}", session.1);
    // an office behind 127.0.0.1: 29 more colleagues (30 codes from the address in the hour)
    for i in 0..29 {
        let sent = request_code(&app, &app.client, &format!("staff{i}@example.org")).await;
        assert_eq!(sent.0, StatusCode::ACCEPTED, "colleague {i}: {}", sent.1);
    }
    let limited = request_code(&app, &app.client, "staff29@example.org").await;
    assert_problem(&limited, 429, "too_many_requests", None);
    app.finish().await;
}
