//! Email addresses: trimmed, lower-cased, syntax-checked, and refused for disposable domains.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A normalised email address (trimmed, lower-case ASCII, not from a disposable domain).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why a text is not an acceptable email address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but whitespace.
    #[error("email is empty")]
    Empty,
    /// Longer than [`Email::MAX_LEN`].
    #[error("email is longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Not of the form `local@domain.tld`.
    #[error("email is not a valid address")]
    Malformed,
    /// The domain belongs to a disposable-mail provider.
    #[error("email addresses at {domain} are not accepted (disposable mail provider)")]
    DisposableDomain {
        /// The refused domain.
        domain: String,
    },
}

impl Email {
    /// Longest accepted address.
    pub const MAX_LEN: usize = 254;

    /// Normalises and validates an address.
    ///
    /// # Errors
    /// In this order: [`EmailError::Empty`], [`EmailError::TooLong`], [`EmailError::Malformed`],
    /// [`EmailError::DisposableDomain`].
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong { max: Self::MAX_LEN });
        }
        let normalised = trimmed.to_ascii_lowercase();
        let (local, domain) = normalised.split_once('@').ok_or(EmailError::Malformed)?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err(EmailError::Malformed);
        }
        if is_disposable(domain) {
            return Err(EmailError::DisposableDomain {
                domain: domain.to_owned(),
            });
        }
        Ok(Email(normalised))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(l, _)| l)
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, d)| d)
    }

    /// The mailbox the address delivers to, for rules that hold once per person (the welcome
    /// bonus): the normalised address with any `+tag` removed, and for Gmail (gmail.com and
    /// googlemail.com, one mailbox service) the dots of the local part removed and the domain
    /// written `gmail.com`. The sign-in identity stays the normalised address itself.
    pub fn canonical_mailbox(&self) -> String {
        let (local, domain) = (self.local_part(), self.domain());
        let local = match local.split_once('+') {
            Some((base, _)) if !base.is_empty() => base,
            _ => local,
        };
        if matches!(domain, "gmail.com" | "googlemail.com") {
            format!("{}@gmail.com", local.replace('.', ""))
        } else {
            format!("{local}@{domain}")
        }
    }

    /// A display form that hides most of the address (for leaderboards): the first two
    /// characters of the local part, then `***`.
    pub fn masked(&self) -> String {
        let shown: String = self.local_part().chars().take(2).collect();
        format!("{shown}***")
    }
}

fn valid_local_part(local: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c);
    (1..=64).contains(&local.len())
        && local.chars().all(allowed)
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()));
    domain.len() <= 253 && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok
}

/// Whether the domain, or any parent domain of it, is a known disposable-mail provider
/// (the list maintained by the `mailchecker` crate).
fn is_disposable(domain: &str) -> bool {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| mailchecker::blacklist().into_iter().collect());
    let mut rest = domain;
    loop {
        if list.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => return false,
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let e = Email::parse("  Ann.Lee+db@Example.ORG \n").unwrap();
        assert_eq!(e.as_str(), "ann.lee+db@example.org");
        assert_eq!(e.domain(), "example.org");
        assert_eq!(e.masked(), "an***");
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_reason() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        for bad in [
            "no-at-sign",
            "@example.org",
            "ann@",
            "ann@localhost",
            "ann@example.c",
            "ann@exa mple.org",
            "a..b@example.org",
            ".ann@example.org",
            "ann@-example.org",
            "ann@example.123",
            "ann@@example.org",
            "änn@example.org",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong { max: 254 }));
    }

    #[test]
    fn disposable_domains_and_their_subdomains_are_refused() {
        for bad in [
            "x@mailinator.com",
            "x@MAILINATOR.com",
            "x@sub.mailinator.com",
        ] {
            assert!(
                matches!(Email::parse(bad), Err(EmailError::DisposableDomain { .. })),
                "{bad}"
            );
        }
        assert!(Email::parse("x@gmail.com").is_ok());
    }

    #[test]
    fn canonical_mailboxes_drop_tags_and_gmail_dots() {
        let cases = [
            ("ann@example.org", "ann@example.org"),
            ("Ann+DB@Example.org", "ann@example.org"),
            ("ann+a+b@example.org", "ann@example.org"),
            ("a.nn@example.org", "a.nn@example.org"),
            ("a.n.n+x@gmail.com", "ann@gmail.com"),
            ("A.N.N@GoogleMail.com", "ann@gmail.com"),
            ("+only@example.org", "+only@example.org"),
            ("ann@mail.gmail.com", "ann@mail.gmail.com"),
        ];
        for (raw, canonical) in cases {
            let e = Email::parse(raw).unwrap();
            assert_eq!(e.canonical_mailbox(), canonical, "{raw}");
        }
        let tagged = Email::parse("ann+db@example.org").unwrap();
        assert_eq!(
            tagged.as_str(),
            "ann+db@example.org",
            "the identity keeps its tag"
        );
    }

    #[test]
    fn debug_output_hides_the_address() {
        let e = Email::parse("secret.person@example.org").unwrap();
        assert!(!format!("{e:?}").contains("secret.person"));
    }
}
