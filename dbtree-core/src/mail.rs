//! What dbtree tells users by email, and how each message is rendered (user text HTML-escaped,
//! subjects stripped of line breaks).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::auth::{Email, SignInCode};
use crate::ids::UserId;
use crate::instance::InstanceName;
use crate::lemons::Lemons;
use crate::support::SupportInquiry;

/// A message to one recipient.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The recipient.
    pub to: Email,
    /// What to tell them.
    pub notification: Notification,
}

/// Something dbtree tells a user (or, for inquiries, an administrator).
#[derive(Clone, Debug)]
pub enum Notification {
    /// A one-time sign-in code.
    SignInCode {
        /// The code (redacted in `Debug`).
        code: SignInCode,
        /// Minutes it stays valid.
        valid_minutes: i64,
    },
    /// Welcome to a new user.
    Welcome {
        /// The bonus credited.
        bonus: Lemons,
    },
    /// Billing paused an instance.
    InstancePaused {
        /// The instance.
        name: InstanceName,
        /// Its hourly cost.
        hourly_cost: Lemons,
        /// The owner's balance.
        balance: Lemons,
        /// Minutes before it is deleted unless topped up.
        grace_minutes: i64,
    },
    /// The balance pays the running instances for fewer than the low-balance hours: what will
    /// be paused and when, and when deletion follows. Sent once per low-balance episode.
    LowBalance {
        /// The owner's balance.
        balance: Lemons,
        /// Lemons the running instances cost per hour together.
        hourly_burn: Lemons,
        /// Whole hours the balance pays at that burn.
        hours: u32,
        /// Each running instance with its planned pause and deletion, earliest first.
        pauses: Vec<InstanceDeadline>,
    },
    /// Billing resumed a paused instance.
    InstanceResumed {
        /// The instance.
        name: InstanceName,
        /// Its hourly cost.
        hourly_cost: Lemons,
    },
    /// Billing deleted an instance after its grace period.
    InstanceDeleted {
        /// The instance.
        name: InstanceName,
    },
    /// Confirmation of a support inquiry, to the user.
    SupportReceived {
        /// The inquiry.
        inquiry: SupportInquiry,
    },
    /// A support inquiry, to an administrator.
    SupportInquiry {
        /// Who asked.
        from: Email,
        /// Their account.
        user: UserId,
        /// The inquiry.
        inquiry: SupportInquiry,
    },
}

/// When billing will pause one instance, and when it would then be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceDeadline {
    /// The instance.
    pub name: InstanceName,
    /// When it will be paused.
    pub pauses_at: DateTime<Utc>,
    /// When it will be deleted unless the balance is topped up.
    pub deleted_at: DateTime<Utc>,
}

/// "2026-07-01 14:00 UTC".
fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn low_balance(
    balance: Lemons,
    hourly_burn: Lemons,
    hours: u32,
    pauses: &[InstanceDeadline],
) -> RenderedEmail {
    let lasts = plural(u64::from(hours), "hour", "hours");
    let mut paragraphs = vec![format!(
        "Your balance of {} pays your running databases ({} an hour together) for about {lasts} more.",
        plural(u64::from(balance.get()), "lemon", "lemons"),
        plural(u64::from(hourly_burn.get()), "lemon", "lemons"),
    )];
    for p in pauses {
        paragraphs.push(format!(
            "{} will be paused at about {} (scaled to zero; its data is kept). If your balance still cannot pay for it one hour later, at about {}, it is deleted with its data.",
            p.name,
            utc(p.pauses_at),
            utc(p.deleted_at),
        ));
    }
    paragraphs.push("To keep them: harvest lemons on the tree, or stop a database you do not need (a stopped database costs nothing and keeps its data).".into());
    message(
        format!("dbtree: your lemons last about {lasts}"),
        paragraphs,
    )
}

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no control characters.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body; every user-supplied text in it is escaped.
    pub html: String,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Makes text safe for a one-line header: control characters (CR, LF, …) become spaces, and the
/// result is at most 120 characters.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect()
}

fn page(paragraphs: &[String]) -> String {
    let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
    for p in paragraphs {
        let _ = write!(html, "<p>{}</p>", escape_html(p).replace('\n', "<br>"));
    }
    html.push_str("<p>— dbtree</p></body></html>");
    html
}

fn message(subject: String, paragraphs: Vec<String>) -> RenderedEmail {
    let mut text = paragraphs.join("\n\n");
    text.push_str("\n\n— dbtree\n");
    RenderedEmail {
        subject: header_safe(&subject),
        html: page(&paragraphs),
        text,
    }
}

