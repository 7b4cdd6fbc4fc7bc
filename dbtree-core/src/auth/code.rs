//! One-time sign-in codes: generation without modulo bias, keyed digests, issue limits and
//! verdicts.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{AuthPolicy, Email};

/// A 6-digit sign-in code. Its `Debug` output is redacted; use [`SignInCode::expose`] to get the
/// digits for the email that carries it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignInCode(u32);

/// The text given as a code is not six digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the code must be exactly 6 digits")]
pub struct InvalidCode;

const CODE_SPACE: u32 = 1_000_000;
/// The largest multiple of 10⁶ that fits in a `u32`: draws at or above it are rejected, so every
/// code is exactly equally likely.
const UNBIASED_LIMIT: u32 = (u32::MAX / CODE_SPACE) * CODE_SPACE;

impl SignInCode {
    /// Draws a code from a source of uniformly random `u32`s, rejecting draws that would bias the
    /// result. Returns `None` only if the source produced 64 rejected draws in a row (probability
    /// below 10⁻²³⁰ for a real random source).
    pub fn generate(mut next_u32: impl FnMut() -> u32) -> Option<SignInCode> {
        (0..64)
            .map(|_| next_u32())
            .find(|draw| *draw < UNBIASED_LIMIT)
            .map(|draw| SignInCode(draw % CODE_SPACE))
    }

    /// Parses a code typed by a user: exactly six ASCII digits, surrounding whitespace ignored.
    ///
    /// # Errors
    /// [`InvalidCode`] for anything else.
    pub fn parse(text: &str) -> Result<SignInCode, InvalidCode> {
        let t = text.trim();
        if t.len() != 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidCode);
        }
        t.parse().map(SignInCode).map_err(|_| InvalidCode)
    }

    /// The six digits, for the message that delivers the code.
    pub fn expose(&self) -> String {
        format!("{:06}", self.0)
    }

    /// The stored form of this code for `email`: HMAC-SHA-256 under the server's `key`, bound
    /// to the address. Without the key, a stored digest does not reveal the code (a million
    /// candidates are nothing to try against an unkeyed hash).
    pub fn hash_for(&self, email: &Email, key: &CodeKey) -> CodeHash {
        let digits = format!("{:06}", self.0);
        CodeHash(hmac_sha256(
            &key.0,
            &[
                b"dbtree-code\0",
                email.as_str().as_bytes(),
                b"\0",
                digits.as_bytes(),
            ],
        ))
    }
}

/// HMAC-SHA-256 (RFC 2104) of the concatenated `parts` under a key of at most 64 bytes.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // A key shorter than the 64-byte block is zero-padded by HMAC itself; padding here lets the
    // infallible fixed-size constructor take it.
    let mut block = [0u8; 64];
    let len = key.len().min(block.len());
    block[..len].copy_from_slice(&key[..len]);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The server's secret key for sign-in code digests, kept outside the database (a 0600 key file
/// or an environment variable): a copy of the database alone does not reveal a pending code.
/// `Debug` is redacted; equality is constant-time.
///
/// [`CodeKey::default`] is a fixed, public development key for tests and examples; a server
/// MUST configure its own.
#[derive(Clone, Default)]
pub struct CodeKey([u8; 32]);

/// A text given as a code key is not 64 hexadecimal characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the secret key must be 64 hexadecimal characters (32 bytes), e.g. `openssl rand -hex 32`")]
pub struct InvalidCodeKey;

impl CodeKey {
    /// A key made of 32 random bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the 64-character hexadecimal form (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`InvalidCodeKey`] for anything else.
    pub fn parse(text: &str) -> Result<Self, InvalidCodeKey> {
        crate::hex::decode::<32>(text.trim())
            .map(Self)
            .ok_or(InvalidCodeKey)
    }

    /// The hexadecimal form, for the key file that keeps it.
    pub fn expose(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl PartialEq for CodeKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for CodeKey {}

impl fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

impl fmt::Debug for SignInCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignInCode(******)")
    }
}

/// The stored digest of a sign-in code. Compared in constant time.
#[derive(Clone, Copy)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    /// Wraps a digest loaded from storage.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes, for storage.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for CodeHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for CodeHash {}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeHash(..)")
    }
}

/// A code as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCode {
    /// The address it was sent to.
    pub email: Email,
    /// Its digest.
    pub hash: CodeHash,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes tried against it so far.
    pub wrong_attempts: u32,
    /// Whether it was already used to sign in.
    pub used: bool,
}

/// Why a new code may not be issued now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeIssueRefusal {
    /// The previous code for this address was sent less than the resend gap ago.
    #[error("a code was sent moments ago; retry in {retry_after_secs} s")]
    ResendTooSoon {
        /// Seconds until a new code may be requested.
        retry_after_secs: u32,
    },
    /// Too many codes for this address within the last hour.
    #[error("too many codes requested; retry in {retry_after_secs} s")]
    TooManyCodes {
        /// Seconds until a new code may be requested.
        retry_after_secs: u32,
    },
}

