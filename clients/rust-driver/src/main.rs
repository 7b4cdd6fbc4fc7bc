//! Drives a running dbtree server through the Rust client that progenitor generated from
//! `openapi/dbtree.json`: sign in with the code from the server's log, win a lemon (answer the
//! quiz, click the moving circle), create the cheapest instance, check it answers, delete it.
//!
//! Usage: `dbtree-rust-driver <base-url> <server-log> <email>`, e.g.
//! `dbtree-rust-driver http://127.0.0.1:8080 server.log rust@example.org`. Exits non-zero with
//! the failed step on the first wrong answer.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use dbtree_core::harvest::ClickChallenge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The client progenitor generated at build time (see `build.rs`).
#[allow(clippy::all, dead_code, unused_imports, missing_debug_implementations)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
}

use generated::types;

type Step<T> = Result<T, String>;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, log, email] = args.as_slice() else {
        eprintln!("usage: dbtree-rust-driver <base-url> <server-log> <email>");
        return ExitCode::from(2);
    };
    match drive(base, log, email).await {
        Ok(()) => {
            println!("rust driver: passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rust driver: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn drive(base: &str, log: &str, email: &str) -> Step<()> {
    // The API lives under /api; the generated paths start at /v1.
    let api = format!("{}/api", base.trim_end_matches('/'));
    let anonymous = generated::Client::new(&api);

    // 1. Sign in with the code the console mailer wrote to the server's log.
    let request = types::CodeRequest {
        email: email.parse().map_err(|e| format!("email: {e}"))?,
    };
    anonymous
        .request_code(&request)
        .await
        .map_err(|e| format!("request code: {e}"))?;
    let code = code_from_log(log, email).await?;
    let session = anonymous
        .create_session(&types::SessionRequest {
            email: email.parse().map_err(|e| format!("email: {e}"))?,
            code: code.parse().map_err(|e| format!("code: {e}"))?,
        })
        .await
        .map_err(|e| format!("create session: {e}"))?
        .into_inner();
    let welcome = session.profile.balance;
    expect("a new user", session.is_new_user)?;
    expect(&format!("welcome bonus 15, got {welcome}"), welcome == 15)?;
    println!("signed in as {email}: balance {welcome}");

    let client = authorised(&api, &session.token)?;

    // 2. Win a ripe lemon.
    let tree = client
        .get_tree()
        .await
        .map_err(|e| format!("tree: {e}"))?
        .into_inner();
    let position = tree
        .lemons
        .iter()
        .find(|l| l.state == types::LemonStateDto::Ripe)
        .map(|l| l.position)
        .ok_or("no ripe lemon on the tree")?;
    let (attempt, challenge) = answer_right(&client, position).await?;
    // Click 700 ms into the window, where core's path function puts the circle then.
    let challenge = ClickChallenge {
        window_ms: challenge.window_ms,
        period_ms: challenge.period_ms,
        fx: challenge.fx,
        fy: challenge.fy,
        phase: challenge.phase,
        radius: challenge.radius,
        hit_tolerance: challenge.hit_tolerance,
        lag_allowance_ms: challenge.lag_allowance_ms,
    };
    let offset_ms = 700;
    tokio::time::sleep(Duration::from_millis(offset_ms as u64)).await;
    let (x, y) = challenge.centre_at(offset_ms as f64);
    let won = client
        .harvest(
            &attempt,
            &types::HarvestRequest {
                click_offset_ms: offset_ms,
                x,
                y,
            },
        )
        .await
        .map_err(|e| format!("harvest: {e}"))?
        .into_inner();
    expect(&format!("reward 3, got {}", won.reward), won.reward == 3)?;
    expect(
        &format!("balance 18, got {}", won.balance),
        won.balance == welcome + 3,
    )?;
    println!(
        "won lemon {position}: +{} → balance {}",
        won.reward, won.balance
    );

    // 3. Create the cheapest preset the balance affords (creation cost + one hour).
    let presets = client
        .list_presets()
        .await
        .map_err(|e| format!("presets: {e}"))?
        .into_inner();
    let cheapest = presets
        .iter()
        .min_by_key(|p| {
            (
                p.price.creation_cost + p.price.hourly_cost,
                p.price.hourly_cost,
            )
        })
        .ok_or("empty preset catalogue")?;
    let needed = cheapest.price.creation_cost + cheapest.price.hourly_cost;
    expect(
        &format!("balance {} covers {needed}", won.balance),
        won.balance >= needed,
    )?;
    let name = format!("rust-driver-{}", std::process::id());
    let created = client
        .create_instance(&types::CreateInstanceRequest {
            engine: cheapest.engine,
            name: name.parse().map_err(|e| format!("name: {e}"))?,
            preset: Some(cheapest.preset),
            resources: None,
        })
        .await
        .map_err(|e| format!("create instance: {e}"))?
        .into_inner();
    let password = created.credentials.password.clone();
    let username = created.credentials.username.clone();
    expect("a 24-character password", password.chars().count() == 24)?;
    println!(
        "created {} {} {name}: {} lemons",
        cheapest.engine, cheapest.preset, cheapest.price.creation_cost
    );
    let profile = client
        .get_profile()
        .await
        .map_err(|e| format!("profile: {e}"))?
        .into_inner();
    expect(
        &format!("balance after creation {}", profile.balance),
        profile.balance == won.balance - cheapest.price.creation_cost,
    )?;

    // 4. Wait until it runs, and (for Redis) check it answers with the one-time password.
    let id = created.instance.id.clone();
    let port = wait_running(&client, &id).await?;
    if cheapest.engine == types::EngineDto::Redis {
        redis_answers(port, &username, &password).await?;
        println!("redis on port {port} answers PONG with the one-time password");
    }
    client
        .delete_instance(&id)
        .await
        .map_err(|e| format!("delete instance: {e}"))?;
    println!("deleted {name}");
    Ok(())
}

fn expect(what: &str, ok: bool) -> Step<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("expected {what}"))
    }
}

