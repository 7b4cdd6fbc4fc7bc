//! Sign-in, sessions, profile, account deletion.

use reqwest::StatusCode;
use serde_json::json;

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