impl CodeIssueRefusal {
    /// Seconds the client should wait.
    pub fn retry_after_secs(self) -> u32 {
        match self {
            CodeIssueRefusal::ResendTooSoon { retry_after_secs }
            | CodeIssueRefusal::TooManyCodes { retry_after_secs } => retry_after_secs,
        }
    }
}

/// Whole seconds from `now` until `at`, rounded up, at least 1.
pub(crate) fn secs_until(now: DateTime<Utc>, at: DateTime<Utc>) -> u32 {
    let ms = (at - now).num_milliseconds().max(1);
    u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX)
}

/// Whether a new code may be issued for an address, given when its previous codes were issued.
///
/// # Errors
/// [`CodeIssueRefusal::ResendTooSoon`] if the newest code is younger than the resend gap, then
/// [`CodeIssueRefusal::TooManyCodes`] if the last hour already holds the hourly allowance.
pub fn check_code_issue(
    previous_issues: &[DateTime<Utc>],
    now: DateTime<Utc>,
    policy: &AuthPolicy,
) -> Result<(), CodeIssueRefusal> {
    if let Some(newest) = previous_issues.iter().max() {
        let next_allowed = *newest + policy.resend_gap;
        if now < next_allowed {
            return Err(CodeIssueRefusal::ResendTooSoon {
                retry_after_secs: secs_until(now, next_allowed),
            });
        }
    }
    let hour = TimeDelta::hours(1);
    let mut in_window: Vec<_> = previous_issues
        .iter()
        .filter(|t| **t > now - hour)
        .collect();
    if in_window.len() >= policy.codes_per_hour_per_email as usize {
        in_window.sort();
        // The window frees up when enough of the oldest codes leave it.
        let excess = in_window.len() + 1 - policy.codes_per_hour_per_email as usize;
        let frees_at = in_window.get(excess - 1).map_or(now + hour, |t| **t + hour);
        return Err(CodeIssueRefusal::TooManyCodes {
            retry_after_secs: secs_until(now, frees_at),
        });
    }
    Ok(())
}

/// The outcome of presenting a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeVerdict {
    /// The code matches: sign in, and mark the code used.
    Accepted,
    /// The code does not match: count the wrong try.
    Wrong {
        /// Tries left before the code locks.
        attempts_left: u32,
    },
    /// Too many wrong tries: the code can no longer be used, even with the right digits.
    Locked,
    /// The code expired.
    Expired,
    /// No usable code exists for this address (never requested, or already used).
    NoCode,
}

