//! Instance credentials: a random 24-character password, shown once and never stored by dbtree.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::Engine;

/// A database password. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password(SecretString);

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Draws at or above this are rejected so that every character is equally likely.
const UNBIASED_LIMIT: u32 = (u32::MAX / 62) * 62;

impl Password {
    /// Length of generated passwords.
    pub const LEN: usize = 24;

    /// Draws a password of [`Self::LEN`] alphanumeric characters from a source of uniformly
    /// random `u32`s, without modulo bias. `None` only if the source produced 1000 rejected
    /// draws (never happens with a real random source).
    pub fn generate(mut next_u32: impl FnMut() -> u32) -> Option<Password> {
        let mut out = String::with_capacity(Self::LEN);
        let mut draws = 0;
        while out.len() < Self::LEN {
            draws += 1;
            if draws > 1000 {
                return None;
            }
            let draw = next_u32();
            if draw < UNBIASED_LIMIT {
                out.push(char::from(ALPHABET[(draw % 62) as usize]));
            }
        }
        Some(Password(SecretString::from(out)))
    }

    /// Wraps a password given by an embedding application.
    pub fn from_secret(secret: SecretString) -> Password {
        Password(secret)
    }

    /// The password text, for the one response that shows it and for the cluster.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A user name and password for one instance.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The user name ([`Engine::username`]).
    pub username: String,
    /// The password.
    pub password: Password,
}

impl Credentials {
    /// Credentials for `engine` with `password`.
    pub fn new(engine: Engine, password: Password) -> Credentials {
        Credentials {
            username: engine.username().to_owned(),
            password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_24_alphanumerics() {
        let mut n = 0u32;
        let p = Password::generate(|| {
            n = n.wrapping_add(0x9E37_79B9);
            n
        })
        .unwrap();
        assert_eq!(p.expose().len(), 24);
        assert!(p.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!format!("{p:?}").contains(p.expose()));
    }

    #[test]
    fn biased_draws_are_rejected() {
        let mut draws = [u32::MAX, UNBIASED_LIMIT]
            .into_iter()
            .chain(std::iter::repeat(0));
        let p = Password::generate(|| draws.next().unwrap_or(0)).unwrap();
        assert_eq!(p.expose(), "A".repeat(24));
        assert!(Password::generate(|| u32::MAX).is_none());
    }
}
