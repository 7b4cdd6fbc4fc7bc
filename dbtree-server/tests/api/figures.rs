//! Stats, leaderboard, capacity, history, support and the admin quiz bank.

use dbtree_core::mail::Notification;
use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

pub(crate) async fn figures_history_and_leaderboard(app: &TestApp) {
    let token = app.sign_in("annabel@example.org").await;
    app.win(&token, 0).await;
    let stats = app.get("/api/v1/stats", None).await;
    assert_eq!(
        stats.1,
        json!({ "lemonsHarvested": 3, "liveUsers": 1, "instancesCreated": 0, "welcomeBonus": 15 })
    );
    let board = app.get("/api/v1/leaderboard", None).await;
    assert_eq!(
        board.1["richest"][0],
        json!({ "rank": 1, "maskedEmail": "an***", "score": 18 })
    );
    assert_eq!(board.1["quizMastersToday"][0]["score"], 1);
    assert!(
        !board.1.to_string().contains("annabel"),
        "emails are masked"
    );
    let history = app
        .get("/api/v1/me/transactions?limit=1", Some(&token))
        .await;
    assert_eq!(
        (
            history.1["total"].as_u64(),
            history.1["items"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    assert_eq!(
        (
            history.1["items"][0]["kind"].as_str(),
            history.1["items"][0]["amount"].as_i64()
        ),
        (Some("harvest"), Some(3))
    );
    let page2 = app
        .get("/api/v1/me/transactions?limit=1&offset=1", Some(&token))
        .await;
    assert_eq!(page2.1["items"][0]["kind"], "welcome_bonus");
    let days = app.get("/api/v1/me/harvests?days=3", Some(&token)).await;
    let days = days.1["days"].as_array().unwrap().clone();
    assert_eq!(days.len(), 3);
    assert_eq!(days[2]["lemons"], 3);
    let capacity = app.get("/api/v1/system/capacity", None).await;
    assert_eq!(
        (
            capacity.1["totalCpu"].as_f64(),
            capacity.1["reservedMemoryMib"].as_u64()
        ),
        (Some(2.0), Some(1536))
    );
    assert_eq!(
        capacity.1["fits"][0]["presets"],
        json!(["tiny", "small", "medium", "large"])
    );
}

pub(crate) async fn support_is_stored_mailed_and_rate_limited(app: &TestApp) {
    let token = app.sign_in("help@example.org").await;
    let body = json!({ "category": "billing", "subject": "Lemons <gone>", "message": "Where did my <b>lemons</b> go?" });
    for _ in 0..5 {
        let got = app
            .post("/api/v1/support", Some(&token), body.clone())
            .await;
        assert_eq!(got.0, StatusCode::ACCEPTED, "{}", got.1);
    }
    let limited = app.post("/api/v1/support", Some(&token), body).await;
    assert_problem(&limited, 429, "too_many_requests", None);
    let sent = app.mailer.sent();
    let inquiries = sent
        .iter()
        .filter(|e| {
            matches!(e.notification, Notification::SupportInquiry { .. }) && e.to.as_str() == ADMIN
        })
        .count();
    let confirmations = sent
        .iter()
        .filter(|e| {
            matches!(e.notification, Notification::SupportReceived { .. })
                && e.to.as_str() == "help@example.org"
        })
        .count();
    assert_eq!((inquiries, confirmations), (5, 5));
    let html = dbtree_core::mail::render(
        &sent
            .iter()
            .find(|e| matches!(e.notification, Notification::SupportInquiry { .. }))
            .unwrap()
            .notification,
    )
    .html;
    assert!(
        html.contains("&lt;b&gt;lemons&lt;/b&gt;") && !html.contains("<b>lemons"),
        "user text is escaped"
    );
}

pub(crate) async fn the_quiz_bank_is_for_administrators(app: &TestApp) {
    let user = app.sign_in("plain@example.org").await;
    assert_problem(
        &app.get("/api/v1/admin/quizzes", Some(&user)).await,
        403,
        "forbidden",
        None,
    );
    let admin = app.sign_in(ADMIN).await;
    let list = app.get("/api/v1/admin/quizzes", Some(&admin)).await;
    assert_eq!(list.0, StatusCode::OK);
    assert!(list.1.as_array().unwrap().len() >= 60);
    let quiz = json!({
        "category": "sql", "difficulty": "easy", "question": "Which keyword removes duplicate rows from a result?",
        "options": ["UNIQUE", "DISTINCT", "SINGLE"], "correctOption": 1, "timeLimitSeconds": 15,
    });
    let added = app
        .post("/api/v1/admin/quizzes", Some(&admin), quiz.clone())
        .await;
    assert_eq!(added.0, StatusCode::CREATED, "{}", added.1);
    assert_problem(
        &app.post("/api/v1/admin/quizzes", Some(&admin), quiz.clone())
            .await,
        409,
        "quiz_exists",
        Some("question"),
    );
    let mut bad = quiz.clone();
    bad["question"] = json!("Another question about options?");
    bad["options"] = json!(["same", "Same"]);
    assert_problem(
        &app.post("/api/v1/admin/quizzes", Some(&admin), bad).await,
        400,
        "invalid_quiz",
        Some("options"),
    );
    let mut bad = quiz;
    bad["question"] = json!("Yet another question here?");
    bad["timeLimitSeconds"] = json!(99);
    assert_problem(
        &app.post("/api/v1/admin/quizzes", Some(&admin), bad).await,
        400,
        "invalid_quiz",
        Some("timeLimitSeconds"),
    );
    let id = added.1["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/admin/quizzes/{id}"), &admin)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &app.delete(&format!("/api/v1/admin/quizzes/{id}"), &admin)
            .await,
        404,
        "quiz_not_found",
        None,
    );
}