/// Judges a presented code against the newest code issued for the address.
///
/// Precedence: no code (or used) → [`CodeVerdict::NoCode`]; locked → [`CodeVerdict::Locked`];
/// expired → [`CodeVerdict::Expired`]; then match or not. The store applies the verdict
/// atomically: `Accepted` marks the code used, `Wrong` increments its wrong tries.
pub fn judge_code(
    newest: Option<&IssuedCode>,
    presented: &CodeHash,
    now: DateTime<Utc>,
    policy: &AuthPolicy,
) -> CodeVerdict {
    let Some(code) = newest.filter(|c| !c.used) else {
        return CodeVerdict::NoCode;
    };
    if code.wrong_attempts >= policy.max_wrong_attempts {
        return CodeVerdict::Locked;
    }
    if now >= code.expires_at {
        return CodeVerdict::Expired;
    }
    if code.hash == *presented {
        CodeVerdict::Accepted
    } else {
        CodeVerdict::Wrong {
            attempts_left: policy
                .max_wrong_attempts
                .saturating_sub(code.wrong_attempts + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn email() -> Email {
        Email::parse("ann@example.org").unwrap()
    }

    fn key(byte: u8) -> CodeKey {
        CodeKey::from_bytes([byte; 32])
    }

    #[test]
    fn generation_rejects_biased_draws() {
        let mut draws = [u32::MAX, UNBIASED_LIMIT, UNBIASED_LIMIT - 1].into_iter();
        let code = SignInCode::generate(|| draws.next().unwrap_or(0)).unwrap();
        assert_eq!(
            code.expose(),
            format!("{:06}", (UNBIASED_LIMIT - 1) % CODE_SPACE)
        );
        assert_eq!(SignInCode::generate(|| u32::MAX), None);
        assert_eq!(SignInCode::generate(|| 42).unwrap().expose(), "000042");
    }

    #[test]
    fn parsing_accepts_six_digits_only() {
        assert_eq!(SignInCode::parse(" 012345 ").unwrap().expose(), "012345");
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦", "+12345"] {
            assert_eq!(SignInCode::parse(bad), Err(InvalidCode), "{bad}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // test case 2: key "Jefe"
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            crate::hex::encode(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // test case 1: a 20-byte key
        let mac = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(
            crate::hex::encode(&mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn digests_bind_the_code_to_the_address_and_the_key() {
        let c = SignInCode::parse("123456").unwrap();
        let other = Email::parse("bob@example.org").unwrap();
        let k = key(1);
        assert_eq!(c.hash_for(&email(), &k), c.hash_for(&email(), &k));
        assert_ne!(c.hash_for(&email(), &k), c.hash_for(&other, &k));
        assert_ne!(c.hash_for(&email(), &k), c.hash_for(&email(), &key(2)));
        assert!(!format!("{c:?}").contains("123456"));
    }

    #[test]
    fn without_the_key_a_stored_digest_matches_no_code() {
        // What an attacker with a copy of the database does: try codes against the stored
        // digest. Under the server's key the search finds the code; under any other key (here
        // the public default) the same search finds nothing. (A window of the code space keeps
        // the unoptimised test fast; every code costs the same.)
        let secret = key(7);
        let code = SignInCode::parse("402913").unwrap();
        let stored = code.hash_for(&email(), &secret);
        let search = |k: &CodeKey| {
            (400_000..430_000).find(|n| SignInCode(*n).hash_for(&email(), k) == stored)
        };
        assert_eq!(search(&CodeKey::default()), None);
        assert_eq!(search(&secret), Some(402_913));
    }

    #[test]
    fn keys_parse_from_hex_and_stay_redacted() {
        let k = key(0xab);
        assert_eq!(CodeKey::parse(&k.expose()), Ok(k.clone()));
        assert_eq!(
            CodeKey::parse(&format!(" {} \n", k.expose())),
            Ok(k.clone())
        );
        for bad in ["", "abcd", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(CodeKey::parse(bad), Err(InvalidCodeKey), "{bad}");
        }
        assert!(!format!("{k:?}").contains("ab"));
        assert_ne!(k, CodeKey::default());
    }

    #[test]
    fn resend_gap_and_hourly_allowance() {
        let p = AuthPolicy {
            codes_per_hour_per_email: 5,
            ..AuthPolicy::default()
        };
        assert_eq!(AuthPolicy::default().codes_per_hour_per_email, 10);
        let now = t0();
        assert_eq!(check_code_issue(&[], now, &p), Ok(()));
        let just_sent = [now - TimeDelta::seconds(59)];
        assert_eq!(
            check_code_issue(&just_sent, now, &p),
            Err(CodeIssueRefusal::ResendTooSoon {
                retry_after_secs: 1
            })
        );
        assert_eq!(
            check_code_issue(&[now - TimeDelta::seconds(60)], now, &p),
            Ok(())
        );
        let five: Vec<_> = (1..=5).map(|m| now - TimeDelta::minutes(m * 10)).collect();
        // the oldest of the five (50 min ago) leaves the window in 10 minutes
        assert_eq!(
            check_code_issue(&five, now, &p),
            Err(CodeIssueRefusal::TooManyCodes {
                retry_after_secs: 600
            })
        );
        let four_in_hour: Vec<_> = five
            .iter()
            .skip(1)
            .copied()
            .chain([now - TimeDelta::hours(2)])
            .collect();
        assert_eq!(check_code_issue(&four_in_hour, now, &p), Ok(()));
    }

    #[test]
    fn verdicts_in_precedence_order() {
        let p = AuthPolicy::default();
        let right = SignInCode::parse("111111")
            .unwrap()
            .hash_for(&email(), &key(1));
        let wrong = SignInCode::parse("222222")
            .unwrap()
            .hash_for(&email(), &key(1));
        let code = IssuedCode {
            email: email(),
            hash: right,
            issued_at: t0(),
            expires_at: t0() + TimeDelta::minutes(10),
            wrong_attempts: 0,
            used: false,
        };
        let at = t0() + TimeDelta::minutes(1);
        assert_eq!(judge_code(None, &right, at, &p), CodeVerdict::NoCode);
        assert_eq!(
            judge_code(Some(&code), &right, at, &p),
            CodeVerdict::Accepted
        );
        assert_eq!(
            judge_code(Some(&code), &wrong, at, &p),
            CodeVerdict::Wrong { attempts_left: 4 }
        );
        let four_wrong = IssuedCode {
            wrong_attempts: 4,
            ..code.clone()
        };
        assert_eq!(
            judge_code(Some(&four_wrong), &wrong, at, &p),
            CodeVerdict::Wrong { attempts_left: 0 }
        );
        let locked = IssuedCode {
            wrong_attempts: 5,
            ..code.clone()
        };
        assert_eq!(
            judge_code(Some(&locked), &right, at, &p),
            CodeVerdict::Locked
        );
        let late = t0() + TimeDelta::minutes(10);
        assert_eq!(
            judge_code(Some(&code), &right, late, &p),
            CodeVerdict::Expired
        );
        let used = IssuedCode { used: true, ..code };
        assert_eq!(judge_code(Some(&used), &right, at, &p), CodeVerdict::NoCode);
    }
}
