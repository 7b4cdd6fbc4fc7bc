//! The tree, quizzes, answers and harvests.

use reqwest::StatusCode;
use serde_json::json;

use super::helpers::*;

pub(crate) async fn the_tree_is_ripe_and_a_lemon_can_be_won(app: &TestApp) {
    let tree = app.get("/api/v1/tree", None).await;
    assert_eq!(tree.0, StatusCode::OK);
    let lemons = tree.1["lemons"].as_array().unwrap();
    assert_eq!(lemons.len(), 10);
    assert!(lemons.iter().all(|l| l["state"] == "ripe"));

    let token = app.sign_in("ann@example.org").await;
    let started = app
        .post("/api/v1/tree/4/quiz", Some(&token), json!({}))
        .await;
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    assert!(started.1["options"].as_array().unwrap().len() >= 2);
    assert!(started.1["timeLimitMs"].as_i64().unwrap() >= 10_000);
    let attempt = started.1["attemptId"].as_str().unwrap().to_owned();
    let option = app.correct_option(&attempt).await;
    let answer = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/answer"),
            Some(&token),
            json!({ "option": option }),
        )
        .await;
    assert_eq!(answer.0, StatusCode::OK);
    assert_eq!(
        (
            answer.1["correct"].as_bool(),
            answer.1["correctOption"].as_u64()
        ),
        (Some(true), Some(u64::from(option)))
    );
    let challenge = &answer.1["challenge"];
    assert_eq!(
        (
            challenge["windowMs"].as_u64(),
            challenge["periodMs"].as_u64()
        ),
        (Some(5000), Some(3000))
    );
    app.clock.advance_ms(1500);
    let harvest_path = format!("/api/v1/quiz-attempts/{attempt}/harvest");
    let won = app
        .post(&harvest_path, Some(&token), click(challenge, 1400))
        .await;
    assert_eq!(won.0, StatusCode::OK, "{}", won.1);
    assert_eq!(
        (won.1["reward"].as_u64(), won.1["balance"].as_u64()),
        (Some(3), Some(18))
    );
    // repeated: same receipt, paid once
    let again = app
        .post(&harvest_path, Some(&token), click(challenge, 1400))
        .await;
    assert_eq!(again, won);
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.1["balance"], 18);
    let tree = app.get("/api/v1/tree", None).await;
    assert_eq!(tree.1["lemons"][4]["state"], "regrowing");
    assert!(tree.1["lemons"][4]["regrowsAt"].is_string());
    // cooldown now
    assert_problem(
        &app.post("/api/v1/tree/5/quiz", Some(&token), json!({}))
            .await,
        409,
        "harvest_cooldown",
        None,
    );
}

pub(crate) async fn clicks_outside_the_circle_or_after_five_seconds_are_refused(app: &TestApp) {
    let bob = app.sign_in("bob@example.org").await;
    let (attempt, challenge) = app.answer_right(&bob, 1).await;
    let mut miss = click(&challenge, 1000);
    let x = miss["x"].as_f64().unwrap();
    miss["x"] = json!(if x > 0.5 { x - 0.3 } else { x + 0.3 });
    app.clock.advance_ms(1100);
    let missed = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&bob),
            miss,
        )
        .await;
    assert_problem(&missed, 422, "click_missed", None);

    let cy = app.sign_in("cy@example.org").await;
    let (attempt, challenge) = app.answer_right(&cy, 1).await;
    app.clock.advance_ms(5001);
    let late = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&cy),
            click(&challenge, 900),
        )
        .await;
    assert_problem(&late, 409, "harvest_window_closed", None);

    let dee = app.sign_in("dee@example.org").await;
    let (attempt, challenge) = app.answer_right(&dee, 1).await;
    let after_window = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&dee),
            click(&challenge, 5001),
        )
        .await;
    assert_problem(
        &after_window,
        422,
        "click_after_window",
        Some("clickOffsetMs"),
    );
    let off_area = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&dee),
            json!({ "clickOffsetMs": 10, "x": 1.5, "y": 0.5 }),
        )
        .await;
    assert_problem(&off_area, 400, "invalid_click", Some("x"));
    // malformed clicks settle nothing: a good click in the window still wins
    let won = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&dee),
            click(&challenge, 30),
        )
        .await;
    assert_eq!(won.0, StatusCode::OK, "{}", won.1);
    assert_eq!(
        app.get("/api/v1/tree", None).await.1["lemons"][1]["state"],
        "regrowing",
        "misses and late clicks left it for dee"
    );
}

