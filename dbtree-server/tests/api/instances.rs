//! Presets, quotes and the instance lifecycle.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

pub(crate) async fn the_catalogue_and_quotes_match_what_creation_charges(app: &TestApp) {
    let presets = app.get("/api/v1/presets", None).await;
    assert_eq!(presets.0, StatusCode::OK);
    assert_eq!(presets.1.as_array().unwrap().len(), 12);
    let pg_small = presets
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["engine"] == "postgresql" && p["preset"] == "small")
        .unwrap();
    assert_eq!(
        pg_small["price"],
        json!({ "creationCost": 10, "hourlyCost": 2, "dailyCost": 48, "monthlyCost": 1440 })
    );

    let token = app.sign_in("ann@example.org").await;
    app.grant(&token, 60).await;
    let custom = json!({ "engine": "postgresql", "resources": { "cpu": 0.75, "memoryMib": 768, "diskGib": 15 } });
    let quote = app.post("/api/v1/quotes", None, custom.clone()).await;
    assert_eq!(quote.0, StatusCode::OK, "{}", quote.1);
    let mut create = custom;
    create["name"] = json!("custom-pg");
    let before = app.get("/api/v1/me", Some(&token)).await.1["balance"]
        .as_u64()
        .unwrap();
    let created = app.post("/api/v1/instances", Some(&token), create).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let after = app.get("/api/v1/me", Some(&token)).await.1["balance"]
        .as_u64()
        .unwrap();
    assert_eq!(
        before - after,
        quote.1["creationCost"].as_u64().unwrap(),
        "the quote is what creation debits"
    );
    assert_eq!(created.1["instance"]["price"], quote.1);
}

pub(crate) async fn create_inspect_stop_start_rotate_delete(app: &TestApp) {
    let token = app.sign_in("bob@example.org").await;
    let created = app
        .post(
            "/api/v1/instances",
            Some(&token),
            json!({ "name": "cache", "engine": "redis", "preset": "tiny" }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let id = created.1["instance"]["id"].as_str().unwrap().to_owned();
    let port = created.1["instance"]["nodePort"].as_u64().unwrap();
    assert_eq!(port, 30000);
    let password = created.1["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 24);
    assert_eq!(
        created.1["credentials"]["uri"],
        format!("redis://dbtree:{password}@db.example.test:{port}/0")
    );
    // the simulated cluster reports readiness; the server follows it by watching
    let mut status = String::new();
    for _ in 0..50 {
        let detail = app
            .get(&format!("/api/v1/instances/{id}"), Some(&token))
            .await;
        status = detail.1["status"].as_str().unwrap().to_owned();
        if status == "running" {
            assert_eq!(
                detail.1["connection"]["uriTemplate"],
                format!("redis://dbtree:{{password}}@db.example.test:{port}/0")
            );
            assert!(
                !detail.1.to_string().contains(&password),
                "the password is never shown again"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, "running");
    let list = app.get("/api/v1/instances", Some(&token)).await;
    assert_eq!(list.1.as_array().unwrap().len(), 1);
    let stopped = app
        .post(
            &format!("/api/v1/instances/{id}/stop"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(
        (stopped.0, stopped.1["status"].as_str()),
        (StatusCode::OK, Some("stopped"))
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/instances/{id}/stop"),
            Some(&token),
            json!({}),
        )
        .await,
        409,
        "invalid_state",
        None,
    );
    assert_problem(
        &app.post(
            &format!("/api/v1/instances/{id}/credentials"),
            Some(&token),
            json!({}),
        )
        .await,
        409,
        "instance_not_running",
        None,
    );
    let started = app
        .post(
            &format!("/api/v1/instances/{id}/start"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(
        (started.0, started.1["status"].as_str()),
        (StatusCode::OK, Some("running"))
    );
    let rotated = app
        .post(
            &format!("/api/v1/instances/{id}/credentials"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.0, StatusCode::OK, "{}", rotated.1);
    assert_ne!(rotated.1["password"], password.as_str());
    let deleted = app.delete(&format!("/api/v1/instances/{id}"), &token).await;
    assert_eq!(
        (deleted.0, deleted.1["status"].as_str()),
        (StatusCode::OK, Some("deleted"))
    );
    assert_problem(
        &app.get(&format!("/api/v1/instances/{id}"), Some(&token))
            .await,
        404,
        "instance_not_found",
        None,
    );
    // the password appears in no stored record
    let ledger = app.get("/api/v1/me/transactions", Some(&token)).await;
    assert!(!ledger.1.to_string().contains(&password));
}

pub(crate) async fn limits_balance_capacity_and_strangers(app: &TestApp) {
    let ann = app.sign_in("ann@example.org").await;
    app.grant(&ann, 100).await;
    for name in ["one", "two"] {
        let got = app
            .post(
                "/api/v1/instances",
                Some(&ann),
                json!({ "name": name, "engine": "redis", "preset": "tiny" }),
            )
            .await;
        assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    }
    let third = app
        .post(
            "/api/v1/instances",
            Some(&ann),
            json!({ "name": "three", "engine": "redis", "preset": "tiny" }),
        )
        .await;
    assert_problem(&third, 409, "instance_limit", None);
    assert_eq!(third.1["details"], json!({ "used": 2, "limit": 2 }));
    let taken = app.get("/api/v1/instances", Some(&ann)).await.1[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let bob = app.sign_in("bob@example.org").await;
    assert_problem(
        &app.get(&format!("/api/v1/instances/{taken}"), Some(&bob))
            .await,
        404,
        "instance_not_found",
        None,
    );
    assert_problem(
        &app.delete(&format!("/api/v1/instances/{taken}"), &bob)
            .await,
        404,
        "instance_not_found",
        None,
    );
    assert_problem(
        &app.get("/api/v1/instances/not-a-uuid", Some(&bob)).await,
        400,
        "invalid_id",
        Some("id"),
    );
    let poor = app
        .post(
            "/api/v1/instances",
            Some(&bob),
            json!({ "name": "big", "engine": "postgresql", "preset": "large" }),
        )
        .await;
    assert_problem(&poor, 422, "insufficient_lemons", None);
    assert_eq!(
        poor.1["details"],
        json!({ "required": 35, "available": 15 })
    );
    // the node: ann's two tiny instances hold 0.2 vCPU; one large MongoDB fits, a second does not
    let carol = app.sign_in("carol@example.org").await;
    app.grant(&carol, 40).await;
    let fits = app
        .post(
            "/api/v1/instances",
            Some(&carol),
            json!({ "name": "carols-db", "engine": "mongodb", "preset": "large" }),
        )
        .await;
    assert_eq!(fits.0, StatusCode::CREATED, "{}", fits.1);
    let dave = app.sign_in("dave@example.org").await;
    app.grant(&dave, 40).await;
    let full = app
        .post(
            "/api/v1/instances",
            Some(&dave),
            json!({ "name": "carols-db", "engine": "mongodb", "preset": "large" }),
        )
        .await;
    assert_problem(&full, 507, "capacity_exceeded", None);
    assert_eq!(full.1["details"]["resource"], "cpu");
    let capacity = app.get("/api/v1/system/capacity", None).await;
    assert_eq!(capacity.1["usedCpu"], 0.95);
    assert!(
        !capacity.1.to_string().contains("carols-db"),
        "no instance names in public figures"
    );
    assert_eq!(
        app.get("/api/v1/me", Some(&dave)).await.1["balance"],
        55,
        "nothing charged"
    );
}
