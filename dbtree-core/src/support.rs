//! Support inquiries: bounded, validated user text.

use serde::{Deserialize, Serialize};

/// What an inquiry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupportCategory {
    /// Something is broken.
    Bug,
    /// Lemons and charges.
    Billing,
    /// An idea.
    Feature,
    /// Anything else.
    Other,
}

impl SupportCategory {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SupportCategory::Bug => "bug",
            SupportCategory::Billing => "billing",
            SupportCategory::Feature => "feature",
            SupportCategory::Other => "other",
        }
    }
}

/// A validated inquiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportInquiry {
    category: SupportCategory,
    subject: String,
    message: String,
}

/// Why an inquiry is refused; names the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be between {min} and {max} characters")]
pub struct SupportError {
    /// The field.
    pub field: &'static str,
    /// Minimum characters.
    pub min: usize,
    /// Maximum characters.
    pub max: usize,
}

impl SupportInquiry {
    /// Subject length bounds.
    pub const SUBJECT_CHARS: (usize, usize) = (3, 120);
    /// Message length bounds.
    pub const MESSAGE_CHARS: (usize, usize) = (10, 4000);

    /// Trims and bounds the texts.
    ///
    /// # Errors
    /// [`SupportError`] for the subject, then the message.
    pub fn new(
        category: SupportCategory,
        subject: &str,
        message: &str,
    ) -> Result<Self, SupportError> {
        let bounded = |field, text: &str, (min, max): (usize, usize)| {
            let t = text.trim();
            if (min..=max).contains(&t.chars().count()) {
                Ok(t.to_owned())
            } else {
                Err(SupportError { field, min, max })
            }
        };
        Ok(Self {
            category,
            subject: bounded("subject", subject, Self::SUBJECT_CHARS)?,
            message: bounded("message", message, Self::MESSAGE_CHARS)?,
        })
    }

    /// The category.
    pub fn category(&self) -> SupportCategory {
        self.category
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_bounded() {
        assert!(SupportInquiry::new(SupportCategory::Other, "Hi!", "hello there").is_ok());
        assert_eq!(
            SupportInquiry::new(SupportCategory::Other, "  ", "hello there"),
            Err(SupportError {
                field: "subject",
                min: 3,
                max: 120
            })
        );
        let long = "x".repeat(4001);
        assert_eq!(
            SupportInquiry::new(SupportCategory::Other, "Hi!", &long),
            Err(SupportError {
                field: "message",
                min: 10,
                max: 4000
            })
        );
    }
}
