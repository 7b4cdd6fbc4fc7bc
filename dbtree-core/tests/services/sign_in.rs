//! Sign-in codes, sessions and accounts.

use std::net::{IpAddr, Ipv4Addr};

use chrono::TimeDelta;
use dbtree_core::auth::{CodeIssueRefusal, EmailError};
use dbtree_core::ledger::EntryKind;
use dbtree_core::service::{AuthError, RequestCodeError, VerifyError};

use super::helpers::*;

fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn five_wrong_codes_lock_the_code() {
    let (sb, app) = fresh().await;
    app.accounts
        .request_code("bob@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("bob@example.org").unwrap();
    for left in (0..5).rev() {
        let err = app
            .accounts
            .verify("bob@example.org", &wrong(&code), None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::WrongCode { attempts_left } if attempts_left == left),
            "{err:?}"
        );
    }
    let err = app
        .accounts
        .verify("bob@example.org", &code, None)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::CodeLocked), "{err:?}");
    // a new code (after the resend gap) works
    sb.clock.advance(TimeDelta::seconds(60));
    app.accounts
        .request_code("bob@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("bob@example.org").unwrap();
    assert!(
        app.accounts
            .verify("bob@example.org", &code, None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn codes_are_single_use_and_expire() {
    let (sb, app) = fresh().await;
    app.accounts
        .request_code("cy@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("cy@example.org").unwrap();
    app.accounts
        .verify("cy@example.org", &code, None)
        .await
        .unwrap();
    let again = app
        .accounts
        .verify("cy@example.org", &code, None)
        .await
        .unwrap_err();
    assert!(matches!(again, VerifyError::NoCode), "{again:?}");

    sb.clock.advance(TimeDelta::seconds(60));
    app.accounts
        .request_code("cy@example.org", None)
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("cy@example.org").unwrap();
    sb.clock.advance(TimeDelta::minutes(10));
    let late = app
        .accounts
        .verify("cy@example.org", &code, None)
        .await
        .unwrap_err();
    assert!(matches!(late, VerifyError::CodeExpired), "{late:?}");
}

#[tokio::test]
async fn resend_gap_and_hourly_allowance_per_email() {
    let (sb, app) = fresh().await;
    app.accounts
        .request_code("dee@example.org", None)
        .await
        .unwrap();
    sb.clock.advance(TimeDelta::seconds(59));
    let err = app
        .accounts
        .request_code("dee@example.org", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestCodeError::Refused(CodeIssueRefusal::ResendTooSoon {
                retry_after_secs: 1
            })
        ),
        "{err:?}"
    );
    for _ in 0..9 {
        sb.clock.advance(TimeDelta::seconds(61));
        app.accounts
            .request_code("dee@example.org", None)
            .await
            .unwrap();
    }
    sb.clock.advance(TimeDelta::seconds(61));
    let err = app
        .accounts
        .request_code("dee@example.org", None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestCodeError::Refused(CodeIssueRefusal::TooManyCodes { .. })
        ),
        "ten codes per email per hour: {err:?}"
    );
    // another address is not affected
    app.accounts
        .request_code("eve@example.org", None)
        .await
        .unwrap();
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, last)))
}

#[tokio::test]
async fn a_stranger_cannot_lock_a_user_out() {
    let (sb, app) = fresh().await;
    // the stranger, from one address, asks for the victim's codes as fast as the rules allow
    let mut refused = None;
    for _ in 0..20 {
        match app.accounts.request_code("vic@example.org", ip(66)).await {
            Ok(_) => {}
            Err(e) => refused = Some(e),
        }
        sb.clock.advance(TimeDelta::seconds(61));
    }
    assert!(
        matches!(
            refused,
            Some(RequestCodeError::Refused(
                CodeIssueRefusal::TooManyCodes { .. }
            ))
        ),
        "{refused:?}"
    );
    // the victim, from their own address, still gets a code and signs in
    app.accounts
        .request_code("vic@example.org", ip(7))
        .await
        .unwrap();
    let code = sb.mailer.last_code_for("vic@example.org").unwrap();
    app.accounts
        .verify("vic@example.org", &code, ip(7))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_office_behind_one_address_can_sign_in() {
    let (sb, app) = fresh().await;
    for i in 0..30 {
        let email = format!("staff{i}@example.org");
        app.accounts.request_code(&email, ip(1)).await.unwrap();
        let code = sb.mailer.last_code_for(&email).unwrap();
        app.accounts.verify(&email, &code, ip(1)).await.unwrap();
    }
    // the 31st code request from that address within the hour is refused
    let err = app
        .accounts
        .request_code("staff30@example.org", ip(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestCodeError::RateLimited { retry_after_secs } if retry_after_secs > 3500),
        "{err:?}"
    );
    // another address is not affected
    app.accounts
        .request_code("staff30@example.org", ip(2))
        .await
        .unwrap();
}

#[tokio::test]
async fn per_ip_limit_on_verifications() {
    let (_sb, app) = fresh().await;
    for _ in 0..30 {
        let _ = app.accounts.verify("u0@example.org", "000000", ip(9)).await;
    }
    let err = app
        .accounts
        .verify("u0@example.org", "000000", ip(9))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::RateLimited { .. }), "{err:?}");
}

