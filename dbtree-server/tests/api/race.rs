//! 200 concurrent harvests of one lemon over HTTP.

use std::sync::Arc;

use reqwest::StatusCode;

use super::helpers::*;

pub(crate) async fn two_hundred_harvests_one_winner(app: &TestApp) {
    let mut players = Vec::new();
    for i in 0..200 {
        let token = app.sign_in(&format!("racer{i}@example.org")).await;
        let (attempt, challenge) = app.answer_right(&token, 6).await;
        players.push((token, attempt, click(&challenge, 300)));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(players.len()));
    let mut tasks = Vec::new();
    for (token, attempt, body) in players {
        let (client, address, barrier) = (app.client.clone(), app.address.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = client
                .post(format!("{address}/api/v1/quiz-attempts/{attempt}/harvest"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            parts(response).await
        }));
    }
    let (mut won, mut lost) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => won += 1,
            StatusCode::CONFLICT if body["code"] == "lemon_already_harvested" => lost += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((won, lost), (1, 199));
    assert_eq!(
        app.get("/api/v1/stats", None).await.1["lemonsHarvested"],
        3,
        "one reward paid"
    );
}
