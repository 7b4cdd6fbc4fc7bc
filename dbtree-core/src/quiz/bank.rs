//! The quiz bank shipped with dbtree: at least 60 database and cloud questions.

use super::{NewQuiz, QuizError};

const BANK_JSON: &str = include_str!("bank.json");

/// The shipped bank could not be read (a build defect, caught by the tests).
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    /// The embedded JSON does not parse.
    #[error("the shipped quiz bank is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A question breaks a rule.
    #[error("shipped quiz #{index} is invalid: {error}")]
    Invalid {
        /// Position in the bank.
        index: usize,
        /// The broken rule.
        error: QuizError,
    },
}

/// The questions every fresh install starts with, validated.
///
/// # Errors
/// [`BankError`] if the embedded bank is malformed.
pub fn shipped_bank() -> Result<Vec<NewQuiz>, BankError> {
    let raw: Vec<NewQuiz> = serde_json::from_str(BANK_JSON)?;
    raw.into_iter()
        .enumerate()
        .map(|(index, q)| {
            q.validate()
                .map_err(|error| BankError::Invalid { index, error })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::quiz::{Category, Difficulty};

    #[test]
    fn the_bank_covers_every_category_and_difficulty() {
        let bank = shipped_bank().unwrap();
        assert!(bank.len() >= 60, "only {} questions", bank.len());
        let mut per_category = BTreeMap::new();
        for q in &bank {
            *per_category.entry(q.category).or_insert(0) += 1;
        }
        for c in [
            Category::Basics,
            Category::Sql,
            Category::Design,
            Category::Performance,
            Category::Cloud,
        ] {
            assert!(per_category.get(&c).copied().unwrap_or(0) >= 10, "{c}");
        }
        let difficulties: BTreeSet<_> = bank.iter().map(|q| q.difficulty).collect();
        assert_eq!(
            difficulties,
            [Difficulty::Easy, Difficulty::Normal, Difficulty::Hard].into()
        );
        let questions: BTreeSet<_> = bank.iter().map(|q| q.question.as_str()).collect();
        assert_eq!(questions.len(), bank.len(), "duplicate questions");
    }

    /// A fresh tree carries the first ten questions: it offers every difficulty (so every
    /// circle speed) from the first minute.
    #[test]
    fn a_fresh_tree_offers_every_difficulty() {
        let bank = shipped_bank().unwrap();
        let first: BTreeSet<_> = bank.iter().take(10).map(|q| q.difficulty).collect();
        assert_eq!(
            first,
            [Difficulty::Easy, Difficulty::Normal, Difficulty::Hard].into()
        );
    }
}