/// Renders a notification.
pub fn render(notification: &Notification) -> RenderedEmail {
    match notification {
        Notification::SignInCode { code, valid_minutes } => message(
            format!("Your dbtree sign-in code: {}", code.expose()),
            vec![
                format!("Your sign-in code is {}.", code.expose()),
                format!("It is valid for {valid_minutes} minutes and works once. If you did not ask for it, ignore this message."),
            ],
        ),
        Notification::Welcome { bonus } => message(
            "Welcome to dbtree".into(),
            vec![format!("Welcome! {bonus} lemons are waiting on your balance. Answer quizzes on the lemon tree to harvest more, and spend them on databases.")],
        ),
        Notification::InstancePaused { name, hourly_cost, balance, grace_minutes } => message(
            format!("dbtree: {name} was paused"),
            vec![
                format!("Your instance {name} costs {hourly_cost} lemons an hour, but your balance is {balance}. It has been paused (scaled to zero); its data is kept."),
                format!("Harvest lemons within {grace_minutes} minutes and it resumes automatically; otherwise it will be deleted."),
            ],
        ),
        Notification::LowBalance { balance, hourly_burn, hours, pauses } => {
            low_balance(*balance, *hourly_burn, *hours, pauses)
        }
        Notification::InstanceResumed { name, hourly_cost } => message(
            format!("dbtree: {name} is running again"),
            vec![format!("Thanks for topping up: {name} is running again and was charged {hourly_cost} lemons for this hour.")],
        ),
        Notification::InstanceDeleted { name } => message(
            format!("dbtree: {name} was deleted"),
            vec![format!("Your paused instance {name} stayed without enough lemons for the whole grace period and has been deleted, with its data.")],
        ),
        Notification::SupportReceived { inquiry } => message(
            format!("dbtree support: we received \"{}\"", inquiry.subject()),
            vec![
                "Thanks for writing to us. We read every message and answer within two working days. Your message:".into(),
                inquiry.message().to_owned(),
            ],
        ),
        Notification::SupportInquiry { from, user, inquiry } => message(
            format!("[dbtree support] {} - {}", inquiry.category().as_str(), inquiry.subject()),
            vec![
                format!("From {from} (user {user}), category {}:", inquiry.category().as_str()),
                inquiry.subject().to_owned(),
                inquiry.message().to_owned(),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::SupportCategory;

    #[test]
    fn user_text_is_escaped_and_subjects_are_one_line() {
        let inquiry = SupportInquiry::new(
            SupportCategory::Bug,
            "Help\r\nBcc: victim@example.org",
            "<script>alert('x')</script> & more",
        )
        .unwrap();
        let mail = render(&Notification::SupportInquiry {
            from: Email::parse("ann@example.org").unwrap(),
            user: UserId::from_random_bytes([1; 16]),
            inquiry,
        });
        assert!(!mail.subject.contains('\n') && !mail.subject.contains('\r'));
        assert!(
            mail.html
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more")
        );
        assert!(!mail.html.contains("<script>"));
    }

    #[test]
    fn the_low_balance_warning_names_what_is_paused_and_deleted_and_when() {
        use chrono::TimeZone;
        let at = |h| Utc.with_ymd_and_hms(2026, 7, 1, h, 0, 0).unwrap();
        let mail = render(&Notification::LowBalance {
            balance: Lemons::new(3),
            hourly_burn: Lemons::new(2),
            hours: 1,
            pauses: vec![InstanceDeadline {
                name: InstanceName::parse("pg-small-1").unwrap(),
                pauses_at: at(14),
                deleted_at: at(15),
            }],
        });
        assert_eq!(mail.subject, "dbtree: your lemons last about 1 hour");
        for needle in [
            "3 lemons",
            "2 lemons an hour",
            "pg-small-1 will be paused at about 2026-07-01 14:00 UTC",
            "at about 2026-07-01 15:00 UTC, it is deleted with its data",
        ] {
            assert!(mail.text.contains(needle), "{needle} in {}", mail.text);
        }
    }

    #[test]
    fn the_code_is_in_subject_and_body() {
        let code = SignInCode::parse("042042").unwrap();
        let mail = render(&Notification::SignInCode {
            code,
            valid_minutes: 10,
        });
        assert!(mail.subject.contains("042042"));
        assert!(mail.text.contains("042042") && mail.text.contains("10 minutes"));
    }
}