#[tokio::test]
async fn requesting_a_code_never_touches_sessions() {
    let (sb, app) = fresh().await;
    let (_, token) = sign_in(&sb, &app, "fay@example.org").await;
    sb.clock.advance(TimeDelta::seconds(60));
    // anyone can ask for a code for this address; the signed-in device stays signed in
    app.accounts
        .request_code("fay@example.org", None)
        .await
        .unwrap();
    assert!(app.accounts.authenticate(&token).await.is_ok());
}

#[tokio::test]
async fn one_session_per_device_and_logout_everywhere() {
    let (sb, app) = fresh().await;
    let (_, phone) = sign_in(&sb, &app, "gus@example.org").await;
    sb.clock.advance(TimeDelta::seconds(60));
    let (user, laptop) = sign_in(&sb, &app, "gus@example.org").await;
    assert_ne!(phone, laptop);
    let session = app.accounts.authenticate(&phone).await.unwrap().session;
    app.accounts.logout(&session).await.unwrap();
    assert!(matches!(
        app.accounts.authenticate(&phone).await,
        Err(AuthError::InvalidSession)
    ));
    assert!(app.accounts.authenticate(&laptop).await.is_ok());
    sb.clock.advance(TimeDelta::seconds(60));
    let (_, tablet) = sign_in(&sb, &app, "gus@example.org").await;
    assert_eq!(app.accounts.logout_everywhere(user.id).await.unwrap(), 2);
    assert!(app.accounts.authenticate(&laptop).await.is_err());
    assert!(app.accounts.authenticate(&tablet).await.is_err());
}

#[tokio::test]
async fn sessions_last_24_hours() {
    let (sb, app) = fresh().await;
    let (_, token) = sign_in(&sb, &app, "hal@example.org").await;
    sb.clock
        .advance(TimeDelta::hours(24) - TimeDelta::seconds(1));
    assert!(app.accounts.authenticate(&token).await.is_ok());
    sb.clock.advance(TimeDelta::seconds(1));
    assert!(matches!(
        app.accounts.authenticate(&token).await,
        Err(AuthError::InvalidSession)
    ));
    assert!(matches!(
        app.accounts.authenticate("not-a-token").await,
        Err(AuthError::MalformedToken)
    ));
}

#[tokio::test]
async fn the_welcome_bonus_is_paid_once_per_email_ever() {
    let (sb, app) = fresh().await;
    let (user, token) = sign_in(&sb, &app, "ivy@example.org").await;
    assert_eq!(user.balance.get(), 15);
    app.accounts.delete_account(user.id).await.unwrap();
    assert!(app.accounts.authenticate(&token).await.is_err());
    sb.clock.advance(TimeDelta::seconds(60));
    let (again, _) = sign_in(&sb, &app, "IVY@example.org").await;
    assert_ne!(again.id, user.id);
    assert_eq!(again.balance.get(), 0, "no second welcome bonus");
    // the deleted account's ledger is kept
    let entries = sb.store.all_entries();
    assert!(
        entries
            .iter()
            .any(|e| e.user == user.id && e.kind == EntryKind::WelcomeBonus)
    );
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn the_welcome_bonus_is_paid_once_per_canonical_mailbox() {
    let (sb, app) = fresh().await;
    let (first, _) = sign_in(&sb, &app, "j.o.e@gmail.com").await;
    assert_eq!(first.balance.get(), 15);
    for variant in ["joe@gmail.com", "jo.e+db@googlemail.com", "joe+x@gmail.com"] {
        let (other, _) = sign_in(&sb, &app, variant).await;
        assert_ne!(other.id, first.id, "{variant} is its own account");
        assert_eq!(
            other.email.as_str(),
            variant,
            "the identity is the address given"
        );
        assert_eq!(other.balance.get(), 0, "{variant}: no second welcome bonus");
    }
    let (elsewhere, _) = sign_in(&sb, &app, "j.o.e@example.org").await;
    assert_eq!(elsewhere.balance.get(), 15, "dots matter outside Gmail");
    let (tagged, _) = sign_in(&sb, &app, "j.o.e+tag@example.org").await;
    assert_eq!(tagged.balance.get(), 0, "tags never make a new mailbox");
    let bonuses = sb
        .store
        .all_entries()
        .iter()
        .filter(|e| e.kind == EntryKind::WelcomeBonus)
        .count();
    assert_eq!(bonuses, 2);
    assert_ledger_consistent(&sb);
}

#[tokio::test]
async fn bad_addresses_are_refused_and_mail_failures_leave_nothing_behind() {
    let (sb, app) = fresh().await;
    assert!(matches!(
        app.accounts.request_code("x@mailinator.com", None).await,
        Err(RequestCodeError::InvalidEmail(
            EmailError::DisposableDomain { .. }
        ))
    ));
    assert!(matches!(
        app.accounts.request_code("nope", None).await,
        Err(RequestCodeError::InvalidEmail(EmailError::Malformed))
    ));
    assert!(matches!(
        app.accounts.verify("ok@example.org", "12ab56", None).await,
        Err(VerifyError::InvalidCode(_))
    ));
    sb.mailer.set_failing(true);
    assert!(matches!(
        app.accounts.request_code("jo@example.org", None).await,
        Err(RequestCodeError::MailUnavailable(_))
    ));
    sb.mailer.set_failing(false);
    // the undelivered code was withdrawn: no resend gap applies
    app.accounts
        .request_code("jo@example.org", None)
        .await
        .unwrap();
}
