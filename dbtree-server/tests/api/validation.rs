//! Malformed JSON, wrong types, unknown values and oversize strings: 400 naming the field.

use serde_json::json;

use super::helpers::*;

pub(crate) async fn bad_bodies_are_400_with_the_field_named(app: &TestApp) {
    let token = app.sign_in("val@example.org").await;
    let t = Some(token.as_str());
    let malformed = app
        .raw_post(
            "/api/v1/auth/code",
            "application/json",
            r#"{"email": "a@b.org""#,
        )
        .await;
    assert_problem(&malformed, 400, "invalid_json", Some("body"));
    assert_problem(
        &app.raw_post("/api/v1/auth/code", "text/plain", "hello")
            .await,
        400,
        "invalid_request",
        None,
    );
    assert_problem(
        &app.post("/api/v1/auth/code", None, json!({ "email": 5 }))
            .await,
        400,
        "invalid_body",
        Some("email"),
    );
    assert_problem(
        &app.post("/api/v1/auth/code", None, json!({})).await,
        400,
        "invalid_body",
        Some("email"),
    );
    assert_problem(
        &app.post(
            "/api/v1/auth/code",
            None,
            json!({ "email": format!("{}@example.org", "a".repeat(300)) }),
        )
        .await,
        400,
        "invalid_email",
        Some("email"),
    );
    let cases = [
        (
            json!({ "name": "ok-name", "engine": "mysql", "preset": "tiny" }),
            "invalid_body",
            "engine",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "preset": "huge" }),
            "invalid_body",
            "preset",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis" }),
            "invalid_spec",
            "preset",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "preset": "tiny", "resources": { "cpu": 1, "memoryMib": 256, "diskGib": 1 } }),
            "invalid_spec",
            "preset",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "resources": { "cpu": "fast", "memoryMib": 256, "diskGib": 1 } }),
            "invalid_body",
            "resources.cpu",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "resources": { "cpu": 0.33, "memoryMib": 256, "diskGib": 1 } }),
            "invalid_resources",
            "resources.cpu",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "resources": { "cpu": 0.5, "memoryMib": 99999, "diskGib": 1 } }),
            "invalid_resources",
            "resources.memoryMib",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "resources": { "cpu": 0.5, "memoryMib": 256, "diskGib": 0 } }),
            "invalid_resources",
            "resources.diskGib",
        ),
        (
            json!({ "name": "Bad_Name", "engine": "redis", "preset": "tiny" }),
            "invalid_name",
            "name",
        ),
        (
            json!({ "name": "x".repeat(500), "engine": "redis", "preset": "tiny" }),
            "invalid_name",
            "name",
        ),
        (
            json!({ "name": ["list"], "engine": "redis", "preset": "tiny" }),
            "invalid_body",
            "name",
        ),
        // Optional, not nullable: the schema says so and the server holds to it.
        (
            json!({ "name": "ok-name", "engine": "redis", "preset": "tiny", "resources": null }),
            "invalid_body",
            "resources",
        ),
        (
            json!({ "name": "ok-name", "engine": "redis", "preset": null, "resources": { "cpu": 0.5, "memoryMib": 256, "diskGib": 1 } }),
            "invalid_body",
            "preset",
        ),
    ];
    for (body, code, field) in cases {
        let got = app.post("/api/v1/instances", t, body.clone()).await;
        assert_problem(&got, 400, code, Some(field));
    }
    let support =
        json!({ "category": "bug", "subject": "s".repeat(1000), "message": "long enough message" });
    assert_problem(
        &app.post("/api/v1/support", t, support).await,
        400,
        "invalid_inquiry",
        Some("subject"),
    );
    let support =
        json!({ "category": "rant", "subject": "hello", "message": "long enough message" });
    assert_problem(
        &app.post("/api/v1/support", t, support).await,
        400,
        "invalid_body",
        Some("category"),
    );
    assert_problem(
        &app.get("/api/v1/me/transactions?limit=101", t).await,
        400,
        "out_of_range",
        Some("limit"),
    );
    assert_problem(
        &app.get("/api/v1/me/transactions?limit=abc", t).await,
        400,
        "invalid_request",
        Some("limit"),
    );
    assert_problem(
        &app.get("/api/v1/me/harvests?days=91", t).await,
        400,
        "out_of_range",
        Some("days"),
    );
    assert_problem(
        &app.get("/api/v1/me/transactions?instanceId=zzz", t).await,
        400,
        "invalid_id",
        Some("instanceId"),
    );
}
