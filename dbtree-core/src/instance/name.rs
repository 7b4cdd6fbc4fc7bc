//! Instance names: DNS labels of 3 to 40 characters.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A valid instance name: lower-case letters, digits and `-`, starting and ending with a letter
/// or digit, 3–40 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceName(String);

/// Why a text is not a valid instance name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// Too short or too long.
    #[error("name must be between {min} and {max} characters")]
    Length {
        /// Minimum.
        min: usize,
        /// Maximum.
        max: usize,
    },
    /// Contains something other than `a-z`, `0-9` and `-`.
    #[error("name may contain only lower-case letters, digits and '-'")]
    Characters,
    /// Starts or ends with `-`.
    #[error("name must start and end with a letter or digit")]
    Edge,
}

impl InstanceName {
    /// Shortest name.
    pub const MIN_LEN: usize = 3;
    /// Longest name.
    pub const MAX_LEN: usize = 40;

    /// Validates a name (no trimming or case folding: what the user typed is what they get).
    ///
    /// # Errors
    /// [`InvalidName`]: length first, then characters, then edges.
    pub fn parse(text: &str) -> Result<InstanceName, InvalidName> {
        let len = text.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(InvalidName::Length {
                min: Self::MIN_LEN,
                max: Self::MAX_LEN,
            });
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(InvalidName::Characters);
        }
        if text.starts_with('-') || text.ends_with('-') {
            return Err(InvalidName::Edge);
        }
        Ok(InstanceName(text.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl TryFrom<String> for InstanceName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        InstanceName::parse(&value)
    }
}

impl From<InstanceName> for String {
    fn from(n: InstanceName) -> Self {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_label_rules() {
        let len = InvalidName::Length { min: 3, max: 40 };
        let cases: &[(&str, Result<(), InvalidName>)] = &[
            ("abc", Ok(())),
            ("my-db-1", Ok(())),
            ("007", Ok(())),
            ("ab", Err(len)),
            ("", Err(len)),
            (&"a".repeat(40), Ok(())),
            (&"a".repeat(41), Err(len)),
            ("My-db", Err(InvalidName::Characters)),
            ("my_db", Err(InvalidName::Characters)),
            ("my.db", Err(InvalidName::Characters)),
            ("dbé", Err(InvalidName::Characters)),
            ("-db", Err(InvalidName::Edge)),
            ("db-", Err(InvalidName::Edge)),
        ];
        for (text, want) in cases {
            assert_eq!(&InstanceName::parse(text).map(|_| ()), want, "{text:?}");
        }
    }
}
