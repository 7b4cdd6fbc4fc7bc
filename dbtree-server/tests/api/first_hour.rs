//! The rules of the first hour (issue 16): the quiz lock released at once, the lag allowance,
//! the price rule, the runway and its warning, the engine's usage and the ledger naming
//! instances.

use dbtree_core::boundary::{Clock, EngineUsage};
use dbtree_core::harvest::ClickChallenge;
use dbtree_core::mail::Notification;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::helpers::*;

fn start_path(position: u8) -> String {
    format!("/api/v1/tree/{position}/quiz")
}

async fn start(app: &TestApp, token: &str, position: u8) -> (StatusCode, Value) {
    app.post(&start_path(position), Some(token), json!({}))
        .await
}

fn attempt_of(started: &(StatusCode, Value)) -> String {
    assert_eq!(started.0, StatusCode::CREATED, "{}", started.1);
    started.1["attemptId"].as_str().unwrap().to_owned()
}

pub(crate) async fn the_quiz_lock_is_released_at_once(app: &TestApp) {
    let ann = app.sign_in("ann@example.org").await;
    let first = start(app, &ann, 2).await;
    let attempt = attempt_of(&first);
    // another quiz meanwhile: refused, saying until when
    let busy = start(app, &ann, 3).await;
    assert_problem(&busy, 409, "quiz_in_progress", None);
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(
        time(&busy.1["details"]["until"]),
        time(&first.1["deadline"])
    );

    // abandoning frees the lock at once: the next start succeeds without waiting
    let abandon = format!("/api/v1/quiz-attempts/{attempt}");
    let gone = app.delete(&abandon, &ann).await;
    assert_eq!(gone.0, StatusCode::NO_CONTENT, "{}", gone.1);
    let second = attempt_of(&start(app, &ann, 3).await);
    // repeating the abandon changes nothing, and does not touch the new quiz's lock
    assert_eq!(app.delete(&abandon, &ann).await.0, StatusCode::NO_CONTENT);
    assert_problem(&start(app, &ann, 5).await, 409, "quiz_in_progress", None);
    // an abandoned quiz cannot be answered any more
    let option = app.correct_option(&attempt).await;
    assert_problem(
        &app.post(
            &format!("{abandon}/answer"),
            Some(&ann),
            json!({ "option": option }),
        )
        .await,
        409,
        "quiz_abandoned",
        None,
    );
    // someone else's attempt, or a malformed id
    let bob = app.sign_in("bob@example.org").await;
    assert_problem(
        &app.delete(&format!("/api/v1/quiz-attempts/{second}"), &bob)
            .await,
        404,
        "attempt_not_found",
        None,
    );
    assert_problem(
        &app.delete("/api/v1/quiz-attempts/nope", &bob).await,
        400,
        "invalid_id",
        Some("attemptId"),
    );

    // a late answer frees it at once too (the lock's own expiry is 3 s later still)
    let limit = start_limit_ms(app, &second).await;
    app.clock.advance_ms(limit + 1);
    assert_problem(
        &app.post(
            &format!("/api/v1/quiz-attempts/{second}/answer"),
            Some(&ann),
            json!({ "option": 0 }),
        )
        .await,
        409,
        "quiz_time_expired",
        None,
    );
    let third = attempt_of(&start(app, &ann, 5).await);

    // and so does the deadline passing unanswered
    let limit = start_limit_ms(app, &third).await;
    app.clock.advance_ms(limit + 1);
    let fourth = attempt_of(&start(app, &ann, 6).await);

    // an answer in time (a wrong one here) releases it as well
    let right = app.correct_option(&fourth).await;
    let wrong = if right == 0 { 1 } else { 0 };
    let verdict = app
        .post(
            &format!("/api/v1/quiz-attempts/{fourth}/answer"),
            Some(&ann),
            json!({ "option": wrong }),
        )
        .await;
    assert_eq!(verdict.0, StatusCode::OK, "{}", verdict.1);
    attempt_of(&start(app, &ann, 7).await);
}

/// The time limit of an attempt's quiz, ms.
async fn start_limit_ms(app: &TestApp, attempt: &str) -> i64 {
    use std::str::FromStr;
    let stored = app
        .store
        .attempt(dbtree_core::ids::AttemptId::from_str(attempt).unwrap())
        .await
        .unwrap()
        .unwrap();
    stored.time_limit.num_milliseconds()
}

fn challenge_of(value: &Value) -> ClickChallenge {
    serde_json::from_value(value.clone()).unwrap()
}

