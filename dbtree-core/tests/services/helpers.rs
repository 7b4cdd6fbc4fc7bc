//! Shared steps: sign in, answer, win, grant lemons.

use dbtree_adapters::memory::Sandbox;
use dbtree_core::boundary::{LedgerStore, PostRequest, User};
use dbtree_core::harvest::{Click, ClickChallenge, HarvestReceipt};
use dbtree_core::ids::AttemptId;
use dbtree_core::ledger::{EntryKind, IdempotencyKey};
use dbtree_core::lemons::Lemons;
use dbtree_core::service::App;
use dbtree_core::tree::Position;

/// Signs `email` in through the code from the recorded mail; returns the account and token.
pub(crate) async fn sign_in(sb: &Sandbox, app: &App, email: &str) -> (User, String) {
    app.accounts.request_code(email, None).await.unwrap();
    let code = sb.mailer.last_code_for(email).unwrap();
    let signed = app.accounts.verify(email, &code, None).await.unwrap();
    let token = signed.token.expose();
    let user = app.accounts.authenticate(&token).await.unwrap().user;
    (user, token)
}

/// The account as stored now.
pub(crate) async fn reload(app: &App, token: &str) -> User {
    app.accounts.authenticate(token).await.unwrap().user
}

pub(crate) fn pos(n: i64) -> Position {
    Position::new(n).unwrap()
}

/// Starts the quiz on `position` and answers it correctly.
pub(crate) async fn answer_correctly(
    sb: &Sandbox,
    app: &App,
    user: &User,
    position: Position,
) -> (AttemptId, ClickChallenge) {
    let quiz = app.tree.start_quiz(user, position).await.unwrap();
    let correct = sb.correct_option(quiz.attempt).await;
    sb.clock.advance_ms(2_000);
    let outcome = app
        .tree
        .answer(user.id, quiz.attempt, i64::from(correct))
        .await
        .unwrap();
    assert!(outcome.correct);
    (quiz.attempt, outcome.challenge.unwrap())
}

/// A click on the circle's centre at `offset_ms`.
pub(crate) fn on_circle(challenge: &ClickChallenge, offset_ms: i64) -> Click {
    let (x, y) = challenge.centre_at(offset_ms as f64);
    Click {
        click_offset_ms: offset_ms,
        x,
        y,
    }
}

/// Answers and clicks well: wins `position` if nobody was faster.
pub(crate) async fn win(
    sb: &Sandbox,
    app: &App,
    user: &User,
    position: Position,
) -> HarvestReceipt {
    let (attempt, challenge) = answer_correctly(sb, app, user, position).await;
    sb.clock.advance_ms(900);
    app.tree
        .harvest(user.id, attempt, &on_circle(&challenge, 800))
        .await
        .unwrap()
}

/// Grants lemons as an administrator would.
pub(crate) async fn grant(sb: &Sandbox, user: &User, amount: u32, reference: &str) {
    let request = PostRequest {
        user: user.id,
        kind: EntryKind::AdminGrant,
        amount: Lemons::new(amount),
        key: IdempotencyKey::admin_grant(reference).unwrap(),
        instance: None,
        at: dbtree_core::boundary::Clock::now(sb.clock.as_ref()),
    };
    sb.store.post(&request, &sb.policy.ledger).await.unwrap();
}

/// A prepared sandbox and its app.
pub(crate) async fn fresh() -> (Sandbox, App) {
    let sb = Sandbox::new();
    let app = sb.app();
    app.prepare().await.unwrap();
    (sb, app)
}

/// Balance equals the sum of entries for every user (deleted accounts included).
pub(crate) fn assert_ledger_consistent(sb: &Sandbox) {
    let entries = sb.store.all_entries();
    for (user, balance) in sb.store.all_balances() {
        let sum: i64 = entries
            .iter()
            .filter(|e| e.user == user)
            .map(|e| e.delta)
            .sum();
        assert_eq!(
            sum,
            i64::from(balance.get()),
            "ledger of {user} disagrees with its balance"
        );
    }
}

/// Takes lemons away as a charge would.
pub(crate) async fn spend(sb: &Sandbox, user: &User, amount: u32, reference: &str) {
    let request = PostRequest {
        user: user.id,
        kind: EntryKind::InstanceHourly,
        amount: Lemons::new(amount),
        key: IdempotencyKey::parse(format!("test:{reference}")).unwrap(),
        instance: None,
        at: dbtree_core::boundary::Clock::now(sb.clock.as_ref()),
    };
    sb.store.post(&request, &sb.policy.ledger).await.unwrap();
}