pub(crate) async fn quiz_rules_and_bad_input(app: &TestApp) {
    let ann = app.sign_in("ann@example.org").await;
    assert_problem(
        &app.post("/api/v1/tree/10/quiz", Some(&ann), json!({}))
            .await,
        400,
        "invalid_position",
        Some("position"),
    );
    assert_problem(
        &app.post("/api/v1/tree/x/quiz", Some(&ann), json!({})).await,
        400,
        "invalid_request",
        Some("position"),
    );
    assert_problem(
        &app.post("/api/v1/tree/2/quiz", None, json!({})).await,
        401,
        "unauthenticated",
        None,
    );
    let started = app.post("/api/v1/tree/2/quiz", Some(&ann), json!({})).await;
    let attempt = started.1["attemptId"].as_str().unwrap().to_owned();
    assert_problem(
        &app.post("/api/v1/tree/3/quiz", Some(&ann), json!({})).await,
        409,
        "quiz_in_progress",
        None,
    );
    let answer = format!("/api/v1/quiz-attempts/{attempt}/answer");
    assert_problem(
        &app.post(&answer, Some(&ann), json!({ "option": 99 })).await,
        400,
        "invalid_option",
        Some("option"),
    );
    assert_problem(
        &app.post(&answer, Some(&ann), json!({ "option": "two" }))
            .await,
        400,
        "invalid_body",
        Some("option"),
    );
    let stranger = app.sign_in("bob@example.org").await;
    assert_problem(
        &app.post(&answer, Some(&stranger), json!({ "option": 0 }))
            .await,
        404,
        "attempt_not_found",
        None,
    );
    assert_problem(
        &app.post(
            "/api/v1/quiz-attempts/nope/answer",
            Some(&ann),
            json!({ "option": 0 }),
        )
        .await,
        400,
        "invalid_id",
        Some("attemptId"),
    );
    let right = app.correct_option(&attempt).await;
    let wrong = if right == 0 { 1 } else { 0 };
    let verdict = app
        .post(&answer, Some(&ann), json!({ "option": wrong }))
        .await;
    assert_eq!(
        (verdict.0, verdict.1["correct"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert!(verdict.1["challenge"].is_null());
    assert_problem(
        &app.post(&answer, Some(&ann), json!({ "option": right }))
            .await,
        409,
        "already_answered",
        None,
    );
    let harvest = format!("/api/v1/quiz-attempts/{attempt}/harvest");
    assert_problem(
        &app.post(
            &harvest,
            Some(&ann),
            json!({ "clickOffsetMs": 1, "x": 0.5, "y": 0.5 }),
        )
        .await,
        409,
        "no_quiz_passed",
        None,
    );
    // too late to answer: refused, answer not revealed
    let started = app.post("/api/v1/tree/3/quiz", Some(&ann), json!({})).await;
    let attempt = started.1["attemptId"].as_str().unwrap().to_owned();
    app.clock
        .advance_ms(started.1["timeLimitMs"].as_i64().unwrap() + 1);
    let late = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/answer"),
            Some(&ann),
            json!({ "option": 0 }),
        )
        .await;
    assert_problem(&late, 409, "quiz_time_expired", None);
    assert!(late.1.get("correctOption").is_none());
}
