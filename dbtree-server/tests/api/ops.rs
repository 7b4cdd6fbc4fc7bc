//! Health, readiness, metrics, docs, unknown routes, request ids.

use reqwest::StatusCode;

use super::helpers::*;

pub(crate) async fn operations_endpoints(app: &TestApp) {
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok");
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    let docs = get("/docs").await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"), "Swagger UI");
    let spec: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(spec["info"]["title"], "dbtree");
    let root = app
        .client
        .get(format!("{}/", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        root.status(),
        StatusCode::OK,
        "the web app is served at the root"
    );
    assert!(
        root.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(root.text().await.unwrap().contains("/js/main.js"));

    let token = app.sign_in("ops@example.org").await;
    app.win(&token, 9).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for needle in [
        "dbtree_http_requests_total{method=\"POST\",operation=\"harvest\",status=\"200\"} 1",
        "dbtree_harvests_total{outcome=\"won\"} 1",
        "dbtree_lemons_total{direction=\"paid_out\"} 3",
        "dbtree_ledger{figure=\"lemons_harvested\"} 3",
        "dbtree_http_request_duration_seconds_bucket",
    ] {
        assert!(
            metrics.contains(needle),
            "missing `{needle}` in:\n{metrics}"
        );
    }

    let unknown = parts(get("/api/v1/nothing-here").await.unwrap()).await;
    assert_problem(&unknown, 404, "not_found", None);
    let wrong_method = parts(
        app.client
            .put(format!("{}/api/v1/tree", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_problem(&wrong_method, 405, "method_not_allowed", None);

    let echoed = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");
    let minted = get("/healthz").await.unwrap();
    assert_eq!(minted.headers()["x-request-id"].len(), 16);
}