/// The first offset (after `from`) at which the circle is more than `apart` away from where it
/// was `late_ms` earlier.
fn fast_moment(c: &ClickChallenge, from: i64, late_ms: i64, apart: f64) -> i64 {
    (from..4900)
        .find(|t| {
            let (x, y) = c.centre_at(*t as f64);
            let (lx, ly) = c.centre_at((t - late_ms) as f64);
            (x - lx).hypot(y - ly) > apart
        })
        .expect("the circle moves fast at some moment")
}

pub(crate) async fn a_click_within_the_lag_allowance_wins(app: &TestApp) {
    // position 3 carries a hard quiz on a fresh tree: the fastest circle
    let ann = app.sign_in("ann@example.org").await;
    let started = start(app, &ann, 3).await;
    assert_eq!(started.1["difficulty"], "hard", "{}", started.1);
    assert_eq!(started.1["circleSpeed"], "fast");
    let attempt = attempt_of(&started);
    let option = app.correct_option(&attempt).await;
    let answer = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/answer"),
            Some(&ann),
            json!({ "option": option }),
        )
        .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let raw = &answer.1["challenge"];
    assert_eq!(raw["hitTolerance"], 1.1, "{raw}");
    assert_eq!(raw["lagAllowanceMs"], 120, "{raw}");
    let c = challenge_of(raw);
    assert!(
        [(2, 3), (3, 2)].contains(&(c.fx, c.fy)),
        "hard is fast: {raw}"
    );
    // where the circle was 100 ms before the click, at a moment it really moved away
    let t = fast_moment(&c, 500, 100, 0.15);
    let (x, y) = c.centre_at((t - 100) as f64);
    let (nx, ny) = c.centre_at(t as f64);
    assert!((x - nx).hypot(y - ny) > c.allowed_distance(), "really late");
    app.clock.advance_ms(t + 50);
    let won = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&ann),
            json!({ "clickOffsetMs": t, "x": x, "y": y }),
        )
        .await;
    assert_eq!(won.0, StatusCode::OK, "a click 100 ms late wins: {}", won.1);

    // 250 ms late is not lag: missed
    let bob = app.sign_in("bob@example.org").await;
    let started = start(app, &bob, 7).await;
    assert_eq!(started.1["circleSpeed"], "fast");
    let attempt = attempt_of(&started);
    let option = app.correct_option(&attempt).await;
    let answer = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/answer"),
            Some(&bob),
            json!({ "option": option }),
        )
        .await;
    let c = challenge_of(&answer.1["challenge"]);
    let t = (500..4900)
        .find(|t| {
            let (x, y) = c.centre_at((t - 250) as f64);
            c.closest_distance(*t, x, y) > c.allowed_distance() * 1.5
        })
        .unwrap();
    let (x, y) = c.centre_at((t - 250) as f64);
    app.clock.advance_ms(t + 50);
    let missed = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/harvest"),
            Some(&bob),
            json!({ "clickOffsetMs": t, "x": x, "y": y }),
        )
        .await;
    assert_problem(&missed, 422, "click_missed", None);
    let allowed = missed.1["details"]["allowed"].as_f64().unwrap();
    assert!((allowed - 0.088).abs() < 1e-9, "{}", missed.1);

    // easy quizzes get the slowest circle
    let cy = app.sign_in("cy@example.org").await;
    let started = start(app, &cy, 0).await;
    assert_eq!(
        (
            started.1["difficulty"].as_str(),
            started.1["circleSpeed"].as_str()
        ),
        (Some("easy"), Some("slow"))
    );
    let attempt = attempt_of(&started);
    let option = app.correct_option(&attempt).await;
    let answer = app
        .post(
            &format!("/api/v1/quiz-attempts/{attempt}/answer"),
            Some(&cy),
            json!({ "option": option }),
        )
        .await;
    assert_eq!(
        (
            answer.1["challenge"]["fx"].as_u64(),
            answer.1["challenge"]["fy"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

async fn quote(app: &TestApp, engine: &str, cpu: f64, memory: u32, disk: u32) -> (u64, u64) {
    let q = app
        .post(
            "/api/v1/quotes",
            None,
            json!({ "engine": engine, "resources": { "cpu": cpu, "memoryMib": memory, "diskGib": disk } }),
        )
        .await;
    assert_eq!(q.0, StatusCode::OK, "{}", q.1);
    (
        q.1["creationCost"].as_u64().unwrap(),
        q.1["hourlyCost"].as_u64().unwrap(),
    )
}

pub(crate) async fn no_spec_costs_less_than_a_preset_it_contains(app: &TestApp) {
    // engine, vCPU, MiB, GiB, (creation, hourly)
    type Row<'a> = (&'a str, f64, u32, u32, (u64, u64));
    let table: [Row; 6] = [
        // equal to a preset: exactly its price (the formula would say 10/1 and 20/1)
        ("postgresql", 0.25, 512, 5, (10, 2)),
        ("postgresql", 0.1, 256, 2, (5, 1)),
        ("redis", 0.1, 128, 1, (3, 1)),
        // a little more than a preset: never less than it
        ("postgresql", 0.25, 512, 6, (10, 2)),
        ("redis", 0.5, 512, 5, (12, 2)),
        // contains no preset (less disk than mongodb tiny): the formula
        ("mongodb", 2.0, 4096, 1, (150, 15)),
    ];
    for (engine, cpu, memory, disk, want) in table {
        assert_eq!(
            quote(app, engine, cpu, memory, disk).await,
            want,
            "{engine} {cpu} {memory} {disk}"
        );
    }
    // what creation debits is the quote: a custom copy of tiny costs 5, as the preset does
    let ann = app.sign_in("ann@example.org").await;
    let created = app
        .post(
            "/api/v1/instances",
            Some(&ann),
            json!({ "name": "pg-copy", "engine": "postgresql", "resources": { "cpu": 0.1, "memoryMib": 256, "diskGib": 2 } }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["instance"]["price"]["creationCost"], 5);
    assert_eq!(app.get("/api/v1/me", Some(&ann)).await.1["balance"], 10);
}

async fn wait_running(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..100 {
        let detail = app
            .get(&format!("/api/v1/instances/{id}"), Some(token))
            .await;
        if detail.1["status"] == "running" {
            return detail.1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{id} never ran");
}

fn low_balance_mails(app: &TestApp, to: &str) -> Vec<Notification> {
    app.mailer
        .sent()
        .into_iter()
        .filter(|e| e.to.as_str() == to)
        .map(|e| e.notification)
        .filter(|n| matches!(n, Notification::LowBalance { .. }))
        .collect()
}

pub(crate) async fn the_runway_and_its_warning(app: &TestApp) {
    let ann = app.sign_in("ann@example.org").await;
    let me = app.get("/api/v1/me", Some(&ann)).await.1;
    assert_eq!(
        (&me["hourlyBurn"], &me["lowBalance"], &me["lowBalanceHours"]),
        (&json!(0), &json!(false), &json!(3))
    );
    assert!(me.get("runwayHours").is_none(), "nothing runs: {me}");
    assert_eq!(me["pauseGraceMinutes"], 60);
    assert_eq!(me["instanceLimit"], 2);

    // PostgreSQL small: 10 to create from 15, 2 lemons an hour
    let created = app
        .post(
            "/api/v1/instances",
            Some(&ann),
            json!({ "name": "pg-main", "engine": "postgresql", "preset": "small" }),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let id = created.1["instance"]["id"].as_str().unwrap().to_owned();
    let detail = wait_running(app, &ann, &id).await;
    let me = app.get("/api/v1/me", Some(&ann)).await.1;
    assert_eq!(me["balance"], 5);
    assert_eq!(me["hourlyBurn"], 2);
    assert_eq!(me["runwayHours"], 2, "5 lemons at 2 an hour: {me}");
    assert_eq!(me["lowBalance"], true);
    // this hour is still to be charged (3 left), the next one too (1 left), then paused
    let now = app.clock.now();
    let hour = chrono::DateTime::from_timestamp(now.timestamp() / 3600 * 3600, 0).unwrap();
    let pause = hour + chrono::TimeDelta::hours(2);
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(at(&me["runwayEndsAt"]), pause, "{me}");
    assert_eq!(at(&detail["pausesAt"]), pause, "{detail}");
    assert_eq!(
        at(&detail["deletesAt"]),
        pause + chrono::TimeDelta::hours(1)
    );
    let listed = app.get("/api/v1/instances", Some(&ann)).await.1;
    assert_eq!(listed[0]["pausesAt"], detail["pausesAt"]);

    // the billing pass charges this hour and warns once, naming what is paused and deleted when
    let report = app.state.app.billing.run_pass().await.unwrap();
    assert_eq!((report.charged, report.low_balance_warnings), (1, 1));
    let mails = low_balance_mails(app, "ann@example.org");
    assert_eq!(mails.len(), 1);
    let Notification::LowBalance {
        balance,
        hourly_burn,
        hours,
        pauses,
    } = &mails[0]
    else {
        unreachable!()
    };
    assert_eq!((balance.get(), hourly_burn.get(), *hours), (3, 2, 1));
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].name.as_str(), "pg-main");
    assert_eq!(pauses[0].pauses_at, pause);
    assert_eq!(pauses[0].deleted_at, pause + chrono::TimeDelta::hours(1));
    // still low at the next pass: no second email in the same episode
    let report = app.state.app.billing.run_pass().await.unwrap();
    assert_eq!(report.low_balance_warnings, 0);
    assert_eq!(low_balance_mails(app, "ann@example.org").len(), 1);

    // topped up: the episode ends; low again later: a new episode warns again
    app.grant(&ann, 40).await;
    app.state.app.billing.run_pass().await.unwrap();
    let me = app.get("/api/v1/me", Some(&ann)).await.1;
    assert_eq!(
        (&me["lowBalance"], &me["runwayHours"]),
        (&json!(false), &json!(21))
    );
    assert_eq!(me["balance"], 43, "{me}");
    // an hour at a time, the balance drains until it is low again
    let mut warned = 0;
    for _ in 0..30 {
        app.clock.advance_ms(3600 * 1000);
        warned += app
            .state
            .app
            .billing
            .run_pass()
            .await
            .unwrap()
            .low_balance_warnings;
        if warned > 0 {
            break;
        }
    }
    assert_eq!(warned, 1, "a new episode warns again");
    assert_eq!(low_balance_mails(app, "ann@example.org").len(), 2);

    // the ledger names the instance
    let page = app
        .get("/api/v1/me/transactions?limit=100", Some(&ann))
        .await
        .1;
    let named: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["instanceId"] == json!(id))
        .collect();
    assert!(named.len() >= 3, "{page}");
    assert!(
        named.iter().all(|t| t["instanceName"] == "pg-main"),
        "{page}"
    );

    // stopped: nothing burns
    let stopped = app
        .post(
            &format!("/api/v1/instances/{id}/stop"),
            Some(&ann),
            json!({}),
        )
        .await;
    assert_eq!(stopped.0, StatusCode::OK, "{}", stopped.1);
    let me = app.get("/api/v1/me", Some(&ann)).await.1;
    assert_eq!(
        (&me["hourlyBurn"], &me["lowBalance"]),
        (&json!(0), &json!(false))
    );
}

pub(crate) async fn usage_comes_from_the_engine(app: &TestApp) {
    let ann = app.sign_in("ann@example.org").await;
    let created = app
        .post(
            "/api/v1/instances",
            Some(&ann),
            json!({ "name": "cache", "engine": "redis", "preset": "tiny" }),
        )
        .await;
    let id = created.1["instance"]["id"].as_str().unwrap().to_owned();
    let detail = wait_running(app, &ann, &id).await;
    let port = detail["nodePort"].as_u64().unwrap();
    assert_eq!(
        detail["connection"]["cli"],
        json!({ "tool": "redis-cli", "command": format!("redis-cli -h db.example.test -p {port} --user dbtree --askpass") })
    );
    let path = format!("/api/v1/instances/{id}/usage");
    let usage = app.get(&path, Some(&ann)).await;
    assert_eq!(usage.0, StatusCode::OK, "{}", usage.1);
    assert_eq!(usage.1["available"], false, "{}", usage.1);
    assert!(usage.1["reason"].as_str().unwrap().contains("nothing yet"));
    assert_eq!(usage.1["memoryLimitMib"], 128);
    let engine = EngineUsage {
        memory_used_bytes: Some(1_048_576),
        disk_used_bytes: Some(4096),
        connections: Some(3),
    };
    assert!(
        app.cluster
            .set_usage(std::str::FromStr::from_str(&id).unwrap(), engine)
    );
    let usage = app.get(&path, Some(&ann)).await.1;
    assert_eq!(
        (
            &usage["available"],
            &usage["memoryUsedBytes"],
            &usage["diskUsedBytes"],
            &usage["connections"],
            &usage["diskLimitGib"]
        ),
        (
            &json!(true),
            &json!(1_048_576),
            &json!(4096),
            &json!(3),
            &json!(1)
        )
    );
    let stopped = app
        .post(
            &format!("/api/v1/instances/{id}/stop"),
            Some(&ann),
            json!({}),
        )
        .await;
    assert_eq!(stopped.0, StatusCode::OK);
    let usage = app.get(&path, Some(&ann)).await.1;
    assert_eq!(usage["available"], false);
    assert!(
        usage["reason"].as_str().unwrap().contains("stopped"),
        "{usage}"
    );
    let bob = app.sign_in("bob@example.org").await;
    assert_problem(
        &app.get(&path, Some(&bob)).await,
        404,
        "instance_not_found",
        None,
    );
}