/// A generated client that sends the session token with every request.
fn authorised(api: &str, token: &str) -> Step<generated::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| format!("token header: {e}"))?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    Ok(generated::Client::new_with_client(api, http))
}

/// Starts the quiz of `position` and answers it right. The right option is revealed only after
/// an answer, so a wrong first guess is followed by a second attempt with the revealed option.
async fn answer_right(
    client: &generated::Client,
    position: u8,
) -> Step<(String, types::ChallengeDto)> {
    let mut option = 0;
    for _ in 0..2 {
        let quiz = client
            .start_quiz(i64::from(position))
            .await
            .map_err(|e| format!("start quiz: {e}"))?
            .into_inner();
        let answer = client
            .answer_quiz(&quiz.attempt_id, &types::AnswerRequest { option })
            .await
            .map_err(|e| format!("answer: {e}"))?
            .into_inner();
        match (answer.correct, answer.challenge) {
            (true, Some(challenge)) => return Ok((quiz.attempt_id, challenge)),
            (true, None) => return Err("a right answer came without a challenge".into()),
            (false, _) => option = i64::from(answer.correct_option),
        }
    }
    Err("the revealed option was not accepted".into())
}

/// The six-digit code from the server's log line `sign-in code for <email>: <code>`.
async fn code_from_log(log: &str, email: &str) -> Step<String> {
    let needle = format!("sign-in code for {email}: ");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let text = std::fs::read_to_string(log).map_err(|e| format!("read {log}: {e}"))?;
        if let Some(code) = text.lines().rev().find_map(|line| {
            let at = line.find(&needle)?;
            Some(
                line[at + needle.len()..]
                    .chars()
                    .take(6)
                    .collect::<String>(),
            )
        }) {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no sign-in code for {email} in {log}"))
}

async fn wait_running(client: &generated::Client, id: &str) -> Step<u16> {
    let started = Instant::now();
    loop {
        let detail = client
            .get_instance(id)
            .await
            .map_err(|e| format!("instance: {e}"))?
            .into_inner();
        match detail.status {
            types::StatusDto::Running => {
                return detail
                    .node_port
                    .ok_or_else(|| "a running instance without a port".into());
            }
            types::StatusDto::Provisioning if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => {
                return Err(format!(
                    "instance is {other} ({})",
                    detail.status_reason.unwrap_or_default()
                ));
            }
        }
    }
}

/// `AUTH <username> <password>` (the tenant's ACL user) then `PING` over RESP, expecting `+OK`
/// and `+PONG`.
async fn redis_answers(port: u16, username: &str, password: &str) -> Step<()> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to port {port}: {e}"))?;
    let request = format!(
        "*3\r\n$4\r\nAUTH\r\n${}\r\n{username}\r\n${}\r\n{password}\r\n*1\r\n$4\r\nPING\r\n",
        username.len(),
        password.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = Vec::new();
    let started = Instant::now();
    while !String::from_utf8_lossy(&reply).contains("+PONG") {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .map_err(|_| "redis did not answer".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if read == 0 || started.elapsed() > Duration::from_secs(5) {
            break;
        }
        reply.extend_from_slice(&buf[..read]);
    }
    let reply = String::from_utf8_lossy(&reply);
    expect(
        &format!("+OK then +PONG, got {reply:?}"),
        reply == "+OK\r\n+PONG\r\n",
    )
}
